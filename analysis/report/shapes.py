"""Width against depth: runs of matched parameters (same data) or matched compute, by shape."""

from __future__ import annotations

from ..compare import width_vs_depth
from ..errors import AnalysisError


def section(r) -> None:
    o = r.opts
    if o.width not in r.runs.columns or o.depth not in r.runs.columns:
        raise AnalysisError(f"no '{o.width}' and '{o.depth}' columns")
    done = False
    for match in (r.cols.get("params"), r.cols.get("flops")):
        if match is None:
            continue
        # At matched parameters compare only runs that saw the same data; at matched compute
        # the data differ by design.
        within = [r.cols["data"]] if match == r.cols.get("params") and r.cols.get("data") \
            else []
        tab = width_vs_depth(r.runs, o.width, o.depth, r.cols["loss"], match, within=within)
        if tab.empty:
            continue
        same = f", at the same {within[0]}" if within else ""
        r.doc.p(f"Runs within 15% of each other in {match}{same}, by shape (rank 1 = "
                "lowest loss; mean over seeds):")
        r.doc.table(tab)
        r.summary.setdefault("width_vs_depth", {})[match] = tab.to_dict("records")
        done = True
    if not done:
        raise AnalysisError("no two shapes (width, depth) share a parameter count or compute "
                            "within 15%")
