"""One self-contained HTML page (and Markdown) from a runs table and, optionally, a curves table.

Each section either shows its analysis or says plainly why it was skipped (a missing column, too
few runs, flat data). Every number in it is also written to ``report.json``.
"""

from __future__ import annotations

import base64
import html
import re
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots
from .backtest import backtest
from .compare import (
    ablation_factor,
    ablation_table,
    ablation_verdicts,
    layer_probe_columns,
    layerwise,
    width_vs_depth,
)
from .correlate import correlate, two_step
from .data import numeric
from .errors import AnalysisError, FitWarning
from .fit_joint import fit_joint
from .fit_power import fit_power
from .frontier import frontier, plan, presets_table
from .isoflop import group_budgets, isoflop
from .jsonio import dumps, to_jsonable
from .plots import Series, fmt
from .replicates import (
    average_replicates,
    config_columns,
    has_replicates,
    noise_estimate,
    seed_columns,
)
from .report_columns import (
    DATA_CANDIDATES,
    FLOP_CANDIDATES,
    LOSS_CANDIDATES,
    PARAM_CANDIDATES,
    data_label,
    params_label,
)
from .report_columns import pick_column as _pick

DONE_STATUSES = {"done", "completed", "complete", "finished", "success", "succeeded", "ok"}
PROBE_PREFERENCE = ("probe.attentive_last.top1", "probe.linear_last.top1")


@dataclass
class ReportOptions:
    """What the report reads and how hard it works. Column names default to the aimscale
    collect tables; ``None`` means detect from the table."""

    bootstrap: int = 300
    seed: int = 0
    level: float = 0.95
    n_jobs: int | None = None
    loss: str | None = None
    params: str | None = None
    data: str | None = None
    flops: str | None = None
    accuracy: str | None = None
    variant: str | None = None  # factor the Ablations compare; None: `variant`, else detected
    baseline: str | None = None  # its baseline value; None: a baseline-like name, else the first
    seed_column: str = "train.seed"
    width: str = "model.width"
    depth: str = "model.depth"
    run_id: str = "run_id"
    curve_x: str = "images_seen"
    data_label: str | None = None  # units of D; None: from the data column's name
    params_label: str | None = None  # name of N; None: from the parameter column's name
    loss_label: str = "loss"
    title: str = "Scaling report"
    extrapolate: float = 10.0
    presets: pd.DataFrame | None = None
    joint_grid: dict | None = None
    strict: bool = False  # re-raise unexpected errors instead of reporting them in the page


