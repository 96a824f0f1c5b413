"""`aimscale status SWEEP_DIR [--json] [--watch]`: counts by state and one line per run."""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="the sweep's directory (holds sweep.json)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--watch", action="store_true",
                        help="refresh every few seconds until every run is finished")
    parser.add_argument("--interval", type=float, default=5.0, help="--watch refresh (s)")


def run(args: argparse.Namespace) -> int:
    from aimscale.sweep.manifest import read_manifest
    from aimscale.sweep.state import TERMINAL_STATES, count_states, sweep_states

    manifest = read_manifest(args.sweep_dir)
    if manifest is None:
        print(f"aimscale status: {args.sweep_dir}/sweep.json not found; is it a sweep directory "
              "made by `aimscale launch`?", file=sys.stderr)
        return 2
    while True:
        states = sweep_states(args.sweep_dir, manifest)
        counts = count_states(states)
        if args.json:
            print(json.dumps({"counts": counts, "runs": [s.to_dict() for s in states]}))
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(format_status(manifest.get("name", ""), counts, states))
        finished = all(s.state in TERMINAL_STATES for s in states)
        if not args.watch or finished:
            return 1 if counts.get("failed") else 0
        sys.stdout.flush()
        time.sleep(args.interval)
        manifest = read_manifest(args.sweep_dir) or manifest


def format_status(name: str, counts: dict[str, int], states) -> str:
    total = sum(counts.values())
    lines = [f"sweep {name}: {total} runs  " + "  ".join(
        f"{state} {n}" for state, n in counts.items() if n)]
    header = f"{'run_id':<44} {'state':<9} {'step':>11} {'loss':>8} {'restarts':>8} {'job':>12}"
    lines += [header, "-" * len(header)]
    for s in states:
        step = f"{s.step if s.step is not None else '-'}/{s.total_steps or '-'}"
        loss = f"{s.loss:.4f}" if s.loss is not None else "-"
        lines.append(f"{s.run_id:<44} {s.state:<9} {step:>11} {loss:>8} {s.restarts:>8} "
                     f"{s.job_id or '-':>12}")
        if s.error:
            lines.append(f"    error: {s.error}")
    return "\n".join(lines)
