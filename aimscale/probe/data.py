"""The labelled sets of a probe: train (with a validation part carved out) and test.

Images come from the data stage's `load_labelled` (no augmentation, centre square resized to the
model's image size, converted to its channels). The validation part is a seeded random subset of
the (limited) training split; the grid member with the best validation accuracy is reported on
the test split (image-folder: the `val` directory).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aimscale.model.config import ModelConfig
from aimscale.probe.config import ProbeConfig, ProbeError


@dataclass
class ProbeSets:
    train_images: torch.Tensor  # [N, C, H, W], fit + validation parts
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    fit_index: torch.Tensor  # rows of the training split the heads are fitted on
    val_index: torch.Tensor  # rows held out to choose the grid member


def load_sets(cfg: ProbeConfig, model: ModelConfig) -> ProbeSets:
    """Load and check both splits; ProbeError (naming the problem and the fix) if unusable."""
    from aimscale.data import DataError, load_labelled

    loaded = {}
    for split, limit in (("train", cfg.limit_train), ("test", cfg.limit_test)):
        try:
            loaded[split] = load_labelled(cfg.dataset, split, model, limit)
        except DataError as err:
            raise ProbeError(f"probe dataset {cfg.dataset!r} ({split} split): {err}") from None
    train, test = loaded["train"], loaded["test"]
    expected = (model.channels, model.image_size, model.image_size)
    for split, data in loaded.items():
        if tuple(data.images.shape[1:]) != expected:
            raise ProbeError(
                f"probe dataset {cfg.dataset!r} ({split}) has images {list(data.images.shape[1:])}"
                f" but the model expects {list(expected)}; probe with a dataset of that channel "
                "count and size"
            )
        if len(data) < 2:
            raise ProbeError(
                f"probe dataset {cfg.dataset!r} ({split}) has {len(data)} labelled image(s); "
                "a probe needs at least 2 (raise the limit or use a bigger dataset)"
            )
    num_classes = max(train.num_classes, int(train.labels.max()) + 1, int(test.labels.max()) + 1)
    if len(torch.unique(train.labels)) < 2:
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
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    return ProbeSets(
        train_images=train.images,
        train_labels=train.labels,
        test_images=test.images,
        test_labels=test.labels,
        num_classes=num_classes,
        fit_index=order[n_val:].sort().values,
        val_index=order[:n_val].sort().values,
    )
