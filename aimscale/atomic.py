"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

Write to a temporary file in the same directory, fsync it, rename it over the target, fsync the
directory. Used for every file of the run-directory contract except the append-only metrics.
A directory written by several processes (a sharded checkpoint) is made the same way:
`make_temp_dir` next to the target, fill it, `replace_dir`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# mkstemp creates 0600 files; run files must be readable by collaborators on a shared cluster
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_DIR_MODE = 0o777 & ~_UMASK
# the temp names `atomic_write` gives: ".<target name>.<random characters of mkstemp>.tmp"
_TEMP_PREFIX, _TEMP_SUFFIX = ".", ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]+\.tmp$")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(fileobj)` on a temp file, then atomically move it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f"{_TEMP_PREFIX}{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    )


def make_temp_dir(path: str | Path) -> Path:
    """An empty temp directory next to `path`, named like `atomic_write`'s temp files (so
    `remove_temp_files` clears it if the writer is killed); fill it, then `replace_dir`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{path.name}.", suffix=_TEMP_SUFFIX,
                           dir=path.parent)
    os.chmod(tmp, _DIR_MODE)  # mkdtemp creates 0700
    return Path(tmp)


def replace_dir(tmp: str | Path, path: str | Path) -> Path:
    """Atomically rename the filled temp directory `tmp` to `path` and fsync the parent; an
    existing `path` is first moved to a temp name, then deleted. (Sync the files inside first.)"""
    tmp, path = Path(tmp), Path(path)
    old = None
    if path.exists():
        old = make_temp_dir(path)
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def is_temp_file(name: str) -> bool:
    """Whether `name` is the name of an `atomic_write` temp file (or `make_temp_dir` directory)."""
    return bool(_TEMP_NAME.match(name))


def remove_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files and directories that writes killed mid-way left in `directory`
    (not below it); call only while no other process writes there. Returns the deleted paths."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for path in directory.iterdir():
        if not is_temp_file(path.name):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
