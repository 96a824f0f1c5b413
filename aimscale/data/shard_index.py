"""The stored index of a set of tar shards: per sample its shard, byte offset and size.

`aimscale data index PATH` scans the shards once and writes a directory (default: beside the
shards, `PATH/aimscale-index` for a directory, `aimscale-index.<pattern>` next to a glob) of numpy
arrays that every rank memory-maps, so start-up and every requeue read no tar header and build no
Python list; the page cache holds one copy per node.

    shard_starts.npy  int64 [S + 1]   samples of shard k: shard_starts[k] .. shard_starts[k+1] - 1
    offsets.npy       uint32 [N]      byte offset of the image member (uint64 if a shard >= 4 GiB)
    sizes.npy         uint32 [N]      byte size of the image member
    labels.npy        int32 [N]       the `.cls` label, -1 where none (absent if no sample has one)
    index.json        written last    format, counts, shard names (relative to the index) and sizes

8 bytes per sample without labels (16 GB for 2B images; 4 more with labels or uint64 offsets),
shared by the ranks of a node through the page cache, instead of Python lists in every process.
An index whose shards changed (names or byte sizes) is refused with the command that rebuilds it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aimscale.atomic import atomic_write_json
from aimscale.data.errors import DataError
from aimscale.jsonfiles import UnreadableFileError, read_json

FORMAT = 1
INDEX_DIRNAME = "aimscale-index"
META = "index.json"
_CHUNK = 1 << 22  # samples per copy when the arrays are finalised


def default_index_dir(path: str | Path) -> Path:
    """Where the index of `path` (a shard directory or a glob) lives by default."""
    path = str(path)
    if os.path.isdir(path):
        return Path(path) / INDEX_DIRNAME
    directory, pattern = os.path.split(path)
    # '.' is replaced too, so the index directory never looks like a `*.tar` shard
    return Path(directory or ".") / f"{INDEX_DIRNAME}.{re.sub(r'[^A-Za-z0-9_-]', '_', pattern)}"


def is_index_dir(path: str | Path) -> bool:
    return os.path.isfile(os.path.join(str(path), META))


@dataclass
class ShardIndex:
    """Samples of a set of shards as arrays (memory-mapped when opened from disk)."""

    shards: list[str]
    shard_starts: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray
    num_classes: int
    directory: str | None = None  # where it is stored; None: built in memory by a scan

    def __len__(self) -> int:
        return len(self.offsets)

    def shard_of(self, i: int) -> int:
        return int(np.searchsorted(self.shard_starts, i, side="right")) - 1

    @classmethod
    def from_arrays(cls, shards: list[str], parts: list[tuple[np.ndarray, ...]]) -> ShardIndex:
        """An in-memory index from per-shard (offsets, sizes, labels) arrays."""
        counts = [len(p[0]) for p in parts]
        starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)

        def joined(k, dtype):
            return np.concatenate([np.empty(0, dtype)] + [p[k] for p in parts]).astype(dtype)

        labels = joined(2, np.int32)
        known = labels[labels >= 0]
        return cls(shards, starts, joined(0, np.int64), joined(1, np.int64), labels,
                   int(known.max()) + 1 if known.size else 0)

    def __reduce__(self):
        # a stored index travels to loader workers as its directory, never as a copy of the arrays
        if self.directory is not None:
            return (ShardIndex.open, (self.directory, None, False))
        return (ShardIndex, (self.shards, self.shard_starts, self.offsets, self.sizes,
                             self.labels, self.num_classes))

    @classmethod
    def open(cls, directory: str | Path, expected: list[str] | None = None,
             verify: bool = True) -> ShardIndex:
        """Memory-map the index in `directory`; `expected` (the shards the source path names now)
        must be the indexed shards, and (`verify`) each must have its indexed byte size. Raises
        DataError if the index is incomplete, foreign or stale."""
        directory = Path(directory)
        try:
            meta = read_json(directory / META)
        except UnreadableFileError as err:
            raise DataError(f"{err}; rebuild the index with `aimscale data index`") from None
        required = ("format", "num_samples", "shards")
        if not isinstance(meta, dict) or any(k not in meta for k in required) or (
            meta["format"] != FORMAT
        ):
            raise DataError(
                f"{directory} is not an aimscale shard index of format {FORMAT}; rebuild it with "
                "`aimscale data index PATH`"
            )
        shards = [os.path.normpath(os.path.join(directory.absolute(), s["path"]))
                  for s in meta["shards"]]
        fix = f"rebuild it with `aimscale data index {meta.get('source', 'PATH')}`"
        expected = None if expected is None else [os.path.abspath(s) for s in expected]
        if expected is not None and len(expected) != len(shards):
            raise DataError(
                f"the shard index {directory} lists {len(shards)} shards but the source now has "
                f"{len(expected)}; {fix}"
            )
        if expected is not None and shards != expected:
            now, then = next((a, b) for a, b in zip(expected, shards, strict=True) if a != b)
            raise DataError(f"the source's shard {now} is not the indexed {then}; {fix}")
        for shard, entry in zip(shards, meta["shards"], strict=True):
            if not verify:
                break
            try:
                size = os.stat(shard).st_size
            except OSError:
                missing = f"shard {shard} of the index {directory} is missing; {fix}"
                raise DataError(missing) from None
            if size != entry["bytes"]:
                raise DataError(
                    f"shard {shard} changed since it was indexed ({size} bytes, the index says "
                    f"{entry['bytes']}); {fix}"
                )
        arrays = {
            name: np.load(directory / f"{name}.npy", mmap_mode="r")
            for name in ("shard_starts", "offsets", "sizes")
        }
        n = int(meta["num_samples"])
        if meta.get("labelled"):
            labels = np.load(directory / "labels.npy", mmap_mode="r")
        else:  # a zero-stride view: O(1) memory at any size
            labels = np.broadcast_to(np.int32(-1), (n,))
        if len(arrays["offsets"]) != n or len(arrays["shard_starts"]) != len(shards) + 1:
            raise DataError(f"the shard index {directory} is inconsistent (array lengths); {fix}")
        return cls(shards, np.asarray(arrays["shard_starts"]), arrays["offsets"], arrays["sizes"],
                   labels, int(meta.get("num_classes", 0)), str(directory))


class IndexWriter:
    """Writes an index shard by shard in O(1) memory; `close()` publishes it atomically.

    The arrays grow as raw files in a temporary sibling directory, are converted to `.npy` (with
    the narrowest offset dtype) on `close`, and the directory replaces `out` only when complete.
    """

    def __init__(self, out: str | Path, source: str = "PATH"):
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()) and not is_index_dir(self.out):
            raise DataError(
                f"{self.out} exists and is not a shard index; choose another --out directory"
            )
        self.source = source
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self._files = {name: open(self.tmp / f"{name}.raw", "wb") for name in ("offsets", "sizes")}
        self.shards: list[dict] = []
        self.counts: list[int] = []
        self.max_offset = 0
        self.max_label = -1

    def add_shard(self, shard: str, offsets: np.ndarray, sizes: np.ndarray,
                  labels: np.ndarray | None = None) -> None:
        """Append one shard's samples (in member order)."""
        offsets = np.asarray(offsets, dtype=np.uint64)
        sizes = np.asarray(sizes, dtype=np.int64)
        if sizes.size and sizes.max() >= 1 << 32:
            raise DataError(f"{shard} has an image member of 4 GiB or more; that is not an image")
        self._files["offsets"].write(offsets.tobytes())
        self._files["sizes"].write(sizes.astype(np.uint32).tobytes())
        labelled = labels is not None and len(labels) and int(np.max(labels)) >= 0
        if labelled and "labels" not in self._files:  # the first label: back-fill the -1s
            self._files["labels"] = open(self.tmp / "labels.raw", "wb")
            for start in range(0, sum(self.counts), _CHUNK):
                fill = min(_CHUNK, sum(self.counts) - start)
                self._files["labels"].write(np.full(fill, -1, np.int32).tobytes())
        if "labels" in self._files:
            if labels is None:
                labels = np.full(len(offsets), -1, np.int32)
            self._files["labels"].write(np.asarray(labels, dtype=np.int32).tobytes())
        if offsets.size:
            self.max_offset = max(self.max_offset, int(offsets.max()))
        if labelled:
            self.max_label = max(self.max_label, int(np.max(labels)))
        relative = os.path.relpath(os.path.abspath(shard), os.path.abspath(self.out))
        self.shards.append({"path": relative, "bytes": os.stat(shard).st_size})
        self.counts.append(len(offsets))

    def close(self) -> dict:
        """Finalise the arrays, write index.json last, move the directory into place."""
        for handle in self._files.values():
            handle.close()
        n = sum(self.counts)
        offset_dtype = np.uint32 if self.max_offset < 1 << 32 else np.uint64
        _finalise(self.tmp, "offsets", np.uint64, offset_dtype, n)
        _finalise(self.tmp, "sizes", np.uint32, np.uint32, n)
        if self.max_label >= 0:
            _finalise(self.tmp, "labels", np.int32, np.int32, n)
        starts = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)]).astype(np.int64)
        np.save(self.tmp / "shard_starts.npy", starts)
        meta = {
            "format": FORMAT, "source": self.source, "num_samples": n,
            "num_shards": len(self.shards), "labelled": self.max_label >= 0,
            "num_classes": self.max_label + 1, "offset_dtype": np.dtype(offset_dtype).name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "shards": self.shards,
        }
        atomic_write_json(self.tmp / META, meta)
        old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
        if self.out.exists():
            os.rename(self.out, old)
        os.rename(self.tmp, self.out)
        shutil.rmtree(old, ignore_errors=True)
        return {k: v for k, v in meta.items() if k != "shards"}

    def abort(self) -> None:
        for handle in self._files.values():
            handle.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _finalise(directory: Path, name: str, raw_dtype, dtype, n: int) -> None:
    """`name.raw` (raw_dtype) -> `name.npy` (dtype), copied in chunks; the raw file is removed."""
    raw = directory / f"{name}.raw"
    out = np.lib.format.open_memmap(directory / f"{name}.npy", mode="w+", dtype=dtype, shape=(n,))
    if n:
        source = np.memmap(raw, dtype=raw_dtype, mode="r", shape=(n,))
        for start in range(0, n, _CHUNK):
            out[start : start + _CHUNK] = source[start : start + _CHUNK]
        del source
    out.flush()
    with open(directory / f"{name}.npy", "rb+") as handle:
        os.fsync(handle.fileno())
    del out
    os.unlink(raw)
