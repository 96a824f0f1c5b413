"""Replicates: runs that are equal except for their seed.

A point of a study (one config, one size, one data size) run with several seeds gives a mean,
a spread, and — pooled over every point — the run-to-run noise: the within-point standard
deviation of log loss, σ. Prediction intervals add σ to the curve's uncertainty; an ablation's
difference is only resolved when it stands out of that noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import numeric, require_columns
from .errors import AnalysisError

SEED_COLUMNS = ("seed", "train.seed")  # `aimscale collect` writes both (the same value)
RESULT_PREFIXES = ("probe.",)  # dotted columns that are results, not config


@dataclass(frozen=True)
class Noise:
    """Pooled within-point noise of a metric, from the points that have ≥ 2 replicates."""

    sigma: float | None  # pooled std (of log metric when log): sqrt(Σ_g Σ_i (y_gi − ȳ_g)² / dof)
    dof: int  # degrees of freedom, Σ_g (n_g − 1)
    n_points: int  # points with ≥ 2 replicates
    n_runs: int  # runs in those points
    log: bool = True

    def to_dict(self) -> dict:
        return {"sigma": self.sigma, "dof": self.dof, "n_points": self.n_points,
                "n_runs": self.n_runs, "log": self.log}


def seed_columns(df: pd.DataFrame) -> list[str]:
    """The seed columns present in ``df``."""
    return [c for c in SEED_COLUMNS if c in df.columns]


def config_columns(df: pd.DataFrame) -> list[str]:
    """Columns that say which point a run is: dotted config keys (`model.width`; not results
    like `probe.*.top1`) and `variant`, without the seed columns."""
    seeds = set(SEED_COLUMNS)
    out = [c for c in df.columns if isinstance(c, str) and "." in c and c not in seeds
           and not c.startswith(RESULT_PREFIXES)]
    return out + (["variant"] if "variant" in df.columns else [])


def point_labels(df: pd.DataFrame, by: list[str]) -> np.ndarray:
    """One integer per row; equal for rows with equal ``by`` values (NaN equals NaN)."""
    require_columns(df, list(by))
    if not by:
        return np.zeros(len(df), dtype=int)
    keyed = df[list(by)].astype(str)  # mixed types and NaN compare as text
    return keyed.groupby(list(by), sort=False, dropna=False).ngroup().to_numpy()


def noise_estimate(df: pd.DataFrame, inputs: list[str], loss: str, *, log: bool = True) -> Noise:
    """Pooled within-point std of (log) ``loss``, points being equal values of ``inputs``
    (e.g. the parameter and data columns, or every config column)."""
    require_columns(df, [*inputs, loss])
    y = numeric(df, loss)
    ok = np.isfinite(y) & ((y > 0) if log else True)
    if log:
        y = np.log(np.where(ok, y, 1.0))
    labels = point_labels(df, list(inputs))[ok]
    y = y[ok]
    ss, dof, points, runs = 0.0, 0, 0, 0
    for g in np.unique(labels):
        v = y[labels == g]
        if len(v) < 2:
            continue
        ss += float(((v - v.mean()) ** 2).sum())
        dof += len(v) - 1
        points += 1
        runs += len(v)
    sigma = float(np.sqrt(ss / dof)) if dof else None
    return Noise(sigma=sigma, dof=dof, n_points=points, n_runs=runs, log=log)


def replicate_noise(df: pd.DataFrame, inputs: list[str], loss: str, *,
                    log: bool = True) -> float | None:
    """σ of :func:`noise_estimate`: the pooled within-point std of log loss (None without any
    point run twice)."""
    return noise_estimate(df, inputs, loss, log=log).sigma


def average_replicates(df: pd.DataFrame, by: list[str], *, metrics: list[str] | None = None,
                       spread: list[str] = (), run_id: str = "run_id") -> pd.DataFrame:
    """One row per point (equal ``by`` values, in first-seen order).

    ``metrics`` (default: every numeric column outside ``by`` and the seeds) are averaged; other
    columns keep the first run's value; the seed columns are dropped. Added: ``n_seeds``,
    ``<m>_std`` (sample std, NaN for one run) for each of ``spread``, and ``replicates`` (the
    run ids, ';'-joined) when ``run_id`` is a column.
    """
    by = list(by)
    if not by:
        raise AnalysisError("average_replicates needs the columns that define a point")
    labels = point_labels(df, by)
    seeds = seed_columns(df)
    if metrics is None:
        metrics = [c for c in df.columns if c not in by and c not in seeds
                   and pd.api.types.is_numeric_dtype(df[c])
                   and not pd.api.types.is_bool_dtype(df[c])]
    work = df.drop(columns=seeds).copy()
    for m in metrics:
        work[m] = numeric(df, m)
    work["_point"] = labels
    grouped = work.groupby("_point", sort=False)
    out = grouped.first()
    means = grouped[list(metrics)].mean()
    out[list(metrics)] = means
    out["n_seeds"] = grouped.size()
    for m in spread:
        out[f"{m}_std"] = grouped[m].std(ddof=1)
    if run_id in work.columns:
        out["replicates"] = grouped[run_id].agg(lambda ids: ";".join(map(str, ids)))
    return out.reset_index(drop=True)  # ngroup(sort=False) numbers points in first-seen order


def has_replicates(df: pd.DataFrame, by: list[str]) -> bool:
    """Does some point of ``df`` hold two or more runs?"""
    labels = point_labels(df, by)
    return len(labels) > len(np.unique(labels))
