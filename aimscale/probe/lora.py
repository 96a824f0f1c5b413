"""LoRA: low-rank adapters on the trunk's attention projections (qkv, proj), base frozen.

`W x + (alpha / r) · B A x` with A [r, in] drawn like a Linear's weight and B [out, r] zero, so
the adapted trunk starts as the pre-trained one. Only A, B (and the probe head) are trained.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from aimscale.probe.fit import GridAdamW, Hparams, batches, schedule_factors
from aimscale.probe.heads import AttentiveHeads

TARGETS = ("qkv", "proj")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        bound = 1.0 / math.sqrt(base.in_features)
        self.down = nn.Parameter(torch.empty(rank, base.in_features).uniform_(
            -bound, bound, generator=generator))  # fmt: skip
        self.up = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.down.T @ self.up.T) * self.scale


def add_lora(
    trunk: nn.Module, rank: int, generator: torch.Generator, alpha: float | None = None
) -> list[nn.Parameter]:
    """Freeze `trunk` and wrap every attention qkv/proj Linear in a LoRALinear (in place).

    Returns the adapter parameters (the only trainable ones in the trunk). Targets are Linear
    layers named `qkv`/`proj` inside a module named `attn`, so the patch embedding's conv and
    the MLP are left alone.
    """
    trunk.requires_grad_(False)
    targets = [
        (name, module)
        for name, module in trunk.named_modules()
        if isinstance(module, nn.Linear)
        and name.rsplit(".", 1)[-1] in TARGETS
        and name.rsplit(".", 2)[-2:-1] == ["attn"]
    ]
    if not targets:
        raise ValueError("no attention qkv/proj Linear layers found in the trunk for LoRA")
    adapters: list[nn.Parameter] = []
    for name, module in targets:
        parent_name, _, leaf = name.rpartition(".")
        lora = LoRALinear(module, rank, float(alpha or rank), generator)
        setattr(trunk.get_submodule(parent_name), leaf, lora)
        adapters += [lora.down, lora.up]
    return adapters


def finetune_lora(
    trunk: nn.Module,
    blocks: list[int],
    hp: Hparams,
    images: torch.Tensor,
    labels: torch.Tensor,
    rows: torch.Tensor,
    num_classes: int,
    heads: int,
    rank: int,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[nn.Module, AttentiveHeads]:
    """Fine-tune a copy of `trunk` with LoRA adapters and an attentive head on the features of
    `blocks`, on `images[rows]`; the original trunk is untouched. Returns (adapted trunk, head),
    both in eval mode. One grid member: the trunk changes, so members cannot share features.
    """
    device = next(trunk.parameters()).device
    tuned = copy.deepcopy(trunk)
    adapters = add_lora(tuned, rank, generator)
    tuned.to(device)
    head = AttentiveHeads(1, trunk.cfg.width, heads, num_classes, generator).to(device)
    # a grid of one: the adapters take the member's learning rate and weight decay too
    optimizer = GridAdamW(head.grid_parameters() + [(p, True) for p in adapters], [hp])
    factors = iter(schedule_factors(epochs, len(batches(len(rows), batch_size))))
    head.train()
    for _ in range(epochs):
        for batch in batches(len(rows), batch_size, generator):
            index = rows[batch]
            logits = head(tuned.features(images[index].to(device), blocks))[0]
            loss = F.cross_entropy(logits, labels[index].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step(next(factors))
    return tuned.eval(), head.eval()
