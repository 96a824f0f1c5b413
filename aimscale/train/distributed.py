"""Process-group setup for data-parallel training.

Ranks come from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or,
inside a submitit job, from `submitit.helpers.TorchDistributedEnvironment().export()`. One process
is world size 1 without a process group. gloo on CPU, nccl on GPU.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # whether we created the process group (and so must destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _in_submitit_job() -> bool:
    # set by submitit's local and slurm executors in the job's environment
    return bool(os.environ.get("SUBMITIT_EXECUTOR")) and bool(os.environ.get("SUBMITIT_FOLDER"))


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but CUDA is not available; use train.device=cpu")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cpu")


def setup(device_preference: str = "auto") -> DistEnv:
    """Join (or create) the process group described by the environment."""
    if "RANK" not in os.environ and _in_submitit_job():
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    owns_group = False
    if world_size > 1 and not dist.is_initialized():
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE={world_size} but {missing} are not set; start with torchrun or "
                "inside a submitit job"
            )
        if device.type == "cuda":
            torch.cuda.set_device(device)
        _import_group_defaults()
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns_group = True
    return DistEnv(rank, world_size, local_rank, device, owns_group)


def _import_group_defaults() -> None:
    """Import, before the group exists, the torch modules whose functions take
    `group=group.WORLD` as a default argument (DDP imports one lazily). Imported after
    `init_process_group`, their defaults would hold the group forever: its gloo worker threads
    would outlive `teardown` and, still freeing a collective's tensors when the interpreter
    exits, abort it ("terminate called without an active exception", SIGABRT)."""
    import torch.distributed.nn.functional  # noqa: F401


def teardown(env: DistEnv) -> None:
    """Destroy the group we created and free it, which joins its communication threads; call
    after every reference to a DDP wrapper of the model is dropped."""
    from aimscale.train.fsdp import release_meshes

    release_meshes()  # FSDP's device meshes hold the group too
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()
        gc.collect()  # a reference cycle may still hold the group


def all_reduce_sum(env: DistEnv, values: list[float]) -> list[float]:
    """Sum a few scalars over ranks (float64, so counts stay exact)."""
    if not env.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_reduce_sum_tensor(env: DistEnv, scalar: torch.Tensor, counts: list[float]
                          ) -> list[torch.Tensor]:
    """Sum a device scalar and a few host numbers over ranks, as float64 device scalars, without
    waiting for the device (the counts go through pinned memory on CUDA)."""
    host = torch.tensor(counts, dtype=torch.float64)
    if env.device.type == "cuda":
        host = host.pin_memory()
    packed = torch.cat([scalar.reshape(1).double(), host.to(env.device, non_blocking=True)])
    if env.distributed:
        dist.all_reduce(packed)
    return list(packed.unbind(0))


def all_gather_objects(env: DistEnv, obj):
    """Every rank's `obj`, in rank order."""
    if not env.distributed:
        return [obj]
    gathered = [None] * env.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def any_rank(env: DistEnv, flag: bool) -> bool:
    """True on every rank when `flag` is true on at least one (e.g. a stop signal)."""
    return all_reduce_sum(env, [float(flag)])[0] > 0
