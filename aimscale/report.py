"""`aimscale report SWEEP_DIR [-o DIR]`: the analysis report of a collected sweep.

Reads `SWEEP_DIR/collect/runs.{parquet,csv}` and `curves.{parquet,csv}` (written by
`aimscale collect`; collected here first when missing or stale) and hands them to the `analysis`
package, which never imports torch; neither does this module. The Ablations section compares
the spec's `compare:` factor against its baseline (else the one axis the sweep varies).

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


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None, *,
                 bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                 n_jobs: int | None = None, strict: bool | None = None) -> Path:
    """Write report.html (self-contained), report.md, report.json and figures/ for the sweep;
    returns the HTML path. Default `out_dir`: `SWEEP_DIR/report/`. Collects the tables first
    when they are missing or older than the runs' results (aimscale/sweep/tables.py). `strict`
    (default: from AIMSCALE_STRICT) raises a section's unexpected error instead of reporting it."""
    from aimscale.jsonfiles import UnreadableFileError
    from aimscale.sweep.ablation import sweep_compare
    from aimscale.sweep.manifest import read_manifest
    from aimscale.sweep.tables import ensure_tables
    from analysis.data import load_table
    from analysis.errors import AnalysisError
    from analysis.report import ReportOptions, build_report

    sweep_dir = Path(sweep_dir)
    try:
        runs_path, curves_path, note = ensure_tables(sweep_dir)
        manifest = read_manifest(sweep_dir)
    except UnreadableFileError as err:
        raise AnalysisError(f"cannot collect {sweep_dir}: {err}") from None
    if note:
        print(f"aimscale report: {note} ({runs_path})", file=sys.stderr)
    if runs_path is None:
        raise AnalysisError(f"No runs table in {sweep_dir / 'collect'} and no sweep.json in "
                            f"{sweep_dir}: pass a sweep directory made by `aimscale launch`, or "
                            f"run `aimscale collect {sweep_dir}` first.")
    runs = load_table(runs_path)
    curves = load_table(curves_path, allow_empty=True) if curves_path else None
    compare = sweep_compare(manifest) if manifest else None
    opts = ReportOptions(bootstrap=bootstrap, seed=seed, n_jobs=n_jobs,
                         variant=compare.factor if compare else None,
                         baseline=compare.baseline if compare else None,
                         title=f"aimscale report: {sweep_dir.resolve().name}",
                         strict=strict_from_env() if strict is None else strict)
    html = build_report(runs, curves, Path(out_dir) if out_dir else sweep_dir / "report", opts)
    return html


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
