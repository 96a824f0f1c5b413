"""IsoFLOP without the wide-grid bias: windowed parabolas, merged near-duplicate sizes, the D
axis, predictions at given budgets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synth import noisy

from analysis import AnalysisError, isoflop
from analysis.cli import main
from analysis.isoflop_at import predict_at
from analysis.laws import compute_optimal

# α ≠ β: the IsoFLOP profile in log N is far from a parabola a decade away from its minimum
SKEWED = {"E": 1.0, "A": 1e7, "B": 400.0, "alpha": 0.8, "beta": 0.2}
A_TRUE = SKEWED["beta"] / (SKEWED["alpha"] + SKEWED["beta"])  # 0.2
BUDGETS = np.logspace(18, 22, 5)


def loss_at(n, d, p=SKEWED):
    return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]


def n_true(c, p=SKEWED):
    _, _, g = compute_optimal(p["A"], p["B"], p["alpha"], p["beta"])
    return g * (c / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))


def wide_sweep(noise=0.0, seed=0, p=SKEWED):
    """15 sizes over 2 decades per budget, centred on the naive N ∝ C^0.5 (so the true minimum
    drifts across the grid from budget to budget, as in a fixed-rule design)."""
    rows = []
    mid = np.log10(BUDGETS).mean()
    drift = 0.5 - p["beta"] / (p["alpha"] + p["beta"])
    for c in BUDGETS:
        centre = n_true(c, p) * 10 ** (drift * (np.log10(c) - mid))
        for f in 10 ** np.linspace(-1, 1, 15):
            n = centre * f
            rows.append((c, n, loss_at(n, c / (6 * n), p)))
    c, n, loss = map(np.array, zip(*rows, strict=True))
    return c, n, noisy(loss, noise, seed) if noise else loss


def test_window_removes_the_wide_grid_bias():
    c, n, loss = wide_sweep()
    windowed = isoflop(c, n, loss, bootstrap=0)  # default: 7 sizes around the lowest loss
    assert abs(windowed.a - A_TRUE) < 0.005
    assert all(b.used and b.n_fit == 7 for b in windowed.budgets)
    classic = isoflop(c, n, loss, bootstrap=0, window=0)  # one parabola over all 15 sizes
    assert classic.a - A_TRUE > 0.02  # the bias the window removes
    assert any("wide" in w and "window" in w for w in classic.warnings)


def test_window_on_noisy_sweep_within_002_and_interval_covers_truth():
    c, n, loss = wide_sweep(noise=0.002, seed=3)
    res = isoflop(c, n, loss, bootstrap=300, seed=1)
    assert abs(res.a - A_TRUE) < 0.02
    assert res.a_ci[0] <= A_TRUE <= res.a_ci[1]
    by_width = isoflop(c, n, loss, bootstrap=0, window_decades=0.9)
    assert abs(by_width.a - A_TRUE) < 0.02 and by_width.budgets[0].n_fit == 7


def test_near_duplicate_sizes_are_one_size():
    """1.39739745e8 and 1.39739844e8 used to make resamples singular (LinAlgError)."""
    law = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    rows = []
    for c in (1e18, 1e19, 1e20):
        scale = n_true(c, law) / 1.4e8  # the duplicated size sits at the optimum
        for n in (4.5e7, 1.39739745e8, 1.39739844e8, 4.3e8):
            n = n * scale
            rows.append((c, n, loss_at(n, c / (6 * n), law)))
    c, n, loss = map(np.array, zip(*rows, strict=True))
    res = isoflop(c, n, loss, bootstrap=500, seed=0)
    assert np.isfinite(res.a) and res.a_ci is not None
    # each budget has 3 distinct sizes once the near-duplicates merge
    assert all(b.n_fit == 4 for b in res.budgets if b.used)
    # without the largest size a budget has 2 sizes, not 3: no parabola through a near-pair
    three = np.arange(len(c)) % 4 != 3
    with pytest.raises(AnalysisError, match="at least 2 budgets"):
        isoflop(c[three], n[three], loss[three], bootstrap=0)


def test_edge_minimum_dropped_or_flagged():
    c, n, loss = wide_sweep()
    keep = ~((c == BUDGETS[-1]) & (n < n_true(BUDGETS[-1]) * 1.2))  # cut below the optimum
    res = isoflop(c[keep], n[keep], loss[keep], bootstrap=0)
    assert not res.budgets[-1].used and "grid edge" in res.budgets[-1].issue
    assert abs(res.a - A_TRUE) < 0.005  # the other four budgets carry the slope
    flagged = isoflop(c[keep], n[keep], loss[keep], bootstrap=0, edge="flag")
    last = flagged.budgets[-1]
    assert last.used and "extrapolated" in last.issue and last.n_opt < n[keep].max()


def test_tokens_only_and_predictions_at_budgets(tmp_path, capsys):
    c, n, loss = wide_sweep(noise=0.001, seed=5)
    path = tmp_path / "iso.csv"
    pd.DataFrame({"C": c, "tokens": c / (6 * n), "params": n, "L": loss}).to_csv(path,
                                                                                  index=False)
    code = main(["isoflop", str(path), "--flops", "C", "--d", "tokens", "--loss", "L",
                 "--bootstrap", "200", "--at", "1e21,1e24", "--json"])
    import json

    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["axis"] == "D"
    assert abs(out["a"] - A_TRUE) < 0.02 and out["b"] == pytest.approx(1 - out["a"])
    assert out["flops_per_param_token"] == 6.0 and "assumed" in out["k_source"]
    inside, far = out["at"]
    assert set(inside) >= {"flops", "n_opt", "n_opt_ci", "d_opt", "d_opt_ci", "loss_opt",
                           "loss_opt_ci", "warnings"}
    # the slope is right; the level keeps the window parabola's offset on this very skewed
    # profile (α = 0.8, β = 0.2): N* 8% high, 0.03 decades
    assert inside["n_opt"] == pytest.approx(n_true(1e21), rel=0.1)
    assert inside["n_opt_ci"][0] <= inside["n_opt"] <= inside["n_opt_ci"][1]
    assert inside["n_opt"] * inside["d_opt"] * 6 == pytest.approx(1e21)
    l_true = loss_at(n_true(1e21), 1e21 / (6 * n_true(1e21)))
    assert inside["loss_opt"] == pytest.approx(l_true, rel=0.01)
    assert inside["warnings"] == []
    assert any("2.00 decades beyond" in w for w in far["warnings"])
    # both columns: k is measured from the table, and the N axis gives the same slope
    code = main(["isoflop", str(path), "--flops", "C", "--n", "params", "--d", "tokens",
                 "--loss", "L", "--bootstrap", "0", "--json"])
    both = json.loads(capsys.readouterr().out)
    assert both["axis"] == "N" and both["flops_per_param_token"] == pytest.approx(6.0)
    assert both["a"] == pytest.approx(out["a"], abs=0.01)
    assert both["d_coefficient"] == pytest.approx(out["d_coefficient"], rel=0.3)


def test_predict_at_rejects_bad_budgets():
    c, n, loss = wide_sweep()
    res = isoflop(c, n, loss, bootstrap=0)
    with pytest.raises(Exception, match="positive compute"):
        predict_at(res, [-1.0])
