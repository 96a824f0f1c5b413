"""Damaged real dataset files are bad input: exit 2 and a message naming the file, no traceback."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from aimscale.cli import main
from aimscale.data.errors import DataError
from aimscale.data.idx import read_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not (FASHION / "t10k-labels-idx1-ubyte.gz").is_file(),
                                reason="Debian's dataset-fashion-mnist is not installed")


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "fmnist"
    folder.mkdir()
    for path in FASHION.glob("*.gz"):
        shutil.copy(path, folder / path.name)
    return folder


def _train_dry_run(folder: Path, capsys) -> tuple[int, str]:
    code = main(["train", f"data.sources=[{{kind:idx,path:{folder}}}]", "train.steps=1",
                 f"run_dir={folder.parent / 'run'}", "--dry-run"])
    return code, capsys.readouterr().err


def test_idx_file_cut_to_10_bytes(tmp_path, capsys):
    folder = _copy(tmp_path)
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as handle:
        head = handle.read(10)
    (folder / "train-images-idx3-ubyte.gz").unlink()
    cut = folder / "train-images-idx3-ubyte"
    cut.write_bytes(head)
    with pytest.raises(DataError, match="has 10 bytes, fewer than its 3-dimension header"):
        read_idx(cut)
    code, err = _train_dry_run(folder, capsys)
    assert code == 2, err
    assert str(cut) in err and "truncated" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_gzip_with_flipped_bytes(tmp_path, capsys):
    folder = _copy(tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    for i in range(1000, 1100):  # inside the deflate stream, past the gzip header
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="the file is damaged, re-fetch or replace it"):
        read_idx(path)
    code, err = _train_dry_run(folder, capsys)
    assert code == 2, err
    assert f"cannot read IDX file {path}" in err and "zlib" not in err
