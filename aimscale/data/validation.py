"""Held-out validation images and the pre-flight data check.

`build_val_images(cfg, model, n)` takes the first images of each source's held-out set (see
`subsets`), n split over the sources by weight, rendered without augmentation (centre square,
resized). It depends on neither `num_images` nor the training seed, so every run of a data-size
sweep reports validation loss on the same images.
"""

from __future__ import annotations

import torch

from aimscale.data.augment import render_eval
from aimscale.data.config import DataConfig
from aimscale.data.errors import DataError
from aimscale.data.sources import source_label
from aimscale.data.stream import _opened
from aimscale.data.subsets import exact_share
from aimscale.model.config import ModelConfig


def build_val_images(cfg: DataConfig, model: ModelConfig, n: int) -> torch.Tensor:
    """float32 [n, C, H, W]: fixed held-out images, normalised like the training stream."""
    sources, splits = _opened(cfg, model)
    counts = exact_share(n, [s.weight for s in cfg.sources])
    out: list[torch.Tensor] = []
    for source, (_, held_out), count, sc in zip(sources, splits, counts, cfg.sources, strict=True):
        taken = 0
        for index in held_out:
            if taken == count:
                break
            image = source.load(int(index))
            if image is None:  # corrupt: the next held-out image takes its place
                continue
            out.append(render_eval(image, model.image_size, model.channels))
            taken += 1
        if taken < count:
            raise DataError(
                f"{source_label(sc)} has {taken} readable held-out images but {count} validation "
                f"images were asked for; raise data.val_images (now {cfg.val_images}) or ask for "
                "fewer"
            )
    if not out:
        return torch.empty(0, model.channels, model.image_size, model.image_size)
    return torch.stack(out)


def check_data(cfg: DataConfig, model: ModelConfig) -> list[str]:
    """Every problem that would stop the data stage (missing paths, empty sets, subsets too large),
    as sentences; empty when the data is usable. Opens and indexes the sources, reads no pixels.
    """
    try:
        _opened(cfg, model)
    except DataError as err:
        problems = [str(err)]
        # report the other sources too, not just the first failure
        for i, source in enumerate(cfg.sources):
            single = DataConfig(**{**cfg.__dict__, "sources": [source], "num_images": None})
            try:
                _opened(single, model)
            except DataError as one:
                if str(one) not in problems:
                    problems.append(f"data.sources[{i}]: {one}")
        return problems
    return []
