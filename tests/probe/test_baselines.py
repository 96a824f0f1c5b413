"""Probe baselines: raw pixels (patches, no trunk) and the untrained trunk (step 0), through the
same protocol; on a sweep, once per input, collected as their own rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aimscale.probe.config import ProbeError, probe_config
from aimscale.probe.features import PixelPatches, batch_windows, build_untrained_trunk
from aimscale.probe.run import feature_model, run_probes
from aimscale.probe.windows import Window


def test_pixel_features_are_the_patchified_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    windows = [Window(0, 0, "last"), Window(1, 1, "best")]
    feats = batch_windows(PixelPatches(4, torch.device("cpu")), images, windows)
    assert feats.shape == (2, 2, 4, 48)  # [windows, B, K = (8/4)², C·p·p]
    # token k of image b = patch (row k // 2, col k % 2), values in (C, p, p) order
    for k, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        patch = images[1, :, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4].reshape(-1)
        assert torch.equal(feats[0, 1, k], patch)
    assert torch.equal(feats[0], feats[1])


def test_feature_model_of_pixels_is_the_token_width():
    from aimscale.model.config import ModelConfig

    model = ModelConfig(image_size=28, patch_size=4, channels=1, width=96, heads=6)
    pixels = feature_model("pixels", model)
    assert (pixels.width, pixels.heads, pixels.num_patches) == (16, 2, 49)  # gcd(6, 16) = 2
    assert feature_model("untrained", model) is model


def test_untrained_trunk_equals_the_trainer_at_step_0(tmp_path):
    from aimscale.config import compose
    from aimscale.probe.run import _alone
    from aimscale.train.loop import _Trainer

    cfg = compose(["data=synthetic", "data.num_images=64", "model.width=32", "model.heads=2",
                   "model.depth=2", "model.head_width=32", "model.head_depth=1",
                   "train.seed=3", "train.eval_images=0", f"run_dir={tmp_path}"])
    trainer = _Trainer(cfg, tmp_path, _alone(torch.device("cpu")), None)
    trainer._build()
    state = trainer.model.trunk.state_dict()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    same = build_untrained_trunk(cfg.model, 3, torch.device("cpu")).state_dict()
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is untouched
    other = build_untrained_trunk(cfg.model, 4, torch.device("cpu")).state_dict()
    assert state.keys() == same.keys()
    assert all(torch.equal(state[k], same[k]) for k in state)
    assert not all(torch.equal(state[k], other[k]) for k in state)


def test_baseline_configs_are_checked():
    assert probe_config(features="pixels").features == "pixels"
    for bad, words in ((dict(features="raw"), "features='raw'"),
                       (dict(features="pixels", kind="lora"), "LoRA"),
                       (dict(features="untrained", checkpoint="10"), "no checkpoint"),
                       (dict(features="pixels", blocks="all-windows"), "no blocks")):
        with pytest.raises(ProbeError, match=words):
            probe_config(bad)


def test_baselines_need_no_checkpoint_and_are_named_apart(run_copy, fast):
    for path in (run_copy / "checkpoints").glob("*"):
        path.unlink()  # a baseline reads config.yaml only
    results = run_probes(run_copy, dict(fast, kind="both", features="untrained", epochs=2))
    names = sorted(r["name"] for r in results)
    assert names == ["untrained_attentive_last", "untrained_linear_last"]
    assert all(r["features"] == "untrained" and r["step"] == 0 for r in results)
    assert all((run_copy / "probe" / f"{n}.json").is_file() for n in names)


def _fashion_run(tmp_path: Path) -> Path:
    """A run directory with only the config of an aim-tiny Fashion-MNIST run."""
    from aimscale.config import compose, to_yaml
    from aimscale.data import DataError
    from aimscale.data.fetch import locate_idx_dir

    try:
        locate_idx_dir("fashion-mnist")
    except DataError as err:
        pytest.skip(f"Fashion-MNIST not available: {err}")
    run_dir = tmp_path / "sweep" / "owner"
    run_dir.mkdir(parents=True)
    cfg = compose(["model.width=32", "model.heads=2", "model.depth=1", f"run_dir={run_dir}"])
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    return run_dir


def test_pixel_baseline_on_fashion_mnist_is_collected_as_its_own_row(tmp_path):
    """Linear on raw Fashion-MNIST pixels: commonly reported in the 0.8s (here 2,000 training
    images, 5 epochs: 0.799 when written); the attentive probe sees a bag of patches."""
    from aimscale.sweep.baselines import run_baseline_probe
    from aimscale.sweep.collect import collect
    from aimscale.sweep.manifest import new_manifest, write_manifest

    owner = _fashion_run(tmp_path)
    sweep_dir = owner.parent
    manifest = new_manifest("fm", {})
    manifest["runs"]["owner"] = {"run_dir": str(owner)}
    write_manifest(sweep_dir, manifest)
    probe = {"kind": "both", "epochs": 5, "limit_train": 2000, "limit_test": 1000,
             "features": "pixels",
             "baseline": {"id": "pixels-i28-p4-c1", "features": "pixels", "owner": "owner",
                          "key": {}, "dir": str(sweep_dir / "baselines" / "pixels-i28-p4-c1")}}
    attentive, linear = run_baseline_probe(owner, probe)
    assert 0.75 <= linear["top1"] <= 0.9, linear["top1"]
    assert 0.2 <= attentive["top1"] < linear["top1"]
    assert linear["num_test"] == 1000 and linear["blocks"] is None
    assert run_baseline_probe(sweep_dir / "not-the-owner", probe) == []
    runs, _ = collect(sweep_dir, with_state=False)
    row = runs.set_index("run_id").loc["pixels-i28-p4-c1"]
    assert (row["features"], row["status"], row["baseline_owner"]) == ("pixels", "baseline",
                                                                       "owner")
    assert row["probe.linear_last.top1"] == linear["top1"]
    assert pd_isna(row["model.width"])  # the owner's shape is not the baseline's
    assert runs.set_index("run_id").loc["owner", "features"] == "trunk"


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


PROBE = {"kind": "both", "dataset": "synthetic", "limit_train": 200, "limit_test": 100,
         "epochs": 1, "batch_size": 64}
LAYERS = {**PROBE, "kind": "linear", "blocks": "all-windows", "window_size": 1}


def _baseline_plan(tmp_path: Path):
    """4 runs (2 widths × 2 data sizes) with probes and `baselines: [pixels, untrained]`."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "sweep"))
    from sweep_helpers import TINY_BASE, write_spec

    from aimscale.sweep.plan import build_plan
    from aimscale.sweep.spec import load_spec

    base = {**TINY_BASE, "train": {**TINY_BASE["train"], "steps": 2, "eval_every": 2,
                                   "checkpoint_every": 2}}
    spec = write_spec(tmp_path / "s.yaml", "bl", tmp_path / "sweep", base=base,
                      grid={"model.width": "16,32", "data.num_images": "128,256"},
                      probe=[PROBE, LAYERS], baselines=["pixels", "untrained"])
    return build_plan(load_spec(spec)), base, write_spec


