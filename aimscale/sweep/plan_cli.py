"""`aimscale plan SPEC [overrides] [--json]`: every run, its size and cost; totals per class."""

from __future__ import annotations

import argparse
import json
import sys

from aimscale.config import ConfigError
from aimscale.memory import memory_warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="sweep spec (YAML), e.g. sweeps/demo.yaml")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra overrides on top of the spec (a sweep value adds a grid axis)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--gpu-peak-flops", type=float, help="override cost.gpu_peak_flops")
    parser.add_argument("--mfu", type=float, help="override cost.mfu (0-1)")
    parser.add_argument("--mfu-from", metavar="SWEEP_DIR",
                        help="GPU-hours at the median MFU measured by the finished runs of the "
                             "same resource class in SWEEP_DIR")


def load_plan(args: argparse.Namespace):
    """Spec + overrides -> Plan, or print every problem and return None."""
    from aimscale.sweep.plan import build_plan
    from aimscale.sweep.spec import load_spec

    try:
        spec = load_spec(args.spec, list(args.overrides))
        if getattr(args, "gpu_peak_flops", None):
            spec.cost.gpu_peak_flops = args.gpu_peak_flops
        if getattr(args, "mfu", None):
            spec.cost.mfu = args.mfu
        plan = build_plan(spec)
        if getattr(args, "mfu_from", None):
            from aimscale.sweep.measured_mfu import apply_measured_mfu, measured_mfu

            plan.notes = apply_measured_mfu(plan, measured_mfu(args.mfu_from))
        return plan
    except ConfigError as err:
        print(f"aimscale: sweep {args.spec}: {err}\nNothing was submitted.", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    plan = load_plan(args)
    if plan is None:
        return 2
    print_time_limit_warnings(plan)
    if args.json:
        print(json.dumps(plan.to_json(), indent=1))
        return 0
    print(format_plan(plan))
    return 0


def print_time_limit_warnings(plan) -> None:
    from aimscale.sweep.resources import time_limit_warnings

    for warning in time_limit_warnings(plan.spec.resources, plan.runs):
        print(f"aimscale: warning: {warning}", file=sys.stderr)


def _si(x: float) -> str:
    if abs(x) >= 1e18:
        return f"{x:.3g}"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6),
                        ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def format_plan(plan, max_rows: int = 200) -> str:
    spec = plan.spec
    lines = [f"sweep {spec.name}: {len(plan.runs)} runs -> {spec.sweep_dir}",
             f"cost model: {spec.cost.gpu_peak_flops:.3g} FLOP/s per GPU at MFU {spec.cost.mfu}",
             *(f"  {note}" for note in getattr(plan, "notes", []))]
    header = (f"{'run_id':<44} {'class':<8} {'trunk':>7} {'head':>7} {'FLOP/img':>9} "
              f"{'images':>8} {'patches':>8} {'FLOPs':>8} {'GPU-h':>9} {'strategy':<9} "
              f"{'GB/GPU':>11}")
    lines += ["", header, "-" * len(header)]
    for run in plan.runs[:max_rows]:
        lines.append(
            f"{run.run_id:<44} {run.resource_class:<8} {_si(run.trunk_params):>7} "
            f"{_si(run.head_params):>7} {_si(run.flops_per_image):>9} {_si(run.images_seen):>8} "
            f"{_si(run.patches_seen):>8} {_si(run.spent_flops):>8} {run.gpu_hours:>9.3g} "
            f"{_memory_cells(run.memory)}"
        )
    if len(plan.runs) > max_rows:
        lines.append(f"... {len(plan.runs) - max_rows} more (use --json for all)")
    branched = [run for run in plan.runs if run.branch_of]
    lines += _data_size_lines(plan.runs, max_rows)
    if branched:
        lines += ["", f"cooldown branches (data_sizes; FLOPs spent: the cooldown only, trained in "
                      f"the trunk's task): {len(branched)}"]
        for run in branched[:max_rows]:
            lines.append(f"{run.run_id:<44} <- {run.branch_of} at step {run.branch_step}: "
                         f"{_si(run.images_seen)} images, {_si(run.spent_flops)} FLOPs spent of "
                         f"{_si(run.total_flops)}")
    if spec.size_rules:
        lines += ["", "size rules:", *(f"  {r.key} = {r.text}" for r in spec.size_rules)]
        for run in plan.runs[:max_rows]:
            values = " ".join(f"{k}={v:.4g}" for k, v in run.size_values.items())
            lines.append(f"{run.run_id:<44} {values}")
    lines += ["", f"{'class':<10} {'runs':>6} {'GPUs/run':>8} {'FLOPs':>10} {'GPU-hours':>12}"]
    for name, total in plan.totals().items():
        gpus = total.get("gpus_per_run", "")
        lines.append(f"{name:<10} {total['runs']:>6} {gpus!s:>8} {_si(total['total_flops']):>10} "
                     f"{total['gpu_hours']:>12.4g}")
    if plan.baselines:
        lines += ["", f"probe baselines: {len(plan.baselines)}, each computed once by its owner "
                  f"run's job into {spec.sweep_dir}/baselines/:",
                  *(f"  {b.id:<44} owner {b.owner}" for b in plan.baselines[:max_rows])]
    probe = plan.probe_class_summary()
    if probe:
        lines += ["", f"probes: {probe['tasks']} task(s) on class probe "
                  f"({'resources.classes.probe' if probe['given'] else 'default'}), each after "
                  f"its training task: {probe['nodes']} node(s) x {probe['tasks_per_node'] or 1} "
                  f"task(s), {probe['gpus_per_node']} GPU(s)/node, {probe['time_min']:g} min"
                  + (f", {probe['mem_gb']:g} GB" if probe.get("mem_gb") else "")
                  + (f", partition {probe['partition']}" if probe.get("partition") else "")]
    warnings = memory_warnings(plan.runs)
    if warnings:
        lines += ["", f"memory: {len(warnings)} run(s) do not fit their GPUs (estimate, see "
                  "aimscale/memory.py):", *(f"  - {w}" for w in warnings)]
    return "\n".join(lines)


def _data_size_lines(runs, max_rows: int) -> list[str]:
    """Each trunk of `data_sizes` (the spec's list, or its zip entry's) with its sizes."""
    from aimscale.sweep.data_sizes import AXIS

    sizes = {run.run_id: [run.images_seen] for run in runs
             if AXIS in run.axes and not run.branch_of}
    if not sizes:
        return []
    for run in runs:
        if run.branch_of in sizes:
            sizes[run.branch_of].append(run.images_seen)
    rows = list(sizes.items())
    return ["", f"data sizes per trunk (images; the largest is the trunk, the others its "
                f"branches): {len(rows)} trunk(s)",
            *(f"{trunk:<44} {' '.join(_si(n) for n in sorted(seen))}"
              for trunk, seen in rows[:max_rows])]


def _memory_cells(memory: dict | None) -> str:
    """`fsdp+ac   23.6/80 ok`: strategy (+ activation checkpointing), GB per GPU / capacity."""
    if not memory:
        return ""
    strategy = memory["strategy"] + ("+ac" if memory["activation_checkpointing"] else "")
    cap = memory.get("capacity_gb")
    used = f"{memory['total_gb']:.3g}" + (f"/{cap:g}" if cap else "")
    verdict = {True: "ok", False: "OVER", None: ""}[memory.get("fits")]
    return f"{strategy:<9} {used:>11} {verdict}".rstrip()
