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
import time
from pathlib import Path

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
    st, seen = watch(sweep_dir, 600)
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


def test_probe_states_from_squeue_and_cancel_cancels_both_arrays(tmp_path):
    """squeue replaced by a canned answer (test_slurm_faults_offline.py): training array 7,
    probe array 8 (task i after training task i). Every probe state is read from squeue and the
    run files; `aimscale cancel` scancels the live task of each array."""
    from test_slurm_faults_offline import DONE, RUNNING, cli, fake_slurm, slurm_sweep, squeue_says

    from aimscale.atomic import atomic_write_json
    from aimscale.sweep.manifest import read_manifest, write_manifest

    env = fake_slurm(tmp_path)
    failed = {"status.json": {"state": "failed", "step": 2, "total_steps": 10},
              "error.txt": "training diverged at step 2"}
    probed = {**DONE, "probe_status.json": {"state": "done", "probes": [PROBE]}}
    wrong = {**DONE, "probe_status.json": {"state": "done", "probes": [{"kind": "attentive"}]}}
    broke = {**DONE, "probe_status.json": {"state": "failed", "probes": [PROBE],
                                           "error": "ProbeError: no such data set"}}
    sweep_dir = slurm_sweep(tmp_path, {
        "waiting": RUNNING,   # training runs, its probe task waits for it
        "probing": DONE,      # trained, its probe task runs
        "blocked": failed,    # training failed: SLURM cancelled the probe task
        "done": probed,       # probed with the spec's probes
        "other": wrong,       # probed with other probes: not done, and no probe task yet
        "broke": broke,       # the probe task failed
        "never": failed,      # failed before probes were recorded at all
    })
    manifest = read_manifest(sweep_dir)
    manifest["spec"] = {"probe": [PROBE]}
    for run_id, entry in manifest["runs"].items():  # probe task i after training task i
        index = entry["attempts"][0]["job_id"].split("_")[1]
        if run_id not in ("other", "never"):
            entry["probe_attempts"] = [{"executor": "slurm", "job_id": f"8_{index}",
                                        "submitted_at": entry["attempts"][0]["submitted_at"],
                                        "folder": "x"}]
    write_manifest(sweep_dir, manifest)
    for run_id in ("done", "broke"):  # written by the probe task, after its submission
        path = sweep_dir / run_id / "probe_status.json"
        atomic_write_json(path, json.loads(path.read_text()))
    squeue_says(env, ["7_0|RUNNING|None", "8_0|PENDING|Dependency",
                      "7_1|COMPLETED|None", "8_1|RUNNING|None",
                      "7_2|FAILED|NonZeroExitCode", "8_2|CANCELLED|DependencyNeverSatisfied",
                      "7_3|COMPLETED|None", "8_3|COMPLETED|None",
                      "7_4|COMPLETED|None",
                      "7_5|COMPLETED|None", "8_5|FAILED|NonZeroExitCode",
                      "7_6|FAILED|NonZeroExitCode"])
    out = cli(env, "status", str(sweep_dir), "--json")
    assert out.returncode == 1, out.stderr  # a training and a probe task failed
    st = json.loads(out.stdout)
    got = {r["run_id"]: (r["state"], r["train"], r["probe"]) for r in st["runs"]}
    assert got == {
        "waiting": ("running", "running", "pending"),
        "probing": ("probing", "done", "running"),
        "blocked": ("failed", "failed", "blocked"),
        "done": ("done", "done", "done"),
        "other": ("done", "done", "new"),
        "broke": ("done", "done", "failed"),
        "never": ("failed", "failed", "blocked"),
    }, got
    notes = {r["run_id"]: r["probe_error"] for r in st["runs"]}
    assert "training failed" in notes["blocked"] and "no such data set" in notes["broke"]
    assert st["probe_counts"]["blocked"] == 2 and st["probe_counts"]["done"] == 1
    text = cli(env, "status", str(sweep_dir)).stdout
    assert "probe error: ProbeError: no such data set" in text
    cancel = cli(env, "cancel", str(sweep_dir), "--json")
    assert cancel.returncode == 0, cancel.stderr
    result = json.loads(cancel.stdout)
    assert result["cancelled"] == ["probing", "waiting"]
    assert result["probes_cancelled"] == ["probing", "waiting"]
    assert "scancel 7_0 8_0 8_1" in Path(env["FAKE_SLURM"], "calls").read_text()
    manifest = read_manifest(sweep_dir)
    assert manifest["runs"]["waiting"]["attempts"][-1]["cancelled_at"]
    assert all(manifest["runs"][r]["probe_attempts"][-1]["cancelled_at"]
               for r in ("waiting", "probing"))


