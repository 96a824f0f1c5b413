"""Training (and validation) curves of every run, coloured by model size."""

from __future__ import annotations

import numpy as np

from .. import plots
from ..data import numeric
from ..errors import AnalysisError


def section(r) -> None:
    c, rid = r.curves, r.opts.run_id
    if c is None:
        raise AnalysisError("no curves table (curves.csv) was given")
    x = r.opts.curve_x if r.opts.curve_x in c.columns else "step"
    if rid not in c.columns or x not in c.columns or "loss" not in c.columns:
        raise AnalysisError(f"the curves table lacks '{rid}', '{x}' or 'loss'")
    sizes = r.sizes()
    fig = plots.plot_curves(c, sizes, x=x, y="loss", xlabel=x.replace("_", " "),
                            ylabel="training loss", size_label=r.opts.params_label)
    r.doc.figure(fig, "training_curves", "Training loss of every run, coloured by model size.")
    if "val_loss" in c.columns and np.isfinite(numeric(c, "val_loss")).sum() >= 2:
        fig = plots.plot_curves(c, sizes, x=x, y="val_loss", xlabel=x.replace("_", " "),
                                ylabel="validation loss", size_label=r.opts.params_label,
                                title="Validation curves")
        r.doc.figure(fig, "validation_curves", "Validation loss at each evaluation.")
