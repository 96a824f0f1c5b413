"""Autoregression orders: which patch comes k-th in the sequence.

`order_permutation(...)[k]` is the raster index (row * grid + col) of the k-th patch. Positions
are added in raster order before the sequence is permuted, so each token keeps its spatial
position; targets are permuted the same way.
"""

from __future__ import annotations

import torch

from aimscale.model.config import ORDERS


def raster(grid: int) -> torch.Tensor:
    return torch.arange(grid * grid)


def spiral(grid: int) -> torch.Tensor:
    """Centre outwards: start at the centre cell (upper-left of the central 2×2 for even grids),
    then right 1, down 1, left 2, up 2, right 3, ... skipping cells outside the grid."""
    row = col = (grid - 1) // 2
    cells = [row * grid + col]
    moves = ((0, 1), (1, 0), (0, -1), (-1, 0))
    leg, turn = 1, 0
    while len(cells) < grid * grid:
        for _ in range(2):  # each leg length is walked twice (e.g. right 1, down 1)
            d_row, d_col = moves[turn % 4]
            for _ in range(leg):
                row, col = row + d_row, col + d_col
                if 0 <= row < grid and 0 <= col < grid:
                    cells.append(row * grid + col)
            turn += 1
        leg += 1
    return torch.tensor(cells)


def checkerboard(grid: int) -> torch.Tensor:
    """All cells with (row + col) even first, then the odd ones, each group in raster order."""
    idx = torch.arange(grid * grid)
    parity = (idx // grid + idx % grid) % 2
    return torch.cat([idx[parity == 0], idx[parity == 1]])


def fixed_random(grid: int, seed: int) -> torch.Tensor:
    """One random permutation, fixed for the whole run by `seed` (not the global RNG)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(grid * grid, generator=generator)


def order_permutation(order: str, grid: int, seed: int = 0) -> torch.Tensor:
    if order == "raster":
        return raster(grid)
    if order == "spiral":
        return spiral(grid)
    if order == "checkerboard":
        return checkerboard(grid)
    if order == "random":
        return fixed_random(grid, seed)
    raise ValueError(f"unknown order {order!r}; choose one of {ORDERS}")
