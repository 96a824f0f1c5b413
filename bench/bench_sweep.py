"""Sweep overhead: plan + dry-run launch of a 10,000-point grid, status and collect over 10,000
finished run directories. Targets: <= 5 s, <= 2 s, <= 10 s.

    python bench/bench_sweep.py [--runs 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimscale.atomic import atomic_write_json  # noqa: E402
from aimscale.sweep.collect import write_tables  # noqa: E402
from aimscale.sweep.launch import launch  # noqa: E402
from aimscale.sweep.manifest import new_manifest, write_manifest  # noqa: E402
from aimscale.sweep.plan import _plain, build_plan  # noqa: E402
from aimscale.sweep.spec import parse_spec  # noqa: E402
from aimscale.sweep.state import count_states, sweep_states  # noqa: E402

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def grid_spec(sweep_dir: Path, n: int) -> dict:
    """A grid of about n points (25 widths x 20 depths x n/500 step counts), two classes."""
    steps = max(1, n // 500)
    return {
        "name": "bench", "sweep_dir": str(sweep_dir),
        "base": {"model": {"preset": "aim-tiny"}, "data": {"preset": "synthetic"}},
        "grid": {"model.width": ",".join(str(32 * i) for i in range(1, 26)),
                 "model.depth": "range(1,21)",
                 "train.steps": ",".join(str(100 * (i + 1)) for i in range(steps))},
        "resources": {"classes": {"small": {"cpus_per_task": 1}, "large": {"gpus_per_node": 1}},
                      "rules": [{"max_params": 2.0e7, "class": "small"}, {"class": "large"}]},
    }


def fake_sweep(sweep_dir: Path, plan) -> None:
    """Finished run directories with small metrics files, and the manifest that lists them."""
    manifest = new_manifest("bench", {})
    manifest["base_config"], diffs = plan.flat_configs()  # what launch stores
    for run in plan.runs:
        run_dir = sweep_dir / run.run_id
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.dump(_plain(run.cfg), Dumper=DUMPER))
        rows = [{"step": s, "images_seen": 64 * s, "patches_seen": 64 * 49 * s,
                 "flops": s * 1e9, "lr": 1e-3, "loss": 1.0 / s} for s in range(1, 6)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        atomic_write_json(run_dir / "status.json", {"state": "done", "step": 5,
                                                    "total_steps": 5, "restarts": 0})
        atomic_write_json(run_dir / "summary.json", {"status": "done", "final_loss": 0.2,
                                                     "steps": 5, "total_flops": 5e9})
        manifest["runs"][run.run_id] = {**run.summary(), "run_dir": str(run_dir),
                                        "config": diffs[run.run_id], "attempts": [
            {"executor": "debug", "job_id": None, "submitted_at": 0.0}]}
    write_manifest(sweep_dir, manifest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    try:
        start = time.perf_counter()
        plan = build_plan(parse_spec(grid_spec(tmp / "planned", args.runs)))
        planned = time.perf_counter()
        result = launch(plan, "slurm", dry_run=True, max_array_size=1000)
        launched = time.perf_counter()
        n_classes = len({r.resource_class for r in plan.runs})
        print(f"plan {len(plan.runs)} runs: {planned - start:.2f} s; dry-run launch: "
              f"{launched - planned:.2f} s; total {launched - start:.2f} s (target <= 5 s)")
        print(f"resource classes: {n_classes}; arrays (sbatch calls) at MaxArraySize 1000: "
              f"{len(result.arrays)}; without a size limit: "
              f"{len(launch(plan, 'slurm', dry_run=True, max_array_size=10**9).arrays)}")
        sweep_dir = tmp / "done"
        fake_sweep(sweep_dir, plan)
        start = time.perf_counter()
        from aimscale.sweep.manifest import read_manifest

        states = sweep_states(sweep_dir, read_manifest(sweep_dir))
        took = time.perf_counter() - start
        print(f"status over {len(states)} run dirs: {took:.2f} s (target <= 2 s) "
              f"{count_states(states)['done']} done")
        start = time.perf_counter()
        runs_path, curves_path = write_tables(sweep_dir)
        took = time.perf_counter() - start
        print(f"collect over {len(plan.runs)} runs: {took:.2f} s (target <= 10 s) -> "
              f"{sum(1 for _ in runs_path.open()) - 1} rows, "
              f"{sum(1 for _ in curves_path.open()) - 1} curve rows")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
