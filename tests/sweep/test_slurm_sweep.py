"""The sweep on the real single-node SLURM test cluster (tests/slurm/start.sh), and the faults
clusters produce: preemption, time-limit requeues, node failure, user cancels, a controller
that is down. Tests that stop a daemon restart it with start.sh (which restarts only what is
down and keeps the queue) before they end.
"""

from __future__ import annotations

import copy
import json
import subprocess

import pandas as pd
import pytest
from sweep_helpers import (
    TINY_BASE,
    aimscale,
    kill_node,
    last_step,
    metrics_lines,
    metrics_without_timing,
    resumed_from_checkpoint,
    slurm_up,
    start_cluster,
    status,
    stop_daemon,
    wait_all_terminal,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.slurm
_reason = slurm_up()
if _reason:
    pytestmark = [pytest.mark.slurm, pytest.mark.skip(reason=_reason)]

CPU_CLASS = {"classes": {"cpu": {"cpus_per_task": 1, "mem_gb": 2, "time_min": 10}},
             "signal_delay_s": 30}


def launch_json(spec, *flags) -> dict:
    return json.loads(aimscale("launch", str(spec), "--executor", "slurm", "--json",
                               *flags).stdout)


def test_array_runs_collects_and_relaunch_submits_nothing(tmp_path):
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "slurm4", sweep_dir, resources=CPU_CLASS,
                      grid={"model.width": "32,64", "optim.lr": "1e-3,2e-3"})
    out = launch_json(spec)
    ids = set(out["job_ids"].values())
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 1  # one array, one sbatch
    st = wait_all_terminal(sweep_dir, 300)
    assert st["counts"]["done"] == 4, st
    aimscale("collect", str(sweep_dir))
    runs = pd.read_csv(sweep_dir / "collect" / "runs.csv")
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    assert sorted(set(runs["model.width"])) == [32, 64]
    again = launch_json(spec)
    assert again["submitted"] == [] and again["job_ids"] == {}


def test_preempted_run_requeues_resumes_and_matches_its_twin(tmp_path):
    """Two runs with identical results (only logging differs): one is preempted with
    `scancel --signal=USR2`; it checkpoints, is requeued, resumes and ends like its twin."""
    sweep_dir = tmp_path / "sweep"
    base = copy.deepcopy(TINY_BASE)
    base["train"].update(steps=150, checkpoint_every=50, eval_every=50, log_every=5)
    spec = write_spec(tmp_path / "s.yaml", "preempt", sweep_dir, base=base, resources=CPU_CLASS,
                      variants={"twin": ["logging.progress=none"],
                                "preempted": ["logging.progress=lines"]})
    out = launch_json(spec)
    (victim,) = [r for r in out["job_ids"] if r.startswith("variantpreempted")]
    (twin,) = [r for r in out["job_ids"] if r.startswith("varianttwin")]
    assert victim.split("-")[-1] == twin.split("-")[-1]  # same config hash
    wait_for(lambda: last_step(sweep_dir / victim) >= 10, 180, 0.5, "the run to make progress")
    subprocess.run(["scancel", "--signal=USR2", out["job_ids"][victim]], check=True)
    st = wait_all_terminal(sweep_dir, 400)
    runs = {r["run_id"]: r for r in st["runs"]}
    assert runs[victim]["state"] == runs[twin]["state"] == "done", st
    assert runs[victim]["restarts"] == 1 and runs[twin]["restarts"] == 0
    assert metrics_without_timing(sweep_dir / victim) == metrics_without_timing(sweep_dir / twin)
    log = next((sweep_dir / ".submitit").glob(f"{out['job_ids'][victim]}/*_0_log.err"))
    assert "requeueing job" in log.read_text()


