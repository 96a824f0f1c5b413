"""Cheap, version-stable random generators keyed by integers (one per sample)."""

from __future__ import annotations

import random


def sample_rng(seed: int, stream: int, source: int, position: int) -> random.Random:
    """A generator for one sample, keyed by (seed, stream, source, position).

    Python's Mersenne Twister seeded with one packed integer: the packing is injective, the
    seeding and `random()` are stable across Python versions, and it costs ~10 µs where a numpy
    SeedSequence costs several times more (this runs once per training image).
    """
    key = ((seed % 2**64) << 96) | ((stream % 2**32) << 64) | ((source % 2**16) << 48)
    return random.Random(key | (position % 2**48))


def uniform(rng: random.Random, low: float, high: float) -> float:
    return low + (high - low) * rng.random()


def below(rng: random.Random, n: int) -> int:
    """An integer in [0, n), from `random()` only (its stream is the version-stable part)."""
    return min(int(rng.random() * n), n - 1)
