"""Shared helpers of the sweep tests: tiny specs, the CLI, waiting for states."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TIMING = ("time_s", "images_per_s", "wall_time_s", "model_flops_per_s", "mfu")

TINY_BASE = {
    "model": {"preset": "aim-tiny", "width": 32, "depth": 2, "heads": 2, "head_width": 32,
              "head_depth": 1},
    "data": {"preset": "synthetic", "num_images": 512, "val_images": 64},
    "train": {"steps": 10, "batch_size": 16, "log_every": 1, "eval_every": 10,
              "eval_images": 64, "checkpoint_every": 5, "device": "cpu"},
    "logging": {"progress": "none"},
}


def write_spec(path: Path, name: str, sweep_dir: Path, **sections) -> Path:
    spec = {"name": name, "sweep_dir": str(sweep_dir), "base": sections.pop("base", TINY_BASE)}
    spec.update(sections)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def aimscale(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "aimscale", *args], cwd=ROOT, text=True,
                         capture_output=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"aimscale {' '.join(args)} -> {out.returncode}\n{out.stdout}\n"
                             f"{out.stderr}")
    return out


def status(sweep_dir: Path) -> dict:
    out = aimscale("status", str(sweep_dir), "--json", check=False)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def wait_for(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_all_terminal(sweep_dir: Path, timeout: float) -> dict:
    def terminal():
        st = status(sweep_dir)
        return st if all(r["state"] in ("done", "failed", "stopped") for r in st["runs"]) else None

    return wait_for(terminal, timeout, 2.0, f"every run of {sweep_dir} to finish")


def metrics_without_timing(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def last_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0


def slurm_up() -> str | None:
    """None when the test cluster answers, else the reason to skip."""
    if shutil.which("sinfo") is None:
        return "sinfo not found: start the test cluster with tests/slurm/start.sh"
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*") in ("idle", "mixed", "allocated")
                                      for s in states):
        return f"SLURM cluster not up ({out.stderr.strip() or states}); run tests/slurm/start.sh"
    return None
