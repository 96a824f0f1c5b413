"""Cooldown branches: a branch equals a separate wsd run with the same schedule, and a kill
anywhere in the trunk's job (trunk or branch) resumes equal to the uninterrupted family."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aimscale.config import compose, run_id, to_yaml
from aimscale.train import train
from aimscale.train.branches import (
    BranchError,
    branch_config,
    branch_dirs,
    trunk_config,
    write_branch_list,
)
from aimscale.train.checkpoint import list_checkpoints, load_model_weights
from aimscale.train.metrics import read_metrics, without_timing
from aimscale.train.runstate import read_status, read_summary

from .conftest import REPO, SYNTHETIC, TINY, cli_env

# trunk of 32 steps: warmup 4 (0.125), constant, cooldown over the last half (16..32);
# branches of 16 and 24 steps cool down from steps 8 and 12 of the trunk
WSD = ["optim.schedule=wsd", "optim.warmup_fraction=0.125", "optim.cooldown_fraction=0.5",
       "optim.lr=2e-3", "train.log_every=1", "train.eval_every=4", "train.checkpoint_every=8",
       "train.keep_checkpoints=1"]
SIZES = [16, 24, 32]  # steps
# a separate run of n steps with the trunk's 4 warmup steps: warmup_fraction 4/n
TWIN_WARMUP = {16: "0.25", 24: "0.16667"}


def family_dirs(sweep: Path) -> tuple[Path, list[Path]]:
    """Write the trunk and its branches as `launch` does (config.yaml, branches.json)."""
    point = compose([*TINY, *SYNTHETIC, *WSD])
    trunk = trunk_config(point, SIZES)
    trunk_id = run_id(trunk)
    configs = [branch_config(point, trunk_id, max(SIZES), n) for n in SIZES[:-1]]
    branch_ids = [run_id(c) for c in configs]
    for name, cfg in [(trunk_id, trunk), *zip(branch_ids, configs, strict=True)]:
        (sweep / name).mkdir(parents=True, exist_ok=True)
        cfg.run_dir = str(sweep / name)
        (sweep / name / "config.yaml").write_text(to_yaml(cfg))
    write_branch_list(sweep / trunk_id, branch_ids)
    return sweep / trunk_id, [sweep / b for b in branch_ids]


def run_job(trunk: Path) -> None:
    from aimscale.sweep.job import TrainJob

    TrainJob(str(trunk))()  # no SUBMITIT_EXECUTOR: runs inline, trunk then branches


def rows(run_dir: Path) -> list[dict]:
    return [without_timing(r) for r in read_metrics(run_dir / "metrics.jsonl")]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_model_weights(run_dir, "last")[1]


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """The uninterrupted family, and a separate wsd run (twin) for each branch."""
    sweep = tmp_path_factory.mktemp("family")
    trunk, branches = family_dirs(sweep)
    run_job(trunk)
    twins = {}
    for n in SIZES[:-1]:
        twins[n] = sweep / f"twin{n}"
        train(compose([*TINY, *SYNTHETIC, *WSD, f"train.steps={n}",
                       f"optim.warmup_fraction={TWIN_WARMUP[n]}", f"run_dir={twins[n]}"]))
    return trunk, branches, twins


def test_branch_equals_a_separate_run_with_the_same_schedule(family):
    trunk, branches, twins = family
    assert branch_dirs(trunk) == branches
    for branch, n in zip(branches, SIZES[:-1], strict=True):
        ours, theirs = rows(branch), rows(twins[n])
        assert [r["step"] for r in ours] == list(range(1, n + 1))
        assert [r["lr"] for r in ours] == pytest.approx([r["lr"] for r in theirs], rel=1e-12)
        assert [r["loss"] for r in ours] == pytest.approx([r["loss"] for r in theirs], rel=1e-6)
        ours_val = [(r["step"], r["val_loss"]) for r in ours if "val_loss" in r]
        theirs_val = [(r["step"], r["val_loss"]) for r in theirs if "val_loss" in r]
        assert ours_val == pytest.approx(theirs_val, rel=1e-6)
        a, b = weights(branch), weights(twins[n])
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key], b[key], rtol=1e-6, atol=1e-7), key
        # the branch's own files: its checkpoints start after the branch point
        summary, twin = read_summary(branch), read_summary(twins[n])
        point = {16: 8, 24: 12}[n]
        assert summary["branch_of"] == trunk.name and summary["branch_step"] == point
        assert summary["images_seen"] == twin["images_seen"] == n * 16
        assert summary["total_flops"] == twin["total_flops"]  # the equivalent run's
        assert summary["flops_spent"] == twin["total_flops"] * (n - point) / n
        assert all(step > point for step, _ in list_checkpoints(branch))
    # the trunk kept the checkpoints its branches start from, and cooled down itself
    assert {8, 12, 32} <= {s for s, _ in list_checkpoints(trunk)}
    trunk_rows = rows(trunk)
    assert trunk_rows[10]["lr"] == 2e-3 and trunk_rows[-1]["lr"] < 2e-4
    # the branches differ from the trunk after their branch point: a cooldown was trained
    assert rows(branches[0])[:8] == trunk_rows[:8]
    assert rows(branches[0])[8]["loss"] == trunk_rows[8]["loss"]  # same weights at step 8
    assert rows(branches[0])[-1]["loss"] != trunk_rows[15]["loss"]


def test_a_branch_refuses_a_trunk_that_is_not_its_own(family, tmp_path):
    trunk, branches, _ = family
    (tmp_path / trunk.name).mkdir()
    other = compose([*TINY, *SYNTHETIC, *WSD, "optim.lr=1e-3", f"run_dir={tmp_path / trunk.name}"])
    (tmp_path / trunk.name / "config.yaml").write_text(to_yaml(other))
    cfg = compose([*TINY, *SYNTHETIC, *WSD])
    cfg = branch_config(cfg, trunk.name, max(SIZES), 16)
    cfg.run_dir = str(tmp_path / "branch")
    with pytest.raises(BranchError, match=r"optim\.lr \(0\.001 in the trunk, 0\.002 here\)"):
        train(cfg)
    assert read_status(tmp_path / "branch")["state"] == "failed"


# ---- kill -9 anywhere in the trunk's job -----------------------------------------------------

JOB = "import sys; from aimscale.sweep.job import TrainJob; TrainJob(sys.argv[1])()"


def start_job(trunk: Path) -> subprocess.Popen:
    env = cli_env()
    env.pop("SUBMITIT_EXECUTOR", None)
    return subprocess.Popen([sys.executable, "-c", JOB, str(trunk)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def last_step(run_dir: Path) -> int:
    try:
        found = read_metrics(run_dir / "metrics.jsonl")
    except Exception:  # noqa: BLE001 - a file being replaced: try again at the next poll
        return -1
    return found[-1]["step"] if found else 0


def kill_when(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return
        time.sleep(0.005)
    pytest.fail(f"the job ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")


def assert_family_equal(trunk, branches, reference):
    ref_trunk, ref_branches, _ = reference
    for ours, theirs in [(trunk, ref_trunk), *zip(branches, ref_branches, strict=True)]:
        assert rows(ours) == rows(theirs), ours.name
        assert without_timing(read_summary(ours)) == without_timing(read_summary(theirs))
        for key, value in weights(theirs).items():
            assert torch.equal(weights(ours)[key], value), key


def killed_and_resumed(sweep: Path, kills) -> tuple[Path, list[Path]]:
    trunk, branches = family_dirs(sweep)
    for ready in kills:
        kill_when(proc := start_job(trunk), lambda r=ready: r(trunk, branches))
        assert proc.returncode == -signal.SIGKILL
    done = subprocess.run([sys.executable, "-c", JOB, str(trunk)], env=cli_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return trunk, branches


def test_stop_in_a_branch_resumes_equal(family, tmp_path):
    """A requested stop (what a requeue does) inside a branch of a finished trunk: the next
    start resumes from the branch's own checkpoint at the stop and ends equal."""
    import shutil

    from aimscale.config import from_yaml

    from .conftest import StopAfter

    trunk, branches = family_dirs(tmp_path)
    shutil.rmtree(trunk)
    shutil.copytree(family[0], trunk)
    cfg = from_yaml(branches[0] / "config.yaml")
    assert train(cfg, stop_requested=StopAfter(3)) == {"status": "stopped", "step": 11}
    assert [s for s, _ in list_checkpoints(branches[0])] == [11]
    train(cfg)
    assert read_status(branches[0])["restarts"] == 1
    assert rows(branches[0]) == rows(family[1][0])
    assert without_timing(read_summary(branches[0])) == without_timing(
        read_summary(family[1][0]))


@pytest.mark.slow
def test_kill_9_in_the_trunk_and_in_a_branch_resumes_equal(family, tmp_path):
    """Killed past the trunk's checkpoint at 16, then inside the first branch before its own
    first checkpoint (it restarts from the trunk's); every result equals the uninterrupted one."""
    trunk, branches = killed_and_resumed(tmp_path, [
        lambda t, b: 18 <= last_step(t) < 28,
        lambda t, b: 9 <= last_step(b[0]) < 15,
    ])
    assert read_status(trunk)["restarts"] == 1
    assert read_status(branches[0])["restarts"] == 1
    assert_family_equal(trunk, branches, family)


@pytest.mark.slow
def test_kill_9_in_a_branch_after_its_own_checkpoint_resumes_equal(family, tmp_path):
    """Killed in the second branch after its checkpoint at 16: it resumes from its own."""
    trunk, branches = killed_and_resumed(tmp_path, [
        lambda t, b: 18 <= last_step(b[1]) < 23,
    ])
    assert read_status(branches[1])["restarts"] == 1
    assert 16 in {s for s, _ in list_checkpoints(branches[1])} or read_summary(branches[1])
    assert_family_equal(trunk, branches, family)
