"""Per-group power laws: loss against N at each data size, loss against D at each model size (or,
with fewer than 3 data sizes, the learning curve of the largest model)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plots
from ..data import numeric
from ..errors import AnalysisError
from ..fit_power import fit_power
from ..isoflop import group_budgets
from ..plots import Series, fmt
from ..report_columns import data_label
from .overview import source_counts
from .render import ci


def fit_1d(r, x: np.ndarray, y: np.ndarray, name: str, groups=None):
    """Power law where the data can carry it: with a floor from 4 distinct x, without one at
    3, none below 3. Returns (fit or None, note)."""
    k = len(np.unique(x))
    if k < 3:
        return None, f"{k} distinct value(s) of {name}: at least 3 are needed for a fit"
    floor = k >= 4
    fit = fit_power(x, y, floor=floor, name=name, groups=groups, **r.boot())
    note = None if floor else (f"only 3 distinct {name} values: fitted L = A·{name}^−α "
                               "(no floor: 3 sizes cannot pin one down)")
    if fit.flat:
        note = "flat: the trend is within the scatter, so no line is drawn"
    return fit, note


def remember_inputs(r, fit, inputs: list[np.ndarray], loss: np.ndarray, rows: np.ndarray) -> None:
    """Keep what ``fit`` was fitted on (and how many seeds each row averages) for the
    prediction intervals of the next-scale section."""
    reps = r.values("n_seeds")[rows] if "n_seeds" in r.runs.columns else np.ones(len(loss))
    r.fits.setdefault("inputs", {})[id(fit)] = (inputs, loss, reps)


def fit_table(rows: list[tuple], count: str = "runs") -> pd.DataFrame:
    """One row per group: its fitted parameters with intervals, goodness of fit, notes and, when
    given as a fifth element, where its points come from."""
    out = []
    for label, n, fit, note, *rest in rows:
        row = {"group": label, count: n}
        if rest and rest[0] is not None:
            row["sources"] = source_counts(rest[0])
        if fit is not None:
            intervals = fit.ci()
            for k in fit.param_names:
                row[k] = fit.params[k]
                row[f"{k} CI"] = ci(intervals.get(k))
            row.update(rmse=fit.gof.rmse, r2_log=fit.gof.r2_log, converged=fit.converged)
        extra = [] if fit is None else fit.warnings + fit.notes
        row["note"] = "; ".join(([note] if note else []) + extra)
        out.append(row)
    return pd.DataFrame(out)


def _groups(values: np.ndarray, label) -> list[tuple[str, np.ndarray]]:
    labels = group_budgets(np.where(np.isfinite(values) & (values > 0), values, 1.0), 0.05)
    return [(label(np.median(values[labels == g])), labels == g) for g in np.unique(labels)]


def loss_vs_params(r) -> None:
    pc, lc, dc = r.cols.get("params"), r.cols["loss"], r.cols.get("data")
    if pc is None:
        raise AnalysisError("no parameter-count column (e.g. trunk_params)")
    n, y = r.values(pc), r.values(lc)
    src = r.runs[r.opts.source].to_numpy()
    ok = np.isfinite(n) & (n > 0)
    series, rows = [], []
    if dc is not None and np.isfinite(r.values(dc)).all():
        d = r.values(dc)
        groups = _groups(d, lambda v: f"{r.opts.data_label} ≈ {fmt(v)}")
    else:
        groups = [("all runs", np.ones(len(y), bool))]
    for label, m in groups:
        m = m & ok
        if m.sum() == 0:
            continue
        fit, note = fit_1d(r, n[m], y[m], "N")
        series.append(Series(label, n[m], y[m], fit, note, src[m]))
        rows.append((label, int(m.sum()), fit, note, src[m]))
        if fit is not None:
            r.fits.setdefault("power_n", []).append((label, fit, int(m.sum())))
            remember_inputs(r, fit, [n[m]], y[m], m)
    fig = plots.plot_scaling(series, f"{r.opts.params_label} N", f"{r.opts.loss_label} "
                             f"({lc})", "Loss against model size", var="N",
                             extrapolate_to=np.nanmax(n[ok]) * r.opts.extrapolate)
    r.doc.figure(fig, "loss_vs_params", "Loss against parameters, one colour per data "
                 "size. Lines: L = E + A·N^−α fitted with Huber loss on log residuals; "
                 f"bands: {int(100 * r.opts.level)}% bootstrap intervals of the curve; "
                 "grey: extrapolation. Fitted values and notes: table below.")
    r.doc.table(fit_table(rows))
    r.summary["loss_vs_params"] = [{"group": g, "runs": k, "fit": f}
                                   for g, f, k in r.fits.get("power_n", [])]


def loss_vs_data(r) -> None:
    dc, lc, pc = r.cols.get("data"), r.cols["loss"], r.cols.get("params")
    series, rows = [], []
    k = 0
    if dc is not None:
        d, y = r.values(dc), r.values(lc)
        ok = np.isfinite(d) & (d > 0)
        k = len(np.unique(d[ok]))
    if k >= 3:
        src = r.runs[r.opts.source].to_numpy()
        groups = (_groups(r.values(pc), lambda v: f"N ≈ {fmt(v)}") if pc is not None
                  else [("all runs", np.ones(len(d), bool))])
        for label, m in groups:
            m = m & ok
            fit, note = fit_1d(r, d[m], y[m], "D")
            series.append(Series(label, d[m], y[m], fit, note, src[m]))
            rows.append((label, int(m.sum()), fit, note, src[m]))
        fig = plots.plot_scaling(series, f"{r.opts.data_label} D", f"{lc}",
                                 "Loss against data", var="D",
                                 extrapolate_to=np.nanmax(d[ok]) * r.opts.extrapolate)
        r.doc.figure(fig, "loss_vs_data", "Loss against training data, one colour per "
                     "model size, with fitted L = E + A·D^−β and bootstrap bands. Fitted values "
                     "and notes: table below.")
        r.doc.table(fit_table(rows))
        r.summary["loss_vs_data"] = [{"group": g[0], "runs": g[1], "fit": g[2]} for g in rows]
        return
    r.doc.p(f"The runs cover {k} distinct data size(s); a power law in D needs at least "
            "3. Falling back to the learning curve of the largest model: loss against "
            f"{data_label(r.opts.curve_x)} during its training.")
    learning_curve(r)


def learning_curve(r) -> None:
    """Power law in D along the largest model's training curve (a schedule-bound stand-in)."""
    c, pc = r.curves, r.cols.get("params")
    x, rid_col = r.opts.curve_x, r.opts.run_id
    if c is None or rid_col not in c.columns or x not in c.columns:
        raise AnalysisError(f"no curves table with '{rid_col}' and '{x}' for a "
                            "learning-curve fit; sweep at least 3 data sizes instead")
    ycol = "val_loss" if "val_loss" in c.columns and np.isfinite(
        numeric(c, "val_loss")).sum() >= 8 else "loss"
    ids = r.runs[rid_col] if rid_col in r.runs.columns else []
    size = dict(zip(ids, r.values(pc), strict=True)) if pc else {}
    cand = [i for i in size if i in set(c[rid_col])]
    if not cand:
        raise AnalysisError("no run of the runs table has a curve")
    trained = c.groupby(rid_col)[x].max()
    rid = max(cand, key=lambda i: (size[i], trained.get(i, 0)))
    g = c[c[rid_col] == rid]
    xs, ys = numeric(g, x), numeric(g, ycol)
    ok = np.isfinite(xs) & np.isfinite(ys) & (xs > 0) & (ys > 0)
    xs, ys = xs[ok], ys[ok]
    keep = xs >= 0.1 * xs.max()  # past warmup and the first transient
    if keep.sum() > 200:  # thin dense curves: the fit needs shape, not 10k noisy points
        idx = np.unique(np.geomspace(1, keep.sum(), 200).astype(int) - 1)
        xs_f, ys_f = xs[keep][idx], ys[keep][idx]
    else:
        xs_f, ys_f = xs[keep], ys[keep]
    fit, note = fit_1d(r, xs_f, ys_f, "D")
    src = np.full(len(xs_f), "intermediate checkpoint", dtype=object)
    fig = plots.plot_scaling([Series(f"run {rid} (N = {fmt(size[rid])})", xs_f, ys_f, fit,
                                     note, src)], f"{r.opts.data_label} D",
                             f"{ycol} along training", "Learning curve of the largest model",
                             extrapolate_to=xs.max() * r.opts.extrapolate, var="D")
    r.doc.figure(fig, "loss_vs_data", "One run's learning curve (last 90% of training). "
                 "With a decaying learning-rate schedule, an intermediate checkpoint is not "
                 "a model trained for that many images, so this exponent describes this "
                 "schedule, not the data-scaling law; sweep ≥ 3 data sizes for that.")
    r.doc.table(fit_table([(f"run {rid}", int(len(xs_f)), fit, note, src)], count="points"))
    r.summary["loss_vs_data"] = {"learning_curve_of": rid, "column": ycol, "fit": fit}
