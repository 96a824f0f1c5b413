"""Probes of a briefly pre-trained trunk: accuracy, results files, windows, checkpoints, cache."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from aimscale.cli import main
from aimscale.probe import run as probe_module
from aimscale.probe.config import probe_config
from aimscale.probe.features import extract_windows, load_trunk
from aimscale.probe.run import run_layer_sweep, run_probe, run_probes
from aimscale.probe.windows import resolve_windows

TIMING = ("wall_time_s", "feature_time_s")
RESULT_KEYS = {
    "name", "kind", "dataset", "step", "train_steps", "blocks", "window", "top1", "top5",
    "val_accuracy", "num_train", "num_val", "num_test", "num_classes", "hparams", "seed",
    "wall_time_s", "feature_time_s", "request", "stream", "features",
}  # fmt: skip


def _numbers(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in TIMING}


def test_default_probes_beat_chance_and_write_results(run_copy, fast):
    results = run_probes(run_copy, probe_config(kind="both", **fast))
    attentive, linear = results
    assert (attentive["name"], linear["name"]) == ("attentive_last", "linear_last")
    # 10 classes: chance is 0.1
    assert attentive["top1"] > 0.5, attentive
    assert linear["top1"] > 0.3, linear
    for result in results:
        on_disk = json.loads((run_copy / "probe" / f"{result['name']}.json").read_text())
        assert on_disk == result and set(on_disk) == RESULT_KEYS
        assert on_disk["dataset"] == "synthetic" and on_disk["step"] == 20
        assert on_disk["blocks"] == [2, 2]  # depth 3 -> window of 1 block, the last
        assert (on_disk["num_train"], on_disk["num_val"], on_disk["num_test"]) == (540, 60, 300)
        assert on_disk["features"] == "trunk"
        assert 0.0 <= on_disk["top1"] <= on_disk["top5"] <= 1.0
        hp = on_disk["hparams"]
        assert len(hp["grid"]) == 8  # 4 learning rates x 2 weight decays
        best = max(hp["grid"], key=lambda row: row["val_accuracy"])
        assert on_disk["val_accuracy"] == best["val_accuracy"]
        assert {"lr", "weight_decay", "epochs", "batch_size"} <= set(hp)
        assert on_disk["wall_time_s"] > 0


def test_same_seed_same_numbers(run_copy, fast):
    cfg = probe_config(kind="attentive", seed=3, **fast)
    first = _numbers(run_probe(run_copy, cfg))
    second = _numbers(run_probe(run_copy, cfg))
    assert first == second
    other = _numbers(run_probe(run_copy, probe_config(kind="attentive", seed=4, **fast)))
    assert other["hparams"]["grid"] != first["hparams"]["grid"]


def test_disk_cache_is_written_once_and_read_back(run_copy, fast, monkeypatch):
    cfg = probe_config(kind="linear", blocks="0-1", cache="disk", **fast)
    first = run_probe(run_copy, cfg)
    assert first["stream"] == {"cache": "disk", "ranks": 1} and first["feature_time_s"] > 0
    stores = sorted(str(p.relative_to(run_copy / "probe" / "cache"))
                    for p in (run_copy / "probe" / "cache").glob("*/*"))  # fmt: skip
    assert stores == [
        "step20_synthetic_test_n300/blocks0-1", "step20_synthetic_train_n600/blocks0-1"
    ]  # fmt: skip
    train_store = run_copy / "probe" / "cache" / stores[1]
    assert sorted(p.name for p in train_store.iterdir()) == [
        "meta.json",
        "shard_00000.f16",
        "shard_00000.ok",
    ]
    # fp16 [600 images, 16 tokens, width 32]
    assert (train_store / "shard_00000.f16").stat().st_size == 600 * 16 * 32 * 2

    def forbidden(*args, **kwargs):
        raise AssertionError("the trunk ran although every feature is on disk")

    monkeypatch.setattr(probe_module, "load_trunk", forbidden)
    again = run_probe(run_copy, cfg)
    assert _numbers(again) == _numbers(first) and again["feature_time_s"] == 0.0
    monkeypatch.undo()
    # the trunk every epoch (float32) against the fp16 store: the same probe within rounding
    fresh = run_probe(run_copy, probe_config(kind="linear", blocks="0-1", cache="none", **fast))
    assert fresh["stream"]["cache"] == "none"
    assert abs(fresh["top1"] - first["top1"]) <= 0.02


def test_temporary_cache_equals_none_and_is_removed(run_copy, fast):
    """cache=auto writes a temporary store (epochs > 1), reads it every epoch, deletes it."""
    auto = run_probe(run_copy, probe_config(kind="attentive", **fast))
    assert auto["stream"]["cache"] == "temporary"
    assert [p.name for p in (run_copy / "probe").iterdir()] == ["attentive_last.json"]
    none = run_probe(run_copy, probe_config(kind="attentive", cache="none", **fast))
    assert abs(auto["top1"] - none["top1"]) <= 0.02
    assert abs(auto["val_accuracy"] - none["val_accuracy"]) <= 0.04


def test_skip_existing_keeps_results_of_the_same_request(run_copy, fast, monkeypatch):
    from aimscale.probe.run import probe_run

    cfg = probe_config(kind="both", **fast)
    first = probe_run(run_copy, cfg)
    files = {p.name: p.stat().st_mtime_ns for p in (run_copy / "probe").glob("*.json")}
    assert sorted(files) == ["attentive_last.json", "linear_last.json"]

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished probe was computed again")

    monkeypatch.setattr(probe_module, "load_trunk", forbidden)
    assert probe_run(run_copy, cfg) == first  # nothing recomputed, nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in (run_copy / "probe").glob("*.json")} == files
    monkeypatch.undo()
    # another request under the same name (more epochs) is made again; the other result is kept
    (run_copy / "probe" / "linear_last.json").write_text("{torn")  # damaged: made again too
    redo = probe_run(run_copy, probe_config(kind="both", **{**fast, "epochs": 6}))
    assert [r["request"]["epochs"] for r in redo] == [6, 6]
    again = probe_run(run_copy, probe_config(kind="linear", **{**fast, "epochs": 6}))
    assert again == redo[1:]


def test_windows_average_the_right_blocks(trained_run):
    trunk = load_trunk(trained_run, 20, torch.device("cpu"))
    images = torch.randn(5, 3, 32, 32)
    windows = resolve_windows("all-windows", 3, size=2) + resolve_windows("0-2", 3)
    feats = extract_windows(trunk, images, windows, batch_size=2)
    with torch.no_grad():
        outputs = trunk.run_blocks(trunk.embed(images))
        for window, got in zip(windows, feats, strict=True):
            assert torch.equal(got, trunk.features(images, window.blocks))
            expected = sum(outputs[b] for b in window.blocks) / len(window.blocks)
            torch.testing.assert_close(got, expected)


def test_layer_sweep_writes_one_result_per_window(run_copy, fast):
    results = run_layer_sweep(run_copy, probe_config(kind="linear", **fast))
    assert [r["blocks"] for r in results] == [[0, 0], [1, 1], [2, 2]]
    for start in range(3):
        saved = json.loads((run_copy / "probe" / f"linear_blocks{start}-{start}.json").read_text())
        assert saved["blocks"] == [start, start] and saved["window"] == f"blocks{start}-{start}"
    # the last window of the sweep is the default probe's window: same features, same numbers
    last = run_probe(run_copy, probe_config(kind="linear", **fast))
    assert last["top1"] == results[-1]["top1"]


def test_probes_along_training(run_copy, fast):
    results = run_probes(run_copy, probe_config(kind="linear", fractions=[0.4, 0.5, 1.0], **fast))
    assert [r["name"] for r in results] == ["linear_last_step10", "linear_last_step20"]
    assert [r["step"] for r in results] == [10, 20]
    assert (run_copy / "probe" / "linear_last_step10.json").is_file()
    named = run_probe(run_copy, probe_config(kind="linear", checkpoint="10", name="early", **fast))
    assert named["step"] == 10 and (run_copy / "probe" / "early.json").is_file()


def test_cli_probe(run_copy, capsys):
    code = main([
        "probe", str(run_copy), "--dataset", "synthetic", "--kind", "linear", "--blocks", "best",
        "--lr", "0.01,0.03", "--wd", "0", "--epochs", "3", "--limit-train", "300",
        "--limit-test", "200", "--json",
    ])  # fmt: skip
    assert code == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["name"] == "linear_best" and result["blocks"] == [1, 1]
    assert [row["lr"] for row in result["hparams"]["grid"]] == [0.01, 0.03]
    assert (run_copy / "probe" / "linear_best.json").is_file()


def test_image_folder_dataset(run_copy, tmp_path):
    """ImageFolder layout root/{train,val}/<class>/<image>: reddish vs bluish noise images."""
    gen = np.random.default_rng(0)
    for split, count in (("train", 30), ("val", 10)):
        for c, name in enumerate(("red", "blue")):
            folder = tmp_path / "folder" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = gen.integers(0, 160, size=(40, 40, 3))
                pixels[..., 0 if c == 0 else 2] += 90
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    cfg = probe_config(kind="linear", dataset=f"image-folder:{tmp_path / 'folder'}",
                       limit_train=None, limit_test=None, epochs=5, batch_size=16)  # fmt: skip
    result = run_probe(run_copy, cfg)
    assert (result["num_train"] + result["num_val"], result["num_test"]) == (60, 20)
    assert result["num_classes"] == 2 and result["top1"] >= 0.9


def test_image_folder_of_any_size_streams_through_a_sharded_store(run_copy, tmp_path, monkeypatch):
    """Three classes of PNG files of mixed sizes and modes (RGB, greyscale), one corrupt file per
    split; streamed in batches of 16 through a disk store of 7-row shards: the corrupt images are
    left out (and counted nowhere), every other image is used once per epoch."""
    gen = np.random.default_rng(1)
    sizes = [(40, 40), (23, 57), (64, 31), (32, 32)]
    for split, count in (("train", 50), ("val", 15)):
        for c, name in enumerate(("red", "green", "blue")):
            folder = tmp_path / "folder" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                height, width = sizes[i % len(sizes)]
                pixels = gen.integers(0, 150, size=(height, width, 3))
                pixels[..., c] += 100
                image = Image.fromarray(pixels.astype(np.uint8))
                (image.convert("L") if i % 7 == 3 and c != 1 else image).save(folder / f"{i}.png")
            if c == 1:
                (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    monkeypatch.setenv("AIMSCALE_PROBE_SHARD_MB", str(7 * 16 * 32 * 2 / 2**20))
    cfg = probe_config(kind="both", dataset=f"image-folder:{tmp_path / 'folder'}", cache="disk",
                       limit_train=None, limit_test=None, epochs=4, batch_size=16)  # fmt: skip
    attentive, linear = run_probes(run_copy, cfg)
    store = run_copy / "probe" / "cache"
    train_store = next(store.glob("*_train_nall")) / "blocks2-2"
    assert len(list(train_store.glob("shard_*.f16"))) == -(-151 // 7)  # 150 images + 1 broken
    ok = np.concatenate([np.fromfile(p, np.uint8) for p in sorted(train_store.glob("*.ok"))])
    assert len(ok) == 151 and ok.sum() == 150
    for result in (attentive, linear):
        # 151 training files: the broken one falls in the fit or the validation part
        assert result["num_train"] + result["num_val"] in (150, 151)
        assert result["num_test"] == 45 and result["num_classes"] == 3
        assert result["top1"] >= 0.9, result
    again = run_probes(run_copy, cfg)  # from the store: the same numbers
    assert [_numbers(r) for r in again] == [_numbers(r) for r in (attentive, linear)]
