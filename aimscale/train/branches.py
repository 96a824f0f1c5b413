"""Cooldown branches: several data sizes from one constant-LR run (Hägele et al. 2024).

A *trunk* is an ordinary `optim.schedule=wsd` run of the largest data size that also keeps (never
rotates away) its checkpoints at the branch points (`train.keep_fractions`). A *branch* (config
section `branch`) is a result of its own, with its own run directory, checkpoints, metrics,
summary, status and probes. It starts from the trunk's checkpoint at `branch.step` (weights,
optimiser state, data position, RNG) and trains the cooldown from there to its own `train.steps`:

- Schedule (`lr_schedule`): `branch.warmup` warmup steps (the trunk's), constant LR, then the
  cooldown from `branch.step` to `train.steps`. That is the schedule of a separate wsd run of
  `train.steps` steps whose warmup is the trunk's, and the branch equals such a run.
- Branch point (`branch_point`): `steps - round(cooldown_fraction · steps)` of the branch, so a
  branch cools down over the same share of its own steps as a separate run would.
- Its `metrics.jsonl` starts as the trunk's file up to the checkpoint it branches from (the
  checkpoint's `metrics_offset`, byte for byte), so a branch's curve is the whole curve of the
  run it stands for; `summary.json` adds `branch_of`, `branch_step` and `flops_spent` (the FLOPs
  of the steps it trained itself; `total_flops` stays the equivalent run's).
- Resume: once it has saved a checkpoint of its own a branch resumes from it like any run; before
  that, a restart starts from the trunk again.

The trunk's job trains the trunk, then each unfinished branch (`aimscale.sweep.job`), listed in
`branches.json` of the trunk's run directory. Another run's checkpoint is read only through
`aimscale.train.checkpoint` (the loop loads the path `trunk_checkpoint` returns).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimscale.train.config import BranchConfig
from aimscale.train.optim import lr_at, warmup_steps

if TYPE_CHECKING:
    from collections.abc import Callable

    from aimscale.config import RunConfig
    from aimscale.train.config import OptimConfig

BRANCHES_FILE = "branches.json"
# keys a trunk and its branches may differ in; everything else must be equal
_FREE_TRAIN_KEYS = ("steps", "keep_fractions", "checkpoint_every", "keep_checkpoints")


class BranchError(RuntimeError):
    """A branch cannot start: its trunk is missing, different, or lacks the checkpoint."""


def branch_point(optim: OptimConfig, steps: int) -> int:
    """The step a branch of `steps` steps starts its cooldown from (and branches at)."""
    return steps - round(optim.cooldown_fraction * steps)


def lr_schedule(cfg: RunConfig) -> Callable[[int], float]:
    """step -> learning rate of the run: the wsd/cosine schedule, or a branch's (see above)."""
    if cfg.branch.active:
        return partial(lr_at, cfg=cfg.optim, total_steps=cfg.train.steps,
                       cooldown_start=cfg.branch.step, warmup=cfg.branch.warmup)
    return partial(lr_at, cfg=cfg.optim, total_steps=cfg.train.steps)


# ---- planning: a trunk and its branches from one config ------------------------------------


def family_problems(cfg: RunConfig, steps: list[int]) -> list[str]:
    """Why `cfg` (a sweep point) cannot be a trunk of `max(steps)` with branches at the other
    lengths `steps` (in optimiser steps)."""
    found = []
    if cfg.optim.schedule != "wsd":
        found.append(f"data_sizes needs optim.schedule=wsd (cooldown branches of one constant-LR "
                     f"run), got {cfg.optim.schedule!r}; set optim.schedule=wsd, or vary "
                     "train.steps as a grid axis instead")
        return found
    if cfg.optim.cooldown_fraction <= 0:
        found.append("data_sizes needs optim.cooldown_fraction > 0 (a branch is a cooldown)")
        return found
    trunk = max(steps)
    warmup = warmup_steps(cfg.optim, trunk)
    for n in sorted(set(steps) - {trunk}):
        start = branch_point(cfg.optim, n)
        if start < max(warmup, 1):
            found.append(
                f"data size {n * cfg.train.batch_size} images ({n} steps): its cooldown would "
                f"start at step {start}, inside the "
                f"trunk's warmup of {warmup} steps ({trunk} steps × optim.warmup_fraction="
                f"{cfg.optim.warmup_fraction:g}); drop that size, use larger ones, or lower "
                "optim.warmup_fraction")
    return found


def trunk_config(cfg: RunConfig, steps: list[int]) -> RunConfig:
    """`cfg` as the trunk: `max(steps)` steps, keeping the checkpoints its branches start from."""
    trunk = max(steps)
    points = [branch_point(cfg.optim, n) / trunk for n in sorted(set(steps) - {trunk})]
    keep = sorted(set(cfg.train.keep_fractions) | set(points))
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, steps=trunk, keep_fractions=keep))