def test_probe_resource_class_given_default_and_reserved(tmp_path):
    from aimscale.config import ConfigError
    from aimscale.sweep.resources import parse_resources

    gpu = {"classes": {"big": {"gpus_per_node": 8, "nodes": 4, "mem_gb": 800, "partition": "gpu",
                               "account": "lab", "time_min": 2880, "gpu": "H100-SXM"},
                       "small": {"gpus_per_node": 4, "mem_gb": 400, "partition": "gpu",
                                 "time_min": 600}},
           "rules": [{"max_params": 1.0e8, "class": "small"}, {"class": "big"}]}
    default = parse_resources(gpu).probe_class  # one GPU of the smallest class, its share
    assert (default.name, default.nodes, default.gpus_per_node, default.ranks_per_node,
            default.mem_gb, default.partition, default.time_min) == (
        "probe", 1, 1, 1, 100.0, "gpu", 120.0)
    given = parse_resources({**gpu, "classes": {**gpu["classes"], "probe": {
        "gpus_per_node": 2, "time_min": 30}}})
    assert "probe" not in given.classes  # not a training class
    assert (given.probe_class.gpus_per_node, given.probe_class.time_min) == (2, 30.0)
    try:
        parse_resources({"classes": {"probe": {}}, "rules": [{"class": "probe"}]})
    except ConfigError as err:
        assert "reserved for the probe tasks" in str(err)
    else:
        raise AssertionError("a rule assigning training to the probe class was accepted")
    spec = write_spec(tmp_path / "s.yaml", "planprobe", tmp_path / "sweep", probe=[PROBE],
                      resources={"classes": {"cpu": {"cpus_per_task": 1, "mem_gb": 2},
                                             "probe": {"cpus_per_task": 2, "time_min": 15}}})
    text = aimscale("plan", str(spec)).stdout
    assert "probes: 1 task(s) on class probe (resources.classes.probe)" in text
    assert "15 min" in text
    plan = json.loads(aimscale("plan", str(spec), "--json").stdout)
    assert plan["probe_resource_class"]["cpus_per_task"] == 2
    assert plan["probe_resource_class"]["tasks"] == 1
    bad = write_spec(tmp_path / "b.yaml", "bad", tmp_path / "sweep",
                     resources={"classes": {"probe": {}}, "rules": [{"class": "probe"}]})
    out = aimscale("plan", str(bad), check=False)
    assert out.returncode == 2 and "reserved for the probe tasks" in out.stderr


def test_a_later_launch_probes_a_failed_owner_whose_baseline_is_missing(tmp_path):
    """A launch submits a probe task for the owner of a missing baseline even when its training
    failed (SLURM never starts a probe task after a failed training); none once it exists."""
    from aimscale.sweep.plan import build_plan
    from aimscale.sweep.probe_tasks import select_probe_arrays
    from aimscale.sweep.spec import parse_spec
    from aimscale.sweep.state import RunState

    probe = {"kind": "linear", "dataset": "synthetic", "limit_train": 64, "limit_test": 32}
    spec = parse_spec({"name": "t", "sweep_dir": str(tmp_path / "s"), "base": TINY_BASE,
                       "grid": {"model.width": "32,64"}, "probe": [probe],
                       "baselines": ["pixels"]})
    plan = build_plan(spec)
    (pixels,) = plan.baselines
    owner = pixels.owner
    other = next(r.run_id for r in plan.runs if r.run_id != owner)
    known = {owner: RunState(owner, "failed", train="failed", probe="blocked"),
             other: RunState(other, "probing", train="done", probe="done")}

    def arrays():
        return [a.run_ids for a in select_probe_arrays(plan, tmp_path / "s", [], known, False,
                                                       100, [])]

    assert arrays() == [[[owner]]]
    (Path(pixels.dir) / "probe").mkdir(parents=True)
    (Path(pixels.dir) / "probe" / "pixels_linear_last.json").write_text("{}")
    assert arrays() == []


