"""Checkpoints of a run: `<run_dir>/checkpoints/step_{step:08d}.pt`.

Written atomically (temp file, fsync, rename), so a file with the final name is complete; a kill
mid-write leaves only a `.step_*.tmp` file, which nothing reads (the trainer deletes such
files when it claims the run directory, `aimscale.train.rundir`). Files are loaded with
`torch.load(weights_only=True)`: RNG states are stored as tensors, everything else as plain
containers. Content (see docs/ARCHITECTURE.md): `step`, `model`, `optimizer`, `scheduler`,
`rng`, `data`, `metrics_offset`, plus `data_ranks` (every rank's data position) and `elapsed_s`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from aimscale.atomic import atomic_write

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{8})\.pt$")
log = logging.getLogger(__name__)


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file by name, ascending; not checked for integrity."""
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
    run_dir: str | Path, step: int, state: dict[str, Any], keep: int, protect: Iterable[int] = ()
) -> Path:
    """Write `state` (with `step` set) atomically, then delete all but the newest `keep`
    checkpoints and those whose step is in `protect`."""
    path = checkpoint_path(run_dir, step)
    payload = {**state, "step": step}
    atomic_write(path, lambda handle: torch.save(payload, handle))
    rotate_checkpoints(run_dir, keep, protect)
    return path


def rotate_checkpoints(run_dir: str | Path, keep: int, protect: Iterable[int] = ()) -> None:
    protected = set(protect)
    existing = list_checkpoints(run_dir)
    newest = {step for step, _ in existing[-keep:]} if keep > 0 else set()
    for step, path in existing:
        if step not in newest and step not in protected:
            path.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint` (tensors and plain containers only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def is_loadable(path: str | Path) -> bool:
    """Whether `path` is a complete checkpoint. Memory-maps instead of reading the tensors, so
    checking a large file is cheap; a truncated file fails on its missing zip directory."""
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
        if not path.is_file():
            steps = [s for s, _ in list_checkpoints(run_dir)]
            raise FileNotFoundError(
                f"{run_dir} has no checkpoint at step {step}; available steps: {steps} "
                "(keep more with train.keep_fractions)"
            )
    else:
        raise ValueError(f"step must be an int or 'last', got {step!r}")
    return cfg, load_checkpoint(path)["model"]
