"""The two-step loss → accuracy prediction of OLMo's model ladder (Bhagia et al. 2024).

Step 1: each run's final task loss (the mean over its last ``final_checkpoints`` checkpoints)
against its (N, D), fitted with the joint law L = E + A/N^α + B/D^β (``fit_joint``). Step 2: the
sigmoid acc = a / (1 + exp(−k·(L − L0))) + b of accuracy against task loss (``fit_sigmoid``), on
every checkpoint after each run's first ``skip_fraction`` of steps, both columns smoothed by a
moving average over ``smooth`` checkpoints, plus the ideal point (loss 0, accuracy ``acc_max``).
Chained: acc(N, D) = sigmoid(L(N, D)).

Intervals: a percentile bootstrap over runs in both steps (step 1 resamples run rows, step 2
resamples whole runs with all their checkpoints, never single checkpoints); the two steps'
draws are paired at random, so the accuracy interval carries both fits' uncertainty (treated as
independent). Like every bootstrap over runs, it says how well these runs pin the two laws
down, not how wrong they become far beyond the ladder.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, interval
from .correlate import SIGMOID_PARAMS, fit_sigmoid, sigmoid
from .data import numeric, require_columns
from .errors import AnalysisError, FitWarning
from .fit_joint import fit_joint
from .result import Fit


@dataclass
class LadderConfig:
    """The protocol's numbers (OLMo's defaults)."""

    final_checkpoints: int = 5  # step 1: mean task loss over each run's last checkpoints
    skip_fraction: float = 0.1  # step 2: drop each run's first 10% of steps
    smooth: int = 5  # step 2: moving average over this many checkpoints
    acc_max: float = 1.0  # the ideal point: accuracy at loss 0
    ideal_point: bool = True

    def validate(self) -> None:
        problems = []
        if self.final_checkpoints < 1:
            problems.append(f"--final-checkpoints must be ≥ 1 (got {self.final_checkpoints})")
        if not 0 <= self.skip_fraction < 1:
            problems.append(f"--skip-fraction must be in [0, 1) (got {self.skip_fraction})")
        if self.smooth < 1:
            problems.append(f"--smooth must be ≥ 1 (got {self.smooth}; 1 = no smoothing)")
        if not np.isfinite(self.acc_max):
            problems.append(f"--acc-max must be a number (got {self.acc_max})")
        if problems:
            raise AnalysisError("; ".join(problems) + ".")


@dataclass
class Columns:
    """Column names of a checkpoints table (one row per run and checkpoint)."""

    run: str
    n: str
    d: str
    step: str
    task_loss: str
    acc: str


@dataclass
class Ladder:
    """Both fitted steps, their bootstrap draws and what they were fitted on."""

    step1: Fit
    sigmoid: np.ndarray  # (a, k, l0, b)
    sigmoid_samples: np.ndarray | None
    runs: pd.DataFrame  # run, N, D, task_loss (final), n_checkpoints
    n_step2: int
    config: LadderConfig
    level: float
    seed: int | None
    sigmoid_rmse: float
    warnings: list[str] = field(default_factory=list)

    def predict(self, n, d) -> list[dict]:
        """Task loss and accuracy at each (N, D), with chained bootstrap intervals."""
        n, d = np.atleast_1d(np.asarray(n, float)), np.atleast_1d(np.asarray(d, float))
        loss = self.step1.predict(n, d)
        acc = sigmoid(loss, *self.sigmoid)
        ls = self.step1.predict_samples(n, d)
        lo_l = hi_l = lo_a = hi_a = [None] * len(n)
        if ls is not None and self.sigmoid_samples is not None and len(self.sigmoid_samples):
            rng = np.random.default_rng(self.seed)
            pick = rng.integers(0, len(self.sigmoid_samples), size=len(ls))
            t = self.sigmoid_samples[pick][:, :, None]  # (R, 4, 1)
            acc_s = sigmoid(ls, t[:, 0], t[:, 1], t[:, 2], t[:, 3])
            lo_l, hi_l = interval(ls, self.level)
            lo_a, hi_a = interval(acc_s, self.level)
        n_max, d_max = self.runs["N"].max(), self.runs["D"].max()
        out = []
        for j in range(len(n)):
            warn = []
            if n[j] > n_max or d[j] > d_max:
                warn.append(f"extrapolates beyond the ladder (N {n[j] / n_max:.3g}× and D "
                            f"{d[j] / d_max:.3g}× its largest run): the interval covers the "
                            "fits' uncertainty, not a change of either law out there")
            out.append({"N": float(n[j]), "D": float(d[j]), "task_loss": float(loss[j]),
                        "task_loss_lo": _num(lo_l[j]), "task_loss_hi": _num(hi_l[j]),
                        "acc": float(acc[j]), "acc_lo": _num(lo_a[j]), "acc_hi": _num(hi_a[j]),
                        "level": self.level, "warnings": warn})
        return out

    def to_dict(self) -> dict:
        ci = {}
        if self.sigmoid_samples is not None and len(self.sigmoid_samples):
            lo, hi = interval(self.sigmoid_samples, self.level)
            ci = {k: [float(a), float(b)] for k, a, b in zip(SIGMOID_PARAMS, lo, hi, strict=True)}
        return {"step1": self.step1.to_dict(),
                "step2": {"form": "acc = a / (1 + exp(-k·(L - l0))) + b",
                          "params": dict(zip(SIGMOID_PARAMS, map(float, self.sigmoid),
                                             strict=True)),
                          "ci": ci, "rmse": self.sigmoid_rmse, "n_points": self.n_step2,
                          "n_resamples": 0 if self.sigmoid_samples is None
                          else len(self.sigmoid_samples)},
                "n_runs": len(self.runs), "config": vars(self.config), "level": self.level,
                "runs": self.runs.to_dict(orient="records"), "warnings": list(self.warnings)}


def _num(v):
    return None if v is None else float(v)


def _ordered(table: pd.DataFrame, cols: Columns) -> pd.DataFrame:
    names = [cols.run, cols.n, cols.d, cols.step, cols.task_loss, cols.acc]
    require_columns(table, names)
    df = pd.DataFrame({"run": table[cols.run].to_numpy(),
                       **{k: numeric(table, c) for k, c in
                          (("N", cols.n), ("D", cols.d), ("step", cols.step),
                           ("loss", cols.task_loss), ("acc", cols.acc))}})
    ok = np.isfinite(df[["N", "D", "step", "loss", "acc"]].to_numpy()).all(axis=1)
    ok &= (df["N"] > 0).to_numpy() & (df["D"] > 0).to_numpy() & (df["loss"] > 0).to_numpy()
    return df.loc[ok].sort_values(["run", "step"], kind="stable").reset_index(drop=True)


def final_losses(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per run: N, D at its last checkpoint, mean task loss over its last ``k`` checkpoints."""
    rows = []
    for run, g in df.groupby("run", sort=True):
        tail = g.tail(k)
        rows.append({"run": run, "N": float(g["N"].iloc[-1]), "D": float(g["D"].iloc[-1]),
                     "task_loss": float(tail["loss"].mean()), "n_checkpoints": len(g)})
    return pd.DataFrame(rows)


