"""FSDP2 (`train.strategy=fsdp`): parameters, gradients and AdamW state sharded over the ranks.

`shard_model` applies `fully_shard` to every trunk block, every head block and then the root
(the patch embedding, the head's projection and output layers, the mask token), over a 1-D mesh
of all ranks. Each block's parameters are all-gathered just before its forward (and again
before its backward) and freed after, so a GPU holds 1/W of the state plus one block unsharded.
Buffers (positions, orders, the k-means codebook) are not sharded: every rank keeps them whole.

The maths is that of one rank: every rank starts from the same full initialisation (seeded)
and keeps its slice of it; gradients are reduce-scattered as a mean over ranks, like DDP's
all-reduce, after every micro-batch's backward (the accumulated gradient stays sharded, the
lean choice for memory); `clip_grad_norm_` over the sharded gradients returns the global norm.
Precision: with bf16 (`train.precision=bf16`, or `auto` on a GPU) parameters are all-gathered in
bf16 and gradients reduced in float32 (`MixedPrecisionPolicy`); the sharded master weights and
AdamW state stay float32. On CPU (gloo) everything is float32.

One rank (world size 1) has nothing to shard: the model is left as it is (same maths), and its
checkpoints are still written in the sharded format (`aimscale.train.checkpoint`).
"""

from __future__ import annotations

import torch

from aimscale.train.distributed import DistEnv

# the meshes `shard_model` made: each holds the process group, and DTensor's global caches of
# sharding specs keep the meshes alive after the model is gone (`release_meshes`)
_MESHES: list = []


def bf16_params(precision: str, device: torch.device) -> bool:
    """Whether FSDP all-gathers bf16 parameters: the loop's autocast choice (`precision`)."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def shard_model(model: torch.nn.Module, env: DistEnv, precision: str) -> torch.nn.Module:
    """`fully_shard` the blocks of `model` (an AIM, after activation checkpointing is applied)
    and its root, in place; returns `model`. Build the optimiser after this call: it must hold
    the sharded parameters."""
    if not env.distributed:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(env.device.type, (env.world_size,))
    _MESHES.append(mesh)
    if bf16_params(precision, env.device):
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        policy = MixedPrecisionPolicy()
    blocks = [*model.trunk.blocks, *getattr(model.head, "blocks", [])]
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def release_meshes() -> None:
    """Drop our meshes' references to the process group, so that destroying the group frees it
    and joins its gloo threads (left running, they can abort the interpreter at exit, see
    `aimscale.train.distributed.teardown`). The registry is a private attribute of DeviceMesh
    (torch 2.13); without it there is nothing to drop."""
    while _MESHES:
        registry = getattr(_MESHES.pop(), "_pg_registry", None)
        if isinstance(registry, dict):
            registry.clear()


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def local_value(tensor: torch.Tensor) -> torch.Tensor:
    """A plain tensor for a DTensor result (e.g. the gradient norm over sharded gradients)."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def load_full_state(model: torch.nn.Module, optimizer, model_state: dict,
                    optim_state: dict | None) -> None:
    """Load un-sharded state dicts (a `.pt` checkpoint: the optimiser keyed by parameter index,
    `torch.optim` form) into the sharded `model` and `optimizer`; every rank keeps its slice."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    optimizers = []
    by_name = {}
    if optimizer is not None and optim_state is not None:
        optimizers = optimizer
        names = {param: name for name, param in model.named_parameters()}
        order = [names[p] for group in optimizer.param_groups for p in group["params"]]
        by_name = {
            "state": {order[i]: value for i, value in optim_state["state"].items()},
            "param_groups": [{**group, "params": [order[i] for i in group["params"]]}
                             for group in optim_state["param_groups"]],
        }
    set_state_dict(model, optimizers, model_state_dict=model_state, optim_state_dict=by_name,
                   options=StateDictOptions(full_state_dict=True))
