"""Claiming a run directory before training: one writer, and only our own kind of directory.

`claim(run_dir, cfg)` is called by the process that writes the run (rank 0) before it writes
anything, and holds the directory for the life of the trainer:

- Recognised: a directory is an aimscale run directory when its `config.yaml` loads as a run
  config (the launcher writes it before submitting; the trainer writes it first on a fresh run).
  A missing or empty directory, or one holding only the lock file and temp files of atomic
  writes (a first start cut short), is new. Anything else is refused and left untouched.
- Locked: an exclusive POSIX lock on `<run_dir>/.lock`, which records the holder's host and pid.
  The kernel releases it when the holder exits or dies, so a requeued job or a rerun after a
  node failure resumes; a second trainer is refused with the holder's name. (A POSIX lock, not
  `flock`: forked loader workers do not inherit it, so orphans of a killed trainer cannot keep
  the run locked.)
- Checked: the config must be the run's (same `config_hash`); `summary.json` and every
  terminated line of `metrics.jsonl` must read (`aimscale.jsonfiles` policy). A torn last line of
  metrics.jsonl, what a crash leaves, is trimmed, and temp files of writes killed mid-way are
  deleted, in the run directory and in `checkpoints/`.

Every refusal is a `RunRefused` (bad input, exit 2). Refusals of a run directory that is ours and
locked by us (another config, a damaged file) are also recorded in its `error.txt`.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

from aimscale.atomic import atomic_write_text, is_temp_file, remove_temp_files
from aimscale.config import config_hash, from_yaml, to_yaml
from aimscale.jsonfiles import UnreadableFileError, read_jsonl, trim_torn_tail
from aimscale.train.checkpoint import checkpoint_dir
from aimscale.train.metrics import METRICS_FILE
from aimscale.train.runstate import read_summary, write_error

LOCK_FILE = ".lock"
CONFIG_FILE = "config.yaml"


class RunRefused(ValueError):
    """The trainer will not start this run (bad input: exit 2); nothing was trained."""


class RunDirLock:
    """The exclusive lock of one run directory, held until `release()` or process exit."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run_dir: Path) -> RunDirLock:
        path = run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
            os.close(fd)
            raise RunRefused(
                f"{run_dir} is being trained by another process ({holder or 'holder unknown'}); "
                "a run directory has one writer: wait for that trainer to end, or stop it"
            ) from None
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%FT%T%z')}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder + "\n").encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def claim(run_dir: str | Path, cfg) -> tuple[RunDirLock, dict[str, Any] | None]:
    """Lock and check `run_dir` for `cfg` (see the module docstring); returns the lock and the
    run's summary when it is already done."""
    run_dir = Path(run_dir)
    existing = _recognise(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunDirLock.acquire(run_dir)
    try:
        if existing is None:
            existing = _recognise(run_dir)  # another trainer may have started it meanwhile
        if existing is None:
            atomic_write_text(run_dir / CONFIG_FILE, to_yaml(cfg))
        else:
            _same_config(run_dir, existing, cfg)
        summary = _readable_files(run_dir)
        remove_temp_files(run_dir)
        remove_temp_files(checkpoint_dir(run_dir))
    except BaseException:
        lock.release()
        raise
    return lock, summary


def _recognise(run_dir: Path):
    """The RunConfig in `run_dir`, or None for a new directory; refuses any other directory."""
    if not run_dir.exists():
        return None
    if not run_dir.is_dir():
        raise RunRefused(f"run_dir {run_dir} is a file, not a directory; choose another run_dir")
    names = sorted(p.name for p in run_dir.iterdir())
    if CONFIG_FILE not in names:
        other = [n for n in names if n != LOCK_FILE and not is_temp_file(n)]
        if not other:
            return None
        shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "")
        raise RunRefused(
            f"run_dir {run_dir} is not empty and is not an aimscale run directory (no "
            f"{CONFIG_FILE}; it holds {shown}); nothing in it was changed: choose an empty or "
            "new run_dir"
        )
    try:
        return from_yaml(run_dir / CONFIG_FILE)
    except Exception as err:  # any failure means "not a run config we can train"
        why = "; ".join(getattr(err, "problems", None) or [str(err) or type(err).__name__])
        raise RunRefused(
            f"run_dir {run_dir} has a {CONFIG_FILE} that is not an aimscale run config ({why}); "
            "nothing in it was changed: restore that file, or choose an empty or new run_dir"
        ) from None


def _same_config(run_dir: Path, existing, cfg) -> None:
    theirs, ours = config_hash(existing), config_hash(cfg)
    if theirs != ours:
        _refuse_recorded(
            run_dir,
            f"{run_dir} holds a run with a different config (hash {theirs}; this one {ours}); "
            "set another run_dir, or delete that directory to start over",
        )


def _readable_files(run_dir: Path) -> dict[str, Any] | None:
    """The summary (None: not done); refuses a damaged summary.json or metrics.jsonl."""
    try:
        summary = read_summary(run_dir)
    except UnreadableFileError as err:
        _refuse_recorded(
            run_dir, f"{err}; delete it and run again: the run finishes from its last checkpoint"
        )
    metrics = run_dir / METRICS_FILE
    try:
        read_jsonl(metrics)  # a torn last line is not an error (a crash leaves one)
    except UnreadableFileError as err:
        _refuse_recorded(
            run_dir,
            f"{err}; the file was changed by something other than the trainer: restore it, or "
            "train the run again in a new run_dir",
        )
    trim_torn_tail(metrics)
    return summary


def _refuse_recorded(run_dir: Path, reason: str) -> None:
    write_error(run_dir, reason)
    raise RunRefused(f"{reason} (also in {run_dir / 'error.txt'})")
