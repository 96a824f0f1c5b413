"""IsoFLOP analysis (Hoffmann et al. 2022, Approach 2), without the wide-grid bias.

Per compute budget: merge sizes equal within ``size_rtol`` into one size, take the sampled size
with the lowest loss, and fit a parabola of loss against log size only on the ``window`` distinct
sizes nearest it (default 7), or on the sizes within ``window_decades`` of it. Far from its
minimum an IsoFLOP profile is not a parabola in log N when α ≠ β, so one parabola over a grid of
1.4–2 decades moves the vertex (and the exponent a by 0.05–0.07 in published sweeps); Porian et
al. (2024) found a parabola on at most 7 points around the minimum within 0.03 of their Akima
interpolant on every configuration. A budget whose lowest loss is at the smallest or largest
sampled size has no bracketed minimum and is dropped (``edge="drop"``, default) or kept and
flagged (``edge="flag"``). Then log N* = a·log C + const and log D* = b·log C + const with
C = k·N·D.

The size axis is N (``n``) or D (``d``, for tables that give only tokens); with both, k is the
median C/(N·D) unless given. Intervals: percentile bootstrap resampling the points of each
budget's window (budgets independently).
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np

from .bootstrap import DEFAULT_LEVEL, interval
from .data import valid_mask
from .errors import AnalysisError, FitWarning

MIN_SPAN_DECADES = 0.3  # a window spanning less than a factor 2 cannot show the curvature
EDGE_FRACTION = 0.2  # minimum within the outer 20% of the sampled log-size range: asymmetric grid
DEFAULT_WINDOW = 7  # distinct sizes around the lowest loss (Porian et al.: ≤ 7 points)
SIZE_RTOL = 1e-3  # sizes closer than 0.1% are one size (e.g. 1.39739745e8 and 1.39739844e8)
WIDE_DECADES = 1.0  # a budget grid wider than this, off-centre, biases one global parabola


@dataclass
class Budget:
    """One compute budget: its parabola minimum and whether it was used for the slope."""

    flops: float
    n_points: int
    n_opt: float | None
    loss_opt: float | None
    d_opt: float | None
    n_range: tuple[float, float]  # sampled range of the size axis
    coef: tuple[float, float, float] | None  # loss = c2·u² + c1·u + c0, u = log10 size
    used: bool
    position: float | None = None  # where the minimum sits in the sampled log-size range, 0..1
    issue: str | None = None
    fit_range: tuple[float, float] | None = None  # sizes of the window the parabola was fitted on
    n_fit: int = 0  # points in that window

    def to_dict(self) -> dict:
        return {"flops": self.flops, "n_points": self.n_points, "n_fit": self.n_fit,
                "n_opt": self.n_opt, "d_opt": self.d_opt, "loss_opt": self.loss_opt,
                "n_min": self.n_range[0], "n_max": self.n_range[1],
                "fit_min": self.fit_range[0] if self.fit_range else None,
                "fit_max": self.fit_range[1] if self.fit_range else None,
                "used": self.used, "position": self.position, "issue": self.issue}


@dataclass
class IsoflopResult:
    """Slopes a (N*) and b (D*) against C, with coefficients and bootstrap intervals.

    N* = 10^intercept · C^a and D* = 10^d_intercept · C^b, b = 1 − a since C = k·N·D.
    """

    a: float
    intercept: float
    b: float
    a_ci: tuple[float, float] | None
    b_ci: tuple[float, float] | None
    budgets: list[Budget]
    level: float
    k: float
    warnings: list[str] = field(default_factory=list)
    a_samples: np.ndarray | None = field(default=None, repr=False)
    axis: str = "N"
    k_source: str = "given"
    window: int | float | None = DEFAULT_WINDOW
    # bootstrap draws: (slope a, intercept) rows and per-used-budget log10 loss_opt, shape (R, B)
    line_samples: np.ndarray | None = field(default=None, repr=False)
    loss_samples: np.ndarray | None = field(default=None, repr=False)

    @property
    def d_intercept(self) -> float:
        return -np.log10(self.k) - self.intercept

    def n_opt(self, flops) -> np.ndarray:
        """N*(C) from the fitted line."""
        return 10 ** (self.intercept + self.a * np.log10(np.asarray(flops, dtype=float)))

    def d_opt(self, flops) -> np.ndarray:
        """D*(C) = C / (k·N*(C))."""
        return np.asarray(flops, dtype=float) / (self.k * self.n_opt(flops))

    def used(self) -> list[Budget]:
        return [b for b in self.budgets if b.used]

    def intercept_ci(self) -> tuple[float, float] | None:
        if self.line_samples is None or not len(self.line_samples):
            return None
        lo, hi = interval(self.line_samples[:, 1], self.level)
        return float(lo), float(hi)

    def to_dict(self) -> dict:
        ici = self.intercept_ci()
        return {"a": self.a, "a_ci": list(self.a_ci) if self.a_ci else None,
                "b": self.b, "b_ci": list(self.b_ci) if self.b_ci else None,
                "intercept": self.intercept, "n_coefficient": 10**self.intercept,
                "n_coefficient_ci": [10 ** ici[0], 10 ** ici[1]] if ici else None,
                "d_intercept": self.d_intercept, "d_coefficient": 10**self.d_intercept,
                "d_coefficient_ci": ([10 ** (-np.log10(self.k) - ici[1]),
                                      10 ** (-np.log10(self.k) - ici[0])] if ici else None),
                "axis": self.axis, "window": self.window, "level": self.level,
                "flops_per_param_token": self.k, "k_source": self.k_source,
                "budgets": [b.to_dict() for b in self.budgets], "warnings": list(self.warnings)}


def group_budgets(flops: np.ndarray, rel_tol: float = 0.1) -> np.ndarray:
    """Label runs whose compute agrees within ``rel_tol`` (relative) as one budget."""
    order = np.argsort(flops)
    labels = np.empty(len(flops), dtype=int)
    lf = np.log(flops)
    label, start = 0, lf[order[0]]
    for i in order:
        if lf[i] - start > np.log1p(rel_tol):
            label, start = label + 1, lf[i]
        labels[i] = label
    return labels


def merge_sizes(u: np.ndarray, rtol: float = SIZE_RTOL) -> np.ndarray:
    """Snap log10 sizes that differ by less than ``rtol`` (relative, chained) to their mean."""
    order = np.argsort(u)
    out = u.astype(float).copy()
    tol = np.log10(1 + rtol)
    start = 0
    for i in range(1, len(order) + 1):
        if i == len(order) or u[order[i]] - u[order[i - 1]] > tol:
            idx = order[start:i]
            out[idx] = u[idx].mean()
            start = i
    return out


def _parabolas(u: np.ndarray, loss: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares parabolas for each weight row (R, n): coefficients (R, 3) as
    (c2, c1, c0); NaN where fewer than 3 distinct sizes are drawn. ``u`` should be centred."""
    v = np.stack([u**2, u, np.ones_like(u)], axis=1)  # (n, 3)
    a = np.einsum("rn,ni,nj->rij", w, v, v)
    rhs = np.einsum("rn,ni,n->ri", w, v, loss)
    distinct = np.array([len(np.unique(u[row > 0])) for row in w])
    out = np.full((len(w), 3), np.nan)
    ok = distinct >= 3
    if ok.any():
        try:
            out[ok] = np.linalg.solve(a[ok], rhs[ok][..., None])[..., 0]
        except np.linalg.LinAlgError:  # near-singular rows: least squares one by one
            for r in np.flatnonzero(ok):
                out[r] = np.linalg.lstsq(a[r], rhs[r], rcond=None)[0]
    return out


