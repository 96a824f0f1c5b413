"""The demo's verdict (aimscale/demo_summary.py) on report JSONs written here."""

from __future__ import annotations

import json

from aimscale.demo_summary import lines, summarise


def _scaling(tmp_path, **over):
    report = {
        "joint": {"fit": {"params": {"E": 0.30, "A": 2.0, "B": 5.0, "alpha": 0.40, "beta": 0.30},
                          "ci": {"E": [0.28, 0.32], "alpha": [0.30, 0.55], "beta": [0.2, 0.4]},
                          "r2_log": 0.99}},
        "backtest": {"n_train": 16, "n_test": 5, "mape": 1.2, "coverage": 0.8, "level": 0.95,
                     "threshold": 1.0e11, "holdout_column": "total_flops",
                     "predictions": [{"split": s} for s in (5e11, 6e11, 8e11, 1e12, 2e12)]},
        "downstream": {"correlation": {"spearman": -0.95}},
    }
    for path, value in over.items():
        node = report
        *keys, last = path.split(".")
        for k in keys:
            node = node[k]
        node[last] = value
    d = tmp_path / "scaling"
    (d / "report").mkdir(parents=True)
    (d / "report" / "report.json").write_text(json.dumps(report))
    return d


def _ablation(tmp_path, diff, lo, hi, n=3):
    rows = [{"variant": "prefix", "n": n, "mean": 0.80, "diff": 0.0, "diff_lo": None,
             "diff_hi": None, "baseline": True, "resolved": None},
            {"variant": "causal", "n": n, "mean": 0.80 + diff, "diff": diff, "diff_lo": lo,
             "diff_hi": hi, "baseline": False, "resolved": bool(lo > 0 or hi < 0)}]
    report = {"ablations": {"factor": "model.attention", "setting": "", "tables": {
        "final_val_loss": {"table": rows, "verdicts": []},
        "probe.attentive_last.top1": {"table": rows, "verdicts": []}}}}
    d = tmp_path / "ablation"
    (d / "report").mkdir(parents=True)
    (d / "report" / "report.json").write_text(json.dumps(report))
    return d


def test_every_target_met(tmp_path):
    s = summarise(_scaling(tmp_path), _ablation(tmp_path, -0.02, -0.03, -0.01))
    assert s["all_met"], s["targets"]
    assert s["backtest"]["min_compute_ratio"] == 5.0
    t = s["targets"]
    assert abs(t["alpha_interval"]["value"] - 0.375) < 1e-9  # (0.55 - 0.40) / 0.40
    (c,) = s["ablation"]["comparisons"]
    assert s["ablation"]["metric"] == "probe.attentive_last.top1"  # the probe, not the loss
    assert c["agrees_with_paper"] == "agrees"
    assert "targets: all met" in lines(s)[-1]


def test_each_target_can_fail(tmp_path):
    cases = {  # one figure off target each, and the target that must say so
        "floor_E": {"joint.fit.params.E": 0.005},
        "alpha_interval": {"joint.fit.ci.alpha": [0.1, 0.9]},
        "beta_interval": {"joint.fit.ci.beta": [0.3, 0.46]},
        "held_out_runs": {"backtest.n_test": 3},
        "compute_ratio": {"backtest.threshold": 2e11},
        "mape": {"backtest.mape": 2.5},
        "coverage": {"backtest.coverage": 0.6},
        "spearman": {"downstream.correlation.spearman": -0.85},
    }
    for i, (target, over) in enumerate(cases.items()):
        d = tmp_path / str(i)
        d.mkdir()
        s = summarise(_scaling(d, **over), None)
        missed = {k for k, v in s["targets"].items() if not v["met"]}
        assert missed == {target}, (target, missed)
        assert not s["all_met"]
        assert target in lines(s)[-1]


def test_ablation_against_the_paper(tmp_path):
    opposite = summarise(_scaling(tmp_path / "a"), _ablation(tmp_path / "a", 0.02, 0.01, 0.03))
    assert opposite["ablation"]["comparisons"][0]["agrees_with_paper"] == "disagrees"
    noise = summarise(_scaling(tmp_path / "b"), _ablation(tmp_path / "b", -0.01, -0.03, 0.01))
    verdict = noise["ablation"]["comparisons"][0]["agrees_with_paper"]
    assert verdict.startswith("agrees in sign, but not resolved")
    few = summarise(_scaling(tmp_path / "c"), _ablation(tmp_path / "c", -0.02, -0.03, -0.01, n=2))
    assert not few["targets"]["ablation_seeds"]["met"]
