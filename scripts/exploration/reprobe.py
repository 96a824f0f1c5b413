"""Probe every finished run of a sweep again with one protocol, and print how the probe's top-1
follows the loss (Spearman across the runs, as the report's downstream section computes it).

The README's "The demo study" uses it to test whether another probe protocol makes the probe
follow pre-training rather than width. Results go to RUN_DIR/probe/<name>_*.json beside the
sweep's own (nothing is overwritten unless NAME repeats), and a table to OUT_CSV.

    python scripts/exploration/reprobe.py SWEEP_DIR NAME OUT_CSV [--parallel 2] -- PROBE_ARGS
    # e.g. the demo's attentive probe at 20 epochs:
    python scripts/exploration/reprobe.py sweep_runs/demo att20 /tmp/att20.csv -- \
        --kind attentive --epochs 20 --limit-train 10000 --limit-test 10000 --lr 0.01,0.03,0.1,0.3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml


def finished_runs(sweep_dir: Path) -> list[Path]:
    """Run directories of the sweep (trunks and branches) that have a summary.json."""
    return sorted(p.parent for p in sweep_dir.glob("*/summary.json")
                  if (p.parent / "config.yaml").exists())


def probe(run_dir: Path, name: str, probe_args: list[str]) -> dict[str, float]:
    """Top-1 of each result `aimscale probe` writes for this run."""
    out = subprocess.run(["aimscale", "probe", str(run_dir), "--name", name, "--json",
                          *probe_args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"aimscale probe {run_dir} failed ({out.returncode}):\n"
                         f"{out.stderr[-2000:]}")
    results = json.loads(out.stdout)
    return {r["name"]: r["top1"] for r in (results if isinstance(results, list) else [results])}


def main(argv: list[str]) -> int:
    ours, probe_args = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("name", help="result name prefix for the new probe results")
    p.add_argument("out_csv", type=Path)
    p.add_argument("--parallel", type=int, default=2, help="probes at once (default 2)")
    args = p.parse_args(ours)
    runs = finished_runs(args.sweep_dir)
    if not runs:
        print(f"no finished runs (summary.json) under {args.sweep_dir}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(args.parallel) as pool:
        top1 = list(pool.map(lambda r: probe(r, args.name, probe_args), runs))
    rows = []
    for run_dir, results in zip(runs, top1, strict=True):
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
        rows.append({"run_id": run_dir.name, "model.width": config["model"]["width"],
                     **{k: summary[k] for k in ("images_seen", "trunk_params", "total_flops",
                                                "final_val_loss")}, **results})
    table = pd.DataFrame(rows).sort_values(["model.width", "images_seen"])
    table.to_csv(args.out_csv, index=False)
    print(table.drop(columns="run_id").to_string(index=False))
    for column in top1[0]:
        rho = table[["final_val_loss", column]].corr("spearman").iloc[0, 1]
        print(f"{column}: Spearman with final_val_loss {rho:.3f} over {len(table)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
