"""The training stage: `train(cfg, stop_requested=None)` runs or resumes one pre-training run.

Imported lazily, so `import aimscale.train` (and `aimscale.train.config`) does not pull in torch.
Checkpoint helpers: `aimscale.train.checkpoint`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimscale.train.loop import Diverged, train

from aimscale.train.runstate import resolve_run_dir

__all__ = ["Diverged", "resolve_run_dir", "train"]


def __getattr__(name: str):
    if name in ("Diverged", "train"):
        from aimscale.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'aimscale.train' has no attribute {name!r}")
