"""Train a grid of probe heads together on fixed features, and score them.

Every head of the grid sees the same batches in the same order (one shuffle per epoch from the
seeded generator) and has its own learning rate and weight decay (`GridAdamW`). Schedule:
linear warmup over the first epoch (at most 10% of the steps), then cosine to 0. The summed
cross-entropy of the G heads is minimised: the heads share no parameters, so each head gets
exactly the gradient of its own loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from aimscale.probe.heads import GridHeads

BETAS = (0.9, 0.999)


@dataclass(frozen=True)
class Hparams:
    lr: float
    weight_decay: float


def make_grid(lrs: list[float], weight_decays: list[float]) -> list[Hparams]:
    return [Hparams(float(lr), float(wd)) for lr in lrs for wd in weight_decays]


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier at step s: linear warmup to 1, then cosine to 0 at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class GridAdamW:
    """AdamW (decoupled weight decay, bias-corrected moments, as torch.optim.AdamW) over
    parameters whose first dimension is the grid member, with a learning rate and a weight
    decay per member. `step(factor)` scales every learning rate by the schedule's factor.

    Our own, rather than torch.optim.AdamW with one parameter group per head: it updates all G
    heads with one set of tensor ops, and it avoids the ~3 s import of torch._dynamo that
    torch.optim pays on first use in every probe process.
    """

    def __init__(
        self,
        params: list[tuple[torch.Tensor, bool]],
        grid: list[Hparams],
        betas: tuple[float, float] = BETAS,
        eps: float = 1e-8,
    ):
        self.params = params  # (parameter [G, ...], decayed)
        self.lr = torch.tensor([hp.lr for hp in grid])
        self.weight_decay = torch.tensor([hp.weight_decay for hp in grid])
        self.betas, self.eps, self.steps = betas, eps, 0
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p, _ in params]

    def zero_grad(self) -> None:
        for p, _ in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, factor: float = 1.0) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        correction1 = 1 - beta1**self.steps
        correction2_sqrt = math.sqrt(1 - beta2**self.steps)
        for (p, decayed), (m, v) in zip(self.params, self.moments, strict=True):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            lr = (self.lr * factor).to(p.device).view(shape)
            if decayed:
                p.mul_(1 - lr * self.weight_decay.to(p.device).view(shape))
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (v.sqrt() / correction2_sqrt).add_(self.eps)
            p.sub_(lr / correction1 * m / denom)


def schedule_factors(epochs: int, steps_per_epoch: int) -> list[float]:
    """The learning-rate multiplier of every step: warmup over the first epoch (at most 10% of
    the steps), then cosine to 0."""
    total = epochs * steps_per_epoch
    factor = warmup_cosine(total, max(1, min(steps_per_epoch, total // 10)))
    return [factor(step) for step in range(total)]


def batches(
    n: int, batch_size: int, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """A shuffled epoch of index batches (in order without a generator); a last batch of fewer
    than half a batch is dropped (every epoch shuffles anew, so no image is left out for good).
    """
    order = torch.arange(n) if generator is None else torch.randperm(n, generator=generator)
    size = min(batch_size, n)
    chunks = list(order.split(size))
    if len(chunks) > 1 and len(chunks[-1]) < size // 2:
        chunks.pop()
    return chunks


def fit_heads(
    heads: GridHeads,
    grid: list[Hparams],
    features: torch.Tensor,
    labels: torch.Tensor,
    rows: torch.Tensor,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
) -> GridHeads:
    """Train `heads` (G = len(grid)) on `features[rows]` / `labels[rows]` (features [N, ...]);
    returns them in eval mode."""
    if heads.groups != len(grid):
        raise ValueError(f"{heads.groups} heads for a grid of {len(grid)}")
    optimizer = GridAdamW(heads.grid_parameters(), grid)
    factors = iter(schedule_factors(epochs, len(batches(len(rows), batch_size))))
    rows = rows.to(features.device)
    heads.train()
    for _ in range(epochs):
        for batch in batches(len(rows), batch_size, generator):
            index = rows[batch.to(rows.device)]
            logits = heads(features[index])  # [G, B, C]
            target = labels[index].expand(heads.groups, -1)
            loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum")
            optimizer.zero_grad()
            (loss / len(index)).backward()
            optimizer.step(next(factors))
    return heads.eval()


@torch.no_grad()
def predict(heads: GridHeads, features: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits [G, N, C] in eval mode (BatchNorm running statistics)."""
    heads.eval()
    return torch.cat([heads(chunk) for chunk in features.split(batch_size)], dim=1)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> list[float]:
    """Per head, the fraction of rows whose label is among the k largest logits ([G, N, C])."""
    k = min(k, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices  # [G, N, k]
    correct = (top == labels[None, :, None]).any(-1).sum(-1)
    return [c / len(labels) for c in correct.tolist()]  # exact fractions, e.g. 0.31
