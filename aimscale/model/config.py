"""Typed configuration of an AIM model (trunk, prediction head, objective)."""

from __future__ import annotations

from dataclasses import dataclass

ATTENTION_MODES = ("prefix", "causal")
ORDERS = ("raster", "spiral", "checkerboard", "random")
HEADS = ("mlp", "none", "transformer")
OBJECTIVES = ("pixel_norm", "pixel_raw", "tokens", "mim")
HEAD_BLOCKS = ("l3m", "plain")
TARGET_VARS = ("unbiased", "population")
PARAMETRIZATIONS = ("standard", "mup")


@dataclass
class ModelConfig:
    """Shape and pre-training variant of one AIM model.

    The defaults are a tiny CPU model for 28×28 grayscale images; the paper presets live in
    `aimscale/conf/model/*.yaml` (select with `model=aim-600m`).
    """

    name: str = "aim-tiny"
    image_size: int = 28
    patch_size: int = 4
    channels: int = 1
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    # pre-training attention; downstream evaluation is always bidirectional
    attention: str = "prefix"
    # autoregression order of the patches
    order: str = "raster"
    order_seed: int = 0
    # prediction head (pre-training only); the paper uses an MLP head 2048 wide, 12 blocks deep
    head: str = "mlp"
    head_width: int = 256
    head_depth: int = 2
    # MLP-head block: `l3m` (the authors' training library: x += LN_a(x), the attention slot is
    # an identity with its own LayerNorm, then x += MLP(LN_b(x))) or `plain` (only the second)
    head_block: str = "l3m"
    # objective: normalised pixels (paper), raw pixels, k-means tokens + CE, masked modelling
    objective: str = "pixel_norm"
    # variance of the per-patch target normalisation: `unbiased` (divide by n - 1: torch's
    # default and the authors' library) or `population` (divide by n); the paper is silent
    target_var: str = "unbiased"
    num_tokens: int = 256
    mask_ratio: float = 0.75
    # width scaling (aimscale/model/mup.py): `mup` scales init, per-layer LR and the readout with
    # width / mup_base_width, so an LR tuned at the base width transfers; at the base width it is
    # the standard model exactly. mup_base_head_dim: set it when the sweep grows the head
    # dimension (attention logits then scale as 1/head_dim); None keeps 1/sqrt(head_dim)
    parametrization: str = "standard"
    mup_base_width: int = 128
    mup_base_head_dim: int | None = None

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    def problems(self) -> list[str]:
        """Every inconsistency in this config, as sentences (empty when valid)."""
        found = []
        for key in ("image_size", "patch_size", "channels", "width", "depth", "heads"):
            if getattr(self, key) <= 0:
                found.append(f"model.{key} must be positive, got {getattr(self, key)}")
        if self.patch_size > 0 and self.image_size % self.patch_size:
            found.append(
                f"model.image_size={self.image_size} is not a multiple of "
                f"model.patch_size={self.patch_size}; pick a patch size that divides the image"
            )
        if self.heads > 0 and self.width % self.heads:
            found.append(
                f"model.heads={self.heads} must divide model.width={self.width} "
                f"(head dim = width / heads)"
            )
        # fixed 2-D sin-cos positions split the channels into 4 equal sin/cos x row/col parts
        if self.width > 0 and self.width % 4:
            found.append(
                f"model.width={self.width} must be a multiple of 4 (2-D sin-cos positions)"
            )
        if self.head in ("mlp", "transformer") and self.head_width > 0 and self.head_width % 4:
            found.append(
                f"model.head_width={self.head_width} must be a multiple of 4 (the head adds 2-D "
                "sin-cos positions)"
            )
        if self.mlp_ratio <= 0:
            found.append(f"model.mlp_ratio must be positive, got {self.mlp_ratio}")
        if self.norm_eps <= 0:
            found.append(f"model.norm_eps must be positive, got {self.norm_eps}")
        if self.patch_size > 0 and self.num_patches < 2:
            found.append("the image has fewer than 2 patches; autoregression needs at least 2")
        for key, allowed in (
            ("attention", ATTENTION_MODES),
            ("order", ORDERS),
            ("head", HEADS),
            ("objective", OBJECTIVES),
            ("head_block", HEAD_BLOCKS),
            ("target_var", TARGET_VARS),
            ("parametrization", PARAMETRIZATIONS),
        ):
            if getattr(self, key) not in allowed:
                found.append(f"model.{key}={getattr(self, key)!r} is not one of {allowed}")
        if self.head != "none" and (self.head_width <= 0 or self.head_depth < 0):
            found.append("model.head_width must be positive and model.head_depth non-negative")
        if not 0.0 < self.mask_ratio < 1.0:
            found.append(f"model.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.mup_base_width <= 0 or self.mup_base_width % 4:
            found.append(f"model.mup_base_width must be a positive multiple of 4, got "
                         f"{self.mup_base_width}")
        if self.mup_base_head_dim is not None and self.mup_base_head_dim <= 0:
            found.append(f"model.mup_base_head_dim must be positive or null, got "
                         f"{self.mup_base_head_dim}")
        if self.objective == "tokens" and self.num_tokens < 2:
            found.append("model.num_tokens must be at least 2 for the token objective")
        return found
