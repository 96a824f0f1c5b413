"""What the training loop cannot do yet, as input errors (exit 2 before anything runs).

`plan` estimates memory for `train.strategy=fsdp` (aimscale/memory.py) so a sweep can be sized
for it, but the loop trains with DDP only. Whoever adds FSDP2 to the loop removes its line here.
"""

from __future__ import annotations

from aimscale.train.config import TrainConfig


def unsupported(train: TrainConfig) -> list[str]:
    found = []
    if train.strategy == "fsdp":
        found.append("train.strategy=fsdp is not implemented yet in the training loop (only "
                     "`plan` sizes it); train with train.strategy=ddp")
    return found
