"""The data-size axis: nested training subsets and a fixed held-out validation set.

One keyed permutation of a source's training split (`fixed_order`, seeded by `subset_seed`)
orders every image once: the first `val_images` are held out for validation, and a run with
`num_images = n` trains on the next n. So the 1k subset is a prefix of the 10k subset, and the
validation images are the same, and disjoint from training, whatever `num_images` is. The order
is computed per element (`aimscale.data.permutation`), never stored: a subset is a lazy
`OrderSlice` of it, O(1) memory at any data size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from aimscale.data.errors import DataError
from aimscale.data.permutation import KeyedPermutation, derive_key

_SUBSET_STREAM = 0x5B5E7  # separates this permutation from every other use of subset_seed


def fixed_order(n_total: int, subset_seed: int) -> KeyedPermutation:
    """The fixed order of a split's `n_total` images (index it, slice it, iterate it)."""
    return KeyedPermutation(n_total, derive_key(subset_seed, _SUBSET_STREAM))


@dataclass(frozen=True)
class OrderSlice:
    """Elements start .. start + length - 1 of a keyed order: image j of a subset is
    `order[start + j]`. Indexes like an array (int, slice, integer array) without storing one."""

    order: KeyedPermutation
    start: int
    length: int

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(np.arange(*index.indices(self.length)))
        if np.isscalar(index):
            j = int(index)
            if not -self.length <= j < self.length:
                raise IndexError(f"index {index} out of range for a subset of {self.length}")
            return self.order[self.start + j % self.length]
        return self.take(np.asarray(index))

    def take(self, positions: np.ndarray) -> np.ndarray:
        """int64 image indices of subset positions (each in [0, length))."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= self.length):
            raise IndexError(f"positions outside [0, {self.length}) for a subset of {self.length}")
        return self.order.take(positions + self.start)

    def __iter__(self) -> Iterator[int]:
        step = 1 << 16
        for begin in range(0, self.length, step):
            yield from self.take(np.arange(begin, min(self.length, begin + step))).tolist()

    def __array__(self, dtype=None, copy=None):
        return self.take(np.arange(self.length)).astype(dtype or np.int64)


def split_indices(
    n_total: int, val_images: int, num_images: int | None, subset_seed: int, name: str = "source"
) -> tuple[OrderSlice, OrderSlice]:
    """(training subset, held-out validation set) of a split with `n_total` images."""
    if val_images >= n_total:
        raise DataError(
            f"{name} has {n_total} images, not enough to hold out data.val_images={val_images} "
            "and still train; lower data.val_images"
        )
    order = fixed_order(n_total, subset_seed)
    pool = n_total - val_images
    if num_images is not None:
        if num_images > pool:
            raise DataError(
                f"data.num_images={num_images} exceeds the {pool} training images of {name} "
                f"({n_total} minus data.val_images={val_images} held out); lower data.num_images"
            )
        pool = num_images
    return OrderSlice(order, val_images, pool), OrderSlice(order, 0, val_images)


def share(total: int, weights: list[float]) -> list[int]:
    """Split `total` over sources in proportion to `weights`, each share rounded on its own.

    Rounding each share independently keeps shares monotone in `total`, so nested subsets stay
    nested per source (the shares may sum to `total` ± a few).
    """
    norm = sum(weights)
    return [max(1, round(total * w / norm)) for w in weights]


def exact_share(total: int, weights: list[float]) -> list[int]:
    """Split `total` in proportion to `weights`, summing exactly to `total` (largest remainder)."""
    norm = sum(weights)
    raw = [total * w / norm for w in weights]
    counts = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts
