"""`aimscale status SWEEP_DIR [--json] [--watch]`: counts by state and one line per run, with
the training state (`train`, from the training array) and the probing state (`probe`, from the
probe array; `probe_state.py`) side by side.

Exit codes: 0 every run is accounted for (unreadable runs are listed and warned about), 1 some
run or its probes failed, or a state is unknown (the scheduler did not answer), 2 no readable
sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="the sweep's directory (holds sweep.json)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--watch", action="store_true",
                        help="refresh every few seconds until every run is finished")
    parser.add_argument("--interval", type=float, default=5.0, help="--watch refresh (s)")


def load_manifest(sweep_dir: str, command: str) -> dict | None:
    """The sweep's manifest, or None after printing why it cannot be used (exit 2)."""
    from aimscale.jsonfiles import UnreadableFileError
    from aimscale.sweep.manifest import read_manifest

    try:
        manifest = read_manifest(sweep_dir)
    except UnreadableFileError as err:
        print(f"aimscale {command}: the sweep's manifest {err}; restore it from a backup, or "
              "launch the spec again to rewrite it (finished runs are kept)", file=sys.stderr)
        return None
    if manifest is None:
        print(f"aimscale {command}: {sweep_dir}/sweep.json not found; is it a sweep directory "
              "made by `aimscale launch`?", file=sys.stderr)
    return manifest


def run(args: argparse.Namespace) -> int:
    from aimscale.sweep.probe_state import PROBE_TERMINAL
    from aimscale.sweep.state import TERMINAL_STATES, count_probe_states, count_states, sweep_states

    manifest = load_manifest(args.sweep_dir, "status")
    if manifest is None:
        return 2
    while True:
        warnings: list[str] = []
        states = sweep_states(args.sweep_dir, manifest, warnings=warnings)
        counts, probe_counts = count_states(states), count_probe_states(states)
        if args.json:
            text = json.dumps({"counts": counts, "probe_counts": probe_counts,
                               "runs": [s.to_dict() for s in states], "warnings": warnings})
        else:
            text = ("\033[2J\033[H" if args.watch else "") + format_status(
                manifest.get("name", ""), counts, states, probe_counts)
        for warning in warnings:
            print(f"aimscale status: warning: {warning}", file=sys.stderr)
        if not emit(text):
            return 0  # the reader went away (`| head`): nothing more to say
        finished = all(s.state in TERMINAL_STATES and s.probe in PROBE_TERMINAL for s in states)
        if not args.watch or finished:
            bad = (counts.get("failed") or counts.get("unknown") or probe_counts.get("failed")
                   or probe_counts.get("unknown"))
            return 1 if bad else 0
        time.sleep(args.interval)
        manifest = load_manifest(args.sweep_dir, "status") or manifest


def emit(text: str) -> bool:
    """Print `text`; False when stdout is a closed pipe (then stdout is muted, no traceback)."""
    try:
        print(text, flush=True)
        return True
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that cannot fail either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return False


def format_status(name: str, counts: dict[str, int], states,
                  probe_counts: dict[str, int] | None = None) -> str:
    total = sum(counts.values())
    lines = [f"sweep {name}: {total} runs  " + "  ".join(
        f"{state} {n}" for state, n in counts.items() if n)]
    probing = {k: n for k, n in (probe_counts or {}).items() if n and k != "none"}
    if probing:
        lines.append("probes: " + "  ".join(f"{state} {n}" for state, n in probing.items()))
    header = (f"{'run_id':<44} {'state':<10} {'train':<10} {'probe':<9} {'step':>11} "
              f"{'loss':>8} {'restarts':>8} {'job':>12} {'probe job':>12}")
    lines += [header, "-" * len(header)]
    for s in states:
        step = f"{s.step if s.step is not None else '-'}/{s.total_steps or '-'}"
        loss = f"{s.loss:.4f}" if s.loss is not None else "-"
        probe = "-" if s.probe == "none" else s.probe
        lines.append(f"{s.run_id:<44} {s.state:<10} {s.train or s.state:<10} {probe:<9} "
                     f"{step:>11} {loss:>8} {s.restarts:>8} {s.job_id or '-':>12} "
                     f"{s.probe_job_id or '-':>12}")
        if s.error:
            label = "error" if s.state in ("failed", "unreadable") else "note"
            lines.append(f"    {label}: {s.error}")
        if s.probe_error:
            label = "probe error" if s.probe == "failed" else "probe note"
            lines.append(f"    {label}: {s.probe_error}")
    return "\n".join(lines)
