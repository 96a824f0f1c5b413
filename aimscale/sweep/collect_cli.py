"""`aimscale collect SWEEP_DIR [-o FILE] [--format csv|parquet]`: runs and curves tables.

A run with a damaged file is written with `status` `unreadable` (and an `error` column naming
the file), with a warning; the other runs are collected and the exit code is 0. A damaged or
missing sweep.json is exit 2.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="the sweep's directory (holds sweep.json)")
    parser.add_argument("-o", "--output",
                        help="runs table path (curves go beside it as curves.<ext>); default "
                             "SWEEP_DIR/collect/runs.csv")
    parser.add_argument("--format", choices=("csv", "parquet"), default=None,
                        help="default: from -o's extension, else csv")


def run(args: argparse.Namespace) -> int:
    from aimscale.sweep.collect import write_tables
    from aimscale.sweep.status_cli import load_manifest

    if load_manifest(args.sweep_dir, "collect") is None:
        return 2
    fmt = args.format or ("parquet" if (args.output or "").endswith(".parquet") else "csv")
    warnings: list[str] = []
    runs_path, curves_path = write_tables(args.sweep_dir, args.output, fmt, warnings)
    for warning in warnings:
        print(f"aimscale collect: warning: {warning}", file=sys.stderr)
    print(f"wrote {runs_path} and {curves_path}")
    return 0
