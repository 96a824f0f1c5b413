"""Loss → downstream accuracy: correlations, linear and sigmoid fits, leave-one-out error, and
the two-step prediction (N, D) → loss → accuracy (as in OLMo's model ladder)."""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import rankdata

from .bootstrap import DEFAULT_LEVEL, adaptive_map, chunks, interval
from .data import valid_mask
from .errors import AnalysisError, FitWarning
from .result import Fit

SIGMOID_PARAMS = ("a", "k", "l0", "b")
MIN_SIGMOID_POINTS = 6  # 4 parameters, and leave-one-out needs 5 left to refit


def sigmoid(x, a, k, l0, b):
    """acc = a / (1 + exp(−k·(L − L0))) + b, elementwise."""
    z = np.clip(-k * (np.asarray(x, dtype=float) - l0), -700, 700)
    return a / (1.0 + np.exp(z)) + b


def _sigmoid_rows(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.atleast_2d(theta)[:, :, None]
    return sigmoid(x[None, :], t[:, 0], t[:, 1], t[:, 2], t[:, 3])


def fit_sigmoid(x, y, w=None, start=None) -> tuple[np.ndarray, bool]:
    """Least-squares sigmoid fit; multi-start in standardised units unless ``start`` is given."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones_like(y) if w is None else np.asarray(w, float)
    xm, xs = x.mean(), x.std() or 1.0
    ym, yr = y.min(), (np.ptp(y) or 1.0)
    xu, yu, sw = (x - xm) / xs, (y - ym) / yr, np.sqrt(w)

    def to_std(p):
        a, k, l0, b = p
        return np.array([a / yr, k * xs, (l0 - xm) / xs, (b - ym) / yr])

    def from_std(q):
        return np.array([q[0] * yr, q[1] / xs, q[2] * xs + xm, q[3] * yr + ym])

    # In standard units a transition sharper than k = 20 (1/20 of a std of x) cannot be
    # resolved by the data; bounding it keeps step-like fits from wandering.
    lo, hi = np.array([1e-3, -20.0, -5.0, -5.0]), np.array([20.0, 20.0, 5.0, 2.0])
    starts = ([np.clip(to_std(start), lo + 1e-9, hi - 1e-9)] if start is not None else
              [np.array([1.2, k, c, -0.1]) for k in (-3.0, -1.0, 1.0, 3.0) for c in (-0.5, 0.5)])

    def resid(q):
        return sw * (sigmoid(xu, *q) - yu)

    def jac(q):
        a, k, l0, _ = q
        s_ = 1.0 / (1.0 + np.exp(np.clip(-k * (xu - l0), -700, 700)))
        ds = s_ * (1 - s_)
        return sw[:, None] * np.column_stack([s_, a * ds * (xu - l0), -a * ds * k,
                                              np.ones_like(xu)])

    best = None
    for s in starts:
        res = least_squares(resid, s, jac=jac, bounds=(lo, hi), method="trf",
                            max_nfev=200 if start is None else 100)
        if best is None or res.cost < best.cost:
            best = res
    return from_std(best.x), bool(best.status > 0)


@dataclass
class Correlation:
    """Correlation of x (e.g. loss) and y (e.g. accuracy) with fits and intervals."""

    n: int
    pearson: float
    spearman: float
    ci: dict[str, tuple[float, float]]
    linear: dict
    sigmoid: dict | None
    loo_mae: float
    loo_model: str
    level: float
    warnings: list[str] = field(default_factory=list)
    linear_samples: np.ndarray | None = field(default=None, repr=False)
    sigmoid_samples: np.ndarray | None = field(default=None, repr=False)
    # y is a fraction (every observed value in [0, 1], e.g. top-1): predictions are clipped to it
    unit_interval: bool = False

    def predict(self, x, model: str | None = None) -> np.ndarray:
        """Point prediction of y at ``x`` with the chosen model (default: lower LOO error)."""
        model = model or self.loo_model
        x = np.asarray(x, dtype=float)
        if model == "sigmoid" and self.sigmoid is not None:
            y = sigmoid(x, *(self.sigmoid[k] for k in SIGMOID_PARAMS))
        else:
            y = self.linear["slope"] * x + self.linear["intercept"]
        return self.bound(y)

    def bound(self, y):
        """Clip predictions of a fraction into [0, 1] (a straight line extrapolates past 1)."""
        return np.clip(y, 0.0, 1.0) if self.unit_interval else y

    def to_dict(self) -> dict:
        return {"n": self.n, "pearson": self.pearson, "spearman": self.spearman,
                "ci": {k: list(v) for k, v in self.ci.items()}, "level": self.level,
                "linear": self.linear, "sigmoid": self.sigmoid, "loo_mae": self.loo_mae,
                "loo_model": self.loo_model, "warnings": list(self.warnings)}


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(-1) / np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1))


def _linear_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (xc * (y - y.mean(axis=-1, keepdims=True))).sum(-1) / (xc**2).sum(-1)
    return np.stack([slope, y.mean(axis=-1) - slope * x.mean(axis=-1)], axis=-1)


def correlate(x, y, *, bootstrap: int = 1000, seed: int | None = 0,
              level: float = DEFAULT_LEVEL, fit_sigmoid_curve: bool = True,
              groups=None, sigmoid_intervals: bool = True,
              n_jobs: int | None = 1) -> Correlation:
    """Pearson and Spearman with bootstrap intervals (pairs resampled, or whole ``groups`` such as
    all checkpoints of a run), linear and sigmoid fits of y against x, and leave-one-out mean
    absolute error of each fit.

    The sigmoid's bootstrap (one refit per resample, the slow part) runs only with
    ``sigmoid_intervals``, in ``n_jobs`` worker processes (None: the usable cores when the refits
    take longer than starting them, see ``bootstrap.adaptive_map``); its results do
    not depend on ``n_jobs``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep, dropped = valid_mask({"x": x, "y": y}, positive=False, what="correlation")
    x, y = x[keep], y[keep]
    groups = None if groups is None else np.asarray(groups)[keep]
    n = len(x)
    if n < 3:
        raise AnalysisError(f"Correlating needs at least 3 runs with both values; got {n}.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise AnalysisError("One of the two columns is constant across runs, so there is no "
                            "correlation to measure; check the column names.")
    warn: list[str] = list(dropped)
    pearson = float(_pearson_rows(x, y))
    spearman = float(_pearson_rows(rankdata(x), rankdata(y)))
    lin = _linear_rows(x, y)
    resid = y - (lin[0] * x + lin[1])
    idx = np.arange(n)
    loo_lin = np.array([_linear_rows(x[idx != i], y[idx != i]) for i in idx])
    lin_loo_mae = float(np.mean(np.abs(loo_lin[:, 0] * x + loo_lin[:, 1] - y)))
    linear = {"slope": float(lin[0]), "intercept": float(lin[1]),
              "rmse": float(np.sqrt(np.mean(resid**2))), "loo_mae": lin_loo_mae}

    sig = None
    sig_params = None
    if fit_sigmoid_curve and n >= MIN_SIGMOID_POINTS:
        sig_params, conv = fit_sigmoid(x, y)
        pred = sigmoid(x, *sig_params)
        loo = [fit_sigmoid(x[idx != i], y[idx != i], start=sig_params)[0] for i in idx]
        loo_err = np.array([abs(sigmoid(x[i], *loo[i]) - y[i]) for i in idx])
        sig = {**dict(zip(SIGMOID_PARAMS, map(float, sig_params), strict=True)),
               "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
               "loo_mae": float(loo_err.mean()), "converged": conv}
        if not conv:
            warn.append("the sigmoid fit did not converge; use the linear fit")
    elif fit_sigmoid_curve:
        warn.append(f"sigmoid fit skipped: it has 4 parameters and needs at least "
                    f"{MIN_SIGMOID_POINTS} runs (got {n})")

    ci: dict[str, tuple[float, float]] = {}
    lin_s = sig_s = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        if groups is None:
            rows = rng.integers(0, n, size=(bootstrap, n))
            xb, yb = x[rows], y[rows]
            pb = _pearson_rows(xb, yb)
            sb = _pearson_rows(rankdata(xb, axis=1), rankdata(yb, axis=1))
            lin_s = _linear_rows(xb, yb)
            counts = np.apply_along_axis(np.bincount, 1, rows, minlength=n)
        else:
            pb, sb, lin_s, counts = _group_resamples(x, y, groups, bootstrap, rng)
        for name, v in (("pearson", pb), ("spearman", sb), ("slope", lin_s[:, 0]),
                        ("intercept", lin_s[:, 1])):
            lo, hi = interval(v[np.isfinite(v)], level)
            ci[name] = (float(lo), float(hi))
        pci = ci.get("pearson", (np.nan, np.nan))
        if sig_params is not None and pci[0] <= 0 <= pci[1]:
            warn.append("the correlation's interval includes 0: accuracy does not track x "
                        "in these runs, so the sigmoid has no interval")
        elif sig_params is not None and sigmoid_intervals:
            tasks = [(x, y, counts[sl], sig_params) for sl in chunks(len(counts))]
            draws = [d for part in adaptive_map(_sigmoid_draws, tasks, n_jobs) for d in part]
            sig_s = np.array([d[0] for d in draws if d[1]])
            for j, name in enumerate(SIGMOID_PARAMS):
                lo, hi = interval(sig_s[:, j], level)
                ci[f"sigmoid_{name}"] = (float(lo), float(hi))
    loo_model = "sigmoid" if sig is not None and sig["loo_mae"] < lin_loo_mae else "linear"
    for m in warn[len(dropped):]:
        _warnings.warn(f"correlate: {m}", FitWarning, stacklevel=2)
    return Correlation(n, pearson, spearman, ci, linear, sig,
                       sig["loo_mae"] if loo_model == "sigmoid" else lin_loo_mae, loo_model, level,
                       warn, lin_s, sig_s, bool(np.all((y >= 0) & (y <= 1))))


def _sigmoid_draws(task) -> list[tuple[np.ndarray, bool]]:
    """Sigmoid refits for a chunk of resample weights (a worker's unit of work)."""
    x, y, counts, start = task
    return [fit_sigmoid(x, y, w=c, start=start) for c in counts]


def _group_resamples(x, y, groups, bootstrap: int, rng):
    """Pearson, Spearman, linear fit and row counts for resamples of whole groups (runs)."""
    labels, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(labels))]
    draws = rng.integers(0, len(labels), size=(bootstrap, len(labels)))
    pb, sb, lin, counts = [], [], [], np.zeros((bootstrap, len(x)))
    for r, d in enumerate(draws):
        idx = np.concatenate([members[g] for g in d])
        pb.append(_pearson_rows(x[idx], y[idx]))
        sb.append(_pearson_rows(rankdata(x[idx]), rankdata(y[idx])))
        lin.append(_linear_rows(x[idx], y[idx]))
        counts[r] = np.bincount(idx, minlength=len(x))
    return np.array(pb), np.array(sb), np.array(lin), counts