def test_failure_shows_in_status_and_retry_resubmits_only_it(tmp_path):
    sweep_dir = tmp_path / "sweep"
    base = copy.deepcopy(TINY_BASE)
    base["train"]["steps"] = 5
    # fails at run time, after launch's checks: a huge learning rate without warmup or clipping
    broken = ["optim.lr=1e6", "optim.warmup_fraction=0", "optim.grad_clip=0"]
    spec = write_spec(
        tmp_path / "s.yaml", "fail", sweep_dir, base=base, resources=CPU_CLASS,
        variants={"ok": [], "broken": broken},
    )
    out = launch_json(spec)
    st = wait_all_terminal(sweep_dir, 300)
    states = {r["run_id"].split("-")[0]: r for r in st["runs"]}
    assert states["variantok"]["state"] == "done"
    assert states["variantbroken"]["state"] == "failed"
    assert "training diverged at step" in states["variantbroken"]["error"]
    retry = launch_json(spec, "--retry-failed")
    assert [r.split("-")[0] for r in retry["submitted"]] == ["variantbroken"]
    assert retry["job_ids"][retry["submitted"][0]] != out["job_ids"][retry["submitted"][0]]
    st = wait_all_terminal(sweep_dir, 300)
    assert sorted(r["state"] for r in st["runs"]) == ["done", "failed"]


def test_two_rank_ddp_matches_one_rank(tmp_path):
    """2 tasks (gloo on CPU) with global batch 16 = 1 task with batch 16: losses within 1e-4.

    Prefix attention (the default): the prefix lengths are drawn for the global batch, so the
    split over ranks does not change them."""
    base = copy.deepcopy(TINY_BASE)
    base["train"].update(steps=8, log_every=1, eval_every=8)
    results = {}
    for tasks in (1, 2):
        sweep_dir = tmp_path / f"ddp{tasks}"
        resources = {"classes": {"c": {"cpus_per_task": 1, "mem_gb": 2, "time_min": 10,
                                       "tasks_per_node": tasks}}}
        spec = write_spec(tmp_path / f"s{tasks}.yaml", f"ddp{tasks}", sweep_dir, base=base,
                          resources=resources)
        launch_json(spec)
        results[tasks] = sweep_dir
    for sweep_dir in results.values():
        st = wait_all_terminal(sweep_dir, 300)
        assert st["counts"]["done"] == 1, st
    one, two = (metrics_without_timing(next(p for p in d.iterdir() if (p / "metrics.jsonl")
                                            .exists())) for d in results.values())
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 9))
    for a, b in zip(one, two, strict=True):
        assert a["images_seen"] == b["images_seen"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)


def long_base(steps: int, checkpoint_every: int) -> dict:
    base = copy.deepcopy(TINY_BASE)
    base["train"].update(steps=steps, checkpoint_every=checkpoint_every, eval_every=steps,
                         log_every=5)
    return base


def run_of(sweep_dir, run_id) -> dict:
    return next(r for r in status(sweep_dir)["runs"] if r["run_id"] == run_id)


def test_start_sh_restarts_nothing_and_counts_the_machines_cpus():
    """An exported OMP_NUM_THREADS=1 must neither resize the node nor restart the cluster."""
    out = start_cluster(OMP_NUM_THREADS="1")
    assert "already running" in out, out
    node = subprocess.run(["scontrol", "show", "node"], capture_output=True, text=True).stdout
    cpus = subprocess.run(["nproc", "--all"], capture_output=True, text=True).stdout.strip()
    assert f"CPUTot={cpus} " in node


