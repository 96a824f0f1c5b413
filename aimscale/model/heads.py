"""Prediction heads: used in pre-training only, discarded afterwards.

- `MLPHead` (paper): Linear(d -> w, bias) -> + sin-cos positions of width w -> `depth` residual
  MLP blocks (no bias, ratio 4) -> LN -> Linear(w -> out, bias). A block is, with
  `model.head_block=l3m` (the authors' training library, default), a transformer block whose
  attention slot is an identity: x += LN_a(x); x += MLP(LN_b(x)). With `plain`, only the second
  step (2·w fewer parameters per block, a different function).
- `LinearHead` (`head=none`): one Linear(d -> out, bias).
- `TransformerHead` (ablation): Linear(d -> w, bias) -> + positions -> `depth` pre-norm
  transformer blocks of width w with the trunk's attention mask -> LN -> Linear(w -> out, bias).

The head's positions are those of the token in the same sequence slot (the input patch, in the
autoregression order), not those of the patch being predicted: the paper is silent here.
"""

from __future__ import annotations

import torch
from torch import nn

from aimscale.model.config import ModelConfig
from aimscale.model.positions import sincos_2d
from aimscale.model.trunk import MLP, Block, init_weights


def transformer_head_heads(cfg: ModelConfig) -> int:
    """Heads of the transformer head: keep the trunk's head dimension where it divides."""
    head_dim = cfg.width // cfg.heads
    heads = max(1, cfg.head_width // head_dim)
    while cfg.head_width % heads:
        heads -= 1
    return heads


class ResidualMLP(nn.Module):
    """One MLP-head block; `identity_norm` adds the l3m step x += LN_a(x) before the MLP."""

    def __init__(self, width: int, eps: float, identity_norm: bool = True):
        super().__init__()
        self.identity_norm = nn.LayerNorm(width, eps=eps) if identity_norm else None
        self.norm = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, 4 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity_norm is not None:
            x = x + self.identity_norm(x)  # the attention slot: identity(LN_a(x))
        return x + self.mlp(self.norm(x))


class LinearHead(nn.Module):
    def __init__(self, cfg: ModelConfig, out_dim: int, order: torch.Tensor):
        super().__init__()
        self.out = nn.Linear(cfg.width, out_dim)
        self.apply(init_weights)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        return self.out(x)


class _BlocksHead(nn.Module):
    """Linear(d -> w) -> + positions -> blocks -> LN -> Linear(w -> out); subclasses make blocks."""

    def __init__(self, cfg: ModelConfig, out_dim: int, order: torch.Tensor, blocks: list):
        super().__init__()
        width = cfg.head_width
        self.proj = nn.Linear(cfg.width, width)
        pos = sincos_2d(width, cfg.grid_size)[order]  # follows the sequence order
        self.register_buffer("pos", pos, persistent=False)
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(width, eps=cfg.norm_eps)
        self.out = nn.Linear(width, out_dim)
        self.apply(init_weights)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        x = self.proj(x)
        x = x + self.pos.to(x.dtype)
        for block in self.blocks:
            x = self._run_block(block, x, attn_mask, is_causal)
        return self.out(self.norm(x))

    def _run_block(self, block, x, attn_mask, is_causal):
        return block(x)


class MLPHead(_BlocksHead):
    """The paper's head: residual MLP blocks; every token is predicted on its own."""

    def __init__(self, cfg: ModelConfig, out_dim: int, order: torch.Tensor):
        l3m = cfg.head_block == "l3m"
        blocks = [ResidualMLP(cfg.head_width, cfg.norm_eps, l3m) for _ in range(cfg.head_depth)]
        super().__init__(cfg, out_dim, order, blocks)


class TransformerHead(_BlocksHead):
    """Ablation: transformer blocks that attend with the trunk's mask."""

    def __init__(self, cfg: ModelConfig, out_dim: int, order: torch.Tensor):
        heads = transformer_head_heads(cfg)
        blocks = [Block(cfg.head_width, heads, 4.0, cfg.norm_eps) for _ in range(cfg.head_depth)]
        super().__init__(cfg, out_dim, order, blocks)

    def _run_block(self, block, x, attn_mask, is_causal):
        return block(x, attn_mask=attn_mask, is_causal=is_causal)


HEAD_CLASSES = {"mlp": MLPHead, "none": LinearHead, "transformer": TransformerHead}


def build_head(cfg: ModelConfig, out_dim: int, order: torch.Tensor) -> nn.Module:
    return HEAD_CLASSES[cfg.head](cfg, out_dim, order)
