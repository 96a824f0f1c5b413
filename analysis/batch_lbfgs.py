"""Box-constrained L-BFGS run on many independent problems at once, in lockstep, with numpy.

Scaling-law fits start from thousands of points (the 4,500-point grid) and bootstrap resamples are
thousands more problems of the same small size. Running them one at a time through scipy costs tens
of microseconds of Python overhead per iteration per start; here every iteration is a handful of
array operations over all still-running problems. The result of each problem is then polished and
judged by scipy's L-BFGS-B (see ``huber_lse``), so this module only has to get each start into its
basin and close to its optimum, reliably.

Algorithm per problem: L-BFGS two-loop recursion (memory ``m``), variables at a bound whose
gradient points outward are frozen for the step (projected direction), backtracking Armijo line
search on the projected path, curvature pairs with sᵀy ≤ 0 skipped. A problem stops when its
projected gradient is below ``gtol``, its relative decrease is below ``ftol``, its line search
fails, or ``max_iter`` is reached; a ``spare`` start also when another start of its group has
converged to a lower objective.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# fun_grad(rows, x) -> (f, g): objective (k,) and gradient (k, p) of problems ``rows`` at ``x``.
FunGrad = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

RUNNING, GTOL, FTOL, LINESEARCH, MAXITER, BEATEN = 0, 1, 2, 3, 4, 5


@dataclass
class BatchResult:
    """Final points, objectives, gradients, iterations and stop reasons, one row per problem."""

    x: np.ndarray
    f: np.ndarray
    g: np.ndarray
    n_iter: np.ndarray
    status: np.ndarray


def projected_gradient(x: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Gradient with the components that would push through an active bound set to zero."""
    pg = g.copy()
    pg[(x <= lo) & (g > 0)] = 0.0
    pg[(x >= hi) & (g < 0)] = 0.0
    return pg


