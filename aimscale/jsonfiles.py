"""The one reader of the package's JSON and JSON-lines files, with one policy for damage.

Policy (every caller gets the same answer for the same bytes):
- A missing file is "absent": `read_json` returns `default`, `read_jsonl` returns no rows.
- A JSON file (written atomically, so never torn by a crash of ours) that is empty, truncated or
  not JSON is *unreadable*: `UnreadableFileError` names the file and what is wrong. Callers decide
  whether that stops them (a trainer) or only marks one run (status, collect).
- A JSON-lines file is append-only: its last line is complete only once its newline is written.
  An unterminated last line is what a crash leaves: readers ignore it and a resuming writer trims
  it (`trim_torn_tail`). A *terminated* line that is not a JSON object is corruption: an error
  that names the file and the line number (never skipped silently: later rows would be misread).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class UnreadableFileError(ValueError):
    """A file that exists but cannot be read as the JSON it should hold."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = Path(path)
        self.problem = problem
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}")


def read_json(path: str | Path, default: Any = None) -> Any:
    """The JSON value in `path`; `default` when the file does not exist."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return default
    except IsADirectoryError as error:
        raise UnreadableFileError(path, "is a directory, not a JSON file") from error
    if not data.strip():
        raise UnreadableFileError(path, f"is empty ({len(data)} bytes)")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise UnreadableFileError(path, f"is not valid JSON ({error})") from error


def parse_jsonl(data: bytes, path: str | Path = "<bytes>", first_line: int = 1) -> list[dict]:
    """The objects of every complete line of `data` (an unterminated last piece is ignored)."""
    pieces = data.split(b"\n")[:-1]  # the piece after the last newline is not complete
    rows = []
    for number, line in enumerate(pieces, start=first_line):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (UnicodeDecodeError, ValueError) as error:
            raise UnreadableFileError(path, f"corrupt line ({error})", line=number) from error
        if not isinstance(row, dict):
            raise UnreadableFileError(path, "line is not a JSON object", line=number)
        rows.append(row)
    return rows


def read_jsonl(path: str | Path) -> list[dict]:
    """Every complete row of a JSON-lines file; no rows when it does not exist."""
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return parse_jsonl(data, path)


def read_jsonl_tail(path: str | Path, max_bytes: int = 8192) -> list[dict]:
    """The complete rows in the last `max_bytes` of a file (cheap; for status displays).

    The first piece of the window may be a partial line and is skipped, not treated as damage.
    """
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return []
    if start > 0:
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    return parse_jsonl(data, path, first_line=0)


def trim_torn_tail(path: str | Path) -> int:
    """Cut an unterminated last line off a JSON-lines file; returns the bytes removed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    keep = data.rfind(b"\n") + 1
    if keep == len(data):
        return 0
    os.truncate(path, keep)
    return len(data) - keep
