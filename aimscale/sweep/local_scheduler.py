"""A detached process that runs a sweep's runs on this machine, at most `max_parallel` at once.

submitit's LocalExecutor starts every task of an array at once; this scheduler submits one work
item at a time through it as slots free up, so each still gets submitit's controller (time-out
signal, requeue on exit code 144). Work items are training runs and probe tasks: a probe task
becomes ready once its training run (`after`) has finished with a summary.json (a run trained
in an earlier launch has no `after`), and ready probe tasks go before waiting training runs, so
a run's probe results follow its training; a probe task whose training did not finish never
starts (`blocked`), unless it owns a sweep baseline, which needs no trained trunk (it then
runs, computes the baseline and marks its runs' probes `blocked`). The state file records,
atomically, each training run under `runs` and each probed result run under `probes`:
`queued` -> `submitted` (the controller pid as job id) -> `finished` (or `blocked`).

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
from aimscale.sweep.probe_job import ProbeJob

POLL_S = 0.5


def main(queue_file: str) -> int:
    import submitit

    queue = read_json(queue_file)
    # share the cores between the runs at once instead of oversubscribing them (torch reads this
    # when each run's process starts); an explicit setting of the user's wins
    threads = max(1, (os.cpu_count() or 1) // max(1, queue["max_parallel"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    state_file = Path(queue["state_file"])
    probe_tasks = list(queue.get("probe_tasks", []))
    state = {"pid": os.getpid(), "started_at": time.time(),
             "runs": {r["run_id"]: {"state": "queued"} for r in queue["runs"]},
             "probes": {r: {"state": "queued"} for t in probe_tasks for r in t["run_ids"]}}
    atomic_write_json(state_file, state)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    waiting = list(queue["runs"])
    trained: dict[str, bool] = {}  # training run id -> finished with a summary.json
    active: dict[tuple, object] = {}  # ("train", run_id) or ("probe", i) -> submitit job
    run_dir_of = {r["run_id"]: r["run_dir"] for r in queue["runs"]}

    def record(section: str, run_ids: list[str], **fields) -> None:
        for run_id in run_ids:
            state[section][run_id].update(fields)
        atomic_write_json(state_file, state)

    def submit(item: dict, job) -> object:
        executor = submitit.LocalExecutor(folder=queue["folder"],
                                          max_num_timeout=queue["max_num_timeout"])
        executor.update_parameters(timeout_min=item["timeout_min"],
                                   tasks_per_node=item["tasks_per_node"],
                                   signal_delay_s=queue["signal_delay_s"])
        submitted = executor.submit(job)
        submitted._cancel_at_deletion = False
        return submitted

    while (waiting or active or probe_tasks) and not stopping:
        for key, job in list(active.items()):
            if job.done():
                active.pop(key)
                if key[0] == "train":
                    trained[key[1]] = Path(run_dir_of[key[1]], "summary.json").exists()
                    record("runs", [key[1]], state="finished", finished_at=time.time())
                else:
                    record("probes", key[2], state="finished", finished_at=time.time())
        for task in list(probe_tasks):  # a probe task whose training failed never starts,
            if task["after"] is not None and trained.get(task["after"]) is False:
                if _owns_baseline(task, queue["probes"]):  # unless it owns a sweep baseline:
                    task["after"] = None  # that needs no training (its runs end `blocked`)
                    continue
                probe_tasks.remove(task)
                record("probes", task["run_ids"], state="blocked",
                       reason=f"training of {task['after']} did not finish")
        while len(active) < queue["max_parallel"]:
            ready = [t for t in probe_tasks if t["after"] is None or trained.get(t["after"])]
            if ready:
                task = ready[0]
                probe_tasks.remove(task)
                job = submit(task, ProbeJob(task["run_dirs"], queue["probes"]))
                active[("probe", id(task), tuple(task["run_ids"]))] = job
                record("probes", task["run_ids"], state="submitted", job_id=job.job_id,
                       submitted_at=time.time())
            elif waiting:
                run = waiting.pop(0)
                job = submit(run, TrainJob(run["run_dir"]))
                active[("train", run["run_id"])] = job
                record("runs", [run["run_id"]], state="submitted", job_id=job.job_id,
                       submitted_at=time.time())
            else:
                break
        if not waiting and not active and probe_tasks and all(
                t["after"] is not None and t["after"] not in trained for t in probe_tasks):
            break  # their training is not run by this scheduler: nothing will make them ready
        time.sleep(POLL_S)
    for job in active.values():  # asked to stop: stop what runs (it checkpoints on USR2 first)
        job.cancel(check=False)
    state["finished_at"] = time.time()
    atomic_write_json(state_file, state)
    return 0


def _owns_baseline(task: dict, probes: list[dict]) -> bool:
    """Whether a probe task's runs include the owner of one of the sweep's baselines."""
    names = {Path(d).name for d in task["run_dirs"]}
    return any((p.get("baseline") or {}).get("owner") in names for p in probes)


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
