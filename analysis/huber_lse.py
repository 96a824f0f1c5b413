"""Huber fit of sum-of-power-laws in log space: the engine behind the power and joint fits.

Model: log L̂ = LSE(e, a₁ − α₁·log x₁, …, a_K − α_K·log x_K), i.e. L̂ = E + Σ A_k·x_k^−α_k with
E = exp(e), A_k = exp(a_k). The objective is Σ_i w_i·Huber_δ(log L̂_i − log L_i).

Two choices make the optimum trustworthy:
- The optimiser always works on Σ w·Huber/δ, whatever ``reduction`` the user asks to report. With
  δ = 1e-3 the averaged objective has gradients ~1e-3/n, below scipy's default ``gtol``, and
  L-BFGS stops at the start (the pitfall found by the Chinchilla replication). Scaling is fixed
  here and tolerances are tight, so "sum" and "mean" give the same optimum by construction.
- Internally a_k is centred, a'_k = a_k − α_k·c_k with c_k = mean(log x_k): the same model, but
  a' and α are no longer almost collinear, which L-BFGS needs far fewer steps for.

Parameter vector (internal and raw): [e, a₁, α₁, …, a_K, α_K].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from .batch_lbfgs import FTOL, GTOL, minimize_batch, projected_gradient

ALPHA_MAX = 5.0
E_FLOOR_DECADES = 7.0  # E may go down to min(L)·1e-7, where it changes no prediction
CHUNK = 256
PG_TOL = 1e-6  # stationarity: projected gradient per unit of data weight


@dataclass
class LseProblem:
    """Data of one fit: centred log inputs ``x`` (n, K), log losses ``y`` (n,), Huber ``delta``."""

    x: np.ndarray
    y: np.ndarray
    delta: float
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def build(cls, log_x: np.ndarray, log_y: np.ndarray, delta: float) -> LseProblem:
        log_x = np.asarray(log_x, dtype=float).reshape(len(log_y), -1)
        log_y = np.asarray(log_y, dtype=float)
        center = log_x.mean(axis=0)
        k = log_x.shape[1]
        # A term whose value at the centre is e^-30 below the smallest loss has left the model;
        # bounding it there turns that plateau into a stationary point instead of an endless drift.
        lower = np.array([log_y.min() - E_FLOOR_DECADES * np.log(10)]
                         + [log_y.min() - 30.0, 0.0] * k)
        upper = np.array([log_y.max() + 5.0] + [log_y.max() + 30.0, ALPHA_MAX] * k)
        return cls(log_x - center, log_y, float(delta), center, lower, upper)

    @property
    def n_params(self) -> int:
        return 1 + 2 * self.x.shape[1]

    def to_internal(self, raw: np.ndarray) -> np.ndarray:
        """Raw [e, a, α, …] rows → centred rows."""
        t = np.array(raw, dtype=float, copy=True)
        for k, c in enumerate(self.center):
            t[..., 1 + 2 * k] -= t[..., 2 + 2 * k] * c
        return t

    def to_raw(self, internal: np.ndarray) -> np.ndarray:
        """Centred rows → raw [e, a, α, …] rows."""
        t = np.array(internal, dtype=float, copy=True)
        for k, c in enumerate(self.center):
            t[..., 1 + 2 * k] += t[..., 2 + 2 * k] * c
        return t

    def fun_grad(self, theta: np.ndarray, w: np.ndarray | None,
                 fast: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Σ w·Huber/δ and its gradient for parameter rows ``theta`` (P, p), weights (P, n) or (n,).

        ``fast`` does the elementwise work in float32 (float64 exp is ~7x slower here) and sums in
        float64: precise to ~1e-7 relative, enough to bring a start into its basin; every reported
        optimum is polished in float64.
        """
        theta = np.atleast_2d(theta)
        if theta.shape[0] > CHUNK:  # blocks that stay in cache are 2-4x faster than one big pass
            w2 = w is not None and np.ndim(w) == 2
            parts = [self.fun_grad(theta[i:i + CHUNK], w[i:i + CHUNK] if w2 else w, fast)
                     for i in range(0, theta.shape[0], CHUNK)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        dt = np.float32 if fast else np.float64
        x = self.x.astype(dt, copy=False)
        th = theta.astype(dt, copy=False)
        d = self.delta
        e_term = np.exp(th[:, :1])  # (P, 1); bounded below, so never underflows
        terms = []
        total = np.broadcast_to(e_term, (theta.shape[0], x.shape[0])).copy()
        for j in range(x.shape[1]):
            z = np.multiply.outer(th[:, 2 + 2 * j], x[:, j])
            np.subtract(th[:, 1 + 2 * j, None], z, out=z)
            np.minimum(z, 700.0, out=z)  # exp(700) is finite; such a start is just very wrong
            np.exp(z, out=z)
            total += z
            terms.append(z)
        r = np.log(total)
        r -= self.y.astype(dt, copy=False)
        c = np.clip(r, -d, d)  # δ·ψ(r)
        r -= 0.5 * c
        r *= c  # Huber_δ(r) = c·(r − c/2)
        if w is not None:
            w = np.asarray(w).astype(dt, copy=False)
            r *= w
            c *= w
        f = r.sum(axis=1, dtype=np.float64) / d
        c /= total
        c /= d  # d objective / d L̂
        g = np.empty(theta.shape)
        g[:, 0] = c.sum(axis=1, dtype=np.float64) * e_term[:, 0]
        for j, t in enumerate(terms):
            t *= c
            g[:, 1 + 2 * j] = t.sum(axis=1, dtype=np.float64)
            g[:, 2 + 2 * j] = -(t.astype(np.float64) @ self.x[:, j]) if not fast else -(t @ x[:, j])
        return f, g

    def huber(self, raw: np.ndarray) -> np.ndarray:
        """Per-point Huber_δ of log residuals (not divided by δ) for one raw parameter row."""
        r = self.log_pred(raw) - self.y
        absr = np.abs(r)
        return np.where(absr <= self.delta, 0.5 * r * r, self.delta * (absr - 0.5 * self.delta))

    def log_pred(self, raw: np.ndarray) -> np.ndarray:
        """log L̂ at the data for raw parameters."""
        t = self.to_internal(np.asarray(raw, dtype=float))
        k = self.x.shape[1]
        cols = [np.full(self.x.shape[0], t[0])]
        cols += [t[1 + 2 * j] - t[2 + 2 * j] * self.x[:, j] for j in range(k)]
        return np.logaddexp.reduce(np.stack(cols), axis=0)


@dataclass
class LseSolution:
    """Best optimum (raw parameters), scaled objective, convergence, distinct local optima."""

    raw: np.ndarray
    objective_scaled: float
    converged: bool
    message: str
    n_iter: int
    optima: np.ndarray = field(repr=False)  # distinct local optima, internal coords, best first
    n_starts: int = 0


def _polish(prob: LseProblem, t0: np.ndarray, w: np.ndarray, max_iter: int = 2000):
    """scipy L-BFGS-B from ``t0`` with tight tolerances; returns (x, f, converged, message, nit)."""

    def fg(t):
        f, g = prob.fun_grad(t[None, :], w)
        return float(f[0]), g[0]

    bounds = list(zip(prob.lower, prob.upper, strict=True))
    bounds = [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi) for lo, hi in bounds]
    res = minimize(fg, t0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20})
    pg = projected_gradient(res.x, res.jac, prob.lower, prob.upper)
    scale = max(float(np.sum(w)), 1.0)
    # Line-search "failures" at the optimum are normal for Huber's kinked curvature; what counts
    # is that no descent direction of any size is left.
    converged = bool(res.success) or float(np.abs(pg).max()) <= PG_TOL * scale
    msg = str(res.message)
    return res.x, float(res.fun), converged, msg, int(res.nit)


