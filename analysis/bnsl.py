"""Broken neural scaling law (Caballero et al. 2023) with one or more breaks, for sharp transitions.

y = a + b·x^−c0 · Π_i (1 + (x/d_i)^(1/f_i))^(−c_i·f_i)

Fitted as in the paper: a grid search, then least squares on log(y + 1) residuals. For each grid
point of the shape parameters (c0, c_i, d_i, f_i) the amplitudes (a, b) enter linearly and are
solved exactly, so the grid is dense where it matters. More breaks are added one at a time
(greedy grid over the new break, then all parameters refined together).
"""

from __future__ import annotations

import itertools
import warnings as _warnings

import numpy as np
from scipy.optimize import least_squares

from .bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    chunks,
    default_jobs,
    parallel_map,
    resample_weights,
)
from .data import valid_mask
from .errors import AnalysisError, FitWarning
from .fitting import check_points
from .laws import bnsl_param_names, predict_bnsl
from .result import Fit, Goodness

C0_GRID = (0.0, 0.1, 0.25, 0.5, 1.0)
C_GRID = (-0.5, -0.2, 0.1, 0.25, 0.5, 1.0, 2.0)
F_GRID = (0.05, 0.2, 0.5, 1.5)
N_BREAK_POSITIONS = 9


def _to_public(z: np.ndarray) -> np.ndarray:
    """Optimiser vector [a, log b, c0, (c, log d, log f)…] → public [a, b, c0, (c, d, f)…]."""
    p = np.array(z, dtype=float, copy=True)
    p[..., 1] = np.exp(z[..., 1])
    p[..., 4::3] = np.exp(z[..., 4::3])
    p[..., 5::3] = np.exp(z[..., 5::3])
    return p


def _to_internal(p: np.ndarray) -> np.ndarray:
    z = np.array(p, dtype=float, copy=True)
    z[..., 1] = np.log(p[..., 1])
    z[..., 4::3] = np.log(p[..., 4::3])
    z[..., 5::3] = np.log(p[..., 5::3])
    return z


def _bounds(lx: np.ndarray, y: np.ndarray, breaks: int) -> tuple[np.ndarray, np.ndarray]:
    span = lx.max() - lx.min()
    lo = [0.0, -50.0, -2.0] + [-10.0, lx.min() - 0.5 * span, np.log(0.01)] * breaks
    hi = [float(y.max()), 50.0, 5.0] + [10.0, lx.max() + 0.5 * span, np.log(10.0)] * breaks
    return np.array(lo), np.array(hi)


