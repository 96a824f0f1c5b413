"""aimscale/provenance.py on real git repositories made in tmp (never the real checkout)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from aimscale import provenance

REPO = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "commit.gpgsign=false"]


def make_repo(path: Path) -> str:
    """A git repo holding a small aimscale/ + analysis/ tree; returns its commit."""
    (path / "aimscale" / "sub").mkdir(parents=True)
    (path / "analysis").mkdir()
    (path / "aimscale" / "__init__.py").write_text("VALUE = 1\n")
    (path / "aimscale" / "sub" / "mod.py").write_text("X = 'before'\n")
    (path / "analysis" / "__init__.py").write_text("")
    (path / ".gitignore").write_text("*.ignored\n")
    (path / "README.md").write_text("not a package\n")
    subprocess.run([*GIT, "init", "-q", str(path)], check=True)
    subprocess.run([*GIT, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-q", "-m", "init"], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_clean_then_dirty_tree_with_diff(tmp_path):
    commit = make_repo(tmp_path)
    clean = provenance.git_state(tmp_path)
    assert clean["commit"] == commit and len(commit) == 40
    assert clean["dirty"] is False and clean["diff"] == "" and clean["untracked"] == []
    (tmp_path / "aimscale" / "sub" / "mod.py").write_text("X = 'after'\n")
    (tmp_path / "aimscale" / "new.py").write_text("Y = 2\n")
    dirty = provenance.git_state(tmp_path)
    assert dirty["commit"] == commit and dirty["dirty"] is True
    assert "-X = 'before'" in dirty["diff"] and "+X = 'after'" in dirty["diff"]
    assert dirty["untracked"] == ["aimscale/new.py"]
    written = provenance.write_provenance(tmp_path / "run", {**provenance.collect(tmp_path)})
    on_disk = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert on_disk == written and on_disk["dirty"] is True and "diff" not in on_disk
    assert Path(on_disk["diff_file"]) == tmp_path / "run" / "provenance.diff"
    assert (tmp_path / "run" / "provenance.diff").read_text() == dirty["diff"]


def test_outside_git_commit_none_with_note(tmp_path):
    state = provenance.git_state(tmp_path)
    assert state["commit"] is None and state["dirty"] is None and "not in a git" in state["note"]
    record = provenance.write_provenance(tmp_path / "run", provenance.collect(tmp_path))
    assert record["commit"] is None and record["diff_file"] is None
    assert not (tmp_path / "run" / "provenance.diff").exists()


def test_fields_python_packages_host(tmp_path):
    record = provenance.collect()
    assert record["python"] == sys.version.split()[0]
    import torch

    assert record["packages"]["torch"] == torch.__version__.split("+")[0] or \
        record["packages"]["torch"] == torch.__version__
    assert len(record["packages"]) > 20 and record["host"]
    assert record["code_root"] == str(REPO)  # the checkout this test imports aimscale from


def test_job_id_from_slurm_or_local():
    assert provenance.job_id({"SLURM_JOB_ID": "77", "SLURM_ARRAY_JOB_ID": "70",
                              "SLURM_ARRAY_TASK_ID": "3"}) == "70_3"
    assert provenance.job_id({"SLURM_JOB_ID": "77"}) == "77"
    assert provenance.job_id({"SUBMITIT_LOCAL_JOB_ID": "4242"}) == "4242"
    assert provenance.job_id({}) is None


def test_snapshot_copies_packages_and_keeps_launch_git_state(tmp_path):
    live = tmp_path / "live"
    commit = make_repo(live)
    (live / "aimscale" / "sub" / "mod.py").write_text("X = 'edited before launch'\n")
    (live / "aimscale" / "extra.py").write_text("")  # untracked, not ignored: copied
    (live / "aimscale" / "junk.ignored").write_text("")  # ignored: left out
    snap = provenance.snapshot_code(tmp_path / "sweep", live)
    assert snap.parent == tmp_path / "sweep" / "code" and commit[:10] in snap.name
    files = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert files == ["PROVENANCE.json", "aimscale/__init__.py", "aimscale/extra.py",
                     "aimscale/sub/mod.py", "analysis/__init__.py"]
    (live / "aimscale" / "sub" / "mod.py").write_text("X = 'edited after launch'\n")
    assert (snap / "aimscale" / "sub" / "mod.py").read_text() == "X = 'edited before launch'\n"
    state = provenance.git_state(snap)  # not a checkout: the launch's state, from PROVENANCE.json
    assert state["commit"] == commit and state["dirty"] is True
    assert "+X = 'edited before launch'" in state["diff"] and "snapshot" in state["note"]
    again = provenance.snapshot_code(tmp_path / "sweep", live)  # same second: a new directory
    assert again != snap and (again / "aimscale" / "sub" / "mod.py").read_text().endswith(
        "after launch'\n")


def test_snapshot_without_git_copies_the_packages(tmp_path):
    live = tmp_path / "live"
    make_repo(live)
    shutil.rmtree(live / ".git")
    (live / "aimscale" / "__pycache__").mkdir()
    (live / "aimscale" / "__pycache__" / "x.pyc").write_bytes(b"")
    snap = provenance.snapshot_code(tmp_path / "sweep", live)
    files = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert files == ["PROVENANCE.json", "aimscale/__init__.py", "aimscale/sub/mod.py",
                     "analysis/__init__.py"]
    assert provenance.git_state(snap)["commit"] is None


def test_a_restart_keeps_earlier_starts_listed(tmp_path):
    repo = tmp_path / "repo"
    commit = make_repo(repo)
    (repo / "aimscale" / "__init__.py").write_text("VALUE = 2\n")
    first = provenance.write_provenance(tmp_path / "run", provenance.collect(repo))
    assert first["dirty"] is True and first["earlier"] == []
    assert (tmp_path / "run" / "provenance.diff").exists()
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qam", "two"], check=True)
    second = provenance.write_provenance(tmp_path / "run", provenance.collect(repo))
    assert second["commit"] != commit and second["dirty"] is False
    assert [(e["commit"], e["dirty"]) for e in second["earlier"]] == [(commit, True)]
    assert not (tmp_path / "run" / "provenance.diff").exists()  # this start is clean
    kept = Path(second["earlier"][0]["diff_file"])  # the 1st start's diff, moved aside
    assert kept.name == "provenance.earlier-0.diff" and "+VALUE = 2" in kept.read_text()
    third = provenance.write_provenance(tmp_path / "run", provenance.collect(repo))
    assert [e["commit"] for e in third["earlier"]] == [commit, second["commit"]]
    assert json.loads((tmp_path / "run" / "provenance.json").read_text()) == third
