"""Loss ↔ downstream accuracy: correlations with intervals, linear and sigmoid fits, for every
whole-run probe; the first (preferred) probe is plotted and shared with next-scale
(``r.fits['corr']``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plots
from ..correlate import correlate
from ..errors import AnalysisError
from .render import ci


def section(r) -> None:
    lc, acc = r.cols["loss"], r.cols.get("accuracy")
    if acc is None:
        raise AnalysisError("no probe accuracy column (probe.<name>.top1) in the runs table")
    rows = []
    primary = None
    for col in [acc] + [p for p in r.probes if p != acc]:
        x, yv = r.values(lc), r.values(col)
        ok = np.isfinite(x) & np.isfinite(yv)
        if ok.sum() < 3:
            rows.append({"probe": col, "runs": int(ok.sum()),
                         "note": "fewer than 3 runs with this probe"})
            continue
        try:
            # only the plotted (first) probe feeds the two-step prediction, so only its
            # sigmoid needs bootstrap refits; the others keep their correlation intervals
            corr = correlate(x[ok], yv[ok], bootstrap=r.opts.bootstrap, seed=r.opts.seed,
                             level=r.opts.level, sigmoid_intervals=primary is None,
                             n_jobs=r.opts.n_jobs)
        except AnalysisError as err:
            rows.append({"probe": col, "runs": int(ok.sum()), "note": str(err)})
            continue
        rows.append({"probe": col, "runs": corr.n, "pearson": corr.pearson,
                     "pearson CI": ci(corr.ci.get("pearson")), "spearman": corr.spearman,
                     "spearman CI": ci(corr.ci.get("spearman")),
                     "best model": corr.loo_model, "LOO MAE": corr.loo_mae,
                     "note": "; ".join(corr.warnings)})
        if primary is None:
            primary = (col, corr, x[ok], yv[ok], ok)
    if primary is None:
        r.doc.table(pd.DataFrame(rows))
        raise AnalysisError("no probe has at least 3 runs with both loss and accuracy")
    col, corr, x, yv, ok = primary
    pc = r.cols.get("params")
    color = r.values(pc)[ok] if pc else None
    fig = plots.plot_correlation(x, yv, corr, xlabel=lc, ylabel=col, color=color,
                                 color_label=r.opts.params_label,
                                 source=r.runs[r.opts.source].to_numpy()[ok])
    r.doc.figure(fig, "loss_vs_accuracy", f"{col} against {lc} across runs, with linear "
                 "and sigmoid fits (acc = a/(1+exp(−k(L−L0))) + b) and bootstrap "
                 "intervals of the correlations; LOO = leave-one-out error.")
    r.doc.table(pd.DataFrame(rows))
    r.fits["corr"] = corr
    r.summary["downstream"] = {"primary": col, "correlation": corr, "table": rows}
