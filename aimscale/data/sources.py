"""Image sources: one uniform interface over IDX files, ImageFolder trees, tar shards and the
procedural `synthetic` set.

A source has `__len__`, `load(i) -> uint8 [H, W, C] | None` (None: corrupt, the caller skips and
counts it), `labels` (int64 [N], -1 where unknown), `class_names` and a `name` for messages.
`open_source` caches opened sources per (kind, path, split), so pre-training, validation and
`check_data` share one decoded copy of Fashion-MNIST.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from aimscale.data.config import SourceConfig
from aimscale.data.errors import DataError
from aimscale.data.seeding import below, sample_rng, uniform


class ImageSource(Protocol):
    name: str
    labels: np.ndarray
    class_names: list[str]

    def __len__(self) -> int: ...

    def load(self, i: int) -> np.ndarray | None: ...


class ArraySource:
    """Images already in memory (IDX files): `images` uint8 [N, H, W, C]."""

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray | None):
        self.name = name
        self.images = images
        self.labels = labels if labels is not None else np.full(len(images), -1, np.int64)
        known = self.labels[self.labels >= 0]
        self.class_names = [str(c) for c in range(int(known.max()) + 1)] if known.size else []

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> np.ndarray | None:
        return self.images[i]


FASHION_MNIST_CLASSES = [
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]  # fmt: skip


class SyntheticSource:
    """Procedural 32×32 RGB images with class-dependent structure, generated on demand.

    Class c (of 10) sets the orientation and frequency of a sinusoidal grating and its colour;
    each image adds its own phase, a bright blob and noise (one of a fixed bank of fields), all
    drawn from a generator keyed by (split, index), so image i is the same on every call, process
    and machine. Label = i mod 10.
    """

    SIZE = 32
    NUM_CLASSES = 10
    DEFAULT_SIZES = {"train": 60_000, "test": 10_000, "val": 10_000}
    _SPLIT_IDS = {"train": 0, "test": 1, "val": 1}

    def __init__(self, split: str, size: int | None = None):
        if split not in self._SPLIT_IDS:
            raise DataError(f"unknown split {split!r} for synthetic data; use train or test")
        self.split_id = self._SPLIT_IDS[split]
        n = size if size is not None else self.DEFAULT_SIZES[split]
        self.name = f"synthetic:{split}"
        self.labels = np.arange(n, dtype=np.int64) % self.NUM_CLASSES
        self.class_names = [f"pattern{c}" for c in range(self.NUM_CLASSES)]
        s = self.SIZE
        self._yy, self._xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        hues = np.arange(self.NUM_CLASSES) / self.NUM_CLASSES * 2 * math.pi
        self._colours = 0.6 + 0.4 * np.stack(
            [np.cos(hues), np.cos(hues - 2.1), np.cos(hues + 2.1)], axis=1
        ).astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int) -> np.ndarray | None:
        c = int(self.labels[i])
        rng = sample_rng(0x5EED, self.split_id, 0, int(i))
        theta = c * math.pi / self.NUM_CLASSES + uniform(rng, -0.1, 0.1)
        freq = 2.0 + 1.5 * (c % 3)
        phase = uniform(rng, 0, 2 * math.pi)
        cy, cx = uniform(rng, 0.2, 0.8), uniform(rng, 0.2, 0.8)
        wave = np.sin((2 * math.pi * freq * math.cos(theta)) * self._xx
                      + (2 * math.pi * freq * math.sin(theta)) * self._yy + phase)
        blob = np.exp(((self._yy - cy) ** 2 + (self._xx - cx) ** 2) * -100.0)
        grey = 0.5 + 0.35 * wave + 0.3 * blob
        noise = self._noise()[below(rng, len(self._noise()))]
        img = grey[..., None] * self._colours[c] + noise
        return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    @lru_cache(maxsize=1)
    def _noise() -> np.ndarray:
        # a fixed bank of noise fields: drawing 3k normals per image would dominate the cost
        bank = np.random.default_rng(0x5EED).normal(0.0, 0.05, size=(256, 32, 32, 3))
        return bank.astype(np.float32)


def source_label(cfg: SourceConfig) -> str:
    return f"{cfg.kind}" + (f" ({cfg.path})" if cfg.path else "")


def open_source(cfg: SourceConfig | str, split: str = "train") -> ImageSource:
    """The opened (cached) source of `cfg` for `split`; raises DataError if unusable.

    `cfg` may be a string: a kind (`fashion-mnist`) or `kind:path` (`image-folder:/data/in1k`).
    """
    if isinstance(cfg, str):
        kind, _, path = cfg.partition(":")
        cfg = SourceConfig(kind=kind, path=path or None)
    return _open(cfg.kind, cfg.path, split, cfg.size)


@lru_cache(maxsize=16)
def _open(kind: str, path: str | None, split: str, size: int | None) -> ImageSource:
    from aimscale.data.fetch import locate_idx_dir

    if kind == "synthetic":
        # `size` sets the training split; the test split keeps its default size
        return SyntheticSource(split, size if split == "train" else None)
    if kind in ("fashion-mnist", "mnist", "idx"):
        from aimscale.data.idx import load_idx_split

        if path is None:
            if kind == "idx":
                raise DataError("data source kind 'idx' needs a path: set data.sources[i].path")
            directory = locate_idx_dir(kind)
        else:
            directory = Path(path).expanduser()
        images, labels = load_idx_split(directory, split)
        source = ArraySource(f"{kind}:{directory}:{split}", images, labels)
        if kind == "fashion-mnist" and len(source.class_names) == 10:
            source.class_names = list(FASHION_MNIST_CLASSES)
        return source
    if kind == "image-folder":
        from aimscale.data.image_folder import ImageFolderSource

        root = _split_dir(kind, path, split)
        source = ImageFolderSource(root)
        if not source.class_names:
            raise DataError(
                f"image folder {root} has no class sub-directories; expected the ImageNet "
                "layout root/<class>/<image>.jpg (for probes: root/train/<class>/... and "
                "root/val/<class>/...)"
            )
    elif kind == "tar-shards":
        from aimscale.data.shard_index import is_index_dir
        from aimscale.data.tar_shards import TarShardSource, shard_paths

        root = _split_dir(kind, path, split)
        if not is_index_dir(root) and not shard_paths(root):
            raise DataError(
                f"no tar shards match {root}; set the source's path to a directory of *.tar files "
                "or a glob such as /data/shards/train-*.tar"
            )
        source = TarShardSource(root)
    else:
        raise DataError(f"unknown data source kind {kind!r}")
    if len(source) == 0:
        raise DataError(
            f"{source.name} holds no images; check the path (image files .jpg/.png, tar members "
            "<key>.jpg|png) or choose another source"
        )
    return source


def _split_dir(kind: str, path: str | None, split: str) -> str:
    """The directory of `split` under a dataset root: `root/<split>` if present, else `root` for
    the training split; `val`/`test` stand in for each other."""
    if not path:
        raise DataError(f"data source kind {kind!r} needs a path: set data.sources[i].path")
    root = Path(path).expanduser()
    names = {"train": ["train"], "val": ["val", "test"], "test": ["test", "val"]}.get(split)
    if names is None:
        raise DataError(f"unknown split {split!r}; use train, val or test")
    if kind == "tar-shards" and not root.is_dir():
        if split == "train":
            return str(root)  # a glob pattern names the training shards
        raise DataError(
            f"tar-shards path {root} is a glob; the {split!r} split needs a directory with a "
            f"{split}/ sub-directory of *.tar files"
        )
    if not root.exists():
        raise DataError(f"data path {root} does not exist; fix data.sources[i].path")
    for name in names:
        if (root / name).is_dir():
            return str(root / name)
    if split != "train":
        raise DataError(
            f"{root} has no {' or '.join(names)} sub-directory for the {split!r} split; "
            f"lay it out as {root}/train/... and {root}/{names[0]}/..."
        )
    return str(root)
