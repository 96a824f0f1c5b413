"""The heartbeat of a sweep's jobs, training and probe tasks alike: while a job works on a run,
its rank 0 touches that run's status file (`status.json`, `probe_status.json`) every
`HEARTBEAT_S` seconds, and `status` calls a job that SLURM says is running but whose file has
not been touched for `STALE_BEATS` heartbeats `stale` (a dead node or a hung job)."""

from __future__ import annotations

import os
import time

HEARTBEAT_S = 5.0
STALE_BEATS = 6


def touch_if_written_since(path: str, since: float) -> None:
    """Touch `path` if it was written at or after `since` (by this job, not an earlier one)."""
    try:
        if os.stat(path).st_mtime >= since - 1.0:
            os.utime(path)
    except OSError:
        pass


def beat_stopped(beat_s: float | None, age_s: float | None, started_at: float | None) -> bool:
    """Whether a status file last touched `age_s` ago has missed `STALE_BEATS` heartbeats of
    `beat_s`, for a job last started at `started_at` (None: unknown). A file from before that
    start is not beaten yet: the job is starting."""
    return bool(beat_s) and age_s is not None and age_s > STALE_BEATS * beat_s and (
        started_at is None or time.time() - age_s >= started_at - 1.0)
