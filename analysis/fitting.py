"""Shared driver for the Huber/log-sum-exp fits (power law and joint law): checks, multi-start
solve, bootstrap over runs, warnings, and the ``Fit`` result."""

from __future__ import annotations

import warnings as _warnings

import numpy as np

from .bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    adaptive_map,
    chunks,
    resample_weights,
)
from .errors import AnalysisError, FitWarning
from .huber_lse import ALPHA_MAX, LseProblem, solve, solve_resamples
from .result import Fit, Goodness

DEFAULT_DELTA = 1e-3


def check_points(law_text: str, n_params: int, n: int, distinct: dict[str, int],
                 need_distinct: int, hint: str = "") -> None:
    """Raise a clear error when there are too few points, or too few distinct input values."""
    if n < n_params + 1:
        raise AnalysisError(
            f"{law_text} has {n_params} parameters, so it needs at least {n_params + 1} valid "
            f"points; the table has {n}. Add runs{hint}.")
    for name, k in distinct.items():
        if k < need_distinct:
            raise AnalysisError(
                f"{law_text} needs at least {need_distinct} distinct values of {name} to pin down "
                f"its parameters; the data have {k}. Add runs at more values of {name}{hint}.")


def falling_trend(log_x: np.ndarray, log_y: np.ndarray,
                  rho_max: float = -0.8) -> tuple[float, float] | None:
    """(Spearman ρ, drop in loss) when the loss falls clearly with one of the inputs (rank
    correlation ≤ ``rho_max`` over at least 6 points); None otherwise."""
    from scipy.stats import spearmanr

    if len(log_y) < 6:
        return None
    rhos = [spearmanr(log_x[:, j], log_y)[0] for j in range(log_x.shape[1])]
    rhos = [r for r in rhos if np.isfinite(r)]
    if not rhos or min(rhos) > rho_max:
        return None
    y = np.exp(log_y)
    return float(min(rhos)), float(np.percentile(y, 95) - np.percentile(y, 5))


def raw_to_public(raw: np.ndarray, e_floor: float, k: int) -> np.ndarray:
    """[e, a₁, α₁, …] rows → [E, A₁, …, α₁, …] with E snapped to 0 at its lower bound."""
    raw = np.atleast_2d(raw)
    e = raw[:, 0]
    E = np.where(e <= e_floor + 1e-6, 0.0, np.exp(e))
    amps = [np.exp(raw[:, 1 + 2 * j]) for j in range(k)]
    exps = [raw[:, 2 + 2 * j] for j in range(k)]
    return np.column_stack([E, *amps, *exps])


def _bootstrap_task(task) -> tuple[np.ndarray, np.ndarray]:
    prob, weights, warm = task
    return solve_resamples(prob, weights, warm)


