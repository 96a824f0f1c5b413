"""The pre-training stream: subsets, mixtures, resume, workers, ranks, augmentation, bad images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimscale.data import DataError, build_pretrain_data, build_val_images, check_data
from aimscale.data.config import DataConfig, SourceConfig
from aimscale.data.subsets import split_indices
from aimscale.model.config import ModelConfig

MODEL = ModelConfig(image_size=8, patch_size=4, channels=1)


def synthetic(size=400, **kw) -> DataConfig:
    return DataConfig(sources=[SourceConfig(kind="synthetic", size=size)], **kw)


def test_nested_subsets_and_disjoint_validation():
    small, val_a = split_indices(12_000, 1000, 1000, subset_seed=0)
    large, val_b = split_indices(12_000, 1000, 10_000, subset_seed=0)
    full, val_c = split_indices(12_000, 1000, None, subset_seed=0)
    assert len(small) == 1000 and len(large) == 10_000 and len(full) == 11_000
    assert set(small) <= set(large) <= set(full)
    np.testing.assert_array_equal(val_a, val_b)
    np.testing.assert_array_equal(val_a, val_c)
    assert not set(val_a) & set(full)
    other, _ = split_indices(12_000, 1000, 1000, subset_seed=1)
    assert set(other) != set(small)


def test_stream_draws_only_from_its_subset():
    # with whole-image crops and no flip, every rendered image is its source image: an epoch of
    # num_images=40 shows exactly the subset, and none of the held-out images
    cfg = synthetic(num_images=40, val_images=30, crop_scale_min=1.0, hflip=False)
    stream = build_pretrain_data(cfg, MODEL, seed=3)
    epoch = stream.next_batch(40)
    subset = stream.renderer.subsets[0]
    from aimscale.data.augment import render_eval
    from aimscale.data.sources import open_source

    source = open_source(cfg.sources[0])
    expected = torch.stack([render_eval(source.load(int(i)), 8, 1) for i in subset])
    order = [int(((expected - x) ** 2).flatten(1).sum(1).argmin()) for x in epoch]
    assert sorted(order) == list(range(40))  # a permutation of the subset, no repeats
    val = build_val_images(cfg, MODEL, 30)
    val_again = build_val_images(synthetic(num_images=100, val_images=30), MODEL, 30)
    torch.testing.assert_close(val, val_again)  # independent of num_images
    distances = torch.cdist(val.flatten(1), expected.flatten(1))
    assert distances.min() > 1e-3  # held-out images never appear in training


def test_num_images_too_large_names_both_numbers():
    with pytest.raises(DataError, match=r"num_images=500 exceeds the 300 training images"):
        build_pretrain_data(synthetic(size=400, num_images=500, val_images=100), MODEL, seed=0)
    problems = check_data(synthetic(size=400, num_images=500, val_images=100), MODEL)
    assert len(problems) == 1 and "500" in problems[0] and "300" in problems[0]
    assert check_data(synthetic(size=400, num_images=300, val_images=100), MODEL) == []


def test_check_data_lists_every_bad_source(tmp_path):
    cfg = DataConfig(sources=[
        SourceConfig(kind="image-folder", path=str(tmp_path / "missing")),
        SourceConfig(kind="tar-shards", path=str(tmp_path / "none-*.tar")),
        SourceConfig(kind="synthetic", size=50),
    ], val_images=10)
    problems = check_data(cfg, MODEL)
    assert any("missing" in p and "does not exist" in p for p in problems)
    assert any("no tar shards match" in p for p in problems)
    assert not any("synthetic" in p for p in problems)
    with pytest.raises(DataError, match="does not exist"):
        build_pretrain_data(cfg, MODEL, seed=0)


def test_mixture_proportions_and_determinism():
    cfg = DataConfig(sources=[
        SourceConfig(kind="synthetic", size=300, weight=4.0),
        SourceConfig(kind="synthetic", size=200, weight=1.0),
    ], val_images=10)
    stream = build_pretrain_data(cfg, MODEL, seed=11)
    plan, counts = stream._plan(5000, 0, stream.counts)
    fractions = np.bincount([s for s, _, _ in plan], minlength=2) / 5000
    assert abs(fractions[0] - 0.8) < 0.02
    np.testing.assert_array_equal(counts, np.bincount([s for s, _, _ in plan]))
    a = build_pretrain_data(cfg, MODEL, seed=11).next_batch(32)
    b = build_pretrain_data(cfg, MODEL, seed=11).next_batch(32)
    c = build_pretrain_data(cfg, MODEL, seed=12).next_batch(32)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_resume_gives_the_uninterrupted_batches():
    cfg = DataConfig(sources=[
        SourceConfig(kind="synthetic", size=60, weight=1.0),
        SourceConfig(kind="synthetic", size=90, weight=2.0),
    ], val_images=5)
    straight = build_pretrain_data(cfg, MODEL, seed=5)
    expected = [straight.next_batch(16) for _ in range(12)]  # several epochs of both sources
    first = build_pretrain_data(cfg, MODEL, seed=5)
    for _ in range(7):
        first.next_batch(16)
    state = first.state_dict()
    assert state["position"] == 7 * 16
    resumed = build_pretrain_data(cfg, MODEL, seed=5)
    resumed.load_state_dict(state)
    for k in range(7, 12):
        torch.testing.assert_close(resumed.next_batch(16), expected[k])


def test_resume_with_another_subset_is_refused():
    state = build_pretrain_data(synthetic(num_images=100, val_images=10), MODEL, 0).state_dict()
    other = build_pretrain_data(synthetic(num_images=200, val_images=10), MODEL, 0)
    with pytest.raises(DataError, match="resume with the data config the run started with"):
        other.load_state_dict(state)


def test_workers_give_the_same_batches_as_the_main_process():
    serial = build_pretrain_data(synthetic(val_images=10), MODEL, seed=2)
    cfg = synthetic(val_images=10, num_workers=2)
    with build_pretrain_data(cfg, MODEL, seed=2) as parallel:
        for n in (24, 24, 10, 24):  # a size change discards the prefetched batch
            torch.testing.assert_close(parallel.next_batch(n), serial.next_batch(n))
        state = parallel.state_dict()
    assert state == serial.state_dict()


def test_ranks_take_disjoint_strided_shares():
    cfg = synthetic(val_images=10)
    whole = build_pretrain_data(cfg, MODEL, seed=4)
    ranks = [build_pretrain_data(cfg, MODEL, seed=4, rank=r, world_size=3) for r in range(3)]
    for _ in range(2):
        full = whole.next_batch(30)
        parts = [stream.next_batch(10) for stream in ranks]
        for r, part in enumerate(parts):
            torch.testing.assert_close(part, full[r::3])
    plans = [stream._plan(10, 60, stream.counts)[0] for stream in ranks]
    positions = [{q for _, _, q in plan} for plan in plans]
    assert not positions[0] & positions[1] and not positions[1] & positions[2]
    with pytest.raises(ValueError, match="rank"):
        build_pretrain_data(cfg, MODEL, seed=4, rank=3, world_size=3)


@pytest.mark.parametrize("channels", [1, 3])
def test_augmented_batch_shape_and_range(channels):
    model = ModelConfig(image_size=12, patch_size=4, channels=channels)
    batch = build_pretrain_data(synthetic(val_images=10), model, seed=0).next_batch(16)
    assert batch.shape == (16, channels, 12, 12) and batch.dtype == torch.float32
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    assert batch.std() > 0.1  # real pixel content, not a constant
    # different crops: no two images of the batch are identical
    assert torch.cdist(batch.flatten(1), batch.flatten(1)).triu(1)[np.triu_indices(16, 1)].min() > 0


def test_crops_and_flips_follow_the_config():
    import random

    from aimscale.data.augment import sample_crop

    rng = random.Random(0)
    crops = [sample_crop(100, 80, (0.4, 1.0), True, rng) for _ in range(500)]
    areas = np.array([c.height * c.width / 8000 for c in crops])
    ratios = np.array([c.width / c.height for c in crops])
    assert areas.min() >= 0.38 and areas.max() <= 1.0
    assert ratios.min() >= 0.74 and ratios.max() <= 1.35
    assert all(c.top + c.height <= 100 and c.left + c.width <= 80 for c in crops)
    assert 0.4 < np.mean([c.flip for c in crops]) < 0.6
    assert not any(c.flip for c in (sample_crop(10, 10, (0.5, 1), False, rng) for _ in range(50)))


def test_corrupt_images_are_skipped_and_counted(image_folder, caplog):
    root, n = image_folder(per_class=3, corrupt=True)
    cfg = DataConfig(sources=[SourceConfig(kind="image-folder", path=str(root))], val_images=0)
    stream = build_pretrain_data(cfg, MODEL, seed=0)
    batch = stream.next_batch(n)  # one epoch: both corrupt files are drawn once
    assert torch.isfinite(batch).all() and batch.shape == (n, 1, 8, 8)
    assert stream.skipped >= 2
    warnings = [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert len(warnings) == 1
    stream.next_batch(n)
    assert len([r for r in caplog.records if "corrupt" in r.getMessage()]) == 1  # warned once
    again = build_pretrain_data(cfg, MODEL, seed=0)
    again.next_batch(n)
    again.next_batch(n)
    assert again.skipped == stream.skipped == stream.state_dict()["skipped"]


def test_all_corrupt_dataset_stops(tmp_path):
    (tmp_path / "bad" / "cls").mkdir(parents=True)
    for k in range(3):
        (tmp_path / "bad" / "cls" / f"{k}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    cfg = DataConfig(sources=[SourceConfig(kind="image-folder", path=str(tmp_path / "bad"))],
                     val_images=0)
    with pytest.raises(DataError, match="corrupt images in a row"):
        build_pretrain_data(cfg, MODEL, seed=0).next_batch(2)


def test_validation_images_of_a_mixture_follow_the_weights():
    a = SourceConfig(kind="synthetic", size=300, weight=4.0)
    b = SourceConfig(kind="synthetic", size=200, weight=1.0)
    mixed = build_val_images(DataConfig(sources=[a, b], val_images=20), MODEL, 10)
    only_a = build_val_images(DataConfig(sources=[a], val_images=20), MODEL, 8)
    only_b = build_val_images(DataConfig(sources=[b], val_images=20), MODEL, 2)
    torch.testing.assert_close(mixed, torch.cat([only_a, only_b]))
    with pytest.raises(DataError, match="raise data.val_images"):
        build_val_images(DataConfig(sources=[a], val_images=5), MODEL, 6)
