"""What SLURM says about our jobs: one `squeue` (and, when accounting works, one `sacct`) call.

Job ids are submitit's: `123_4` for task 4 of array 123, `123` for a single job.
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from dataclasses import dataclass

DEFAULT_MAX_ARRAY_SIZE = 1000
# SLURM states after which the job will not run again (a requeued job goes back to PENDING)
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
            "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}
PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESIZING",
           "SUSPENDED", "STOPPED"}


@dataclass(frozen=True)
class JobView:
    job_id: str
    state: str  # SLURM's state name, e.g. PENDING, RUNNING, COMPLETED, FAILED
    reason: str = ""


def available() -> bool:
    return shutil.which("squeue") is not None and shutil.which("sbatch") is not None


def _run(cmd: list[str], timeout: float = 30) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def max_array_size() -> int:
    """Most tasks one array may have: `MaxArraySize` from `scontrol show config`, else 1000."""
    text = _run(["scontrol", "show", "config"]) if shutil.which("scontrol") else None
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", text or "", re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def query(job_ids: list[str]) -> dict[str, JobView]:
    """SLURM's view of `job_ids` (unknown ids are absent): squeue, then sacct for the rest."""
    if not job_ids or not available():
        return {}
    wanted = set(job_ids)
    views: dict[str, JobView] = {}
    # squeue knows queued, running and recently finished jobs (MinJobAge); -r: one line per task
    text = _run(["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(),
                 "-o", "%i|%T|%r"])
    for line in (text or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0] in wanted:
            views[parts[0]] = JobView(parts[0], parts[1], parts[2] if len(parts) > 2 else "")
    missing = sorted(wanted - set(views))
    if missing and shutil.which("sacct"):
        arrays = sorted({j.split("_")[0] for j in missing})
        text = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(arrays), "-o", "JobID,State"])
        for line in (text or "").splitlines():
            job_id, _, state = line.partition("|")
            if job_id in wanted and job_id not in views:
                views[job_id] = JobView(job_id, state.split()[0] if state else "UNKNOWN")
    return views
