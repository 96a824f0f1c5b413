"""`aimscale collect SWEEP_DIR [-o FILE] [--format csv|parquet]`: runs and curves tables."""

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

    fmt = args.format or ("parquet" if (args.output or "").endswith(".parquet") else "csv")
    try:
        runs_path, curves_path = write_tables(args.sweep_dir, args.output, fmt)
    except FileNotFoundError as err:
        print(f"aimscale collect: {err}", file=sys.stderr)
        return 2
    print(f"wrote {runs_path} and {curves_path}")
    return 0
