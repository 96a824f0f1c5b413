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
    """The step of the last complete metrics row (a line being written is not one yet)."""
    from aimscale.jsonfiles import read_jsonl

    rows = read_jsonl(run_dir / "metrics.jsonl")
    return rows[-1]["step"] if rows else 0


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


# ---- the real test cluster's faults (tests/slurm/start.sh made it; these need root) ----------

SLURM_STATE = Path("/var/spool/aimscale-slurm")


def start_cluster(**env: str) -> str:
    """Run tests/slurm/start.sh (restarts only what is down); its stdout."""
    import os

    out = subprocess.run(["bash", str(ROOT / "tests" / "slurm" / "start.sh")], text=True,
                         capture_output=True, timeout=120, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout


def stop_daemon(name: str) -> None:
    """Stop slurmctld or slurmd (by the pid in its pid file) and wait until it is gone."""
    import os
    import signal

    pid = int((SLURM_STATE / f"{name}.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, 0.1, f"{name} to stop")


def kill_node(job_ids: list[str]) -> list[int]:
    """What a node failure does to these jobs: slurmd and every process of the jobs (their
    slurmstepd, srun tasks, python) die at once, by SIGKILL. Returns the pids killed."""
    import os
    import signal

    raw = {}  # submitit's 12_3 -> SLURM's own job id of that task
    for line in subprocess.run(["squeue", "-h", "-r", "-o", "%i %A"], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        task, own = line.split()
        raw[task] = own
    wanted = {raw[j] for j in job_ids}
    pids = [int((SLURM_STATE / "slurmd.pid").read_text())]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = b"\0" + (proc / "environ").read_bytes()
        except OSError:
            continue
        if any(cmdline.startswith(f"slurmstepd: [{j}.".encode())
               or f"\0SLURM_JOB_ID={j}\0".encode() in environ for j in wanted):
            pids.append(int(proc.name))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def metrics_lines(run_dir: Path) -> list[str]:
    """The complete lines of metrics.jsonl (without an unterminated last one)."""
    path = run_dir / "metrics.jsonl"
    return path.read_text().split("\n")[:-1] if path.exists() else []


def resumed_from_checkpoint(before: list[str], after: list[str], checkpoint_step: int) -> bool:
    """The rows up to `checkpoint_step` kept byte for byte (timings included): the run resumed
    from that checkpoint instead of starting again; the steps go on without gap or repeat."""
    kept = [line for line in before if json.loads(line)["step"] <= checkpoint_step]
    steps = [json.loads(line)["step"] for line in after]
    return bool(kept) and after[:len(kept)] == kept and steps == sorted(set(steps))
