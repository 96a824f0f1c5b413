"""LoRA: low-rank adapters on the trunk's attention projections (qkv, proj), base frozen.

`W x + (alpha / r) · B A x` with A [r, in] drawn like a Linear's weight and B [out, r] zero, so
the adapted trunk starts as the pre-trained one. Only A, B (and the probe head) are trained.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from aimscale.probe.fit import GridAdamW, Hparams, schedule_factors
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
    image_batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    steps_per_epoch: int,
    num_classes: int,
    heads: int,
    rank: int,
    epochs: int,
    generator: torch.Generator,
) -> tuple[nn.Module, AttentiveHeads]:
    """Fine-tune a copy of `trunk` with LoRA adapters and an attentive head on the features of
    `blocks`; `image_batches(e)` yields epoch e's `steps_per_epoch` batches of (images, labels)
    (streamed: one batch in memory). The original trunk is untouched. Returns (adapted trunk,
    head), both in eval mode. One grid member: the trunk changes, so members cannot share
    features. `generator` draws the adapters' and the head's initial weights.
    """
    device = next(trunk.parameters()).device
    tuned = copy.deepcopy(trunk)
    adapters = add_lora(tuned, rank, generator)
    tuned.to(device)
    head = AttentiveHeads(1, trunk.cfg.width, heads, num_classes, generator).to(device)
    # a grid of one: the adapters take the member's learning rate and weight decay too
    optimizer = GridAdamW(head.grid_parameters() + [(p, True) for p in adapters], [hp])
    factors = iter(schedule_factors(epochs, steps_per_epoch))
    head.train()
    for epoch in range(epochs):
        for images, labels in image_batches(epoch):
            factor = next(factors)
            if len(labels) < 2:
                continue  # undecodable images left out; the schedule still advances
            logits = head(tuned.features(images.to(device), blocks))[0]
            loss = F.cross_entropy(logits, labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step(factor)
    return tuned.eval(), head.eval()
