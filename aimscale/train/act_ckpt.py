"""Activation checkpointing of the trunk blocks (`train.activation_checkpointing=true`).

Each trunk block keeps only its input for the backward pass and recomputes its activations
there (`torch.utils.checkpoint`, non-reentrant): per block 4·s·b·h bytes instead of
~32·s·b·h under bf16 (aimscale/memory.py), for one more forward of the trunk per step. The
blocks are deterministic (no dropout), so the recomputation equals the forward and the loss and
gradients are those of the plain model. The wrapper is set on each block instance, so parameter
names, state dicts and checkpoints do not change.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def apply_activation_checkpointing(model: torch.nn.Module) -> int:
    """Wrap the forward of every block of `model.trunk`; return how many were wrapped."""
    blocks = list(model.trunk.blocks)
    for block in blocks:
        forward = block.forward

        def checkpointed(*args, _forward=forward, **kwargs):
            if not torch.is_grad_enabled():  # evaluation: nothing to save, nothing to recompute
                return _forward(*args, **kwargs)
            return checkpoint(_forward, *args, use_reentrant=False, **kwargs)

        block.forward = checkpointed
    return len(blocks)
