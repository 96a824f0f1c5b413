"""The main job end to end: reduced (a tiny scaling sweep and a tiny ablation from a clean
directory, then a rerun) in the default suite; the shipped demo and its targets under `-m slow`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aimscale.data.fetch import find

TINY_DEMO = """
name: tiny-demo
base:
  model: {preset: aim-tiny, head_width: 32, head_depth: 1, depth: 1}
  data: {preset: fashion-mnist, val_images: 200, num_images: 640}
  train: {batch_size: 16, log_every: 5, eval_every: 10, eval_images: 64, checkpoint_every: 20}
  logging: {progress: none}
zip:
  - {model.width: [16, 32, 48], model.heads: [2, 2, 2]}
grid:
  train.steps: 10,20,40
probe:
  - {kind: both, dataset: fashion-mnist, epochs: 2, limit_train: 300, limit_test: 200,
     lrs: [0.01, 0.03], weight_decays: [0.0]}
baselines: [pixels]
local: {max_parallel: 2}
"""
TINY_ABLATION = """
name: tiny-ablation
base:
  model: {preset: aim-tiny, head_width: 32, head_depth: 1, depth: 1, width: 16, heads: 2}
  data: {preset: fashion-mnist, val_images: 200}
  train: {batch_size: 16, steps: 10, log_every: 5, eval_every: 10, eval_images: 64}
  logging: {progress: none}
grid:
  model.attention: prefix,causal
seeds: 3
compare: {factor: model.attention, baseline: prefix}
probe:
  - {kind: attentive, dataset: fashion-mnist, epochs: 1, limit_train: 200, limit_test: 100,
     lrs: [0.03], weight_decays: [0.0]}
