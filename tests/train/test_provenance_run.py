"""`aimscale train` records the provenance of every start in the run directory."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from .conftest import REPO, SYNTHETIC, TINY, run_cli


def test_train_writes_provenance_json(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", *TINY, *SYNTHETIC, "train.steps=2",
            f"run_dir={run_dir}"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    record = json.loads((run_dir / "provenance.json").read_text())
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"],
                                capture_output=True, text=True, check=True).stdout.strip())
    assert record["commit"] == head and record["dirty"] is dirty
    assert record["code_root"] == str(REPO)
    assert (record["diff_file"] is not None) == bool(
        subprocess.run(["git", "-C", str(REPO), "diff", "HEAD"], capture_output=True,
                       text=True, check=True).stdout)
    assert record["python"] == sys.version.split()[0] and "torch" in record["packages"]
    assert record["host"] == socket.gethostname() and record["job_id"] is None
    assert "diff" not in record
