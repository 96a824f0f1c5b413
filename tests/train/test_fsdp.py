"""FSDP2 (`train.strategy=fsdp`): 2 gloo ranks train like 1 rank, write sharded (DCP) checkpoints
that resume exactly (after kill -9 too) and that probes read on one process; every rank exits 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aimscale.train import train
from aimscale.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
)
from aimscale.train.metrics import read_metrics, without_timing
from aimscale.train.runstate import read_status, read_summary

from .conftest import REPO, SYNTHETIC, TINY, StopAfter, cli_env, compose_run

TOLERANCE = 1e-5
DATA = [o if not o.startswith("data.val_images=") else "data.val_images=96" for o in SYNTHETIC]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
# batch 16 = 2 ranks × micro 4 × 2 accumulation steps; a checkpoint every 3 steps
FSDP_RUN = [
    "train.steps=6",
    "train.log_every=1",
    "train.eval_every=3",
    "train.eval_images=96",  # 3 chunks of 32 over 2 ranks: the lockstep filler is exercised
    "train.checkpoint_every=3",
    "model.attention=prefix",
]
RANK_REPORT = Path(__file__).with_name("ddp_rank_report.py")


def _torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *args], env=cli_env(), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def _rows(run_dir: Path) -> list[dict]:
    return read_metrics(run_dir / "metrics.jsonl")


def _assert_rows_close(rows_a: list[dict], rows_b: list[dict]) -> None:
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    for a, b in zip(rows_a, rows_b, strict=True):
        assert a["images_seen"] == b["images_seen"]
        assert ("val_loss" in a) == ("val_loss" in b)
        for key in ("loss", "grad_norm", "val_loss"):
            if key in a:
                assert abs(a[key] - b[key]) < TOLERANCE, (key, a["step"], a[key], b[key])


def _assert_weights_close(run_a: Path, run_b: Path, step: int | str = "last") -> None:
    _, a = load_model_weights(run_a, step)
    _, b = load_model_weights(run_b, step)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=TOLERANCE, msg=name)


@pytest.fixture(scope="module")
def fsdp_pair(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(2-rank FSDP run, its report dir, 1-rank run of the whole batch in one forward)."""
    root = tmp_path_factory.mktemp("fsdp")
    two = root / "two"
    result = _torchrun(str(RANK_REPORT), str(root), *TINY, *DATA, *FSDP_RUN,
                       "train.strategy=fsdp", "train.micro_batch_size=4", f"run_dir={two}")
    assert result.returncode == 0, result.stderr[-3000:]
    one = root / "one"
    train(compose_run(one, *FSDP_RUN, "data.val_images=96", "train.micro_batch_size=16"))
    return two, root, one


def test_two_fsdp_ranks_with_accumulation_match_one_rank(fsdp_pair):
    two, _, one = fsdp_pair
    _assert_rows_close(_rows(one), _rows(two))
    assert [r["step"] for r in _rows(two)] == list(range(1, 7))
    assert [s for s, _ in list_checkpoints(two)] == [3, 6]
    assert all(p.name.endswith(".dcp") and p.is_dir() for _, p in list_checkpoints(two))
    _assert_weights_close(one, two)
    _assert_weights_close(one, two, 3)
    # the whole state, read un-sharded on this process: every rank's data position and RNG
    state = load_checkpoint(checkpoint_path(two, 6))
    assert state["step"] == 6 and len(state["data_ranks"]) == len(state["rng_ranks"]) == 2
    reference = load_checkpoint(checkpoint_path(one, 6))
    # DCP keys the optimiser state by parameter name (the pixel objective has no buffers saved)
    assert state["optimizer"]["state"].keys() == reference["model"].keys()
    for name, moments in state["optimizer"]["state"].items():
        assert moments["exp_avg"].shape == reference["model"][name].shape, name


