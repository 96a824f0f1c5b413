"""Train grids of probe heads together on the same batches of features, and score them.

Every head of a grid sees the same batches in the same order (one shuffle per epoch) and has its
own learning rate and weight decay (`GridAdamW`); `fit_grids` trains several grids (block
windows × kinds) from each streamed batch, `fit_heads` one grid on in-memory features. Schedule:
linear warmup over the first epoch (at most 10% of the steps), then cosine to 0. The summed
cross-entropy of the G heads is minimised: the heads share no parameters, so each head gets
exactly the gradient of its own loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle of epoch `epoch`: a pure function of (seed, epoch), so any epoch can be
    re-streamed on its own (a separate stream from the heads' init and the validation split)."""
    return torch.Generator().manual_seed((seed + 2) * 1_000_003 + epoch)


class GridFit:
    """One grid of G heads (`GridHeads`) with its `GridAdamW`; `step` updates all G at once."""

    def __init__(self, heads: GridHeads, grid: list[Hparams]):
        if heads.groups != len(grid):
            raise ValueError(f"{heads.groups} heads for a grid of {len(grid)}")
        self.heads, self.grid = heads, grid
        self.optimizer = GridAdamW(heads.grid_parameters(), grid)

    def step(self, features: torch.Tensor, labels: torch.Tensor, factor: float) -> None:
        logits = self.heads(features)  # [G, B, C]
        target = labels.expand(self.heads.groups, -1)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum")
        self.optimizer.zero_grad()
        (loss / len(labels)).backward()
        self.optimizer.step(factor)


Batch = tuple[Sequence[torch.Tensor], torch.Tensor]  # (one input per grid, labels)


def fit_grids(
    fits: Sequence[GridFit],
    epoch_batches: Callable[[int], Iterable[Batch]],
    epochs: int,
    steps_per_epoch: int,
) -> None:
    """Train every grid of `fits` from the same batches: `epoch_batches(e)` yields, for epoch e,
    `steps_per_epoch` batches of (inputs, one per grid; labels). The learning-rate schedule
    (`schedule_factors`) is planned from `steps_per_epoch`; a batch with fewer than 2 images
    (undecodable images left out) is skipped but still advances the schedule."""
    factors = schedule_factors(epochs, steps_per_epoch)
    for fit in fits:
        fit.heads.train()
    step = 0
    for epoch in range(epochs):
        for inputs, labels in epoch_batches(epoch):
            if step >= len(factors):
                raise RuntimeError(f"epoch {epoch} yielded more than {steps_per_epoch} batches")
            if len(labels) >= 2:
                for fit, x in zip(fits, inputs, strict=True):
                    fit.step(x, labels, factors[step])
            step += 1
    for fit in fits:
        fit.heads.eval()


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
    """Train `heads` (G = len(grid)) on in-memory `features[rows]` / `labels[rows]` (features
    [N, ...]); returns them in eval mode. The probe itself streams (`fit_grids` directly)."""
    fit = GridFit(heads, grid)
    rows = rows.to(features.device)

    def epoch_batches(_epoch: int) -> Iterator[Batch]:
        for batch in batches(len(rows), batch_size, generator):
            index = rows[batch.to(rows.device)]
            yield [features[index]], labels[index]

    fit_grids([fit], epoch_batches, epochs, len(batches(len(rows), batch_size)))
    return heads.eval()


@torch.no_grad()
def predict(heads: GridHeads, features: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits [G, N, C] in eval mode (BatchNorm running statistics)."""
    heads.eval()
    return torch.cat([heads(chunk) for chunk in features.split(batch_size)], dim=1)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per head, the number of rows whose label is among the k largest logits ([G, N, C])."""
    k = min(k, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices  # [G, N, k]
    return (top == labels[None, :, None]).any(-1).sum(-1)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> list[float]:
    """Per head, the fraction of rows whose label is among the k largest logits ([G, N, C])."""
    return [c / len(labels) for c in topk_correct(logits, labels, k).tolist()]  # exact fractions
