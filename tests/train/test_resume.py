"""Exact resume: after a requested stop, after kill -9, and past a torn checkpoint."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aimscale.train import train
from aimscale.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_model_weights,
)
from aimscale.train.metrics import read_metrics, without_timing
from aimscale.train.runstate import read_status, read_summary

from .conftest import REPO, RUN, STEPS, StopAfter, aimscale_cmd, cli_env, compose_reference_config


def metrics_without_timing(run_dir: Path) -> list[dict]:
    return [without_timing(row) for row in read_metrics(run_dir / "metrics.jsonl")]




@pytest.fixture(scope="module")
def reference(cli_run) -> Path:
    """The uninterrupted CLI run that the interrupted ones must reproduce value for value."""
    return cli_run[0]


def test_stop_then_resume_matches(reference, tmp_path):
    cfg = compose_reference_config(tmp_path)
    stopped = train(cfg, stop_requested=StopAfter(13))
    assert stopped == {"status": "stopped", "step": 13}
    assert checkpoint_path(tmp_path, 13).is_file()  # saved at the stop, off the 8-step grid
    assert read_summary(tmp_path) is None
    assert read_status(tmp_path)["state"] == "stopped"

    summary = train(cfg)
    assert without_timing(summary) == without_timing(read_summary(reference))
    assert metrics_without_timing(tmp_path) == metrics_without_timing(reference)
    assert read_status(tmp_path)["restarts"] == 1
    # done: a third call returns the summary without training
    assert train(cfg) == summary


def test_torn_checkpoint_is_never_loaded(reference, tmp_path):
    cfg = compose_reference_config(tmp_path)
    train(cfg, stop_requested=StopAfter(10))
    good = checkpoint_path(tmp_path, 10)
    # a newer checkpoint cut off mid-write, and a temp file a killed writer left behind
    torn = checkpoint_path(tmp_path, 20)
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    leftover = good.parent / ".step_00000031.pt.abc123.tmp"
    leftover.write_bytes(b"partial")
    assert latest_checkpoint(tmp_path) == good

    train(cfg)
    assert metrics_without_timing(tmp_path) == metrics_without_timing(reference)
    assert torn.with_name(torn.name + ".corrupt").is_file()  # set aside, not deleted
    assert not leftover.exists()


def test_kill_9_then_restart_matches(reference, tmp_path):
    """SIGKILL an `aimscale train` process between checkpoints; the restart must continue from
    the last checkpoint and drop the rows logged after it."""
    args = ["train", *RUN, f"run_dir={tmp_path}"]
    proc = subprocess.Popen(
        aimscale_cmd(*args),
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    killed_at = None
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        saved = [s for s, _ in list_checkpoints(tmp_path)]
        rows = read_metrics(tmp_path / "metrics.jsonl")
        last = rows[-1]["step"] if rows else 0
        # past a checkpoint at 16 or later, a few steps beyond it, before the end
        if saved and saved[-1] >= 16 and last >= saved[-1] + 2 and last < STEPS - 4:
            proc.send_signal(signal.SIGKILL)
            killed_at = last
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert killed_at is not None, f"the run ended before it could be killed: {proc.stderr.read()}"
    assert proc.returncode == -signal.SIGKILL
    assert read_summary(tmp_path) is None
    assert read_status(tmp_path)["state"] == "running"  # what a killed run leaves behind

    restart = subprocess.run(
        aimscale_cmd(*args), env=cli_env(), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert restart.returncode == 0, restart.stderr
    assert metrics_without_timing(tmp_path) == metrics_without_timing(reference)
    assert read_status(tmp_path)["restarts"] == 1


def test_load_model_weights_for_probes(reference, tmp_path):
    import torch

    from aimscale.model import AIM

    cfg, state = load_model_weights(reference, "last")
    model = AIM(cfg.model)
    model.load_state_dict(state)
    images = torch.zeros(2, 1, 28, 28)
    assert model.trunk.features(images, [0, 1]).shape == (2, 49, 32)
    _, early = load_model_weights(reference, 8)  # the kept fraction survives rotation
    assert not torch.equal(
        early["trunk.blocks.0.attn.qkv.weight"], state["trunk.blocks.0.attn.qkv.weight"]
    )
    shutil.copytree(reference, tmp_path / "copy")
    with pytest.raises(FileNotFoundError, match=r"available steps: \[8, 24, 32\]"):
        load_model_weights(tmp_path / "copy", 20)
