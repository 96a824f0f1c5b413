"""Probes as their own jobs: after the training task of their run, never inside it.

On the real SLURM test cluster (tests/slurm/start.sh): the probe array depends on the training
array task by task (`aftercorr`); a run whose training fails never has its probe task run
(SLURM cancels it, status says `blocked`), the other run is probed and collected. On the local
executor: probe tasks are separate work items after their run, within max_parallel. Every state
asserted is what `aimscale status --json` reads from squeue and the run files.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess

import pandas as pd
import pytest
from sweep_helpers import TINY_BASE, aimscale, slurm_up, status, wait_for, write_spec

BROKEN = ["optim.lr=1e6", "optim.warmup_fraction=0", "optim.grad_clip=0"]
PROBE = {"kind": "linear", "dataset": "synthetic", "blocks": "last", "epochs": 1,
         "limit_train": 128, "limit_test": 64, "lrs": [0.01], "weight_decays": [0.0],
         "batch_size": 64}
CPU_CLASS = {"classes": {"cpu": {"cpus_per_task": 1, "mem_gb": 2, "time_min": 10}}}
ENDED = ("done", "failed", "blocked", "cancelled")


def short_base() -> dict:
    base = copy.deepcopy(TINY_BASE)
    base["train"].update(steps=5, eval_every=5)
    return base


def watch(sweep_dir, timeout: float) -> tuple[dict, list[tuple[str, str, str]]]:
    """Poll status until every run's training and probes have ended; (last status, every
    (run_id, train, probe) seen on the way)."""
    seen: list[tuple[str, str, str]] = []

    def ended():
        st = status(sweep_dir)
        seen.extend((r["run_id"], r["train"], r["probe"]) for r in st["runs"])
        return st if all(r["train"] in ("done", "failed") and r["probe"] in ENDED
                         for r in st["runs"]) else None

    return wait_for(ended, timeout, 2.0, f"the runs and probes of {sweep_dir}"), seen


def probe_started_after_training(run_dir) -> bool:
    started = json.loads((run_dir / "probe_status.json").read_text())["started_at"]
    return started >= os.stat(run_dir / "summary.json").st_mtime


@pytest.mark.slurm
@pytest.mark.skipif(bool(slurm_up()), reason=slurm_up() or "")
@pytest.mark.parametrize("variants", [
    {"a": [], "broken": BROKEN},
    pytest.param({"a": [], "b": ["optim.lr=2e-3"], "broken": BROKEN}, marks=pytest.mark.slow),
], ids=["ok+broken", "2ok+broken"])
def test_slurm_probe_array_after_training_and_a_failed_training_blocks_its_probe(tmp_path,
                                                                                 variants):
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "probejobs", sweep_dir, base=short_base(),
                      resources=CPU_CLASS, probe=[PROBE], variants=variants)
    ok = [name for name in variants if name != "broken"]
    out = json.loads(aimscale("launch", str(spec), "--executor", "slurm", "--json").stdout)
    runs = {r.split("-")[0].removeprefix("variant"): r for r in out["job_ids"]}
    train_arrays = {j.split("_")[0] for j in out["job_ids"].values()}
    probe_arrays = {j.split("_")[0] for j in out["probe_job_ids"].values()}
    assert len(train_arrays) == len(probe_arrays) == 1 and train_arrays != probe_arrays
    assert out["probe_arrays"] == [{"resource_class": "probe", "tasks": len(variants),
                                    "after_training": True}]
    # the same task index in both arrays: probe task i waits for training task i
    assert {r: j.split("_")[1] for r, j in out["probe_job_ids"].items()} == {
        r: j.split("_")[1] for r, j in out["job_ids"].items()}
    st, seen = watch(sweep_dir, 300)
    for run_id, train, probe in seen:  # never probed before its training is done
        assert probe in ("pending", "blocked") or train == "done", (run_id, train, probe)
    assert any(p == "pending" and t in ("pending", "running") for _, t, p in seen), seen
    by = {r["run_id"]: r for r in st["runs"]}
    for name in ok:
        run = by[runs[name]]
        assert (run["state"], run["train"], run["probe"]) == ("done", "done", "done"), run
        assert run["probe_job_id"] == out["probe_job_ids"][runs[name]]
        assert probe_started_after_training(sweep_dir / runs[name])
    broken = by[runs["broken"]]
    assert (broken["state"], broken["train"], broken["probe"]) == ("failed", "failed",
                                                                    "blocked"), broken
    assert "training failed" in broken["probe_error"]
    assert not (sweep_dir / runs["broken"] / "probe_status.json").exists()  # it never ran
    probe_job = out["probe_job_ids"][runs["broken"]]
    said = wait_for(lambda: subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-j", probe_job.split("_")[0], "-o", "%i|%T|%r"],
        capture_output=True, text=True).stdout.count(f"{probe_job}|CANCELLED|"), 60, 1.0,
        "SLURM to cancel the probe task of the failed run")
    assert said
    text = aimscale("status", str(sweep_dir), check=False)
    assert text.returncode == 1 and "blocked" in text.stdout and "probe job" in text.stdout
    aimscale("collect", str(sweep_dir))
    table = pd.read_csv(sweep_dir / "collect" / "runs.csv").set_index("run_id")
    assert (table.loc[[runs[name] for name in ok], "probe.linear_last.top1"] > 0).all()
    assert table.loc[runs["broken"], "probe_status"] == "blocked"
    assert table.loc[runs["a"], "train_status"] == "done"
    # relaunch: nothing again; --retry-failed: the failed training and its probe only
    again = json.loads(aimscale("launch", str(spec), "--executor", "slurm", "--json").stdout)
    assert again["submitted"] == [] and again["probed"] == [] and again["probe_job_ids"] == {}
    retry = json.loads(aimscale("launch", str(spec), "--executor", "slurm", "--retry-failed",
                                "--dry-run", "--json").stdout)
    assert retry["submitted"] == retry["probed"] == [runs["broken"]]


@pytest.mark.parametrize("lrs", [[1.0e-3], pytest.param([1.0e-3, 2.0e-3],
                                                         marks=pytest.mark.slow)],
                         ids=["1run", "2runs"])
def test_local_probes_run_after_their_run_as_separate_items(tmp_path, lrs):
    """max_parallel 1: train a, probe a[, train b, probe b] (a ready probe goes first), each
    its own submitit job; the results are collected; a relaunch probes only what is not done."""
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "localprobes", sweep_dir, base=short_base(),
                      probe=[PROBE], grid={"optim.lr": lrs}, local={"max_parallel": 1})
    out = json.loads(aimscale("launch", str(spec), "--json").stdout)
    assert sorted(out["probed"]) == sorted(out["submitted"]) and len(out["submitted"]) == len(lrs)
    st, seen = watch(sweep_dir, 300)
    for run_id, train, probe in seen:
        assert probe == "pending" or train == "done", (run_id, train, probe)
    assert all((r["train"], r["probe"]) == ("done", "done") for r in st["runs"]), st
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    (state_file,) = {e["probe_attempts"][-1]["scheduler_state"]
                     for e in manifest["runs"].values()}
    local = wait_for(lambda: (lambda s: s if "finished_at" in s else None)(
        json.loads(open(state_file).read())), 60, 0.5, "the local scheduler to finish")
    spans = []  # (start, end, what) of every work item, in the order the scheduler ran them
    for run_id in out["submitted"]:
        train, probe = local["runs"][run_id], local["probes"][run_id]
        assert train["job_id"] != probe["job_id"]  # separate submitit jobs
        assert probe["submitted_at"] >= train["finished_at"]
        assert probe_started_after_training(sweep_dir / run_id)
        spans += [(train["submitted_at"], train["finished_at"], "train"),
                  (probe["submitted_at"], probe["finished_at"], "probe")]
    spans.sort()
    assert [w for *_, w in spans] == ["train", "probe"] * len(lrs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # one at a time
    aimscale("collect", str(sweep_dir))
    table = pd.read_csv(sweep_dir / "collect" / "runs.csv")
    assert (table["probe.linear_last.top1"] > 0).all() and set(table["probe_status"]) == {"done"}
    # a probe whose result went missing: `failed`; only --retry-failed probes it again, and
    # only it: its training is done, so nothing is trained
    lost = out["submitted"][0]
    (sweep_dir / lost / "probe_status.json").unlink()
    st = status(sweep_dir)
    assert {r["run_id"]: r["probe"] for r in st["runs"]}[lost] == "failed"
    plain = json.loads(aimscale("launch", str(spec), "--dry-run", "--json").stdout)
    assert plain["submitted"] == [] and plain["probed"] == []
    retry = json.loads(aimscale("launch", str(spec), "--retry-failed", "--dry-run",
                                "--json").stdout)
    assert retry["submitted"] == [] and retry["probed"] == [lost]
    assert retry["probe_arrays"] == [{"resource_class": "probe", "tasks": 1,
                                      "after_training": False}]
