"""Block windows: which consecutive trunk blocks are averaged into the probe features.

The paper averages the raw outputs of 6 consecutive blocks of 24-32-block trunks. Our trunks are
often 2-8 blocks deep, so the default window size scales with depth:
`min(6, max(1, round(depth / 4)))` (depth 24 -> 6, depth 8 -> 2, depth 4 -> 1).

- `last`: the last window (ends at the last block).
- `best`: the paper's "best" window sits in the middle of the trunk (0.6B: blocks 14-19 of 24;
  1B/3B: 12-17 of 24; 7B: 14-19 of 32) because the objective is generative. We name the window
  that starts at half depth (depth 24 -> 12-17); a layer sweep measures the actual best.
- `all-windows`: every window of the default size sliding over depth with stride 1 (layer sweep).
- `START-END` (0-based, inclusive) or `N`: any window.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimscale.probe.config import ProbeError


@dataclass(frozen=True)
class Window:
    start: int
    end: int  # inclusive
    label: str  # last | best | blocks<start>-<end>: the name part of its result files

    @property
    def blocks(self) -> list[int]:
        return list(range(self.start, self.end + 1))

    @property
    def span(self) -> list[int]:
        return [self.start, self.end]


def default_window_size(depth: int) -> int:
    return min(6, max(1, round(depth / 4)))


def blocks_label(start: int, end: int) -> str:
    return f"blocks{start}-{end}"


def resolve_windows(spec: str, depth: int, size: int | None = None) -> list[Window]:
    """The windows named by `spec` for a trunk of `depth` blocks; ProbeError if out of range."""
    size = default_window_size(depth) if size is None else size
    if spec in ("last", "best", "all-windows") and size > depth:
        raise ProbeError(
            f"probe window_size={size} exceeds the trunk depth {depth}; choose a window size of "
            f"at most {depth}"
        )
    if spec == "last":
        return [Window(depth - size, depth - 1, "last")]
    if spec == "best":
        start = min(depth - size, depth // 2)
        return [Window(start, start + size - 1, "best")]
    if spec == "all-windows":
        starts = range(depth - size + 1)
        return [Window(s, s + size - 1, blocks_label(s, s + size - 1)) for s in starts]
    first, _, last = spec.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise ProbeError(
            f"probe blocks={spec!r} is not last, best, all-windows or START-END (e.g. 2-5)"
        ) from None
    if not 0 <= start <= end < depth:
        raise ProbeError(
            f"probe blocks={spec!r} is out of range for a trunk with {depth} blocks; block "
            f"indices are 0-based and inclusive, so pick START-END within 0-{depth - 1}"
        )
    return [Window(start, end, blocks_label(start, end))]
