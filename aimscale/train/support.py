"""What the training loop cannot do yet, as input errors (exit 2 before anything runs).

`plan` estimates memory for `train.strategy=fsdp` and `train.activation_checkpointing=true`
(aimscale/memory.py) so a sweep can be sized for them, but the loop trains with DDP and stores
every activation. Whoever adds FSDP2 or checkpointing to the loop removes its line here.
"""

from __future__ import annotations

from aimscale.train.config import TrainConfig


def unsupported(train: TrainConfig) -> list[str]:
    found = []
    if train.strategy == "fsdp":
        found.append("train.strategy=fsdp is not implemented yet in the training loop (only "
                     "`plan` sizes it); train with train.strategy=ddp")
    if train.activation_checkpointing:
        found.append("train.activation_checkpointing=true is not implemented yet in the "
                     "training loop (only `plan` sizes it); set it to false")
    return found
