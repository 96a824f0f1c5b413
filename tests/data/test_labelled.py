"""Labelled sets for probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimscale.data import DataError, LabelledSet, load_labelled
from aimscale.data.config import SourceConfig
from aimscale.model.config import ModelConfig

MODEL = ModelConfig(image_size=12, patch_size=4, channels=1)


def test_idx_splits_and_pixel_scale(tmp_path, helpers):
    helpers.write_idx_dir(tmp_path / "d", n_train=40, n_test=20)
    images, labels = load_labelled(f"idx:{tmp_path / 'd'}", "test", MODEL)
    assert images.shape == (20, 1, 12, 12) and images.dtype == torch.float32
    np.testing.assert_array_equal(labels.numpy(), np.arange(20) % 10)
    # image i is flat with value 7i mod 256; the scale is [0, 1] then mean 0.5 / std 0.5
    expected = ((np.arange(20) * 7 % 256) / 255.0 - 0.5) / 0.5
    np.testing.assert_allclose(images[:, 0, 5, 5].numpy(), expected, atol=1e-6)
    train = load_labelled(SourceConfig(kind="idx", path=str(tmp_path / "d")), "train", MODEL)
    assert isinstance(train, LabelledSet) and len(train) == 40 and train.num_classes == 10


def test_limit_is_a_fixed_mixed_subset(image_folder, tmp_path):
    image_folder(root=tmp_path / "ds" / "train", per_class=6)
    first = load_labelled(f"image-folder:{tmp_path / 'ds'}", "train", MODEL, limit=5)
    again = load_labelled(f"image-folder:{tmp_path / 'ds'}", "train", MODEL, limit=5)
    assert len(first) == 5
    torch.testing.assert_close(first.images, again.images)
    assert set(first.labels.tolist()) == {0, 1}  # not just the first class of a sorted tree


def test_image_folder_val_split_skips_corrupt(image_folder, tmp_path):
    image_folder(root=tmp_path / "ds" / "train", per_class=2)
    image_folder(root=tmp_path / "ds" / "val", per_class=4, corrupt=True)
    model = ModelConfig(image_size=8, patch_size=4, channels=3)
    val = load_labelled(f"image-folder:{tmp_path / 'ds'}", "val", model)
    assert val.skipped == 2 and len(val) == 8
    assert val.images.shape == (8, 3, 8, 8)
    assert val.class_names == ["cat", "dog"] and val.num_classes == 2
    assert val.images.min() >= -1 and val.images.max() <= 1


def test_tar_shards_need_labels(tar_shards):
    root = tar_shards(n_shards=1, per_shard=4, labels=True)
    images, labels = load_labelled(f"tar-shards:{root}", "train", MODEL)
    assert images.shape == (4, 1, 12, 12) and labels.tolist() == [0, 1, 2, 0]


def test_unlabelled_tar_shards_are_refused(tar_shards):
    root = tar_shards(n_shards=1, per_shard=4, labels=False)
    with pytest.raises(DataError, match="4 of 4 images have no label"):
        load_labelled(f"tar-shards:{root}", "train", MODEL)


def test_synthetic_labelled():
    data = load_labelled("synthetic", "test", ModelConfig(image_size=16, patch_size=4,
                                                          channels=3), limit=50)
    assert data.images.shape == (50, 3, 16, 16) and data.num_classes == 10
    assert len(set(data.labels.tolist())) == 10
