"""Tiny runs shared by the training tests (seconds each on one shared CPU thread)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

# width 32, 2 blocks, a 1-block head of width 32 on 28×28 images (49 patches of 4×4);
# batch 16 in micro-batches of 8, so gradient accumulation is always exercised
TINY_SHAPE = [
    "model.width=32",
    "model.depth=2",
    "model.heads=2",
    "model.head_width=32",
    "model.head_depth=1",
    "train.batch_size=16",
    "train.micro_batch_size=8",
]
# ... without progress lines or the prepare step, and a small eval
TINY = [
    *TINY_SHAPE,
    "train.eval_images=32",
    "train.prepare_images=0",
    "logging.progress=none",
]
SYNTHETIC = ["data=synthetic", "data.num_images=400", "data.val_images=64"]
FASHION = ["data.num_images=2000", "data.val_images=200"]


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # session scope: module-scoped run fixtures must train with one thread too
    torch.set_num_threads(1)


def compose_run(run_dir: Path, *extra: str):
    from aimscale.config import compose

    return compose([*TINY, *SYNTHETIC, f"run_dir={run_dir}", *extra])


def cli_env() -> dict[str, str]:
    """The environment of `aimscale` subprocesses: one thread, this checkout importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def aimscale_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "aimscale", *args]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        aimscale_cmd(*args),
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# the run every resume test must reproduce: Fashion-MNIST, 32 steps, a row per step
STEPS = 32
RUN = [
    *TINY,
    *FASHION,
    f"train.steps={STEPS}",
    "train.log_every=1",
    "train.eval_every=16",
    "train.checkpoint_every=8",
    "train.keep_checkpoints=2",
    "train.keep_fractions=[0.25]",
]


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`aimscale train` run to completion in a subprocess, uninterrupted."""
    run_dir = tmp_path_factory.mktemp("cli_run")
    result = run_cli("train", *RUN, f"run_dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return run_dir, result


def compose_reference_config(run_dir: Path, *extra: str):
    from aimscale.config import compose

    return compose([*RUN, f"run_dir={run_dir}", *extra])


class StopAfter:
    """stop_requested that turns true after `k` completed steps (it is polled once a step)."""

    def __init__(self, k: int):
        self.k, self.calls = k, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.k
