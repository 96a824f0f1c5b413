"""Small datasets written into tmp_path: IDX gz files, ImageFolder trees and tar shards."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aimscale.data.sources import _open


@pytest.fixture(autouse=True)
def _fresh_source_cache():
    # tests rewrite files under reused tmp paths; never serve a stale opened source
    _open.cache_clear()
    yield
    _open.cache_clear()


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.tobytes()


def write_idx_dir(directory: Path, n_train: int, n_test: int, size: int = 12) -> dict:
    """MNIST-layout gz files whose image i has every pixel = (i * 7) % 256 (a readable id)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        ids = (np.arange(n) * 7 % 256).astype(np.uint8)
        images = np.broadcast_to(ids[:, None, None], (n, size, size)).copy()
        labels = (np.arange(n) % 10).astype(np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
        out[prefix] = (images, labels)
    return out


def encode(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


def rgb_image(value: int, size: int = 16) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0] = value
    img[..., 1] = 255 - value
    img[..., 2] = 128
    return img


@pytest.fixture
def image_folder(tmp_path):
    """root/{cat,dog}/ with PNG (RGB, grey, RGBA) and JPEG files; returns (root, n_images)."""

    def make(root: Path | None = None, per_class: int = 3, corrupt: bool = False):
        root = root or tmp_path / "folder"
        for label, name in enumerate(("cat", "dog")):
            d = root / name
            d.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                rgb = rgb_image((40 * k + 100 * label) % 256, size=16 + 4 * k)
                kind = k % 4
                if kind == 0:
                    (d / f"{k}.png").write_bytes(encode(rgb, "PNG"))
                elif kind == 1:
                    (d / f"{k}.jpg").write_bytes(encode(rgb, "JPEG"))
                elif kind == 2:
                    (d / f"{k}.png").write_bytes(encode(rgb[..., 0], "PNG"))  # greyscale
                else:
                    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 200, np.uint8)], -1)
                    (d / f"{k}.png").write_bytes(encode(rgba, "PNG"))
        n = 2 * per_class
        if corrupt:
            jpeg = encode(rgb_image(7, size=64), "JPEG")
            (root / "cat" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
            (root / "dog" / "garbage.png").write_bytes(b"this is not an image" * 10)
            n += 2
        return root, n

    return make


@pytest.fixture
def tar_shards(tmp_path):
    """Shards of `<key>.png` (+ `<key>.cls`) members; returns the shard directory."""

    def make(n_shards: int = 2, per_shard: int = 5, labels: bool = True):
        root = tmp_path / "shards"
        root.mkdir(exist_ok=True)
        for s in range(n_shards):
            with tarfile.open(root / f"shard-{s:04d}.tar", "w") as tar:
                for k in range(per_shard):
                    key = f"sample{s:02d}{k:03d}"
                    members = {f"{key}.png": encode(rgb_image(10 * (s * per_shard + k)), "PNG")}
                    if labels:
                        members[f"{key}.cls"] = str((s * per_shard + k) % 3).encode()
                    for name, data in members.items():
                        info = tarfile.TarInfo(name)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
        return root

    return make


@pytest.fixture
def helpers():
    """The module's helper functions (test files cannot import conftest under importlib mode)."""
    import types

    return types.SimpleNamespace(
        idx_bytes=idx_bytes, write_idx_dir=write_idx_dir, encode=encode, rgb_image=rgb_image
    )
