"""The callable a sweep submits for training: train one run (resuming from its directory).

The spec's probes are not run here: they are their own jobs (`probe_job.py`), after this one.

Requeue through submitit's public protocol only (`submitit.helpers.Checkpointable`): on the
preemption/time-out signal submitit calls `checkpoint()`, dumps the DelayedSubmission it
returns, requeues the job and exits. To make that stop land on a step boundary with a fresh
checkpoint, the work runs in a thread and the main thread only waits (and beats the heartbeat):
`checkpoint()`, called in the main thread, sets the stop flag, waits until `train()` has saved
at the end of the current step and returned `stopped`, then returns a DelayedSubmission of this
same job (all state is on disk). `train()` ORs the flag over ranks, so every rank stops at the
same step; only global rank 0 requeues (submitit calls `checkpoint()` there only), the others
wait to be ended by the requeue. A node-failure rerun of the original pickle resumes the same
way, from the run directory.

Heartbeat: while the job lives, rank 0 touches the run's status.json every `HEARTBEAT_S`
seconds (once this job's trainer has written it), so `status` can tell a live run from one on a
dead node (`stale`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from aimscale.sweep.heartbeat import HEARTBEAT_S, touch_if_written_since

OTHER_RANKS_WAIT_S = 300.0  # ranks > 0 after a stop: the requeue of rank 0 ends them


class StopFlag:
    """`stop_requested` for train(): a callable that turns true when a stop is asked."""

    def __init__(self) -> None:
        self.requested = False

    def set(self, *_: Any) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


@dataclass
class TrainJob(submitit.helpers.Checkpointable):
    """Pre-train the run in `run_dir` (its config.yaml), then its cooldown branches, if any
    (probes are their own jobs: `aimscale.sweep.probe_job`)."""

    run_dir: str

    def __call__(self) -> dict[str, Any]:
        self._flag = StopFlag()
        self._training, self._rank, self._job_id = True, 0, ""
        if not os.environ.get("SUBMITIT_EXECUTOR"):  # called inline (debug executor)
            return self._work()
        env = submitit.JobEnvironment()
        self._rank, self._job_id = env.global_rank, env.job_id
        if env.num_tasks > 1 and "RANK" not in os.environ:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = self._work()
            except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
                outcome["error"] = err

        self._started = time.time()
        self._thread = threading.Thread(target=work, name="aimscale-job", daemon=True)
        self._thread.start()
        while self._thread.is_alive():  # signals (and checkpoint()) run here, between waits
            self._thread.join(HEARTBEAT_S)
            self._beat()
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        if result.get("status") == "stopped" and self._rank != 0:
            time.sleep(OTHER_RANKS_WAIT_S)
        return result

    def _work(self) -> dict[str, Any]:
        """Train the run, then each of its cooldown branches (`branches.json`, written by
        `launch`; a done one returns at once); their probe task follows as its own job. A stop
        ends the job where it is; the requeued job resumes there."""
        from aimscale.config import from_yaml
        from aimscale.train import train
        from aimscale.train.branches import branch_dirs

        result: dict[str, Any] = {}
        for run_dir in [Path(self.run_dir), *branch_dirs(self.run_dir)]:
            self._current = str(run_dir)
            cfg = from_yaml(run_dir / "config.yaml")
            cfg.run_dir = str(run_dir)
            outcome = train(cfg, stop_requested=self._flag)
            result = result or outcome  # the job's result is the trunk's
            if outcome.get("status") == "stopped":
                self._training = False
                return outcome
        self._training = False
        return result

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """submitit's contract (preemption or time-out): stop training at the end of the current
        step (a checkpoint is saved), then requeue this same job; it resumes from disk."""
        thread = getattr(self, "_thread", None)
        if thread is not None and getattr(self, "_training", False):
            self._flag.set()
            while thread.is_alive() and self._training:
                thread.join(1.0)
                self._beat()
        print(f"aimscale: stopped at a step boundary; requeueing job "
              f"{getattr(self, '_job_id', '')}", file=sys.stderr, flush=True)
        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir))

    def _beat(self) -> None:
        """Rank 0: touch status.json if this job's trainer wrote it (not an earlier run's)."""
        if self._rank != 0:
            return
        touch_if_written_since(
            os.path.join(getattr(self, "_current", self.run_dir), "status.json"), self._started)

    def __getstate__(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir}  # never the thread or the flag