def test_controller_down_during_status_and_launch(tmp_path):
    """slurmctld stops while a run trains: status says `unknown` (not failed), a launch writes
    nothing, and once the controller is back the job is still the same live run. (The run is
    far longer than the test and is cancelled at the end: the test must not depend on how fast
    this machine trains.)"""
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "ctld", sweep_dir, base=long_base(100000, 1000),
                      resources=CPU_CLASS)
    (run_id,) = launch_json(spec)["job_ids"]
    wait_for(lambda: last_step(sweep_dir / run_id) >= 5, 180, 0.5, "the run to train")
    stop_daemon("slurmctld")
    try:
        manifest = (sweep_dir / "sweep.json").read_bytes()
        down = aimscale("status", str(sweep_dir), "--json", check=False)
        assert down.returncode == 1 and "Traceback" not in down.stderr
        assert "SLURM did not answer" in down.stderr
        assert [r["state"] for r in json.loads(down.stdout)["runs"]] == ["unknown"]
        retry = aimscale("launch", str(spec), "--executor", "slurm", "--retry-failed",
                         check=False)
        assert retry.returncode == 1 and "Traceback" not in retry.stderr
        assert "nothing was submitted or written" in retry.stderr
        assert (sweep_dir / "sweep.json").read_bytes() == manifest
    finally:
        assert "restarted slurmctld (queue kept)" in start_cluster()
    step = last_step(sweep_dir / run_id)
    wait_for(lambda: last_step(sweep_dir / run_id) > step, 120, 0.5, "the run to go on")
    run = run_of(sweep_dir, run_id)
    assert run["state"] == "running" and run["restarts"] == 0, run
    aimscale("cancel", str(sweep_dir))
    wait_for(lambda: run_of(sweep_dir, run_id)["state"] == "cancelled", 60, 1.0, "cancelled")


@pytest.mark.slow  # minutes on 2 cores; run with `pytest -m slow`
def test_user_scancel_shows_cancelled_and_retry_resumes_it(tmp_path):
    """A user's `scancel`: `cancelled`; a plain relaunch leaves it; --retry-failed resumes it
    from its checkpoint and it ends equal to its uninterrupted twin."""
    sweep_dir = tmp_path / "sweep"
    # 400 steps: the victim must still train when scancel's SIGKILL comes (KillWait=5 s after
    # the SIGTERM that submitit ignores), even on an idle machine (~50 steps/s)
    spec = write_spec(tmp_path / "s.yaml", "scancel", sweep_dir, base=long_base(400, 20),
                      resources=CPU_CLASS, variants={"twin": ["logging.progress=none"],
                                                     "victim": ["logging.progress=lines"]})
    out = launch_json(spec)
    (victim,) = [r for r in out["job_ids"] if r.startswith("variantvictim")]
    (twin,) = [r for r in out["job_ids"] if r.startswith("varianttwin")]
    wait_for(lambda: last_step(sweep_dir / victim) >= 25, 180, 0.1, "a first checkpoint")
    subprocess.run(["scancel", out["job_ids"][victim]], check=True)
    wait_for(lambda: run_of(sweep_dir, victim)["state"] == "cancelled", 60, 1.0, "cancelled")
    before = metrics_lines(sweep_dir / victim)
    again = launch_json(spec)
    assert again["submitted"] == [] and again["skipped"][victim] == "cancelled"
    retry = launch_json(spec, "--retry-failed")
    assert retry["submitted"] == [victim]
    st = wait_all_terminal(sweep_dir, 300)
    runs = {r["run_id"]: r for r in st["runs"]}
    assert runs[victim]["state"] == runs[twin]["state"] == "done", st
    assert runs[victim]["restarts"] == 1
    assert resumed_from_checkpoint(before, metrics_lines(sweep_dir / victim), 20)
    assert metrics_without_timing(sweep_dir / victim) == metrics_without_timing(sweep_dir / twin)


