"""Provenance: which code, environment, host and job produced a run or a launch.

`collect()` gathers it quickly (no network; git through a subprocess with a time-out): the git
commit of the code the `aimscale` package is imported from, whether that tree is dirty (and the
diff), Python and every installed distribution's version (importlib.metadata), the host and the
job id (SLURM array/job id, else submitit's local job id). Outside a git checkout the commit is
None with a note, unless the package root is a launch snapshot (`snapshot_code`), whose
`PROVENANCE.json` records the commit it was taken from.

Files: `<run_dir>/provenance.json` (+ `provenance.diff` when dirty), written atomically by the
trainer on rank 0 at every start; a launch records the same fields in `sweep.json`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aimscale.atomic import atomic_write_json, atomic_write_text
from aimscale.jsonfiles import read_json

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT_RECORD = "PROVENANCE.json"
SNAPSHOT_PACKAGES = ("aimscale", "analysis")
GIT_TIMEOUT_S = 10.0


def _git(root: Path, *args: str) -> str | None:
    """stdout of `git -C root args`, or None when git is missing, fails or times out."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: str | Path = PACKAGE_ROOT) -> dict[str, Any]:
    """{commit, dirty, diff, untracked, note}: the git state of the checkout holding `root`."""
    root = Path(root)
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        snap = read_json(root / SNAPSHOT_RECORD)
        if snap:  # a launch snapshot: the git state it was copied from
            return {**snap["git"], "note": f"code snapshot {root} taken at launch"}
        return {"commit": None, "dirty": None, "diff": "", "untracked": [],
                "note": f"{root} is not in a git checkout (or git is unavailable)"}
    status = _git(root, "status", "--porcelain", "--untracked-files=all") or ""
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    diff = _git(root, "diff", "HEAD", "--binary") or ""
    return {"commit": commit.strip(), "dirty": bool(status.strip()), "diff": diff,
            "untracked": untracked, "note": None}


def job_id(env: dict[str, str] | None = None) -> str | None:
    """SLURM `<array>_<task>` or job id; else the local submitit job id; else None."""
    env = dict(os.environ) if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID")


def packages() -> dict[str, str]:
    """name -> version of every installed distribution (the content of `pip freeze`)."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(name, dist.version)
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def collect(root: str | Path = PACKAGE_ROOT) -> dict[str, Any]:
    """The provenance record (with the full diff under "diff")."""
    return {
        "at": time.time(), "code_root": str(Path(root)), **git_state(root),
        "python": sys.version.split()[0], "python_executable": sys.executable,
        "platform": platform.platform(), "packages": packages(),
        "host": socket.gethostname(), "job_id": job_id(), "pid": os.getpid(),
    }


def store_diff(record: dict[str, Any], diff_path: str | Path) -> dict[str, Any]:
    """The record with its diff written to `diff_path` (when dirty) and replaced by "diff_file"."""
    record = dict(record)
    diff = record.pop("diff", "")
    record["diff_file"] = str(atomic_write_text(diff_path, diff)) if diff else None
    return record


EARLIER_KEYS = ("at", "commit", "dirty", "code_root", "host", "job_id")


def write_provenance(directory: str | Path, record: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Write `provenance.json` (and `provenance.diff` when the tree is dirty) in `directory`;
    return the record as written. Earlier starts (a resumed run) stay listed under "earlier"
    (their EARLIER_KEYS), so a run trained partly by other code shows it."""
    directory = Path(directory)
    previous = read_json(directory / "provenance.json") or {}
    diff_path = directory / "provenance.diff"
    earlier = list(previous.get("earlier", []))
    if previous:
        entry = {k: previous.get(k) for k in EARLIER_KEYS}
        entry["diff_file"] = None
        if previous.get("diff_file") and diff_path.exists():  # keep the earlier start's diff
            entry["diff_file"] = str(diff_path.rename(
                directory / f"provenance.earlier-{len(earlier)}.diff"))
        earlier.append(entry)
    record = store_diff(collect() if record is None else record, diff_path)
    record["earlier"] = earlier
    atomic_write_json(directory / "provenance.json", record)
    return record


def _package_files(root: Path) -> list[str]:
    """Files of the snapshot packages: git-tracked plus untracked non-ignored, else all."""
    listed = _git(root, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--",
                  *SNAPSHOT_PACKAGES)
    if listed is not None:
        return [p for p in listed.split("\0") if p and (root / p).is_file()]
    files = []
    for package in SNAPSHOT_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files.append(str(path.relative_to(root)))
    return files


def snapshot_code(sweep_dir: str | Path, root: str | Path = PACKAGE_ROOT,
                  record: dict[str, Any] | None = None) -> Path:
    """Copy the packages to `<sweep_dir>/code/<stamp>/` (jobs import from there, not from the
    live checkout) with its `PROVENANCE.json`; return the snapshot directory."""
    root = Path(root)
    record = collect(root) if record is None else record
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{(record.get('commit') or 'nogit')[:10]}"
    target = Path(sweep_dir) / "code" / stamp
    count = 1
    while target.exists():  # two launches within one second
        count += 1
        target = target.with_name(f"{stamp}-{count}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in _package_files(root):
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest)
    git = {k: record[k] for k in ("commit", "dirty", "diff", "untracked")}
    atomic_write_json(tmp / SNAPSHOT_RECORD, {"source": str(root), "taken_at": record["at"],
                                              "git": git})
    os.replace(tmp, target)
    return target
