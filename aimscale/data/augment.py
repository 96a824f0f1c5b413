"""Pixel pipeline: crop, resize, flip and normalise uint8 images into model inputs.

Scale (contract for every consumer): pixels are mapped to [0, 1], then normalised with
mean 0.5 / std 0.5 per channel, so model inputs lie in [-1, 1]. Resizing is bicubic with
antialiasing (`torch.nn.functional.interpolate`), clamped back into range because bicubic
overshoots at edges. Pre-training uses RandomResizedCrop (area scale [min, max], aspect ratio
3/4 - 4/3) + horizontal flip, as in AIM; evaluation uses a centre square crop resized to size.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from aimscale.data.decode import to_channels
from aimscale.data.seeding import below, uniform

PIXEL_MEAN = 0.5
PIXEL_STD = 0.5
LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))


@dataclass(frozen=True)
class Crop:
    """A crop box (top, left, height, width) and whether to mirror it horizontally."""

    top: int
    left: int
    height: int
    width: int
    flip: bool = False


def sample_crop(
    height: int, width: int, scale: tuple[float, float], hflip: bool, rng: random.Random
) -> Crop:
    """RandomResizedCrop box: area fraction in `scale`, log-uniform aspect ratio in [3/4, 4/3].

    Ten tries to fit a box inside the image; otherwise the largest centred box whose aspect
    ratio is clamped into the range.
    """
    area = height * width
    for _ in range(10):
        target = area * uniform(rng, *scale)
        ratio = math.exp(uniform(rng, *LOG_RATIO))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = below(rng, height - h + 1)
            left = below(rng, width - w + 1)
            return Crop(top, left, h, w, hflip and rng.random() < 0.5)
    ratio = min(max(width / height, 3 / 4), 4 / 3)
    if width / height > ratio:
        h, w = height, round(height * ratio)
    else:
        h, w = round(width / ratio), width
    flip = hflip and rng.random() < 0.5
    return Crop((height - h) // 2, (width - w) // 2, h, w, flip)


def centre_square(height: int, width: int) -> Crop:
    side = min(height, width)
    return Crop((height - side) // 2, (width - side) // 2, side, side)


def crop_resize(image: np.ndarray, crop: Crop, size: int, channels: int) -> torch.Tensor:
    """uint8 [H, W, C] -> float32 [channels, size, size] in [0, 1] of the crop box (flipped if
    the crop says so); not yet normalised, so a batch can be normalised in one operation."""
    box = image[crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]
    box = to_channels(box, channels)
    # np.array copies: sources may hand out read-only views, which torch warns about
    x = torch.from_numpy(np.array(box)).permute(2, 0, 1).float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode="bicubic", antialias=True,
                          align_corners=False)[0].clamp_(0.0, 1.0)
    return x.flip(-1) if crop.flip else x


def normalise(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> model inputs in [-1, 1] (mean PIXEL_MEAN, std PIXEL_STD), in place."""
    return x.sub_(PIXEL_MEAN).div_(PIXEL_STD)


def render(image: np.ndarray, crop: Crop, size: int, channels: int) -> torch.Tensor:
    """uint8 [H, W, C] -> normalised float32 [channels, size, size] of the crop box."""
    return normalise(crop_resize(image, crop, size, channels).contiguous())


def render_eval(image: np.ndarray, size: int, channels: int) -> torch.Tensor:
    """No augmentation: the centre square, resized to `size`."""
    return render(image, centre_square(*image.shape[:2]), size, channels)


def render_eval_batch(images: np.ndarray, size: int, channels: int) -> torch.Tensor:
    """Same as `render_eval` for a stack of equal-sized images uint8 [N, H, W, C], vectorised."""
    n, height, width, _ = images.shape
    crop = centre_square(height, width)
    out = []
    for start in range(0, n, 4096):  # bounded memory for 60k-image probe sets
        part = images[start : start + 4096, crop.top : crop.top + crop.height,
                      crop.left : crop.left + crop.width]
        part = to_channels(part, channels)
        x = torch.from_numpy(np.array(part)).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True,
                              align_corners=False).clamp_(0.0, 1.0)
        out.append(normalise(x.contiguous()))
    if not out:
        return torch.empty(0, channels, size, size)
    return torch.cat(out)
