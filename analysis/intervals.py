"""Prediction intervals that stay honest when a fitted law is extrapolated.

A bootstrap over runs (``bootstrap.py``) measures how well the runs pin the parameters down: the
curve interval ``ci``. A new run at a target also differs from the curve by run-to-run noise, and
beyond the fitted range by the error of the law's *form*, which no resampling of the same runs can
see. The prediction interval ``pi`` adds both, on the log-loss scale:

    log y = log L̂_b(x) + ε,   ε ~ Normal(0, σ_noise² + (κ·t(x))²)

- ``L̂_b``: the bootstrap refits (parameter uncertainty); without a bootstrap, the point fit.
- ``σ_noise``: the scatter of a *single new run* about the curve. From replicates
  (``replicates.noise_estimate``: pooled within-point SD of log loss; given by the caller when
  the rows are means of seeds, else measured on rows with equal inputs) when there are
  ``MIN_REPLICATE_DF`` degrees of freedom, else from the fit's log residuals (RMS with n − p
  degrees of freedom); the larger of the two when both exist, since residuals also carry
  in-range lack of fit. Rows that are means of n_i runs scatter by σ²/n_i + lack of fit, so
  their residual variance is first put on a single run's scale (+ σ²·(1 − mean 1/n_i)); the
  nested backtests below weigh row i with its own noise σ_noise² − σ²(1 − 1/n_i), while the
  interval of a new run keeps σ_noise (not σ/√n).
- ``t(x)``: decades by which the target lies outside the fitted range, the largest over the
  inputs (for the joint law: N, D and N·D ∝ compute). t = 0 inside the range.
- ``κ``: growth of the log error per decade of extrapolation, *estimated from the data*: nested
  backtests inside the training set ("fit the runs below a cut in N·D (or x), predict those
  above", at 5 cuts between 40 % and 80 % of the runs) give residuals r_j at distances t_j; κ is
  the Gaussian maximum-likelihood value of Σ log(σ² + κ²t_j²) + r_j² / (σ² + κ²t_j²), σ = σ_noise.
- Percentiles of L̂_b·exp(ε) give the interval; ``se`` is the SD of the same draws.

Why this and not split-conformal on the nested residuals: extrapolation is not exchangeable (the
reference notes conformal's guarantee needs exchangeability), and a quantile of ~30 correlated
scores is itself noisy; an error model with one parameter that grows with distance is what the
nested backtests can support, and it extends to targets farther than any backtest reached (the
Llama-style case) instead of capping at the largest score seen. The growth with distance follows
the observation that extrapolation error grows with the ratio of target to the largest fitted model
(Choshen, Zhang & Andreas 2025, "A Hitchhiker's Guide to Scaling Law Estimation"); the nested "fit
small, predict the next" protocol is the one the reference recommends for calibrating on
extrapolation. The nested fits have fewer runs than the full fit, so κ errs on the wide side (also
counting their larger parameter uncertainty); taking that out, with a small bootstrap per nested
fit, was tried and brought misspecified sweeps to 76% coverage of a 90% interval (from 86%), so it
is not done. Split-conformal enters as a check only: when the level-quantile of the nested scores
|r_j|/sd_j exceeds the Gaussian quantile (heavier tails than the model), the error term is widened
by that ratio. Predictions a decade or more beyond the fitted range carry a warning: no data inside
the range can vouch for the law's form that far out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from .bootstrap import interval
from .errors import AnalysisError
from .replicates import Noise, noise_estimate
from .result import CI_METHOD, Fit

DEFAULT_PREDICT_LEVEL = 0.9
NESTED_FRACTIONS = (0.4, 0.5, 0.6, 0.7, 0.8)
MIN_REPLICATE_DF = 3
FAR_DECADES = 1.0  # from this far out, a prediction comes with a warning
N_DRAWS = 4000

__all__ = ["CI_METHOD", "PI_METHOD", "PredictionModel", "build_model", "predict"]
PI_METHOD = ("bootstrap over runs × log-normal error with variance σ_noise² + (κ·t)², t = decades "
             "beyond the fitted range, κ from nested backtests inside the training set")


def axes(law: str, inputs: list[np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Names and log10 values (m, k) of the axes distance is measured on."""
    cols = [np.log10(np.asarray(v, dtype=float)) for v in inputs]
    if law == "chinchilla":
        return ["N", "D", "N·D"], np.column_stack([cols[0], cols[1], cols[0] + cols[1]])
    return ["x"], np.column_stack(cols[:1])