def two_step(fit: Fit, corr: Correlation, *inputs, model: str | None = None) -> dict:
    """(N, D) or x → loss (scaling-law fit) → accuracy (``corr`` fit of accuracy on loss).

    Bootstrap samples of both steps are paired at random, so the interval of the accuracy
    carries the uncertainty of both fits.
    """
    model = model or corr.loo_model
    loss = fit.predict(*inputs)
    acc = corr.predict(loss, model)
    out = {"loss": loss, "accuracy": acc, "model": model}
    ls = fit.predict_samples(*inputs)
    ss = corr.sigmoid_samples if model == "sigmoid" else corr.linear_samples
    if ls is None or ss is None or len(ss) == 0:
        out.update(loss_lo=None, loss_hi=None, accuracy_lo=None, accuracy_hi=None)
        return out
    rng = np.random.default_rng(fit.seed)
    pick = rng.integers(0, len(ss), size=len(ls))
    if model == "sigmoid":
        acc_s = np.stack([sigmoid(ls[i], *ss[pick[i]]) for i in range(len(ls))])
    else:
        acc_s = ss[pick, :1] * ls + ss[pick, 1:2]
    out["loss_lo"], out["loss_hi"] = interval(ls, fit.level)
    out["accuracy_lo"], out["accuracy_hi"] = interval(corr.bound(acc_s), fit.level)
    return out
