"""Where each run of a sweep stands, joining the manifest, the scheduler's view and the files.

States: `new` (never submitted), `pending` (queued), `running`, `requeued` (stopped at a step
boundary and waiting to resume), `probing` (trained, its job still runs the spec's probes),
`stopped` (stopped, nothing will resume it), `done`, `failed`.
A status.json older than the latest submission belongs to an earlier attempt and is ignored.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aimscale.jsonfiles import read_json, read_jsonl_tail
from aimscale.sweep import slurm
from aimscale.sweep.local_scheduler import pid_alive, scheduler_alive
from aimscale.sweep.manifest import latest_attempt

STATES = ("new", "pending", "running", "requeued", "probing", "stopped", "done", "failed")
TERMINAL_STATES = ("new", "stopped", "done", "failed")
SCHEDULER_START_GRACE_S = 30.0


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep_states(sweep_dir: str | Path, manifest: dict[str, Any],
                 with_loss: bool = True) -> list[RunState]:
    """The state of every run in the manifest (one squeue/sacct call for all SLURM jobs)."""
    sweep_dir = Path(sweep_dir)
    runs = manifest.get("runs", {})
    slurm_ids = [a["job_id"] for a in (latest_attempt(e) for e in runs.values())
                 if a and a.get("executor") == "slurm" and a.get("job_id")]
    views = slurm.query(slurm_ids) if slurm_ids else {}
    slurm_known = bool(slurm_ids) and slurm.available()
    schedulers: dict[str, dict] = {}
    out = []
    for run_id, entry in runs.items():
        run_dir = entry.get("run_dir") or sweep_dir / run_id
        attempt = latest_attempt(entry)
        scheduler_view = None
        if attempt and attempt.get("executor") == "slurm":
            view = views.get(attempt.get("job_id"))
            scheduler_view = _slurm_state(view, slurm_known)
        elif attempt and attempt.get("executor") == "local":
            scheduler_view = _local_state(attempt, run_id, schedulers)
            job_id = schedulers[attempt["scheduler_state"]].get("runs", {}).get(run_id, {}).get(
                "job_id")
            attempt = {**attempt, "job_id": job_id}
        elif attempt:
            scheduler_view = ("gone", "")
        out.append(run_state(run_id, run_dir, attempt, scheduler_view, with_loss))
    return out


def run_state(run_id: str, run_dir: str | Path, attempt: dict | None,
              scheduler_view: tuple[str, str] | None, with_loss: bool = True) -> RunState:
    """Combine the files of `run_dir` with the scheduler's view: (pending|running|gone|unknown,
    detail)."""
    job_id = attempt.get("job_id") if attempt else None
    base = str(run_dir)  # plain strings: pathlib costs more than the reads over 10k runs
    summary = read_json(base + "/summary.json")
    if summary is not None:
        status = read_json(base + "/status.json") or {}
        # training is done; a job that still runs is probing the run (probes are part of the job)
        state = "probing" if scheduler_view and scheduler_view[0] == "running" else "done"
        return RunState(run_id, state, summary.get("steps"), summary.get("steps"),
                        summary.get("final_loss"), int(status.get("restarts", 0)), job_id)
    run_dir = Path(run_dir)
    status = _current_status(run_dir, attempt)
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
    where, detail = scheduler_view or ("unknown", "")
    if where == "pending":
        return make("requeued" if disk == "stopped" else "pending")
    if where == "running":
        return make("requeued" if disk == "stopped" else "running")
    if where == "unknown":  # no scheduler to ask: trust the files
        return make({"running": "running", "stopped": "stopped"}.get(disk, "pending"))
    # the job is gone and there is no summary
    if disk == "stopped":
        return make("stopped", f"stopped at step {step} and not requeued ({detail or 'ended'})")
    reason = _log_excerpt(attempt) or "the job ended without writing summary.json"
    return make("failed", f"{detail}: {reason}" if detail else reason)



def _slurm_state(view: slurm.JobView | None, known: bool) -> tuple[str, str]:
    if view is None:
        return ("gone", "not known to SLURM any more") if known else ("unknown", "")
    if view.state in slurm.PENDING:
        return "pending", view.reason
    if view.state in slurm.TERMINAL:
        return "gone", f"SLURM {view.state}"
    return "running", view.state


def _local_state(attempt: dict, run_id: str, cache: dict[str, dict]) -> tuple[str, str]:
    path = attempt.get("scheduler_state")
    if path not in cache:
        state = read_json(path) or {}
        try:
            age = os.stat(path).st_mtime
        except OSError:
            age = 0.0
        state["_alive"] = scheduler_alive(state) if state.get("pid") else (
            _now() - age < SCHEDULER_START_GRACE_S)
        cache[path] = state
    state = cache[path]
    entry = state.get("runs", {}).get(run_id, {})
    if entry.get("state") == "submitted" and pid_alive(entry.get("job_id", "")):
        return "running", ""
    if entry.get("state") == "queued" and state["_alive"]:
        return "pending", "waiting for a free slot"
    if entry.get("state") == "queued":
        return "gone", "the local scheduler stopped before starting it"
    return "gone", ""


def _now() -> float:
    import time

    return time.time()


def _current_status(run_dir: Path, attempt: dict | None) -> dict | None:
    path = run_dir / "status.json"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    if attempt and mtime < float(attempt.get("submitted_at", 0)) - 1.0:
        return None  # left by an earlier attempt (e.g. a failure that is being retried)
    return read_json(path)


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
