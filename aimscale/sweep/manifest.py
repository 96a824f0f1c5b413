"""`<sweep_dir>/sweep.json`: the spec, the resolved runs and the job ids of every attempt.

Written atomically by `launch` (under `.launch.lock`), read by `status` and `collect`.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aimscale.atomic import atomic_write_json
from aimscale.jsonfiles import read_json

MANIFEST = "sweep.json"
LOCK = ".launch.lock"


class LaunchLocked(RuntimeError):
    """Another `aimscale launch` holds the sweep's lock."""


def manifest_path(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / MANIFEST


def read_manifest(sweep_dir: str | Path) -> dict[str, Any] | None:
    return read_json(manifest_path(sweep_dir))


def write_manifest(sweep_dir: str | Path, manifest: dict[str, Any]) -> None:
    manifest["updated_at"] = time.time()
    atomic_write_json(manifest_path(sweep_dir), manifest)


def new_manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "spec": spec, "created_at": time.time(), "runs": {}, "launches": []}


def latest_attempt(entry: dict[str, Any]) -> dict[str, Any] | None:
    attempts = entry.get("attempts") or []
    return attempts[-1] if attempts else None


@contextmanager
def launch_lock(sweep_dir: str | Path) -> Iterator[None]:
    """Hold `<sweep_dir>/.launch.lock` exclusively; fail at once if another launch has it."""
    path = Path(sweep_dir) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise LaunchLocked(
                f"another `aimscale launch` is submitting to {sweep_dir} (pid {holder}); wait "
                f"for it to finish, then launch again (only new runs will be submitted)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
