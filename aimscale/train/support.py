"""What the training loop cannot do yet, as input errors (exit 2 before anything runs).

A setting that `plan` can size but the loop cannot run gets a line here until the loop has it
(`train.strategy=fsdp` was one, until FSDP2 came: `aimscale.train.fsdp`). Nothing is refused now.
"""

from __future__ import annotations

from aimscale.train.config import TrainConfig


def unsupported(train: TrainConfig) -> list[str]:
    """Sentences naming each setting of `train` the loop cannot run, and what to use instead."""
    return []
