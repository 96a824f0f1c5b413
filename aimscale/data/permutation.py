"""A keyed pseudo-random permutation of [0, n) in O(1) memory: `KeyedPermutation(n, key)[i]`.

Element i of the permutation is computed on demand, never stored: a balanced Feistel network
permutes [0, 4^h) (the smallest power of four >= n, so fewer than 4n values), and cycle-walking
(re-applying it while the value is >= n) restricts it to [0, n). A Feistel network is a bijection
whatever its round function, and cycle-walking keeps a bijection on the subset, so every element
of [0, n) appears exactly once. The round function is the splitmix64 finaliser of (half, round
key): plain 64-bit integer arithmetic, so the permutation is the same on every machine, process
and numpy version. The expected number of walks per element is below 4.

This replaces materialised `rng.permutation(n)` arrays: at 2B images those are 16 GB per array and
per rank, rebuilt on every start.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 6
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix64(value: int) -> int:
    """splitmix64's finaliser on a Python int (a bijection of 64-bit integers)."""
    z = value & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive_key(*parts: int) -> int:
    """One 64-bit key from a tuple of integers (seed, stream, source, epoch, ...)."""
    key = 0
    for part in parts:
        key = mix64(key ^ mix64((int(part) + _GOLDEN) & _MASK64))
    return key


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrap-around multiplication)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


class KeyedPermutation:
    """The permutation of [0, n) selected by a 64-bit `key`; index it with an int or an array."""

    def __init__(self, n: int, key: int):
        if n < 0:
            raise ValueError(f"a permutation needs n >= 0, got {n}")
        if n > 1 << 62:
            raise ValueError(f"n={n} exceeds the 2^62 elements a keyed permutation supports")
        self.n = int(n)
        self.key = int(key) & _MASK64
        self.half_bits = max(1, ((self.n - 1).bit_length() + 1) // 2)
        self._round_keys = [
            np.uint64(mix64(self.key ^ ((r + 1) * _GOLDEN & _MASK64))) for r in range(ROUNDS)
        ]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):
        """Element(s) at `index`: an int gives an int; a slice or an integer array, int64 array."""
        if isinstance(index, slice):
            return self.take(np.arange(*index.indices(self.n)))
        if np.isscalar(index):
            i = int(index)
            if i < 0:
                i += self.n
            if not 0 <= i < self.n:
                raise IndexError(f"index {index} out of range for a permutation of {self.n}")
            return int(self.take(np.array([i]))[0])
        return self.take(np.asarray(index))

    def take(self, positions: np.ndarray) -> np.ndarray:
        """int64 elements at `positions` (int array, each in [0, n)); vectorised."""
        positions = np.asarray(positions)
        if positions.size and (positions.min() < 0 or positions.max() >= self.n):
            raise IndexError(f"positions outside [0, {self.n}) for a permutation of {self.n}")
        x = self._encrypt(positions.astype(np.uint64).ravel())
        outside = np.flatnonzero(x >= np.uint64(self.n))
        while outside.size:  # cycle-walking: a permutation of [0, 4^h) maps back into [0, n)
            x[outside] = self._encrypt(x[outside])
            outside = outside[x[outside] >= np.uint64(self.n)]
        return x.astype(np.int64).reshape(positions.shape)

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        h = np.uint64(self.half_bits)
        mask = np.uint64((1 << self.half_bits) - 1)
        left, right = x >> h, x & mask
        for round_key in self._round_keys:
            left, right = right, left ^ (_mix(right ^ round_key) & mask)
        return (left << h) | right

    def __iter__(self):
        for start in range(0, self.n, 1 << 16):
            yield from self.take(np.arange(start, min(self.n, start + (1 << 16)))).tolist()

    def __reduce__(self):  # pickles as (n, key): workers rebuild it, nothing large is sent
        return (KeyedPermutation, (self.n, self.key))
