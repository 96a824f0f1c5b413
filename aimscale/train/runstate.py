"""The run's state files: `status.json`, `summary.json` (presence means done) and `error.txt`.

All written atomically; only rank 0 calls these.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimscale.atomic import atomic_write_json, atomic_write_text
from aimscale.jsonfiles import read_json

STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.txt"
STATES = ("running", "stopped", "done", "failed")
_TRACEBACK_LINES = 40  # the excerpt kept in error.txt: the end of the traceback


@dataclass
class RunStatus:
    """`status.json` of one run; `restarts` counts the starts after the first."""

    run_dir: Path
    total_steps: int
    restarts: int = 0

    @classmethod
    def begin(cls, run_dir: str | Path, total_steps: int) -> RunStatus:
        """A start of the run: a previous status.json means this is a restart."""
        previous = read_json(Path(run_dir) / STATUS_FILE)
        restarts = 0 if previous is None else int(previous.get("restarts", 0)) + 1
        return cls(Path(run_dir), total_steps, restarts)

    def write(self, state: str, step: int, reason: str | None = None) -> dict[str, Any]:
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}; one of {STATES}")
        status = {
            "state": state,
            "step": step,
            "total_steps": self.total_steps,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "restarts": self.restarts,
        }
        if reason:
            status["reason"] = reason
        atomic_write_json(self.run_dir / STATUS_FILE, status)
        return status


def resolve_run_dir(cfg) -> Path:
    """`cfg.run_dir`, or `runs/<run_id>` (relative to the working directory) when it is unset."""
    from aimscale.config import run_id

    return Path(cfg.run_dir) if cfg.run_dir else Path("runs") / run_id(cfg)


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / STATUS_FILE)


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / SUMMARY_FILE)


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / SUMMARY_FILE, summary)


def write_error(run_dir: str | Path, reason: str, error: BaseException | None = None) -> None:
    """`error.txt`: the reason on the first line, then the end of the traceback, if any."""
    text = reason.rstrip() + "\n"
    if error is not None:
        lines = "".join(traceback.format_exception(error)).splitlines()
        if len(lines) > _TRACEBACK_LINES:
            lines = ["..."] + lines[-_TRACEBACK_LINES:]
        text += "\n" + "\n".join(lines) + "\n"
    atomic_write_text(Path(run_dir) / ERROR_FILE, text)


def clear_error(run_dir: str | Path) -> None:
    """A restarted run that finishes must not keep a stale error.txt from an earlier attempt."""
    (Path(run_dir) / ERROR_FILE).unlink(missing_ok=True)