local: {max_parallel: 2}
"""

pytestmark = pytest.mark.skipif(
    find("fashion-mnist") is None, reason="Fashion-MNIST not found: run `aimscale data fetch`"
)


def _demo(tmp_path: Path, *args: str, timeout: float = 600) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(  # --strict: a report section that crashes fails the demo (exit 1)
        [sys.executable, "-m", "aimscale", "demo", "--poll", "0.5", "--strict", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


TINY_ARGS = ("--spec", "tiny.yaml", "--ablation-spec", "tiny-ablation.yaml", "--sweep-dir",
             "runs", "--bootstrap", "50")


def test_reduced_demo_end_to_end(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_DEMO)
    (tmp_path / "tiny-ablation.yaml").write_text(TINY_ABLATION)
    out = _demo(tmp_path, *TINY_ARGS)
    sweep = tmp_path / "runs"
    assert "9 runs, 9 to train" in out
    assert re.search(r"15/15 runs done; wall time \d+ s", out)

    table = pd.read_csv(sweep / "collect" / "runs.csv")
    pixels = table[table["features"] == "pixels"]  # the raw-pixel baseline, probed once
    assert len(pixels) == 1 and pixels["probe.linear_last.top1"].between(0.3, 1.0).all()
    assert "What pre-training adds" in (sweep / "report" / "report.md").read_text()
    runs = table[table["features"] == "trunk"]
    assert len(runs) == 9 and set(runs["status"]) == {"done"}
    assert runs["probe.attentive_last.top1"].between(0.0, 1.0).all()
    assert runs["probe.linear_last.top1"].notna().all()
    curves = pd.read_csv(sweep / "collect" / "curves.csv")
    assert set(curves["run_id"]) == set(runs["run_id"])
    for run_id in runs["run_id"]:
        assert (sweep / run_id / "summary.json").is_file()
        assert {p.name for p in (sweep / run_id / "probe").glob("*.json")} >= {
            "attentive_last.json", "linear_last.json"}

    report = sweep / "report" / "report.html"
    html = report.read_text()
    figures = sorted((sweep / "report" / "figures").glob("*.png"))
    assert len(figures) >= 4
    for png in figures:
        with Image.open(png) as image:
            image.verify()  # a real PNG, not an empty file
        with Image.open(png) as image:
            assert min(image.size) > 100
        # self-contained page: every figure is embedded (by name in its alt text or inline)
        assert png.stem in html

    # the study's verdict: every figure as in the reports, each target checked
    summary = json.loads((sweep / "demo.json").read_text())
    scaling = json.loads((sweep / "report" / "report.json").read_text())
    assert summary["joint"]["E"]["value"] == scaling["joint"]["fit"]["params"]["E"]
    assert summary["backtest"]["mape"] == scaling["backtest"]["mape"]
    assert summary["spearman_loss_top1"] == scaling["downstream"]["correlation"]["spearman"]
    assert set(summary["targets"]) >= {"floor_E", "alpha_interval", "beta_interval", "mape",
                                       "held_out_runs", "compute_ratio", "coverage", "spearman",
                                       "ablation_seeds"}
    # the backtest predicts the largest-compute runs from the smaller ones
    held = {p["split"] for p in scaling["backtest"]["predictions"]}
    flops = set(runs["total_flops"])
    assert held and max(flops - held) < min(held)
    # the ablation: causal against the prefix baseline, 3 seeds each, with an interval
    ablation = summary["ablation"]
    assert (ablation["factor"], ablation["baseline"]) == ("model.attention", "prefix")
    (causal,) = ablation["comparisons"]
    assert causal["variant"] == "causal" and causal["n"] == 3
    assert causal["diff_lo"] <= causal["diff"] <= causal["diff_hi"]
    assert causal["agrees_with_paper"].split()[0] in ("agrees", "disagrees")
    assert "[demo] ablation model.attention: causal - prefix" in out
    abl_runs = pd.read_csv(tmp_path / "runs-ablation" / "collect" / "runs.csv")
    assert len(abl_runs) == 6 and sorted(abl_runs["train.seed"]) == [0, 0, 1, 1, 2, 2]
    # the ablation's scheduler started once the scaling sweep's last training task had, while
    # that task still ran: its runs fill the slots the scaling sweep's tail leaves idle
    main, abl = ([json.loads(f.read_text()) for f in (tmp_path / d / "local").glob(
        "scheduler-*.json")] for d in ("runs", "runs-ablation"))
    (main,), (abl,) = main, abl
    tasks = main["runs"].values()
    last_start = max(r["submitted_at"] for r in tasks)
    assert last_start <= abl["started_at"] < max(r["finished_at"] for r in tasks)

    again = _demo(tmp_path, *TINY_ARGS)  # finished runs are reused; only collect and report
    assert "9 runs, 0 to train, 9 already done" in again  # are redone, for both sweeps
    assert again.count("0 to train") == 2


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the shipped design misses 2 targets (last run: beta "
                   "[0.35, 1.47], Spearman -0.82; README, 'The demo study'); remove this mark "
                   "when a design meets them")
def test_shipped_demo_meets_its_targets(tmp_path):
    """The shipped demo from a clean directory: the law, the backtest, the probe correlation
    and the ablation meet the targets of `demo.json` (the README's design)."""
    out = _demo(tmp_path, "--sweep-dir", "runs", timeout=3600)
    summary = json.loads((tmp_path / "runs" / "demo.json").read_text())
    missed = {k: v for k, v in summary["targets"].items() if not v["met"]}
    assert not missed, (missed, out[-3000:])


def test_shipped_demo_design():
    """The shipped study as planned (no training): 24 results from 8 trunks (cooldown branches
    of per-width data sizes); the report's backtest holds out exactly the 4 largest, each >= 4x
    the compute of any fitted run; the LR follows the width; the ablation is 3 seeds of each
    attention at one size."""
    from aimscale.demo import DEFAULT_ABLATION, DEFAULT_SPEC, _plan, task_costs
    from analysis.report.backtest import threshold

    plan = _plan(str(DEFAULT_SPEC), [], None)
    flops = np.array([r.total_flops for r in plan.runs])
    n = np.array([r.trunk_params for r in plan.runs], dtype=float)
    d = np.array([r.images_seen for r in plan.runs], dtype=float)
    assert len(plan.runs) == 24
    trunks = [r for r in plan.runs if r.branch_of is None]
    assert sorted(r.cfg.model.width for r in trunks) == [8, 12, 16, 24, 32, 48, 64, 96]
    # queued longest task first by CPU time, not FLOPs: the 2,400-step width-8 family (the
    # fewest FLOPs) goes before the 600-step width-48 one, which fills the last slot
    cost = task_costs(plan.runs)
    order = [cost[r.branch_of or r.run_id] for r in plan.runs]
    assert order == sorted(order, reverse=True)
    assert [r.cfg.model.width for r in trunks][0] == 96
    assert [r.cfg.model.width for r in trunks][-1] == 48
    width8 = next(r.run_id for r in trunks if r.cfg.model.width == 8)
    assert cost[width8] > 3 * cost[trunks[-1].run_id]
    thr = threshold(flops, need=6, distinct=(n, d))  # as the report's backtest section picks it
    held = flops[flops > thr]
    assert len(held) == 4 and held.min() >= 4 * flops[flops <= thr].max()
    assert {r.cfg.model.width for r in plan.runs if r.total_flops > thr} == {64, 96}
    lr = {r.cfg.model.width: r.cfg.optim.lr for r in plan.runs}
    assert lr[48] == pytest.approx(8e-3) and lr[8] > lr[48] > lr[96]
    ablation = _plan(str(DEFAULT_ABLATION), [], None)
    assert sorted((r.cfg.model.attention, r.cfg.train.seed) for r in ablation.runs) == [
        ("causal", 0), ("causal", 1), ("causal", 2), ("prefix", 0), ("prefix", 1), ("prefix", 2)]
    assert {r.cfg.model.width for r in ablation.runs} == {32}


def test_demo_checks_both_specs_before_launching(tmp_path):
    """A bad ablation spec is refused (exit 2) before the scaling sweep is launched."""
    (tmp_path / "tiny.yaml").write_text(TINY_DEMO)
    proc = subprocess.run(
        [sys.executable, "-m", "aimscale", "demo", "--spec", "tiny.yaml", "--ablation-spec",
         "missing.yaml", "--sweep-dir", "runs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_launch_that_fails_at_run_time_exits_1_not_2(tmp_path):
    """Another launch holds the sweep (a run-time condition, not bad input): exit 1, as
    `aimscale launch` does, with its message."""
    from aimscale.sweep.manifest import launch_lock

    (tmp_path / "tiny.yaml").write_text(TINY_DEMO)
    with launch_lock(tmp_path / "runs"):
        proc = subprocess.run(
            [sys.executable, "-m", "aimscale", "demo", "--spec", "tiny.yaml", "--ablation-spec",
             "none", "--sweep-dir", "runs"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 1, proc.stderr
    assert "another `aimscale launch` is submitting" in proc.stderr
    assert "Traceback" not in proc.stderr