def test_a_probe_task_whose_heartbeat_stopped_is_stale(tmp_path):
    """SLURM says the probe task runs, but the run's probe_status.json (`running`) has not been
    touched for 6 heartbeats: `stale` (a dead node or a hung task), cancellable; a fresh one is
    `running`."""
    from test_slurm_faults_offline import DONE, cli, fake_slurm, slurm_sweep, squeue_says

    from aimscale.sweep.manifest import read_manifest, write_manifest

    env = fake_slurm(tmp_path)
    running = {**DONE, "probe_status.json": {"state": "running", "probes": [PROBE]}}
    sweep_dir = slurm_sweep(tmp_path, {"hung": running, "live": running})
    manifest = read_manifest(sweep_dir)
    manifest["spec"] = {"probe": [PROBE]}
    for index, entry in enumerate(manifest["runs"].values()):
        entry["probe_attempts"] = [{"executor": "slurm", "job_id": f"8_{index}",
                                    "submitted_at": entry["attempts"][0]["submitted_at"],
                                    "folder": "x", "heartbeat_s": 5.0}]
    write_manifest(sweep_dir, manifest)
    old = time.time() - 45  # after the task started (120 s ago), 9 heartbeats without a touch
    os.utime(sweep_dir / "hung" / "probe_status.json", (old, old))
    squeue_says(env, ["7_0|COMPLETED|None", "8_0|RUNNING|None",
                      "7_1|COMPLETED|None", "8_1|RUNNING|None"])
    st = json.loads(cli(env, "status", str(sweep_dir), "--json").stdout)
    got = {r["run_id"]: (r["state"], r["probe"]) for r in st["runs"]}
    assert got == {"hung": ("stale", "stale"), "live": ("probing", "running")}
    assert "not updated for 45 s" in st["runs"][0]["probe_error"]
    cancel = json.loads(cli(env, "cancel", str(sweep_dir), "hung", "--json").stdout)
    assert cancel["probes_cancelled"] == ["hung"] and cancel["job_ids"] == ["8_0"]


def test_the_probe_heartbeat_touches_only_this_tasks_status_file(tmp_path, monkeypatch):
    from aimscale.sweep import probe_job

    monkeypatch.setattr(probe_job, "HEARTBEAT_S", 0.05)
    beat = probe_job._Heartbeat()
    ours, earlier = tmp_path / "ours.json", tmp_path / "earlier.json"
    ours.write_text("{}")
    earlier.write_text("{}")
    os.utime(ours, (beat._since - 0.5,) * 2)  # written by this task (it started just before)
    os.utime(earlier, (beat._since - 60,) * 2)  # left by an earlier task
    try:
        beat.path = str(ours)
        wait_for(lambda: ours.stat().st_mtime > beat._since, 5, 0.05, "a heartbeat")
        beat.path = str(earlier)
        time.sleep(0.3)
        assert earlier.stat().st_mtime == pytest.approx(beat._since - 60)
    finally:
        beat.stop()


def test_a_run_waiting_in_a_running_probe_task_is_pending(tmp_path):
    """One probe task probes a trunk's family one run after another: while it probes the first,
    the later ones are `pending` (with a note), not `running`."""
    from test_slurm_faults_offline import DONE, cli, fake_slurm, slurm_sweep, squeue_says

    from aimscale.atomic import atomic_write_json
    from aimscale.sweep.manifest import read_manifest, write_manifest

    env = fake_slurm(tmp_path)
    sweep_dir = slurm_sweep(tmp_path, {"trunk": DONE, "branch": DONE})
    manifest = read_manifest(sweep_dir)
    manifest["spec"] = {"probe": [PROBE]}
    for place, run_id in enumerate(("trunk", "branch")):  # one probe task, job 8_0
        entry = manifest["runs"][run_id]
        entry["probe_attempts"] = [{"executor": "slurm", "job_id": "8_0",
                                    "submitted_at": entry["attempts"][0]["submitted_at"],
                                    "folder": "x", "heartbeat_s": 5.0, "task_index": place}]
    write_manifest(sweep_dir, manifest)
    atomic_write_json(sweep_dir / "trunk" / "probe_status.json",
                      {"state": "running", "probes": [PROBE]})
    squeue_says(env, ["7_0|COMPLETED|None", "7_1|COMPLETED|None", "8_0|RUNNING|None"])
    st = json.loads(cli(env, "status", str(sweep_dir), "--json").stdout)
    got = {r["run_id"]: (r["state"], r["probe"]) for r in st["runs"]}
    assert got == {"trunk": ("probing", "running"), "branch": ("probing", "pending")}
    notes = {r["run_id"]: r["probe_error"] for r in st["runs"]}
    assert "waits in its probe task" in notes["branch"] and notes["trunk"] is None


def test_launch_records_each_runs_place_in_its_probe_task(tmp_path):
    from aimscale.sweep.launch import LaunchResult, task_index
    from aimscale.sweep.resources import ResourceClass
    from aimscale.sweep.submit import ProbeArray

    probe = ProbeArray(ResourceClass(name="probe"), [["trunk", "b1", "b2"], ["other"]],
                       [["d/trunk", "d/b1", "d/b2"], ["d/other"]], ["trunk", "other"])
    result = LaunchResult(tmp_path, probe_arrays=[probe])
    assert task_index(result) == {"trunk": 0, "b1": 1, "b2": 2, "other": 0}