def test_a_sweep_plans_each_baseline_once(tmp_path):
    """One pixels baseline per patch shape, one untrained trunk per model config and seed, each
    owned by one run; layer sweeps are not repeated; bad `baselines:` entries are refused."""
    from aimscale.config import ConfigError
    from aimscale.sweep.plan import build_plan
    from aimscale.sweep.spec import load_spec

    plan, base, write_spec = _baseline_plan(tmp_path)
    kinds = sorted((b.features, b.owner) for b in plan.baselines)
    assert [k for k, _ in kinds] == ["pixels", "untrained", "untrained"]  # 4 runs, 2 widths
    assert len({owner for _, owner in kinds}) == 2
    assert {owner for _, owner in kinds} <= {run.run_id for run in plan.runs}
    assert all(len(b.probes) == 1 and b.probes[0]["kind"] == "both" for b in plan.baselines)
    marked = [p for p in plan.job_probes() if "baseline" in p]
    assert len(marked) == 3 and len(plan.job_probes()) == 5
    assert all(p["features"] == p["baseline"]["features"] for p in marked)
    assert json.loads(json.dumps(plan.to_json()))["baselines"][0]["features"] == "pixels"

    bad = write_spec(tmp_path / "b.yaml", "b", tmp_path / "b", base=base, baselines=["raw"])
    with pytest.raises(ConfigError, match="baselines: 'raw'"):
        build_plan(load_spec(bad))
    none = write_spec(tmp_path / "n.yaml", "n", tmp_path / "n", base=base, probe=[LAYERS],
                      baselines=["pixels"])
    with pytest.raises(ConfigError, match="no `probe:` entry to repeat"):
        build_plan(load_spec(none))


@pytest.mark.slow
def test_a_sweep_pays_for_each_baseline_once(tmp_path):
    """Launched (debug executor): only the owner jobs compute the baselines; collected as rows;
    reported beside the trained runs (about 35 s)."""
    from aimscale.sweep.collect import collect
    from aimscale.sweep.launch import launch

    plan, _, _ = _baseline_plan(tmp_path)
    launch(plan, executor="debug")
    runs, _ = collect(tmp_path / "sweep")
    by = runs.groupby("features")["run_id"].count().to_dict()
    assert by == {"trunk": 4, "pixels": 1, "untrained": 2}
    base_rows = runs[runs["features"] != "trunk"]
    assert np.isfinite(base_rows["probe.attentive_last.top1"].astype(float)).all()
    untrained = base_rows[base_rows["features"] == "untrained"]
    assert sorted(untrained["model.width"].astype(int)) == [16, 32]

    from analysis.report import ReportOptions, build_report

    build_report(runs, None, tmp_path / "report", ReportOptions(strict=True, bootstrap=20))
    summary = json.loads((tmp_path / "report" / "report.json").read_text())
    added = summary["baselines"]["probes"]["probe.attentive_last.top1"]
    trained = runs[runs["features"] == "trunk"]["probe.attentive_last.top1"].astype(float)
    assert added["trained_best"] == pytest.approx(trained.max())
    assert added["pixels"] == pytest.approx(
        float(base_rows[base_rows["features"] == "pixels"]["probe.attentive_last.top1"].iloc[0]))
    assert len(added["per_size"]) == 2
    assert summary["n_rows_in_table"] == 4  # baseline rows are not runs of the other sections
    dirs = sorted(p.name for p in (tmp_path / "sweep" / "baselines").iterdir())
    assert dirs == sorted(b.id for b in plan.baselines)
