"""Bootstrap refits of a power law whose resamples want no floor (E = 0): they start from E = 0 too,
so they converge in the batched solver instead of crawling for thousands of steps and then
falling back to scipy one resample at a time (the 373 s "Loss against model size" section of a
collected sweep: 6 model sizes, losses that do not fall monotonically with N)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import fit_power, huber_lse
from analysis.batch_lbfgs import BEATEN, FTOL, GTOL, minimize_batch
from analysis.bootstrap import resample_weights
from analysis.fit_power import power_grid

# One data size of that sweep: 4 widths at depth 2 and width 48 at depths 1 and 4, so N does not
# order the losses (depth 1 beats the smaller width 32; depth 4 is worse than depth 2).
N = np.array([7136.0, 26560.0, 30432.0, 58272.0, 113952.0, 227136.0])
LOSS = np.array([0.48108, 0.45555, 0.45315, 0.44721, 0.45362, 0.43836])
RESAMPLES = 128  # one bootstrap chunk


def _counted(monkeypatch) -> dict[str, int]:
    """Count scipy fallbacks (``_polish``), objective evaluations (calls: each costs ~50 µs of
    overhead however many parameter rows it evaluates) and the rows they evaluate."""
    counts = {"polish": 0, "calls": 0, "rows": 0}
    polish, fun_grad = huber_lse._polish, huber_lse.LseProblem.fun_grad

    def counting_polish(*a, **k):
        counts["polish"] += 1
        return polish(*a, **k)

    def counting_fun_grad(self, theta, *a, **k):
        counts["calls"] += 1
        counts["rows"] += np.atleast_2d(theta).shape[0]
        return fun_grad(self, theta, *a, **k)

    monkeypatch.setattr(huber_lse, "_polish", counting_polish)
    monkeypatch.setattr(huber_lse.LseProblem, "fun_grad", counting_fun_grad)
    return counts


def test_floorless_resamples_converge_without_scipy_fallbacks(monkeypatch):
    full = fit_power(N, LOSS, bootstrap=0)
    counts = _counted(monkeypatch)
    fit = fit_power(N, LOSS, bootstrap=RESAMPLES, seed=0, n_jobs=1)
    weights = resample_weights(len(N), RESAMPLES, 0)
    unidentified = sum(len(np.unique(N[w > 0])) < 3 for w in weights)
    # Every resample that can identify the law converges (before: 4 of 128 did not) ...
    assert fit.n_failed_resamples == unidentified
    assert not any("did not converge" in w for w in fit.warnings)
    # ... in the batched solver: scipy only polishes the full fit's best 3 (before: 10 resamples
    # more, most running to its 1000-step cap) ...
    assert counts["polish"] <= 3
    # ... with far fewer objective evaluations (before: 13,491 calls; now 5,552)
    assert counts["calls"] < 8_000
    # The full-data fit is unchanged (only the resamples got the extra start).
    assert fit.values == pytest.approx(full.values, rel=1e-12)


def test_floor_starts_added_only_where_the_floor_is_free():
    prob = huber_lse.LseProblem.build(np.log(N)[:, None], np.log(LOSS), 1e-3)
    lo = prob.lower[0]
    warm = np.array([[-1.0, 0.5, 0.4], [lo, 0.3, 0.2]])
    starts = huber_lse.with_floor_starts(prob, warm)
    # The start already at E = 0 is not repeated; the other gets its E = 0 twin.
    np.testing.assert_array_equal(starts, [[-1.0, 0.5, 0.4], [lo, 0.3, 0.2], [lo, 0.5, 0.4]])
    prob.upper[0] = lo  # E pinned (floor=False): nothing to add
    np.testing.assert_array_equal(huber_lse.with_floor_starts(prob, warm), warm)


def test_floor_starts_never_make_a_resample_worse(monkeypatch):
    """Each resample's objective with the E = 0 starts is at most what the old starts alone
    reach, scipy fallbacks included (the best of more starts, the old ones among them)."""
    prob = huber_lse.LseProblem.build(np.log(N)[:, None], np.log(LOSS), 1e-3)
    warm = huber_lse.solve(prob, power_grid(N, LOSS)).optima[:5]
    weights = resample_weights(len(N), 48, 3)
    weights = weights[[len(np.unique(N[w > 0])) >= 3 for w in weights]]
    new, ok = huber_lse.solve_resamples(prob, weights, warm)
    monkeypatch.setattr(huber_lse, "with_floor_starts", lambda prob, warm: warm)
    old, _ = huber_lse.solve_resamples(prob, weights, warm)

    def objective(raw_rows):
        return np.array([prob.fun_grad(prob.to_internal(r)[None], w)[0][0]
                         for r, w in zip(raw_rows, weights, strict=True)])

    assert ok.all()
    assert np.all(objective(new) <= objective(old) + 1e-9)


def test_spare_starts_stop_once_beaten_and_leave_the_others_alone():
    """A spare start of a group stops when another start of it has converged lower; the given
    starts run exactly as without spares."""
    def fun_grad(rows, x):  # Rosenbrock: minimum 0 at (1, 1), a long curved valley elsewhere
        u, v = x[:, 0], x[:, 1]
        f = (1 - u) ** 2 + 100 * (v - u**2) ** 2
        g = np.column_stack([-2 * (1 - u) - 400 * u * (v - u**2), 200 * (v - u**2)])
        return f, g

    lo, hi = np.full(2, -10.0), np.full(2, 10.0)
    near, far = [1.0 + 1e-4, 1.0], [-1.2, 1.0]
    given = np.array([near, far])
    spares = np.array([far, near])
    alone = minimize_batch(fun_grad, given, lo, hi, gtol=1e-10)
    both = minimize_batch(fun_grad, np.concatenate([given, spares]), lo, hi, gtol=1e-10,
                          groups=np.array([0, 1, 0, 1]), spare=np.array([False, False, True, True]))
    np.testing.assert_array_equal(both.x[:2], alone.x)
    np.testing.assert_array_equal(both.n_iter[:2], alone.n_iter)
    # group 0: the spare (far) stops when the given start (near) has converged, long before the
    # 40 steps it takes alone; group 1: the spare (near) converges first and is not stopped
    assert both.status[2] == BEATEN and both.f[2] > both.f[0]
    assert both.n_iter[2] < alone.n_iter[1] // 4
    assert both.status[3] in (GTOL, FTOL) and both.n_iter[3] == alone.n_iter[0]
