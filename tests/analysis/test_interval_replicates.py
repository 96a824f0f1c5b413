"""Prediction intervals take the run-to-run noise from the seed replicates
(``replicates.noise_estimate``), and a fit on the means of seeds still gives the interval of a
*single new run* (σ, not σ/√n) — in ``calibrated`` and in the report's backtest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from analysis import fit_power
from analysis.predict import calibrated
from analysis.replicates import average_replicates, noise_estimate
from analysis.report import ReportOptions, build_report

SIZES = np.logspace(6, 9, 8)
SEEDS = 4


def seeded(sigma: float) -> pd.DataFrame:
    """8 sizes × 4 seeds of a power law, log loss = law + sigma·z (the same z for every sigma)."""
    z = np.random.default_rng(7).standard_normal((len(SIZES), SEEDS))
    rows = [{"run_id": f"n{i}-s{s}", "model.width": 64 * (i + 1), "train.seed": s, "seed": s,
             "trunk_params": x, "final_val_loss": (0.3 + 40 * x**-0.3) * np.exp(sigma * z[i, s])}
            for i, x in enumerate(SIZES) for s in range(SEEDS)]
    return pd.DataFrame(rows)


def pi_noise(fit, model, x: float) -> float:
    """Log half-width of the 90% pi at an in-range target, in units of z: the SD of a new run's
    log loss there (curve uncertainty and noise; no extrapolation term inside the range)."""
    from analysis.intervals import predict

    (p,) = predict(fit, model, [np.array([x])], 0.9)
    assert p.decades_beyond == 0
    return float(np.log(p.pi[1] / p.pi[0]) / 2 / norm.ppf(0.95))


def means_model(sigma: float, *, with_noise: bool = True):
    raw = seeded(sigma)
    avg = average_replicates(raw, ["trunk_params"])
    x, y = avg["trunk_params"].to_numpy(), avg["final_val_loss"].to_numpy()
    noise = noise_estimate(raw, ["trunk_params"], "final_val_loss")
    fit = fit_power(x, y, bootstrap=60, n_jobs=1)
    kw = {"noise": noise, "replicates": avg["n_seeds"].to_numpy()} if with_noise else {}
    return fit, calibrated("power", [x], y, fit, bootstrap=60, **kw), noise


def test_pi_of_a_new_run_from_averaged_seeds_uses_sigma_and_scales_with_it():
    fit1, m1, noise1 = means_model(0.02)
    fit2, m2, noise2 = means_model(0.04)
    # the model's noise is replicates.py's estimate, not a second one
    assert m1.sigma_replicates == noise1.sigma and noise1.dof == 8 * (SEEDS - 1)
    assert noise1.sigma == pytest.approx(0.02, rel=0.25)  # 24 dof: the estimate is 0.0163
    assert noise2.sigma == pytest.approx(2 * noise1.sigma, rel=1e-9)  # same z, doubled σ
    assert m1.noise_source.startswith("replicates") and m1.replicates_per_row == SEEDS
    # a new run scatters by σ ≈ 0.02, although the means fitted scatter by σ/2 ≈ 0.01
    assert m1.sigma_residuals < 0.7 * noise1.sigma
    assert m1.sigma_noise == pytest.approx(noise1.sigma, rel=0.2)
    assert m2.sigma_noise == pytest.approx(2 * m1.sigma_noise, rel=0.1)
    # the pi's width inside the range: sqrt(curve² + σ²) ≥ σ, and doubling σ doubles it (±15%)
    w1, w2 = pi_noise(fit1, m1, 1e8), pi_noise(fit2, m2, 1e8)
    assert noise1.sigma * 0.95 < w1 < noise1.sigma * 1.5
    assert w2 == pytest.approx(2 * w1, rel=0.15)
    # without the replicates' σ the interval of a mean would shrink by about √4 = 2
    fit0, m0, _ = means_model(0.02, with_noise=False)
    assert m0.noise_source == "residuals" and m0.sigma_noise < 0.7 * m1.sigma_noise
    assert pi_noise(fit0, m0, 1e8) < 0.8 * w1


def test_averaging_seeds_does_not_narrow_a_new_runs_pi():
    raw = seeded(0.03)
    x, y = raw["trunk_params"].to_numpy(), raw["final_val_loss"].to_numpy()
    fit_raw = fit_power(x, y, bootstrap=60, n_jobs=1)
    m_raw = calibrated("power", [x], y, fit_raw, bootstrap=60)  # replicates found in the rows
    fit_avg, m_avg, noise = means_model(0.03)
    assert m_raw.sigma_replicates == pytest.approx(noise.sigma)
    assert m_avg.sigma_noise == pytest.approx(m_raw.sigma_noise, rel=0.15)
    assert pi_noise(fit_avg, m_avg, 1e8) == pytest.approx(pi_noise(fit_raw, m_raw, 1e8), rel=0.2)


def test_report_backtest_takes_the_noise_from_the_seeds(tmp_path):
    raw = seeded(0.02)
    build_report(raw, None, tmp_path, ReportOptions(bootstrap=20, n_jobs=1))
    summary = json.loads((tmp_path / "report.json").read_text())
    sigma = summary["replicates"]["noise"]["sigma"]
    pm = summary["backtest"]["pi_model"]
    assert pm["sigma_replicates"] == pytest.approx(sigma)
    assert pm["replicates_per_row"] == SEEDS
    assert pm["sigma_noise"] >= sigma and pm["sigma_noise"] == pytest.approx(sigma, rel=0.3)
    text = (tmp_path / "report.md").read_text()
    assert "for a single new run" in text and "extrapolation error" in text
