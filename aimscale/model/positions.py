"""Fixed 2-D sin-cos position embeddings (MAE convention), never learned."""

from __future__ import annotations

import torch


def sincos_1d(dim: int, coords: torch.Tensor) -> torch.Tensor:
    """[N] coordinates -> [N, dim]: first half sines, second half cosines of dim/2 frequencies."""
    if dim % 2:
        raise ValueError(f"1-D sin-cos embedding needs an even width, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = coords.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid_size: int) -> torch.Tensor:
    """[grid², dim] in raster order: first half of the channels encodes the column, second the row.

    Computed in float64 and returned as float32, so every device gets the same table.
    """
    if dim % 4:
        raise ValueError(
            f"2-D sin-cos positions need a width divisible by 4, got {dim}; "
            "choose model.width / model.head_width as a multiple of 4"
        )
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    emb_col = sincos_1d(dim // 2, cols.reshape(-1))
    emb_row = sincos_1d(dim // 2, rows.reshape(-1))
    return torch.cat([emb_col, emb_row], dim=1).float()
