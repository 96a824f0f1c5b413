"""The callable a sweep submits: train one run (resuming from its directory), then its probes.

Requeue design. submitit installs a USR2 handler that calls `checkpoint()`, requeues the job and
exits *inside the signal handler*, i.e. in the middle of a training step: nothing would be saved
at a step boundary. So `TrainJob.__call__` replaces that handler with one that only sets a flag;
`train()` checks the flag after every step (all-reduced over ranks), saves a checkpoint and
returns `{"status": "stopped"}`. Global rank 0 then calls submitit's own handler, now outside any
signal context: it calls `checkpoint()` (a DelayedSubmission of this same object; all state is on
disk), counts time-outs, dumps the pickle, requeues (`scontrol requeue` on SLURM, exit code 144 to
the local controller) and exits. Other ranks wait to be stopped by the requeue. A node-failure
rerun of the original pickle resumes the same way, from the run directory.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StopFlag:
    """`stop_requested` for train(): a callable that turns true when a signal arrives."""

    def __init__(self) -> None:
        self.requested = False

    def set(self, *_: Any) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


@dataclass
class TrainJob:
    """Pre-train the run in `run_dir` (its config.yaml), then run `probes` (probe config dicts)."""

    run_dir: str
    probes: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self) -> dict[str, Any]:
        from aimscale.config import from_yaml
        from aimscale.train import train

        cfg = from_yaml(Path(self.run_dir) / "config.yaml")
        cfg.run_dir = self.run_dir
        flag = StopFlag()
        requeue, rank = self._take_over_signal(flag)
        result = train(cfg, stop_requested=flag)
        if result.get("status") == "stopped":
            if rank == 0 and requeue is not None:
                requeue()  # checkpoint() + requeue + exit; does not return on success
            # other ranks: the requeue stops us; plain runs (debug executor): report and return
            if requeue is not None:
                time.sleep(300)
            return result
        if rank == 0:
            self.run_probes()
        return result

    def run_probes(self) -> list[dict[str, Any]]:
        if not self.probes:
            return []
        from aimscale.probe.run import run_probes

        results = []
        for probe in self.probes:
            results += run_probes(self.run_dir, dict(probe))
        return results

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Requeue this same job: train() resumes from the newest checkpoint on disk."""
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, list(self.probes)))

    @staticmethod
    def _take_over_signal(flag: StopFlag):
        """Inside a submitit job: route USR2 to `flag`; return (submitit's requeue, rank)."""
        if not os.environ.get("SUBMITIT_EXECUTOR"):
            return None, 0
        import submitit

        env = submitit.JobEnvironment()
        if env.num_tasks > 1 and "RANK" not in os.environ:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        signum = env._usr_sig()
        submitit_handler = signal.getsignal(signum)
        signal.signal(signum, flag.set)
        if not callable(submitit_handler):
            return None, env.global_rank

        def requeue() -> None:
            print(f"aimscale: stopped at a step boundary; requeueing job {env.job_id}",
                  file=sys.stderr, flush=True)
            submitit_handler(signum, None)

        return requeue, env.global_rank
