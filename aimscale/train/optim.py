"""AdamW and the learning-rate schedules: linear warmup, then cosine decay or WSD.

- `cosine`: from `lr` at the end of the warmup down to `min_lr`, reached at `total_steps`.
- `wsd` (warmup-stable-decay): constant at `lr` after the warmup until the cooldown starts, then
  down to `min_lr` over the last `cooldown_fraction` of the steps, shaped `1-sqrt` (the default:
  it beats linear, Hägele et al. 2024) or `linear`. A constant-LR run can be cooled down from
  any step S: `lr_at(step, cfg, S + K, cooldown_start=S, warmup=W)` is the parent run's LR
  before S and a K-step cooldown after, which is what a cooldown branch trains with.

Each schedule is a pure function of the step, so its whole state is the step number: nothing to
pickle, and a resumed run cannot drift from an uninterrupted one. (torch is imported only to
build the optimiser: the planner computes schedules without it.) `lr_mult` of an optimiser group
(μP: hidden matrices) scales the schedule's value for that group.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aimscale.train.config import OptimConfig

if TYPE_CHECKING:  # the schedules are planned without torch (aimscale.sweep.data_sizes)
    import torch


def warmup_steps(cfg: OptimConfig, total_steps: int) -> int:
    return round(cfg.warmup_fraction * total_steps)


def cooldown_start_step(cfg: OptimConfig, total_steps: int) -> int:
    """First step of the WSD cooldown: the last `cooldown_fraction` of the steps, after warmup."""
    cooldown = round(cfg.cooldown_fraction * total_steps)
    return max(warmup_steps(cfg, total_steps), total_steps - cooldown)


def lr_at(
    step: int,
    cfg: OptimConfig,
    total_steps: int,
    cooldown_start: int | None = None,
    warmup: int | None = None,
) -> float:
    """Learning rate of the update that takes the run from `step` to `step + 1` (0-based).

    Warmup: lr·(step+1)/W for the first W updates (W = `warmup`, by default
    `warmup_fraction · total_steps`), so the first update is not wasted at lr 0. Then the decay
    from lr at update W (cosine) or at update `cooldown_start` (wsd; by default
    `cooldown_start_step`) towards min_lr, reached at `total_steps`, so the last update,
    `total_steps - 1`, is not wasted at min_lr = 0. A WSD cooldown_start >= total_steps means
    constant LR to the end.
    """
    warmup = warmup_steps(cfg, total_steps) if warmup is None else warmup
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "cosine":
        if cooldown_start is not None:
            raise ValueError("cooldown_start needs optim.schedule=wsd, not cosine")
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))
    start = cooldown_start_step(cfg, total_steps) if cooldown_start is None else cooldown_start
    if start < warmup:
        raise ValueError(f"the cooldown (from step {start}) cannot start inside the warmup "
                         f"({warmup} steps)")
    if step < start:
        return cfg.lr
    progress = min(1.0, (step - start) / max(1, total_steps - start))
    shape = math.sqrt(progress) if cfg.cooldown_shape == "1-sqrt" else progress
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * (1.0 - shape)


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the model's own groups (`AIM.param_groups`: no decay on biases, norms,
    positions; μP's per-group `lr_mult`)."""
    import torch

    groups = model.param_groups(cfg.weight_decay)
    for group in groups:
        group["lr"] = cfg.lr * group.setdefault("lr_mult", 1.0)
    fused = next(model.parameters()).is_cuda  # one kernel for the whole update on CUDA
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             fused=fused or None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the schedule's value `lr`, times each group's `lr_mult` (1 unless μP scales it)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
