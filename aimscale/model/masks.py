"""Attention masks of pre-training: prefix-causal, causal; bidirectional is no mask at all.

Masks are boolean, True = may attend, the convention of
`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import torch


def causal_mask(num_tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[K, K]: token i attends token j iff j <= i."""
    idx = torch.arange(num_tokens, device=device)
    return idx[None, :] <= idx[:, None]


def prefix_causal_mask(prefix_lengths: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """[B, 1, K, K] for per-sample prefix lengths S [B]: i attends j iff j < S or j <= i.

    The singleton dimension broadcasts over attention heads.
    """
    idx = torch.arange(num_tokens, device=prefix_lengths.device)
    causal = idx[None, :] <= idx[:, None]  # [K, K]
    in_prefix = idx[None, :] < prefix_lengths[:, None]  # [B, K] over keys j
    return (causal[None] | in_prefix[:, None, :])[:, None]


def sample_prefix_lengths(batch_size: int, num_tokens: int) -> torch.Tensor:
    """S ~ U{1, ..., K-1} per sample, from torch's global CPU RNG (checkpointed by training).

    Drawn on the CPU on purpose: the draws, and so a resumed run, do not depend on the device.
    """
    if num_tokens < 2:
        raise ValueError(f"prefix-causal attention needs at least 2 tokens, got {num_tokens}")
    return torch.randint(1, num_tokens, (batch_size,))
