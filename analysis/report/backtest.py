"""Backtest: fit the smaller runs, predict the larger ones, and say how often the prediction
intervals held (the joint law when there is one and a compute column, else the power law in N of
the best-populated data size)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plots
from ..backtest import backtest
from ..errors import AnalysisError
from ..isoflop import group_budgets
from ..plots import fmt

CLEAR_GAP = 2.0  # a split value this many times the next smaller one is a break in the design
HELD_OUT_FRACTION = (0.1, 0.4)  # the share of runs a break may hold out


def threshold(split: np.ndarray, need: int, distinct: tuple = (), distinct_min: int = 3) -> float:
    """The split value at or below which runs are fitted; the rest are held out.

    A design with a clear break (a split value ≥ ``CLEAR_GAP``× the next smaller one, holding out
    10–40% of the runs) is split at its widest such break, so every held-out run is well beyond
    the fitted range. Otherwise: the largest value that keeps about three quarters below it. Either
    way ≥ ``need`` runs (and ``distinct_min`` distinct values of each input) are fitted and at
    least one run is held out."""
    split = np.asarray(split, dtype=float)
    vals = np.sort(np.unique(split))
    if len(vals) < 2:
        raise AnalysisError("all runs share one value of the holdout column; nothing to hold out")

    def fits(v: float) -> bool:
        train = split <= v
        return train.sum() >= need and all(len(np.unique(x[train])) >= distinct_min
                                           for x in distinct)

    lo, hi = HELD_OUT_FRACTION
    breaks = [(vals[i + 1] / vals[i], vals[i]) for i in range(len(vals) - 1)
              if vals[i] > 0 and vals[i + 1] >= CLEAR_GAP * vals[i]
              and lo <= (split > vals[i]).mean() <= hi and fits(vals[i])]
    if breaks:
        return float(max(breaks)[1])
    target = np.quantile(split, 0.75)
    candidates = [v for v in vals[:-1] if v <= target] or list(vals[:-1])
    for v in sorted(candidates, reverse=True) + sorted(set(vals[:-1]) - set(candidates)):
        if fits(v):
            return float(v)
    raise AnalysisError(f"too few runs to hold some out and still fit on ≥ {need} runs with ≥ "
                        f"{distinct_min} distinct sizes below the threshold")


def section(r) -> None:
    pc, dc, lc, fc = (r.cols.get(k) for k in ("params", "data", "loss", "flops"))
    if pc is None:
        raise AnalysisError("no parameter column to order runs by")
    n, y = r.values(pc), r.values(lc)
    ok = np.isfinite(n) & (n > 0)
    reps = r.values("n_seeds") if "n_seeds" in r.runs else np.ones(len(y))
    noise = r.fits.get("noise")  # rows are means of seeds: a new run scatters by σ
    joint = r.fits.get("joint")
    if joint is not None and fc is not None:
        d, f = r.values(dc), r.values(fc)
        ok &= np.isfinite(d) & (d > 0) & np.isfinite(f) & (f > 0)
        thr = threshold(f[ok], need=6, distinct=(n[ok], d[ok]))
        bt = backtest("chinchilla", {"N": n[ok], "D": d[ok]}, y[ok], f[ok], thr,
                      column=fc, grid=r.opts.joint_grid, noise=noise,
                      replicates=reps[ok], **r.boot())
        what = f"runs above {fmt(thr)} FLOPs"
    else:
        groups = r.fits.get("power_n") or []
        if not groups:
            raise AnalysisError("no scaling-law fit to backtest")
        label, fit, _ = max(groups, key=lambda g: g[2])
        m = ok.copy()
        if dc is not None and len(groups) > 1:
            d = r.values(dc)
            target = np.median(d[np.isfinite(d)])
            labs = group_budgets(np.where(np.isfinite(d) & (d > 0), d, 1.0), 0.05)
            # the data-size group of the fitted series with the most runs
            sel = [g for g in np.unique(labs)
                   if f"{r.opts.data_label} ≈ {fmt(np.median(d[labs == g]))}" == label]
            m &= labs == (sel[0] if sel else labs[np.argmin(np.abs(d - target))])
        floor = fit.params["E"] > 0
        thr = threshold(n[m], need=5 if floor else 4, distinct=(n[m],),
                        distinct_min=4 if floor else 3)
        bt = backtest("power", {"N": n[m]}, y[m], n[m], thr, column=pc, floor=floor,
                      noise=noise, replicates=reps[m], **r.boot())
        what = f"runs above {fmt(thr)} parameters ({label})"
    split_col = fc if joint is not None and fc is not None else pc
    sv = r.values(split_col)
    used = ok if joint is not None and fc is not None else m
    train = used & (sv <= bt.threshold)
    src = r.runs[r.opts.source].to_numpy().astype(str)
    held_src = src[used & (sv > bt.threshold)]  # in the order of bt.predictions
    fig = plots.plot_backtest(bt, sv[train], y[train], split_label=split_col, loss_label=lc,
                              train_source=src[train], test_source=held_src)
    r.doc.figure(fig, "backtest", f"Backtest: fitted on {bt.n_train} runs, predicting "
                 f"the {bt.n_test} {what}. Error bars: {int(100 * r.opts.level)}% "
                 "prediction intervals for a single new run (curve uncertainty, run-to-run "
                 "scatter and extrapolation error growing with distance beyond the fitted "
                 "range).")
    cov = "n/a" if bt.coverage is None else f"{fmt(100 * bt.coverage)}%"
    r.doc.p(f"MAE {fmt(bt.mae)}, RMSE {fmt(bt.rmse)}, max |error| {fmt(bt.max_abs)}, "
            f"MAPE {fmt(bt.mape)}%; the intervals held {cov} of the held-out runs.")
    table = pd.DataFrame(bt.predictions)
    table.insert(0, "source", held_src)
    r.doc.table(table)
    r.summary["backtest"] = bt
