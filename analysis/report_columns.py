"""Which columns of a runs table the report reads, how it names their units, and what to tell the
user when it cannot map them (the flags to pass)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .data import numeric
from .errors import AnalysisError

LOSS_CANDIDATES = ("final_val_loss", "best_val_loss", "final_loss", "val_loss", "loss", "Loss",
                   "L", "eval_loss", "test_loss")
PARAM_CANDIDATES = ("trunk_params", "params", "n_params", "parameters", "N", "num_params",
                    "model_size", "Params", "non_embedding_params")
DATA_CANDIDATES = ("images_seen", "data.num_images", "patches_seen", "tokens", "data", "D",
                   "tokens_seen", "num_tokens", "Tokens", "images", "patches", "samples")
FLOP_CANDIDATES = ("total_flops", "flops", "compute", "C", "FLOPs", "FLOPS", "total_compute")
DATA_LABELS = {"images_seen": "images seen", "data.num_images": "unique training images",
               "patches_seen": "patches seen"}
FLAGS = {"loss": ("--loss", LOSS_CANDIDATES), "params": ("--params", PARAM_CANDIDATES),
         "data": ("--data", DATA_CANDIDATES), "flops": ("--flops", FLOP_CANDIDATES)}


def pick_column(df: pd.DataFrame, wanted: str | None, candidates, what: str) -> str:
    """``wanted`` if given (it must exist), else the first candidate that varies across runs."""
    if wanted is not None:
        if wanted not in df.columns:
            raise AnalysisError(f"column '{wanted}' ({what}) is not in the runs table")
        return wanted
    # prefer a column that varies across runs: a constant one is not a scaling axis (a sweep over
    # dataset size at fixed steps has constant images_seen but varying data.num_images)
    usable = [c for c in candidates if c in df.columns and np.isfinite(numeric(df, c)).any()]
    for c in usable:
        values = numeric(df, c)
        if np.unique(values[np.isfinite(values)]).size >= 2:
            return c
    if usable:
        return usable[0]
    raise AnalysisError(f"no {what} column (looked for {', '.join(candidates)})")


def data_label(column: str | None) -> str:
    """Units of the data axis from its column name: tokens, images, patches or samples."""
    if column is None:
        return "data"
    if column in DATA_LABELS:
        return DATA_LABELS[column]
    name = str(column).lower()
    for word, label in (("token", "tokens"), ("patch", "patches"), ("image", "images"),
                        ("sample", "samples"), ("example", "examples")):
        if word in name:
            return label
    return str(column)


def params_label(column: str | None) -> str:
    """Name of the size axis: aimscale's trunk parameters, else parameters."""
    if column == "trunk_params":
        return "trunk parameters"
    return "parameters" if column is None or re.fullmatch(r"(?i)n|params?|parameters",
                                                          str(column)) else str(column)


def check_mappable(runs: pd.DataFrame, chosen: dict[str, str | None]) -> list[str]:
    """Raise when the report could analyse nothing (no loss, or none of N, D, C) or a named
    column is missing, naming the flags to pass; return notes on the sections the unmapped
    columns would enable."""
    cols = ", ".join(map(str, runs.columns[:40]))
    found = {}
    for key, (flag, cand) in FLAGS.items():
        wanted = chosen.get(key)
        if wanted is not None and wanted not in runs.columns:
            raise AnalysisError(f"{flag} {wanted}: no such column in the runs table; columns: "
                                f"{cols}.")
        try:
            found[key] = pick_column(runs, wanted, cand, key)
        except AnalysisError:
            found[key] = None
    if found["loss"] is None:
        raise AnalysisError(f"the report cannot find a loss column (looked for "
                            f"{', '.join(LOSS_CANDIDATES)}); pass --loss COL. Columns: {cols}.")
    if not any(found[k] for k in ("params", "data", "flops")):
        raise AnalysisError("the report cannot map model size, data or compute (looked for "
                            f"{', '.join(PARAM_CANDIDATES[:5])}…, {', '.join(DATA_CANDIDATES[:5])}…"
                            f", {', '.join(FLOP_CANDIDATES[:4])}…); pass --params COL, --data COL "
                            f"and/or --flops COL. Columns: {cols}.")
    return [f"no {key} column found: pass {FLAGS[key][0]} COL to add the analyses that need it"
            for key in ("params", "data", "flops") if found[key] is None]
