"""Loss → accuracy, two-step prediction, backtests, ablations, shapes, layer-wise probes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synth import noisy

from analysis import (
    ablation_table,
    backtest,
    correlate,
    fit_power,
    layerwise,
    two_step,
    width_vs_depth,
)
from analysis.correlate import sigmoid


def test_correlations_match_scipy_and_intervals_bracket_them():
    rng = np.random.default_rng(0)
    loss = np.linspace(0.5, 1.0, 15)
    acc = sigmoid(loss, 0.8, -10.0, 0.75, 0.1) + 0.01 * rng.standard_normal(15)
    c = correlate(loss, acc, bootstrap=300, seed=0)
    assert c.pearson == pytest.approx(stats.pearsonr(loss, acc)[0], abs=1e-12)
    assert c.spearman == pytest.approx(stats.spearmanr(loss, acc)[0], abs=1e-12)
    assert c.ci["pearson"][0] <= c.pearson <= c.ci["pearson"][1]
    assert c.sigmoid["k"] == pytest.approx(-10.0, rel=0.15)
    assert c.sigmoid["l0"] == pytest.approx(0.75, abs=0.02)
    assert c.loo_model == "sigmoid" and c.loo_mae < 0.02
    lin = np.polyfit(loss, acc, 1)
    assert c.linear["slope"] == pytest.approx(lin[0], rel=1e-10)


def test_two_step_prediction_chains_both_intervals():
    x = np.logspace(6, 9, 8)
    loss = noisy(0.3 + 40 * x**-0.3, 0.005, 1)
    acc = sigmoid(loss, 0.8, -12.0, 0.6, 0.1)
    fit = fit_power(x, loss, bootstrap=100, n_jobs=1)
    corr = correlate(loss, acc, bootstrap=100)
    out = two_step(fit, corr, [1e10])
    assert out["accuracy_lo"][0] <= out["accuracy"][0] <= out["accuracy_hi"][0]
    assert out["accuracy"][0] == pytest.approx(corr.predict(fit.predict([1e10]))[0])


def test_backtest_on_exact_law_is_near_perfect():
    x = np.logspace(6, 10, 12)
    loss = noisy(0.3 + 40 * x**-0.3, 0.002, 0)
    bt = backtest("power", {"N": x}, loss, x, 1e9, column="N", bootstrap=200, n_jobs=1)
    assert bt.n_train == 9 and bt.n_test == 3
    assert bt.mape < 1.0
    assert bt.coverage >= 2 / 3
    assert {"observed", "predicted", "lo", "hi"} <= set(bt.predictions[0])


def test_ablation_table_numbers():
    df = pd.DataFrame({"variant": ["baseline"] * 3 + ["no_prefix"] * 3,
                       "acc": [0.70, 0.72, 0.71, 0.65, 0.66, 0.64]})
    t = ablation_table(df, "variant", "acc", bootstrap=500).set_index("variant")
    assert t.loc["baseline", "mean"] == pytest.approx(0.71)
    assert t.loc["no_prefix", "std"] == pytest.approx(0.01)
    assert t.loc["no_prefix", "diff"] == pytest.approx(-0.06)
    assert t.loc["no_prefix", "diff_lo"] < -0.06 < t.loc["no_prefix", "diff_hi"] < 0
    assert bool(t.loc["baseline", "baseline"])


def test_width_vs_depth_groups_matched_params_within_data():
    df = pd.DataFrame({"w": [64, 96, 64, 96, 128], "d": [4, 2, 4, 2, 2],
                       "n": [2.0e5, 2.2e5, 2.0e5, 2.2e5, 4e5],
                       "data": [1, 1, 2, 2, 1], "loss": [0.8, 0.7, 0.6, 0.65, 0.5]})
    t = width_vs_depth(df, "w", "d", "loss", "n", within=["data"])
    assert len(t) == 4 and sorted(t["group"].unique()) == [1, 2]
    g1 = t[t.group == 1].set_index("width")
    assert g1.loc[96, "rank"] == 1 and g1.loc[64, "rank"] == 2


def test_layerwise_parses_probe_window_columns():
    df = pd.DataFrame({"run_id": ["a"], "probe.attentive_blocks2-3.top1": [0.5],
                       "probe.linear_blocks0-1.top1": [0.4], "probe.attentive_last.top1": [0.6]})
    t = layerwise(df).sort_values("start")
    assert t[["kind", "start", "end"]].values.tolist() == [["linear", 0, 1], ["attentive", 2, 3]]


def test_accuracy_predictions_stay_within_unit_interval():
    """A straight line of accuracy against loss extrapolates past 1; a fraction cannot."""
    import numpy as np

    from analysis.correlate import correlate

    loss = np.linspace(0.5, 0.6, 12)
    acc = 0.9 - 4.0 * (loss - 0.5)  # 0.9 .. 0.5, slope -4
    corr = correlate(loss, acc, bootstrap=50, fit_sigmoid_curve=False)
    assert corr.unit_interval
    assert corr.predict(0.3, "linear") == 1.0  # the line itself would say 1.7
    percent = correlate(loss, 100 * acc, bootstrap=50, fit_sigmoid_curve=False)
    assert not percent.unit_interval
    assert np.isclose(percent.predict(0.3, "linear"), 170.0)
