"""What SLURM says about our jobs: one `squeue` (and, when accounting works, one `sacct`) call.

Job ids are submitit's: `123_4` for task 4 of array 123, `123` for a single job.
A query that fails (controller down, timeout) raises `SlurmUnavailable`: it never means "the
jobs are gone". Every SLURM job state is mapped explicitly (`KIND`); a state this table does
not know is reported as unknown, never guessed.
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime

DEFAULT_MAX_ARRAY_SIZE = 1000
QUERY_TIMEOUT_S = 30.0

# SLURM 22.05 job states (squeue %T) -> what they mean for a run:
#   pending   queued, our process has not started (again) yet
#   running   our process runs (SIGNALING / RESIZING: still running)
#   suspended our process exists but is paused
#   ending    the job's processes are exiting (the outcome is written, or will be, in seconds)
#   cancelled cancelled (scancel) - it will not run again unless resubmitted
#   gone      ended; it will not run again (a requeued job goes back to PENDING instead)
KIND = {
    "PENDING": "pending", "REQUEUED": "pending", "REQUEUE_FED": "pending",
    "REQUEUE_HOLD": "pending", "RESV_DEL_HOLD": "pending", "CONFIGURING": "pending",
    "RUNNING": "running", "SIGNALING": "running", "RESIZING": "running",
    "SUSPENDED": "suspended", "STOPPED": "suspended",
    "COMPLETING": "ending", "STAGE_OUT": "ending",
    "CANCELLED": "cancelled",
    "COMPLETED": "gone", "FAILED": "gone", "TIMEOUT": "gone", "OUT_OF_MEMORY": "gone",
    "NODE_FAIL": "gone", "PREEMPTED": "gone", "BOOT_FAIL": "gone", "DEADLINE": "gone",
    "SPECIAL_EXIT": "gone", "REVOKED": "gone",
}


class SlurmUnavailable(RuntimeError):
    """A SLURM command did not answer (controller down, timeout, not installed)."""


@dataclass(frozen=True)
class JobView:
    job_id: str
    state: str  # SLURM's state name, e.g. PENDING, RUNNING, COMPLETED, FAILED
    reason: str = ""
    started_at: float | None = None  # when the job (last) started, epoch seconds

    @property
    def kind(self) -> str:
        """pending | running | suspended | ending | cancelled | gone | unknown (see KIND)."""
        return KIND.get(self.state.split()[0].rstrip("+") if self.state else "", "unknown")


def available() -> bool:
    return shutil.which("squeue") is not None and shutil.which("sbatch") is not None


def _run(cmd: list[str], timeout: float = QUERY_TIMEOUT_S) -> str:
    """stdout of `cmd`; SlurmUnavailable (with SLURM's own message) when it fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"`{cmd[0]}` did not answer within {timeout:g} s") from None
    except OSError as err:
        raise SlurmUnavailable(f"`{cmd[0]}` could not run: {err}") from None
    if out.returncode != 0:
        message = (out.stderr.strip() or out.stdout.strip()).splitlines()
        raise SlurmUnavailable(f"`{cmd[0]}` failed (exit {out.returncode}): "
                               f"{message[-1] if message else 'no message'}")
    return out.stdout


def max_array_size() -> int:
    """Most tasks one array may have: `MaxArraySize` from `scontrol show config`, else 1000."""
    try:
        text = _run(["scontrol", "show", "config"]) if shutil.which("scontrol") else ""
    except SlurmUnavailable:
        text = ""
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def check_controller() -> None:
    """SlurmUnavailable unless the commands exist and the controller answers a query."""
    if not available():
        raise SlurmUnavailable("sbatch and squeue are not on PATH (not a SLURM login node)")
    _run(["squeue", "-h", "-u", getpass.getuser(), "-o", "%i"])


def query(job_ids: list[str]) -> dict[str, JobView]:
    """SLURM's view of `job_ids` (ids SLURM no longer knows are absent): squeue, then sacct
    for the rest. SlurmUnavailable when squeue fails: then nothing is known about any job."""
    if not job_ids:
        return {}
    if not available():
        raise SlurmUnavailable("squeue is not on PATH: SLURM cannot be asked from this machine")
    wanted = set(job_ids)
    views: dict[str, JobView] = {}
    # squeue knows queued, running and recently finished jobs (MinJobAge); -r: one line per task
    text = _run(["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(),
                 "-o", "%i|%T|%r|%S"])
    for line in text.splitlines():
        parts = line.strip().split("|") + ["", ""]
        if parts[0] in wanted and parts[1]:
            views[parts[0]] = JobView(parts[0], parts[1], parts[2], _epoch(parts[3]))
    missing = sorted(wanted - set(views))
    if missing and shutil.which("sacct"):
        arrays = sorted({j.split("_")[0] for j in missing})
        try:  # without slurmdbd sacct fails: the jobs squeue forgot are then simply gone
            text = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(arrays), "-o", "JobID,State"])
        except SlurmUnavailable:
            text = ""
        for line in text.splitlines():
            job_id, _, state = line.partition("|")
            if job_id in wanted and job_id not in views:
                views[job_id] = JobView(job_id, state.split()[0] if state else "UNKNOWN")
    return views


def _epoch(text: str) -> float | None:
    """squeue's `%S` (local time, e.g. 2026-12-01T09:39:44; N/A or Unknown when unset)."""
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None


def cancel(job_ids: list[str]) -> None:
    """`scancel` the jobs (one call); SlurmUnavailable when it fails."""
    if job_ids:
        _run(["scancel", *job_ids])
