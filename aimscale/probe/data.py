"""The labelled sets of a probe, streamed: train (a validation part carved out) and test.

Nothing here holds the images of a split: a `Split` is an opened source (`open_source`, the data
stage's uniform interface) plus the source indices it covers and their labels, and
`image_batches` renders one batch at a time (no augmentation: centre square resized to the
model's image size, converted to its channels, normalised like pre-training). So memory does
not grow with the number of images (an int64 label per image aside).

Rows: `limit` keeps the same fixed random subset `load_labelled` keeps; the validation part is a
seeded random subset of those rows; the grid member with the best validation accuracy is
reported on the test split (image-folder: the `val` directory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from aimscale.model.config import ModelConfig
from aimscale.probe.config import ProbeConfig, ProbeError


@dataclass
class Split:
    """Rows of one source: `rows` (source indices, sorted) and their `labels`."""

    source: object  # aimscale.data.sources.ImageSource
    rows: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def part(self, positions: np.ndarray) -> Split:
        return Split(self.source, self.rows[positions], self.labels[positions])


@dataclass
class ProbeSets:
    train: Split  # the limited training split: the store of cached features covers it all
    test: Split
    num_classes: int
    fit_positions: np.ndarray  # positions in `train` the heads are fitted on (sorted)
    val_positions: np.ndarray  # positions held out to choose the grid member (sorted)

    @property
    def fit(self) -> Split:
        return self.train.part(self.fit_positions)

    @property
    def val(self) -> Split:
        return self.train.part(self.val_positions)


def open_sets(cfg: ProbeConfig, model: ModelConfig) -> ProbeSets:
    """Open and check both splits; ProbeError (naming the problem and the fix) if unusable."""
    from aimscale.data import DataError
    from aimscale.data.sources import open_source
    from aimscale.data.subsets import fixed_order

    if model.channels not in (1, 3):
        raise ProbeError(
            f"probe dataset {cfg.dataset!r}: model.channels={model.channels} is not supported; "
            "use 1 or 3"
        )
    opened = {}
    for split, limit in (("train", cfg.limit_train), ("test", cfg.limit_test)):
        try:
            source = open_source(cfg.dataset, split)
        except DataError as err:
            raise ProbeError(f"probe dataset {cfg.dataset!r} ({split} split): {err}") from None
        labels = np.asarray(source.labels)
        if (labels < 0).any():
            raise ProbeError(
                f"probe dataset {cfg.dataset!r} ({split}): {int((labels < 0).sum())} of "
                f"{len(labels)} images have no label; probes need labels (IDX labels file, "
                "class sub-directories, or <key>.cls members in tar shards)"
            )
        rows = np.arange(len(source))
        if limit is not None and limit < len(source):
            rows = np.sort(fixed_order(len(source), 0)[:limit])  # as load_labelled limits
        if len(rows) < 2:
            raise ProbeError(
                f"probe dataset {cfg.dataset!r} ({split}) has {len(rows)} labelled image(s); "
                "a probe needs at least 2 (raise the limit or use a bigger dataset)"
            )
        opened[split] = Split(source, rows, labels[rows].astype(np.int64))
    train, test = opened["train"], opened["test"]
    names = len(getattr(train.source, "class_names", []) or [])
    num_classes = max(names, int(train.labels.max()) + 1, int(test.labels.max()) + 1)
    if len(np.unique(train.labels)) < 2:
        raise ProbeError(
            f"probe dataset {cfg.dataset!r} has a single class in its training split; a "
            "classifier needs at least 2 classes (check the labels or raise limit_train)"
        )
    n = len(train)
    n_val = max(1, round(cfg.val_fraction * n))
    if n - n_val < 2:
        raise ProbeError(
            f"probe training split has {n} images: too few to hold out {n_val} for validation; "
            "raise limit_train or lower val_fraction"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed)).numpy()
    return ProbeSets(
        train=train,
        test=test,
        num_classes=num_classes,
        fit_positions=np.sort(order[n_val:]),
        val_positions=np.sort(order[:n_val]),
    )


def render_rows(split: Split, positions: np.ndarray, model: ModelConfig):
    """(images float32 [B, C, H, W], labels int64 [B], kept positions) of `positions` of
    `split`; images that cannot be decoded are left out (and so are their labels)."""
    from aimscale.data.augment import render_eval, render_eval_batch
    from aimscale.data.sources import ArraySource

    size, channels = model.image_size, model.channels
    rows = split.rows[positions]
    if isinstance(split.source, ArraySource):
        images = render_eval_batch(split.source.images[rows], size, channels)
        kept = np.asarray(positions)
    else:
        rendered, kept_list = [], []
        for position, row in zip(positions, rows, strict=True):
            image = split.source.load(int(row))
            if image is not None:
                rendered.append(render_eval(image, size, channels))
                kept_list.append(int(position))
        kept = np.asarray(kept_list, dtype=np.int64)
        images = torch.stack(rendered) if rendered else torch.empty(0, channels, size, size)
    return images, torch.from_numpy(split.labels[kept]), kept


def stream_images(
    split: Split, batches: list[np.ndarray], model: ModelConfig
) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
    """`render_rows` of each batch of positions, one batch in memory at a time."""
    for positions in batches:
        yield render_rows(split, positions, model)