def _minimum(coef: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex u* and loss there for coefficient rows; NaN unless convex and inside [lo, hi]."""
    c2, c1, c0 = coef[:, 0], coef[:, 1], coef[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = -c1 / (2 * c2)
        valid = (c2 > 0) & (u >= lo) & (u <= hi)
        return np.where(valid, u, np.nan), np.where(valid, c0 - c1**2 / (4 * c2), np.nan)


def _window(vals: np.ndarray, j: int, window: int | None, decades: float | None) -> np.ndarray:
    """Distinct sizes (sorted ``vals``) of the fitting window around index ``j``."""
    if decades is not None:
        sel = vals[np.abs(vals - vals[j]) <= decades / 2 + 1e-12]
        if len(sel) >= 3:
            return sel
        window = 3
    if not window or window >= len(vals):
        return vals
    w = max(3, int(window))
    start = int(np.clip(j - w // 2, 0, len(vals) - w))
    return vals[start:start + w]


def _resolve_k(flops, n, d, k) -> tuple[float, str]:
    if k is not None:
        if not k > 0:
            raise AnalysisError(f"The FLOPs per parameter and token k must be positive; got {k}.")
        return float(k), "given"
    if n is not None and d is not None:
        return float(np.median(flops / (n * d))), "median C/(N·D) of the table"
    return 6.0, "assumed (C = 6·N·D)"


def isoflop(flops, n, loss, *, d=None, budget=None, rel_tol: float = 0.1, k: float | None = None,
            window: int | None = DEFAULT_WINDOW, window_decades: float | None = None,
            size_rtol: float = SIZE_RTOL, edge: str = "drop", bootstrap: int = 1000,
            seed: int | None = 0, level: float = DEFAULT_LEVEL,
            min_span_decades: float = MIN_SPAN_DECADES) -> IsoflopResult:
    """IsoFLOP fit on the size axis N (``n``) or, when ``n`` is None, D (``d``).

    ``budget`` (labels per run) overrides grouping runs by ``flops``; ``window`` = 0 or None fits
    every point of a budget (the biased classic); ``k`` None: median C/(N·D) with both columns,
    else 6.
    """
    if n is None and d is None:
        raise AnalysisError("IsoFLOP needs a size column: --n (parameters) or --d (tokens).")
    if edge not in ("drop", "flag"):
        raise AnalysisError(f"edge must be 'drop' or 'flag'; got {edge!r}.")
    if window is not None and window != 0 and window < 3:
        raise AnalysisError(f"The fitting window needs at least 3 sizes; got {window}.")
    arrays = {"flops": flops, "loss": loss, **({"N": n} if n is not None else {}),
              **({"D": d} if d is not None else {})}
    arrays = {key: np.asarray(v, dtype=float) for key, v in arrays.items()}
    keep, dropped = valid_mask(arrays, what="isoflop")
    arrays = {key: v[keep] for key, v in arrays.items()}
    flops, loss = arrays["flops"], arrays["loss"]
    n, d = arrays.get("N"), arrays.get("D")
    if not len(loss):
        raise AnalysisError("IsoFLOP found no rows with finite positive compute, size and loss.")
    k, k_source = _resolve_k(flops, n, d, k)
    axis = "N" if n is not None else "D"
    size = n if n is not None else d
    budget = None if budget is None else np.asarray(budget)[keep]
    labels = group_budgets(flops, rel_tol) if budget is None else np.unique(
        budget, return_inverse=True)[1]
    warn: list[str] = list(dropped)
    budgets: list[Budget] = []
    groups = []
    for lab in np.unique(labels):
        m = labels == lab
        c = float(np.exp(np.mean(np.log(flops[m]))))
        u, y = merge_sizes(np.log10(size[m]), size_rtol), loss[m]
        rng_n = (float(size[m].min()), float(size[m].max()))
        vals = np.unique(u)
        b = Budget(c, int(m.sum()), None, None, None, rng_n, None, False)
        budgets.append(b)
        if len(vals) < 3:
            b.issue = f"fewer than 3 distinct sizes ({len(vals)})"
            continue
        means = np.array([y[u == v].mean() for v in vals])
        j = int(np.argmin(means))
        at_edge = j in (0, len(vals) - 1)
        if at_edge and edge == "drop":
            side = "smallest" if j == 0 else "largest"
            b.issue = (f"the lowest loss is at the {side} sampled size (grid edge): the minimum "
                       "is not bracketed")
            continue
        sel = _window(vals, j, window, window_decades)
        w = np.isin(u, sel)
        u0 = float(vals[j])
        uc, yw = u[w] - u0, y[w]
        coef_c = _parabolas(uc, yw, np.ones((1, len(uc))))[0]
        lo_u, hi_u = sel.min() - u0, sel.max() - u0
        if at_edge:  # edge="flag": let the vertex extrapolate up to half the window beyond it
            lo_u, hi_u = lo_u - (hi_u - lo_u) / 2 * (j == 0), hi_u + (hi_u - lo_u) / 2 * (j > 0)
        us, ls = _minimum(coef_c[None, :], lo_u, hi_u)
        c2, c1, c0 = coef_c
        b.coef = (float(c2), float(c1 - 2 * c2 * u0), float(c2 * u0**2 - c1 * u0 + c0))
        b.fit_range = (float(10 ** sel.min()), float(10 ** sel.max()))
        b.n_fit = int(w.sum())
        if not c2 > 0:
            b.issue = "loss is not convex in log size here (no minimum)"
            continue
        if not np.isfinite(us[0]):
            b.issue = "the parabola's minimum lies outside the fitted window"
            continue
        b.used = True
        x_opt = float(10 ** (us[0] + u0))
        b.n_opt, b.d_opt = (x_opt, c / (k * x_opt)) if axis == "N" else (c / (k * x_opt), x_opt)
        b.loss_opt = float(ls[0])
        span = float(vals.max() - vals.min())
        b.position = float((us[0] + u0 - vals.min()) / span)
        flags = []
        if at_edge:
            flags.append("the lowest loss is at the grid edge, so the minimum is extrapolated "
                         "(kept: edge='flag')")
        if b.position < EDGE_FRACTION or b.position > 1 - EDGE_FRACTION:
            flags.append(f"the minimum sits near the edge of the sampled sizes "
                         f"(position {b.position:.2f} of the range): the grid is asymmetric")
            if span > WIDE_DECADES and len(sel) == len(vals):
                flags.append(f"one parabola over this wide ({span:.2f}-decade), asymmetric grid "
                             "biases the minimum; fit a window around it (--window 7)")
        wspan = float(sel.max() - sel.min())
        if wspan < min_span_decades:
            flags.append(f"the fitted sizes span only {wspan:.2f} decades: too narrow to trust")
        if flags:
            b.issue = "; ".join(flags)
        groups.append((uc, yw, lo_u, hi_u, u0, np.log10(c)))
    for b in budgets:
        if b.issue:
            verb = "used, but" if b.used else "dropped:"
            warn.append(f"budget {b.flops:.3g} FLOPs {verb} {b.issue}")
    used = [b for b in budgets if b.used]
    if len(used) < 2:
        raise AnalysisError(
            f"IsoFLOP needs at least 2 budgets with a clear minimum; found {len(used)} of "
            f"{len(budgets)}. Sample at least 3 sizes per budget, bracketing the best size.")
    lc = np.array([g[5] for g in groups])
    lx = np.log10([b.n_opt if axis == "N" else b.d_opt for b in used])
    slope, icpt = np.polyfit(lc, lx, 1)
    a, intercept = (slope, icpt) if axis == "N" else (1 - slope, -np.log10(k) - icpt)
    if len(used) < 3:
        warn.append("only 2 usable budgets: the slope is a line through two points, with no "
                    "check of the power law")

    a_ci = b_ci = a_samples = line = loss_s = None
    if bootstrap > 0:
        line, loss_s = _bootstrap(groups, bootstrap, seed)
        if axis == "D":
            line = np.column_stack([1 - line[:, 0], -np.log10(k) - line[:, 1]])
        ok = np.isfinite(line[:, 0])
        failed = int((~ok).sum())
        if failed > 0.1 * bootstrap:
            warn.append(f"{failed} of {bootstrap} bootstrap resamples lost a minimum (fewer than "
                        "2 budgets with one): the interval is unreliable")
        line, loss_s = line[ok], loss_s[ok]
        a_samples = line[:, 0]
        if a_samples.size:
            lo_a, hi_a = interval(a_samples, level)
            a_ci = (float(lo_a), float(hi_a))
            b_ci = (1 - a_ci[1], 1 - a_ci[0])
    for msg in warn[len(dropped):]:
        _warnings.warn(f"isoflop: {msg}", FitWarning, stacklevel=2)
    return IsoflopResult(a=float(a), intercept=float(intercept), b=float(1 - a), a_ci=a_ci,
                         b_ci=b_ci, budgets=budgets, level=level, k=k, warnings=warn,
                         a_samples=a_samples, axis=axis, k_source=k_source,
                         window=window_decades if window_decades is not None else window,
                         line_samples=line, loss_samples=loss_s)


def _bootstrap(groups, n_resamples: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """Resample each budget's window points: (slope, intercept) rows of log size* against
    log C (NaN where < 2 budgets kept a minimum) and log10 loss at each budget's minimum."""
    rng = np.random.default_rng(seed)
    mins = np.full((n_resamples, len(groups)), np.nan)
    losses = np.full((n_resamples, len(groups)), np.nan)
    for j, (uc, y, lo, hi, u0, _) in enumerate(groups):
        w = rng.multinomial(len(uc), np.full(len(uc), 1 / len(uc)), size=n_resamples)
        us, ls = _minimum(_parabolas(uc, y, w.astype(float)), lo, hi)
        mins[:, j] = us + u0
        with np.errstate(invalid="ignore", divide="ignore"):
            losses[:, j] = np.log10(ls)
    x_all = np.array([g[5] for g in groups])
    line = np.full((n_resamples, 2), np.nan)
    for r in range(n_resamples):
        ok = np.isfinite(mins[r])
        if ok.sum() >= 2:
            line[r] = np.polyfit(x_all[ok], mins[r, ok], 1)
    return line, losses
