"""Finding and obtaining Fashion-MNIST; the `aimscale data fetch` command."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from aimscale.cli import main
from aimscale.data import DataError, build_pretrain_data, load_labelled
from aimscale.data import fetch as fetching
from aimscale.data.config import DataConfig
from aimscale.data.sources import open_source
from aimscale.model.config import ModelConfig

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not fetching.has_files(DEBIAN),
    reason="Debian's dataset-fashion-mnist is absent (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def _no_user_locations(monkeypatch, tmp_path):
    monkeypatch.delenv(fetching.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@needs_debian
def test_debian_fashion_mnist_is_found_and_loads():
    assert fetching.find("fashion-mnist") == DEBIAN
    train = open_source("fashion-mnist", "train")
    assert len(train) == 60_000 and train.load(0).shape == (28, 28, 1)
    test = load_labelled("fashion-mnist", "test", ModelConfig(), limit=500)
    assert test.num_classes == 10 and test.class_names[9] == "ankle boot"
    batch = build_pretrain_data(DataConfig(num_images=1000), ModelConfig(), seed=0).next_batch(8)
    assert batch.shape == (8, 1, 28, 28)


@needs_debian
def test_debian_files_match_the_known_checksums():
    assert fetching.verify("fashion-mnist", DEBIAN) == []


@needs_debian
def test_cli_fetch_finds_the_debian_copy(capsys):
    assert main(["data", "fetch", "fashion-mnist", "--no-apt", "--no-download"]) == 0
    assert capsys.readouterr().out.strip() == str(DEBIAN)


def test_cli_fetch_prefers_dir_then_env(tmp_path, helpers, monkeypatch, capsys):
    helpers.write_idx_dir(tmp_path / "mine", n_train=5, n_test=2)
    assert main(["data", "fetch", "mnist", "--dir", str(tmp_path / "mine"), "--no-download"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "mine")
    helpers.write_idx_dir(tmp_path / "env" / "fashion-mnist", n_train=5, n_test=2)
    monkeypatch.setenv(fetching.ENV_VAR, str(tmp_path / "env"))
    assert main(["data", "fetch", "fashion-mnist", "--no-apt", "--no-download"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "env" / "fashion-mnist")
    # a source without a path uses the same lookup
    assert len(open_source("fashion-mnist", "train")) == 5


def test_cli_fetch_explains_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(
        fetching.DATASETS, "fashion-mnist",
        fetching.DatasetInfo(str(tmp_path / "absent"), "dataset-fashion-mnist", "http://x", {}),
    )
    assert main(["data", "fetch", "fashion-mnist", "--no-apt", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err
    assert "--dir PATH" in err and fetching.ENV_VAR in err
    assert "train-images-idx3-ubyte.gz" in err
    with pytest.raises(DataError, match="fashion-mnist not found"):
        open_source("fashion-mnist", "train")


def test_download_from_a_url_and_checksums(tmp_path, helpers, monkeypatch):
    # a file:// URL exercises the download code offline; only the real network is untested
    helpers.write_idx_dir(tmp_path / "mirror", n_train=6, n_test=3)
    url = (tmp_path / "mirror").as_uri()
    got = fetching.fetch("mnist", tmp_path / "dl", allow_apt=False, url=url, log=lambda m: None)
    assert got == tmp_path / "dl" and fetching.has_files(got)
    assert len(open_source(f"idx:{got}", "test")) == 3
    # fashion-mnist checks the decompressed SHA-256: these fake files fail and are removed
    known = fetching.DATASETS["fashion-mnist"]
    monkeypatch.setitem(fetching.DATASETS, "fashion-mnist",
                        fetching.DatasetInfo(None, None, known.url, known.sha256))
    with pytest.raises(DataError, match="checksum mismatch"):
        fetching.fetch("fashion-mnist", tmp_path / "bad", allow_apt=False, url=url,
                       log=lambda m: None)
    assert not list((tmp_path / "bad").glob("*.gz"))


def test_verify_flags_changed_files(tmp_path, helpers):
    helpers.write_idx_dir(tmp_path / "fake", n_train=4, n_test=2)
    assert sorted(fetching.verify("fashion-mnist", tmp_path / "fake")) == sorted(fetching.FILES)
    path = tmp_path / "fake" / "t10k-labels-idx1-ubyte.gz"
    assert gzip.decompress(path.read_bytes())  # the files themselves are valid gzip
