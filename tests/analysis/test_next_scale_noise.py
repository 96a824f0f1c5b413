"""The next-scale table's prediction interval is the curve's uncertainty ⊕ the run-to-run noise
measured on the seed replicates, and says which noise it used; without replicates it says so."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from analysis.report import ReportOptions, build_report

SIZES = np.logspace(6, 9, 8)
SIGMA = 0.03  # run-to-run SD of log loss
# Four seeds per size at log offsets whose sample SD is exactly SIGMA.
OFFSETS = SIGMA * np.array([-1.5, -0.5, 0.5, 1.5]) / np.sqrt(5 / 3)


def law(n):
    return 0.3 + 40 * n**-0.3


def table(seeds: int) -> pd.DataFrame:
    offs = OFFSETS if seeds > 1 else [0.0]
    jitter = np.random.default_rng(3).standard_normal(len(SIZES)) * 0.004  # lack of fit
    return pd.DataFrame([
        {"run_id": f"n{i}-s{s}", "status": "done", "model.width": 64 * (i + 1),
         "train.seed": s, "seed": s, "trunk_params": n,
         "final_val_loss": law(n) * np.exp(jitter[i] + o)}
        for i, n in enumerate(SIZES) for s, o in enumerate(offs)])


def next_scale(tmp_path, seeds: int, bootstrap: int) -> tuple[list[dict], dict]:
    out = tmp_path / f"rep{seeds}-{bootstrap}"
    build_report(table(seeds), None, out,
                 ReportOptions(bootstrap=bootstrap, seed=0, n_jobs=1, strict=True))
    summary = json.loads((out / "report.json").read_text())
    return summary["next_scale"]["rows"], summary


def bounds(text: str) -> tuple[float, float]:
    lo, hi = text.strip("[]").split(",")
    return float(lo), float(hi)


def test_pi_is_the_replicate_noise_around_the_curve(tmp_path):
    rows, summary = next_scale(tmp_path, seeds=4, bootstrap=0)
    assert summary["replicates"]["noise"]["sigma"] == pytest.approx(SIGMA, rel=1e-9)
    (model,) = summary["next_scale"]["pi_noise"]
    assert model["noise_source"] == "replicates" and model["sigma_noise"] == pytest.approx(SIGMA)
    assert len(rows) == 3
    for row in rows:
        assert row["PI noise"] == "replicates, σ 0.03"
        # no bootstrap: no curve interval, and the PI is the noise alone: pred·exp(±z·σ)
        assert row["95% CI"] == ""
        lo, hi = bounds(row["95% PI"])
        half = np.log(hi / lo) / 2 / norm.ppf(0.975)
        assert half == pytest.approx(SIGMA, rel=0.06)  # 3 significant digits, 4,000 draws
        assert np.sqrt(lo * hi) == pytest.approx(row["predicted loss"], rel=0.01)


def test_pi_adds_the_noise_to_the_curve_uncertainty(tmp_path):
    rows, _ = next_scale(tmp_path, seeds=4, bootstrap=60)
    z = norm.ppf(0.975)
    for row in rows:
        clo, chi = bounds(row["95% CI"])
        plo, phi = bounds(row["95% PI"])
        assert plo < clo and phi > chi
        curve = np.log(chi / clo) / 2 / z  # log SD of the curve
        total = np.log(phi / plo) / 2 / z
        # variances add: total² ≈ curve² + σ² (percentiles of 60 resamples: rough)
        assert total**2 - curve**2 == pytest.approx(SIGMA**2, rel=0.35)


def test_without_replicates_the_table_says_so(tmp_path):
    rows, summary = next_scale(tmp_path, seeds=1, bootstrap=0)
    assert "Seeds and run-to-run noise" in summary["skipped"]
    (model,) = summary["next_scale"]["pi_noise"]
    assert model["noise_source"] == "residuals" and model["sigma_replicates"] is None
    for row in rows:
        assert row["PI noise"].startswith("residuals, σ ")
        assert row["PI noise"].endswith("(no replicates)")
        lo, hi = bounds(row["95% PI"])
        half = np.log(hi / lo) / 2 / norm.ppf(0.975)
        assert half == pytest.approx(model["sigma_noise"], rel=0.06)
    html = (tmp_path / "rep1-0" / "report.html").read_text()
    assert "no seed replicates in this sweep" in html