def branch_config(cfg: RunConfig, trunk_id: str, trunk_steps: int, steps: int) -> RunConfig:
    """The branch of `steps` steps of the trunk of `trunk_steps` steps (run id `trunk_id`) that
    `trunk_config(cfg, ...)` makes."""
    section = BranchConfig(trunk=trunk_id, step=branch_point(cfg.optim, steps),
                           warmup=warmup_steps(cfg.optim, trunk_steps))
    # a branch has only the checkpoints it trains itself: keep fractions after its branch point
    keep = [f for f in cfg.train.keep_fractions if round(f * steps) > section.step]
    return dataclasses.replace(
        cfg, branch=section, train=dataclasses.replace(cfg.train, steps=steps,
                                                       keep_fractions=keep))


def flops_spent(cfg: RunConfig, flops_per_image: float) -> float:
    """FLOPs of the steps the run trains itself: a branch's cooldown, else every step."""
    trained = cfg.train.steps - (cfg.branch.step if cfg.branch.active else 0)
    return float(flops_per_image) * trained * cfg.train.batch_size


# ---- training: where a branch starts ------------------------------------------------------


def trunk_dir(cfg: RunConfig, run_dir: str | Path) -> Path:
    return Path(run_dir).resolve().parent / cfg.branch.trunk


def trunk_checkpoint(cfg: RunConfig, run_dir: str | Path) -> Path:
    """The trunk's checkpoint this branch starts from, after checking that the trunk is this
    branch's (same config up to its length, same warmup). BranchError says what is wrong."""
    from aimscale.config import ConfigError, from_yaml, result_dict
    from aimscale.train import checkpoint as ckpt

    where = trunk_dir(cfg, run_dir)
    if not (where / "config.yaml").is_file():
        raise BranchError(f"the trunk {where} of branch {run_dir} does not exist (no "
                          "config.yaml); train the trunk first (its job trains its branches)")
    try:
        trunk = from_yaml(where / "config.yaml")
    except ConfigError as err:
        raise BranchError(f"the trunk's config cannot be read: {err}") from None
    ours, theirs = result_dict(cfg), result_dict(trunk)
    ours.pop("branch")
    for tree in (ours, theirs):
        for key in _FREE_TRAIN_KEYS:
            tree["train"].pop(key)
    differ = sorted(_differences(ours, theirs))
    warmup = warmup_steps(trunk.optim, trunk.train.steps)
    if warmup != cfg.branch.warmup:
        differ.append(f"warmup {warmup} steps, the branch's branch.warmup={cfg.branch.warmup}")
    if differ:
        raise BranchError(f"{where} is not the trunk of branch {run_dir}: they differ in "
                          f"{', '.join(differ)}")
    path = ckpt.checkpoint_path(where, cfg.branch.step)
    if not ckpt.is_loadable(path):
        raise BranchError(
            f"the trunk {where} has no readable checkpoint at step {cfg.branch.step}, where "
            f"branch {run_dir} starts (kept: {[s for s, _ in ckpt.list_checkpoints(where)]}); "
            "train the trunk (again, in a new directory, if it finished without it)")
    return path


def _differences(ours: dict, theirs: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} ({b!r} in the trunk, {a!r} here)")
    return out


def start_metrics(cfg: RunConfig, run_dir: str | Path, metrics_offset: int) -> int:
    """Write the trunk's metrics.jsonl up to `metrics_offset` (its checkpoint's) as this branch's
    metrics.jsonl, atomically; returns the offset the branch's writer continues at."""
    from aimscale.atomic import atomic_write_bytes
    from aimscale.train.metrics import METRICS_FILE

    source = trunk_dir(cfg, run_dir) / METRICS_FILE
    with open(source, "rb") as handle:
        head = handle.read(metrics_offset)
    if len(head) != metrics_offset:
        raise BranchError(f"{source} has {len(head)} bytes, fewer than the {metrics_offset} its "
                          f"checkpoint at step {cfg.branch.step} recorded; the trunk was changed")
    atomic_write_bytes(Path(run_dir) / METRICS_FILE, head)
    return metrics_offset


def summary_fields(cfg: RunConfig, flops_per_image: float) -> dict[str, Any]:
    """What a branch's summary.json adds (nothing for an ordinary run)."""
    if not cfg.branch.active:
        return {}
    return {"branch_of": cfg.branch.trunk, "branch_step": cfg.branch.step,
            "flops_spent": flops_spent(cfg, flops_per_image)}


# ---- the trunk's list of branches ---------------------------------------------------------


def write_branch_list(trunk_run_dir: str | Path, branch_ids: list[str]) -> None:
    """`branches.json` of a trunk: the run ids of its branches (sibling directories), in the
    order its job trains them."""
    from aimscale.atomic import atomic_write_json

    atomic_write_json(Path(trunk_run_dir) / BRANCHES_FILE, {"branches": list(branch_ids)})


def branch_dirs(trunk_run_dir: str | Path) -> list[Path]:
    """The run directories of a trunk's branches (none for an ordinary run)."""
    from aimscale.jsonfiles import read_json

    trunk_run_dir = Path(trunk_run_dir)
    listed = read_json(trunk_run_dir / BRANCHES_FILE, {}) or {}
    return [trunk_run_dir.parent / run_id for run_id in listed.get("branches", [])]
