"""Validation loss with a fixed protocol, comparable across evaluations, runs and world sizes.

Protocol: the validation images (`build_val_images`, fixed and unaugmented) are cut into chunks
of `EVAL_CHUNK` images in order; before chunk j the global RNG is seeded with `EVAL_SEED + j`,
so the prefix lengths (or MIM masks) of every image are the same at every evaluation, in every
run with the same model config, whatever the micro batch size or the number of ranks (chunk j is
evaluated by rank j mod world_size). The loss is token-weighted over all chunks, like the
training loss. All of it runs inside `torch.random.fork_rng`, so evaluating does not move the
training RNG stream: a run with evaluations trains exactly like one without.
With `lockstep` (FSDP, whose forward is a collective) every rank runs the same number of
forwards: a rank without a chunk in the last round runs chunk 0 again and discards it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from aimscale.train.distributed import DistEnv, all_reduce_sum

EVAL_SEED = 12345
EVAL_CHUNK = 32


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module,
    images: torch.Tensor,
    env: DistEnv,
    autocast: Callable[[], AbstractContextManager],
    lockstep: bool = False,
) -> float:
    """Token-weighted mean loss of `model` on `images` (same value on every rank)."""
    devices = [env.device] if env.device.type == "cuda" else []
    was_training = model.training
    model.eval()
    loss_sum, targets = 0.0, 0
    try:
        with torch.random.fork_rng(devices=devices):
            chunks = math.ceil(len(images) / EVAL_CHUNK)
            rounds = math.ceil(chunks / env.world_size) if lockstep else chunks
            for j in range(chunks if not lockstep else rounds * env.world_size):
                if j % env.world_size != env.rank:
                    continue
                counted = j < chunks  # else a lockstep filler: chunk 0, not counted
                start = EVAL_CHUNK * (j if counted else 0)
                torch.manual_seed(EVAL_SEED + j)
                chunk = images[start : start + EVAL_CHUNK].to(env.device, non_blocking=True)
                with autocast():
                    out = model(chunk)
                if counted:
                    loss_sum += float(out["loss"].float()) * out["num_targets"]
                    targets += out["num_targets"]
    finally:
        model.train(was_training)
    loss_sum, targets = all_reduce_sum(env, [loss_sum, float(targets)])
    return loss_sum / targets
