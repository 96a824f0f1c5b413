"""Labelled image sets for probes: `load_labelled(source, split, model, limit)`.

Splits: `train` and `test` (`val` is an alias) for fashion-mnist / mnist / idx / synthetic;
`train` and `val` (or `test`) sub-directories for image-folder and tar-shards roots. Images are
rendered without augmentation (centre square, resized to model.image_size) and normalised like
the pre-training stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from aimscale.data.augment import render_eval, render_eval_batch
from aimscale.data.config import SourceConfig
from aimscale.data.errors import DataError
from aimscale.data.sources import ArraySource, open_source
from aimscale.data.subsets import fixed_order
from aimscale.model.config import ModelConfig


@dataclass
class LabelledSet:
    """images float32 [N, C, H, W], labels int64 [N]; unpacks as `images, labels = ...`."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    skipped: int = 0  # corrupt images left out

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.images, self.labels))


def load_labelled(
    source: SourceConfig | str, split: str, model: ModelConfig, limit: int | None = None
) -> LabelledSet:
    """The labelled `split` of `source` (a SourceConfig, a kind, or `kind:path`).

    `limit` keeps a fixed random subset of that many images (the same on every call; classes stay
    mixed even when the source is sorted by class), in source order.
    """
    if model.channels not in (1, 3):
        raise DataError(f"model.channels={model.channels} is not supported; use 1 or 3")
    src = open_source(source, split)
    labels = np.asarray(src.labels)
    if (labels < 0).any():
        missing = int((labels < 0).sum())
        raise DataError(
            f"{src.name}: {missing} of {len(labels)} images have no label; probes need labels "
            "(IDX labels file, class sub-directories, or <key>.cls members in tar shards)"
        )
    indices = np.arange(len(src))
    if limit is not None and limit < len(src):
        indices = np.sort(fixed_order(len(src), 0)[:limit])
    size, channels = model.image_size, model.channels
    skipped = 0
    if isinstance(src, ArraySource):
        images = render_eval_batch(src.images[indices], size, channels)
        kept = indices
    else:
        rendered, kept_list = [], []
        for i in indices:
            image = src.load(int(i))
            if image is None:
                skipped += 1
                continue
            rendered.append(render_eval(image, size, channels))
            kept_list.append(int(i))
        if not rendered:
            raise DataError(f"{src.name}: none of the {len(indices)} images could be decoded")
        images = torch.stack(rendered)
        kept = np.asarray(kept_list, dtype=np.int64)
    num_classes = len(src.class_names) if src.class_names else int(labels.max()) + 1
    return LabelledSet(
        images=images,
        labels=torch.from_numpy(labels[kept].astype(np.int64)),
        num_classes=num_classes,
        class_names=list(src.class_names),
        skipped=skipped,
    )