@dataclass
class Doc:
    """HTML and Markdown built side by side."""

    out_dir: Path
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def h(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {text}\n")

    def p(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.html.append(f"<p{c}>{html.escape(text)}</p>")
        self.md.append(f"{'> ' if cls else ''}{text}\n")

    def skip(self, reason: str) -> None:
        self.p(f"Skipped: {reason}", "skip")

    def bullets(self, items: list[str], cls: str = "") -> None:
        if not items:
            return
        c = f' class="{cls}"' if cls else ""
        self.html.append(f"<ul{c}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items)
                         + "</ul>")
        self.md.append("\n".join(f"- {i}" for i in items) + "\n")

    def table(self, df: pd.DataFrame) -> None:
        if df.empty:
            return
        shown = df.copy()
        for c in shown.columns:
            shown[c] = [_cell(v) for v in shown[c]]
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                       for row in shown.itertuples(index=False))
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        lines = ["| " + " | ".join(map(str, shown.columns)) + " |",
                 "|" + "---|" * len(shown.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in shown.itertuples(index=False)]
        self.md.append("\n".join(lines) + "\n")

    def figure(self, fig, stem: str, caption: str) -> None:
        paths = plots.save(fig, self.out_dir / "figures" / stem)
        self.figures += paths
        data = base64.b64encode(paths[0].read_bytes()).decode("ascii")
        self.html.append(f'<figure><img src="data:image/png;base64,{data}" alt="{stem}">'
                         f"<figcaption>{html.escape(caption)} "
                         f'(<a href="figures/{stem}.svg">SVG</a>)</figcaption></figure>')
        self.md.append(f"![{stem}](figures/{stem}.png)\n\n*{caption}*\n")


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return fmt(float(v)) if np.isfinite(v) else ""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return "" if v is None else str(v)


def _ci(t) -> str:
    return "" if t is None else f"[{fmt(t[0])}, {fmt(t[1])}]"


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.7em}h2{margin-top:1.8em;
border-bottom:1px solid #ddd;padding-bottom:.2em}table{border-collapse:collapse;margin:.8em 0;
font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}
img{max-width:100%}
figcaption{font-size:.88em;color:#555}.skip{color:#8a5a00;background:#fff7e6;padding:.4em .6em;
border-left:3px solid #e0a000}.warn{color:#8a2a00}.meta{color:#555;font-size:.9em}"""


class Report:
    """Runs the sections in order, collecting figures, tables, numbers and warnings."""

    def __init__(self, runs: pd.DataFrame, curves: pd.DataFrame | None, out_dir: Path,
                 opts: ReportOptions):
        self.opts = opts
        self.out_dir = Path(out_dir)
        self.doc = Doc(self.out_dir)
        self.curves = curves
        self.summary: dict = {}
        self.warnings: list[str] = []
        self.all_runs = runs
        self.runs = self._select_runs(runs)
        self.cols: dict[str, str | None] = {}
        self.fits: dict = {}
        self.seed_runs: pd.DataFrame | None = None  # every seed's row (self.runs: their means)

    # ---- helpers -------------------------------------------------------------------------
    def _select_runs(self, runs: pd.DataFrame) -> pd.DataFrame:
        if "status" in runs.columns:
            st = runs["status"].astype(str).str.lower()
            done = st.isin(DONE_STATUSES)
            counts = st.value_counts().to_dict()
            self.summary["status_counts"] = counts
            if done.any():
                if (~done).any():
                    self.warnings.append(f"{int((~done).sum())} of {len(runs)} runs are not "
                                         f"finished (statuses {counts}) and are left out")
                return runs.loc[done].copy()
            self.warnings.append(f"no run has a finished status ({counts}); using every run "
                                 "with a finite loss")
        return runs.copy()

    def _col(self, key: str, wanted, candidates, what) -> str | None:
        try:
            c = _pick(self.runs, wanted, candidates, what)
        except AnalysisError as err:
            self.cols[key] = None
            self.summary.setdefault("missing", []).append(str(err))
            return None
        self.cols[key] = c
        return c

    def _section(self, title: str, fn) -> None:
        self.doc.h(title)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FitWarning)
            try:
                fn()
            except AnalysisError as err:
                self.doc.skip(str(err))
                self.summary.setdefault("skipped", {})[title] = str(err)
            except Exception as err:  # keep the rest of the report; say what broke
                if self.opts.strict:
                    raise
                tb = traceback.format_exc(limit=3)
                self.doc.p(f"This section failed with an unexpected error ({type(err).__name__}: "
                           f"{err}); please report it.", "warn")
                self.warnings.append(f"section '{title}' failed: {err!r}\n{tb}")
                self.summary.setdefault("failed_sections", {})[title] = repr(err)
        for w in caught:
            if issubclass(w.category, FitWarning):
                self.warnings.append(f"{title}: {w.message}")

    def _values(self, col: str, rows: pd.DataFrame | None = None) -> np.ndarray:
        return numeric(self.runs if rows is None else rows, col)

    def _sizes(self) -> dict:
        """Run id -> parameter count, for every analysed run (each seed's too)."""
        rows = self.runs if self.seed_runs is None else self.seed_runs
        pc, rid = self.cols.get("params"), self.opts.run_id
        if not pc or rid not in rows.columns:
            return {}
        return dict(zip(rows[rid], numeric(rows, pc), strict=True))

    def _boot(self) -> dict:
        return {"bootstrap": self.opts.bootstrap, "seed": self.opts.seed,
                "level": self.opts.level, "n_jobs": self.opts.n_jobs}

    # ---- sections ------------------------------------------------------------------------
    def overview(self) -> None:
        o = self.opts
        loss = self._col("loss", o.loss, LOSS_CANDIDATES, "loss")
        params = self._col("params", o.params, PARAM_CANDIDATES, "parameter-count")
        data = self._col("data", o.data, DATA_CANDIDATES, "data-size")
        o.data_label = o.data_label or data_label(data)
        o.params_label = o.params_label or params_label(params)
        self._col("flops", o.flops, FLOP_CANDIDATES, "compute")
        # Whole-run probes only: layer windows have their own section, and `_step<k>` names are
        # probes of intermediate checkpoints, whose loss is not the run's final loss.
        layer = set(layer_probe_columns(self.runs))
        probes = [c for c in self.runs.columns if str(c).startswith("probe.")
                  and str(c).endswith(".top1") and c not in layer
                  and not re.search(r"_step\d+\.top1$", str(c))]
        acc = o.accuracy or next((p for p in PROBE_PREFERENCE if p in probes),
                                 probes[0] if probes else None)
        self.cols["accuracy"] = acc
        self.probes = probes
        if loss is not None:
            v = self._values(loss)
            bad = ~(np.isfinite(v) & (v > 0))
            if bad.any():
                self.warnings.append(f"{int(bad.sum())} runs have no finite positive '{loss}' "
                                     "and are left out of the loss analyses")
            self.runs = self.runs.loc[~bad].copy()
        self.summary["columns"] = dict(self.cols)
        self.summary["n_runs"] = len(self.runs)
        self.summary["n_rows_in_table"] = len(self.all_runs)
        items = [f"{len(self.runs)} runs analysed (of {len(self.all_runs)} in the table)"]
        names = {"loss": "loss", "params": "model size N", "data": "data D",
                 "flops": "compute C", "accuracy": "downstream accuracy"}
        for key, label in names.items():
            c = self.cols.get(key)
            items.append(f"{label}: {'column ' + repr(c) if c else 'not available'}")
        items.append(f"bootstrap: {o.bootstrap} resamples over runs, seed {o.seed}, "
                     f"{int(100 * o.level)}% percentile intervals")
        self.doc.bullets(items)
        if loss is None:
            raise AnalysisError("the table has no loss column, so no scaling analysis is possible; "
                                f"expected one of {', '.join(LOSS_CANDIDATES)}")

    def replicates(self) -> None:
        """Average runs equal except the seed (the later sections fit the means); the pooled
        within-point noise goes to ``fits["noise"]`` for the prediction intervals."""
        self.seed_runs = self.runs
        lc, acc = self.cols["loss"], self.cols.get("accuracy")
        by = list(dict.fromkeys(config_columns(self.runs) + [
            c for c in (self.cols.get("params"), self.cols.get("data")) if c]))
        if not seed_columns(self.runs):
            raise AnalysisError("no seed column (seed or train.seed): every run is its own point")
        if not by or not has_replicates(self.runs, by):
            raise AnalysisError("every point was run with one seed, so the run-to-run noise is "
                                "unknown; add `seeds: 3` to the sweep spec")
        spread = [lc] + ([acc] if acc else [])
        avg = average_replicates(self.runs, by, spread=spread, run_id=self.opts.run_id)
        noise = noise_estimate(self.runs, by, lc)
        acc_noise = noise_estimate(self.runs, by, acc, log=False) if acc else None
        self.fits["noise"] = noise
        shown = [c for c in by if avg[c].nunique() >= 2] + ["n_seeds"]
        for m in spread:
            shown += [m, f"{m}_std"]
        self.doc.p(f"{len(self.runs)} runs at {len(avg)} points (runs equal except the seed); "
                   "the sections below fit the mean of each point. Run-to-run noise, pooled "
                   f"over the {noise.n_points} points with ≥ 2 seeds: σ = {fmt(noise.sigma)} "
                   f"in log {lc} (about {fmt(100 * noise.sigma)}% of the loss; {noise.dof} "
                   "degrees of freedom)" + (f"; std of {acc}: {fmt(acc_noise.sigma)}"
                                            if acc_noise and acc_noise.sigma else "") + ".")
        self.doc.table(avg[shown])
        self.runs = avg
        self.summary["replicates"] = {
            "points": len(avg), "runs": len(self.seed_runs), "noise": noise.to_dict(),
            "accuracy_noise": acc_noise.to_dict() if acc_noise else None,
            "table": avg[shown].to_dict(orient="records")}

    def _fit_1d(self, x: np.ndarray, y: np.ndarray, name: str, groups=None):
        """Power law where the data can carry it: with a floor from 4 distinct x, without one at
        3, none below 3. Returns (fit or None, note)."""
        k = len(np.unique(x))
        if k < 3:
            return None, f"{k} distinct value(s) of {name}: at least 3 are needed for a fit"
        floor = k >= 4
        fit = fit_power(x, y, floor=floor, name=name, groups=groups, **self._boot())
        note = None if floor else (f"only 3 distinct {name} values: fitted L = A·{name}^−α "
                                   "(no floor: 3 sizes cannot pin one down)")
        if fit.flat:
            note = "flat: the trend is within the scatter, so no line is drawn"
        return fit, note

    def _fit_table(self, rows: list[tuple[str, int, object, str | None]],
                   count: str = "runs") -> pd.DataFrame:
        out = []
        for label, n, fit, note in rows:
            r = {"group": label, count: n}
            if fit is not None:
                ci = fit.ci()
                for k in fit.param_names:
                    r[k] = fit.params[k]
                    r[f"{k} CI"] = _ci(ci.get(k))
                r.update(rmse=fit.gof.rmse, r2_log=fit.gof.r2_log, converged=fit.converged)
            extra = [] if fit is None else fit.warnings + fit.notes
            r["note"] = "; ".join(([note] if note else []) + extra)
            out.append(r)
        return pd.DataFrame(out)

    def loss_vs_params(self) -> None:
        pc, lc, dc = self.cols.get("params"), self.cols["loss"], self.cols.get("data")
        if pc is None:
            raise AnalysisError("no parameter-count column (e.g. trunk_params)")
        n, y = self._values(pc), self._values(lc)
        ok = np.isfinite(n) & (n > 0)
        series, rows = [], []
        if dc is not None and np.isfinite(self._values(dc)).all():
            d = self._values(dc)
            labels = group_budgets(np.where(d > 0, d, 1.0), 0.05)
            groups = [(f"{self.opts.data_label} ≈ {fmt(np.median(d[labels == g]))}",
                       labels == g) for g in np.unique(labels)]
        else:
            groups = [("all runs", np.ones(len(y), bool))]
        for label, m in groups:
            m = m & ok
            if m.sum() == 0:
                continue
            fit, note = self._fit_1d(n[m], y[m], "N")
            series.append(Series(label, n[m], y[m], fit, note))
            rows.append((label, int(m.sum()), fit, note))
            if fit is not None:
                self.fits.setdefault("power_n", []).append((label, fit, int(m.sum())))
        fig = plots.plot_scaling(series, f"{self.opts.params_label} N", f"{self.opts.loss_label} "
                                 f"({lc})", "Loss against model size", var="N",
                                 extrapolate_to=np.nanmax(n[ok]) * self.opts.extrapolate)
        self.doc.figure(fig, "loss_vs_params", "Loss against parameters, one colour per data "
                        "size. Lines: L = E + A·N^−α fitted with Huber loss on log residuals; "
                        f"bands: {int(100 * self.opts.level)}% bootstrap intervals of the curve; "
                        "grey: extrapolation.")
        self.doc.table(self._fit_table(rows))
        self.summary["loss_vs_params"] = [{"group": g, "runs": k, "fit": f}
                                          for g, f, k in self.fits.get("power_n", [])]

    def loss_vs_data(self) -> None:
        dc, lc, pc = self.cols.get("data"), self.cols["loss"], self.cols.get("params")
        series, rows = [], []
        if dc is not None:
            d, y = self._values(dc), self._values(lc)
            ok = np.isfinite(d) & (d > 0)
            k = len(np.unique(d[ok]))
        else:
            k = 0
        if k >= 3:
            if pc is not None:
                n = self._values(pc)
                labels = group_budgets(np.where(np.isfinite(n) & (n > 0), n, 1.0), 0.05)
                groups = [(f"N ≈ {fmt(np.median(n[labels == g]))}", labels == g)
                          for g in np.unique(labels)]
            else:
                groups = [("all runs", np.ones(len(d), bool))]
            for label, m in groups:
                m = m & ok
                fit, note = self._fit_1d(d[m], y[m], "D")
                series.append(Series(label, d[m], y[m], fit, note))
                rows.append((label, int(m.sum()), fit, note))
            fig = plots.plot_scaling(series, f"{self.opts.data_label} D", f"{lc}",
                                     "Loss against data", var="D",
                                     extrapolate_to=np.nanmax(d[ok]) * self.opts.extrapolate)
            self.doc.figure(fig, "loss_vs_data", "Loss against training data, one colour per "
                            "model size, with fitted L = E + A·D^−β and bootstrap bands.")
            self.doc.table(self._fit_table(rows))
            self.summary["loss_vs_data"] = [{"group": r[0], "runs": r[1], "fit": r[2]}
                                            for r in rows]
            return
        self.doc.p(f"The runs cover {k} distinct data size(s); a power law in D needs at least "
                   "3. Falling back to the learning curve of the largest model: loss against "
                   f"{data_label(self.opts.curve_x)} during its training.")
        self._learning_curve()

    def _learning_curve(self) -> None:
        c, pc = self.curves, self.cols.get("params")
        x = self.opts.curve_x
        if c is None or self.opts.run_id not in c.columns or x not in c.columns:
            raise AnalysisError(f"no curves table with '{self.opts.run_id}' and '{x}' for a "
                                "learning-curve fit; sweep at least 3 data sizes instead")
        ycol = "val_loss" if "val_loss" in c.columns and np.isfinite(
            numeric(c, "val_loss")).sum() >= 8 else "loss"
        ids = self.runs[self.opts.run_id] if self.opts.run_id in self.runs.columns else []
        size = dict(zip(ids, self._values(pc), strict=True)) if pc else {}
        cand = [r for r in size if r in set(c[self.opts.run_id])]
        if not cand:
            raise AnalysisError("no run of the runs table has a curve")
        trained = c.groupby(self.opts.run_id)[x].max()
        rid = max(cand, key=lambda r: (size[r], trained.get(r, 0)))
        g = c[c[self.opts.run_id] == rid]
        xs, ys = numeric(g, x), numeric(g, ycol)
        ok = np.isfinite(xs) & np.isfinite(ys) & (xs > 0) & (ys > 0)
        xs, ys = xs[ok], ys[ok]
        keep = xs >= 0.1 * xs.max()  # past warmup and the first transient
        if keep.sum() > 200:  # thin dense curves: the fit needs shape, not 10k noisy points
            idx = np.unique(np.geomspace(1, keep.sum(), 200).astype(int) - 1)
            xs_f, ys_f = xs[keep][idx], ys[keep][idx]
        else:
            xs_f, ys_f = xs[keep], ys[keep]
        fit, note = self._fit_1d(xs_f, ys_f, "D")
        fig = plots.plot_scaling([Series(f"run {rid} (N = {fmt(size[rid])})", xs_f, ys_f, fit,
                                         note)], f"{self.opts.data_label} D",
                                 f"{ycol} along training", "Learning curve of the largest model",
                                 extrapolate_to=xs.max() * self.opts.extrapolate, var="D")
        self.doc.figure(fig, "loss_vs_data", "One run's learning curve (last 90% of training). "
                        "With a decaying learning-rate schedule, an intermediate checkpoint is not "
                        "a model trained for that many images, so this exponent describes this "
                        "schedule, not the data-scaling law; sweep ≥ 3 data sizes for that.")
        self.doc.table(self._fit_table([(f"run {rid}", int(len(xs_f)), fit, note)],
                                       count="points"))
        self.summary["loss_vs_data"] = {"learning_curve_of": rid, "column": ycol, "fit": fit}

    def joint(self) -> None:
        pc, dc, lc, fc = (self.cols.get(k) for k in ("params", "data", "loss", "flops"))
        if pc is None or dc is None:
            raise AnalysisError("the joint law needs both a parameter and a data column")
        n, d, y = self._values(pc), self._values(dc), self._values(lc)
        ok = np.isfinite(n) & np.isfinite(d) & (n > 0) & (d > 0)
        fit = fit_joint(n[ok], d[ok], y[ok], grid=self.opts.joint_grid,
                        names=("N", "D"), **self._boot())
        self.fits["joint"] = fit
        k_factor = 6.0
        if fc is not None:
            c = self._values(fc)[ok]
            ratio = c / (n[ok] * d[ok])
            if np.isfinite(ratio).any():
                k_factor = float(np.nanmedian(ratio))
        self.fits["k"] = k_factor
        fig = plots.plot_joint(n[ok], d[ok], y[ok], fit, n_label=f"{self.opts.params_label} N",
                               d_label=f"{self.opts.data_label} D", loss_label=lc)
        self.doc.figure(fig, "joint_fit", "Joint law fitted as in Hoffmann et al.: Huber "
                        f"(δ = 1e-3) on log loss, {len(fit.param_names)} parameters, L-BFGS-B "
                        "from a grid of starts, bootstrap over runs.")
        ci = fit.ci()
        rows = [{"parameter": k, "value": v, "CI": _ci(ci.get(k))} for k, v in fit.params.items()]
        dci = fit.derived_ci()
        rows += [{"parameter": f"{k} (N_opt ∝ C^a, D_opt ∝ C^b)" if k == "a" else k,
                  "value": v, "CI": _ci(dci.get(k))} for k, v in fit.derived().items()]
        self.doc.table(pd.DataFrame(rows))
        self.doc.p(f"RMSE {fmt(fit.gof.rmse)}, MAE {fmt(fit.gof.mae)} ({lc} units); "
                   f"R² of log loss {fmt(fit.gof.r2_log, 4)}; converged: "
                   f"{'yes' if fit.converged else 'NO — ' + fit.message}. Compute is taken as "
                   f"C = k·N·D with k = {fmt(k_factor)} (median of {fc or 'assumed'} / (N·D)).")
        self.doc.bullets(fit.warnings + fit.notes, "warn")
        self.summary["joint"] = {"fit": fit, "flops_per_param_datum": k_factor}

    def compute_frontier(self) -> None:
        c, fc, lc = self.curves, self.cols.get("flops"), self.cols["loss"]
        env = None
        rid = self.opts.run_id
        sizes = self._sizes()
        note = None
        if c is not None and {rid, "flops", "loss"} <= set(c.columns):
            curves = c[c[rid].isin(sizes)] if sizes else c
            env = _envelope(curves, rid)
            ycol = "loss"
            note = ("frontier from training curves: points before 10% of a run's compute "
                    "are left out; intermediate checkpoints of a decaying schedule overstate "
                    "the loss, so this frontier is conservative")
        elif fc is not None:
            f, y = self._values(fc), self._values(lc)
            ok = np.isfinite(f) & (f > 0)
            order = np.argsort(f[ok])
            best = np.minimum.accumulate(y[ok][order])
            front = y[ok][order] <= best + 1e-12
            env = pd.DataFrame({"flops": f[ok][order][front], "loss": y[ok][order][front]})
            curves = pd.DataFrame(columns=[rid, "flops", "loss"])
            ycol = lc
        if env is None or len(env) == 0:
            raise AnalysisError("neither a curves table with flops and loss nor a compute column "
                                "in the runs table")
        fit, fnote = self._fit_1d(env["flops"].to_numpy(), env["loss"].to_numpy(), "C")
        self.fits["frontier_power"] = fit
        fig = plots.plot_frontier(curves.rename(columns={}), sizes, env, fit, ylabel=ycol,
                                  size_label=self.opts.params_label,
                                  extrapolate_to=float(env["flops"].max()) * self.opts.extrapolate,
                                  note=fnote)
        self.doc.figure(fig, "compute_frontier", "Loss against training compute for every run "
                        "(colour: size), the lowest loss reached at each compute (black) and "
                        "L = E + A·C^−γ fitted to it. " + (note or ""))
        if fit is not None:
            self.doc.table(self._fit_table([("frontier", len(env), fit, fnote)]))
        joint = self.fits.get("joint")
        fr_summary = {"envelope_fit": fit}
        if joint is not None:
            k = self.fits.get("k", 6.0)
            fr = frontier(joint, k)
            self.doc.p(f"From the joint law: N_opt ∝ C^a with a = {fmt(fr.a)} {_ci(fr.a_ci)}, "
                       f"D_opt ∝ C^b with b = {fmt(fr.b)} {_ci(fr.b_ci)}, G = {fmt(fr.G)} "
                       f"{_ci(fr.G_ci)} (C = {fmt(k)}·N·D).")
            fr_summary["joint_frontier"] = fr
        else:
            self.doc.p("No joint L(N, D) fit, so no closed-form compute-optimal allocation "
                       "(see the joint-law section for why).")
        self.summary["compute_frontier"] = fr_summary

    def isoflop_section(self) -> None:
        fc, pc, lc = self.cols.get("flops"), self.cols.get("params"), self.cols["loss"]
        if fc is None or pc is None:
            raise AnalysisError("IsoFLOP needs a compute and a parameter column")
        f, n, y = self._values(fc), self._values(pc), self._values(lc)
        ok = np.isfinite(f) & (f > 0) & np.isfinite(n) & (n > 0)
        labels = group_budgets(f[ok], 0.1)
        sizes_per = [len(np.unique(n[ok][labels == g])) for g in np.unique(labels)]
        if sum(s >= 3 for s in sizes_per) < 2:
            raise AnalysisError(
                f"the runs fall into {len(sizes_per)} compute budget(s) (within 10%) with "
                f"{sizes_per} distinct sizes; IsoFLOP needs ≥ 2 budgets with ≥ 3 sizes each")
        res = isoflop(f[ok], n[ok], y[ok], bootstrap=self.opts.bootstrap, seed=self.opts.seed,
                      level=self.opts.level, k=self.fits.get("k", 6.0))
        fig = plots.plot_isoflop(f[ok], n[ok], y[ok], res, n_label=f"{self.opts.params_label} N",
                                 loss_label=lc)
        self.doc.figure(fig, "isoflop", "IsoFLOP profiles: per budget a parabola of loss in "
                        "log N on the 7 sizes nearest its lowest loss (a parabola over a wide "
                        "grid biases the minimum); its minimum N* against C gives the allocation "
                        "exponent a.")
        self.doc.p(f"a = {fmt(res.a)} {_ci(res.a_ci)}, b = 1 − a = {fmt(res.b)} {_ci(res.b_ci)}.")
        self.doc.table(pd.DataFrame([b.to_dict() for b in res.budgets]))
        self.doc.bullets(res.warnings, "warn")
        self.summary["isoflop"] = res

    def backtest_section(self) -> None:
        pc, dc, lc, fc = (self.cols.get(k) for k in ("params", "data", "loss", "flops"))
        if pc is None:
            raise AnalysisError("no parameter column to order runs by")
        n, y = self._values(pc), self._values(lc)
        ok = np.isfinite(n) & (n > 0)
        reps = self._values("n_seeds") if "n_seeds" in self.runs else np.ones(len(y))
        noise = self.fits.get("noise")  # rows are means of seeds: a new run scatters by σ
        joint = self.fits.get("joint")
        if joint is not None and fc is not None:
            d, f = self._values(dc), self._values(fc)
            ok &= np.isfinite(d) & (d > 0) & np.isfinite(f) & (f > 0)
            thr = _threshold(f[ok], need=6, distinct=(n[ok], d[ok]))
            bt = backtest("chinchilla", {"N": n[ok], "D": d[ok]}, y[ok], f[ok], thr,
                          column=fc, grid=self.opts.joint_grid, noise=noise,
                          replicates=reps[ok], **self._boot())
            what = f"runs above {fmt(thr)} FLOPs"
        else:
            groups = self.fits.get("power_n") or []
            if not groups:
                raise AnalysisError("no scaling-law fit to backtest")
            label, fit, _ = max(groups, key=lambda g: g[2])
            dc_ok = dc is not None and len(groups) > 1
            m = ok.copy()
            if dc_ok:
                d = self._values(dc)
                target = np.median(d[np.isfinite(d)])
                labs = group_budgets(np.where(np.isfinite(d) & (d > 0), d, 1.0), 0.05)
                # the data-size group of the fitted series with the most runs
                sel = [g for g in np.unique(labs)
                       if f"{self.opts.data_label} ≈ {fmt(np.median(d[labs == g]))}" == label]
                m &= labs == (sel[0] if sel else labs[np.argmin(np.abs(d - target))])
            floor = fit.params["E"] > 0
            thr = _threshold(n[m], need=5 if floor else 4, distinct=(n[m],),
                             distinct_min=4 if floor else 3)
            bt = backtest("power", {"N": n[m]}, y[m], n[m], thr, column=pc, floor=floor,
                          noise=noise, replicates=reps[m], **self._boot())
            what = f"runs above {fmt(thr)} parameters ({label})"
        split_col = fc if joint is not None and fc is not None else pc
        sv = self._values(split_col)
        train = ok & (sv <= bt.threshold)
        if joint is None:
            train &= m
        fig = plots.plot_backtest(bt, sv[train], y[train], split_label=split_col,
                                  loss_label=lc)
        self.doc.figure(fig, "backtest", f"Backtest: fitted on {bt.n_train} runs, predicting "
                        f"the {bt.n_test} {what}. Error bars: {int(100 * self.opts.level)}% "
                        "prediction intervals for a single new run (curve uncertainty, run-to-run "
                        "scatter and extrapolation error growing with distance beyond the fitted "
                        "range).")
        cov = "n/a" if bt.coverage is None else f"{fmt(100 * bt.coverage)}%"
        self.doc.p(f"MAE {fmt(bt.mae)}, RMSE {fmt(bt.rmse)}, max |error| {fmt(bt.max_abs)}, "
                   f"MAPE {fmt(bt.mape)}%; the intervals held {cov} of the held-out runs.")
        self.doc.table(pd.DataFrame(bt.predictions))
        self.summary["backtest"] = bt

    def downstream(self) -> None:
        lc, acc = self.cols["loss"], self.cols.get("accuracy")
        if acc is None:
            raise AnalysisError("no probe accuracy column (probe.<name>.top1) in the runs table")
        rows = []
        primary = None
        for col in [acc] + [p for p in self.probes if p != acc]:
            x, yv = self._values(lc), self._values(col)
            ok = np.isfinite(x) & np.isfinite(yv)
            if ok.sum() < 3:
                rows.append({"probe": col, "runs": int(ok.sum()),
                             "note": "fewer than 3 runs with this probe"})
                continue
            try:
                corr = correlate(x[ok], yv[ok], bootstrap=self.opts.bootstrap, seed=self.opts.seed,
                                 level=self.opts.level)
            except AnalysisError as err:
                rows.append({"probe": col, "runs": int(ok.sum()), "note": str(err)})
                continue
            rows.append({"probe": col, "runs": corr.n, "pearson": corr.pearson,
                         "pearson CI": _ci(corr.ci.get("pearson")), "spearman": corr.spearman,
                         "spearman CI": _ci(corr.ci.get("spearman")),
                         "best model": corr.loo_model, "LOO MAE": corr.loo_mae,
                         "note": "; ".join(corr.warnings)})
            if primary is None:
                primary = (col, corr, x[ok], yv[ok], ok)
        if primary is None:
            self.doc.table(pd.DataFrame(rows))
            raise AnalysisError("no probe has at least 3 runs with both loss and accuracy")
        col, corr, x, yv, ok = primary
        pc = self.cols.get("params")
        color = self._values(pc)[ok] if pc else None
        fig = plots.plot_correlation(x, yv, corr, xlabel=lc, ylabel=col, color=color,
                                     color_label=self.opts.params_label)
        self.doc.figure(fig, "loss_vs_accuracy", f"{col} against {lc} across runs, with linear "
                        "and sigmoid fits (acc = a/(1+exp(−k(L−L0))) + b) and bootstrap "
                        "intervals of the correlations; LOO = leave-one-out error.")
        self.doc.table(pd.DataFrame(rows))
        self.fits["corr"] = corr
        self.summary["downstream"] = {"primary": col, "correlation": corr, "table": rows}

    def curves_section(self) -> None:
        c, rid = self.curves, self.opts.run_id
        if c is None:
            raise AnalysisError("no curves table (curves.csv) was given")
        x = self.opts.curve_x if self.opts.curve_x in c.columns else "step"
        if rid not in c.columns or x not in c.columns or "loss" not in c.columns:
            raise AnalysisError(f"the curves table lacks '{rid}', '{x}' or 'loss'")
        sizes = self._sizes()
        fig = plots.plot_curves(c, sizes, x=x, y="loss", xlabel=x.replace("_", " "),
                                ylabel="training loss", size_label=self.opts.params_label)
        self.doc.figure(fig, "training_curves", "Training loss of every run, coloured by "
                        "model size.")
        if "val_loss" in c.columns and np.isfinite(numeric(c, "val_loss")).sum() >= 2:
            fig = plots.plot_curves(c, sizes, x=x, y="val_loss", xlabel=x.replace("_", " "),
                                    ylabel="validation loss", size_label=self.opts.params_label,
                                    title="Validation curves")
            self.doc.figure(fig, "validation_curves", "Validation loss at each evaluation.")

    def layerwise_section(self) -> None:
        tidy = layerwise(self.runs, self.opts.run_id)
        if tidy.empty:
            raise AnalysisError("no layer-wise probe columns (probe.<kind>_blocks<a>-<b>.top1)")
        pc, rid = self.cols.get("params"), self.opts.run_id
        sizes = dict(zip(self.runs[rid], self._values(pc), strict=True)) if (
            pc and rid in self.runs.columns) else {}
        depths = None
        if self.opts.depth in self.runs.columns and rid in self.runs.columns:
            depths = dict(zip(self.runs[rid], self._values(self.opts.depth), strict=True))
        fig = plots.plot_layerwise(tidy, sizes, depths, run_id=rid)
        self.doc.figure(fig, "layerwise", "Probe top-1 on features averaged over groups of "
                        "blocks; x is the last block of each group (relative to depth when "
                        "known). Generative objectives often peak in middle blocks.")
        best = tidy.loc[tidy.groupby([rid, "kind"])["top1"].idxmax()]
        self.doc.table(best.rename(columns={"top1": "best top1"}))
        self.summary["layerwise_best"] = best.to_dict(orient="records")

    def ablations(self) -> None:
        rows = self.runs if self.seed_runs is None else self.seed_runs  # one row per seed
        v = ablation_factor(rows, self.opts.variant)
        out = {}
        metrics = [self.cols["loss"]] + ([self.cols["accuracy"]] if self.cols.get("accuracy")
                                         else [])
        # Variants are compared at one setting of size and data: pooling sizes would bury the
        # ablation under the scaling trend. Use the largest setting that has several variants.
        rows = rows[rows[v].notna()]
        keys = [c for c in (self.cols.get("params"), self.cols.get("data")) if c and c != v]
        where = ""
        if keys and len(rows.groupby(keys)) > 1:
            settings = [(k, g) for k, g in rows.groupby(keys) if g[v].nunique() >= 2]
            if not settings:
                raise AnalysisError(f"no single (size, data) setting was run with two or more "
                                    f"values of '{v}'")
            key, rows = max(settings, key=lambda kg: (kg[1][v].nunique(), kg[0]))
            key = key if isinstance(key, tuple) else (key,)
            where = ", ".join(f"{c} = {fmt(float(k))}" for c, k in zip(keys, key, strict=True))
            self.doc.p(f"Values compared at {where} (the largest setting with several "
                       f"values; {len(settings)} setting(s) had several).")
        lvl = int(100 * self.opts.level)
        self.doc.p(f"Factor compared: {v}. Δ = mean over seeds minus the baseline's mean, with "
                   f"a {lvl}% Welch t-interval over seeds; a difference is resolved when its "
                   "interval excludes 0.")
        for i, m in enumerate(metrics):
            tab = ablation_table(rows, v, m, baseline=self.opts.baseline,
                                 bootstrap=self.opts.bootstrap, seed=self.opts.seed,
                                 level=self.opts.level)
            fig = plots.plot_ablation(tab, metric_label=m, title=f"{v}: {m}")
            self.doc.figure(fig, f"ablation_{i}", f"{m} per value of {v} (mean ± std over "
                            f"seeds); Δ to the baseline with its {lvl}% interval.")
            self.doc.table(tab.rename(columns={"variant": v}))
            verdicts = ablation_verdicts(tab, m, self.opts.level)
            self.doc.bullets(verdicts)
            out[m] = {"table": tab.to_dict(orient="records"), "verdicts": verdicts}
        self.summary["ablations"] = {"factor": v, "setting": where, "tables": out}

    def shapes(self) -> None:
        o = self.opts
        if o.width not in self.runs.columns or o.depth not in self.runs.columns:
            raise AnalysisError(f"no '{o.width}' and '{o.depth}' columns")
        done = False
        for match in (self.cols.get("params"), self.cols.get("flops")):
            if match is None:
                continue
            # At matched parameters compare only runs that saw the same data; at matched compute
            # the data differ by design.
            within = [self.cols["data"]] if match == self.cols.get("params") and \
                self.cols.get("data") else []
            tab = width_vs_depth(self.runs, o.width, o.depth, self.cols["loss"], match,
                                 within=within)
            if tab.empty:
                continue
            same = f", at the same {within[0]}" if within else ""
            self.doc.p(f"Runs within 15% of each other in {match}{same}, by shape (rank 1 = "
                       "lowest loss; mean over seeds):")
            self.doc.table(tab)
            self.summary.setdefault("width_vs_depth", {})[match] = tab.to_dict("records")
            done = True
        if not done:
            raise AnalysisError("no two shapes (width, depth) share a parameter count or compute "
                                "within 15%")

    def next_scale(self) -> None:
        rows = []
        lvl = int(100 * self.opts.level)
        for label, fit, _ in self.fits.get("power_n") or []:
            if fit.flat:
                continue
            top = fit.input_range["N"][1]
            for mult in (2.0, 4.0, self.opts.extrapolate):
                pred, lo, hi = fit.predict_interval([top * mult], kind="ci")
                _, plo, phi = fit.predict_interval([top * mult], kind="pi")
                row = {"from": f"power law in N ({label})", "N": top * mult,
                       "D": label, "predicted loss": pred[0],
                             f"{lvl}% CI": _ci(None if lo is None else (lo[0], hi[0])),
                       f"{lvl}% PI": _ci(None if plo is None else (plo[0], phi[0]))}
                rows.append(row)
                rows[-1]["_fit"] = (fit, [top * mult])
        joint = self.fits.get("joint")
        plans = []
        if joint is not None:
            k = self.fits.get("k", 6.0)
            presets = self._presets()
            n, d = self._values(self.cols["params"]), self._values(self.cols["data"])
            cmax = float(np.nanmax(k * n * d))
            for mult in (self.opts.extrapolate, self.opts.extrapolate**2):
                pl = plan(joint, cmax * mult, presets, k)
                plans.append(pl)
                rows.append({"from": f"joint law, C = {fmt(mult)}× largest run",
                             "N": pl.n_opt, "D": pl.d_opt, "predicted loss": pl.loss,
                             f"{lvl}% CI": _ci(pl.loss_ci), f"{lvl}% PI": "",
                             "nearest preset": f"{pl.preset['name']} ({pl.preset['width']}×"
                                               f"{pl.preset['depth']})",
                             "_fit": (joint, [pl.n_opt], [pl.d_opt])})
        corr = self.fits.get("corr")
        for r in rows:
            fit_and_inputs = r.pop("_fit")
            if corr is not None:
                ts = two_step(fit_and_inputs[0], corr, *fit_and_inputs[1:])
                acc_ci = None if ts["accuracy_lo"] is None else (ts["accuracy_lo"][0],
                                                                  ts["accuracy_hi"][0])
                r[f"predicted {self.cols['accuracy']}"] = f"{fmt(ts['accuracy'][0])} " \
                                                          f"{_ci(acc_ci)}"
        if not rows:
            raise AnalysisError("no usable scaling-law fit to extrapolate from")
        self.doc.p("Predictions beyond the largest run. CI: interval of the fitted curve; PI: "
                   "interval for a single new run (adds run-to-run scatter). Treat anything far "
                   "outside the fitted range with suspicion.")
        self.doc.table(pd.DataFrame(rows))
        self.summary["next_scale"] = {"rows": rows, "plans": plans}

    def _presets(self) -> pd.DataFrame:
        base = presets_table(self.opts.presets)
        o = self.opts
        pc = self.cols.get("params")
        if o.width in self.runs.columns and o.depth in self.runs.columns and pc:
            shapes = self.runs[[o.width, o.depth, pc]].dropna().drop_duplicates([o.width, o.depth])
            own = pd.DataFrame({"name": [f"w{int(w)}-d{int(d)}" for w, d in
                                         zip(shapes[o.width], shapes[o.depth], strict=True)],
                                "width": shapes[o.width].astype(int),
                                "depth": shapes[o.depth].astype(int),
                                "params": shapes[pc].astype(float)})
            base = pd.concat([base, own], ignore_index=True)
        return base

    # ---- assembly ------------------------------------------------------------------------
    def build(self) -> Path:
        t0 = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._section("Overview", self.overview)
        if self.cols.get("loss") is not None and len(self.runs) > 0:
            for title, fn in (("Seeds and run-to-run noise", self.replicates),
                              ("Loss against model size", self.loss_vs_params),
                              ("Loss against data", self.loss_vs_data),
                              ("Joint law L(N, D)", self.joint),
                              ("Compute frontier", self.compute_frontier),
                              ("IsoFLOP", self.isoflop_section),
                              ("Backtest", self.backtest_section),
                              ("Loss and downstream accuracy", self.downstream),
                              ("Training curves", self.curves_section),
                              ("Layer-wise probes", self.layerwise_section),
                              ("Ablations", self.ablations),
                              ("Width against depth", self.shapes),
                              ("Predictions for the next scale", self.next_scale)):
                self._section(title, fn)
        self.doc.h("Warnings and notes")
        if self.warnings:
            self.doc.bullets(self.warnings, "warn")
        else:
            self.doc.p("None.")
        elapsed = time.perf_counter() - t0
        self.summary["warnings"] = self.warnings
        self.summary["seconds"] = elapsed
        return self._write(elapsed)

    def _write(self, elapsed: float) -> Path:
        title = html.escape(self.opts.title)
        stamp = time.strftime("%Y-%m-%d %H:%M")
        meta = f"Generated {stamp} in {elapsed:.1f} s by analysis.report."
        page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
                f"<style>{CSS}</style></head><body><h1>{title}</h1>"
                f"<p class='meta'>{html.escape(meta)}</p>" + "\n".join(self.doc.html)
                + "</body></html>")
        out = self.out_dir / "report.html"
        out.write_text(page, encoding="utf-8")
        md = f"# {self.opts.title}\n\n{meta}\n" + "\n".join(self.doc.md)
        (self.out_dir / "report.md").write_text(md, encoding="utf-8")
        (self.out_dir / "report.json").write_text(dumps(to_jsonable(self.summary), indent=1),
                                                  encoding="utf-8")
        return out


