"""Decode encoded image bytes into uint8 arrays and convert between channel counts.

Every source hands out images as uint8 arrays of shape [H, W, C] with C in {1, 3, 4}; `None`
stands for an image that could not be decoded (corrupt or truncated file), which callers skip and
count.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

SUPPORTED_CHANNELS = (1, 3)
# ITU-R BT.601 luma weights, the ones PIL uses for RGB -> L
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def decode_image(data: bytes) -> np.ndarray | None:
    """PNG/JPEG/... bytes -> uint8 [H, W, C] (C = 1, 3 or 4); None if the bytes are not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL warns about odd metadata; a decodable image is all we need
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # raises on truncated data (LOAD_TRUNCATED_IMAGES stays False)
                return _to_array(img)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def _to_array(img) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/float greyscale: scale to 8 bit instead of letting PIL clip
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return arr[..., None]
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "LA":
        img = img.convert("L")
    elif mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, ...
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [H, W, channels].

    Alpha is dropped (as PIL's convert does); RGB -> grey uses BT.601 luma; grey -> RGB repeats the
    plane.
    """
    if channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"model.channels={channels} is not supported; use 1 (grey) or 3 (RGB)")
    have = arr.shape[-1]
    if have in (2, 4):
        arr = arr[..., : have - 1]
        have -= 1
    if have == channels:
        return arr
    if channels == 3:
        return np.repeat(arr, 3, axis=-1)
    grey = arr.astype(np.float32) @ _LUMA
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8)[..., None]
