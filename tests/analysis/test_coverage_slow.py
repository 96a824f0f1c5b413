"""Bootstrap intervals cover the truth at about their nominal rate (slow: many refits)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from synth import CHINCHILLA, SMALL_GRID, chinchilla_grid, joint_loss, noisy

from analysis import fit_joint, fit_power


@pytest.mark.slow
def test_joint_bootstrap_intervals_cover_truth_near_nominal_rate():
    n, d = chinchilla_grid(8, 8)
    truth = joint_loss(n, d)
    hits = {"alpha": [], "beta": [], "a": []}
    a_true = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])
    for seed in range(40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_joint(n, d, noisy(truth, 0.01, 1000 + seed), grid=SMALL_GRID,
                            bootstrap=200, seed=seed, level=0.9, n_jobs=1)
        ci = fit.ci()
        for k in ("alpha", "beta"):
            hits[k].append(ci[k][0] <= CHINCHILLA[k] <= ci[k][1])
        lo, hi = fit.derived_ci()["a"]
        hits["a"].append(lo <= a_true <= hi)
    rates = {k: float(np.mean(v)) for k, v in hits.items()}
    # nominal 0.90; 40 trials give a binomial sd of ~0.05
    assert all(0.75 <= r <= 1.0 for r in rates.values()), rates


@pytest.mark.slow
def test_power_prediction_intervals_cover_new_runs():
    x = np.logspace(6, 9, 10)
    hits = []
    for seed in range(40):
        y = noisy(0.3 + 40 * x**-0.3, 0.01, seed)
        fit = fit_power(x, y, bootstrap=200, seed=seed, level=0.9, n_jobs=1)
        new = noisy(0.3 + 40 * np.array([2e9]) ** -0.3, 0.01, 10_000 + seed)
        _, lo, hi = fit.predict_interval([2e9], kind="pi")
        hits.append(lo[0] <= new[0] <= hi[0])
    assert 0.75 <= np.mean(hits) <= 1.0, np.mean(hits)
