"""The sharded checkpoint format of FSDP runs: a directory `step_{step:08d}.dcp/`.

Inside: what `torch.distributed.checkpoint` (DCP) writes for `{"model": …, "optimizer": …}`
(`get_state_dict` of the sharded model and its optimiser: one `__<rank>_0.distcp` file per rank
with that rank's shards, and `.metadata`, written by rank 0 once every rank has finished), plus
`state.pt` (rank 0, `torch.load(weights_only=True)`): the rest of the training state, as in a
`.pt` checkpoint (step, scheduler, every rank's RNG and data position, metrics offset, elapsed
time). Keys of the optimiser state are parameter names (DCP's form), not indices.

Atomic like the `.pt` files: every rank writes into a temp directory
`.step_{step:08d}.dcp.<random>.tmp/` (a name `aimscale.atomic.is_temp_file` recognises, removed
when a trainer claims the run directory), then rank 0 adds `state.pt`, fsyncs and renames the
directory to its final name, so a kill mid-write leaves no directory with a final name.
Checkpoint directories must be on a file system every rank sees (as the run directory is).

Reading: `restore` loads into a live model and optimiser, sharded (every rank of an FSDP run
reads its own shards: a collective) or plain (one process reads everything, no process group
needed); `load_model` reads the model weights into a plain state dict on one process (what
probes need), `load_full` a whole checkpoint.
"""

from __future__ import annotations

import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from aimscale.atomic import atomic_write, make_temp_dir, replace_dir

SUFFIX = ".dcp"
STATE_FILE = "state.pt"


@contextmanager
def _one_process():
    """DCP warns that it assumes one process whenever no group exists, even when asked to."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def save(path: Path, state: dict | None, model: torch.nn.Module, optimizer) -> Path:
    """Write the checkpoint directory `path` (`…/step_XXXXXXXX.dcp`); every rank of the
    model's process group calls it, `state` (the non-tensor-sharded rest) is used on rank 0."""
    from torch.distributed.checkpoint import save as dcp_save
    from torch.distributed.checkpoint.state_dict import get_state_dict

    main = _rank() == 0
    tmp = None
    if main:
        tmp = str(make_temp_dir(path))
    if dist.is_initialized():  # every rank writes its shards into rank 0's temp directory
        names = [tmp]
        dist.broadcast_object_list(names, src=0)
        tmp = names[0]
    try:
        model_state, optim_state = get_state_dict(model, optimizer)
        # returns once rank 0 has written .metadata after every rank's shards (fsynced)
        with _one_process():
            dcp_save({"model": model_state, "optimizer": optim_state}, checkpoint_id=tmp,
                     no_dist=not dist.is_initialized())
        if main:
            atomic_write(Path(tmp) / STATE_FILE, lambda handle: torch.save(state, handle))
            replace_dir(tmp, path)
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_state(path: Path, mmap: bool = False) -> dict:
    """The non-sharded part (`state.pt`) of the checkpoint directory `path`."""
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True, mmap=mmap)


def is_complete(path: Path) -> bool:
    """Whether `path` holds a whole checkpoint: `state.pt` loads, `.metadata` reads, and every
    byte range it lists lies inside an existing shard file. Reads no tensor data."""
    from torch.distributed.checkpoint import FileSystemReader

    try:
        read_state(path, mmap=True)
        metadata = FileSystemReader(str(path)).read_metadata()
        sizes: dict[str, int] = {}
        for info in metadata.storage_data.values():
            name = info.relative_path
            if name not in sizes:
                sizes[name] = (path / name).stat().st_size
            if info.offset + info.length > sizes[name]:
                return False
    except Exception:  # any failure means "not a checkpoint we can resume from"
        return False
    return True


def restore(path: Path, model: torch.nn.Module, optimizer=None) -> dict:
    """Load the checkpoint directory `path` into `model` (and `optimizer`); return `state.pt`.
    A sharded (FSDP) model reads its shards collectively (call on every rank); a plain model
    reads everything on this process alone."""
    from torch.distributed.checkpoint import load as dcp_load
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from aimscale.train.fsdp import is_sharded

    optimizers = [] if optimizer is None else optimizer
    model_state, optim_state = get_state_dict(model, optimizers)
    wanted = {"model": model_state}
    if optimizer is not None:
        wanted["optimizer"] = optim_state
    with _one_process():
        dcp_load(wanted, checkpoint_id=str(path), no_dist=not is_sharded(model))
    set_state_dict(model, optimizers, model_state_dict=model_state,
                   optim_state_dict=optim_state if optimizer is not None else {})
    return read_state(path)


def load_model(path: Path, template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The un-sharded model weights of `path`, read on one process into (a copy of) the plain
    state dict `template` (e.g. `AIM(cfg.model).state_dict()`, which fixes names and shapes)."""
    from torch.distributed.checkpoint import load as dcp_load

    weights = {name: tensor.clone() for name, tensor in template.items()}
    with _one_process():
        dcp_load({"model": weights}, checkpoint_id=str(path), no_dist=True)
    return weights


def load_full(path: Path) -> dict:
    """The whole checkpoint as plain tensors on one process, without a template: `state.pt`
    merged with the un-sharded `model` and `optimizer` state dicts."""
    # what torch's public `format_utils.dcp_to_torch_save` does, minus the file it writes
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    tensors: dict = {}
    with _one_process():
        _load_state_dict(tensors, storage_reader=FileSystemReader(str(path)),
                         planner=_EmptyStateDictLoadPlanner(), no_dist=True)
    return {**read_state(path), **tensors}
