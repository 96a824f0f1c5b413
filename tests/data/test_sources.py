"""Readers: IDX, ImageFolder, tar shards, synthetic; decoding, channel conversion, bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from aimscale.data.config import SourceConfig
from aimscale.data.decode import decode_image, to_channels
from aimscale.data.errors import DataError
from aimscale.data.idx import read_idx
from aimscale.data.sources import open_source
from aimscale.data.tar_shards import TarShardSource


def test_idx_gz_round_trip(tmp_path, helpers):
    written = helpers.write_idx_dir(tmp_path / "fm", n_train=30, n_test=8)
    train = open_source(SourceConfig(kind="idx", path=str(tmp_path / "fm")), "train")
    test = open_source(f"idx:{tmp_path / 'fm'}", "test")
    assert len(train) == 30 and len(test) == 8
    np.testing.assert_array_equal(train.load(5)[..., 0], written["train"][0][5])
    assert train.load(5).shape == (12, 12, 1)
    np.testing.assert_array_equal(train.labels, np.arange(30) % 10)
    assert train.class_names == [str(c) for c in range(10)]


def test_idx_truncated_file_is_an_error(tmp_path, helpers):
    data = helpers.idx_bytes(np.zeros((10, 4, 4), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data[:-5]))
    with pytest.raises(DataError, match=r"truncated or corrupt.*re-fetch"):
        read_idx(path)
    path.write_bytes(b"\x08\x03garbage")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


def test_image_folder_mixed_formats_and_modes(image_folder):
    root, n = image_folder(per_class=4)
    source = open_source(f"image-folder:{root}", "train")
    assert len(source) == n == 8
    assert source.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(source.labels, [0, 0, 0, 0, 1, 1, 1, 1])
    channels = sorted({source.load(i).shape[-1] for i in range(n)})
    assert channels == [1, 3, 4]  # grey PNG, RGB PNG/JPEG, RGBA PNG
    rgb_png = source.load(0)  # cat/0.png: R=0, G=255, B=128
    assert rgb_png.shape == (16, 16, 3) and tuple(rgb_png[0, 0]) == (0, 255, 128)
    for i in range(n):
        for c in (1, 3):
            assert to_channels(source.load(i), c).shape[-1] == c


def test_channel_conversion_values():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 100, 7  # alpha dropped, luma of (100, 0, 0) = 29.9
    assert to_channels(rgba, 3)[0, 0].tolist() == [100, 0, 0]
    assert to_channels(rgba, 1)[0, 0, 0] == 30
    grey = np.full((2, 2, 1), 9, np.uint8)
    assert to_channels(grey, 3)[1, 1].tolist() == [9, 9, 9]
    with pytest.raises(ValueError, match="use 1 .* or 3"):
        to_channels(grey, 2)


def test_decode_rejects_corrupt_bytes(helpers):
    jpeg = helpers.encode(helpers.rgb_image(50, size=64), "JPEG")
    assert decode_image(jpeg).shape == (64, 64, 3)
    assert decode_image(jpeg[: len(jpeg) // 2]) is None  # truncated
    assert decode_image(b"garbage" * 20) is None
    assert decode_image(b"") is None


def test_tar_shards_with_labels(tar_shards, helpers):
    root = tar_shards(n_shards=2, per_shard=5)
    for path in (str(root), str(root / "shard-*.tar")):
        source = open_source(SourceConfig(kind="tar-shards", path=path), "train")
        assert len(source) == 10
        np.testing.assert_array_equal(source.labels, np.arange(10) % 3)
        np.testing.assert_array_equal(source.load(7), helpers.rgb_image(70))


def test_tar_shards_truncated_shard_keeps_readable_samples(tar_shards, caplog):
    root = tar_shards(n_shards=1, per_shard=6, labels=False)
    full = open_source(SourceConfig(kind="tar-shards", path=str(root)), "train")
    shard = root / "shard-0000.tar"
    cut = int(full.offsets[3] + full.sizes[3] // 2)  # inside the 4th image
    shard.write_bytes(shard.read_bytes()[:cut])
    damaged = TarShardSource(root)
    assert "damaged" in caplog.text
    assert [damaged.load(i) is None for i in range(len(damaged))] == [False, False, False, True]
    assert (damaged.labels == -1).all()


def test_synthetic_is_deterministic_and_class_dependent():
    a = open_source(SourceConfig(kind="synthetic", size=100), "train")
    assert len(a) == 100 and a.load(3).shape == (32, 32, 3)
    np.testing.assert_array_equal(a.load(3), a.load(3))
    # images of one class are closer to each other than to another class (orientation/colour)
    means = {c: np.mean([a.load(i).astype(float) for i in range(c, 100, 10)], 0) for c in (0, 5)}
    same = np.abs(a.load(10).astype(float) - means[0]).mean()
    other = np.abs(a.load(10).astype(float) - means[5]).mean()
    assert same < other
    test = open_source("synthetic", "test")
    assert len(test) == 10_000 and not np.array_equal(test.load(3), a.load(3))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("image-folder:{tmp}/nope", r"does not exist; fix data.sources\[i\].path"),
        ("image-folder:{tmp}/empty", "no class sub-directories"),
        ("image-folder:{tmp}/noimages", "holds no images"),
        ("tar-shards:{tmp}/empty", "no tar shards match"),
        ("idx:{tmp}/empty", "no train-images-idx3-ubyte"),
        ("idx", "needs a path"),
        ("image-folder", "needs a path"),
    ],
)
def test_missing_or_empty_dataset_errors(tmp_path, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "noimages" / "cls").mkdir(parents=True)
    (tmp_path / "noimages" / "cls" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=message):
        open_source(spec.format(tmp=tmp_path), "train")


def test_probe_splits_of_image_folder(image_folder, tmp_path):
    image_folder(root=tmp_path / "ds" / "train", per_class=2)
    image_folder(root=tmp_path / "ds" / "val", per_class=1)
    assert len(open_source(f"image-folder:{tmp_path / 'ds'}", "train")) == 4
    assert len(open_source(f"image-folder:{tmp_path / 'ds'}", "val")) == 2
    assert len(open_source(f"image-folder:{tmp_path / 'ds'}", "test")) == 2  # alias of val
    with pytest.raises(DataError, match="no val or test sub-directory"):
        open_source(f"image-folder:{tmp_path / 'ds' / 'train'}", "val")
