"""What the report reads and how hard it works."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

DONE_STATUSES = {"done", "completed", "complete", "finished", "success", "succeeded", "ok"}
PROBE_PREFERENCE = ("probe.attentive_last.top1", "probe.linear_last.top1")


@dataclass
class ReportOptions:
    """Column names default to the aimscale collect tables; ``None`` means detect from the
    table."""

    bootstrap: int = 300
    seed: int = 0
    level: float = 0.95
    n_jobs: int | None = None
    loss: str | None = None
    params: str | None = None
    data: str | None = None
    flops: str | None = None
    accuracy: str | None = None
    variant: str | None = None  # factor the Ablations compare; None: `variant`, else detected
    baseline: str | None = None  # its baseline value; None: a baseline-like name, else the first
    seed_column: str = "train.seed"
    width: str = "model.width"
    depth: str = "model.depth"
    run_id: str = "run_id"
    source: str = "source"  # where a point comes from; absent: every row is a final run
    curve_x: str = "images_seen"
    data_label: str | None = None  # units of D; None: from the data column's name
    params_label: str | None = None  # name of N; None: from the parameter column's name
    loss_label: str = "loss"
    title: str = "Scaling report"
    extrapolate: float = 10.0
    presets: pd.DataFrame | None = None
    joint_grid: dict | None = None
    # A section that fails with an unexpected error raises (tests, CI) instead of becoming a
    # warning at the top of the page and on stderr.
    strict: bool = False
