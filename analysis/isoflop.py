"""IsoFLOP analysis (Hoffmann et al. 2022, Approach 2).

Per compute budget: fit a parabola of loss against log N and take its minimum N*; then fit
log N* = a·log C + const. Budgets whose parabola is not convex or whose minimum lies outside the
sampled sizes are dropped; budgets whose minimum sits near an edge of the sampled grid, or whose
grid is narrow, are kept but flagged: the parabola's minimum is biased there.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np

from .bootstrap import DEFAULT_LEVEL, interval
from .data import valid_mask
from .errors import AnalysisError, FitWarning

MIN_SPAN_DECADES = 0.3  # a grid spanning less than a factor 2 in N cannot show the curvature
EDGE_FRACTION = 0.2  # minimum within the outer 20% of the sampled log-N range: asymmetric grid


@dataclass
class Budget:
    """One compute budget: its parabola minimum and whether it was used for the slope."""

    flops: float
    n_points: int
    n_opt: float | None
    loss_opt: float | None
    d_opt: float | None
    n_range: tuple[float, float]
    coef: tuple[float, float, float] | None  # loss = c2·u² + c1·u + c0, u = log10 N
    used: bool
    position: float | None = None  # where the minimum sits in the sampled log-N range, 0..1
    issue: str | None = None

    def to_dict(self) -> dict:
        return {"flops": self.flops, "n_points": self.n_points, "n_opt": self.n_opt,
                "d_opt": self.d_opt, "loss_opt": self.loss_opt, "n_min": self.n_range[0],
                "n_max": self.n_range[1], "used": self.used, "position": self.position,
                "issue": self.issue}


@dataclass
class IsoflopResult:
    """Slope a of log N* against log C (and b for D*), with bootstrap intervals."""

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

    def n_opt(self, flops) -> np.ndarray:
        """N*(C) from the fitted line."""
        return 10 ** (self.intercept + self.a * np.log10(np.asarray(flops, dtype=float)))

    def to_dict(self) -> dict:
        return {"a": self.a, "a_ci": list(self.a_ci) if self.a_ci else None, "b": self.b,
                "b_ci": list(self.b_ci) if self.b_ci else None, "intercept": self.intercept,
                "level": self.level, "flops_per_param_token": self.k,
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


def _parabolas(u: np.ndarray, loss: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares parabolas for each weight row (R, n): coefficients (R, 3) as
    (c2, c1, c0); NaN where the design is singular (fewer than 3 distinct sizes drawn)."""
    v = np.stack([u**2, u, np.ones_like(u)], axis=1)  # (n, 3)
    a = np.einsum("rn,ni,nj->rij", w, v, v)
    rhs = np.einsum("rn,ni,n->ri", w, v, loss)
    distinct = np.array([len(np.unique(u[row > 0])) for row in w])
    out = np.full((len(w), 3), np.nan)
    ok = distinct >= 3
    if ok.any():
        out[ok] = np.linalg.solve(a[ok], rhs[ok][..., None])[..., 0]
    return out