def step2_points(df: pd.DataFrame, cfg: LadderConfig) -> pd.DataFrame:
    """Smoothed (loss, acc) checkpoints after each run's first ``skip_fraction`` of steps."""
    parts = []
    for _, g in df.groupby("run", sort=True):
        sm = g[["loss", "acc"]].rolling(cfg.smooth, min_periods=1).mean()
        keep = g["step"] > cfg.skip_fraction * g["step"].max()
        parts.append(pd.DataFrame({"run": g["run"], "loss": sm["loss"], "acc": sm["acc"]})[keep])
    return pd.concat(parts, ignore_index=True)


def fit_ladder(table: pd.DataFrame, cols: Columns, cfg: LadderConfig | None = None, *,
               bootstrap: int = DEFAULT_RESAMPLES, seed: int | None = 0,
               level: float = DEFAULT_LEVEL, n_jobs: int | None = None,
               grid: dict | None = None) -> Ladder:
    """Fit both steps of the ladder on a checkpoints table."""
    cfg = cfg or LadderConfig()
    cfg.validate()
    df = _ordered(table, cols)
    if df.empty:
        raise AnalysisError("no checkpoint has finite positive N, D and task loss and a finite "
                            "step and accuracy; check the column names.")
    runs = final_losses(df, cfg.final_checkpoints)
    warn = []
    short = int((runs["n_checkpoints"] < cfg.final_checkpoints).sum())
    if short:
        warn.append(f"{short} run(s) have fewer than {cfg.final_checkpoints} checkpoints; their "
                    "final loss is the mean of what they have")
    step1 = fit_joint(runs["N"], runs["D"], runs["task_loss"], bootstrap=bootstrap, seed=seed,
                      level=level, n_jobs=n_jobs, grid=grid)
    warn += [f"step 1: {w}" for w in step1.warnings]
    pts = step2_points(df, cfg)
    x, y = pts["loss"].to_numpy(), pts["acc"].to_numpy()
    if len(x) < 6:
        raise AnalysisError(f"step 2 needs at least 6 checkpoints after each run's first "
                            f"{cfg.skip_fraction:.0%} (the sigmoid has 4 parameters); got "
                            f"{len(x)}.")
    if cfg.ideal_point:
        x, y = np.append(x, 0.0), np.append(y, cfg.acc_max)
    params, conv = fit_sigmoid(x, y)
    if not conv:
        warn.append("step 2: the sigmoid fit did not converge")
    rmse = float(np.sqrt(np.mean((sigmoid(x, *params) - y) ** 2)))
    samples = None
    if bootstrap > 0:
        labels, inverse = np.unique(pts["run"].to_numpy(), return_inverse=True)
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(len(labels), np.full(len(labels), 1 / len(labels)),
                                 size=bootstrap).astype(float)
        draws = []
        for c in counts:
            w = c[inverse]
            if cfg.ideal_point:
                w = np.append(w, 1.0)
            p, ok = fit_sigmoid(x, y, w=w, start=params)
            if ok:
                draws.append(p)
        samples = np.array(draws).reshape(-1, 4)
        if len(samples) < 0.9 * bootstrap:
            warn.append(f"step 2: {bootstrap - len(samples)} of {bootstrap} bootstrap refits of "
                        "the sigmoid did not converge and were left out")
    for m in warn:
        if not m.startswith("step 1: "):  # fit_joint issued its own already
            _warnings.warn(f"two-step: {m}", FitWarning, stacklevel=2)
    return Ladder(step1, params, samples, runs, len(pts), cfg, level, seed, rmse, warn)
