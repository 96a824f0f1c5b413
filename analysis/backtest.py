"""Backtest: fit on the smaller runs, predict the held-out rest, score errors and intervals.

Splits: ``COL > V`` or ``COL >= V`` (``backtest``), or any boolean mask of held-out rows
(``backtest_split``, e.g. from a pandas query). Scores: MAE, RMSE, max |error|, MAPE, RMSLE as
√mean(log ŷ − log y)² (the field's number) and, beside it, ``rmsle_log1p`` = √mean(log(1+ŷ) −
log(1+y))² (the broken-scaling-law paper's, ``bnsl.rmsle``); coverage of the prediction interval
``pi`` and of the curve interval ``ci`` at the stated level (see ``intervals`` for how ``pi`` is
built from the training runs alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import AnalysisError
from .intervals import CI_METHOD, PI_METHOD, predict
from .predict import calibrated, fit_law
from .replicates import Noise
from .result import Fit


@dataclass
class Backtest:
    """Errors of extrapolated predictions and how often their intervals held the truth."""

    law: str
    column: str
    threshold: float | None
    n_train: int
    n_test: int
    fit: Fit
    mae: float
    rmse: float
    max_abs: float
    mape: float  # percent
    coverage: float | None  # share of held-out runs inside the prediction interval
    coverage_ci: float | None  # same for the interval of the curve alone (no run scatter)
    predictions: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rmsle: float = float("nan")
    rmsle_log1p: float = float("nan")
    level: float = 0.95
    split: str = ""
    median_pi_halfwidth_pct: float | None = None

    def to_dict(self) -> dict:
        return {"law": self.law, "split": self.split, "holdout_column": self.column,
                "threshold": self.threshold, "n_train": self.n_train, "n_test": self.n_test,
                "mae": self.mae, "rmse": self.rmse, "max_abs": self.max_abs, "mape": self.mape,
                "rmsle": self.rmsle, "rmsle_log1p": self.rmsle_log1p,
                "coverage": self.coverage, "coverage_level": self.level,
                "coverage_curve": self.coverage_ci, "level": self.level,
                "median_pi_halfwidth_pct": self.median_pi_halfwidth_pct,
                "pi_method": PI_METHOD, "ci_method": CI_METHOD if self.fit.n_resamples else None,
                "pi_model": None if self.fit.pi_model is None else self.fit.pi_model.to_dict(),
                "fit": self.fit.to_dict(), "predictions": self.predictions,
                "warnings": list(self.warnings)}


def backtest(law: str, inputs: dict[str, np.ndarray], loss: np.ndarray, split_by: np.ndarray,
             threshold: float, *, column: str = "", inclusive: bool = False,
             **fit_kwargs) -> Backtest:
    """Hold out the rows with ``split_by`` > ``threshold`` (≥ with ``inclusive``), fit ``law``
    ('power', 'chinchilla' or 'bnsl') on the rest and predict them. ``inputs``: {'x': …} or
    {'N': …, 'D': …}; ``fit_kwargs`` go to the fit (bootstrap, seed, level, breaks, …) and
    ``backtest_split`` (noise, replicates)."""
    split_by = np.asarray(split_by, dtype=float)
    test = split_by >= threshold if inclusive else split_by > threshold
    op = ">=" if inclusive else ">"
    name = column or "the holdout column"
    if test.sum() == 0:
        raise AnalysisError(f"No run has {name} {op} {threshold:g}; lower the threshold so that "
                            "some runs are held out.")
    return backtest_split(law, inputs, loss, test, split=f"{column or 'split'} {op} {threshold:g}",
                          split_values=split_by, column=column, threshold=float(threshold),
                          **fit_kwargs)


def backtest_split(law: str, inputs: dict[str, np.ndarray], loss: np.ndarray, test: np.ndarray,
                   *, split: str, split_values: np.ndarray | None = None, column: str = "",
                   threshold: float | None = None, level: float = 0.95, seed: int | None = 0,
                   noise: Noise | None = None, replicates: np.ndarray | None = None,
                   **fit_kwargs) -> Backtest:
    """Fit on the rows where ``test`` is False and predict the others (``split`` describes it).

    When the rows are means of seeds, ``noise`` (``replicates.noise_estimate`` of the seed runs)
    and ``replicates`` (runs per row) make ``pi`` the interval of a single new run.

    Per prediction: "lo"/"hi" (= "pi") the prediction interval, "ci_lo"/"ci_hi" (= "ci") the
    curve's interval, each with its SE."""
    loss = np.asarray(loss, dtype=float)
    test = np.asarray(test, dtype=bool)
    train = ~test
    if test.sum() == 0:
        raise AnalysisError(f"The split ({split}) holds out no run; choose one that does.")
    if train.sum() == 0:
        raise AnalysisError(f"The split ({split}) holds out every run; nothing is left to fit.")
    names = list(inputs)
    cols = [np.asarray(inputs[k], dtype=float) for k in names]
    tr = [c[train] for c in cols]
    kw = dict(fit_kwargs, level=level, seed=seed)
    try:
        fit = fit_law(law, tr, loss[train], names=tuple(names), **kw)
        calibrated(law, tr, loss[train], fit, noise=noise, replicates=None if replicates is None
                   else np.asarray(replicates, dtype=float)[train], **kw)
    except AnalysisError as err:
        raise AnalysisError(f"Backtest training set ({int(train.sum())} runs, the complement of "
                            f"{split}): {err}") from err
    te = [c[test] for c in cols]
    rows_p = predict(fit, fit.pi_model, te, level, seed, names=names)
    pred = np.array([r.loss for r in rows_p])
    obs = loss[test]
    err = pred - obs
    has_ci = fit.n_resamples > 0
    lo = np.array([r.pi[0] for r in rows_p])
    hi = np.array([r.pi[1] for r in rows_p])
    coverage = float(np.mean((obs >= lo) & (obs <= hi)))
    coverage_ci = None
    if has_ci:
        clo = np.array([r.ci[0] for r in rows_p])
        chi = np.array([r.ci[1] for r in rows_p])
        coverage_ci = float(np.mean((obs >= clo) & (obs <= chi)))
    sv = None if split_values is None else np.asarray(split_values, dtype=float)[test]
    rows = []
    for i, r in enumerate(rows_p):
        row = {k: float(c[i]) for k, c in zip(names, te, strict=True)}
        row.update(split=None if sv is None else float(sv[i]), observed=float(obs[i]),
                   predicted=r.loss, lo=r.pi[0], hi=r.pi[1],
                   ci_lo=None if r.ci is None else r.ci[0],
                   ci_hi=None if r.ci is None else r.ci[1],
                   pi=list(r.pi), pi_se=r.pi_se, ci=None if r.ci is None else list(r.ci),
                   ci_se=r.ci_se, extrapolation_decades=r.decades_beyond)
        rows.append(row)
    warn = list(fit.warnings) + list(fit.pi_model.notes if "too few" in " ".join(
        fit.pi_model.notes) else [])
    far = [r.decades_beyond for r in rows_p if r.warnings]
    if far:
        warn.append(f"{len(far)} of {len(rows_p)} held-out runs lie a decade or more beyond the "
                    f"fitted range (up to {max(far):.2g}): their intervals rest on an "
                    "extrapolated error model")
    if not has_ci:
        warn.append("no bootstrap: the prediction interval omits parameter uncertainty and no "
                    "curve interval is reported")
    with np.errstate(divide="ignore", invalid="ignore"):
        rmsle = float(np.sqrt(np.mean((np.log(pred) - np.log(obs)) ** 2)))
        rmsle1 = float(np.sqrt(np.mean((np.log1p(pred) - np.log1p(obs)) ** 2)))
    half = 100 * np.median((hi - lo) / 2 / pred)
    return Backtest(law, column, threshold, int(train.sum()), int(test.sum()), fit,
                    float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2))),
                    float(np.max(np.abs(err))), float(100 * np.mean(np.abs(err) / obs)),
                    coverage, coverage_ci, rows, warn, rmsle, rmsle1, level, split, float(half))
