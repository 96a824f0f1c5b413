"""On-disk feature cache: the features of one split and block window as fp16 shards.

Used only without augmentation (the features of an image are then fixed), so the trunk runs
once over a split and every epoch reads the store instead. Layout of a store directory:

- `shard_<i>.f16` — rows [i·S, (i+1)·S) as float16 [rows, tokens, width], C order;
- `shard_<i>.ok` — one byte per row: 1 if its image decoded, 0 if it was left out;
- `meta.json` — shape, shard size and what the features came from; written last, atomically:
  its presence (with matching fields) means the store is complete.

Shards are written in row order to temp files renamed when complete, by whichever rank owns
them. Rows are read with one positioned read each (`os.preadv` into the batch's buffer), not
through a memory map: on this machine's kernel (6.18, large page-cache folios) a page fault on a
file mapping maps whole folios, and one random batch of 256 rows from a 30k-row store raised the
peak RSS by about 180 MB, growing with the store (measured; MADV_RANDOM did not help). With
positioned reads the page cache still serves repeated epochs, and the process holds one batch.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from aimscale.atomic import atomic_write_json
from aimscale.jsonfiles import UnreadableFileError, read_json

SHARD_MB = 64.0  # per shard file (AIMSCALE_PROBE_SHARD_MB overrides, e.g. to test many shards)
OPEN_SHARDS = 64  # shard files kept open at once (least recently used closed first)


class FeatureStore:
    """Features [rows, tokens, width] of one split and window, stored as fp16 shards."""

    def __init__(self, directory: Path, rows: int, tokens: int, width: int, source: dict):
        self.directory = Path(directory)
        self.rows, self.tokens, self.width = rows, tokens, width
        shard_bytes = float(os.environ.get("AIMSCALE_PROBE_SHARD_MB", SHARD_MB)) * 2**20
        self.shard_rows = max(1, int(shard_bytes // (tokens * width * 2)))
        self.meta = {
            "rows": rows, "tokens": tokens, "width": width, "shard_rows": self.shard_rows,
            "dtype": "float16", "source": source,
        }  # fmt: skip
        self._open_files: OrderedDict[int, tuple[int, np.ndarray]] = OrderedDict()  # fd, ok

    @property
    def num_shards(self) -> int:
        return -(-self.rows // self.shard_rows)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_rows, min(self.rows, (shard + 1) * self.shard_rows))

    def complete(self) -> bool:
        try:
            return read_json(self.directory / "meta.json") == self.meta
        except UnreadableFileError:
            return False  # damaged: written again

    def writer(self, shard: int) -> ShardWriter:
        """Append the rows of shard `shard` in order; `commit()` moves the files in place."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return ShardWriter(self._path(shard, "f16"), self._path(shard, "ok"),
                           len(self.shard_range(shard)), (self.tokens, self.width))  # fmt: skip

    def finish(self) -> None:
        """Mark the store complete (after every shard is written)."""
        atomic_write_json(self.directory / "meta.json", self.meta)

    def read(self, positions: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """(float32 features [B', tokens, width], kept positions) of rows `positions`; rows
        whose image was left out when the store was written are dropped (B' <= B)."""
        positions = np.asarray(positions, dtype=np.int64)
        rows = np.empty((len(positions), self.tokens, self.width), dtype=np.float16)
        keep = np.zeros(len(positions), dtype=bool)
        row_bytes = self.tokens * self.width * 2
        for i, position in enumerate(positions.tolist()):
            shard, local = divmod(position, self.shard_rows)
            fd, ok = self._open(shard)
            view = memoryview(rows[i]).cast("B")
            if os.preadv(fd, [view], local * row_bytes) != row_bytes:
                raise OSError(f"{self._path(shard, 'f16')} is shorter than its meta.json says")
            keep[i] = ok[local]
        return torch.from_numpy(rows[keep]).float(), positions[keep]

    def close(self) -> None:
        while self._open_files:
            os.close(self._open_files.popitem(last=False)[1][0])

    def _open(self, shard: int) -> tuple[int, np.ndarray]:
        if shard in self._open_files:
            self._open_files.move_to_end(shard)
            return self._open_files[shard]
        fd = os.open(self._path(shard, "f16"), os.O_RDONLY)
        ok = np.fromfile(self._path(shard, "ok"), dtype=np.uint8).astype(bool)
        self._open_files[shard] = (fd, ok)
        if len(self._open_files) > OPEN_SHARDS:
            os.close(self._open_files.popitem(last=False)[1][0])
        return self._open_files[shard]

    def _path(self, shard: int, suffix: str) -> Path:
        return self.directory / f"shard_{shard:05d}.{suffix}"


class ShardWriter:
    """Writes one shard's two files as temp files, renamed over the targets by `commit()`, so a
    reader (or a crash) never sees a partial shard."""

    def __init__(self, path: Path, ok_path: Path, rows: int, row_shape: tuple[int, int]):
        self.paths = (path, ok_path)
        self.rows, self.row_shape, self.written = rows, row_shape, 0
        self.temps = [p.with_name(f".{p.name}.{os.getpid()}.tmp") for p in self.paths]
        self.handles = [open(t, "wb") for t in self.temps]  # noqa: SIM115 (closed in commit)

    def append(self, features: np.ndarray, ok: np.ndarray) -> None:
        """Rows in order: features float16 [b, tokens, width] (zeros where ok is 0), ok [b]."""
        if features.shape[1:] != self.row_shape or len(features) != len(ok):
            raise ValueError(f"rows of shape {features.shape[1:]}, expected {self.row_shape}")
        self.handles[0].write(np.ascontiguousarray(features, dtype=np.float16).data)
        self.handles[1].write(np.asarray(ok, dtype=np.uint8).tobytes())
        self.written += len(ok)

    def commit(self) -> None:
        if self.written != self.rows:
            raise RuntimeError(f"shard has {self.written} of {self.rows} rows")
        for handle, temp, path in zip(self.handles, self.temps, self.paths, strict=True):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(temp, path)
