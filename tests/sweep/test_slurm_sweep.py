"""The sweep on the real single-node SLURM test cluster (tests/slurm/start.sh)."""

from __future__ import annotations

import copy
import json
import subprocess

import pandas as pd
import pytest
from sweep_helpers import (
    TINY_BASE,
    aimscale,
    last_step,
    metrics_without_timing,
    slurm_up,
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
