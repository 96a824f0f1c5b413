"""The stored tar-shard index: round trip on real shards, reuse, staleness, CLI, resume."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch

from aimscale.cli import main
from aimscale.data import DataError, build_pretrain_data
from aimscale.data.config import DataConfig, SourceConfig
from aimscale.data.shard_index import INDEX_DIRNAME, ShardIndex
from aimscale.data.sources import _open, open_source
from aimscale.data.tar_shards import TarShardSource, build_index, scan_shard, shard_paths
from aimscale.model.config import ModelConfig

MODEL = ModelConfig(image_size=8, patch_size=4, channels=1)


def _scanned(path) -> ShardIndex:
    shards = shard_paths(path)
    return ShardIndex.from_arrays(shards, [scan_shard(s) for s in shards])


def _same(a, b) -> None:
    assert a.shards == b.shards and a.num_classes == b.num_classes
    for name in ("shard_starts", "offsets", "sizes", "labels"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)))


@pytest.mark.parametrize("labels", [True, False])
def test_round_trip_equals_the_scan(tar_shards, helpers, capsys, labels):
    root = tar_shards(n_shards=3, per_shard=4, labels=labels)
    scanned = _scanned(root)
    assert main(["data", "index", str(root)]) == 0
    assert "12 samples in 3 shards" in capsys.readouterr().out
    stored = ShardIndex.open(root / INDEX_DIRNAME, expected=shard_paths(root))
    assert isinstance(stored.offsets, np.memmap) and stored.offsets.dtype == np.uint32
    assert stored.sizes.dtype == np.uint32
    _same(stored, scanned)
    source = TarShardSource(root)  # finds the stored index beside the shards
    assert isinstance(source.offsets, np.memmap)
    assert source.class_names == (["0", "1", "2"] if labels else [])
    for i in range(12):
        np.testing.assert_array_equal(source.load(i), helpers.rgb_image(10 * i))
    if not labels:
        assert source.labels.strides == (0,) and (source.labels == -1).all()  # no array stored
        assert not (root / INDEX_DIRNAME / "labels.npy").exists()


def test_labels_that_start_in_a_later_shard_are_back_filled(tmp_path, helpers):
    root = tmp_path / "mixed"
    root.mkdir()
    for s, labelled in enumerate((False, True)):
        with tarfile.open(root / f"s{s}.tar", "w") as tar:
            for k in range(3):
                members = {f"k{s}{k}.png": helpers.encode(helpers.rgb_image(k), "PNG")}
                if labelled:
                    members[f"k{s}{k}.cls"] = b"4"
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    info = build_index(root)
    assert info["labelled"] and info["num_classes"] == 5
    source = TarShardSource(root)
    np.testing.assert_array_equal(source.labels, [-1, -1, -1, 4, 4, 4])
    _same(source.index, _scanned(root))


def test_out_directory_glob_and_workers(tar_shards, tmp_path):
    root = tar_shards(n_shards=4, per_shard=3)
    out = tmp_path / "elsewhere" / "idx"
    assert main(["data", "index", str(root / "shard-000[12].tar"), "--out", str(out),
                 "--workers", "2"]) == 0
    by_dir = TarShardSource(out)  # a source path may be the index directory itself
    assert len(by_dir) == 6 and by_dir.shards == shard_paths(root / "shard-000[12].tar")
    _same(by_dir.index, _scanned(root / "shard-000[12].tar"))
    info = build_index(str(root / "shard-*.tar"))  # default: beside a glob, named after it
    assert info["directory"].endswith("aimscale-index.shard-__tar") and info["num_samples"] == 12
    assert isinstance(TarShardSource(str(root / "shard-*.tar")).offsets, np.memmap)
    (root / "odd.tar").mkdir()  # a directory named like a shard is not one
    assert len(shard_paths(root)) == 4


def test_dataset_root_indexes_each_split(tar_shards, tmp_path, capsys):
    root = tar_shards(n_shards=2, per_shard=2)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    root.rename(dataset / "train")
    assert main(["data", "index", str(dataset)]) == 0
    assert (dataset / "train" / INDEX_DIRNAME / "index.json").exists()
    assert len(open_source(SourceConfig(kind="tar-shards", path=str(dataset)), "train")) == 4


def test_stale_index_is_refused_with_the_fix(tar_shards, helpers):
    root = tar_shards(n_shards=2, per_shard=3)
    build_index(root)
    shard = root / "shard-0001.tar"
    shard.write_bytes(shard.read_bytes() + b"\0" * 512)  # the shard changed
    with pytest.raises(DataError, match=r"changed since it was indexed.*aimscale data index"):
        TarShardSource(root)
    build_index(root)  # rebuilt in place
    assert len(TarShardSource(root)) == 6
    (root / "shard-0002.tar").write_bytes(shard.read_bytes())  # a new shard
    with pytest.raises(DataError, match=r"lists 2 shards but the source now has 3"):
        TarShardSource(root)
    _open.cache_clear()
    cfg = DataConfig(sources=[SourceConfig(kind="tar-shards", path=str(root))], val_images=0)
    with pytest.raises(DataError, match="rebuild"):
        build_pretrain_data(cfg, MODEL, seed=0)


def test_bad_input_exits_2_and_keeps_what_exists(tmp_path, tar_shards, capsys):
    assert main(["data", "index", str(tmp_path / "nothing-*.tar")]) == 2
    assert "no tar shards match" in capsys.readouterr().err
    root = tar_shards(n_shards=1, per_shard=2)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["data", "index", str(root), "--out", str(precious)]) == 2
    assert "is not a shard index" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious", "shards"]  # no temp left


def test_stream_over_an_index_resumes_exactly_and_visits_each_image_once_per_epoch(tar_shards):
    root = tar_shards(n_shards=3, per_shard=7)
    build_index(root)
    cfg = DataConfig(sources=[SourceConfig(kind="tar-shards", path=str(root))], val_images=3,
                     num_images=15)
    straight = build_pretrain_data(cfg, MODEL, seed=9)
    assert isinstance(straight.renderer.sources[0].offsets, np.memmap)
    plan, _ = straight._plan(45, 0, straight.counts)  # three epochs of the 15-image subset
    subset = set(straight.renderer.subsets[0][:].tolist())
    epochs = [[image for _, image, _ in plan[e * 15 : (e + 1) * 15]] for e in range(3)]
    assert all(sorted(e) == sorted(subset) for e in epochs)  # each epoch: a permutation
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled per epoch
    expected = [straight.next_batch(4) for _ in range(12)]
    first = build_pretrain_data(cfg, MODEL, seed=9)
    for _ in range(5):
        first.next_batch(4)
    resumed = build_pretrain_data(cfg, MODEL, seed=9)
    resumed.load_state_dict(first.state_dict())
    for k in range(5, 12):
        torch.testing.assert_close(resumed.next_batch(4), expected[k], rtol=0, atol=0)


def test_a_stored_index_pickles_by_reference(tar_shards, tmp_path):
    import pickle

    from aimscale.data.shard_index import IndexWriter

    root = tar_shards(n_shards=1, per_shard=3)
    shard = str(root / "shard-0000.tar")
    offsets, sizes, _ = scan_shard(shard)
    writer = IndexWriter(tmp_path / "big")  # 200k samples, all pointing into the real shard
    for _ in range(2):
        writer.add_shard(shard, np.resize(offsets, 100_000), np.resize(sizes, 100_000))
    writer.close()
    stored = TarShardSource(tmp_path / "big")
    blob = pickle.dumps(stored)  # what a spawned loader worker receives
    assert len(blob) < 4096  # the directory, not 1.6 MB of arrays
    copy = pickle.loads(blob)
    assert isinstance(copy.offsets, np.memmap) and len(copy) == 200_000
    np.testing.assert_array_equal(copy.load(100_001), stored.load(1))
    scanned = ShardIndex.from_arrays([shard], [(np.resize(offsets, 1000),) * 3])
    assert len(pickle.loads(pickle.dumps(scanned))) == 1000  # in memory: travels as arrays


def test_foreign_or_renamed_shards_are_named(tar_shards, tmp_path):
    root = tar_shards(n_shards=2, per_shard=2)
    build_index(root)
    (root / "shard-0001.tar").rename(root / "shard-0009.tar")
    with pytest.raises(DataError, match=r"shard-0009.tar is not the indexed .*shard-0001.tar"):
        TarShardSource(root)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "index.json").write_text('{"format": 1}')
    with pytest.raises(DataError, match="not an aimscale shard index"):
        TarShardSource(tmp_path / "fake")
