"""IDX files (the MNIST / Fashion-MNIST format), read whole into memory.

Layout: two zero bytes, a dtype code, the number of dimensions, one big-endian int32 per dimension,
then the values in C order. Files may be gzip-compressed (`.gz`). Fashion-MNIST's training images
are 47 MB uncompressed, so a numpy view over the decompressed bytes is the whole cost.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from aimscale.data.errors import DataError

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# split name -> file prefix of the MNIST layout
SPLIT_PREFIX = {"train": "train", "test": "t10k", "val": "t10k"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (optionally gzipped); DataError if malformed or truncated."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # gzip: BadGzipFile, EOFError, zlib.error
        raise DataError(
            f"cannot read IDX file {path}: {err}; the file is damaged, re-fetch or replace it"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic {raw[:4]!r}); re-fetch the file")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"IDX file {path} has {len(raw)} bytes, fewer than its {ndim}-dimension header "
            f"needs ({header}); the file is truncated, re-fetch it"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"IDX file {path} has {len(raw)} bytes but its header {dims} needs {expected}; "
            "the file is truncated or corrupt, re-fetch it"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def find_idx_file(directory: Path, split: str, what: str) -> Path | None:
    """`<dir>/<prefix>-<what>-ubyte[.gz]` for what in {images-idx3, labels-idx1}, or None."""
    prefix = SPLIT_PREFIX.get(split)
    if prefix is None:
        raise DataError(f"unknown split {split!r} for IDX data; use one of {sorted(SPLIT_PREFIX)}")
    for name in (f"{prefix}-{what}-ubyte.gz", f"{prefix}-{what}-ubyte"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_idx_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(images uint8 [N, H, W, C], labels int64 [N] or None) of one split.

    `path` is a directory in the MNIST layout (`train-images-idx3-ubyte.gz`, ...) or a single
    images file (its labels are found by replacing `images-idx3` with `labels-idx1`).
    """
    path = Path(path)
    if path.is_dir():
        images_path = find_idx_file(path, split, "images-idx3")
        if images_path is None:
            prefix = SPLIT_PREFIX[split]
            raise DataError(
                f"no {prefix}-images-idx3-ubyte[.gz] in {path}; point the source's path at a "
                "directory holding the MNIST-layout files (train-/t10k-images-idx3-ubyte.gz and "
                "train-/t10k-labels-idx1-ubyte.gz)"
            )
        labels_path = find_idx_file(path, split, "labels-idx1")
    elif path.is_file():
        images_path = path
        guess = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        labels_path = guess if guess != path and guess.is_file() else None
    else:
        raise DataError(f"IDX path {path} does not exist; fix the source's path")
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(
            f"{images_path} holds {images.dtype} data of shape {images.shape}; image files must "
            "be uint8 [N, H, W] or [N, H, W, C]"
        )
    if images.ndim == 3:
        images = images[..., None]
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path).astype(np.int64).reshape(-1)
        if len(labels) != len(images):
            raise DataError(
                f"{labels_path} has {len(labels)} labels for {len(images)} images in "
                f"{images_path}; the two files do not belong together"
            )
    return images, labels
