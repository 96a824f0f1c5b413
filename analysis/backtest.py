"""Backtest: fit on the runs at or below a threshold (compute, params, data), predict the rest."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bnsl import fit_bnsl
from .errors import AnalysisError
from .fit_joint import fit_joint
from .fit_power import fit_power
from .result import Fit


@dataclass
class Backtest:
    """Errors of extrapolated predictions and how often their intervals held the truth."""

    law: str
    column: str
    threshold: float
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

    def to_dict(self) -> dict:
        return {"law": self.law, "holdout_column": self.column, "threshold": self.threshold,
                "n_train": self.n_train, "n_test": self.n_test, "mae": self.mae,
                "rmse": self.rmse, "max_abs": self.max_abs, "mape": self.mape,
                "coverage": self.coverage, "coverage_curve": self.coverage_ci,
                "level": self.fit.level, "fit": self.fit.to_dict(),
                "predictions": self.predictions, "warnings": list(self.warnings)}


def backtest(law: str, inputs: dict[str, np.ndarray], loss: np.ndarray, split_by: np.ndarray,
             threshold: float, *, column: str = "", **fit_kwargs) -> Backtest:
    """Fit ``law`` ('power', 'chinchilla' or 'bnsl') on rows with ``split_by`` ≤ ``threshold`` and
    predict the rest. ``inputs``: {'x': …} or {'n': …, 'd': …}; ``fit_kwargs`` go to the fit
    (bootstrap, seed, level, breaks, …). Intervals: "lo"/"hi" are prediction intervals (curve
    uncertainty plus run-to-run scatter), "ci_lo"/"ci_hi" the curve's interval alone."""
    loss = np.asarray(loss, dtype=float)
    split_by = np.asarray(split_by, dtype=float)
    train = split_by <= threshold
    test = ~train
    if test.sum() == 0:
        raise AnalysisError(f"No run has {column or 'the holdout column'} above {threshold:g}; "
                            "lower the threshold so that some runs are held out.")
    names = list(inputs)
    cols = [np.asarray(inputs[k], dtype=float) for k in names]
    tr = [c[train] for c in cols]
    try:
        if law == "chinchilla":
            fit = fit_joint(tr[0], tr[1], loss[train], names=tuple(names), **fit_kwargs)
        elif law == "power":
            fit = fit_power(tr[0], loss[train], name=names[0], **fit_kwargs)
        elif law == "bnsl":
            fit = fit_bnsl(tr[0], loss[train], name=names[0], **fit_kwargs)
        else:
            raise AnalysisError(f"Unknown law {law!r}; use power, chinchilla or bnsl.")
    except AnalysisError as err:
        raise AnalysisError(f"Backtest training set ({int(train.sum())} runs with "
                            f"{column or 'the holdout column'} ≤ {threshold:g}): {err}") from err
    te = [c[test] for c in cols]
    pred, lo, hi = fit.predict_interval(*te, kind="pi")
    _, clo, chi = fit.predict_interval(*te, kind="ci")
    obs = loss[test]
    err = pred - obs
    coverage = None if lo is None else float(np.mean((obs >= lo) & (obs <= hi)))
    coverage_ci = None if clo is None else float(np.mean((obs >= clo) & (obs <= chi)))
    rows = []
    for i in range(int(test.sum())):
        row = {k: float(c[i]) for k, c in zip(names, te, strict=True)}
        row.update(split=float(split_by[test][i]), observed=float(obs[i]),
                   predicted=float(pred[i]),
                   lo=None if lo is None else float(lo[i]), hi=None if hi is None else float(hi[i]),
                   ci_lo=None if clo is None else float(clo[i]),
                   ci_hi=None if chi is None else float(chi[i]))
        rows.append(row)
    warn = list(fit.warnings)
    if lo is None:
        warn.append("no bootstrap, so no intervals: coverage is not reported")
    return Backtest(law, column, float(threshold), int(train.sum()), int(test.sum()), fit,
                    float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2))),
                    float(np.max(np.abs(err))), float(100 * np.mean(np.abs(err) / obs)),
                    coverage, coverage_ci, rows, warn)