def distinct_optima(x: np.ndarray, f: np.ndarray, limit: int, tol: float = 1e-3) -> np.ndarray:
    """Up to ``limit`` rows of ``x`` with the lowest ``f`` that differ by more than ``tol``."""
    order = np.argsort(np.where(np.isfinite(f), f, np.inf), kind="stable")
    kept: list[np.ndarray] = []
    for i in order:
        if not np.isfinite(f[i]):
            break
        if all(np.abs(x[i] - k).max() > tol for k in kept):
            kept.append(x[i])
            if len(kept) >= limit:
                break
    return np.array(kept)


def _converged(prob: LseProblem, x: np.ndarray, g: np.ndarray, status: np.ndarray,
               wsum: np.ndarray) -> np.ndarray:
    """Batched convergence verdict, as scipy's L-BFGS-B gives it: the projected gradient or the
    relative decrease fell below tolerance; or the projected gradient is ~0 for the data weight.
    Line-search failures and iteration limits are not converged."""
    pg = np.abs(projected_gradient(x, g, prob.lower, prob.upper)).max(axis=1)
    return (status == GTOL) | (status == FTOL) | (pg <= PG_TOL * np.maximum(wsum, 1.0))


def refine(prob: LseProblem, starts: np.ndarray, weights: np.ndarray | None,
           max_iter: int = 2000, ftol: float = 1e-15, groups: np.ndarray | None = None,
           spare: np.ndarray | None = None):
    """Tight float64 batched L-BFGS from internal ``starts``; weights (n,), (P, n) or None;
    ``groups`` and ``spare``: extra starts that stop once beaten (``minimize_batch``)."""
    shared = weights is None or np.ndim(weights) == 1

    def fg(rows, t):
        return prob.fun_grad(t, weights if shared else weights[rows])

    if shared:
        wsum = np.full(len(starts), prob.y.size if weights is None else np.sum(weights))
    else:
        wsum = weights.sum(axis=1)
    res = minimize_batch(fg, starts, prob.lower, prob.upper, ftol=ftol, gtol=1e-10,
                         max_iter=max_iter, groups=groups, spare=spare)
    return res, _converged(prob, res.x, res.g, res.status, wsum)


