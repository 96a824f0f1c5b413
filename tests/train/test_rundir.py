"""Claiming the run directory: one writer at a time, only empty or aimscale run directories, the
run's own config, damaged files refused before training, stale temp files removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aimscale.cli import main
from aimscale.train import train
from aimscale.train.metrics import read_metrics
from aimscale.train.rundir import RunRefused
from aimscale.train.runstate import read_summary

from .conftest import REPO, SYNTHETIC, TINY, StopAfter, aimscale_cmd, cli_env, compose_run

SHORT = ["train.steps=4", "train.log_every=1", "train.checkpoint_every=2"]




def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `root` with its mtime and bytes: "touch nothing" means this is equal."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def train_cli(capsys, run_dir: Path, *extra: str) -> tuple[int, str]:
    code = main(["train", *TINY, *SYNTHETIC, *SHORT, f"run_dir={run_dir}", *extra])
    return code, capsys.readouterr().err


# ---- one writer ----------------------------------------------------------------------------

def _wait_for_rows(path: Path, rows: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_bytes().count(b"\n") >= rows:
            return
        if proc.poll() is not None:
            pytest.fail(f"the first trainer ended early: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    pytest.fail(f"no {rows} metrics rows after {timeout} s")


def test_second_trainer_is_refused_and_a_killed_holder_releases_the_lock(tmp_path):
    """Real processes: trainer A runs (then is frozen with SIGSTOP, lock held); trainer B on the
    same run dir exits 2 naming A; after `kill -9` of A, trainer C resumes and finishes."""
    run_dir = tmp_path / "run"
    args = ["train", *TINY, *SYNTHETIC, "train.steps=60", "train.log_every=1",
            "train.checkpoint_every=5", f"run_dir={run_dir}"]
    first = subprocess.Popen(aimscale_cmd(*args), env=cli_env(), cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_rows(run_dir / "metrics.jsonl", 6, first)
        os.kill(first.pid, signal.SIGSTOP)  # holds the lock, writes nothing more
        before = snapshot(run_dir)
        second = subprocess.run(aimscale_cmd(*args), env=cli_env(), cwd=REPO, text=True,
                                capture_output=True, timeout=180)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"pid {first.pid} on " in second.stderr
        assert "Traceback" not in second.stderr
        assert snapshot(run_dir) == before  # the refused trainer wrote nothing
    finally:
        first.kill()  # SIGKILL: the kernel releases the lock
        first.communicate()
    third = subprocess.run(aimscale_cmd(*args), env=cli_env(), cwd=REPO, text=True,
                           capture_output=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == list(range(1, 61))
    assert json.loads(third.stdout.splitlines()[-1])["steps"] == 60


# ---- only our own directories ----------------------------------------------------------------

def test_foreign_directory_is_refused_untouched(tmp_path, capsys):
    foreign = tmp_path / "results"
    (foreign / "checkpoints").mkdir(parents=True)
    (foreign / "metrics.jsonl").write_text('{"epoch": 1, "acc": 0.5}\n')
    (foreign / "checkpoints" / "step_00000005.pt").write_bytes(b"someone else's weights")
    (foreign / "notes.txt").write_text("keep me\n")
    before = snapshot(foreign)
    code, err = train_cli(capsys, foreign)
    assert code == 2
    assert "not an aimscale run directory" in err and "nothing in it was changed" in err
    assert snapshot(foreign) == before
    assert sorted(p.name for p in foreign.iterdir()) == ["checkpoints", "metrics.jsonl",
                                                        "notes.txt"]


def test_foreign_config_yaml_is_refused_untouched(tmp_path, capsys):
    foreign = tmp_path / "hydra_out"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("lr: 0.1\nepochs: 3\n")
    before = snapshot(foreign)
    code, err = train_cli(capsys, foreign)
    assert code == 2
    assert "config.yaml that is not an aimscale run config" in err
    assert snapshot(foreign) == before


def test_empty_directory_and_interrupted_first_start_are_new_runs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train(compose_run(empty, *SHORT))["steps"] == 4
    cut_short = tmp_path / "cut_short"  # a first start killed while writing config.yaml
    cut_short.mkdir()
    (cut_short / ".lock").write_text("pid 1 on gone since then\n")
    (cut_short / ".config.yaml.k3j2h1g0.tmp").write_text("mod")
    assert train(compose_run(cut_short, *SHORT))["steps"] == 4


# ---- the run's own config --------------------------------------------------------------------

def test_changed_config_on_a_finished_run_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    summary = train(compose_run(run_dir, *SHORT))
    code, err = train_cli(capsys, run_dir, "model.depth=3")
    assert code == 2
    assert "holds a run with a different config" in err
    error_file = run_dir / "error.txt"
    assert f"also in {error_file}" in err
    assert "holds a run with a different config" in error_file.read_text()
    assert read_summary(run_dir) == summary  # the finished run is intact


def test_changed_config_on_an_unfinished_run_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(compose_run(run_dir, *SHORT), stop_requested=StopAfter(1))["status"] == "stopped"
    before = snapshot(run_dir / "checkpoints")
    code, err = train_cli(capsys, run_dir, "model.depth=3")
    assert code == 2
    assert "holds a run with a different config" in err
    assert (run_dir / "error.txt").is_file()
    assert snapshot(run_dir / "checkpoints") == before


# ---- damaged files: found before training --------------------------------------------------

def test_corrupt_metrics_line_is_refused_before_training(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(compose_run(run_dir, *SHORT), stop_requested=StopAfter(3))
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]))
    status_before = (run_dir / "status.json").read_bytes()
    checkpoints_before = snapshot(run_dir / "checkpoints")
    code, err = train_cli(capsys, run_dir)
    assert code == 2
    assert f"{metrics}, line 2: corrupt line" in err
    assert "Traceback" not in err
    assert (run_dir / "status.json").read_bytes() == status_before  # nothing ran
    assert snapshot(run_dir / "checkpoints") == checkpoints_before
    assert metrics.read_bytes().count(b"garbage") == 1


def test_torn_last_metrics_line_is_trimmed_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_run(run_dir, *SHORT)
    train(cfg, stop_requested=StopAfter(3))
    with open(run_dir / "metrics.jsonl", "ab") as handle:
        handle.write(b'{"step": 4, "lo')  # what a kill mid-write leaves
    assert train(cfg)["steps"] == 4
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]


def test_unreadable_summary_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(compose_run(run_dir, *SHORT))
    (run_dir / "summary.json").write_bytes(b"")
    code, err = train_cli(capsys, run_dir)
    assert code == 2
    assert "summary.json: is empty" in err


# ---- stale temp files ----------------------------------------------------------------------

def test_stale_atomic_temp_files_are_removed_at_start(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_run(run_dir, *SHORT)
    train(cfg, stop_requested=StopAfter(2))
    stale = [
        run_dir / ".status.json.ab12cd34.tmp",
        run_dir / ".summary.json.x_y9z8w7.tmp",
        run_dir / "checkpoints" / ".step_00000003.pt.q1w2e3r4.tmp",
    ]
    for path in stale:
        path.write_bytes(b"partial")
    kept = run_dir / "notes.tmp"  # not a temp name of ours
    kept.write_text("mine")
    assert train(cfg)["steps"] == 4
    assert [p for p in stale if p.exists()] == []
    assert kept.read_text() == "mine"


def test_refusals_raise_in_process(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("a,b\n")
    with pytest.raises(RunRefused, match="not an aimscale run directory"):
        train(compose_run(foreign, *SHORT))