def test_aimscale_cancel_cancels_queued_and_running_runs(tmp_path):
    """Three runs on two CPUs (one waits): `aimscale cancel` scancels all and records it."""
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "cancel", sweep_dir, base=long_base(20000, 1000),
                      resources=CPU_CLASS, grid={"optim.lr": [1.0e-3, 2.0e-3, 3.0e-3]})
    out = launch_json(spec)
    wait_for(lambda: status(sweep_dir)["counts"]["running"] >= 1, 120, 0.5, "a running run")
    cancel = aimscale("cancel", str(sweep_dir), "--json")
    assert sorted(json.loads(cancel.stdout)["cancelled"]) == sorted(out["job_ids"])
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert sorted(manifest["cancels"][0]["job_ids"]) == sorted(out["job_ids"].values())
    st = wait_for(lambda: (lambda s: s if s["counts"]["cancelled"] == 3 else None)(
        status(sweep_dir)), 60, 1.0, "every run to be cancelled")
    assert st["counts"]["failed"] == 0
    assert launch_json(spec)["submitted"] == []


@pytest.mark.slow
def test_time_limit_requeues_and_matches_its_twin(tmp_path):
    """A 1-minute class with USR2 45 s before the limit: SLURM itself signals the job (no
    scancel); it stops at a step boundary, requeues, resumes, and ends equal to a twin run
    under a 10-minute class."""
    # long enough to outlast the first window (USR2 <= 45 s after the start) on an idle machine
    # (~50 steps/s); on a loaded one (~3 steps/s) it takes several windows, ~1 min wait each
    base = long_base(2500, 100)
    base["train"]["log_every"] = 10
    short = {"classes": {"short": {"cpus_per_task": 1, "mem_gb": 2, "time_min": 1}},
             "signal_delay_s": 45}
    dirs = {}
    for name, resources in (("short", short), ("twin", CPU_CLASS)):
        dirs[name] = tmp_path / name
        spec = write_spec(tmp_path / f"{name}.yaml", name, dirs[name], base=base,
                          resources=resources)
        (run_id,) = launch_json(spec)["job_ids"]
    for sweep_dir in dirs.values():
        st = wait_all_terminal(sweep_dir, 1800)
        assert st["runs"][0]["state"] == "done", st
    (limited,) = status(dirs["short"])["runs"]
    assert limited["restarts"] >= 1
    log = next((dirs["short"] / ".submitit").glob("*/*_0_log.err")).read_text()
    assert "requeueing job" in log and "timed-out" in log
    assert metrics_without_timing(dirs["short"] / run_id) == metrics_without_timing(
        dirs["twin"] / run_id)


@pytest.mark.slow
def test_node_failure_shows_stale_then_requeued_and_resumes(tmp_path):
    """slurmd and the run's processes die (SIGKILL) mid-run: SLURM still says RUNNING, status
    says `stale`; start.sh (with OMP_NUM_THREADS=1 exported) restarts only slurmd and keeps the
    queue; SLURM requeues the job (`requeued`), it resumes from its checkpoint and finishes."""
    sweep_dir = tmp_path / "sweep"
    spec = write_spec(tmp_path / "s.yaml", "node", sweep_dir, base=long_base(300, 20),
                      resources=CPU_CLASS)
    out = launch_json(spec)
    (run_id,) = out["job_ids"]
    wait_for(lambda: last_step(sweep_dir / run_id) >= 25, 180, 0.2, "a first checkpoint")
    before = metrics_lines(sweep_dir / run_id)
    kill_node([out["job_ids"][run_id]])
    try:
        stale = wait_for(lambda: (lambda r: r if r["state"] != "running" else None)(
            run_of(sweep_dir, run_id)), 90, 1.0, "the run to turn stale")
        assert stale["state"] == "stale" and "heartbeat" in stale["error"], stale
    finally:
        assert "restarted slurmd (queue kept)" in start_cluster(OMP_NUM_THREADS="1")
    seen = set()

    def finished():
        run = run_of(sweep_dir, run_id)
        seen.add(run["state"])
        return run if run["state"] in ("done", "failed") else None

    run = wait_for(finished, 400, 1.0, "the requeued run to finish")
    assert run["state"] == "done" and run["restarts"] == 1, run
    assert "requeued" in seen and "pending" not in seen, seen
    assert resumed_from_checkpoint(before, metrics_lines(sweep_dir / run_id), 20)
