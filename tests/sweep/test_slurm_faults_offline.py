"""How status, launch and cancel read SLURM's answers, without a cluster.

SLURM itself cannot be made to show every state on demand (COMPLETING, SUSPENDED, a controller
that times out), so `squeue`, `sbatch` and `scancel` are replaced here by small scripts on PATH
that print a canned answer or fail the way SLURM's commands fail. Everything else is real: the
CLI in a subprocess, the manifest, the run directories. The same faults on the real test
cluster are in test_slurm_sweep.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sweep_helpers import ROOT, write_spec

from aimscale.atomic import atomic_write_json
from aimscale.sweep.manifest import new_manifest, write_manifest

FAKE = """#!/usr/bin/env bash
# a stand-in for SLURM's {name}: fails like it when the controller is down
echo "{name} $*" >>"$FAKE_SLURM/calls"
if [[ -e "$FAKE_SLURM/down" ]]; then
  echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2
  exit 1
fi
{body}
"""
BODIES = {
    "squeue": 'cat "$FAKE_SLURM/squeue.txt" 2>/dev/null; exit 0',
    "sbatch": ('echo "sbatch: error: Batch job submission failed: Invalid account or '
               'account/partition combination specified" >&2; exit 1'),
    "scancel": "exit 0",
    "sacct": "exit 1",
}


def fake_slurm(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH starts with the fake SLURM commands."""
    state = tmp_path / "fake-slurm"
    bin_dir = state / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in BODIES.items():
        path = bin_dir / name
        path.write_text(FAKE.format(name=name, body=body))
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM": str(state)}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aimscale", *args], cwd=ROOT, env=env,
                          text=True, capture_output=True, timeout=120)


def slurm_sweep(tmp_path: Path, runs: dict[str, dict]) -> Path:
    """A sweep whose runs were submitted to SLURM a minute ago: run_id -> files to write."""
    sweep_dir = tmp_path / "sweep"
    manifest = new_manifest("faults", {})
    now = time.time()
    for index, (run_id, files) in enumerate(runs.items()):
        run_dir = sweep_dir / run_id
        run_dir.mkdir(parents=True)
        for name, content in files.items():
            atomic_write_json(run_dir / name, content)
        manifest["runs"][run_id] = {"run_dir": str(run_dir), "attempts": [{
            "executor": "slurm", "job_id": f"7_{index}", "submitted_at": now - 60,
            "folder": str(sweep_dir / ".submitit" / "%j"), "heartbeat_s": 5.0}]}
    write_manifest(sweep_dir, manifest)
    return sweep_dir


def squeue_says(env: dict, lines: list[str]) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 120))
    Path(env["FAKE_SLURM"], "squeue.txt").write_text(
        "".join(f"{line}|{started}\n" for line in lines))


RUNNING = {"status.json": {"state": "running", "step": 3, "total_steps": 10, "restarts": 0}}
DONE = {**RUNNING, "summary.json": {"status": "done", "steps": 10, "final_loss": 1.0}}


def test_squeue_failure_is_unknown_never_failed_and_retry_refuses(tmp_path):
    env = fake_slurm(tmp_path)
    sweep_dir = slurm_sweep(tmp_path, {"a": RUNNING, "b": {}, "c": DONE})
    squeue_says(env, ["7_0|RUNNING|None", "7_1|PENDING|Priority", "7_2|COMPLETED|None"])
    ok = cli(env, "status", str(sweep_dir), "--json")
    assert ok.returncode == 0, ok.stderr
    assert [r["state"] for r in json.loads(ok.stdout)["runs"]] == ["running", "pending", "done"]
    Path(env["FAKE_SLURM"], "down").touch()
    down = cli(env, "status", str(sweep_dir), "--json")
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert "SLURM did not answer" in down.stderr and "Unable to contact" in down.stderr
    runs = json.loads(down.stdout)["runs"]
    assert [r["state"] for r in runs] == ["unknown", "unknown", "done"]
    assert "Unable to contact slurm controller" in runs[0]["error"]


