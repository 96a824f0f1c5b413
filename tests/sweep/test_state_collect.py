"""`status` and `collect` on hand-made run directories (no training, no scheduler)."""

from __future__ import annotations

import json
import os
import time

import pandas as pd

from aimscale.atomic import atomic_write_json
from aimscale.sweep.collect import collect, write_tables
from aimscale.sweep.manifest import new_manifest, write_manifest
from aimscale.sweep.state import sweep_states


def make_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    manifest = new_manifest("t", {})
    manifest["base_config"] = {"model.width": 32, "train.steps": 4, "run_dir": "x"}
    now = time.time()

    def add(run_id, width, files, submitted_at=now - 60):
        run_dir = sweep_dir / run_id
        run_dir.mkdir(parents=True)
        for name, content in files.items():
            if isinstance(content, dict):
                atomic_write_json(run_dir / name, content)
            else:
                (run_dir / name).write_text(content)
        manifest["runs"][run_id] = {
            "run_dir": str(run_dir), "axes": {"model.width": str(width)},
            "config": {"model.width": width}, "trunk_params": 100 * width,
            "attempts": [{"executor": "debug", "job_id": None, "submitted_at": submitted_at}],
        }

    row = {"step": 1, "images_seen": 8, "patches_seen": 392, "flops": 1e6, "lr": 1e-3,
           "loss": 2.0}
    add("done", 32, {
        "metrics.jsonl": json.dumps(row) + "\n" + json.dumps({**row, "step": 2, "loss": 1.5})
        + "\n",
        "status.json": {"state": "done", "step": 2, "total_steps": 2, "restarts": 1},
        "summary.json": {"status": "done", "steps": 2, "final_loss": 1.5, "total_flops": 2e6},
        "probe/attentive.json": {"top1": 0.7, "top5": 0.95},
    })
    # the last line is being written: no newline yet
    add("writing", 64, {"metrics.jsonl": json.dumps(row) + "\n" + '{"step": 2, "lo',
                        "status.json": {"state": "running", "step": 1, "total_steps": 4}})
    add("failed", 96, {"status.json": {"state": "failed", "step": 0, "total_steps": 4,
                                       "reason": "DataError: x"},
                       "error.txt": "DataError: path /nope does not exist\n\nTraceback ..."})
    # failed before, resubmitted since: its old status.json must not count
    add("retried", 128, {"status.json": {"state": "failed", "step": 0, "total_steps": 4}},
        submitted_at=now + 60)
    manifest["runs"]["never"] = {"run_dir": str(sweep_dir / "never"), "attempts": []}
    # "writing" runs under the local scheduler; its job (this process) is alive
    scheduler = tmp_path / "scheduler.json"
    atomic_write_json(scheduler, {"pid": os.getpid(), "runs": {
        "writing": {"state": "submitted", "job_id": str(os.getpid())}}})
    manifest["runs"]["writing"]["attempts"] = [
        {"executor": "local", "job_id": None, "submitted_at": now - 60,
         "scheduler_state": str(scheduler)}]
    # "retried" waits in a scheduler that has just started (no pid written yet)
    queued = tmp_path / "queued.json"
    atomic_write_json(queued, {"pid": None, "runs": {"retried": {"state": "queued"}}})
    manifest["runs"]["retried"]["attempts"][0].update(executor="local",
                                                      scheduler_state=str(queued))
    write_manifest(sweep_dir, manifest)
    return sweep_dir, manifest


def test_states_from_files(tmp_path):
    sweep_dir, manifest = make_sweep(tmp_path)
    states = {s.run_id: s for s in sweep_states(sweep_dir, manifest)}
    assert states["done"].state == "done" and states["done"].restarts == 1
    assert states["done"].loss == 1.5
    assert states["writing"].state == "running" and states["writing"].loss == 2.0
    assert states["writing"].job_id == str(os.getpid())
    assert states["failed"].state == "failed"
    assert states["failed"].error == "DataError: path /nope does not exist"
    assert states["retried"].state == "pending"
    assert states["never"].state == "new"


def test_collect_tables_skip_half_written_lines(tmp_path):
    sweep_dir, _ = make_sweep(tmp_path)
    runs, curves = collect(sweep_dir)
    assert len(runs) == 5
    by_id = runs.set_index("run_id")
    assert by_id.loc["done", "status"] == "done" and by_id.loc["done", "final_loss"] == 1.5
    assert by_id.loc["done", "probe.attentive.top1"] == 0.7
    assert by_id.loc["writing", "model.width"] == 64 and by_id.loc["done", "train.steps"] == 4
    assert "run_dir" not in runs.columns
    assert list(curves[curves.run_id == "writing"]["step"]) == [1]  # the torn line is skipped
    assert list(curves[curves.run_id == "done"]["loss"]) == [2.0, 1.5]
    runs_path, curves_path = write_tables(sweep_dir)
    assert runs_path == sweep_dir / "collect" / "runs.csv"
    assert len(pd.read_csv(curves_path)) == 3
    parquet, _ = write_tables(sweep_dir, tmp_path / "out.parquet", "parquet")
    assert len(pd.read_parquet(parquet)) == 5