def _minimum(coef: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex u* and loss there for coefficient rows; NaN unless convex and inside [lo, hi]."""
    c2, c1, c0 = coef[:, 0], coef[:, 1], coef[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = -c1 / (2 * c2)
        valid = (c2 > 0) & (u > lo) & (u < hi)
    return np.where(valid, u, np.nan), np.where(valid, c0 - c1**2 / (4 * c2), np.nan)


def isoflop(flops, n, loss, *, budget=None, rel_tol: float = 0.1, k: float = 6.0,
            bootstrap: int = 1000, seed: int | None = 0, level: float = DEFAULT_LEVEL,
            min_span_decades: float = MIN_SPAN_DECADES) -> IsoflopResult:
    """IsoFLOP fit. ``budget`` (labels per run) overrides grouping runs by ``flops``.

    D* per budget is C/(k·N*), so b = 1 − a follows from C = k·N·D.
    """
    flops, n, loss = (np.asarray(v, dtype=float) for v in (flops, n, loss))
    keep, dropped = valid_mask({"flops": flops, "N": n, "loss": loss}, what="isoflop")
    flops, n, loss = flops[keep], n[keep], loss[keep]
    budget = None if budget is None else np.asarray(budget)[keep]
    labels = group_budgets(flops, rel_tol) if budget is None else np.unique(
        np.asarray(budget), return_inverse=True)[1]
    warn: list[str] = list(dropped)
    budgets: list[Budget] = []
    groups = []
    for lab in np.unique(labels):
        m = labels == lab
        c = float(np.exp(np.mean(np.log(flops[m]))))
        u, y = np.log10(n[m]), loss[m]
        rng_n = (float(n[m].min()), float(n[m].max()))
        if len(np.unique(u)) < 3:
            budgets.append(Budget(c, int(m.sum()), None, None, None, rng_n, None, False,
                                  issue="fewer than 3 model sizes"))
            continue
        coef = _parabolas(u, y, np.ones((1, len(u))))[0]
        us, ls = _minimum(coef[None, :], u.min(), u.max())
        b = Budget(c, int(m.sum()), None, None, None, rng_n, tuple(map(float, coef)), False)
        if not coef[0] > 0:
            b.issue = "loss is not convex in log N here (no minimum)"
        elif not np.isfinite(us[0]):
            b.issue = "the minimum lies outside the sampled sizes (grid edge)"
        else:
            b.used = True
            b.n_opt = float(10 ** us[0])
            b.loss_opt = float(ls[0])
            b.d_opt = c / (k * b.n_opt)
            b.position = float((us[0] - u.min()) / (u.max() - u.min()))
            span = float(u.max() - u.min())
            flags = []
            if b.position < EDGE_FRACTION or b.position > 1 - EDGE_FRACTION:
                flags.append(f"the minimum sits near the edge of the sampled sizes "
                             f"(position {b.position:.2f} of the range): the grid is asymmetric")
            if span < min_span_decades:
                flags.append(f"the sizes span only {span:.2f} decades: too narrow to trust")
            if flags:
                b.issue = "; ".join(flags)
            groups.append((len(budgets), u, y, u.min(), u.max(), np.log10(c)))
        budgets.append(b)
    for b in budgets:
        if b.issue:
            verb = "used, but" if b.used else "dropped:"
            warn.append(f"budget {b.flops:.3g} FLOPs {verb} {b.issue}")
    used = [b for b in budgets if b.used]
    if len(used) < 2:
        raise AnalysisError(
            f"IsoFLOP needs at least 2 budgets with a clear minimum; found {len(used)} of "
            f"{len(budgets)}. Sample at least 3 sizes per budget, bracketing the best size.")
    lc = np.log10([b.flops for b in used])
    ln = np.log10([b.n_opt for b in used])
    a, intercept = np.polyfit(lc, ln, 1)
    if len(used) < 3:
        warn.append("only 2 usable budgets: the slope is a line through two points, with no "
                    "check of the power law")

    a_ci = b_ci = None
    a_samples = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        slopes = np.full(bootstrap, np.nan)
        mins = np.full((bootstrap, len(groups)), np.nan)
        for j, (_, u, y, lo, hi, _) in enumerate(groups):
            w = rng.multinomial(len(u), np.full(len(u), 1 / len(u)), size=bootstrap)
            us, _ = _minimum(_parabolas(u, y, w.astype(float)), lo, hi)
            mins[:, j] = us
        x_all = np.array([g[5] for g in groups])
        for r in range(bootstrap):
            ok = np.isfinite(mins[r])
            if ok.sum() >= 2:
                slopes[r] = np.polyfit(x_all[ok], mins[r, ok], 1)[0]
        a_samples = slopes[np.isfinite(slopes)]
        failed = bootstrap - a_samples.size
        if failed > 0.1 * bootstrap:
            warn.append(f"{failed} of {bootstrap} bootstrap resamples lost a minimum (fewer than "
                        "2 budgets with one): the interval is unreliable")
        if a_samples.size:
            lo_a, hi_a = interval(a_samples, level)
            a_ci = (float(lo_a), float(hi_a))
            b_ci = (1 - a_ci[1], 1 - a_ci[0])
    for m in warn[len(dropped):]:
        _warnings.warn(f"isoflop: {m}", FitWarning, stacklevel=2)
    return IsoflopResult(a=float(a), intercept=float(intercept), b=float(1 - a), a_ci=a_ci,
                         b_ci=b_ci, budgets=budgets, level=level, k=k, warnings=warn,
                         a_samples=a_samples)
