"""One-variable laws: saturating power law and the broken neural scaling law."""

from __future__ import annotations

import numpy as np
import pytest
from synth import noisy

from analysis import AnalysisError, fit_bnsl, fit_power
from analysis.bnsl import rmsle
from analysis.laws import predict_bnsl

X = np.logspace(15, 21, 9)  # e.g. compute in FLOPs


def test_power_law_recovered_exactly_without_noise():
    fit = fit_power(X, 1.8 + 2e3 * X**-0.2, bootstrap=0)
    assert fit.params["E"] == pytest.approx(1.8, rel=1e-4)
    assert fit.params["A"] == pytest.approx(2e3, rel=1e-3)
    assert fit.params["alpha"] == pytest.approx(0.2, rel=1e-4)


def test_power_law_without_floor_finds_zero_floor():
    fit = fit_power(X, 3e3 * X**-0.15, bootstrap=0)
    assert fit.params["E"] < 1e-4
    assert fit.params["alpha"] == pytest.approx(0.15, rel=1e-4)
    fixed = fit_power(X[:3], 3e3 * X[:3] ** -0.15, floor=False, bootstrap=0)
    assert fixed.params["E"] == 0.0
    assert fixed.params["alpha"] == pytest.approx(0.15, rel=1e-4)


def test_power_law_interval_contains_truth_with_noise():
    y = noisy(1.8 + 2e3 * X**-0.2, 0.005, 0)
    fit = fit_power(X, y, bootstrap=200, seed=1, n_jobs=1)
    lo, hi = fit.ci()["alpha"]
    assert lo < fit.params["alpha"] < hi
    pred, plo, phi = fit.predict_interval([X[-1] * 10], kind="pi")
    assert plo[0] < pred[0] < phi[0]


def test_flat_data_is_flagged():
    y = noisy(np.full(X.size, 2.0), 0.01, 4)
    fit = fit_power(X, y, bootstrap=0)
    assert fit.flat
    assert any("flat" in w for w in fit.warnings)


def test_too_few_distinct_sizes():
    with pytest.raises(AnalysisError, match="distinct values of x"):
        fit_power(np.array([1.0, 1.0, 2.0, 2.0]), np.array([3.0, 3.1, 2.0, 2.1]), bootstrap=0)
    with pytest.raises(AnalysisError, match="at least 4 valid points"):
        fit_power(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.5]), bootstrap=0)


def test_bootstrap_is_reproducible_and_independent_of_workers():
    y = noisy(1.8 + 2e3 * X**-0.2, 0.01, 2)
    a = fit_power(X, y, bootstrap=60, seed=7, n_jobs=1)
    b = fit_power(X, y, bootstrap=60, seed=7, n_jobs=2)
    np.testing.assert_allclose(a.samples, b.samples, rtol=1e-9)


def test_group_bootstrap_resamples_whole_runs():
    from analysis.bootstrap import resample_weights

    groups = np.repeat(["r1", "r2", "r3"], 4)
    w = resample_weights(12, 50, 0, groups)
    assert np.all(w.reshape(50, 3, 4).std(axis=2) == 0)  # all rows of a run share a count
    assert np.all(w.reshape(50, 3, 4)[:, :, 0].sum(axis=1) == 3)


BNSL_TRUE = np.array([0.5, 3.0, 0.05, 1.0, 1e3, 0.1])


def test_bnsl_one_break_recovered():
    x = np.logspace(0, 6, 40)
    fit = fit_bnsl(x, predict_bnsl(BNSL_TRUE, x), bootstrap=0)
    np.testing.assert_allclose(fit.values, BNSL_TRUE, rtol=1e-4)


def test_bnsl_extrapolates_a_sharp_transition_better_than_a_power_law():
    x = np.logspace(0, 6, 40)
    y = noisy(predict_bnsl(BNSL_TRUE, x), 0.005, 0)
    train = x <= 3e4
    b = fit_bnsl(x[train], y[train], bootstrap=0)
    p = fit_power(x[train], y[train], bootstrap=0)
    p_err = float(np.sqrt(np.mean((np.log1p(p.predict(x[~train])) - np.log1p(y[~train])) ** 2)))
    assert rmsle(b, x[~train], y[~train]) < 0.02
    assert rmsle(b, x[~train], y[~train]) < p_err


def test_bnsl_needs_enough_points():
    with pytest.raises(AnalysisError, match="at least 7 valid points"):
        fit_bnsl(np.arange(1.0, 7.0), np.linspace(3, 1, 6), bootstrap=0)


def test_bad_values_are_dropped_with_a_counted_warning():
    x = np.append(X, [np.nan, 1e18, 1e19])
    y = np.append(1.8 + 2e3 * X**-0.2, [2.0, -1.0, np.inf])
    with pytest.warns(UserWarning, match="dropped 1 of 12 points with NaN"):
        fit = fit_power(x, y, bootstrap=0)
    assert fit.n_points == 9
    assert any("dropped 2 of 12 points" in w and "loss" in w for w in fit.warnings)
    assert fit.params["alpha"] == pytest.approx(0.2, rel=1e-4)
