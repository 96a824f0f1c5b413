"""TrainJob keeps submitit's public contract: whenever submitit calls `checkpoint()` (in the
main thread, from whatever signal handler or plugin path it uses), training stops at the end of
the current step with a checkpoint saved, and a DelayedSubmission of the same job comes back.
The caller here is a SIGUSR1 handler, not USR2: the job must not depend on which signal
submitit listens to (the old job hooked submitit's private `_usr_sig()` handler instead)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import yaml
from sweep_helpers import ROOT, TINY_BASE

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    from pathlib import Path
    from aimscale.sweep.job import TrainJob

    run_dir = sys.argv[1]
    job = TrainJob(run_dir)
    returned = []

    def handler(signum, frame):  # what submitit's handler does first: ask for the checkpoint
        returned.append(job.checkpoint())

    signal.signal(signal.SIGUSR1, handler)

    def preempt():  # once training is under way, "SLURM" signals the job
        metrics = Path(run_dir, "metrics.jsonl")
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 5):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=preempt, daemon=True).start()
    result = job()
    (delayed,) = returned
    print(json.dumps({"result": result, "function": type(delayed.function).__name__,
                      "run_dir": delayed.function.run_dir}))
""")


def test_checkpoint_stops_at_a_step_boundary_and_resubmits_the_same_job(tmp_path):
    from aimscale.config import compose, to_yaml

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    base = json.loads(json.dumps(TINY_BASE))
    base["train"].update(steps=5000, checkpoint_every=5000, eval_every=5000, log_every=1)
    cfg = compose(base=base)
    cfg.run_dir = str(run_dir)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    env = {"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "1",
           "SUBMITIT_LOCAL_NTASKS": "1", "SUBMITIT_LOCAL_GLOBALID": "0",
           "SUBMITIT_LOCAL_LOCALID": "0", "SUBMITIT_LOCAL_NODEID": "0",
           "SUBMITIT_LOCAL_JOB_NUM_NODES": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir)], cwd=ROOT, text=True,
                         capture_output=True, timeout=120, env={**os.environ, **env,
                                                                "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["function"] == "TrainJob" and report["run_dir"] == str(run_dir)
    stopped = report["result"]
    assert stopped["status"] == "stopped" and 5 <= stopped["step"] < 5000
    status = yaml.safe_load((run_dir / "status.json").read_text())
    assert status["state"] == "stopped" and status["step"] == stopped["step"]
    assert (run_dir / "checkpoints" / f"step_{stopped['step']:08d}.pt").exists()
