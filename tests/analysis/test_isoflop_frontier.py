"""IsoFLOP (Approach 2), compute-optimal frontier and the planner."""

from __future__ import annotations

import numpy as np
import pytest
from synth import SMALL_GRID, chinchilla_grid, joint_loss, noisy

from analysis import AnalysisError, allocation, fit_joint, frontier, isoflop, plan, presets_table
from analysis.frontier import trunk_params

SYMMETRIC = {"E": 1.69, "A": 400.0, "B": 400.0, "alpha": 0.3, "beta": 0.3}


def isoflop_table(law, spread=1.0, offset=0.0, k=9):
    rows = []
    for c in np.logspace(18, 22, 5):
        centre = np.sqrt(c / 6) * 10**offset
        for f in 10 ** np.linspace(-spread, spread, k):
            n = centre * f
            rows.append((c, n, joint_loss(n, c / (6 * n), law)))
    return map(np.array, zip(*rows, strict=True))


def test_symmetric_law_gives_a_one_half():
    c, n, loss = isoflop_table(SYMMETRIC)
    res = isoflop(c, n, loss, bootstrap=100)
    assert res.a == pytest.approx(0.5, abs=0.01)
    assert res.b == pytest.approx(0.5, abs=0.01)
    assert res.a_ci[0] <= res.a <= res.a_ci[1]
    assert all(b.used for b in res.budgets) and not res.warnings


def test_asymmetric_grid_is_flagged_and_edge_minimum_dropped():
    c, n, loss = isoflop_table(SYMMETRIC, offset=0.6, spread=0.8)
    res = isoflop(c, n, loss, bootstrap=0)
    assert any("asymmetric" in w for w in res.warnings)
    c, n, loss = isoflop_table(SYMMETRIC, offset=1.5, spread=0.5)
    with pytest.raises(AnalysisError, match="at least 2 budgets"):
        isoflop(c, n, loss, bootstrap=0)


def test_frontier_and_plan_from_a_joint_fit():
    n, d = chinchilla_grid(8, 8)
    fit = fit_joint(n, d, noisy(joint_loss(n, d), 0.003, 0), grid=SMALL_GRID, bootstrap=100,
                    n_jobs=1)
    fr = frontier(fit)
    p = fit.params
    assert fr.a == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]))
    assert fr.a_ci[0] <= fr.a <= fr.a_ci[1]
    al = allocation(fit, [1e21, 1e23])
    np.testing.assert_allclose(6 * al["n_opt"] * al["d_opt"], [1e21, 1e23], rtol=1e-9)
    assert np.all(al["n_opt_lo"] <= al["n_opt"]) and np.all(al["n_opt"] <= al["n_opt_hi"])
    # the recommended N minimises the predicted loss along the budget
    ns = al["n_opt"][0] * np.array([0.7, 1.0, 1.4])
    losses = fit.predict(ns, 1e21 / (6 * ns))
    assert losses[1] < losses[0] and losses[1] < losses[2]
    pl = plan(fit, 1e21)
    assert pl.preset["name"] in {"aim-600m", "aim-1b", "aim-3b", "aim-7b"}
    assert pl.loss_ci[0] <= pl.loss <= pl.loss_ci[1]


def test_presets_follow_the_trunk_formula():
    t = presets_table()
    row = t.set_index("name").loc["aim-600m"]
    assert (row.width, row.depth) == (1536, 24)
    blocks = 24 * (12 * 1536**2 + 4 * 1536)
    assert row.params == pytest.approx(blocks, rel=0.01)
    assert trunk_params(4096, 32) > trunk_params(3072, 24)
    custom = presets_table([{"name": "tiny", "width": 64, "depth": 2, "params": 1e5}])
    assert custom.params.tolist() == [1e5]
