"""Turn groups of runs into submitit job arrays: one array per resource class (split at the
cluster's MaxArraySize), on SLURM or, through the local scheduler, on this machine; and the
probe arrays that follow them (`ProbeArray`: one probe task per training task)."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimscale.sweep.job import TrainJob
from aimscale.sweep.probe_job import ProbeJob
from aimscale.sweep.resources import ResourceClass, ResourcePolicy

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class ArrayRequest:
    """One sbatch call: runs sharing a resource class."""

    resource: ResourceClass
    run_ids: list[str]
    run_dirs: list[str]


@dataclass
class ProbeArray:
    """One sbatch of probe tasks (the probe resource class). Task i probes the result runs
    `run_ids[i]` of one training task. With `after` (a training array submitted in the same
    launch, the same task order) task i starts only once training task i succeeded (SLURM
    `aftercorr`); without it the runs are trained already."""

    resource: ResourceClass
    run_ids: list[list[str]]
    run_dirs: list[list[str]]
    train_ids: list[str]  # per task: the run id of its training task (`training_task_of`)
    after: ArrayRequest | None = None


def split_arrays(
    groups: dict[str, list[tuple[str, str]]],
    classes: dict[str, ResourceClass],
    max_array_size: int,
) -> list[ArrayRequest]:
    """`groups`: class name -> [(run_id, run_dir)]; arrays of at most `max_array_size` tasks."""
    arrays = []
    for name, runs in groups.items():
        for start in range(0, len(runs), max_array_size):
            part = runs[start : start + max_array_size]
            arrays.append(ArrayRequest(classes[name], [r for r, _ in part], [d for _, d in part]))
    return arrays


def slurm_parameters(resource: ResourceClass, policy: ResourcePolicy, job_name: str,
                     code_root: str | Path = PACKAGE_ROOT) -> dict:
    """submitit SlurmExecutor parameters for one class (None values are left out); the job
    imports aimscale from `code_root` (the launch's code snapshot)."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "nodes": resource.nodes,
        "ntasks_per_node": resource.ranks_per_node,
        "cpus_per_task": resource.cpus_per_task,
        "time": math.ceil(resource.time_min),
        "signal_delay_s": policy.signal_delay_s,
        "array_parallelism": policy.array_parallelism,
        "partition": resource.partition,
        "account": resource.account,
        "qos": resource.qos,
        "constraint": resource.constraint,
        "gpus_per_node": resource.gpus_per_node or None,
        "mem": f"{int(resource.mem_gb * 1024)}M" if resource.mem_gb else None,
        # the job imports aimscale from code_root even when it is not pip-installed, never from
        # the working directory (PYTHONSAFEPATH: `python -m` does not prepend it to sys.path)
        "setup": [f"export PYTHONPATH={code_root}${{PYTHONPATH:+:$PYTHONPATH}}",
                  "export PYTHONSAFEPATH=1"],
    }
    return {k: v for k, v in params.items() if v is not None}


def submit_slurm(array: ArrayRequest, policy: ResourcePolicy, folder: Path, job_name: str,
                 code_root: str | Path = PACKAGE_ROOT) -> list[str]:
    """One sbatch for the training array; returns the job ids (`<array>_<index>`) in run
    order."""
    return _sbatch_array(array.resource, policy, folder, job_name,
                         [TrainJob(run_dir) for run_dir in array.run_dirs], code_root)


def submit_probe_slurm(array: ProbeArray, policy: ResourcePolicy, folder: Path, job_name: str,
                       probes: list[dict], after_array_id: str | None,
                       code_root: str | Path = PACKAGE_ROOT) -> list[str]:
    """One sbatch for the probe array, each task after the training task of the same index in
    array `after_array_id` (`aftercorr`: it starts only if that one exited 0; a task whose
    training failed is cancelled by SLURM, `--kill-on-invalid-dep`). Job ids in task order."""
    dependency = f"aftercorr:{after_array_id}" if after_array_id else None
    return _sbatch_array(array.resource, policy, folder, job_name,
                         [ProbeJob(list(dirs), probes) for dirs in array.run_dirs], code_root,
                         dependency)


def _sbatch_array(resource: ResourceClass, policy: ResourcePolicy, folder: Path, job_name: str,
                  jobs: list, code_root: str | Path, dependency: str | None = None) -> list[str]:
    import submitit

    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=policy.max_num_timeout)
    params = slurm_parameters(resource, policy, job_name, code_root)
    if dependency:
        params.update(dependency=dependency,
                      additional_parameters={"kill-on-invalid-dep": "yes"})
    executor.update_parameters(**params)
    submitted = []
    with executor.batch():
        for job in jobs:
            submitted.append(executor.submit(job))
    return [job.job_id for job in submitted]


def start_local_scheduler(sweep_dir: Path, arrays: list[ArrayRequest], policy: ResourcePolicy,
                          max_parallel: int, probes: list[dict],
                          code_root: str | Path = PACKAGE_ROOT,
                          probe_arrays: list[ProbeArray] = ()) -> tuple[int, Path]:
    """Start the detached local scheduler for these runs and probe tasks, importing aimscale
    from `code_root`; return (its pid, its state file)."""
    import subprocess

    from aimscale.atomic import atomic_write_json

    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    local_dir = sweep_dir / "local"
    queue_file = local_dir / f"queue-{stamp}.json"
    state_file = local_dir / f"scheduler-{stamp}.json"
    runs = []
    for array in arrays:
        for run_id, run_dir in zip(array.run_ids, array.run_dirs, strict=True):
            runs.append({
                "run_id": run_id, "run_dir": run_dir,
                "tasks_per_node": array.resource.ranks_per_node,
                "timeout_min": array.resource.time_min,
            })
    probe_tasks = []
    for array in probe_arrays:
        for run_ids, run_dirs, train_id in zip(array.run_ids, array.run_dirs, array.train_ids,
                                               strict=True):
            probe_tasks.append({
                "run_ids": run_ids, "run_dirs": run_dirs,
                "after": train_id if array.after is not None else None,
                "tasks_per_node": array.resource.ranks_per_node,
                "timeout_min": array.resource.time_min,
            })
    atomic_write_json(queue_file, {
        "max_parallel": max_parallel, "signal_delay_s": policy.signal_delay_s,
        "max_num_timeout": policy.max_num_timeout, "probes": probes, "runs": runs,
        "probe_tasks": probe_tasks,
        "folder": str(sweep_dir / ".submitit" / "local"), "state_file": str(state_file),
    })
    atomic_write_json(state_file, {
        "pid": None, "runs": {r["run_id"]: {"state": "queued"} for r in runs},
        "probes": {r: {"state": "queued"} for t in probe_tasks for r in t["run_ids"]},
    })
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code_root) + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
    env["PYTHONSAFEPATH"] = "1"  # not the working directory first (see slurm_parameters)
    log = open(local_dir / f"scheduler-{stamp}.log", "ab")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        [sys.executable, "-m", "aimscale.sweep.local_scheduler", str(queue_file)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True, cwd=os.getcwd(),
    )
    log.close()
    return process.pid, state_file