def test_fsdp_ranks_exit_cleanly_and_rank_1_writes_only_its_shards(fsdp_pair):
    two, report_dir, _ = fsdp_pair
    reports = {r: json.loads((report_dir / f"rank{r}.json").read_text()) for r in (0, 1)}
    shard_write = re.compile(r".*/checkpoints/\.step_\d{8}\.dcp\.[a-z0-9_]+\.tmp(/__1_0\.distcp)?$")
    assert reports[1]["writes"], "the audit hook saw none of rank 1's shard writes"
    for event, path in reports[1]["writes"]:
        assert shard_write.match(path), (event, path)
    assert {"metrics.jsonl", "summary.json", "state.pt"} <= {
        Path(p).name for _, p in reports[0]["writes"]}
    for rank, report in reports.items():
        assert report["status"] == "done"
        assert report["threads_after"] == report["threads_before"], (rank, report)
    assert not [p for p in (two / "checkpoints").iterdir() if p.name.startswith(".")]


def test_probe_trunk_from_fsdp_checkpoint_equals_the_ddp_twin(fsdp_pair):
    from aimscale.probe.features import batch_windows, load_trunk
    from aimscale.probe.windows import resolve_windows

    two, _, one = fsdp_pair
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    windows = resolve_windows("last", 2, None)
    feats = {}
    for run in (one, two):
        trunk = load_trunk(run, 6, torch.device("cpu"))
        feats[run] = batch_windows(trunk, images, windows)
    assert feats[one].shape == (1, 4, 49, 32)
    torch.testing.assert_close(feats[two], feats[one], rtol=0, atol=TOLERANCE)


def test_restore_a_dcp_checkpoint_into_a_plain_model_on_one_process(fsdp_pair):
    """What a branch or a DDP run does with an FSDP run's checkpoint: model and optimiser
    restored un-sharded, without a process group, equal to the whole checkpoint read back."""
    from aimscale.model import AIM
    from aimscale.train.checkpoint import restore_checkpoint
    from aimscale.train.optim import build_optimizer

    two, _, _ = fsdp_pair
    cfg, weights = load_model_weights(two, 3)
    model = AIM(cfg.model)
    optimizer = build_optimizer(model, cfg.optim)
    state = restore_checkpoint(checkpoint_path(two, 3), model, optimizer)
    assert state["step"] == 3 and "model" not in state
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    full = load_checkpoint(checkpoint_path(two, 3))["optimizer"]["state"]
    names = {p: n for n, p in model.named_parameters()}
    restored = {names[p]: s for p, s in optimizer.state.items()}
    assert restored.keys() == full.keys()
    for name, moments in restored.items():
        assert torch.equal(moments["exp_avg_sq"], full[name]["exp_avg_sq"]), name
        assert float(moments["step"]) == 3