def _shape(lx: np.ndarray, z: np.ndarray) -> np.ndarray:
    """x^−c0·Π(…) for shape rows z (..., p) without a and b: shape (..., n)."""
    out = -z[..., 2, None] * lx
    for i in range((z.shape[-1] - 3) // 3):
        c, ld, lf = z[..., 3 + 3 * i, None], z[..., 4 + 3 * i, None], z[..., 5 + 3 * i, None]
        f = np.exp(lf)
        out = out - c * f * np.logaddexp(0.0, (lx - ld) / f)
    return np.exp(np.clip(out, -700, 700))


def _amplitudes(g: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of y ≈ a + b·g per row of g, with a ≥ 0 and b > 0."""
    sw = w.sum()
    gm = (g * w).sum(-1) / sw
    ym = (y * w).sum() / sw
    var = ((g - gm[..., None]) ** 2 * w).sum(-1)
    cov = ((g - gm[..., None]) * (y - ym) * w).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = cov / var
        a = ym - b * gm
        neg = a < 0
        b0 = (g * y * w).sum(-1) / (g * g * w).sum(-1)
    b = np.where(neg, b0, b)
    a = np.where(neg, 0.0, a)
    return a, np.maximum(b, 1e-300)


def _grid_search(lx, y, w, base: np.ndarray | None, keep: int) -> np.ndarray:
    """Best ``keep`` internal vectors from a grid over (c0 and) the newest break's shape."""
    pos = np.linspace(lx.min(), lx.max(), N_BREAK_POSITIONS + 2)[1:-1]
    if base is None:
        rows = [(0.0, 0.0, c0, c, ld, np.log(f))
                for c0, c, ld, f in itertools.product(C0_GRID, C_GRID, pos, F_GRID)]
        z = np.array(rows)
    else:
        new = np.array([(c, ld, np.log(f)) for c, ld, f in itertools.product(C_GRID, pos, F_GRID)])
        z = np.hstack([np.repeat(base[None, :], len(new), axis=0), new])
    g = _shape(lx, z)
    a, b = _amplitudes(g, y, w)
    z[:, 0], z[:, 1] = a, np.log(b)
    pred = a[:, None] + b[:, None] * g
    with np.errstate(invalid="ignore"):
        loss = (w * (np.log1p(np.maximum(pred, -0.999)) - np.log1p(y)) ** 2).sum(-1)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    return z[np.argsort(loss)[:keep]]


def _refine(lx, y, w, z0, lo, hi, max_nfev: int = 2000):
    sw = np.sqrt(w)
    ly = np.log1p(y)

    def resid(z):
        pred = z[0] + np.exp(z[1]) * _shape(lx, z[None, :])[0]
        return sw * (np.log1p(np.maximum(pred, -0.999)) - ly)

    res = least_squares(resid, np.clip(z0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi),
                        method="trf", x_scale="jac", max_nfev=max_nfev, ftol=1e-12, xtol=1e-12,
                        gtol=1e-12)
    return res.x, float(2 * res.cost), bool(res.status > 0), str(res.message)


def _solve(lx, y, w, breaks: int, starts: int = 8):
    lo, hi = _bounds(lx, y, breaks)
    best = None
    base = None
    for k in range(1, breaks + 1):
        lo_k, hi_k = _bounds(lx, y, k)
        cands = _grid_search(lx, y, w, base, starts)
        results = [_refine(lx, y, w, c, lo_k, hi_k) for c in cands]
        best = min(results, key=lambda r: r[1])
        base = best[0]
    assert best is not None and base.size == lo.size
    return best


def _bootstrap_task(task):
    lx, y, weights, z0, breaks = task
    lo, hi = _bounds(lx, y, breaks)
    out = np.full((len(weights), z0.size), np.nan)
    ok = np.zeros(len(weights), dtype=bool)
    for r, w in enumerate(weights):
        z, _, conv, _ = _refine(lx, y, w, z0, lo, hi)
        out[r], ok[r] = z, conv
    return out, ok


def fit_bnsl(x, y, *, breaks: int = 1, bootstrap: int = DEFAULT_RESAMPLES, seed: int | None = 0,
             level: float = DEFAULT_LEVEL, n_jobs: int | None = None, groups=None,
             name: str = "x") -> Fit:
    """Fit a broken neural scaling law with ``breaks`` breaks to positive finite (x, y)."""
    if breaks < 1:
        raise AnalysisError("A broken scaling law needs at least one break (--breaks 1); for no "
                            "break fit the power law instead.")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep, dropped = valid_mask({name: x, "y": y})
    x, y = x[keep], y[keep]
    groups = None if groups is None else np.asarray(groups)[keep]
    names = bnsl_param_names(breaks)
    check_points(f"A broken neural scaling law with {breaks} break(s)", len(names), len(y),
                 {name: len(np.unique(x))}, len(names))
    lx = np.log(x)
    w = np.ones_like(y)
    z, obj, conv, msg = _solve(lx, y, w, breaks)
    values = _to_public(z)
    pred = predict_bnsl(values, x)
    gof = Goodness.of(y, pred)
    warn = [] if conv else [f"least squares did not converge ({msg}); treat the fit as unreliable"]
    for m in warn:
        _warnings.warn(f"bnsl fit: {m}", FitWarning, stacklevel=2)
    samples, n_failed = None, 0
    if bootstrap > 0:
        weights = resample_weights(len(y), bootstrap, seed, groups)
        jobs = n_jobs if n_jobs is not None else (default_jobs() if bootstrap >= 50 else 1)
        tasks = [(lx, y, weights[s], z, breaks) for s in chunks(bootstrap)]
        parts = parallel_map(_bootstrap_task, tasks, jobs)
        zs = np.concatenate([p[0] for p in parts])
        ok = np.concatenate([p[1] for p in parts])
        n_failed = int((~ok).sum())
        samples = _to_public(zs[ok])
        if n_failed:
            warn.append(f"{n_failed} of {bootstrap} bootstrap refits did not converge and were "
                        "left out of the intervals")
            _warnings.warn(f"bnsl fit: {warn[-1]}", FitWarning, stacklevel=2)
    warn = dropped + warn
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = np.log(y) - np.log(np.maximum(pred, 1e-300))
    return Fit(law="bnsl", param_names=names, values=values, n_points=len(y), objective=obj,
               converged=conv, message=msg, gof=gof, log_residuals=resid, samples=samples,
               level=level, n_failed_resamples=n_failed, warnings=warn, inputs=(name,),
               input_range={name: (float(x.min()), float(x.max()))}, seed=seed)


def rmsle(fit: Fit, x, y) -> float:
    """Root mean squared log(y+1) error of ``fit`` on (x, y), the paper's held-out score."""
    pred = fit.predict(np.asarray(x, float))
    return float(np.sqrt(np.mean((np.log1p(pred) - np.log1p(np.asarray(y, float))) ** 2)))
