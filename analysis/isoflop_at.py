"""Predictions from an IsoFLOP fit at given compute budgets: N*, D* and the loss there, L*.

N*(C) and D*(C) = C/(k·N*) come from the fitted line log N* = a·log C + const. L*(C) is a
saturating power law in compute, L* = E + A·(C/C₀)^−γ (E ≥ 0; with fewer than 4 usable budgets
E = 0, a straight line in log-log), fitted by least squares on log L* of the budgets' minima.
Intervals: the same bootstrap draws as the IsoFLOP fit (each budget's window resampled), the
line and the loss law refitted on every draw. They measure how well the budgets pin the
allocation down, not how wrong it becomes beyond them: every budget outside the fitted range
gets a warning with its distance in decades.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from .bootstrap import interval
from .errors import AnalysisError
from .isoflop import IsoflopResult

MIN_FLOOR_BUDGETS = 4  # E, A, γ need more points than parameters


def _fit_loss(lc: np.ndarray, ll: np.ndarray, floor: bool,
              start: np.ndarray | None = None) -> np.ndarray:
    """(E, p, γ) of L = E + 10^(p − γ·lc), lc = log10 C − log10 C₀, fitted to ll = log10 L."""
    slope, icpt = np.polyfit(lc, ll, 1)
    if not floor:
        return np.array([0.0, icpt, -slope])
    lmin = float(10 ** ll.min())

    def resid(q):
        return np.log10(q[0] + 10 ** (q[1] - q[2] * lc)) - ll

    lo, hi = np.array([0.0, -50.0, 0.0]), np.array([0.999 * lmin, 50.0, 5.0])
    starts = [start] if start is not None else []  # a bootstrap refit starts at the optimum
    for frac in () if start is not None else (0.0, 0.5, 0.8, 0.95):
        e = frac * lmin
        s2, i2 = np.polyfit(lc, np.log10(10**ll - e), 1)
        starts.append(np.array([e, i2, max(-s2, 1e-3)]))
    best = None
    for s in starts:
        res = least_squares(resid, np.clip(s, lo, hi), bounds=(lo, hi), method="trf",
                            max_nfev=200)
        if best is None or res.cost < best.cost:
            best = res
    return best.x


def _loss_at(q: np.ndarray, lc: np.ndarray) -> np.ndarray:
    return q[0] + 10 ** (q[1] - q[2] * lc)


def predict_at(res: IsoflopResult, flops) -> tuple[list[dict], dict]:
    """One dict per budget in ``flops`` (keys flops, n_opt, n_opt_ci, d_opt, d_opt_ci, loss_opt,
    loss_opt_ci, warnings) and the fitted loss law ``{"E", "A", "gamma", "c0"}``."""
    flops = np.atleast_1d(np.asarray(flops, dtype=float))
    if not np.all(np.isfinite(flops) & (flops > 0)):
        raise AnalysisError(f"--at takes positive compute budgets in FLOPs; got {flops.tolist()}.")
    used = res.used()
    cb = np.array([b.flops for b in used])
    c0 = float(np.exp(np.mean(np.log(cb))))
    lc_b = np.log10(cb / c0)
    floor = len(used) >= MIN_FLOOR_BUDGETS
    q = _fit_loss(lc_b, np.log10([b.loss_opt for b in used]), floor)
    law = {"E": float(q[0]), "A": float(10 ** q[1]), "gamma": float(q[2]), "c0": c0,
           "floor": floor}
    lc = np.log10(flops / c0)
    n_opt, d_opt, l_opt = res.n_opt(flops), res.d_opt(flops), _loss_at(q, lc)
    n_ci = d_ci = l_ci = None
    if res.line_samples is not None and len(res.line_samples):
        lines = res.line_samples
        ns = 10 ** (lines[:, 1:2] + lines[:, 0:1] * np.log10(flops)[None, :])  # (R, m)
        n_ci = interval(ns, res.level)
        d_ci = interval(flops[None, :] / (res.k * ns), res.level)
        ls = np.full((len(lines), len(flops)), np.nan)
        need = MIN_FLOOR_BUDGETS if floor else 2
        for r, row in enumerate(res.loss_samples):
            ok = np.isfinite(row)
            if ok.sum() >= need:
                qr = _fit_loss(lc_b[ok], row[ok], floor and ok.sum() >= MIN_FLOOR_BUDGETS, q)
                ls[r] = _loss_at(qr, lc)
        l_ci = interval(ls, res.level)
    lo_c, hi_c = float(cb.min()), float(cb.max())
    out = []
    for j, c in enumerate(flops):
        warn = []
        dist = max(np.log10(c / hi_c), np.log10(lo_c / c), 0.0)
        if dist > 0:
            side = "beyond the largest" if c > hi_c else "below the smallest"
            warn.append(f"C = {c:.3g} is {dist:.2f} decades {side} fitted budget "
                        f"({lo_c:.3g}–{hi_c:.3g} FLOPs): the interval covers how well the "
                        "budgets pin the fit down, not a change of the law beyond them")
            if dist > 1:
                warn.append("more than a decade of extrapolation: published IsoFLOP "
                            "predictions this far out have missed by tens of percent")
        if not floor:
            warn.append(f"L* from a pure power law in C (only {len(used)} usable budgets, "
                        f"{MIN_FLOOR_BUDGETS} needed for a floor): it falls without limit")
        out.append({"flops": float(c), "n_opt": float(n_opt[j]), "n_opt_ci": _pair(n_ci, j),
                    "d_opt": float(d_opt[j]), "d_opt_ci": _pair(d_ci, j),
                    "loss_opt": float(l_opt[j]), "loss_opt_ci": _pair(l_ci, j),
                    "level": res.level, "warnings": warn})
    return out, law


def _pair(ci, j: int) -> list[float] | None:
    return None if ci is None else [float(ci[0][j]), float(ci[1][j])]
