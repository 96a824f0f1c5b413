"""μP width scaling for Adam (Yang et al. 2022, "Tensor Programs V"): an LR tuned at the base
width stays near-optimal at other widths.

With `model.parametrization=mup` and m = width / mup_base_width, each parameter gets a role from
the dimensions that grow with the trunk width. These are found by comparing its shape with the
same model built at the base width (on the meta device, like the `mup` package's base shapes):
- hidden (both fans grow: qkv, proj, fc1, fc2): init var ∝ 1/fan_in (xavier already gives
  that); Adam LR × base_fan_in / fan_in = 1/m.
- input (only fan_out grows: the patch conv): init as at the base width; LR unscaled.
- readout (only fan_in grows: the head's first layer, which reads the trunk): init as at the
  base width, its input multiplied by 1/m (`readout_multiplier`); LR unscaled.
- vector (norm weights, biases, the mask token) and fixed (the head's own layers; the head's
  width is not scaled): unchanged.
Attention logits keep 1/sqrt(head_dim) while the head dimension is fixed (the shipped sweeps
grow width by adding heads, where μP's 1/head_dim rule is only a constant factor); with
`mup_base_head_dim` set they are scaled by sqrt(mup_base_head_dim) / head_dim, μP's rule, which
equals the standard one at the base head dimension. AdamW's decoupled decay is lr·wd, so it
follows each group's scaled LR (as in the `mup` package's MuAdamW).

At width == mup_base_width (and head_dim == mup_base_head_dim, if set) every factor is 1 and
the model, its initial weights and its optimiser groups are the standard ones exactly.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from aimscale.model.config import ModelConfig

ROLES = ("hidden", "input", "readout", "vector", "fixed")


def width_mult(cfg: ModelConfig) -> float:
    """m = width / base width under μP; 1 under the standard parametrization."""
    return cfg.width / cfg.mup_base_width if cfg.parametrization == "mup" else 1.0


def readout_multiplier(cfg: ModelConfig) -> float:
    """Factor on the trunk's output where the head reads it: 1/m."""
    return 1.0 / width_mult(cfg)


def attention_scale(cfg: ModelConfig) -> float | None:
    """Softmax scale of the trunk's attention; None = torch's default 1/sqrt(head_dim)."""
    if cfg.parametrization != "mup" or cfg.mup_base_head_dim is None:
        return None
    head_dim = cfg.width // cfg.heads
    if head_dim == cfg.mup_base_head_dim:
        return None  # the same value, and bit-identical to the standard path
    return math.sqrt(cfg.mup_base_head_dim) / head_dim


def base_shapes(cfg: ModelConfig) -> dict[str, torch.Size]:
    """Parameter shapes of this model at the base width (built on the meta device: no memory,
    no draws from the global RNG)."""
    from aimscale.model.aim import AIM

    # heads do not change any parameter shape; 1 head divides every width
    base = dataclasses.replace(cfg, width=cfg.mup_base_width, heads=1, parametrization="standard")
    rng = torch.get_rng_state()
    try:
        with torch.device("meta"):
            model = AIM(base)
    finally:
        torch.set_rng_state(rng)
    return {name: p.shape for name, p in model.named_parameters()}


def parameter_roles(
    model: nn.Module, cfg: ModelConfig, base: dict[str, torch.Size] | None = None
) -> dict[str, str]:
    """name -> role (see the module docstring) for every parameter of `model`."""
    if width_mult(cfg) == 1.0:
        return {name: "fixed" for name, _ in model.named_parameters()}
    base = base_shapes(cfg) if base is None else base
    roles = {}
    for name, param in model.named_parameters():
        grown = [i for i, (a, b) in enumerate(zip(param.shape, base[name], strict=True)) if a != b]
        if param.ndim < 2:
            roles[name] = "vector" if grown else "fixed"
        elif not grown:
            roles[name] = "fixed"
        elif 0 in grown and len(grown) > 1:
            roles[name] = "hidden"
        elif grown == [0]:
            roles[name] = "input"
        else:
            roles[name] = "readout"
    readouts = [n for n, r in roles.items() if r == "readout"]
    if any(not n.startswith("head.") for n in readouts):
        raise NotImplementedError(
            f"μP: {readouts} read the trunk width outside the head; only the head's input gets "
            "the readout multiplier, so give this layer one too"
        )
    return roles


def _fans(shape: torch.Size) -> tuple[int, int]:
    return math.prod(shape[1:]), shape[0]  # (fan_in, fan_out) of a linear or a conv


@torch.no_grad()
def apply_mup(model: nn.Module, cfg: ModelConfig) -> dict[str, float]:
    """Rescale the standard (xavier) init of input and readout layers to their base-width
    variance; return the Adam LR multiplier of every parameter (1 unless hidden)."""
    if width_mult(cfg) == 1.0:
        return {name: 1.0 for name, _ in model.named_parameters()}
    base = base_shapes(cfg)
    roles = parameter_roles(model, cfg, base)
    lr_mult = {}
    for name, param in model.named_parameters():
        role = roles[name]
        lr_mult[name] = 1.0
        if role in ("input", "readout"):
            fan_in, fan_out = _fans(param.shape)
            base_in, base_out = _fans(base[name])
            param.mul_(math.sqrt((fan_in + fan_out) / (base_in + base_out)))
        elif role == "hidden":
            lr_mult[name] = _fans(base[name])[0] / _fans(param.shape)[0]
    return lr_mult
