"""`aimscale cancel SWEEP_DIR [RUN_IDS ...]`: cancel runs on SLURM (scancel) and record it.

Without run ids every run that is queued or running is cancelled. Both arrays are cancelled: the
run's training task and its probe task (`probe_attempts`), whichever is still queued or
running. A cooldown branch is trained and probed in its trunk's task, so naming any run of a
family cancels that task for the whole family, and each of its live runs is recorded (the
output names them). The manifest records the cancel on the latest attempt of each
(`cancelled_at`), so `status` shows `cancelled`, a plain `launch` leaves the run alone and
`launch --retry-failed` resumes it from its last checkpoint (and probes it again).
Exit codes: 0 cancelled (or nothing to cancel), 1 SLURM did not answer or another launch holds
the sweep, 2 unknown run ids, runs on another executor, or no readable sweep.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# states whose job may still be queued or running
CANCELLABLE = ("pending", "running", "requeued", "suspended", "probing", "stale")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="the sweep's directory (holds sweep.json)")
    parser.add_argument("run_ids", nargs="*", help="runs to cancel (default: every live run)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from aimscale.sweep import slurm
    from aimscale.sweep.manifest import LaunchLocked, latest_attempt, launch_lock, write_manifest
    from aimscale.sweep.probe_state import PROBE_LIVE
    from aimscale.sweep.state import sweep_states
    from aimscale.sweep.status_cli import load_manifest

    if load_manifest(args.sweep_dir, "cancel") is None:
        return 2
    try:
        with launch_lock(args.sweep_dir):
            manifest = load_manifest(args.sweep_dir, "cancel")  # as it is under the lock
            if manifest is None:
                return 2
            runs = manifest.get("runs", {})
            unknown_ids = [r for r in args.run_ids if r not in runs]
            if unknown_ids:
                print(f"aimscale cancel: no run {', '.join(unknown_ids)} in {args.sweep_dir}; "
                      "see `aimscale status` for the run ids", file=sys.stderr)
                return 2
            wanted = set(args.run_ids or runs)
            warnings: list[str] = []
            states = {s.run_id: s for s in sweep_states(args.sweep_dir, manifest,
                                                        with_loss=False, warnings=warnings)}
            live = {r: latest_attempt(runs[r]) for r in runs if states[r].train in CANCELLABLE}
            live_probes = {r: runs[r]["probe_attempts"][-1] for r in runs
                           if states[r].probe in PROBE_LIVE}
            targets = _with_task_mates({r: a for r, a in live.items() if r in wanted}, live)
            probe_targets = _with_task_mates(
                {r: a for r, a in live_probes.items() if r in wanted}, live_probes)
            mates = sorted((set(targets) | set(probe_targets)) - wanted)
            if any(s.state == "unknown" or s.probe == "unknown"
                   for r, s in states.items() if r in wanted):
                print(f"aimscale cancel: {warnings[0] if warnings else 'SLURM did not answer'}; "
                      "nothing was cancelled", file=sys.stderr)
                return 1
            other = sorted({r for group in (targets, probe_targets) for r, a in group.items()
                            if a.get("executor") != "slurm"})
            if other:
                print(f"aimscale cancel: {len(other)} run(s) are not on SLURM (e.g. {other[0]});"
                      " cancel supports the slurm executor: stop a local sweep's scheduler "
                      "(its pid is in sweep.json under launches)", file=sys.stderr)
                return 2
            # a cooldown branch shares its trunk's job: each job once
            job_ids = list(dict.fromkeys(a["job_id"] for a in targets.values()))
            job_ids += sorted({a["job_id"] for a in probe_targets.values()} - set(job_ids))
            try:
                slurm.cancel(job_ids)
            except slurm.SlurmUnavailable as err:
                print(f"aimscale cancel: {err}; nothing was recorded", file=sys.stderr)
                return 1
            now = time.time()
            for attempt in [*targets.values(), *probe_targets.values()]:
                attempt["cancelled_at"] = now
            cancelled = sorted(set(targets) | set(probe_targets))
            if cancelled:
                manifest.setdefault("cancels", []).append(
                    {"at": now, "runs": cancelled, "job_ids": job_ids})
                write_manifest(args.sweep_dir, manifest)
    except LaunchLocked as err:
        print(f"aimscale cancel: {err}", file=sys.stderr)
        return 1
    skipped = sorted(wanted - set(cancelled))
    if args.json:
        print(json.dumps({"cancelled": cancelled, "job_ids": job_ids,
                          "probes_cancelled": sorted(probe_targets),
                          "with_their_task": mates,
                          "skipped": {r: states[r].state for r in skipped}}))
    else:
        print(f"cancelled {len(cancelled)} run(s) ({len(probe_targets)} probe task(s)); "
              f"{len(skipped)} had nothing to cancel")
        if mates:
            print(f"{len(mates)} of them share a task with a run you named (a trunk and its "
                  f"cooldown branches train, and are probed, in one task): {', '.join(mates)}")
    return 0


def _with_task_mates(chosen: dict[str, dict], live: dict[str, dict]) -> dict[str, dict]:
    """`chosen` (run id -> latest attempt) plus every live run whose attempt is the same job:
    a trunk and its cooldown branches share one task, so cancelling one cancels them all and
    each of them must be recorded as cancelled."""
    jobs = {a.get("job_id") for a in chosen.values()} - {None}
    return {**chosen, **{r: a for r, a in live.items() if a.get("job_id") in jobs}}