def test_retry_failed_does_not_resubmit_runs_slurm_cannot_vouch_for(tmp_path):
    """The issue's repro: squeue fails while the controller is fine; a dry run of
    --retry-failed must not offer to resubmit the live runs."""
    env = fake_slurm(tmp_path)
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "retry", sweep_dir,
                      grid={"optim.lr": [1.0e-3, 2.0e-3]})
    plan = json.loads(cli(env, "plan", str(spec), "--json").stdout)
    run_ids = [r["run_id"] for r in plan["runs"]]
    sweep_of = slurm_sweep(tmp_path / "x", {r: RUNNING for r in run_ids})
    manifest = json.loads((sweep_of / "sweep.json").read_text())
    sweep_dir.mkdir()
    for r in run_ids:  # the runs live in the spec's sweep dir
        os.rename(sweep_of / r, sweep_dir / r)
        manifest["runs"][r]["run_dir"] = str(sweep_dir / r)
    write_manifest(sweep_dir, manifest)
    Path(env["FAKE_SLURM"], "down").touch()
    dry = cli(env, "launch", str(spec), "--executor", "slurm", "--retry-failed", "--dry-run",
              "--json")
    assert dry.returncode == 0, dry.stderr
    out = json.loads(dry.stdout)
    assert out["submitted"] == [] and set(out["skipped"].values()) == {"unknown"}
    assert any("may still be alive" in w for w in out["warnings"])


def test_launch_with_the_controller_down_writes_nothing(tmp_path):
    env = fake_slurm(tmp_path)
    Path(env["FAKE_SLURM"], "down").touch()
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "down", sweep_dir)
    out = cli(env, "launch", str(spec), "--executor", "slurm")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "SLURM did not answer" in out.stderr and "nothing was submitted or written" in out.stderr
    assert not sweep_dir.exists()


def test_failed_sbatch_is_recorded_as_a_failed_launch(tmp_path):
    env = fake_slurm(tmp_path)  # squeue answers, sbatch refuses the array
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "refused", sweep_dir,
                      grid={"optim.lr": [1.0e-3, 2.0e-3]})
    out = cli(env, "launch", str(spec), "--executor", "slurm")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "Invalid account" in out.stderr
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    (record,) = manifest["launches"]
    assert record["submitted"] == 0 and record["arrays"] == []
    assert "Invalid account" in record["failed"]
    st = json.loads(cli(env, "status", str(sweep_dir), "--json").stdout)
    assert st["counts"]["new"] == 2  # nothing was submitted, nothing is shown failed


def test_every_slurm_state_is_read_explicitly(tmp_path):
    env = fake_slurm(tmp_path)
    old = {"status.json": {"state": "running", "step": 3, "total_steps": 10}}
    sweep_dir = slurm_sweep(tmp_path, {
        "completing": RUNNING,             # processes exiting, no summary: not `running`
        "completing_done": DONE,           # exiting after writing its summary
        "running_done": DONE,              # a spec without probes: done, not `probing`
        "odd": RUNNING,                    # a state aimscale does not know
        "requeued": RUNNING,               # killed with its node, queued again
        "stale": old,                      # RUNNING, status.json silent for 60 s
        "suspended": RUNNING,
        "cancelled": RUNNING,              # a user's scancel
        "timeout": RUNNING,                # gone without a summary: failed
        "starting": {},                    # RUNNING, its trainer has not written a file yet
    })
    long_ago = time.time() - 60
    os.utime(sweep_dir / "stale" / "status.json", (long_ago, long_ago))
    squeue_says(env, ["7_0|COMPLETING|None", "7_1|COMPLETING|None", "7_2|RUNNING|None",
                      "7_3|RESV_UNHEARD_OF|None", "7_4|PENDING|BeginTime", "7_5|RUNNING|None",
                      "7_6|SUSPENDED|None", "7_7|CANCELLED|None", "7_8|TIMEOUT|None",
                      "7_9|RUNNING|None"])
    out = cli(env, "status", str(sweep_dir), "--json")
    states = {r["run_id"]: r for r in json.loads(out.stdout)["runs"]}
    assert {k: v["state"] for k, v in states.items()} == {
        "completing": "ending", "completing_done": "done", "running_done": "done",
        "odd": "unknown", "requeued": "requeued", "stale": "stale", "suspended": "suspended",
        "cancelled": "cancelled", "timeout": "failed", "starting": "running"}
    assert "RESV_UNHEARD_OF" in states["odd"]["error"]
    assert "heartbeat" in states["stale"]["error"]


