"""WebDataset-style tar shards: members `<key>.jpg|png` plus an optional `<key>.cls` label.

The key of a member is its path up to the first dot of the file name (WebDataset's rule), so
`a/b/x001.jpg` and `a/b/x001.cls` form one sample. An image is read by seeking to its offset, so
any sample can be fetched in any order without unpacking. Where the shards are: their stored
index (`aimscale data index PATH`, see `aimscale.data.shard_index`), memory-mapped; without one,
every process scans the headers (and the tiny `.cls` members) of every shard at start-up.
"""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
import tarfile
from pathlib import Path

import numpy as np

from aimscale.data.decode import decode_image
from aimscale.data.errors import DataError
from aimscale.data.shard_index import (
    IndexWriter,
    ShardIndex,
    default_index_dir,
    is_index_dir,
)

log = logging.getLogger("aimscale.data")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")
SCAN_HINT_SHARDS = 64  # scanning more shards than this at start-up earns a hint to index them


def shard_paths(path: str | Path) -> list[str]:
    """The shards named by `path`: a directory (its `*.tar`) or a glob pattern, sorted."""
    path = str(path)
    pattern = os.path.join(path, "*.tar") if os.path.isdir(path) else path
    return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))


class TarShardSource:
    """Samples of a set of uncompressed tar shards (`path`: a directory, a glob, or an index)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.name = f"tar-shards:{self.path}"
        if is_index_dir(self.path):
            self.index = ShardIndex.open(self.path)
        else:
            shards = shard_paths(self.path)
            stored = default_index_dir(self.path)
            if is_index_dir(stored):
                self.index = ShardIndex.open(stored, expected=shards)
            else:
                if len(shards) > SCAN_HINT_SHARDS:
                    log.info("scanning %d tar shards; `aimscale data index %s` stores the index "
                             "once for every process and requeue", len(shards), self.path)
                self.index = ShardIndex.from_arrays(shards, [scan_shard(s) for s in shards])
        self.class_names = [str(c) for c in range(self.index.num_classes)]

    # views of the index, not copies: a pickled source (a loader worker's) carries only the index
    shards = property(lambda self: self.index.shards)
    offsets = property(lambda self: self.index.offsets)
    sizes = property(lambda self: self.index.sizes)
    labels = property(lambda self: self.index.labels)  # -1 where a sample has no .cls

    def __len__(self) -> int:
        return len(self.offsets)

    def load(self, i: int) -> np.ndarray | None:
        size = int(self.sizes[i])
        try:
            with open(self.shards[self.index.shard_of(i)], "rb") as handle:
                handle.seek(int(self.offsets[i]))
                data = handle.read(size)
        except OSError:
            return None
        if len(data) != size:  # member cut off by a truncated shard
            return None
        return decode_image(data)


def build_index(path: str | Path, out: str | Path | None = None, workers: int = 0) -> dict:
    """Scan the shards of `path` and store their index in `out` (default: beside the shards).

    Returns the index's summary (num_samples, num_shards, ...) plus its `directory`.
    """
    shards = shard_paths(path)
    if not shards:
        raise DataError(f"no tar shards match {path}; give a directory of *.tar files or a glob "
                        "such as /data/shards/train-*.tar")
    out = Path(out) if out is not None else default_index_dir(path)
    writer = IndexWriter(out, source=str(path))
    try:
        if workers > 0:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for shard, arrays in zip(shards, pool.imap(scan_shard, shards, 4), strict=True):
                    writer.add_shard(shard, *arrays)
        else:
            for shard in shards:
                writer.add_shard(shard, *scan_shard(shard))
    except BaseException:
        writer.abort()
        raise
    return {**writer.close(), "directory": str(out)}


def scan_shard(shard: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, sizes, labels) int64 arrays of the image samples of one shard, in member order."""
    rows = _index_shard(shard)
    table = np.asarray(rows, dtype=np.int64).reshape(len(rows), 3)
    return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()


def _index_shard(shard: str) -> list[tuple[int, int, int]]:
    """(offset, size, label) of every image sample of one shard, in member order."""
    images: dict[str, tuple[int, int]] = {}
    labels: dict[str, int] = {}
    order: list[str] = []
    try:
        with tarfile.open(shard, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                head, _, name = member.name.rpartition("/")
                stem, dot, ext = name.partition(".")
                if not dot:
                    continue
                key = f"{head}/{stem}"
                ext = ext.lower()
                if ext in IMAGE_EXTENSIONS and key not in images:
                    images[key] = (member.offset_data, member.size)
                    order.append(key)
                elif ext == "cls":
                    handle = tar.extractfile(member)
                    text = handle.read().decode("utf-8", "replace").strip() if handle else ""
                    try:
                        labels[key] = int(text)
                    except ValueError:
                        log.warning("ignoring label %r of %s in %s", text, key, shard)
    except (tarfile.TarError, OSError, EOFError) as err:
        # a truncated shard: keep what was indexed; members cut short are skipped when loaded
        log.warning("tar shard %s is damaged (%s); using the %d samples before the damage",
                    shard, err, len(order))
    return [(images[k][0], images[k][1], labels.get(k, -1)) for k in order]
