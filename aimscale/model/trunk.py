"""The AIM trunk: patch embedding, pre-norm transformer blocks, final LayerNorm.

Faithful to AIM v1: conv patch embedding (with bias) -> LayerNorm -> + fixed 2-D sin-cos
positions; blocks x += Attn(LN(x)); x += MLP(LN(x)) with bias-free qkv/proj/fc1/fc2 and exact
GELU; no cls token, registers, LayerScale, dropout or QK-norm. The trunk itself knows nothing of
autoregression orders or objectives: `AIM` permutes the tokens and picks the attention mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aimscale.model.config import ModelConfig
from aimscale.model.mup import attention_scale
from aimscale.model.positions import sincos_2d


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform linears (the patch conv as a linear over C·p² inputs), zero linear biases,
    LayerNorm weight 1 and bias 0. Apply with `model.apply(init_weights)`.

    The patch conv's bias keeps PyTorch's default init, uniform(±1/sqrt(C·p²)), drawn when the
    conv is built (issue 11: the form of the authors' training library, where only the conv's
    weight is re-initialised)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PatchEmbed(nn.Module):
    """Image [B, C, H, W] -> LN(conv) tokens [B, K, d] in raster order (positions added later)."""

    def __init__(self, channels: int, patch_size: int, width: int, eps: float):
        super().__init__()
        self.proj = nn.Conv2d(channels, width, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(width, eps=eps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.proj(images).flatten(2).transpose(1, 2)  # [B, K, d], K raster-ordered
        return self.norm(x)


class Attention(nn.Module):
    """Multi-head self-attention; `scale` of the logits: None = 1/sqrt(head_dim) (μP may set it)."""

    def __init__(self, width: int, heads: int, scale: float | None = None):
        super().__init__()
        self.heads, self.scale = heads, scale
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, K, head_dim]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=self.scale
        )
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(
        self, width: int, heads: int, mlp_ratio: float, eps: float, attn_scale: float | None = None
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attn = Attention(width, heads, attn_scale)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, mlp_hidden(width, mlp_ratio))

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask, is_causal=is_causal)
        return x + self.mlp(self.norm2(x))


def mlp_hidden(width: int, mlp_ratio: float) -> int:
    return int(round(width * mlp_ratio))


class Trunk(nn.Module):
    """Patch embedding + `depth` blocks + final LayerNorm; the part kept after pre-training."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.channels, cfg.patch_size, cfg.width, cfg.norm_eps)
        # fixed, not a parameter: never trained, never decayed; not saved (rebuilt from the config)
        self.register_buffer("pos", sincos_2d(cfg.width, cfg.grid_size), persistent=False)
        scale = attention_scale(cfg)
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.norm_eps, scale)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.apply(init_weights)

    def embed(
        self,
        images: torch.Tensor,
        mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Images -> tokens [B, K, d] in raster order with positions added.

        `mask` [B, K] (bool) replaces those patch embeddings by `mask_token` [d] before the
        positions are added, so a masked token still knows where it is (masked modelling).
        """
        self._check_images(images)
        x = self.patch_embed(images)
        if mask is not None:
            x = torch.where(mask[..., None], mask_token.to(x.dtype), x)
        return x + self.pos.to(x.dtype)

    def run_blocks(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        upto: int | None = None,
    ) -> list[torch.Tensor]:
        """Run blocks 0 .. upto-1 (all by default) on tokens; return every block's raw output."""
        outputs = []
        for block in self.blocks[: len(self.blocks) if upto is None else upto]:
            x = block(x, attn_mask=attn_mask, is_causal=is_causal)
            outputs.append(x)
        return outputs

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Tokens [B, K, d] (from `embed`, in any order) -> final-LN outputs [B, K, d]."""
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask, is_causal=is_causal)
        return self.norm(x)

    def features(self, images: torch.Tensor, blocks: Sequence[int]) -> torch.Tensor:
        """Probe features [B, K, d] in raster order: the element-wise mean of the raw outputs
        (before the final LN) of the given 0-indexed blocks, with bidirectional attention.

        Bidirectional attention makes the outputs independent of the autoregression order, so
        the tokens are not permuted.
        """
        blocks = sorted(set(int(b) for b in blocks))
        if not blocks or blocks[0] < 0 or blocks[-1] >= len(self.blocks):
            raise ValueError(
                f"feature blocks {list(blocks)} are not valid 0-indexed blocks of a trunk with "
                f"depth {len(self.blocks)}; pick indices in 0..{len(self.blocks) - 1}"
            )
        outputs = self.run_blocks(self.embed(images), upto=blocks[-1] + 1)
        return torch.stack([outputs[b] for b in blocks]).mean(0)

    def _check_images(self, images: torch.Tensor) -> None:
        cfg = self.cfg
        expected = (cfg.channels, cfg.image_size, cfg.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"expected images [B, {cfg.channels}, {cfg.image_size}, {cfg.image_size}] "
                f"for model {cfg.name!r}, got {list(images.shape)}; resize the data or set "
                "model.image_size / model.channels to match"
            )
