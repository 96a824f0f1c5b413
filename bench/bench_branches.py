"""Benchmark: k data sizes of one model from one run and its cooldown branches, against k
separate wsd runs, in one run of this script (CPU, tiny AIM, synthetic data; ~1 min on 2 cores).

Both sweeps are planned, launched (debug executor, in this process) and collected with the
harness itself. The separate runs get the branches' schedule (the trunk's warmup steps, same
cooldown fraction), so each (N, D) point must also end at the same loss. Per point it prints the
FLOPs spent (FLOPs/image of `aimscale.flops` × the images each run trained itself, from its
summary: a branch counts its cooldown only) and the training-loop time (from metrics.jsonl),
then the totals, their ratio, and the expectations: exact for these sizes,
(D_max + f·Σ_{k<max} D_k) / Σ D_k with cooldown fraction f, and the issue's rule of thumb
(1 + f·k)/k (k sizes all near D_max).

    python bench/bench_branches.py [--widths 32,48] [--steps 10,20,30,40] [--cooldown 0.2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from aimscale.sweep.collect import collect  # noqa: E402
from aimscale.sweep.launch import launch  # noqa: E402
from aimscale.sweep.plan import build_plan  # noqa: E402
from aimscale.sweep.spec import parse_spec  # noqa: E402

BATCH, WARMUP = 16, 2  # images per step; warmup steps of every run


def base(cooldown: float, trunk_steps: int) -> dict:
    return {
        "model": {"preset": "aim-tiny", "depth": 2, "heads": 2, "head_width": 32,
                  "head_depth": 1},
        "data": {"preset": "synthetic", "num_images": 1024, "val_images": 64},
        "optim": {"schedule": "wsd", "cooldown_fraction": cooldown,
                  "warmup_fraction": WARMUP / trunk_steps},
        "train": {"batch_size": BATCH, "log_every": 1, "eval_every": 1000, "eval_images": 64,
                  "checkpoint_every": 1000, "prepare_images": 0, "device": "cpu"},
        "logging": {"progress": "none"},
    }


def run_sweep(name: str, root: Path, spec: dict):
    """Plan, launch (debug executor) and collect one sweep: (wall seconds, runs table)."""
    plan = build_plan(parse_spec({"name": name, "sweep_dir": str(root / name), **spec}))
    started = time.perf_counter()
    launch(plan, executor="debug")
    wall = time.perf_counter() - started
    runs, _ = collect(root / name)
    assert set(runs["status"]) == {"done"}, runs[["run_id", "status"]]
    return wall, runs


def loop_time(run_dir: Path, start: int) -> float:
    """Seconds of the training loop over the steps after `start` (the run's own steps)."""
    from aimscale.train.metrics import read_metrics

    rows = read_metrics(run_dir / "metrics.jsonl")
    times = {r["step"]: r["time_s"] for r in rows}
    return times[max(times)] - times.get(start, 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="32,48", help="model widths (N axis), e.g. 32,48")
    parser.add_argument("--steps", default="10,20,30,40", help="data sizes in steps")
    parser.add_argument("--cooldown", type=float, default=0.2, help="cooldown fraction")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # one-off imports, before timing
    widths = [int(w) for w in args.widths.split(",")]
    steps = sorted(int(s) for s in args.steps.split(","))
    sizes = [s * BATCH for s in steps]
    with tempfile.TemporaryDirectory(prefix="bench-branches-") as tmp:
        root = Path(tmp)
        common = base(args.cooldown, steps[-1])
        branched_wall, b_runs = run_sweep("branched", root, {
            "base": common, "grid": {"model.width": widths}, "data_sizes": sizes})
        separate_wall, s_runs = run_sweep("separate", root, {
            "base": common, "grid": {"model.width": widths},
            "zip": {"train.steps": steps,
                    "optim.warmup_fraction": [WARMUP / s for s in steps]}})
        print(f"{'width':>5} {'images':>7} {'branch of':>10} {'FLOPs spent':>12} "
              f"{'separate':>10} {'loop s':>7} {'separate':>8} {'loss':>8} {'separate':>8}")
        totals = {"branched": [0.0, 0.0], "separate": [0.0, 0.0]}
        for width in widths:
            for images in sizes:
                b = b_runs[(b_runs["model.width"] == width) & (b_runs.images_seen == images)]
                s = s_runs[(s_runs["model.width"] == width) & (s_runs.images_seen == images)]
                b, s = b.iloc[0], s.iloc[0]
                b_time = loop_time(root / "branched" / b.run_id, int(b.get("branch.step") or 0))
                s_time = loop_time(root / "separate" / s.run_id, 0)
                totals["branched"][0] += b.flops_spent
                totals["separate"][0] += s.flops_spent
                totals["branched"][1] += b_time
                totals["separate"][1] += s_time
                print(f"{width:>5} {images:>7} {'trunk' if not b.branch_of else 'yes':>10} "
                      f"{b.flops_spent:>12.4g} {s.flops_spent:>10.4g} {b_time:>7.2f} "
                      f"{s_time:>8.2f} {b.final_loss:>8.5f} {s.final_loss:>8.5f}")
        k, f = len(steps), args.cooldown
        flops_ratio = totals["branched"][0] / totals["separate"][0]
        exact = (steps[-1] + sum(f * s for s in steps[:-1])) / sum(steps)
        print(f"\nFLOPs spent: branched {totals['branched'][0]:.4g}, separate "
              f"{totals['separate'][0]:.4g}: ratio {flops_ratio:.3f} (expected for these sizes "
              f"{exact:.3f}; rule of thumb (1 + {f:g}·{k})/{k} = {(1 + f * k) / k:.3f})")
        print(f"training-loop time: branched {totals['branched'][1]:.1f} s, separate "
              f"{totals['separate'][1]:.1f} s: ratio "
              f"{totals['branched'][1] / totals['separate'][1]:.3f}")
        print(f"end-to-end wall time (launch, every run's start-up included): branched "
              f"{branched_wall:.1f} s, separate {separate_wall:.1f} s: ratio "
              f"{branched_wall / separate_wall:.3f}")
        worst = max(abs(b_runs.set_index(["model.width", "images_seen"]).final_loss
                        - s_runs.set_index(["model.width", "images_seen"]).final_loss))
        print(f"largest |final loss, branch - separate run|: {worst:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
