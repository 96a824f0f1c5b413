"""AdamW and the learning-rate schedule (linear warmup, then cosine decay to `min_lr`).

The schedule is a pure function of the step, so its whole state is the step number: nothing to
pickle, and a resumed run cannot drift from an uninterrupted one.
"""

from __future__ import annotations

import math

import torch

from aimscale.train.config import OptimConfig


def warmup_steps(cfg: OptimConfig, total_steps: int) -> int:
    return round(cfg.warmup_fraction * total_steps)


def lr_at(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Learning rate of the update that takes the run from `step` to `step + 1` (0-based).

    Warmup: lr·(step+1)/W for the first W updates, so the first update is not wasted at lr 0.
    Then cosine from lr (at update W) towards min_lr, reached at `total_steps` (so the last
    update, `total_steps - 1`, is not wasted at min_lr = 0).
    """
    warmup = warmup_steps(cfg, total_steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    decay_steps = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the model's own groups (`AIM.param_groups`: no decay on biases, norms,
    positions)."""
    groups = model.param_groups(cfg.weight_decay)
    fused = next(model.parameters()).is_cuda  # one kernel for the whole update on CUDA
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             fused=fused or None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
