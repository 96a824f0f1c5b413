"""Loader workers (`data.num_workers`) under the trainer's signal handlers: the pool shutdown
after the prepare step ends them, so `aimscale train` finishes (it hung at start-up in 4 of 6
tries when the workers inherited the SIGTERM handler)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from .conftest import REPO, SYNTHETIC, TINY, aimscale_cmd, cli_env

# the prepare step draws its images through its own pool, closed before training starts
WORKER_RUN = [*TINY, *SYNTHETIC, "train.steps=4", "train.prepare_images=64",
              "data.num_workers=2"]
RUN_TIMEOUT_S = 180  # seconds (30 s on a loaded machine); a hang is killed and fails the test

# Installs the trainer's stop handlers, starts a 2-worker stream, and prints each worker's
# signal dispositions from /proc (bit n-1 of SigCgt/SigIgn: caught/ignored signal n), then
# closes the stream and prints how many workers are left.
_DISPOSITIONS = """
import json, multiprocessing, signal, sys
from aimscale.config import compose
from aimscale.data import build_pretrain_data
from aimscale.train.cli import _StopFlag
_StopFlag().install()
cfg = compose(sys.argv[1:])
stream = build_pretrain_data(cfg.data, cfg.model, 0)
stream.next_batch(8)
found = {}
for child in multiprocessing.active_children():
    lines = open(f"/proc/{child.pid}/status").read().splitlines()
    fields = dict(line.split(":\\t") for line in lines if ":\\t" in line)
    found[child.pid] = {k: int(fields[k], 16) for k in ("SigCgt", "SigIgn")}
print(json.dumps(found), flush=True)
stream.close()
print(len(multiprocessing.active_children()))
"""


def _bit(signum: int) -> int:
    return 1 << (signum - 1)


def _run_or_kill(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    """Run `cmd` in its own session; on a hang kill it and its workers (a SIGTERM would only
    request a graceful stop) and fail."""
    proc = subprocess.Popen(
        cmd, env=cli_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{what} hung (killed after {RUN_TIMEOUT_S} s); stdout: {out[-1000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads signal masks from /proc")
def test_workers_leave_stopping_to_the_main_process():
    result = _run_or_kill([sys.executable, "-c", _DISPOSITIONS, *WORKER_RUN], "stream.close()")
    assert result.returncode == 0, result.stderr[-3000:]
    workers, left = result.stdout.splitlines()
    workers = json.loads(workers)
    assert len(workers) == 2 and left == "0"
    for pid, masks in workers.items():
        assert not masks["SigCgt"] & _bit(signal.SIGTERM), pid  # default: SIGTERM ends it
        for signum in (signal.SIGINT, signal.SIGUSR2):  # the main process handles these
            assert masks["SigIgn"] & _bit(signum), (pid, signum)


def _train_with_workers(run_dir) -> subprocess.CompletedProcess:
    cmd = aimscale_cmd("train", *WORKER_RUN, f"run_dir={run_dir}")
    return _run_or_kill(cmd, "aimscale train with 2 workers")


def test_train_with_workers_finishes(tmp_path):
    result = _train_with_workers(tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1])["steps"] == 4


@pytest.mark.slow
def test_train_with_workers_finishes_five_times_in_a_row(tmp_path):
    for attempt in range(5):
        result = _train_with_workers(tmp_path / f"try_{attempt}")
        assert result.returncode == 0, (attempt, result.stderr[-3000:])


# Closes 2-worker streams right after a batch, while the next (prefetched) batch is rendering.
_CLOSE_WHILE_PREFETCHING = """
import sys
from aimscale.config import compose
from aimscale.data import build_pretrain_data
cfg = compose(sys.argv[1:])
for seed in range(150):
    stream = build_pretrain_data(cfg.data, cfg.model, seed)
    stream.next_batch(64)
    stream.close()
print("closed", flush=True)
"""


@pytest.mark.slow
def test_closing_with_a_batch_in_flight_never_hangs():
    """Terminating workers mid-task deadlocked Pool.terminate (its task handler waited on a
    queue lock forever): seen within 150 closes before `close()` waited for the prefetch."""
    result = _run_or_kill([sys.executable, "-c", _CLOSE_WHILE_PREFETCHING, *WORKER_RUN],
                          "closing streams with a prefetch in flight")
    assert result.returncode == 0 and result.stdout.strip() == "closed", result.stderr[-2000:]
