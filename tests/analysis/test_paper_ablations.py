"""The paper's ablation directions and the verdict (agrees / disagrees / not resolved), and the
report's "What pre-training adds" section, on constructed tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.compare import ablation_table
from analysis.paper_ablations import paper_direction, paper_verdicts, verdict_sentences


def arms(values: dict[str, list[float]], factor: str = "model.attention") -> pd.DataFrame:
    rows = [{factor: name, "acc": v} for name, vs in values.items() for v in vs]
    return pd.DataFrame(rows)


def verdict_of(values: dict[str, list[float]], factor: str, baseline: str, **kw) -> pd.Series:
    tab = ablation_table(arms(values, factor), factor, "acc", baseline=baseline)
    return paper_verdicts(tab, factor, **kw).set_index("variant")


def test_prefix_beats_causal_agrees_disagrees_or_unresolved():
    agree = verdict_of({"prefix": [0.80, 0.81, 0.82], "causal": [0.70, 0.71, 0.72]},
                       "model.attention", "prefix")
    assert agree.loc["causal", "paper"] == "lower"
    assert agree.loc["causal", "paper_verdict"] == "agrees"
    assert pd.isna(agree.loc["prefix", "paper_verdict"])  # the baseline itself
    # the single-seed run: causal 0.8115 > prefix 0.7825, here with 3 tight seeds
    disagree = verdict_of({"prefix": [0.780, 0.783, 0.785], "causal": [0.810, 0.811, 0.813]},
                          "model.attention", "prefix")
    assert disagree.loc["causal", "paper_verdict"] == "disagrees"
    noisy = verdict_of({"prefix": [0.70, 0.80, 0.75], "causal": [0.78, 0.72, 0.76]},
                       "model.attention", "prefix")
    assert not noisy.loc["causal", "resolved"]
    assert noisy.loc["causal", "paper_verdict"] == "not resolved"
    one_seed = verdict_of({"prefix": [0.7825], "causal": [0.8115]}, "model.attention", "prefix")
    assert one_seed.loc["causal", "paper_verdict"] == "not resolved"  # no interval at all


def test_baseline_may_be_the_worse_value_and_numbers_match_as_text():
    # baseline causal: prefix − causal > 0 is the paper's direction
    t = verdict_of({"causal": [0.70, 0.71, 0.72], "prefix": [0.80, 0.81, 0.82]},
                   "model.attention", "causal")
    assert (t.loc["prefix", "paper"], t.loc["prefix", "paper_verdict"]) == ("higher", "agrees")
    crop = verdict_of({"0.4": [0.8, 0.81, 0.82], "1.0": [0.6, 0.61, 0.62],
                       "0.08": [0.9, 0.91, 0.92]}, "data.crop_scale_min", "0.4")
    assert crop.loc["1.0", "paper_verdict"] == "agrees"  # 1.0 → 63.5 < 78.2
    assert crop.loc["0.08", "paper_verdict"] == "disagrees"  # paper: 77.7 < 78.2
    depth = verdict_of({"2": [0.7, 0.71, 0.72], "4": [0.75, 0.76, 0.77]}, "model.head_depth", "2")
    assert depth.loc["4", "paper_verdict"] == "agrees"  # deeper head better (monotone)


def test_no_verdict_where_the_paper_is_silent_or_the_metric_is_a_loss():
    t = verdict_of({"64": [0.7, 0.71, 0.72], "128": [0.8, 0.81, 0.82]}, "model.width", "64")
    assert pd.isna(t.loc["128", "paper"]) and pd.isna(t.loc["128", "paper_verdict"])
    spiral = verdict_of({"spiral": [0.7, 0.71, 0.72], "checkerboard": [0.8, 0.81, 0.82]},
                        "model.order", "spiral")
    assert pd.isna(spiral.loc["checkerboard", "paper_verdict"])  # linear and attentive disagree
    loss = verdict_of({"prefix": [0.3, 0.31, 0.32], "causal": [0.2, 0.21, 0.22]},
                      "model.attention", "prefix", accuracy=False)
    assert loss["paper_verdict"].isna().all()


def test_variants_are_matched_by_their_config_and_confounding_is_said():
    rows = pd.DataFrame([
        *({"variant": "mlp", "model.head": "mlp", "model.head_width": 256, "acc": a}
          for a in (0.80, 0.81, 0.82)),
        *({"variant": "none", "model.head": "none", "model.head_width": 256, "acc": a}
          for a in (0.70, 0.71, 0.72)),
        *({"variant": "transformer", "model.head": "transformer", "model.head_width": 128,
           "acc": a} for a in (0.85, 0.86, 0.87)),
    ])
    tab = paper_verdicts(ablation_table(rows, "variant", "acc", baseline="mlp"), "variant", rows)
    t = tab.set_index("variant")
    assert (t.loc["none", "paper"], t.loc["none", "paper_verdict"]) == ("lower", "agrees")
    assert pd.isna(t.loc["transformer", "paper_verdict"])  # better head, narrower: confounded
    sign, text = paper_direction("variant", "transformer", "mlp", rows)
    assert sign is None and text.startswith("confounded")
    sentences = verdict_sentences(tab, "acc")
    assert len(sentences) == 1 and "none vs mlp" in sentences[0] and "agrees" in sentences[0]


def report_sections(runs: pd.DataFrame, out, *names, **options) -> dict:
    """The JSON summary after the overview and the named sections only (the rest of the
    report is not needed here, and its figures take seconds)."""
    from analysis.report import Report, ReportOptions
    from analysis.report.core import SECTIONS
    from analysis.report.overview import section as overview

    report = Report(runs, None, out, ReportOptions(strict=True, bootstrap=20, **options))
    report.run_section("Overview", overview)
    for title, fn in SECTIONS:
        if title in names:
            report.run_section(title, fn)
    return json.loads(json.dumps(report.summary, default=str))


def test_report_ablations_json_carries_the_paper_verdict(tmp_path):

    rng = np.random.default_rng(0)
    rows = []
    for attention, acc in (("prefix", 0.80), ("causal", 0.70)):
        for seed in range(3):
            rows.append({"run_id": f"{attention}-{seed}", "status": "done",
                         "model.attention": attention, "train.seed": seed, "seed": seed,
                         "trunk_params": 1e5, "images_seen": 1e5, "total_flops": 6e10,
                         "final_val_loss": 0.5 + rng.normal(0, 0.01),
                         "probe.attentive_last.top1": acc + rng.normal(0, 0.005)})
    summary = report_sections(pd.DataFrame(rows), tmp_path, "Ablations",
                              variant="model.attention", baseline="prefix")
    tables = summary["ablations"]["tables"]
    acc = {r["variant"]: r for r in tables["probe.attentive_last.top1"]["table"]}
    assert acc["causal"]["paper_verdict"] == "agrees" and acc["causal"]["paper"] == "lower"
    assert tables["probe.attentive_last.top1"]["paper_verdicts"]
    loss = {r["variant"]: r for r in tables["final_val_loss"]["table"]}
    assert loss["causal"]["paper_verdict"] is None


def test_what_pretraining_adds_sets_baselines_beside_the_trained_runs(tmp_path):
    rows = []
    for width, depth, params in ((32, 2, 3e4), (64, 2, 1e5)):
        for images, acc in ((1e4, 0.60), (2e4, 0.70)):
            acc += 0.05 * (width == 64)
            rows.append({"run_id": f"w{width}-{images:g}", "status": "done", "features": "trunk",
                         "model.width": width, "model.depth": depth, "trunk_params": params,
                         "images_seen": images, "total_flops": 6 * params * images,
                         "final_val_loss": 1 / np.log(params * images),
                         "probe.linear_last.top1": acc})
        rows.append({"run_id": f"untrained-w{width}", "status": "baseline",
                     "features": "untrained", "model.width": width, "model.depth": depth,
                     "probe.linear_last.top1": 0.50 + 0.01 * (width == 64)})
    rows.append({"run_id": "pixels", "status": "baseline", "features": "pixels",
                 "probe.linear_last.top1": 0.72})
    summary = report_sections(pd.DataFrame(rows), tmp_path, "What pre-training adds")
    res = summary["baselines"]["probes"]["probe.linear_last.top1"]
    assert res["trained_best"] == pytest.approx(0.75)
    assert res["pixels"] == pytest.approx(0.72) and res["untrained_best"] == pytest.approx(0.51)
    assert res["gain_over_best_baseline"] == pytest.approx(0.03)
    per = {row["model.width"]: row for row in res["per_size"]}
    assert per[32]["trained_best"] == pytest.approx(0.70)
    assert per[32]["gain_over_untrained"] == pytest.approx(0.20)
    assert per[64]["untrained"] == pytest.approx(0.51)
    assert summary["n_rows_in_table"] == 4  # the 3 baseline rows are in no other section
    assert "skipped" not in summary