def order_key(law: str, inputs: list[np.ndarray]) -> np.ndarray:
    """The size a nested backtest cuts on: log10(N·D) for the joint law, log10 x otherwise."""
    return axes(law, inputs)[1][:, -1]


@dataclass
class PredictionModel:
    """Error model of predictions from one fit (see the module docstring)."""

    law: str
    axis_names: list[str]
    lo: list[float]  # log10 range of each axis in the fitted data
    hi: list[float]
    sigma_noise: float
    noise_source: str  # "replicates", "residuals" or "replicates and residuals"
    sigma_replicates: float | None
    sigma_residuals: float
    kappa: float  # log-loss SD per decade beyond the fitted range
    n_backtests: int
    n_scores: int
    max_backtest_decades: float
    notes: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # |r|/sd of the nested backtests
    replicates_per_row: float = 1.0  # mean runs averaged into each fitted row

    def inflation(self, level: float) -> float:
        """Split-conformal check of the Gaussian error model on the nested backtests: the factor
        (≥ 1) by which the level-quantile of the scores |r|/sd exceeds the Gaussian quantile."""
        u = np.sort(np.asarray(self.scores, dtype=float))
        if len(u) < 10:
            return 1.0
        k = min(len(u), int(np.ceil((len(u) + 1) * level)))
        return float(max(1.0, u[k - 1] / norm.ppf(0.5 + level / 2)))

    def distance(self, *inputs) -> np.ndarray:
        """Decades outside the fitted range (0 inside), the largest over the axes."""
        _, v = axes(self.law, [np.atleast_1d(np.asarray(x, dtype=float)) for x in inputs])
        lo, hi = np.asarray(self.lo), np.asarray(self.hi)
        return np.max(np.maximum(0.0, np.maximum(v - hi, lo - v)), axis=1)

    def sd(self, *inputs) -> np.ndarray:
        """SD of the log-loss error added to the curve at ``inputs``."""
        t = self.distance(*inputs)
        return np.sqrt(self.sigma_noise**2 + (self.kappa * t) ** 2)

    def to_dict(self) -> dict:
        return {"method": PI_METHOD, "axes": self.axis_names, "fitted_log10_lo": self.lo,
                "fitted_log10_hi": self.hi, "sigma_noise": self.sigma_noise,
                "noise_source": self.noise_source, "sigma_replicates": self.sigma_replicates,
                "sigma_residuals": self.sigma_residuals, "kappa_per_decade": self.kappa,
                "n_backtests": self.n_backtests, "n_backtest_points": self.n_scores,
                "max_backtest_decades": self.max_backtest_decades,
                "replicates_per_row": self.replicates_per_row, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, law: str, d: dict) -> PredictionModel:
        return cls(law, list(d["axes"]), list(d["fitted_log10_lo"]), list(d["fitted_log10_hi"]),
                   float(d["sigma_noise"]), str(d["noise_source"]),
                   None if d.get("sigma_replicates") is None else float(d["sigma_replicates"]),
                   float(d["sigma_residuals"]), float(d["kappa_per_decade"]),
                   int(d["n_backtests"]), int(d["n_backtest_points"]),
                   float(d["max_backtest_decades"]), list(d.get("notes", [])),
                   [float(u) for u in d.get("scores", [])],
                   float(d.get("replicates_per_row", 1.0)))


def noise_of_rows(inputs: list[np.ndarray], loss: np.ndarray) -> Noise:
    """``replicates.noise_estimate`` on rows with equal ``inputs`` (the law's inputs)."""
    cols = {f"x{i}": np.asarray(v, dtype=float) for i, v in enumerate(inputs)}
    return noise_estimate(pd.DataFrame({**cols, "loss": loss}), list(cols), "loss")


def residual_sigma(fit: Fit) -> float:
    """RMS of the fit's log residuals with n − p degrees of freedom."""
    r = np.asarray(fit.log_residuals, dtype=float)
    r = r[np.isfinite(r)]
    dof = max(len(r) - len(fit.param_names), 1)
    return float(np.sqrt(np.sum(r**2) / dof)) if len(r) else 0.0


