"""The report's run: which rows and columns it reads, the sections in order, the fits they share,
and what happens when one fails."""

from __future__ import annotations

import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import numeric
from ..errors import AnalysisError, FitWarning
from ..report_columns import pick_column
from . import (
    ablations,
    backtest,
    baselines,
    curves,
    downstream,
    frontier,
    isoflop,
    joint,
    layerwise,
    next_scale,
    overview,
    power,
    seeds,
    shapes,
)
from .figwriter import FigureWriter
from .options import DONE_STATUSES, ReportOptions
from .render import Doc, write_page

# (title, section); each section is ``fn(report)`` and raises AnalysisError to be skipped.
SECTIONS: tuple[tuple[str, Callable[[Report], None]], ...] = (
    ("Seeds and run-to-run noise", seeds.section),
    ("Loss against model size", power.loss_vs_params),
    ("Loss against data", power.loss_vs_data),
    ("Joint law L(N, D)", joint.section),
    ("Compute frontier", frontier.section),
    ("IsoFLOP", isoflop.section),
    ("Backtest", backtest.section),
    ("Loss and downstream accuracy", downstream.section),
    ("What pre-training adds", baselines.section),
    ("Training curves", curves.section),
    ("Layer-wise probes", layerwise.section),
    ("Ablations", ablations.section),
    ("Width against depth", shapes.section),
    ("Predictions for the next scale", next_scale.section),
)


class Report:
    """State the sections share: the runs analysed, the columns mapped (``cols``), the fits later
    sections reuse (``fits``: noise, power_n, joint, k, frontier_power, corr), the JSON summary,
    warnings and the document. After the seeds section ``runs`` holds one row per point (the
    mean over its seeds) and ``seed_runs`` every seed's row."""

    def __init__(self, runs: pd.DataFrame, curves: pd.DataFrame | None, out_dir: Path,
                 opts: ReportOptions):
        self.opts = opts
        self.out_dir = Path(out_dir)
        self.doc = Doc(self.out_dir, writer=FigureWriter(opts.n_jobs))
        self.curves = curves
        self.summary: dict = {}
        self.warnings: list[str] = []
        self.failures: list[str] = []
        runs, self.baselines = baselines.split_baselines(runs)  # probe baselines: own rows
        self.all_runs = runs
        self.runs = self._select_runs(runs)
        self.cols: dict[str, str | None] = {}
        self.fits: dict = {}
        self.seed_runs: pd.DataFrame | None = None  # every seed's row (self.runs: their means)
        self.probes: list[str] = []

    # ---- helpers the sections use ---------------------------------------------------------
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

    def col(self, key: str, wanted, candidates, what) -> str | None:
        """Map ``key`` to a column (``wanted`` or the first candidate), or record it missing."""
        try:
            c = pick_column(self.runs, wanted, candidates, what)
        except AnalysisError as err:
            self.cols[key] = None
            self.summary.setdefault("missing", []).append(str(err))
            return None
        self.cols[key] = c
        return c

    def values(self, col: str, rows: pd.DataFrame | None = None) -> np.ndarray:
        return numeric(self.runs if rows is None else rows, col)

    def boot(self) -> dict:
        return {"bootstrap": self.opts.bootstrap, "seed": self.opts.seed,
                "level": self.opts.level, "n_jobs": self.opts.n_jobs}

    def sizes(self) -> dict:
        """run id → model size for every analysed run (each seed's too), for colouring curves;
        empty without both columns."""
        rows = self.runs if self.seed_runs is None else self.seed_runs
        pc, rid = self.cols.get("params"), self.opts.run_id
        if not pc or rid not in rows.columns:
            return {}
        return dict(zip(rows[rid], numeric(rows, pc), strict=True))

    # ---- running ---------------------------------------------------------------------------
    def run_section(self, title: str, fn: Callable[[Report], None]) -> None:
        """Run one section: AnalysisError → skipped with its reason; anything else → raised
        when strict, else a failure listed at the top of the page and on stderr."""
        self.doc.h(title)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FitWarning)
            try:
                fn(self)
            except AnalysisError as err:
                self.doc.skip(str(err))
                self.summary.setdefault("skipped", {})[title] = str(err)
            except Exception as err:  # keep the rest of the report; say loudly what broke
                if self.opts.strict:
                    raise
                tb = traceback.format_exc(limit=3)
                msg = f"section '{title}' failed with an unexpected error: {err!r}"
                self.doc.p(f"This section failed with an unexpected error ({type(err).__name__}: "
                           f"{err}); please report it.", "warn")
                self.failures.append(msg)
                self.summary.setdefault("failed_sections", {})[title] = repr(err)
                self.warnings.append(f"section '{title}' failed: {err!r}\n{tb}")
                print(f"analysis.report: warning: {msg}; the rest of the report is written "
                      "(strict=True, `aimscale report --strict`, raises it)", file=sys.stderr)
        for w in caught:
            if issubclass(w.category, FitWarning):
                self.warnings.append(f"{title}: {w.message}")
        self.summary.setdefault("section_seconds", {})[title] = time.perf_counter() - t0

    def _figure_failed(self, stem: Path, err: Exception) -> None:
        """A figure written after its section (``figwriter``) failed: as a failed section."""
        if self.opts.strict:
            raise err
        msg = f"figure '{stem.name}' failed with an unexpected error: {err!r}"
        self.failures.append(msg)
        self.summary.setdefault("failed_figures", {})[stem.name] = repr(err)
        self.warnings.append(msg)
        print(f"analysis.report: warning: {msg}", file=sys.stderr)

    def build(self) -> Path:
        t0 = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.run_section("Overview", overview.section)
        if self.cols.get("loss") is not None and len(self.runs) > 0:
            for title, fn in SECTIONS:
                self.run_section(title, fn)
        self.doc.finish(self._figure_failed)
        self.doc.h("Warnings and notes")
        if self.warnings:
            self.doc.bullets(self.warnings, "warn")
        else:
            self.doc.p("None.")
        elapsed = time.perf_counter() - t0
        self.summary["warnings"] = self.warnings
        self.summary["seconds"] = elapsed
        return write_page(self.doc, self.opts.title, self.summary, elapsed, self.failures)


def build_report(runs: pd.DataFrame, curves: pd.DataFrame | None, out_dir: str | Path,
                 options: ReportOptions | None = None) -> Path:
    """Write report.html, report.md, report.json and figures/ into ``out_dir``; returns the
    HTML path."""
    return Report(runs, curves, Path(out_dir), options or ReportOptions()).build()