def damaged_sweep(tmp_path):
    """Four finished-or-not runs; three of them have one damaged file each."""
    sweep_dir = tmp_path / "dmg"
    manifest = new_manifest("dmg", {})
    good_summary = json.dumps({"status": "done", "steps": 2, "final_loss": 1.5})
    row = json.dumps({"step": 1, "loss": 2.0}) + "\n"
    runs = {
        "good": {"summary.json": good_summary, "metrics.jsonl": row,
                 "probe/attentive.json": json.dumps({"top1": 0.5})},
        "empty_summary": {"summary.json": "", "metrics.jsonl": row},
        "torn_summary": {"summary.json": good_summary[:20], "metrics.jsonl": row},
        "empty_probe": {"summary.json": good_summary, "metrics.jsonl": row,
                        "probe/attentive.json": ""},
    }
    for run_id, files in runs.items():
        run_dir = sweep_dir / run_id
        for name, content in files.items():
            (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (run_dir / name).write_text(content)
        manifest["runs"][run_id] = {"run_dir": str(run_dir), "attempts": [
            {"executor": "debug", "job_id": None, "submitted_at": time.time() - 60}]}
    write_manifest(sweep_dir, manifest)
    return sweep_dir


def test_a_damaged_file_marks_only_its_run(tmp_path):
    from sweep_helpers import aimscale

    sweep_dir = damaged_sweep(tmp_path)
    out = aimscale("status", str(sweep_dir), "--json")  # exit 0: every run is accounted for
    assert "Traceback" not in out.stderr
    states = {r["run_id"]: r for r in json.loads(out.stdout)["runs"]}
    assert states["good"]["state"] == states["empty_probe"]["state"] == "done"
    assert states["empty_summary"]["state"] == states["torn_summary"]["state"] == "unreadable"
    assert "empty_summary/summary.json: is empty (0 bytes)" in states["empty_summary"]["error"]
    assert "torn_summary/summary.json: is not valid JSON" in states["torn_summary"]["error"]
    assert out.stderr.count("warning: run") == 2
    text = aimscale("status", str(sweep_dir))
    assert "unreadable" in text.stdout and "summary.json: is empty" in text.stdout
    out = aimscale("collect", str(sweep_dir))
    assert "Traceback" not in out.stderr and out.stderr.count("warning: run") == 3
    runs = pd.read_csv(sweep_dir / "collect" / "runs.csv").set_index("run_id")
    assert runs.loc["good", "status"] == "done" and runs.loc["good", "probe.attentive.top1"] == 0.5
    assert runs.loc["empty_probe", "status"] == "unreadable"
    assert "probe/attentive.json: is empty" in runs.loc["empty_probe", "error"]
    assert runs.loc["empty_probe", "final_loss"] == 1.5  # its other files are still collected
    curves = pd.read_csv(sweep_dir / "collect" / "curves.csv")
    assert sorted(set(curves["run_id"])) == sorted(runs.index)


def test_a_damaged_manifest_is_a_clear_exit_2(tmp_path):
    from sweep_helpers import aimscale

    sweep_dir = damaged_sweep(tmp_path)
    (sweep_dir / "sweep.json").write_text('{"name": "dmg", "runs": {"go')
    for command in ("status", "collect", "cancel"):
        out = aimscale(command, str(sweep_dir), check=False)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert f"{sweep_dir}/sweep.json: is not valid JSON" in out.stderr
    from sweep_helpers import write_spec

    spec = write_spec(tmp_path / "s.yaml", "dmg", sweep_dir)
    out = aimscale("launch", str(spec), check=False)  # must not rewrite the damaged record
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{sweep_dir}/sweep.json: is not valid JSON" in out.stderr
    assert (sweep_dir / "sweep.json").read_text() == '{"name": "dmg", "runs": {"go'


def test_status_into_a_closed_pipe_ends_quietly(tmp_path):
    """`aimscale status DIR | head -1` with far more output than a pipe holds."""
    import subprocess
    import sys

    from sweep_helpers import ROOT

    sweep_dir = tmp_path / "many"
    manifest = new_manifest("many", {})
    manifest["runs"] = {f"run-{i:05d}": {"attempts": []} for i in range(3000)}
    write_manifest(sweep_dir, manifest)
    out = subprocess.run(f"{sys.executable} -m aimscale status {sweep_dir} | head -1",
                         shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("sweep many: 3000 runs")
    assert out.stderr == ""


def test_a_branch_waiting_in_its_trunks_task_is_pending(tmp_path):
    """A cooldown branch shares its trunk's task: while that task trains the trunk (or an
    earlier branch), the branch is `pending` with a note, not `running`."""
    sweep_dir = tmp_path / "sweep"
    manifest = new_manifest("t", {})
    now = time.time()
    scheduler = tmp_path / "scheduler.json"
    atomic_write_json(scheduler, {"pid": os.getpid(), "runs": {
        "trunk": {"state": "submitted", "job_id": str(os.getpid())}}})
    attempt = {"executor": "local", "job_id": None, "submitted_at": now - 60,
               "scheduler_state": str(scheduler)}
    for run_id in ("trunk", "early", "late"):
        (sweep_dir / run_id).mkdir(parents=True)
        own = attempt if run_id == "trunk" else {**attempt, "task_of": "trunk"}
        manifest["runs"][run_id] = {"run_dir": str(sweep_dir / run_id), "attempts": [own]}
    atomic_write_json(sweep_dir / "trunk" / "status.json",
                      {"state": "running", "step": 5, "total_steps": 12})
    states = {s.run_id: s for s in sweep_states(sweep_dir, manifest)}
    assert states["trunk"].state == "running"
    assert states["early"].state == states["late"].state == "pending"
    assert "trunk's task (trunk)" in states["late"].error
    # the trunk is done and the task now trains the first branch; the second still waits
    atomic_write_json(sweep_dir / "trunk" / "summary.json", {"steps": 12, "final_loss": 1.0})
    atomic_write_json(sweep_dir / "early" / "status.json",
                      {"state": "running", "step": 7, "total_steps": 8})
    states = {s.run_id: s for s in sweep_states(sweep_dir, manifest)}
    assert [states[r].state for r in ("trunk", "early", "late")] == ["done", "running",
                                                                      "pending"]
    assert states["early"].step == 7
