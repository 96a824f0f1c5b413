"""Benchmark: `aimscale report` on a generated table the size of the demo's, in one run.

The table has the columns `aimscale collect` writes: 3 widths × 2 depths × 3 data sizes (18
points, as `sweeps/demo.yaml`), each run with `--seeds` seeds, a training curve of 40 logged steps
per run, attentive/linear probes and layer-wise probes; with `--branches` the two smaller data
sizes of each shape are cooldown branches of its longest run. Losses follow a known joint law
with 1% log-normal noise. Target: ≤ 20 s on the 2-core development machine (issue 13 §5).

Prints the wall time of the whole report (imports included), the CPU time of this process and
of its child processes (bootstrap workers, figure writers), and the seconds of every section, from
`report.json` (wall time: on a loaded machine, compare runs made back to back).

    python bench/bench_report.py [--bootstrap 200] [--seeds 1] [--branches] [--jobs N]
                                 [--out DIR] [--profile FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
C0 = time.process_time()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

TRUE = {"E": 0.20, "A": 60.0, "B": 90.0, "alpha": 0.45, "beta": 0.55}
PATCHES = 49  # 28 px images, patch 4 (Fashion-MNIST as in the demo)
STEPS = 40  # logged curve points per run (the demo logs every 10 of 100–400 steps)


def law(n, d):
    return TRUE["E"] + TRUE["A"] * n ** -TRUE["alpha"] + TRUE["B"] * d ** -TRUE["beta"]


def demo_tables(seeds: int = 1, branches: bool = False, noise: float = 0.01,
                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) in the shape of the demo's collected tables."""
    rng = np.random.default_rng(seed)
    runs, curves = [], []
    images = (3200, 6400, 12800)
    for w, heads in ((32, 2), (64, 4), (128, 8)):
        for depth in (2, 4):
            n = depth * (12 * w**2 + 4 * w) + 21 * w
            for im in images:
                for s in range(seeds):
                    loss = law(n, im) * np.exp(noise * rng.standard_normal())
                    acc = 0.8 / (1 + np.exp(10 * (loss - 0.75))) + 0.1 \
                        + 0.005 * rng.standard_normal()
                    rid = f"w{w}-d{depth}-i{im}-s{s}"
                    trunk_id = f"w{w}-d{depth}-i{images[-1]}-s{s}"
                    row = {"run_id": rid, "status": "done", "model.width": w,
                           "model.depth": depth, "model.heads": heads, "data.num_images": im,
                           "train.steps": im // 32, "train.seed": s, "seed": s,
                           "trunk_params": n, "head_params": 1000,
                           "flops_per_image": 6 * n * PATCHES, "images_seen": im,
                           "patches_seen": im * PATCHES, "total_flops": 6 * n * PATCHES * im,
                           "final_loss": loss * 0.98, "final_val_loss": loss,
                           "best_val_loss": loss, "probe.attentive_last.top1": acc,
                           "probe.attentive_last.top5": min(1.0, acc + 0.1),
                           "probe.linear_last.top1": acc - 0.05,
                           "probe.linear_last.top5": acc + 0.05,
                           "branch_of": trunk_id if branches and im != images[-1] else ""}
                    for b in range(depth):
                        mid = (b + 1) / depth
                        row[f"probe.linear_blocks{b}-{b}.top1"] = acc - 0.1 * (mid - 0.6) ** 2
                    runs.append(row)
                    steps = np.arange(1, STEPS + 1)
                    seen = steps * im / STEPS
                    y = law(n, seen) * np.exp(0.01 * rng.standard_normal(STEPS)) \
                        * (1 + 0.3 / steps)
                    val = np.where(steps % 10 == 0, law(n, seen), np.nan)
                    curves.append(pd.DataFrame({
                        "run_id": rid, "step": steps, "images_seen": seen,
                        "patches_seen": seen * PATCHES, "flops": 6 * n * PATCHES * seen,
                        "lr": 1e-3, "loss": y, "val_loss": val}))
    return pd.DataFrame(runs), pd.concat(curves, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", type=int, default=200, help="resamples (the demo's: 200)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per point (default 1)")
    p.add_argument("--branches", action="store_true", help="smaller data sizes as branches")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: cores)")
    p.add_argument("--out", default=None, help="report folder (default: a temporary one)")
    p.add_argument("--profile", default=None, help="write cProfile stats of the report here")
    args = p.parse_args(argv)

    from analysis.report import ReportOptions, build_report

    t_import = time.perf_counter() - T0
    runs, curves = demo_tables(args.seeds, args.branches)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_report_"))
    opts = ReportOptions(bootstrap=args.bootstrap, seed=0, n_jobs=args.jobs, strict=True)
    t1 = time.perf_counter()
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.runcall(build_report, runs, curves, out, opts)
        prof.dump_stats(args.profile)
    else:
        build_report(runs, curves, out, opts)
    t_report = time.perf_counter() - t1
    summary = json.loads((out / "report.json").read_text())
    print(f"table: {len(runs)} runs ({len(curves)} curve rows), bootstrap {args.bootstrap}, "
          f"jobs {args.jobs or 'default'}")
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"wall: {time.perf_counter() - T0:.2f} s in all = imports {t_import:.2f} s + report "
          f"{t_report:.2f} s; CPU: this process {time.process_time() - C0:.2f} s, its workers "
          f"and figure writers {kids.ru_utime + kids.ru_stime:.2f} s")
    for title, sec in summary["section_seconds"].items():
        print(f"  {sec:6.2f} s  {title}")
    print(f"report: {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