def _threshold(split: np.ndarray, need: int, distinct: tuple = (), distinct_min: int = 3) -> float:
    """Largest split value that keeps ≥ ``need`` runs (and ``distinct_min`` distinct values of
    each input) below it while holding out at least one run, preferring about a quarter."""
    vals = np.sort(np.unique(split))
    if len(vals) < 2:
        raise AnalysisError("all runs share one value of the holdout column; nothing to hold out")
    target = np.quantile(split, 0.75)
    candidates = [v for v in vals[:-1] if v <= target] or list(vals[:-1])
    for v in sorted(candidates, reverse=True) + sorted(set(vals[:-1]) - set(candidates)):
        train = split <= v
        if train.sum() >= need and all(len(np.unique(x[train])) >= distinct_min
                                       for x in distinct):
            return float(v)
    raise AnalysisError(f"too few runs to hold some out and still fit on ≥ {need} runs with ≥ "
                        f"{distinct_min} distinct sizes below the threshold")


def _envelope(curves: pd.DataFrame, run_id: str, n_grid: int = 40) -> pd.DataFrame:
    """Lowest loss reached at each compute across runs, ignoring each run's first 10%."""
    per_run = []
    for _, g in curves.groupby(run_id, sort=False):
        f, y = numeric(g, "flops"), numeric(g, "loss")
        ok = np.isfinite(f) & np.isfinite(y) & (f > 0) & (y > 0)
        if ok.sum() < 3:
            continue
        f, y = f[ok], y[ok]
        order = np.argsort(f)
        f, y = f[order], y[order]
        if len(y) >= 15:  # a running median tames step-to-step noise in the training loss
            y = pd.Series(y).rolling(9, center=True, min_periods=1).median().to_numpy()
        keep = f >= 0.1 * f.max()
        per_run.append((np.log(f[keep]), np.log(y[keep])))
    if not per_run:
        return pd.DataFrame(columns=["flops", "loss"])
    lo = min(p[0].min() for p in per_run)
    hi = max(p[0].max() for p in per_run)
    grid = np.linspace(lo, hi, n_grid)
    best = np.full(n_grid, np.inf)
    for lf, ly in per_run:
        inside = (grid >= lf.min()) & (grid <= lf.max())
        best[inside] = np.minimum(best[inside], np.interp(grid[inside], lf, ly))
    ok = np.isfinite(best)
    return pd.DataFrame({"flops": np.exp(grid[ok]), "loss": np.exp(best[ok])})


def build_report(runs: pd.DataFrame, curves: pd.DataFrame | None, out_dir: str | Path,
                 options: ReportOptions | None = None) -> Path:
    """Write report.html, report.md, report.json and figures/ into ``out_dir``; returns the
    HTML path."""
    return Report(runs, curves, Path(out_dir), options or ReportOptions()).build()