def test_cancel_records_and_relaunch_policy(tmp_path):
    env = fake_slurm(tmp_path)
    sweep_dir = slurm_sweep(tmp_path, {"a": RUNNING, "b": {}, "c": DONE})
    squeue_says(env, ["7_0|RUNNING|None", "7_1|PENDING|Priority", "7_2|COMPLETED|None"])
    bad = cli(env, "cancel", str(sweep_dir), "nope")
    assert bad.returncode == 2 and "no run nope" in bad.stderr
    out = cli(env, "cancel", str(sweep_dir), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cancelled"] == ["a", "b"]
    assert "scancel 7_0 7_1" in Path(env["FAKE_SLURM"], "calls").read_text()
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert manifest["cancels"][0]["runs"] == ["a", "b"]
    assert all(manifest["runs"][r]["attempts"][-1]["cancelled_at"] for r in ("a", "b"))
    # SLURM still ends the jobs: `ending` until they are gone, then `cancelled`
    st = json.loads(cli(env, "status", str(sweep_dir), "--json").stdout)
    assert [r["state"] for r in st["runs"]] == ["ending", "cancelled", "done"]
    squeue_says(env, ["7_0|CANCELLED|None", "7_1|CANCELLED|None", "7_2|COMPLETED|None"])
    st = json.loads(cli(env, "status", str(sweep_dir), "--json").stdout)
    assert [r["state"] for r in st["runs"]] == ["cancelled", "cancelled", "done"]


def test_cancelling_a_branch_cancels_and_records_its_whole_family(tmp_path):
    """A cooldown branch trains in its trunk's task: `cancel BRANCH` scancels that task, so the
    trunk and every live branch of it are recorded cancelled too (and named); a done branch and
    other runs are left alone."""
    env = fake_slurm(tmp_path)
    sweep_dir = slurm_sweep(tmp_path, {"trunk": RUNNING, "early": DONE, "late": {}, "other": {}})
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    for branch in ("early", "late"):  # what launch records for a branch: its trunk's attempt
        manifest["runs"][branch]["attempts"] = [
            {**manifest["runs"]["trunk"]["attempts"][0], "task_of": "trunk"}]
    write_manifest(sweep_dir, manifest)
    squeue_says(env, ["7_0|RUNNING|None", "7_3|PENDING|Priority"])
    out = cli(env, "cancel", str(sweep_dir), "late", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["cancelled"] == ["late", "trunk"] and result["with_their_task"] == ["trunk"]
    assert result["job_ids"] == ["7_0"]
    assert Path(env["FAKE_SLURM"], "calls").read_text().count("scancel 7_0\n") == 1
    runs = json.loads((sweep_dir / "sweep.json").read_text())["runs"]
    assert runs["trunk"]["attempts"][-1].get("cancelled_at")
    assert runs["late"]["attempts"][-1].get("cancelled_at")
    assert not runs["early"]["attempts"][-1].get("cancelled_at")
    assert not runs["other"]["attempts"][-1].get("cancelled_at")
    squeue_says(env, ["7_0|CANCELLED|None", "7_3|PENDING|Priority"])
    st = json.loads(cli(env, "status", str(sweep_dir), "--json").stdout)
    assert {r["run_id"]: r["state"] for r in st["runs"]} == {
        "trunk": "cancelled", "early": "done", "late": "cancelled", "other": "pending"}