def solve(prob: LseProblem, starts_raw: np.ndarray, weights: np.ndarray | None = None,
          n_polish: int = 8) -> LseSolution:
    """Multi-start fit.

    Every start runs in the batched L-BFGS (float32, loose: it only has to find its basin); the
    best ``n_polish`` distinct optima are refined together in float64 with tight tolerances; the
    best of those gets a final scipy L-BFGS-B run, which also gives the convergence verdict.
    """
    w = None if weights is None else np.asarray(weights, dtype=float)
    starts = np.clip(prob.to_internal(np.atleast_2d(starts_raw)), prob.lower, prob.upper)
    coarse = minimize_batch(lambda rows, t: prob.fun_grad(t, w, fast=True), starts,
                            prob.lower, prob.upper, ftol=1e-9, gtol=1e-7, max_iter=300)
    cands = distinct_optima(coarse.x, coarse.f, n_polish, tol=0.05)
    if len(cands) == 0:
        return LseSolution(np.full(prob.n_params, np.nan), np.inf, False,
                           "every start gave a non-finite objective", 0,
                           np.empty((0, prob.n_params)), len(starts))
    fine, _ = refine(prob, cands, w, max_iter=300)
    wfull = np.ones(prob.y.size) if w is None else w
    best = None
    for i in np.argsort(fine.f)[:3]:  # scipy's L-BFGS-B finishes the best few and gives the verdict
        x, f, conv, msg, nit = _polish(prob, fine.x[i], wfull)
        fine.x[i], fine.f[i] = x, f
        if best is None or f < best[1]:
            best = (x, f, conv, msg, nit + int(fine.n_iter[i]))
    x, f, conv, msg, nit = best
    # Local optima far worse than the best (typically a term that left the model) are no use as
    # warm starts for resamples, and they drift for many iterations; keep the competitive ones.
    near = fine.f <= 3.0 * f + 1e-9 * prob.y.size
    optima = distinct_optima(fine.x[near], fine.f[near], n_polish)
    return LseSolution(prob.to_raw(x), f, conv, msg, nit, optima, len(starts))


def with_floor_starts(prob: LseProblem, warm: np.ndarray) -> np.ndarray:
    """``warm`` (K, p internal) plus, when E is free, each start with E at its lower bound (E = 0).

    A resample whose optimum has no floor is reached from a start with a floor only by a crawl:
    the gradient in e = log E shrinks with E, so L-BFGS takes ~1000 steps of tiny decrease down
    to the bound (and then scipy as many again) while E, A and α trade off along the valley. From
    E = 0 the same optimum is a few steps away."""
    lo = prob.lower[0]
    if prob.upper[0] <= lo:  # E pinned (no floor): nothing to add
        return warm
    snapped = warm[warm[:, 0] > lo + 1e-9].copy()
    snapped[:, 0] = lo
    return np.concatenate([warm, snapped])


def solve_resamples(prob: LseProblem, weights: np.ndarray,
                    warm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refit for each row of ``weights`` (R, n) from every warm start (K, p internal) and its copy
    with E = 0 (``with_floor_starts``; it runs only while it may beat the given starts).

    Returns raw parameters (R, p) and a converged flag (R,). All R·K problems run together in the
    float64 batched L-BFGS with tight tolerances; each resample keeps its best.
    """
    k_given = np.atleast_2d(warm).shape[0]
    warm = with_floor_starts(prob, np.atleast_2d(warm))
    n_res, k = weights.shape[0], warm.shape[0]
    # The E = 0 starts are spare: once a given start has converged lower, they stop.
    res, conv = refine(prob, np.tile(warm, (n_res, 1)), np.repeat(weights, k, axis=0),
                       max_iter=1000, ftol=1e-12, groups=np.repeat(np.arange(n_res), k),
                       spare=np.tile(np.arange(k) >= k_given, n_res))
    f = np.where(np.isfinite(res.f), res.f, np.inf).reshape(n_res, k)
    pick = np.argmin(f, axis=1)
    rows = np.arange(n_res) * k + pick
    x = res.x[rows]
    ok = np.isfinite(f[np.arange(n_res), pick]) & conv[rows]
    # The few that stopped without a clear stationarity verdict get scipy's L-BFGS-B and its word.
    for r in np.flatnonzero(~ok & np.isfinite(f[np.arange(n_res), pick])):
        x[r], _, ok[r], _, _ = _polish(prob, x[r], weights[r], max_iter=1000)
    return prob.to_raw(x), ok