def fit_sum_of_powers(law: str, names: tuple[str, ...], param_names: tuple[str, ...],
                      xs: list[np.ndarray], loss: np.ndarray, starts_raw: np.ndarray, *,
                      delta: float = DEFAULT_DELTA, reduction: str = "sum", floor: bool = True,
                      bootstrap: int = DEFAULT_RESAMPLES, seed: int | None = 0,
                      level: float = DEFAULT_LEVEL,
                      n_jobs: int | None = None, groups=None, warm_starts: int = 5,
                      notes: list[str] | None = None, dropped: list[str] | None = None) -> Fit:
    """Fit L = E + Σ_k A_k·x_k^−α_k with Huber_δ on log residuals; bootstrap if ``bootstrap`` > 0.

    ``reduction`` ("sum" or "mean") only changes the reported objective value: the optimiser
    always works on a fixed scaling, so the optimum is the same either way.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError("reduction must be 'sum' or 'mean'")
    if not delta > 0:
        raise AnalysisError(f"Huber delta must be positive (got {delta}); the default is 1e-3.")
    k = len(xs)
    loss = np.asarray(loss, dtype=float)
    log_x = np.column_stack([np.log(np.asarray(x, dtype=float)) for x in xs])
    prob = LseProblem.build(log_x, np.log(loss), delta)
    e_floor = prob.lower[0]
    if not floor:  # pin E at the floor: L = Σ A·x^−α
        prob.upper[0] = e_floor
    sol = solve(prob, starts_raw)
    values = raw_to_public(sol.raw, e_floor, k)[0]
    per_point = prob.huber(sol.raw)
    objective = float(per_point.sum() if reduction == "sum" else per_point.mean())
    pred = np.exp(prob.log_pred(sol.raw))
    gof = Goodness.of(loss, pred)
    warn: list[str] = list(dropped or [])
    notes = list(notes or [])
    if not sol.converged:
        warn.append(f"the optimiser did not converge ({sol.message}); treat the parameters as "
                    "unreliable")

    exps = {param_names[1 + k + j]: values[1 + k + j] for j in range(k)}
    for name, v in exps.items():
        if v >= ALPHA_MAX - 1e-6:
            warn.append(f"{name} reached its upper bound {ALPHA_MAX}: the data do not constrain it")
        elif v < 1e-3:
            warn.append(f"{name} ≈ 0: the loss does not fall with this input in these data, so "
                        "its term is not identified")
    if floor and values[0] < 1e-3 * float(loss.min()):
        notes.append(f"E ≈ 0 ({values[0]:.2g}, under 0.1% of the smallest loss): the data show "
                     "no irreducible floor, so none is assumed")

    # Flatness: is the fitted trend across the observed range larger than the scatter?
    spans = []
    for j, x in enumerate(xs):
        amp, ex = values[1 + j], values[1 + k + j]
        lo_x, hi_x = float(np.min(x)), float(np.max(x))
        spans.append(amp * (lo_x ** -ex - hi_x ** -ex))
    flat = bool(max(spans) < 2.0 * gof.rmse)
    falls = falling_trend(log_x, np.log(loss))
    if flat and falls is not None:
        # Not flat: the data fall clearly, and the law cannot follow them.
        flat = False
        warn.append(f"the loss falls clearly across the data (by {falls[1]:.3g}, rank "
                    f"correlation {falls[0]:.2f}) but the fitted law follows "
                    f"only {max(spans):.3g} of it (RMSE {gof.rmse:.3g}): its form does not fit "
                    "these data (the curve steepens, breaks or bends where this law cannot); "
                    "try another law (e.g. --law bnsl), a narrower range, or check the columns")
    if flat:
        warn.append(f"the fitted change in loss across the data ({max(spans):.3g}) is below twice "
                    f"the scatter (RMSE {gof.rmse:.3g}): the data are flat, so the exponent is "
                    "not determined")

    samples = None
    n_failed = 0
    if bootstrap > 0:
        weights = resample_weights(len(loss), bootstrap, seed, groups)
        # A resample that drew fewer distinct values of an input than the law needs cannot
        # identify it (a flat valley of exact fits): skip it and say how many.
        need = 3 if floor else 2
        drawn = weights > 0
        ident = np.all([[len(np.unique(x[row])) >= need for row in drawn] for x in xs], axis=0)
        n_unident = int((~ident).sum())
        weights = weights[ident]
        warm = sol.optima[:warm_starts]
        tasks = [(prob, weights[s], warm) for s in chunks(len(weights))]
        # n_jobs None: workers only when the refits take longer than starting them
        parts = adaptive_map(_bootstrap_task, tasks, n_jobs) if tasks else []
        raw = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, prob.n_params))
        ok = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, bool)
        n_failed = int((~ok).sum())
        samples = raw_to_public(raw[ok], e_floor, k)
        if n_failed:
            msg = (f"{n_failed} of {bootstrap} bootstrap refits did not converge and were left "
                   "out of the intervals")
            warn.append(msg + ("; with so many failures the intervals are unreliable"
                               if n_failed > 0.1 * bootstrap else ""))
        if len(samples):
            for j, name in enumerate(param_names[1 + k:]):
                lo_a, hi_a = np.percentile(samples[:, 1 + k + j], [2.5, 97.5])
                if lo_a < 1e-3 or hi_a > ALPHA_MAX - 1e-6:
                    warn.append(f"the bootstrap interval of {name} reaches its bound (0 or "
                                f"{ALPHA_MAX:g}): the data do not constrain this exponent")
        if n_unident:
            msg = (f"{n_unident} of {bootstrap} bootstrap resamples drew fewer than {need} "
                   "distinct values of an input and were skipped")
            if n_unident > 0.1 * bootstrap:
                warn.append(msg + "; with so few runs the intervals are conditional on "
                            "resamples that identify the law, and rough")
            else:
                notes.append(msg)
        n_failed += n_unident
    for w in warn[len(dropped or []):]:  # the dropped-row warnings were issued already
        _warnings.warn(f"{law} fit: {w}", FitWarning, stacklevel=3)
    return Fit(
        law=law, param_names=param_names, values=values, n_points=len(loss),
        objective=objective, converged=sol.converged, message=sol.message, gof=gof,
        log_residuals=np.log(loss) - np.log(pred), samples=samples, level=level,
        n_failed_resamples=n_failed, warnings=warn, notes=notes, flat=flat, inputs=names,
        input_range={n: (float(np.min(x)), float(np.max(x))) for n, x in zip(names, xs,
                                                                              strict=True)},
        seed=seed)

