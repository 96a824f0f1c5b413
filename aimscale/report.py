"""`aimscale report SWEEP_DIR [-o DIR]`: the analysis report of a collected sweep.

Reads `SWEEP_DIR/collect/runs.{parquet,csv}` and `curves.{parquet,csv}` (written by
`aimscale collect`) and hands them to the `analysis` package, which never imports torch; neither
does this module.

A section that fails with an unexpected error (a bug) is reported in the page and as a warning
on stderr, and the rest of the report is still written; with `--strict` (or the environment
variable AIMSCALE_STRICT=1, which the tests and CI set) the error is raised instead, so a test
cannot pass over a broken section.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_BOOTSTRAP = 400
STRICT_ENV = "AIMSCALE_STRICT"


def strict_from_env() -> bool:
    """Whether AIMSCALE_STRICT asks for strict reports (set, and not 0/false/no)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _table(folder: Path, stem: str) -> Path | None:
    for ext in ("parquet", "csv"):
        path = folder / f"{stem}.{ext}"
        if path.exists():
            return path
    return None


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None, *,
                 bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                 n_jobs: int | None = None, strict: bool | None = None) -> Path:
    """Write report.html (self-contained), report.md, report.json and figures/ for the sweep;
    returns the HTML path. Default `out_dir`: `SWEEP_DIR/report/`. `strict` (default: from
    AIMSCALE_STRICT) raises a section's unexpected error instead of reporting it."""
    from analysis.data import load_table
    from analysis.errors import AnalysisError
    from analysis.report import ReportOptions, build_report

    sweep_dir = Path(sweep_dir)
    collect_dir = sweep_dir / "collect"
    runs_path = _table(collect_dir, "runs")
    if runs_path is None:
        raise AnalysisError(f"No runs table in {collect_dir} (runs.parquet or runs.csv); run "
                            f"`aimscale collect {sweep_dir}` first.")
    curves_path = _table(collect_dir, "curves")
    runs = load_table(runs_path)
    curves = load_table(curves_path) if curves_path else None
    opts = ReportOptions(bootstrap=bootstrap, seed=seed, n_jobs=n_jobs,
                         title=f"aimscale report: {sweep_dir.resolve().name}",
                         strict=strict_from_env() if strict is None else strict)
    html = build_report(runs, curves, Path(out_dir) if out_dir else sweep_dir / "report", opts)
    _warn_failed_sections(html.parent / "report.json")
    return html


def _warn_failed_sections(summary_path: Path) -> None:
    from aimscale.jsonfiles import read_json

    failed = (read_json(summary_path, default={}) or {}).get("failed_sections") or {}
    for title, error in failed.items():
        print(f"aimscale report: warning: section {title!r} failed with an unexpected error "
              f"({error}); the rest of the report was written. Please report it (rerun with "
              "--strict for the traceback).", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="sweep directory with collect/runs.csv (aimscale "
                                          "collect)")
    parser.add_argument("-o", "--out", default=None, help="output folder (default: "
                                                          "SWEEP_DIR/report)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP,
                        help=f"bootstrap resamples for intervals (default {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes")
    parser.add_argument("--strict", action="store_true", default=None,
                        help=f"a section that fails is an error (default: ${STRICT_ENV})")


def run(args: argparse.Namespace) -> int:
    from analysis.errors import AnalysisError

    try:
        path = write_report(args.sweep_dir, args.out, bootstrap=args.bootstrap, seed=args.seed,
                            n_jobs=args.jobs, strict=args.strict)
    except AnalysisError as err:
        print(f"aimscale report: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0
