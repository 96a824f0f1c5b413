"""Layer-wise probes: top-1 per window of blocks, and the best window of each run."""

from __future__ import annotations

from .. import plots
from ..compare import layerwise
from ..errors import AnalysisError


def section(r) -> None:
    rid = r.opts.run_id
    tidy = layerwise(r.runs, rid)
    if tidy.empty:
        raise AnalysisError("no layer-wise probe columns (probe.<kind>_blocks<a>-<b>.top1)")
    depths = None
    if r.opts.depth in r.runs.columns and rid in r.runs.columns:
        depths = dict(zip(r.runs[rid], r.values(r.opts.depth), strict=True))
    fig = plots.plot_layerwise(tidy, r.sizes(), depths, run_id=rid)
    r.doc.figure(fig, "layerwise", "Probe top-1 on features averaged over groups of "
                 "blocks; x is the last block of each group (relative to depth when "
                 "known). Generative objectives often peak in middle blocks.")
    best = tidy.loc[tidy.groupby([rid, "kind"])["top1"].idxmax()]
    r.doc.table(best.rename(columns={"top1": "best top1"}))
    r.summary["layerwise_best"] = best.to_dict(orient="records")
