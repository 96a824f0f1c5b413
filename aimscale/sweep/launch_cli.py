"""`aimscale launch SPEC [overrides] [--executor local|slurm|debug] [--dry-run] [--retry-failed]`.

Submits one job array per resource class, each followed by its probe array (the spec's probes,
on the `probe` class, each task after its training task), and returns (except `--executor
debug`, which runs inline). Relaunching submits only new runs (and failed ones with
--retry-failed), and probe tasks only for runs whose probes are not done.
"""

from __future__ import annotations

import argparse
import sys

from aimscale.sweep.plan_cli import load_plan, print_time_limit_warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="sweep spec (YAML)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides on top of the spec")
    parser.add_argument("--executor", choices=("local", "slurm", "debug"), default="local")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would be submitted; write and submit nothing")
    parser.add_argument("--retry-failed", action="store_true",
                        help="also resubmit failed, stopped and cancelled runs (never unknown, "
                             "stale or ending ones: they may still be alive)")
    parser.add_argument("--max-parallel", type=int,
                        help="local executor: runs at once (default: spec's local.max_parallel)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from aimscale.errors import EXIT_BAD_INPUT, EXIT_FAILURE
    from aimscale.jsonfiles import UnreadableFileError
    from aimscale.sweep.launch import DataProblems, launch, probed
    from aimscale.sweep.manifest import LaunchLocked

    if args.max_parallel is not None and args.max_parallel < 1:
        print("aimscale launch: --max-parallel must be >= 1", file=sys.stderr)
        return 2
    plan = load_plan(args)
    if plan is None:
        return 2
    print_time_limit_warnings(plan)
    try:
        result = launch(plan, args.executor, dry_run=args.dry_run,
                        retry_failed=args.retry_failed, max_parallel=args.max_parallel)
    except DataProblems as err:  # bad input: found before anything was submitted
        print(f"aimscale launch: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnreadableFileError as err:  # sweep.json: never rewritten over what it recorded
        print(f"aimscale launch: the sweep's manifest {err}; nothing was submitted or written. "
              "Restore it (it holds the job ids of submitted runs), or move it away to start "
              "the sweep's record afresh", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (LaunchLocked, RuntimeError) as err:
        print(f"aimscale launch: {err}", file=sys.stderr)
        return EXIT_FAILURE
    for warning in result.warnings:
        print(f"aimscale launch: warning: {warning}", file=sys.stderr)
    if args.json:
        import json

        print(json.dumps({
            "sweep_dir": str(result.sweep_dir), "dry_run": result.dry_run,
            "submitted": result.submitted, "skipped": result.skipped,
            "arrays": [{"resource_class": a.resource.name, "tasks": len(a.run_ids)}
                       for a in result.arrays],
            "job_ids": result.job_ids, "probed": probed(result),
            "probe_arrays": [{"resource_class": a.resource.name, "tasks": len(a.run_ids),
                              "after_training": a.after is not None}
                             for a in result.probe_arrays],
            "probe_job_ids": result.probe_job_ids, "warnings": result.warnings,
            "branches": result.branches,
        }, indent=1))
        return 0
    verb = "would submit" if result.dry_run else "submitted"
    print(f"{plan.spec.name}: {verb} {len(result.submitted)} run(s) in {len(result.arrays)} "
          f"array(s) ({args.executor}); skipped {len(result.skipped)}")
    branched = sum(len(ids) for ids in result.branches.values())
    if branched:
        print(f"  + {branched} cooldown branch(es), trained in their trunk's task")
    for array in result.arrays:
        res = array.resource
        print(f"  class {res.name}: {len(array.run_ids)} run(s), {res.nodes} node(s) x "
              f"{res.ranks_per_node} task(s), {res.gpus_per_node} GPU(s)/node, "
              f"{res.time_min:g} min")
    for array in result.probe_arrays:
        res = array.resource
        when = "each after its training task" if array.after is not None else "trained already"
        print(f"  probes (class {res.name}): {len(array.run_ids)} task(s), {when}; "
              f"{res.nodes} node(s) x {res.ranks_per_node} task(s), {res.gpus_per_node} "
              f"GPU(s)/node, {res.time_min:g} min")
    states: dict[str, int] = {}
    for state in result.skipped.values():
        states[state] = states.get(state, 0) + 1
    if states:
        print("  skipped: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    if not result.dry_run:
        print(f"watch: aimscale status {result.sweep_dir} --watch")
    return 0