def minimize_batch(
    fun_grad: FunGrad,
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    memory: int = 10,
    max_iter: int = 300,
    gtol: float = 1e-8,
    ftol: float = 1e-9,
    max_linesearch: int = 40,
    groups: np.ndarray | None = None,
    spare: np.ndarray | None = None,
) -> BatchResult:
    """Minimise P independent problems from starts ``x0`` (P, p) within ``[lower, upper]`` (p,).

    ``groups`` (P,) labels starts of one fit, of which only the best is used, and ``spare`` (P,)
    marks extra starts among them: a spare start stops (status BEATEN) as soon as a converged
    start of its group has a lower objective than its own, so it costs iterations only where it
    may win. Every other start runs exactly as it would alone (the problems never interact)."""
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    x = np.clip(np.asarray(x0, dtype=float), lo, hi)
    n_prob, p = x.shape
    f, g = fun_grad(np.arange(n_prob), x)
    f = np.where(np.isfinite(f), f, np.inf)
    n_iter = np.zeros(n_prob, dtype=int)
    status = np.zeros(n_prob, dtype=int)
    s_mem = np.zeros((n_prob, memory, p))
    y_mem = np.zeros((n_prob, memory, p))
    rho = np.zeros((n_prob, memory))  # 0 marks an empty or skipped slot
    gamma = np.ones(n_prob)
    has_pair = np.zeros(n_prob, dtype=bool)
    active = np.flatnonzero(np.isfinite(f))
    status[~np.isfinite(f)] = LINESEARCH
    if spare is not None:
        groups = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
        spare = np.asarray(spare, dtype=bool)
        best = np.empty(int(groups.max()) + 1 if groups.size else 0)

    for it in range(max_iter):
        if spare is not None and active.size:
            active = _drop_beaten(active, f, status, groups, spare, best)
        if active.size == 0:
            break
        xa, fa, ga = x[active], f[active], g[active]
        pg = projected_gradient(xa, ga, lo, hi)
        done = np.abs(pg).max(axis=1) <= gtol
        status[active[done]] = GTOL
        keep = ~done
        active, xa, fa, ga, pg = active[keep], xa[keep], fa[keep], ga[keep], pg[keep]
        if active.size == 0:
            break

        # Two-loop recursion, newest pair first; all problems share the slot order.
        order = [(it - 1 - j) % memory for j in range(memory)]
        q = ga.copy()
        alphas = []
        sm, ym, rm = s_mem[active], y_mem[active], rho[active]
        for j in order:
            a_j = rm[:, j] * np.einsum("ij,ij->i", sm[:, j], q)
            q -= a_j[:, None] * ym[:, j]
            alphas.append(a_j)
        q *= gamma[active][:, None]
        for j, a_j in zip(reversed(order), reversed(alphas), strict=True):
            b_j = rm[:, j] * np.einsum("ij,ij->i", ym[:, j], q)
            q += (a_j - b_j)[:, None] * sm[:, j]
        d = -q
        frozen = ((xa <= lo) & (d < 0)) | ((xa >= hi) & (d > 0))
        d[frozen] = 0.0
        slope = np.einsum("ij,ij->i", ga, d)
        reset = ~(slope < 0)
        if reset.any():  # not a descent direction: fall back to steepest descent, forget memory
            d[reset] = -pg[reset]
            rho[active[reset]] = 0.0
            gamma[active[reset]] = 1.0
            has_pair[active[reset]] = False
        # First step without curvature information: a unit move in the largest coordinate.
        step = np.ones(active.size)
        fresh = ~has_pair[active]
        step[fresh] = 1.0 / np.maximum(np.abs(d[fresh]).max(axis=1), 1.0)

        x_new, f_new, g_new = xa.copy(), fa.copy(), ga.copy()
        pending = np.arange(active.size)
        for _ in range(max_linesearch):
            xt = np.clip(xa[pending] + step[pending, None] * d[pending], lo, hi)
            ft, gt = fun_grad(active[pending], xt)
            decrease = np.einsum("ij,ij->i", ga[pending], xt - xa[pending])
            ok = np.isfinite(ft) & (ft <= fa[pending] + 1e-4 * decrease)
            acc = pending[ok]
            x_new[acc], f_new[acc], g_new[acc] = xt[ok], ft[ok], gt[ok]
            pending = pending[~ok]
            if pending.size == 0:
                break
            step[pending] *= 0.5
        failed = np.zeros(active.size, dtype=bool)
        failed[pending] = True

        s = x_new - xa
        yv = g_new - ga
        sy = np.einsum("ij,ij->i", s, yv)
        yy = np.einsum("ij,ij->i", yv, yv)
        good = (sy > 1e-10 * np.maximum(yy, 1e-300)) & ~failed
        slot = it % memory
        idx = active
        s_mem[idx, slot] = s
        y_mem[idx, slot] = yv
        rho[idx, slot] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        gamma[idx[good]] = sy[good] / yy[good]
        has_pair[idx[good]] = True

        x[idx], f[idx], g[idx] = x_new, f_new, g_new
        n_iter[idx] += 1
        rel = (fa - f_new) <= ftol * np.maximum(np.maximum(np.abs(fa), np.abs(f_new)), 1.0)
        status[idx[failed]] = LINESEARCH
        status[idx[rel & ~failed]] = FTOL
        active = idx[(status[idx] == RUNNING)]
    status[status == RUNNING] = MAXITER
    return BatchResult(x=x, f=f, g=g, n_iter=n_iter, status=status)


def _drop_beaten(active: np.ndarray, f: np.ndarray, status: np.ndarray, groups: np.ndarray,
                 spare: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``active`` less the spare problems whose objective is above the best converged one of
    their group; those get status BEATEN."""
    conv = (status == GTOL) | (status == FTOL)
    if not conv.any():
        return active
    best.fill(np.inf)
    np.minimum.at(best, groups[conv], f[conv])
    beaten = spare[active] & (f[active] > best[groups[active]])
    status[active[beaten]] = BEATEN
    return active[~beaten]
