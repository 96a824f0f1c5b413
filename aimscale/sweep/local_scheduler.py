"""A detached process that runs a sweep's runs on this machine, at most `max_parallel` at once.

submitit's LocalExecutor starts every task of an array at once; this scheduler submits one run at
a time through it as slots free up, so each run still gets submitit's controller (time-out
signal, requeue on exit code 144). It records each run's state in its state file (atomically):
`queued` -> `submitted` (with the controller pid as job id) -> `finished`.

    python -m aimscale.sweep.local_scheduler QUEUE_FILE
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from aimscale.atomic import atomic_write_json
from aimscale.jsonfiles import read_json
from aimscale.sweep.job import TrainJob

POLL_S = 0.5


def main(queue_file: str) -> int:
    import submitit

    queue = read_json(queue_file)
    # share the cores between the runs at once instead of oversubscribing them (torch reads this
    # when each run's process starts); an explicit setting of the user's wins
    threads = max(1, (os.cpu_count() or 1) // max(1, queue["max_parallel"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    state_file = Path(queue["state_file"])
    state = {"pid": os.getpid(), "started_at": time.time(), "runs": {
        r["run_id"]: {"state": "queued"} for r in queue["runs"]
    }}
    atomic_write_json(state_file, state)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    waiting = list(queue["runs"])
    active: dict[str, object] = {}
    while (waiting or active) and not stopping:
        for run_id, job in list(active.items()):
            if job.done():
                active.pop(run_id)
                state["runs"][run_id].update(state="finished", finished_at=time.time())
                atomic_write_json(state_file, state)
        while waiting and len(active) < queue["max_parallel"]:
            run = waiting.pop(0)
            executor = submitit.LocalExecutor(
                folder=queue["folder"], max_num_timeout=queue["max_num_timeout"]
            )
            executor.update_parameters(
                timeout_min=run["timeout_min"], tasks_per_node=run["tasks_per_node"],
                signal_delay_s=queue["signal_delay_s"],
            )
            job = executor.submit(TrainJob(run["run_dir"], queue["probes"]))
            job._cancel_at_deletion = False
            active[run["run_id"]] = job
            state["runs"][run["run_id"]].update(
                state="submitted", job_id=job.job_id, submitted_at=time.time()
            )
            atomic_write_json(state_file, state)
        time.sleep(POLL_S)
    for job in active.values():  # asked to stop: stop what runs (it checkpoints on USR2 first)
        job.cancel(check=False)
    state["finished_at"] = time.time()
    atomic_write_json(state_file, state)
    return 0


def scheduler_alive(state: dict) -> bool:
    pid = state.get("pid")
    if not pid:
        return True  # just started: the pid is written within a second
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.exists() or b"local_scheduler" in cmdline.read_bytes()


def pid_alive(pid: str | int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie is dead
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
