"""The local executor end to end: throttled launch, relaunch, failure + retry, requeue."""

from __future__ import annotations

import copy
import json
import os
import signal
import time

import pandas as pd
import pytest
from sweep_helpers import TINY_BASE, aimscale, status, wait_all_terminal, wait_for, write_spec

# fails at run time, after launch's checks: a huge learning rate without warmup or clipping
BROKEN = ["optim.lr=1e6", "optim.warmup_fraction=0", "optim.grad_clip=0"]


@pytest.mark.slow  # minutes on 2 cores; run with `pytest -m slow`
def test_throttled_launch_then_relaunch_submits_nothing(tmp_path):
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "local3", sweep_dir,
                      grid={"optim.lr": [1.0e-3, 2.0e-3, 3.0e-3]}, local={"max_parallel": 1})
    start = time.monotonic()
    out = aimscale("launch", str(spec), "--json")
    assert time.monotonic() - start < 30  # returns without waiting for the runs
    assert len(json.loads(out.stdout)["submitted"]) == 3
    most_running, saw_pending = 0, False
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        st = status(sweep_dir)
        most_running = max(most_running, st["counts"]["running"])
        saw_pending |= st["counts"]["pending"] > 0
        if st["counts"]["done"] + st["counts"]["failed"] == 3:
            break
        time.sleep(1)
    assert st["counts"]["done"] == 3, st
    assert most_running == 1 and saw_pending  # max_parallel=1: one at a time, others queued
    again = json.loads(aimscale("launch", str(spec), "--json").stdout)
    assert again["submitted"] == [] and set(again["skipped"].values()) == {"done"}
    aimscale("collect", str(sweep_dir))
    runs = pd.read_csv(sweep_dir / "collect" / "runs.csv")
    curves = pd.read_csv(sweep_dir / "collect" / "curves.csv")
    assert len(runs) == 3 and set(runs["status"]) == {"done"}
    assert sorted(runs["optim.lr"]) == [1.0e-3, 2.0e-3, 3.0e-3]
    assert runs["final_loss"].notna().all() and (runs["total_flops"] > 0).all()
    assert len(curves) == 30 and curves["step"].max() == 10


def test_failure_shows_and_retry_resubmits_only_it(tmp_path):
    sweep_dir = tmp_path / "sweep"
    base = copy.deepcopy(TINY_BASE)
    base["train"]["steps"] = 5
    spec = write_spec(tmp_path / "s.yaml", "fail", sweep_dir, base=base,
                      variants={"ok": [], "broken": BROKEN}, local={"max_parallel": 2})
    aimscale("launch", str(spec))
    st = wait_all_terminal(sweep_dir, 300)
    by_state = {r["run_id"].split("-")[0]: r for r in st["runs"]}
    assert by_state["variantok"]["state"] == "done"
    assert by_state["variantbroken"]["state"] == "failed"
    assert "training diverged at step" in by_state["variantbroken"]["error"]
    text = aimscale("status", str(sweep_dir), check=False)
    assert text.returncode == 1 and "training diverged" in text.stdout
    plain = json.loads(aimscale("launch", str(spec), "--json").stdout)
    assert plain["submitted"] == []  # failed runs only come back with --retry-failed
    retry = json.loads(aimscale("launch", str(spec), "--retry-failed", "--json").stdout)
    assert [r.split("-")[0] for r in retry["submitted"]] == ["variantbroken"]
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    attempts = {k.split("-")[0]: len(v["attempts"]) for k, v in manifest["runs"].items()}
    assert attempts == {"variantok": 1, "variantbroken": 2}
    st = wait_all_terminal(sweep_dir, 300)
    assert sorted(r["state"] for r in st["runs"]) == ["done", "failed"]