def test_one_process_fsdp_resumes_past_torn_dcp_and_rotates(tmp_path):
    """World size 1 has nothing to shard but writes the same `.dcp` directories: a stop, a torn
    final-named directory and a temp directory of a killed writer, then a resume that equals
    the uninterrupted twin; rotation keeps the newest `keep_checkpoints` and the kept steps."""
    run = ["train.steps=10", "train.log_every=1", "train.eval_every=5", "train.checkpoint_every=2",
           "train.keep_checkpoints=2", "train.keep_fractions=[0.2]", "train.strategy=fsdp"]
    twin = tmp_path / "twin"
    train(compose_run(twin, *run))
    assert [s for s, _ in list_checkpoints(twin)] == [2, 8, 10]

    resumed = tmp_path / "resumed"
    cfg = compose_run(resumed, *run)
    assert train(cfg, stop_requested=StopAfter(5)) == {"status": "stopped", "step": 5}
    assert [s for s, _ in list_checkpoints(resumed)] == [2, 4, 5]
    good = checkpoint_path(resumed, 5)
    assert good.name == "step_00000005.dcp" and good.is_dir()
    # a final-named directory with a shard cut short, and a killed writer's temp directory
    torn = checkpoint_path(resumed, 7, sharded=True)
    torn.mkdir()
    for item in good.iterdir():
        data = item.read_bytes()
        (torn / item.name).write_bytes(data[: len(data) // 2] if item.suffix == ".distcp" else data)
    leftover = good.parent / ".step_00000009.dcp.abc123.tmp"
    leftover.mkdir()
    (leftover / "__0_0.distcp").write_bytes(b"partial")
    assert latest_checkpoint(resumed) == good

    summary = train(cfg)
    assert summary["status"] == "done"
    assert [without_timing(r) for r in _rows(resumed)] == [without_timing(r) for r in _rows(twin)]
    assert [s for s, _ in list_checkpoints(resumed)] == [2, 8, 10]
    assert torn.with_name(torn.name + ".corrupt").is_dir()  # set aside, not deleted
    assert not leftover.exists()
    _assert_weights_close(twin, resumed)


# ---- slow: more launches ------------------------------------------------------------------


@pytest.mark.slow
def test_fsdp_with_activation_checkpointing_equals_without(fsdp_pair, tmp_path):
    two, _, _ = fsdp_pair
    ac = tmp_path / "ac"
    result = _torchrun("-m", "aimscale", "train", *TINY, *DATA, *FSDP_RUN,
                       "train.strategy=fsdp", "train.micro_batch_size=4",
                       "train.activation_checkpointing=true", f"run_dir={ac}")
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_rows_close(_rows(two), _rows(ac))
    _assert_weights_close(two, ac)


@pytest.mark.slow
def test_a_pt_checkpoint_restores_into_fsdp_ranks(fsdp_pair, tmp_path):
    """A DDP (`.pt`) checkpoint, e.g. the start of a branch, loads into a sharded model and its
    optimiser: the gathered state equals the file. (Optimiser order: the run's own groups.)"""
    _, _, one = fsdp_pair
    report = tmp_path / "report.json"
    script = Path(__file__).with_name("fsdp_restore_report.py")
    result = _torchrun(str(script), str(one), "3", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(report.read_text())
    assert found["sharded"] and found["step"] == 3 and found["suffix"] == ".pt"
    assert found["weights"] == 0.0 and found["moments"] == 0.0, found


KILL_STEPS = 16
KILL_RUN = [*TINY, *SYNTHETIC, f"train.steps={KILL_STEPS}", "train.log_every=1",
            "train.eval_every=8", "train.checkpoint_every=4", "train.keep_checkpoints=2",
            "train.strategy=fsdp", "train.micro_batch_size=4"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_ranks(run_dir: Path) -> list[subprocess.Popen]:
    """Two `aimscale train` processes joined by the torch.distributed variables (what torchrun or
    a submitit job exports), each a real process we can SIGKILL."""
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = dict(cli_env(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "aimscale", "train", *KILL_RUN, f"run_dir={run_dir}"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return procs


def _wait_ok(procs: list[subprocess.Popen]) -> None:
    for rank, proc in enumerate(procs):
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, (rank, err[-3000:])
        assert "terminate called" not in err


@pytest.mark.slow
def test_kill_9_of_both_fsdp_ranks_then_relaunch_matches_the_twin(tmp_path):
    twin = tmp_path / "twin"
    _wait_ok(_start_ranks(twin))

    run_dir = tmp_path / "killed"
    procs = _start_ranks(run_dir)
    killed_at = None
    deadline = time.monotonic() + 240
    while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
        saved = [s for s, _ in list_checkpoints(run_dir)]
        rows = _rows(run_dir) if (run_dir / "metrics.jsonl").exists() else []
        last = rows[-1]["step"] if rows else 0
        # past a checkpoint, a step or more beyond it, well before the end
        if saved and last >= saved[-1] + 1 and last < KILL_STEPS - 3:
            for proc in procs:
                os.kill(proc.pid, signal.SIGKILL)
            killed_at = last
            break
        time.sleep(0.01)
    for proc in procs:
        proc.communicate(timeout=60)
    assert killed_at is not None, "the run ended before it could be killed"
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2
    assert read_summary(run_dir) is None

    _wait_ok(_start_ranks(run_dir))
    assert [without_timing(r) for r in _rows(run_dir)] == [without_timing(r) for r in _rows(twin)]
    _assert_weights_close(twin, run_dir)
    assert read_status(run_dir)["restarts"] == 1
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
