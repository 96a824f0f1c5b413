"""Parameter counts and FLOPs of an AIM model, in closed form from its config (no weights).

Conventions: a matmul multiply-add is 2 FLOPs; training = forward + backward = 3 × forward.
Counted: the patch conv, qkv/proj/fc1/fc2, attention QKᵀ and AV over the full K×K matrix (what a
dense masked kernel executes; no discount for the causal/prefix mask), and every matmul of the
prediction head on all K positions. Excluded: LayerNorms, softmax, GELU, residual adds, bias adds,
positions, normalisation of the targets and the loss; so the extra LayerNorm and residual add of
the l3m head block (`model.head_block=l3m`) add parameters but no counted FLOPs. The k-means fit
of `tokens` is setup, not training, and is excluded too.

Parameters: the trunk is what is kept for downstream use (patch conv + LN, blocks, final LN);
`head` counts everything used in pre-training only (prediction head, and the mask token of the
masked-modelling baseline). Fixed sin-cos positions are buffers, not parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aimscale.model.config import ModelConfig


def _mlp_hidden(width: int, ratio: float) -> int:
    return int(round(width * ratio))  # same rule as aimscale.model.trunk.mlp_hidden


def _out_dim(cfg: ModelConfig) -> int:
    return cfg.num_tokens if cfg.objective == "tokens" else cfg.channels * cfg.patch_size**2


def _block_params(width: int, hidden: int) -> int:
    # qkv 3d² + proj d² + fc1 d·h + fc2 h·d (no biases) + two LayerNorms (weight + bias)
    return 4 * width * width + 2 * width * hidden + 4 * width


@dataclass(frozen=True)
class ParamCounts:
    trunk: int
    head: int

    @property
    def total(self) -> int:
        return self.trunk + self.head

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def trunk_params(cfg: ModelConfig) -> int:
    d = cfg.width
    patch_conv = cfg.channels * cfg.patch_size**2 * d + d
    blocks = cfg.depth * _block_params(d, _mlp_hidden(d, cfg.mlp_ratio))
    return patch_conv + 2 * d + blocks + 2 * d  # + patch LN + blocks + final LN


def head_params(cfg: ModelConfig) -> int:
    d, w, out = cfg.width, cfg.head_width, _out_dim(cfg)
    mask_token = d if cfg.objective == "mim" else 0
    if cfg.head == "none":
        return d * out + out + mask_token
    if cfg.head == "mlp":
        per_block = 8 * w * w + 2 * w  # fc1 w·4w + fc2 4w·w (no bias) + LN
        if cfg.head_block == "l3m":
            per_block += 2 * w  # LN_a of the identity attention slot
    else:  # transformer
        per_block = _block_params(w, 4 * w)
    # in-projection (bias) + blocks + final LN + out-projection (bias)
    return (d * w + w) + cfg.head_depth * per_block + 2 * w + (w * out + out) + mask_token


def param_counts(cfg: ModelConfig) -> ParamCounts:
    return ParamCounts(trunk=trunk_params(cfg), head=head_params(cfg))


@dataclass(frozen=True)
class ForwardFlops:
    """Forward FLOPs per image, by part."""

    patch_embed: int
    trunk_blocks: int
    head: int

    @property
    def total(self) -> int:
        return self.patch_embed + self.trunk_blocks + self.head


def _block_flops(tokens: int, width: int, hidden: int) -> int:
    linear = 2 * tokens * (4 * width * width + 2 * width * hidden)  # qkv, proj, fc1, fc2
    attention = 2 * 2 * tokens * tokens * width  # QKᵀ and AV, all heads together
    return linear + attention


def forward_flops(cfg: ModelConfig) -> ForwardFlops:
    k, d, w, out = cfg.num_patches, cfg.width, cfg.head_width, _out_dim(cfg)
    patch_embed = 2 * k * cfg.channels * cfg.patch_size**2 * d
    blocks = cfg.depth * _block_flops(k, d, _mlp_hidden(d, cfg.mlp_ratio))
    if cfg.head == "none":
        head = 2 * k * d * out
    else:
        if cfg.head == "mlp":
            per_block = 2 * k * 8 * w * w
        else:
            per_block = _block_flops(k, w, 4 * w)
        head = 2 * k * d * w + cfg.head_depth * per_block + 2 * k * w * out
    return ForwardFlops(patch_embed=patch_embed, trunk_blocks=blocks, head=head)


def forward_flops_per_image(cfg: ModelConfig) -> int:
    return forward_flops(cfg).total


def flops_per_image(cfg: ModelConfig) -> int:
    """Training FLOPs per image: forward + backward = 3 × forward."""
    return 3 * forward_flops_per_image(cfg)
