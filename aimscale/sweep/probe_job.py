"""The callable of a probe task: run the spec's probes on the result runs of one training task.

A sweep's probes are their own jobs (a probe array after the training array, `launch.py`), so
the training allocation's GPUs never wait for them. One probe task probes every result run that
one training task produces (`data_sizes.training_task_of`: a trunk and its cooldown branches),
one after another, through `aimscale.probe.run.probe_run`: results already made by the same
request are kept, so a requeued or relaunched task redoes only what is missing. Several tasks
in the probe class share the trunk's work (torch.distributed, as `probe_run` sets it up);
rank 0 writes.

Heartbeat: while a task probes a run, its rank 0 touches that run's `probe_status.json` every
`HEARTBEAT_S` seconds, so `status` can tell a live probe task from one on a dead node or hung
(`stale`), as for training.

Each result run gets `probe_status.json` (atomic): `running` when the task starts on it, then
`done` (with the result names) or `failed` (with the error), or `blocked` when the run has no
`summary.json` (its training did not finish: nothing of its own is probed, but the sweep
baselines it owns are computed, `baselines.py`). `status` reads it.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from aimscale.atomic import atomic_write_json
from aimscale.sweep.heartbeat import HEARTBEAT_S, touch_if_written_since

PROBE_STATUS = "probe_status.json"


def write_probe_status(run_dir: str | Path, state: str, **fields: Any) -> None:
    atomic_write_json(Path(run_dir) / PROBE_STATUS, {"state": state, "at": time.time(), **fields})


class _Heartbeat:
    """A daemon thread that touches `path` (the probe_status.json of the run being probed)
    every HEARTBEAT_S seconds, once this task has written it (not an earlier task's file)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self._since = time.time()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aimscale-probe-beat",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(HEARTBEAT_S):
            if self.path:
                touch_if_written_since(self.path, self._since)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


@dataclass
class ProbeJob(submitit.helpers.Checkpointable):
    """Probe each run of `run_dirs` (finished training runs) with `probes` (probe config dicts).

    Requeue (time limit, preemption): the same job again; finished results are kept on disk."""

    run_dirs: list[str]
    probes: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self) -> dict[str, Any]:
        rank = 0
        if os.environ.get("SUBMITIT_EXECUTOR"):
            env = submitit.JobEnvironment()
            rank = env.global_rank
            if env.num_tasks > 1 and "RANK" not in os.environ:
                submitit.helpers.TorchDistributedEnvironment().export(
                    set_cuda_visible_devices=False)
        outcome: dict[str, Any] = {}
        failed = []
        beat = _Heartbeat() if rank == 0 and os.environ.get("SUBMITIT_EXECUTOR") else None
        try:
            for run_dir in self.run_dirs:
                if beat is not None:
                    beat.path = os.path.join(run_dir, PROBE_STATUS)
                outcome[run_dir] = self._probe(run_dir, rank)
                if outcome[run_dir]["state"] == "failed":
                    failed.append(run_dir)
        finally:
            if beat is not None:
                beat.stop()
        if failed:  # a non-zero exit: SLURM (and the local scheduler) see the task failed
            raise RuntimeError(f"probes failed on {len(failed)} run(s): "
                               + "; ".join(f"{d}: {outcome[d]['error']}" for d in failed))
        return outcome

    def _probe(self, run_dir: str, rank: int) -> dict[str, Any]:
        from aimscale.probe.run import probe_run
        from aimscale.sweep.baselines import run_baseline_probe

        write = rank == 0
        blocked = not (Path(run_dir) / "summary.json").exists()
        started = time.time()
        if write and not blocked:
            write_probe_status(run_dir, "running", probes=self._run_probes(), started_at=started)
        names = []
        try:
            for probe in self.probes:
                if "baseline" in probe:  # a sweep baseline: only its owner run computes it,
                    # whether or not its training finished (the baseline does not use it)
                    names += [r["name"] for r in run_baseline_probe(run_dir, probe)]
                elif not blocked:
                    names += [r["name"] for r in probe_run(run_dir, dict(probe))]
        except Exception as err:  # noqa: BLE001 - recorded for `status`, then the task fails
            message = f"{type(err).__name__}: {err}".splitlines()[0][:500]
            if write:
                write_probe_status(run_dir, "failed", probes=self._run_probes(), error=message,
                                   traceback=traceback.format_exc()[-4000:])
            return {"state": "failed", "error": message}
        if blocked:
            reason = "training did not finish (no summary.json): nothing probed"
            if write:
                write_probe_status(run_dir, "blocked", reason=reason, baselines=names)
            return {"state": "blocked", "reason": reason}
        if write:
            write_probe_status(run_dir, "done", probes=self._run_probes(), results=names,
                               started_at=started)
        return {"state": "done", "results": names}

    def _run_probes(self) -> list[dict[str, Any]]:
        """The spec's own probe entries (what `status` compares with), without the sweep's
        baselines, which go to their own directories."""
        return [p for p in self.probes if "baseline" not in p]

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """submitit's contract: requeue this same task; finished results are kept on disk."""
        return submitit.helpers.DelayedSubmission(ProbeJob(list(self.run_dirs),
                                                           list(self.probes)))
