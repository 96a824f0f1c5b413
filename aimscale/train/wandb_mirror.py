"""Optional Weights & Biases mirror of metrics.jsonl (which stays authoritative).

Offline by default (`logging.wandb_mode` → WANDB_MODE): files land in `<run_dir>/wandb/` and can
be uploaded later with `wandb sync`. The wandb run id is the run directory's name and the group is
the sweep name, so restarts and sweeps line up. An offline run cannot be resumed, so a restarted
run starts a new offline directory with the same id; `wandb sync` merges them by id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aimscale.config import RunConfig, to_dict


class WandbMirror:
    def __init__(self, cfg: RunConfig, run_dir: Path):
        os.environ["WANDB_MODE"] = cfg.logging.wandb_mode
        import wandb

        self._run = wandb.init(
            project=cfg.logging.wandb_project,
            id=run_dir.name,
            name=run_dir.name,
            group=cfg.sweep_name or None,
            dir=str(run_dir),
            config=to_dict(cfg),
            mode=cfg.logging.wandb_mode,
            resume="allow",
            # the per-run service would otherwise sample system stats and scan git on every start
            settings=wandb.Settings(
                silent=True, x_disable_stats=True, disable_git=True, save_code=False
            ),
        )

    def log(self, row: dict[str, Any]) -> None:
        self._run.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def summary(self, summary: dict[str, Any]) -> None:
        self._run.summary.update(summary)

    def finish(self, exit_code: int = 0) -> None:
        self._run.finish(exit_code=exit_code)
