"""Which source each sample of a weighted mixture comes from.

Sample p (global position in the stream) comes from source i with probability w_i / sum(w). The
draws are made in blocks of 4096 positions from a generator seeded by (seed, block), so the choice
for any position is a pure function of (seed, position) and costs nothing to recompute on resume.
"""

from __future__ import annotations

import numpy as np

BLOCK = 4096
_MIX_STREAM = 0x6D6978


class SourceSchedule:
    def __init__(self, weights: list[float], seed: int):
        w = np.asarray(weights, dtype=np.float64)
        self.cumulative = np.cumsum(w / w.sum())
        self.cumulative[-1] = 1.0  # guard against rounding leaving a gap at the top
        self.seed = seed
        self._block = (-1, np.empty(0, np.int64))

    def sources(self, start: int, count: int) -> np.ndarray:
        """Source index (int64) of positions start, ..., start + count - 1."""
        if len(self.cumulative) == 1:
            return np.zeros(count, dtype=np.int64)
        out = np.empty(count, dtype=np.int64)
        done = 0
        while done < count:
            position = start + done
            block, offset = divmod(position, BLOCK)
            take = min(count - done, BLOCK - offset)
            out[done : done + take] = self._draws(block)[offset : offset + take]
            done += take
        return out

    def _draws(self, block: int) -> np.ndarray:
        if self._block[0] != block:
            u = np.random.default_rng([self.seed, _MIX_STREAM, block]).random(BLOCK)
            self._block = (block, np.searchsorted(self.cumulative, u, side="right"))
        return self._block[1]