def fit_kappa(r: np.ndarray, t: np.ndarray, sigma) -> float:
    """Gaussian ML growth κ ≥ 0 of the error SD with distance, noise SD ``sigma`` known (one
    value, or one per residual)."""
    r, t = np.asarray(r, dtype=float), np.asarray(t, dtype=float)
    keep = np.isfinite(r) & np.isfinite(t)
    s2 = np.maximum(np.broadcast_to(np.asarray(sigma, dtype=float), r.shape), 1e-6)[keep] ** 2
    r, t = r[keep], t[keep]
    if len(r) == 0 or not np.any(t > 0):
        return 0.0

    def nll(log_k):
        v = s2 + (np.exp(log_k) * t) ** 2
        return float(np.sum(np.log(v) + r**2 / v))

    res = minimize_scalar(nll, bounds=(np.log(1e-6), np.log(10.0)), method="bounded",
                          options={"xatol": 1e-4})
    k = float(np.exp(res.x))
    return 0.0 if nll(np.log(1e-6)) <= res.fun + 1e-9 else k


def nested_backtests(law: str, inputs: list[np.ndarray], loss: np.ndarray,
                     refit: Callable[[np.ndarray], Fit],
                     fractions=NESTED_FRACTIONS
                     ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Log residuals, distances, the number of fits and the row indices of held-out runs from
    fits on the smaller runs.

    For each fraction f, fit ``refit(mask)`` on the runs whose size (``order_key``) is at most its
    f-quantile and predict the larger ones. Cuts that leave too few runs to fit are skipped.
    """
    key = order_key(law, inputs)
    ly = np.log(loss)
    rs, ts, ix, used, seen = [], [], [], 0, set()
    for f in fractions:
        cut = np.quantile(key, f)
        train = key <= cut + 1e-12
        test = ~train
        sig = int(train.sum())
        if sig in seen or test.sum() == 0:
            continue
        seen.add(sig)
        try:
            nested = refit(train)
        except AnalysisError:
            continue
        if not nested.converged:
            continue
        te = [np.asarray(v, dtype=float)[test] for v in inputs]
        with np.errstate(all="ignore"):
            pred = np.log(np.maximum(nested.predict(*te), 1e-300))
        names, v = axes(law, [np.asarray(x, dtype=float)[train] for x in inputs])
        model = PredictionModel(law, names, list(v.min(0)), list(v.max(0)), 0, "", None, 0, 0,
                                0, 0, 0)
        rs.append(ly[test] - pred)
        ts.append(model.distance(*te))
        ix.append(np.flatnonzero(test))
        used += 1
    if not rs:
        return np.empty(0), np.empty(0), 0, np.empty(0, dtype=int)
    return np.concatenate(rs), np.concatenate(ts), used, np.concatenate(ix)


def build_model(law: str, inputs: list[np.ndarray], loss: np.ndarray, fit: Fit,
                refit: Callable[[np.ndarray], Fit] | None, *, noise: Noise | None = None,
                replicates: np.ndarray | None = None) -> PredictionModel:
    """The prediction-error model of ``fit`` on its training data (``inputs``, ``loss``).

    ``refit(mask)`` fits the same law to a subset (no bootstrap needed); None skips the nested
    backtests (κ = 0: no extrapolation term, said in the notes). ``noise``: the run-to-run noise
    measured on the seed runs when the rows are their means (``replicates.noise_estimate``);
    None measures it on rows with equal inputs. ``replicates``: runs averaged into each row
    (default 1).
    """
    inputs = [np.asarray(v, dtype=float) for v in inputs]
    loss = np.asarray(loss, dtype=float)
    n = np.ones(len(loss)) if replicates is None else np.asarray(replicates, dtype=float)
    if n.shape != loss.shape or not np.all(n >= 1):
        raise AnalysisError(f"replicates must give ≥ 1 run for each of the {len(loss)} rows; got "
                            f"shape {n.shape}, smallest {np.min(n, initial=np.inf):g}.")
    names, v = axes(law, inputs)
    noise = noise_of_rows(inputs, loss) if noise is None else noise
    s_rep = noise.sigma if noise.sigma is not None and noise.dof >= MIN_REPLICATE_DF else None
    s_res = residual_sigma(fit)
    notes = []
    if s_rep is None:
        sigma, source, row_sd = s_res, "residuals", np.full(len(loss), s_res)
        if n.max() > 1:
            notes.append("the rows are means of seeds but the run-to-run noise is unknown: the "
                         "residuals of means understate a single run's scatter")
    else:
        s_run = float(np.sqrt(s_res**2 + s_rep**2 * (1 - np.mean(1 / n))))  # one run's scale
        sigma = max(s_rep, s_run)
        source = "replicates" if s_rep >= s_run else "replicates and residuals"
        row_sd = np.sqrt(np.maximum(sigma**2 - s_rep**2 * (1 - 1 / n), 0.0))
        notes.append(f"run-to-run SD of log loss {s_rep:.3g} from replicates ({noise.dof} "
                     f"degrees of freedom); residual SD {s_res:.3g}" + (
                         f" of rows averaging {np.mean(n):.3g} runs (on one run's scale "
                         f"{s_run:.3g})" if n.max() > 1 else ""))
    r, t, n_bt, ix = ((np.empty(0), np.empty(0), 0, np.empty(0, dtype=int)) if refit is None
                      else nested_backtests(law, inputs, loss, refit))
    kappa = fit_kappa(r, t, row_sd[ix])
    sd = np.sqrt(row_sd[ix] ** 2 + (kappa * t) ** 2)
    scores = np.abs(r) / sd if len(r) and sigma > 0 else r
    if n_bt == 0:
        why = "none was asked for" if refit is None else "too few runs"
        notes.append(f"no nested backtest could be fitted ({why}): the interval has no "
                     "extrapolation term and will be too narrow beyond the fitted range")
    return PredictionModel(law, names, [float(a) for a in v.min(0)],
                           [float(a) for a in v.max(0)], float(sigma), source, s_rep, s_res,
                           float(kappa), n_bt, int(len(r)),
                           float(t.max()) if len(t) else 0.0, notes,
                           [float(u) for u in scores if np.isfinite(u)], float(np.mean(n)))


@dataclass
class Prediction:
    """Predicted loss at one target with its curve and prediction intervals."""

    inputs: dict[str, float]
    loss: float
    ci: tuple[float, float] | None
    ci_se: float | None
    pi: tuple[float, float]
    pi_se: float
    decades_beyond: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**self.inputs, "loss": self.loss,
                "ci": None if self.ci is None else list(self.ci), "ci_se": self.ci_se,
                "pi": list(self.pi), "pi_se": self.pi_se,
                "extrapolation_decades": self.decades_beyond, "warnings": list(self.warnings)}


def predict(fit: Fit, model: PredictionModel, inputs: list[np.ndarray], level: float,
            seed: int | None = 0, names: list[str] | None = None) -> list[Prediction]:
    """Point prediction, ``ci`` and ``pi`` at each target (``inputs`` in the law's order)."""
    xs = [np.atleast_1d(np.asarray(v, dtype=float)) for v in inputs]
    names = names or list(fit.inputs)
    pred = fit.predict(*xs)
    samples = fit.predict_samples(*xs)
    with np.errstate(all="ignore"):
        base = np.log(np.maximum(pred[None, :] if samples is None else samples, 1e-300))
    reps = max(1, -(-N_DRAWS // base.shape[0]))
    draws = np.repeat(base, reps, axis=0)
    rng = np.random.default_rng(0 if seed is None else seed)
    sd = model.sd(*xs) * model.inflation(level)
    draws = np.exp(draws + sd[None, :] * rng.standard_normal(draws.shape))
    pi_lo, pi_hi = interval(draws, level)
    pi_se = np.nanstd(draws, axis=0)
    if samples is not None:
        ci_lo, ci_hi = interval(samples, level)
        ci_se = np.nanstd(samples, axis=0)
    t = model.distance(*xs)
    out = []
    for j in range(len(pred)):
        w = []
        if t[j] >= FAR_DECADES - 0.005:
            unit = "decade" if abs(t[j] - 1) < 0.05 else "decades"
            w.append(f"this target lies {t[j]:.2g} {unit} beyond the fitted range (a decade or "
                     "more): the interval is an error model extrapolated from "
                     f"backtests that reached {model.max_backtest_decades:.2g} decades, and the "
                     "law's form is unverified this far out (a published fit of budgets ≤ 1e21 "
                     "missed the 1e22 optimum by 34%)")
        out.append(Prediction(
            {n: float(x[j]) for n, x in zip(names, xs, strict=True)}, float(pred[j]),
            None if samples is None else (float(ci_lo[j]), float(ci_hi[j])),
            None if samples is None else float(ci_se[j]),
            (float(pi_lo[j]), float(pi_hi[j])), float(pi_se[j]), float(t[j]), w))
    return out
