"""The data-size axis: nested training subsets and a fixed held-out validation set.

One permutation of a source's training split, seeded by `subset_seed`, orders every image once:
the first `val_images` are held out for validation, and a run with `num_images = n` trains on the
next n. So the 1k subset is a prefix of the 10k subset, and the validation images are the same,
and disjoint from training, whatever `num_images` is.
"""

from __future__ import annotations

import numpy as np

from aimscale.data.errors import DataError

_SUBSET_STREAM = 0x5B5E7  # separates this permutation from every other use of subset_seed


def fixed_order(n_total: int, subset_seed: int) -> np.ndarray:
    return np.random.default_rng([subset_seed, _SUBSET_STREAM]).permutation(n_total)


def split_indices(
    n_total: int, val_images: int, num_images: int | None, subset_seed: int, name: str = "source"
) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out validation indices) of a split with `n_total` images."""
    if val_images >= n_total:
        raise DataError(
            f"{name} has {n_total} images, not enough to hold out data.val_images={val_images} "
            "and still train; lower data.val_images"
        )
    order = fixed_order(n_total, subset_seed)
    val, pool = order[:val_images], order[val_images:]
    if num_images is not None:
        if num_images > len(pool):
            raise DataError(
                f"data.num_images={num_images} exceeds the {len(pool)} training images of {name} "
                f"({n_total} minus data.val_images={val_images} held out); lower data.num_images"
            )
        pool = pool[:num_images]
    return pool, val


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
