"""A local launch records its provenance in sweep.json and its jobs run from the code snapshot
taken at launch: editing the live checkout afterwards does not change what a queued job runs."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sweep_helpers import ROOT, TINY_BASE, wait_all_terminal, write_spec

from aimscale.sweep.resources import ResourceClass, ResourcePolicy
from aimscale.sweep.submit import slurm_parameters

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "commit.gpgsign=false"]
BROKEN = "raise RuntimeError('imported the live checkout, not the snapshot')\n"


def live_checkout(path: Path) -> str:
    """A git checkout of this project's packages in `path`; returns its commit."""
    for package in ("aimscale", "analysis"):
        shutil.copytree(ROOT / package, path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([*GIT, "init", "-q", str(path)], check=True)
    subprocess.run([*GIT, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-q", "-m", "live"], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_local_launch_records_provenance_and_runs_from_snapshot(tmp_path):
    live = tmp_path / "live"
    commit = live_checkout(live)
    sweep_dir = tmp_path / "sweep"
    base = copy.deepcopy(TINY_BASE)
    base["train"].update(steps=4, eval_every=4, checkpoint_every=4)
    spec = write_spec(tmp_path / "s.yaml", "prov", sweep_dir, base=base,
                      grid={"optim.lr": [1.0e-3, 2.0e-3]}, local={"max_parallel": 1})
    env = dict(os.environ, PYTHONPATH=str(live), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "aimscale", "launch", str(spec), "--json"],
                         cwd=live, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loop = live / "aimscale" / "train" / "loop.py"
    original = loop.read_text()
    loop.write_text(original + BROKEN)  # the live checkout changes while the runs are queued
    edited_at = time.time()

    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    launch = manifest["launches"][-1]
    prov = launch["provenance"]
    assert prov["commit"] == commit and prov["dirty"] is False and prov["diff_file"] is None
    assert prov["code_root"] == str(live) and prov["host"] and "torch" in prov["packages"]
    snapshot = Path(launch["code_snapshot"])
    assert snapshot.parent == sweep_dir / "code" and commit[:10] in snapshot.name
    assert (snapshot / "aimscale" / "train" / "loop.py").read_text() == original
    assert not (snapshot / ".git").exists()

    st = wait_all_terminal(sweep_dir, 300)
    assert [r["state"] for r in st["runs"]] == ["done", "done"], st
    starts = []
    for run_id in manifest["runs"]:
        run = json.loads((sweep_dir / run_id / "provenance.json").read_text())
        assert run["code_root"] == str(snapshot)  # imported from the snapshot
        assert run["commit"] == commit and run["dirty"] is False and "snapshot" in run["note"]
        assert run["job_id"] and run["job_id"].isdigit()  # the local controller's job id
        starts.append(run["at"])
    assert max(starts) > edited_at  # one run started only after the live code was broken


def test_slurm_job_setup_imports_the_snapshot(tmp_path):
    params = slurm_parameters(ResourceClass(name="tiny"), ResourcePolicy(), "job",
                              tmp_path / "code" / "snap")
    assert params["setup"][0].startswith(f"export PYTHONPATH={tmp_path / 'code' / 'snap'}")
    assert "export PYTHONSAFEPATH=1" in params["setup"]  # the working directory is not first


def test_debug_launch_records_provenance_without_snapshot(tmp_path):
    from sweep_helpers import aimscale

    sweep_dir = tmp_path / "sweep"
    base = copy.deepcopy(TINY_BASE)
    base["train"].update(steps=2, eval_every=2, checkpoint_every=2)
    spec = write_spec(tmp_path / "s.yaml", "dbg", sweep_dir, base=base)
    aimscale("launch", str(spec), "--dry-run")
    assert not (sweep_dir / "sweep.json").exists()  # a dry run writes nothing
    aimscale("launch", str(spec), "--executor", "debug")
    launch = json.loads((sweep_dir / "sweep.json").read_text())["launches"][-1]
    assert launch["code_snapshot"] is None  # in-process: no snapshot directory
    assert not [p for p in (sweep_dir / "code").glob("*") if p.is_dir()]
    assert launch["provenance"]["code_root"] == str(ROOT)
    diff = subprocess.run(["git", "-C", str(ROOT), "diff", "HEAD", "--binary"],
                          capture_output=True, text=True, check=True).stdout
    diff_file = launch["provenance"]["diff_file"]
    assert (Path(diff_file).read_text() == diff) if diff else diff_file is None
    (run_id,) = json.loads((sweep_dir / "sweep.json").read_text())["runs"]
    run = json.loads((sweep_dir / run_id / "provenance.json").read_text())
    assert run["code_root"] == str(ROOT) and run["commit"] == launch["provenance"]["commit"]
