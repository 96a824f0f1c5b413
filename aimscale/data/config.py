"""Typed configuration of the pre-training data."""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCE_KINDS = ("fashion-mnist", "mnist", "idx", "image-folder", "tar-shards", "synthetic")


@dataclass
class SourceConfig:
    """One image source; `weight` is its sampling probability in a mixture."""

    kind: str = "fashion-mnist"
    path: str | None = None  # None: the default location of the kind (fashion-mnist: Debian's)
    weight: float = 1.0
    size: int | None = None  # synthetic only: images in the training split (None: 60000)


@dataclass
class DataConfig:
    """What the pre-training run sees.

    `sources` with more than one entry is a weighted mixture (DFN-2B+ style: 0.8 / 0.2).
    `num_images` selects a deterministic nested subset (the 10k subset contains the 1k one).
    """

    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    num_images: int | None = None
    subset_seed: int = 0
    val_images: int = 1000  # held out from the training split for the validation loss
    crop_scale_min: float = 0.4
    crop_scale_max: float = 1.0
    hflip: bool = True
    num_workers: int = 0

    def problems(self) -> list[str]:
        found = []
        if not self.sources:
            found.append("data.sources is empty; name at least one source (e.g. fashion-mnist)")
        for i, source in enumerate(self.sources):
            if source.kind not in SOURCE_KINDS:
                found.append(f"data.sources[{i}].kind={source.kind!r} is not one of {SOURCE_KINDS}")
            if source.size is not None and source.size <= 0:
                found.append(f"data.sources[{i}].size must be positive or null, got {source.size}")
            if not source.weight > 0 or source.weight == float("inf"):  # also nan
                found.append(
                    f"data.sources[{i}].weight must be a positive finite number, got "
                    f"{source.weight}"
                )
        if self.num_images is not None and self.num_images <= 0:
            found.append(f"data.num_images must be positive or null, got {self.num_images}")
        if self.val_images < 0:
            found.append(f"data.val_images must be >= 0, got {self.val_images}")
        if not 0.0 < self.crop_scale_min <= self.crop_scale_max <= 1.0:
            found.append(
                "data.crop_scale_min/max must satisfy 0 < min <= max <= 1, got "
                f"{self.crop_scale_min}/{self.crop_scale_max}"
            )
        if self.num_workers < 0:
            found.append(f"data.num_workers must be >= 0, got {self.num_workers}")
        return found
