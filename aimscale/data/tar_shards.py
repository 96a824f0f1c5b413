"""WebDataset-style tar shards: members `<key>.jpg|png` plus an optional `<key>.cls` label.

The key of a member is its path up to the first dot of the file name (WebDataset's rule), so
`a/b/x001.jpg` and `a/b/x001.cls` form one sample. Shards are indexed once (headers only, plus the
tiny `.cls` members); an image is read by seeking to its offset, so any sample can be fetched in
any order without unpacking.
"""

from __future__ import annotations

import glob
import logging
import os
import tarfile
from pathlib import Path

import numpy as np

from aimscale.data.decode import decode_image

log = logging.getLogger("aimscale.data")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")


def shard_paths(path: str | Path) -> list[str]:
    """The shards named by `path`: a directory (its `*.tar`) or a glob pattern, sorted."""
    path = str(path)
    if os.path.isdir(path):
        return sorted(glob.glob(os.path.join(path, "*.tar")))
    return sorted(p for p in glob.glob(path) if os.path.isfile(p))


class TarShardSource:
    """Samples of a set of uncompressed tar shards."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.shards = shard_paths(path)
        self.name = f"tar-shards:{self.path}"
        # per sample: shard index, byte offset and size of the image member
        shard_ids: list[int] = []
        offsets: list[int] = []
        sizes: list[int] = []
        labels: list[int] = []
        for shard_id, shard in enumerate(self.shards):
            for offset, size, label in _index_shard(shard):
                shard_ids.append(shard_id)
                offsets.append(offset)
                sizes.append(size)
                labels.append(label)
        self.shard_ids = np.asarray(shard_ids, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)  # -1 where a sample has no .cls
        known = self.labels[self.labels >= 0]
        self.class_names = [str(c) for c in range(int(known.max()) + 1)] if known.size else []

    def __len__(self) -> int:
        return len(self.offsets)

    def load(self, i: int) -> np.ndarray | None:
        size = int(self.sizes[i])
        try:
            with open(self.shards[self.shard_ids[i]], "rb") as handle:
                handle.seek(int(self.offsets[i]))
                data = handle.read(size)
        except OSError:
            return None
        if len(data) != size:  # member cut off by a truncated shard
            return None
        return decode_image(data)


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
