"""Where each run of a sweep stands, joining the manifest, the scheduler's view and the files.

States (what `aimscale status` shows; README "What status shows"):
- `new` never submitted · `pending` queued (a cooldown branch also while its trunk's task
  trains the trunk or an earlier branch) · `running` · `probing` trained, its probe task is
  queued or runs (`probe_state.py`) · `done` (summary.json written, and the probe task, if any,
  no longer queued or running)
- `requeued` stopped (time limit, preemption) or killed (node failure) and queued to resume
- `suspended` SLURM paused the job · `ending` the job's processes are exiting
- `stale` the job is said to run but its status file has not been touched for longer than its
  heartbeat allows (a dead node, a hung job)
- `stopped` stopped at a step boundary, nothing will resume it · `cancelled` cancelled (scancel
  or `aimscale cancel`) · `failed`
- `unknown` the scheduler did not answer (e.g. slurmctld down): never read as failed
- `unreadable` a file of the run (named in `error`) is empty or torn; the rest of the sweep is
  listed as usual
A status.json older than the latest submission belongs to an earlier attempt and is ignored.

Each RunState also carries the two sides on their own: `train` (the states above, never
`probing`) and `probe` (`probe_state.PROBE_STATES`), each from its own array's job.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aimscale.jsonfiles import UnreadableFileError, read_json, read_jsonl_tail
from aimscale.sweep import slurm
from aimscale.sweep.heartbeat import beat_stopped
from aimscale.sweep.local_scheduler import pid_alive, scheduler_alive
from aimscale.sweep.manifest import latest_attempt
from aimscale.sweep.probe_state import PROBE_STATES, probe_state, probe_status_file

STATES = ("new", "pending", "running", "requeued", "suspended", "probing", "ending", "stale",
          "stopped", "cancelled", "done", "failed", "unknown", "unreadable")
# nothing will change them without a new launch (what `status --watch` waits for)
TERMINAL_STATES = ("new", "stopped", "cancelled", "done", "failed", "unreadable")
# what `launch --retry-failed` resubmits; unknown, stale and ending runs may still be alive
RETRY_STATES = ("failed", "stopped", "cancelled")
SCHEDULER_START_GRACE_S = 30.0


@dataclass(frozen=True)
class SchedulerView:
    """What the scheduler says about a run's job: `kind` is one of slurm.KIND's values or
    `unknown` (no answer); `started_at` when the job last started (None when not known)."""

    kind: str
    detail: str = ""
    started_at: float | None = None


@dataclass
class RunState:
    run_id: str
    state: str
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    restarts: int = 0
    job_id: str | None = None
    error: str | None = None
    train: str | None = None  # the training side alone (`state` without `probing`)
    probe: str = "none"  # probe_state.PROBE_STATES
    probe_job_id: str | None = None
    probe_error: str | None = None  # why the probes failed or are blocked, or a note

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep_states(sweep_dir: str | Path, manifest: dict[str, Any], with_loss: bool = True,
                 warnings: list[str] | None = None) -> list[RunState]:
    """The state of every run in the manifest (one squeue/sacct call for all SLURM jobs).

    Problems that affect many runs (SLURM not answering) and unreadable runs are appended to
    `warnings` as one sentence each."""
    sweep_dir = Path(sweep_dir)
    warnings = [] if warnings is None else warnings
    runs = manifest.get("runs", {})
    probes = list((manifest.get("spec") or {}).get("probe") or [])
    latest = {r: (latest_attempt(e), _latest_probe(e)) for r, e in runs.items()}
    slurm_ids = sorted({a["job_id"] for pair in latest.values() for a in pair
                        if a and a.get("executor") == "slurm" and a.get("job_id")})
    views: dict[str, slurm.JobView] | None = {}
    try:
        views = slurm.query(slurm_ids)
    except slurm.SlurmUnavailable as err:
        views = None
        unreachable = f"SLURM did not answer ({err})"
        warnings.append(f"{unreachable}: the {len(slurm_ids)} job(s) on SLURM are shown "
                        "`unknown`, not failed; run status again when the controller is back")
    schedulers: dict[str, dict] = {}

    def view_of(attempt: dict | None, run_id: str, section: str):
        """(scheduler view, attempt with its job id) of a training or probe attempt."""
        if not attempt:
            return None, attempt
        if attempt.get("executor") == "slurm":
            if views is None:
                return SchedulerView("unknown", unreachable), attempt
            job = views.get(attempt.get("job_id"))
            return _slurm_state(job, with_reason=section == "probes"), attempt
        if attempt.get("executor") == "local":
            task = attempt.get("task_of", run_id)  # a cooldown branch: its trunk's task
            view = _local_state(attempt, task, schedulers, section)
            local = schedulers[attempt["scheduler_state"]]
            job_id = local.get(section, {}).get(task, {}).get("job_id")
            return view, {**attempt, "job_id": job_id}
        return SchedulerView("gone"), attempt

    out = []
    for run_id, entry in runs.items():
        run_dir = entry.get("run_dir") or sweep_dir / run_id
        train_view, attempt = view_of(latest[run_id][0], run_id, "runs")
        state = run_state(run_id, run_dir, attempt, train_view, with_loss)
        state.train = state.state
        if state.state == "unreadable":
            warnings.append(f"run {run_id} is unreadable: {state.error}")
        elif probes:
            probe_view, probe_attempt = view_of(latest[run_id][1], run_id, "probes")
            view = probe_view or SchedulerView("unknown")
            try:
                status, age = probe_status_file(run_dir, probe_attempt)
            except UnreadableFileError as err:
                state.state, state.error = "unreadable", str(err)
                warnings.append(f"run {run_id} is unreadable: {err}")
                out.append(state)
                continue
            state.probe, state.probe_error = probe_state(
                state.train, probes, probe_attempt, view.kind, view.detail, status,
                view.started_at, age)
            state.probe_job_id = probe_attempt.get("job_id") if probe_attempt else None
            if state.train == "done" and state.probe in ("pending", "running", "suspended",
                                                         "ending"):
                state.state = "probing"
            elif state.train == "done" and state.probe == "stale":
                state.state = "stale"
        out.append(state)
    return out


def _latest_probe(entry: dict[str, Any]) -> dict[str, Any] | None:
    attempts = entry.get("probe_attempts") or []
    return attempts[-1] if attempts else None


def run_state(run_id: str, run_dir: str | Path, attempt: dict | None,
              scheduler_view: SchedulerView | None, with_loss: bool = True) -> RunState:
    """Combine the files of `run_dir` with the scheduler's view of its latest training
    attempt (the training side: the probe side is `probe_state`)."""
    try:
        return _run_state(run_id, run_dir, attempt, scheduler_view, with_loss)
    except UnreadableFileError as err:
        job_id = attempt.get("job_id") if attempt else None
        return RunState(run_id, "unreadable", job_id=job_id, error=str(err))


def _run_state(run_id: str, run_dir: str | Path, attempt: dict | None,
               scheduler_view: SchedulerView | None, with_loss: bool) -> RunState:
    job_id = attempt.get("job_id") if attempt else None
    view = scheduler_view or SchedulerView("unknown")
    where, detail = view.kind, view.detail
    base = str(run_dir)  # plain strings: pathlib costs more than the reads over 10k runs
    summary = read_json(base + "/summary.json")
    if summary is not None:
        status = read_json(base + "/status.json") or {}
        return RunState(run_id, "done", summary.get("steps"), summary.get("steps"),
                        summary.get("final_loss"), int(status.get("restarts", 0)), job_id)
    run_dir = Path(run_dir)
    status, age = _current_status(run_dir, attempt)
    loss = _last_loss(run_dir) if with_loss and status else None
    step = status.get("step") if status else None
    total = status.get("total_steps") if status else None
    restarts = int(status.get("restarts", 0)) if status else 0

    def make(state: str, error: str | None = None) -> RunState:
        return RunState(run_id, state, step, total, loss, restarts, job_id, error)

    if attempt is None:
        return make(status["state"] if status else "new")
    disk = status.get("state") if status else None
    if disk == "failed":
        return make("failed", _error_excerpt(run_dir, status))
    alive = where in ("running", "suspended", "ending")
    if attempt.get("cancelled_at"):
        if alive:
            return make("ending", "cancelled with `aimscale cancel`; the job is stopping")
        return make("cancelled", "cancelled with `aimscale cancel`")
    if where == "cancelled":
        return make("cancelled", f"cancelled in SLURM ({detail})" if detail else "cancelled")
    if where == "pending":  # a status file of this attempt: it has run and was requeued
        return make("requeued" if disk else "pending")
    trunk = attempt.get("task_of")
    if where in ("running", "suspended") and disk is None and trunk and trunk != run_id:
        # a cooldown branch whose task trains its trunk or an earlier branch first
        return make("pending", f"waits in its trunk's task ({trunk}): the trunk and the "
                               "branches before it train first")
    if where == "running":
        beat = attempt.get("heartbeat_s")
        if disk == "running" and beat_stopped(beat, age, view.started_at):
            return make("stale", f"status.json not updated for {age:.0f} s (heartbeat every "
                                 f"{beat:g} s): the node may be dead or the job hung")
        return make("requeued" if disk == "stopped" else "running")
    if where == "suspended":
        return make("suspended", detail or None)
    if where == "ending":
        return make("requeued" if disk == "stopped" else "ending", detail or None)
    if where == "unknown":
        return make("unknown", detail or "no scheduler could be asked about this run")
    # the job is gone and there is no summary
    if disk == "stopped":
        return make("stopped", f"stopped at step {step} and not requeued ({detail or 'ended'})")
    reason = _log_excerpt(attempt) or "the job ended without writing summary.json"
    return make("failed", f"{detail}: {reason}" if detail else reason)


def _slurm_state(job: slurm.JobView | None, with_reason: bool = False) -> SchedulerView:
    """The view of one job from a query that succeeded (`with_reason`: SLURM's reason in the
    detail of an ended job too, e.g. `CANCELLED (DependencyNeverSatisfied)`)."""
    if job is None:
        return SchedulerView("gone", "not known to SLURM any more")
    kind = job.kind
    if kind == "pending":
        return SchedulerView(kind, job.reason)
    if kind == "unknown":
        return SchedulerView(kind, f"SLURM state {job.state!r} is not one aimscale knows")
    reason = f" ({job.reason})" if with_reason and job.reason not in ("", "None") else ""
    return SchedulerView(kind, f"SLURM {job.state}{reason}", job.started_at)


def _local_state(attempt: dict, run_id: str, cache: dict[str, dict],
                 section: str = "runs") -> SchedulerView:
    path = attempt.get("scheduler_state")
    if path not in cache:
        try:
            state = read_json(path) or {}
        except UnreadableFileError as err:
            state = {"_unreadable": str(err)}
        try:
            age = os.stat(path).st_mtime
        except OSError:
            age = 0.0
        state["_alive"] = scheduler_alive(state) if state.get("pid") else (
            time.time() - age < SCHEDULER_START_GRACE_S)
        cache[path] = state
    state = cache[path]
    if "_unreadable" in state:
        return SchedulerView("unknown",
                             f"the local scheduler's state is unreadable: {state['_unreadable']}")
    entry = state.get(section, {}).get(run_id, {})
    if entry.get("state") == "blocked":
        return SchedulerView("gone", entry.get("reason", ""))
    if entry.get("state") == "submitted" and pid_alive(entry.get("job_id", "")):
        return SchedulerView("running")
    if entry.get("state") == "queued" and state["_alive"]:
        return SchedulerView("pending", "waiting for a free slot")
    if entry.get("state") == "queued":
        return SchedulerView("gone", "the local scheduler stopped before starting it")
    return SchedulerView("gone")


def _current_status(run_dir: Path, attempt: dict | None) -> tuple[dict | None, float | None]:
    """(status.json of the current attempt, seconds since it was last written or touched)."""
    path = run_dir / "status.json"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None, None
    if attempt and mtime < float(attempt.get("submitted_at", 0)) - 1.0:
        return None, None  # left by an earlier attempt (e.g. a failure that is being retried)
    return read_json(path), time.time() - mtime


def _last_loss(run_dir: Path) -> float | None:
    """`loss` of the last complete line of metrics.jsonl (reads only the file's end)."""
    for row in reversed(read_jsonl_tail(run_dir / "metrics.jsonl")):
        if row.get("loss") is not None:
            return float(row["loss"])
    return None


def _error_excerpt(run_dir: Path, status: dict | None) -> str:
    try:
        first = (run_dir / "error.txt").read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        first = ""
    return first or (status or {}).get("reason") or "failed"


def _log_excerpt(attempt: dict) -> str:
    """The last meaningful line of submitit's stderr log of the job (task 0)."""
    folder, job_id = attempt.get("folder"), attempt.get("job_id")
    if not folder or not job_id:
        return ""
    path = Path(folder.replace("%j", str(job_id))) / f"{job_id}_0_log.err"
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            lines = handle.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    lines = [ln for ln in lines if ln.strip() and not ln.startswith("submitit")]
    return lines[-1].strip()[:300] if lines else ""


def count_states(states: list[RunState]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    return counts


def count_probe_states(states: list[RunState]) -> dict[str, int]:
    counts = dict.fromkeys(PROBE_STATES, 0)
    for s in states:
        counts[s.probe] = counts.get(s.probe, 0) + 1
    return counts
