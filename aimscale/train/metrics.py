"""`metrics.jsonl`: append-only JSON lines, the authoritative record of a run.

Every checkpoint stores the file's byte size at save time; a resumed run truncates the file back
to that offset, so rows logged after the checkpoint (and a line torn by a kill) are dropped and
then written again, identically, by the resumed run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aimscale.jsonfiles import read_jsonl

METRICS_FILE = "metrics.jsonl"
# the only non-deterministic values
TIMING_FIELDS = ("time_s", "images_per_s", "wall_time_s", "model_flops_per_s", "mfu")


class MetricsWriter:
    """Appends one JSON object per line, flushed and fsynced per row (rows are rare)."""

    def __init__(self, path: str | Path, truncate_to: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        if truncate_to is not None:
            size = self.path.stat().st_size
            if truncate_to > size:
                raise ValueError(
                    f"{self.path} has {size} bytes but the checkpoint expects at least "
                    f"{truncate_to}; the metrics file was edited or replaced"
                )
            os.truncate(self.path, truncate_to)
        self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open for the whole run

    def write(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n"
        self._handle.write(line.encode())
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def offset(self) -> int:
        """Bytes written so far: what a checkpoint stores as `metrics_offset`."""
        return self._handle.tell()

    def close(self) -> None:
        self._handle.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All complete rows of a metrics file (a torn last line from a kill is ignored)."""
    return read_jsonl(path)


def without_timing(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in TIMING_FIELDS}
