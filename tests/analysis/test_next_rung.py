"""`aimscale next`: from a collected sweep with a known law to the next rung's spec, which
`aimscale plan` reads unchanged and whose predictions are those of the fitted law."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import fake_sweep
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = {"model": {"preset": "aim-tiny"}, "data": {"preset": "synthetic"},
        "train": {"batch_size": 64, "device": "cpu"}}


def _aimscale(*args):
    return subprocess.run([sys.executable, "-m", "aimscale", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = fake_sweep.write_sweep(tmp_path_factory.mktemp("next") / "sw", widths=(64, 96, 128, 160),
                                  depths=(2, 4), images=(20_000, 60_000, 180_000))
    spec = {"name": "fake", "sweep_dir": str(root), "base": BASE,
            "grid": {"model.width": [64, 96, 128, 160]}}
    (root / "sweep.json").write_text(json.dumps({"name": "fake", "spec": spec, "runs": {}}))
    return root


def test_next_writes_a_spec_that_plan_reads_and_that_spends_the_budget(sweep):
    out = _aimscale("next", str(sweep), "--budget", "1e15", "--target-flops", "3e15",
                   "--bootstrap", "20")
    assert out.returncode == 0, out.stderr
    path = sweep / "next.yaml"
    spec = yaml.safe_load(path.read_text())
    assert spec["name"] == "fake_next" and "grid" not in spec and len(spec["variants"]) == 3
    plan = _aimscale("plan", str(path), "--json")
    assert plan.returncode == 0, plan.stderr
    runs = json.loads(plan.stdout)["runs"]
    total = sum(r["total_flops"] for r in runs)
    assert 0.97e15 <= total <= 1e15  # the planner's own FLOPs, head and attention included
    params = sorted(r["trunk_params"] for r in runs)
    assert all(1.4 < b / a < 2.9 for a, b in zip(params, params[1:], strict=False))  # ×2 steps
    for run in runs:
        assert run["total_flops"] == pytest.approx(1e15 / 3, rel=0.03)


def test_the_prediction_at_the_target_is_the_fitted_law_and_brackets_the_truth(sweep):
    from aimscale.next_rung import next_rung

    out = next_rung(sweep, 1e15, 3e15, bootstrap=100)
    t = out["target"]
    truth = fake_sweep.law(t["n_opt"], t["d_opt"])
    assert t["loss"] == pytest.approx(truth, rel=0.03)
    lo, hi = t["loss_ci"]
    assert lo < truth < hi and lo < t["loss"] < hi
    assert t["probe"] == "probe.attentive_last.top1" and 0.1 < t["accuracy"] <= 1.0
    assert t["accuracy_ci"][0] <= t["accuracy"] <= t["accuracy_ci"][1]
    for run in out["runs"]:  # each run's comment is the law at its own (N, D)
        assert run["loss_ci"][0] < run["loss"] < run["loss_ci"][1]
    text = "\n".join(out["comments"])
    assert f"predicted loss {t['loss']:.4g}" in text and "probe.attentive_last.top1" in text


def test_bad_input_exits_2_and_writes_nothing(tmp_path, sweep, capsys):
    from aimscale.cli import main

    assert main(["next", str(tmp_path), "--budget", "1e15"]) == 2
    assert "run `aimscale collect" in capsys.readouterr().err
    assert main(["next", str(sweep), "--budget", "-5", "-o", str(tmp_path / "x.yaml")]) == 2
    assert "--budget" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_width_for_picks_the_nearest_multiple_of_the_head_dim():
    from aimscale.next_rung import width_for
    from analysis.frontier import trunk_params

    for target in (3e5, 1e6, 4e6):
        w = width_for(target, 4, 32, 4, 1)
        assert w % 32 == 0
        def err(width, target=target):
            return abs(math.log(trunk_params(width, 4, 4, 1) / target))

        assert err(w) <= min(err(w - 32), err(w + 32))