def test_timeout_requeues_and_resumes(tmp_path):
    """A 24 s limit with USR2 12 s before it: the run stops at a step boundary, submitit's local
    controller requeues it (exit code 144) and it resumes from its checkpoint, twice."""
    sweep_dir = tmp_path / "sweep"
    base = copy.deepcopy(TINY_BASE)
    base["train"].update(steps=5000, checkpoint_every=5000, eval_every=5000, log_every=1)
    spec = write_spec(tmp_path / "s.yaml", "requeue", sweep_dir, base=base,
                      resources={"classes": {"tiny": {"time_min": 0.4}},
                                 "signal_delay_s": 12, "max_num_timeout": 30})
    aimscale("launch", str(spec))
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    scheduler_pid = manifest["launches"][-1]["arrays"][0]["scheduler_pid"]
    try:
        seen_steps = []

        def restarted_twice():
            (run,) = status(sweep_dir)["runs"]
            if run["step"]:
                seen_steps.append(run["step"])
            return run if run["restarts"] >= 2 and run["state"] == "running" else None

        run = wait_for(restarted_twice, 240, 1.0, "two requeues")
        stopped = json.loads((sweep_dir / run["run_id"] / "status.json").read_text())
        assert stopped["restarts"] >= 2
        lines = (sweep_dir / run["run_id"] / "metrics.jsonl").read_text().splitlines()
        steps = [json.loads(line)["step"] for line in lines]
        assert steps == list(range(1, len(steps) + 1))  # no step lost or repeated on resume
        assert max(seen_steps) > 0 and seen_steps == sorted(seen_steps)  # progress carries on
        log = next((sweep_dir / ".submitit" / "local").glob("*_0_log.err")).read_text()
        assert log.count("stopped at a step boundary; requeueing") >= 2
    finally:
        os.killpg(scheduler_pid, signal.SIGKILL)  # the scheduler, its controllers, their tasks


def test_a_baseline_is_computed_even_when_its_owners_training_fails(tmp_path):
    """The raw-pixel and untrained baselines need no trained trunk: the run that owns them (the
    cheapest, here the broken one) fails, its probe task still runs and computes them, and its
    own probes end `blocked`; the other run is probed as usual."""
    sweep_dir = tmp_path / "sweep"
    base = copy.deepcopy(TINY_BASE)
    base["train"]["steps"] = 5
    probe = {"kind": "linear", "dataset": "synthetic", "limit_train": 64, "limit_test": 32,
             "epochs": 1, "batch_size": 32}
    spec = write_spec(tmp_path / "s.yaml", "owner", sweep_dir, base=base,
                      variants={"broken": BROKEN, "ok": ["train.steps=8"]},
                      probe=[probe], baselines=["pixels", "untrained"],
                      local={"max_parallel": 2})
    plan = json.loads(aimscale("plan", str(spec), "--json").stdout)
    broken = next(r["run_id"] for r in plan["runs"] if r["run_id"].startswith("variantbroken"))
    assert {b["owner"] for b in plan["baselines"]} == {broken}  # the cheapest task owns both
    aimscale("launch", str(spec))

    def probes_ended():
        st = status(sweep_dir)
        ended = all(r["probe"] in ("done", "blocked", "failed") for r in st["runs"])
        return st if ended else None

    st = wait_for(probes_ended, 300, 2.0, "the probe tasks to end")
    by_kind = {r["run_id"].split("-")[0]: r for r in st["runs"]}
    assert (by_kind["variantbroken"]["state"], by_kind["variantbroken"]["probe"]) == (
        "failed", "blocked")
    assert (by_kind["variantok"]["state"], by_kind["variantok"]["probe"]) == ("done", "done")
    aimscale("collect", str(sweep_dir))
    runs = pd.read_csv(sweep_dir / "collect" / "runs.csv")
    rows = runs[runs["features"].isin(["pixels", "untrained"])].set_index("features")
    assert sorted(rows.index) == ["pixels", "untrained"]
    assert rows["probe.linear_last.top1"].between(0.0, 1.0).all()
    assert set(rows["baseline_owner"]) == {broken}
