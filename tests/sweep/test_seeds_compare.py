"""`seeds:` and `compare:` in a spec; collect keeps seeds as rows; the report collects a missing
or stale table and compares the spec's factor (no training: results are written by hand into
run directories of a real plan, then read by the real collect and report)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sweep_helpers import ROOT, TINY_BASE, aimscale, write_spec

from aimscale.config import ConfigError
from aimscale.sweep.ablation import SEED_KEY, sweep_compare
from aimscale.sweep.manifest import new_manifest, write_manifest
from aimscale.sweep.plan import build_plan
from aimscale.sweep.spec import load_spec, parse_spec

GRID = {"model.attention": "prefix,causal"}


def spec_of(tmp_path, cli=(), **sections):
    return parse_spec({"name": "t", "sweep_dir": str(tmp_path / "s"), "base": TINY_BASE,
                       **sections}, list(cli))


def problems_of(tmp_path, **sections) -> str:
    with pytest.raises(ConfigError) as err:
        spec_of(tmp_path, **sections)
    return "\n".join(err.value.problems)


def test_seeds_give_one_run_per_seed_differing_only_in_the_seed(tmp_path):
    plan = build_plan(spec_of(tmp_path, grid=GRID, seeds=3))
    assert len(plan.runs) == 6
    assert sorted((r.cfg.model.attention, r.cfg.train.seed) for r in plan.runs) == [
        ("causal", 0), ("causal", 1), ("causal", 2), ("prefix", 0), ("prefix", 1), ("prefix", 2)]
    ids = [r.run_id for r in plan.runs]
    assert len(set(ids)) == 6 and ids[0].startswith("attentionprefix-seed0-")
    _, diffs = plan.flat_configs()
    prefix = [diffs[r.run_id] for r in plan.runs if r.cfg.model.attention == "prefix"]
    keys = {k for d in prefix for k in d} - {"run_dir", "sweep_name"}  # paths, not results
    assert keys == {SEED_KEY}  # replicates differ only in the seed
    listed = build_plan(spec_of(tmp_path, seeds=[3, 7]))
    assert [r.cfg.train.seed for r in listed.runs] == [3, 7]


def test_command_line_seed_sweep_replaces_seeds_and_a_plain_seed_is_refused(tmp_path):
    spec = spec_of(tmp_path, cli=[f"{SEED_KEY}=5,6"], seeds=3)
    assert [a.values for a in spec.axes if a.key == SEED_KEY] == [("5", "6")]
    with pytest.raises(ConfigError, match="command line sets train.seed"):
        spec_of(tmp_path, cli=[f"{SEED_KEY}=5"], seeds=3)


@pytest.mark.parametrize("sections, expected", [
    ({"seeds": 0}, "seeds: 0 is not a count"),
    ({"seeds": "three"}, "expected a count"),
    ({"seeds": True}, "expected a count"),
    ({"seeds": [1, 1]}, "repeats a seed"),
    ({"seeds": [1, -2]}, "non-negative integers"),
    ({"seeds": 2, "grid": {SEED_KEY: "0,1"}}, "also varies train.seed"),
    ({"grid": GRID, "compare": {"factor": "model.width"}}, "'model.width' is not varied"),
    ({"grid": GRID, "compare": {"factor": "model.attention", "baseline": "bidir"}},
     "'bidir' is not a value of model.attention; use one of prefix, causal"),
    ({"grid": GRID, "compare": "model.attention"}, "expected {factor: KEY"),
    ({"grid": GRID, "compare": {"factor": "model.attention", "base": "x"}}, "unknown key"),
    ({"seeds": 2, "compare": {"factor": SEED_KEY}}, "is not varied by the spec"),
])
def test_bad_seeds_and_compare_are_named(tmp_path, sections, expected):
    assert expected in problems_of(tmp_path, **sections)


def test_bad_seeds_exit_2_from_plan_with_every_problem(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", "bad", tmp_path / "s", grid=GRID, seeds=-1,
                      compare={"factor": "model.attention", "baseline": "none"})
    out = aimscale("plan", str(spec), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "seeds: -1" in out.stderr and "compare.baseline 'none'" in out.stderr


def test_compare_accepts_variants_and_numeric_baselines(tmp_path):
    spec = spec_of(tmp_path, variants={"a": [], "b": ["model.attention=causal"]},
                   compare={"factor": "variant", "baseline": "a"})
    assert spec.compare.to_dict() == {"factor": "variant", "baseline": "a"}
    spec = spec_of(tmp_path, grid={"data.crop_scale_min": "0.4,1.0"},
                   compare={"factor": "data.crop_scale_min", "baseline": 0.4})
    assert spec.compare.baseline == "0.4"


def test_shipped_ablation_specs_run_three_seeds_and_name_a_valid_baseline():
    specs = sorted((ROOT / "sweeps" / "ablations").glob("*.yaml"))
    assert len(specs) >= 6
    for path in specs:
        spec = load_spec(path)
        assert spec.compare is not None and spec.compare.baseline is not None, path
        seeds = [a for a in spec.axes if a.key == SEED_KEY]
        assert seeds and len(seeds[0].values) >= 3, path


# ---- collect and report on a sweep directory with hand-written results --------------------

LOSS = {"prefix": 0.60, "causal": 0.66}  # a real effect in the loss (10%) ...
TOP1 = {"prefix": [0.80, 0.82, 0.81], "causal": [0.815, 0.805, 0.812]}  # ... none in top-1
LOG_NOISE = [-0.01, 0.0, 0.01]  # per seed: the within-point std of log loss is exactly 0.01


def fake_sweep(tmp_path: Path, grid=GRID, compare=None) -> Path:
    """A sweep directory as `launch` leaves it (manifest from the real plan), with each run's
    summary.json and probe result written by hand."""
    extra = {"compare": compare} if compare else {}
    spec = spec_of(tmp_path, grid=grid, seeds=3, **extra)
    plan = build_plan(spec)
    sweep_dir = Path(spec.sweep_dir)
    manifest = new_manifest(spec.name, spec.raw)
    base, diffs = plan.flat_configs()
    manifest["base_config"] = base
    for run in plan.runs:
        run_dir = sweep_dir / run.run_id
        manifest["runs"][run.run_id] = {**run.summary(), "run_dir": str(run_dir),
                                        "config": diffs[run.run_id], "attempts": []}
        att, seed = run.cfg.model.attention, run.cfg.train.seed
        (run_dir / "probe").mkdir(parents=True)
        loss = LOSS[att] * float(np.exp(LOG_NOISE[seed]))
        (run_dir / "summary.json").write_text(json.dumps({
            "status": "done", "final_loss": loss, "final_val_loss": loss,
            "trunk_params": run.trunk_params, "images_seen": run.images_seen,
            "total_flops": run.total_flops}))
        (run_dir / "probe" / "linear_last.json").write_text(json.dumps({"top1": TOP1[att][seed]}))
    write_manifest(sweep_dir, manifest)
    return sweep_dir


def test_collect_keeps_seeds_as_rows(tmp_path):
    sweep_dir = fake_sweep(tmp_path)
    aimscale("collect", str(sweep_dir))
    runs = pd.read_csv(sweep_dir / "collect" / "runs.csv")
    assert len(runs) == 6 and runs["run_id"].nunique() == 6
    assert (runs["seed"] == runs[SEED_KEY]).all()
    assert sorted(runs.groupby("model.attention")["seed"].apply(sorted)) == [[0, 1, 2]] * 2
    assert set(runs["status"]) == {"done"}


def test_report_collects_then_compares_the_spec_factor(tmp_path, capsys):
    from aimscale.report import write_report

    sweep_dir = fake_sweep(tmp_path, compare={"factor": "model.attention", "baseline": "prefix"})
    write_report(sweep_dir, bootstrap=10, n_jobs=1)
    assert "no runs table yet: collected it" in capsys.readouterr().err
    summary = json.loads((sweep_dir / "report" / "report.json").read_text())
    noise = summary["replicates"]["noise"]
    assert noise["sigma"] == pytest.approx(0.01, rel=1e-6) and noise["dof"] == 4
    assert summary["replicates"]["points"] == 2
    abl = summary["ablations"]
    assert abl["factor"] == "model.attention"
    loss = {r["variant"]: r for r in abl["tables"]["final_val_loss"]["table"]}
    assert loss["prefix"]["baseline"] and loss["prefix"]["n"] == 3
    assert loss["causal"]["diff"] == pytest.approx(0.06 * np.mean(np.exp(LOG_NOISE)), rel=1e-6)
    assert loss["causal"]["resolved"] is True and loss["causal"]["diff_lo"] > 0
    top1 = {r["variant"]: r for r in abl["tables"]["probe.linear_last.top1"]["table"]}
    assert top1["causal"]["diff"] == pytest.approx(np.mean(TOP1["causal"]) - 0.81)
    assert top1["causal"]["resolved"] is False
    assert top1["causal"]["diff_lo"] < 0 < top1["causal"]["diff_hi"]
    text = (sweep_dir / "report" / "report.md").read_text()
    assert "## Ablations" in text and "not resolved: the interval contains 0" in text
    assert "Skipped: no 'variant'" not in text

    # a probe result newer than the table: collected again, with the new value
    probe = next(sweep_dir.glob("attentioncausal-seed0-*/probe/linear_last.json"))
    probe.write_text(json.dumps({"top1": 0.5}))
    # an hour ahead (clock skew between nodes): collected once, not on every later report
    later = os.stat(sweep_dir / "collect" / "runs.csv").st_mtime_ns + 3600 * 10**9
    os.utime(probe, ns=(later, later))
    write_report(sweep_dir, bootstrap=10, n_jobs=1)
    assert "older than" in capsys.readouterr().err
    runs = pd.read_csv(sweep_dir / "collect" / "runs.csv")
    assert runs["probe.linear_last.top1"].min() == 0.5
    write_report(sweep_dir, bootstrap=10, n_jobs=1)  # fresh now: not collected again
    assert "collected" not in capsys.readouterr().err


def test_sweep_compare_falls_back_to_the_one_varied_axis(tmp_path):
    sweep_dir = fake_sweep(tmp_path)
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert sweep_compare(manifest).to_dict() == {"factor": "model.attention", "baseline": None}
    manifest["runs"]["x"] = {"axes": {"model.width": "64"}}
    assert sweep_compare(manifest) is None  # two axes besides the seed: the report decides


@pytest.mark.slow
def test_launched_tiny_ablation_reports_a_comparison(tmp_path):
    """As a user would: launch a 2-value x 3-seed ablation on the local executor, then `report`
    straight away (no `collect`): the table is collected and the Ablations section compares the
    spec's factor against its baseline. About 2-3 minutes on 2 busy cores."""
    from sweep_helpers import wait_all_terminal

    sweep_dir = tmp_path / "sweep"
    probe = {"kind": "linear", "dataset": "synthetic", "blocks": "last", "epochs": 2,
             "limit_train": 200, "limit_test": 100, "lrs": [0.01], "weight_decays": [0.0],
             "batch_size": 64}
    spec = write_spec(tmp_path / "abl.yaml", "abl", sweep_dir, grid=GRID, seeds=3,
                      compare={"factor": "model.attention", "baseline": "prefix"},
                      probe=[probe], local={"max_parallel": 2})
    aimscale("launch", str(spec), "--executor", "local")
    st = wait_all_terminal(sweep_dir, timeout=900)
    assert st["counts"]["done"] == 6, st
    out = aimscale("report", str(sweep_dir), "--bootstrap", "10", "--jobs", "1", timeout=600)
    assert "no runs table yet: collected it" in out.stderr
    runs = pd.read_csv(sweep_dir / "collect" / "runs.csv")
    assert len(runs) == 6 and sorted(runs["seed"]) == [0, 0, 1, 1, 2, 2]
    summary = json.loads((sweep_dir / "report" / "report.json").read_text())
    noise = summary["replicates"]["noise"]
    assert noise["dof"] == 4 and noise["sigma"] > 0
    abl = summary["ablations"]
    assert abl["factor"] == "model.attention"
    for metric in ("final_val_loss", "probe.linear_last.top1"):
        table = abl["tables"][metric]["table"]
        assert [(r["variant"], r["n"]) for r in table] == [("prefix", 3), ("causal", 3)]
        assert table[1]["diff_lo"] <= table[1]["diff"] <= table[1]["diff_hi"]
        assert table[1]["resolved"] in (True, False)
        assert len(abl["tables"][metric]["verdicts"]) == 1
