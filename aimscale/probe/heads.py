"""Probe heads, G at a time: one module holds the heads of a whole hyper-parameter grid, every
parameter with a leading grid dimension [G, ...], and runs them with batched matrix products on
the same features, so a grid costs little more than one head. `GridAdamW` (fit.py) gives every
head its own learning rate and weight decay.

Both kinds start with BatchNorm without affine parameters over the channels. The normalisation
has no parameters and every head sees the same batches, so one BatchNorm serves all G heads.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class GridHeads(nn.Module):
    """Base of the batched heads: `forward(x) -> logits [G, B, classes]`."""

    groups: int
    decayed: tuple[str, ...]  # parameters under weight decay (matrices; not the query or biases)

    def grid_parameters(self) -> list[tuple[nn.Parameter, bool]]:
        """(parameter [G, ...], decayed) pairs for the optimiser."""
        return [(p, name in self.decayed) for name, p in self.named_parameters()]


def _uniform(shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> nn.Parameter:
    bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init range
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound, generator=generator))


class AttentiveHeads(GridHeads):
    """The attentive probe of AIM, G heads: BatchNorm (no affine) over channels -> one learnable
    query token, `heads` attention heads, k and v linear without bias, softmax attention pooling
    per head, no output projection -> linear classifier.

    Computed without materialising k and v: q·(W_k x) = (W_kᵀ q)·x, and
    Σ_t a_t W_v x_t = W_v (Σ_t a_t x_t), which is the same function at a fraction of the FLOPs
    (the pooled tokens are projected once instead of every token).
    """

    decayed = ("key", "value", "weight")

    def __init__(
        self, groups: int, width: int, heads: int, num_classes: int, generator: torch.Generator
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"attentive probe: heads={heads} must divide width={width}")
        self.groups, self.width, self.heads = groups, width, heads
        self.norm = nn.BatchNorm1d(width, affine=False, eps=1e-6)
        self.query = nn.Parameter(torch.empty(groups, width).normal_(0, 0.02, generator=generator))
        self.key = _uniform((groups, width, width), width, generator)  # [G, out, in]
        self.value = _uniform((groups, width, width), width, generator)
        self.weight = _uniform((groups, num_classes, width), width, generator)
        self.bias = nn.Parameter(torch.zeros(groups, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        g, h = self.groups, self.heads
        dh = width // h
        x = self.norm(x.reshape(batch * tokens, width)).view(batch, tokens, width)
        key = self.key.view(g, h, dh, width)
        # per head a query in input space: W_kᵀ q / sqrt(dh)  [G, H, D]
        q_in = torch.einsum("ghe,ghed->ghd", self.query.view(g, h, dh), key) / math.sqrt(dh)
        scores = (x.reshape(-1, width) @ q_in.reshape(g * h, width).T).view(batch, tokens, g * h)
        attn = scores.transpose(1, 2).softmax(dim=-1)  # [B, G·H, K]
        pooled = torch.bmm(attn, x).view(batch, g, h, width)  # Σ_t a_t x_t per head
        value = self.value.view(g, h, dh, width)
        out = torch.einsum("bghd,ghed->gbhe", pooled, value).reshape(g, batch, width)
        return torch.baddbmm(self.bias[:, None, :], out, self.weight.transpose(1, 2))


class LinearHeads(GridHeads):
    """The linear probe, G heads: mean-pooled tokens -> BatchNorm (no affine) -> linear.

    Takes pooled features [B, D] (pool once, outside the training loop).
    """

    decayed = ("weight",)

    def __init__(self, groups: int, width: int, num_classes: int, generator: torch.Generator):
        super().__init__()
        self.groups = groups
        self.norm = nn.BatchNorm1d(width, affine=False, eps=1e-6)
        self.weight = _uniform((groups, num_classes, width), width, generator)
        self.bias = nn.Parameter(torch.zeros(groups, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)  # [B, D]
        return torch.baddbmm(
            self.bias[:, None, :], x.expand(self.groups, -1, -1), self.weight.transpose(1, 2)
        )
