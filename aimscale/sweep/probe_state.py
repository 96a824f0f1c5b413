"""Where the probes of a result run stand: its training state, its latest probe attempt (the
probe task recorded in the manifest under `probe_attempts`), the scheduler's view of that task
and the run's `probe_status.json` (written by the probe task, `probe_job.py`).

Probe states (the `probe` column of `aimscale status`):
- `none` the spec has no probes · `new` no probe task submitted yet (`launch` submits one)
- `pending` the task is queued (waiting for its training task, or for resources)
- `running` · `done` (probe_status.json says so, for the spec's probes) · `failed` (its error)
- `blocked` its training failed, was cancelled or stopped: the probe task never runs (SLURM
  cancels it: `aftercorr` can no longer be satisfied); `launch --retry-failed` retries both
- `cancelled` (scancel or `aimscale cancel`) · `ending` cancelled, still exiting
- `suspended` · `unknown` the scheduler did not answer
A probe_status.json older than the latest probe attempt belongs to an earlier one and is ignored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from aimscale.jsonfiles import read_json
from aimscale.sweep.heartbeat import beat_stopped
from aimscale.sweep.probe_job import PROBE_STATUS

PROBE_STATES = ("none", "new", "pending", "running", "stale", "suspended", "ending", "done",
                "failed", "blocked", "cancelled", "unknown")
# nothing changes them without a new launch
PROBE_TERMINAL = ("none", "new", "done", "failed", "blocked", "cancelled")
# what `launch --retry-failed` probes again on runs whose training is done
PROBE_RETRY = ("failed", "blocked", "cancelled")
# what `aimscale cancel` scancels
PROBE_LIVE = ("pending", "running", "stale", "suspended")
TRAINING_ENDED = ("failed", "cancelled", "stopped")  # a probe task after it never runs


def probe_status_file(run_dir: str | Path,
                      attempt: dict | None) -> tuple[dict | None, float | None]:
    """(probe_status.json of the latest probe attempt, seconds since it was last written or
    touched); (None, None) when absent or older than the attempt."""
    path = os.path.join(str(run_dir), PROBE_STATUS)
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None, None
    if attempt and mtime < float(attempt.get("submitted_at", 0)) - 1.0:
        return None, None
    return read_json(path), time.time() - mtime


def probe_state(train: str, probes: list[dict], attempt: dict | None, where: str,
                detail: str, status: dict | None, started_at: float | None = None,
                age_s: float | None = None) -> tuple[str, str | None]:
    """(probe state, a note or error): `train` is the run's training state, `where` the
    scheduler's kind for the probe task (slurm.KIND's values or `unknown`), `status` the
    current probe_status.json and `age_s` its age (`probe_status_file`), `started_at` when the
    task last started (None when not known)."""
    if not probes:
        return "none", None
    on_disk = status.get("state") if status else None
    if on_disk == "done" and status.get("probes") == probes:
        return "done", None
    if attempt is None:
        if train in TRAINING_ENDED:
            return "blocked", f"training {train}: probes not run"
        return "new", None
    if attempt.get("cancelled_at"):
        if where in ("running", "suspended", "ending"):
            return "ending", "cancelled with `aimscale cancel`; the probe task is stopping"
        return "cancelled", "cancelled with `aimscale cancel`"
    if where == "unknown":
        return "unknown", detail or "no scheduler could be asked about the probe task"
    if where == "running":
        if status is None and attempt.get("task_index", 0) > 0:
            return "pending", "waits in its probe task: the runs before it are probed first"
        beat = attempt.get("heartbeat_s")
        if on_disk == "running" and beat_stopped(beat, age_s, started_at):
            return "stale", (f"probe_status.json not updated for {age_s:.0f} s (heartbeat every "
                             f"{beat:g} s): the node may be dead or the probe task hung")
        return "running", None
    if where in ("suspended", "ending"):
        return where, detail or None
    if train in TRAINING_ENDED:  # queued after a training that will not succeed: never runs
        return "blocked", f"training {train}: its probe task never runs"
    if where == "pending":
        return "pending", ("waits for its training task" if train != "done" else detail or None)
    if where == "cancelled":
        return "cancelled", detail or "cancelled"
    # the task is gone
    if on_disk == "failed":
        return "failed", status.get("error") or "the probe task failed"
    if on_disk == "blocked" or train != "done":
        return "blocked", (status or {}).get("reason") or "training did not finish: not probed"
    return "failed", detail or "the probe task ended without writing probe_status.json"

