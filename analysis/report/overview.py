"""Overview: the columns mapped, the runs analysed, and where each point comes from."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..compare import layer_probe_columns
from ..errors import AnalysisError
from ..report_columns import (
    DATA_CANDIDATES,
    FLOP_CANDIDATES,
    LOSS_CANDIDATES,
    PARAM_CANDIDATES,
    data_label,
    params_label,
)
from .options import PROBE_PREFERENCE

FINAL, BRANCH = "final run", "cooldown branch"


def point_sources(runs: pd.DataFrame, column: str = "source") -> np.ndarray:
    """Where each row comes from: the ``column`` value where given (e.g. ``final run``,
    ``cooldown branch``, ``intermediate checkpoint``), else a cooldown branch when ``branch_of``
    names a run, else a final run."""
    out = np.full(len(runs), FINAL, dtype=object)
    if "branch_of" in runs.columns:
        b = runs["branch_of"]
        out[(b.notna() & (b.astype(str).str.strip() != "")).to_numpy()] = BRANCH
    if column in runs.columns:
        given = runs[column]
        ok = (given.notna() & (given.astype(str).str.strip() != "")).to_numpy()
        out[ok] = given[ok].astype(str).to_numpy()
    return out


def source_counts(sources) -> str:
    """``4 final run, 2 cooldown branch``."""
    kinds, counts = np.unique(np.asarray(sources, dtype=str), return_counts=True)
    return ", ".join(f"{c} {k}" for k, c in zip(kinds, counts, strict=True))


def section(r) -> None:
    o = r.opts
    loss = r.col("loss", o.loss, LOSS_CANDIDATES, "loss")
    params = r.col("params", o.params, PARAM_CANDIDATES, "parameter-count")
    data = r.col("data", o.data, DATA_CANDIDATES, "data-size")
    o.data_label = o.data_label or data_label(data)
    o.params_label = o.params_label or params_label(params)
    r.col("flops", o.flops, FLOP_CANDIDATES, "compute")
    # Whole-run probes only: layer windows have their own section, and `_step<k>` names are
    # probes of intermediate checkpoints, whose loss is not the run's final loss.
    layer = set(layer_probe_columns(r.runs))
    probes = [c for c in r.runs.columns if str(c).startswith("probe.")
              and str(c).endswith(".top1") and c not in layer
              and not re.search(r"_step\d+\.top1$", str(c))]
    acc = o.accuracy or next((p for p in PROBE_PREFERENCE if p in probes),
                             probes[0] if probes else None)
    r.cols["accuracy"] = acc
    r.probes = probes
    if loss is not None:
        v = r.values(loss)
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            r.warnings.append(f"{int(bad.sum())} runs have no finite positive '{loss}' "
                              "and are left out of the loss analyses")
        r.runs = r.runs.loc[~bad].copy()
    r.runs[o.source] = point_sources(r.runs, o.source)
    r.summary["columns"] = dict(r.cols)
    r.summary["n_runs"] = len(r.runs)
    r.summary["n_rows_in_table"] = len(r.all_runs)
    r.summary["sources"] = {str(k): int(c) for k, c in
                            zip(*np.unique(r.runs[o.source].astype(str), return_counts=True),
                                strict=True)}
    items = [f"{len(r.runs)} runs analysed (of {len(r.all_runs)} in the table)"]
    if len(r.runs):
        items.append(f"points: {source_counts(r.runs[o.source])} (marker shape in the figures)")
    names = {"loss": "loss", "params": "model size N", "data": "data D",
             "flops": "compute C", "accuracy": "downstream accuracy"}
    for key, label in names.items():
        c = r.cols.get(key)
        items.append(f"{label}: {'column ' + repr(c) if c else 'not available'}")
    items.append(f"bootstrap: {o.bootstrap} resamples over runs, seed {o.seed}, "
                 f"{int(100 * o.level)}% percentile intervals")
    r.doc.bullets(items)
    if loss is None:
        raise AnalysisError("the table has no loss column, so no scaling analysis is possible; "
                            f"expected one of {', '.join(LOSS_CANDIDATES)}")
