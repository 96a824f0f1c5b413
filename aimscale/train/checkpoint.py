"""Checkpoints of a run: `<run_dir>/checkpoints/step_{step:08d}.pt`, or for FSDP runs the
sharded directory `step_{step:08d}.dcp/` (`aimscale.train.dcp_checkpoint`). This module is the
one API for both: save, list, rotate, check, load (whole, on one process), restore (into a live
model and optimiser, plain or sharded) and the model weights for probes.

Written atomically (temp file, fsync, rename), so a file with the final name is complete; a kill
mid-write leaves only a `.step_*.tmp` file, which nothing reads (the trainer deletes such
files when it claims the run directory, `aimscale.train.rundir`). Files are loaded with
`torch.load(weights_only=True)`: RNG states are stored as tensors, everything else as plain
containers. Content (see docs/ARCHITECTURE.md): `step`, `model`, `optimizer`, `scheduler`,
`rng`, `data`, `metrics_offset`, plus `data_ranks` and `rng_ranks` (every rank's data position
and RNG) and `elapsed_s`.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from aimscale.atomic import atomic_write
from aimscale.train import dcp_checkpoint

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{8})\.(pt|dcp)$")
log = logging.getLogger(__name__)


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_path(run_dir: str | Path, step: int, sharded: bool | None = None) -> Path:
    """The checkpoint of `step`: the `.pt` file, or the `.dcp` directory when `sharded` (None:
    whichever exists, the `.pt` name if neither does)."""
    base = checkpoint_dir(run_dir) / f"step_{step:08d}"
    if sharded is None:
        sharded = base.with_suffix(dcp_checkpoint.SUFFIX).is_dir()
    return base.with_suffix(dcp_checkpoint.SUFFIX if sharded else ".pt")


def is_sharded_checkpoint(path: str | Path) -> bool:
    return Path(path).suffix == dcp_checkpoint.SUFFIX


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint (file or directory) by name, ascending; not checked for
    integrity."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    state: dict[str, Any] | None,
    keep: int,
    protect: Iterable[int] = (),
    sharded: tuple[torch.nn.Module, torch.optim.Optimizer] | None = None,
) -> Path:
    """Write `state` (with `step` set) atomically, then delete all but the newest `keep`
    checkpoints and those whose step is in `protect`.

    One process writes a `.pt` file (`state` holds `model` and `optimizer`). With `sharded`
    (the FSDP model and its optimiser) every rank calls this and writes its shards into a
    `.dcp` directory; `state` (without model and optimiser) is needed on rank 0 only, which
    also rotates."""
    if sharded is None:
        path = checkpoint_path(run_dir, step, sharded=False)
        payload = {**state, "step": step}
        atomic_write(path, lambda handle: torch.save(payload, handle))
    else:
        path = checkpoint_path(run_dir, step, sharded=True)
        payload = None if state is None else {**state, "step": step}
        dcp_checkpoint.save(path, payload, *sharded)
        if payload is None:  # not rank 0
            return path
    rotate_checkpoints(run_dir, keep, protect)
    return path


def rotate_checkpoints(run_dir: str | Path, keep: int, protect: Iterable[int] = ()) -> None:
    protected = set(protect)
    existing = list_checkpoints(run_dir)
    newest = {step for step, _ in existing[-keep:]} if keep > 0 else set()
    for step, path in existing:
        if step not in newest and step not in protected:
            _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a whole checkpoint written by `save_checkpoint` on this process, un-sharded
    (tensors and plain containers only). The optimiser state of a `.dcp` checkpoint is keyed
    by parameter name (DCP's form); restore it with `restore_checkpoint`."""
    if is_sharded_checkpoint(path):
        state = dcp_checkpoint.load_full(Path(path))
        return state if str(map_location) == "cpu" else _to(state, map_location)
    return torch.load(path, map_location=map_location, weights_only=True)


def _to(state, device):
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, dict):
        return {k: _to(v, device) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_to(v, device) for v in state)
    return state


def restore_checkpoint(path: str | Path, model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load the checkpoint `path` (either format) into `model` and `optimizer` (plain, DDP's
    module, or FSDP-sharded: then call on every rank) and return the rest of its state (step,
    data positions, …), with `rng` set to this rank's own RNG state when it was saved."""
    from aimscale.train.fsdp import is_sharded, load_full_state

    path = Path(path)
    if is_sharded_checkpoint(path):
        state = dcp_checkpoint.restore(path, model, optimizer)
    else:
        state = load_checkpoint(path)
        if is_sharded(model):  # a .pt checkpoint (e.g. of a DDP run) into an FSDP model
            load_full_state(model, optimizer, state["model"], state.get("optimizer"))
        else:
            model.load_state_dict(state["model"])
            if optimizer is not None:
                optimizer.load_state_dict(state["optimizer"])
    ranks = state.get("rng_ranks")
    if ranks:
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        if len(ranks) == world:
            state = {**state, "rng": ranks[rank]}
    return state


def is_loadable(path: str | Path) -> bool:
    """Whether `path` is a complete checkpoint. Memory-maps instead of reading the tensors, so
    checking a large file is cheap; a truncated file fails on its missing zip directory (a
    `.dcp` directory: see `dcp_checkpoint.is_complete`)."""
    if is_sharded_checkpoint(path):
        return dcp_checkpoint.is_complete(Path(path))
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # any failure means "not a checkpoint we can resume from"
        return False
    return True


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint that loads; files that fail to load are skipped (and logged)."""
    for step, path in reversed(list_checkpoints(run_dir)):
        if is_loadable(path):
            return path
        log.warning("skipping unreadable checkpoint %s (step %d)", path, step)
    return None


def quarantine_unreadable(run_dir: str | Path, after_step: int) -> list[Path]:
    """Rename unreadable checkpoints newer than `after_step` to `*.corrupt`, so rotation never
    counts them as recent and later saves do not trip over them. Returns the new paths."""
    moved = []
    for step, path in list_checkpoints(run_dir):
        if step > after_step and not is_loadable(path):
            target = path.with_name(path.name + ".corrupt")
            if target.is_dir():  # an older one set aside at the same step
                shutil.rmtree(target, ignore_errors=True)
            path.replace(target)
            moved.append(target)
    return moved


def load_model_weights(run_dir: str | Path, step: int | str = "last"):
    """(RunConfig, model state_dict) of a run at `step` (an int, or "last": the newest good
    checkpoint). The state dict loads into `AIM(cfg.model)`."""
    from aimscale.config import from_yaml

    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no config.yaml; is it a run directory?")
    cfg = from_yaml(config_path)
    if step == "last":
        path = latest_checkpoint(run_dir)
        if path is None:
            raise FileNotFoundError(f"{run_dir} has no readable checkpoint; train the run first")
    elif isinstance(step, int):
        path = checkpoint_path(run_dir, step)
        if not path.exists():
            steps = [s for s, _ in list_checkpoints(run_dir)]
            raise FileNotFoundError(
                f"{run_dir} has no checkpoint at step {step}; available steps: {steps} "
                "(keep more with train.keep_fractions)"
            )
    else:
        raise ValueError(f"step must be an int or 'last', got {step!r}")
    if is_sharded_checkpoint(path):  # only the model's tensors, gathered on this process
        from aimscale.model import AIM

        template = AIM(cfg.model).state_dict()
        return cfg, dcp_checkpoint.load_model(path, template)
    return cfg, load_checkpoint(path)["model"]
