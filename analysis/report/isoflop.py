"""IsoFLOP: per compute budget a parabola of loss in log N; its minimum N* against C gives the
allocation exponent."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plots
from ..errors import AnalysisError
from ..isoflop import group_budgets, isoflop
from ..plots import fmt
from .render import ci


def section(r) -> None:
    fc, pc, lc = r.cols.get("flops"), r.cols.get("params"), r.cols["loss"]
    if fc is None or pc is None:
        raise AnalysisError("IsoFLOP needs a compute and a parameter column")
    f, n, y = r.values(fc), r.values(pc), r.values(lc)
    ok = np.isfinite(f) & (f > 0) & np.isfinite(n) & (n > 0)
    labels = group_budgets(f[ok], 0.1)
    sizes_per = [len(np.unique(n[ok][labels == g])) for g in np.unique(labels)]
    if sum(s >= 3 for s in sizes_per) < 2:
        raise AnalysisError(
            f"the runs fall into {len(sizes_per)} compute budget(s) (within 10%) with "
            f"{sizes_per} distinct sizes; IsoFLOP needs ≥ 2 budgets with ≥ 3 sizes each")
    res = isoflop(f[ok], n[ok], y[ok], bootstrap=r.opts.bootstrap, seed=r.opts.seed,
                  level=r.opts.level, k=r.fits.get("k", 6.0))
    fig = plots.plot_isoflop(f[ok], n[ok], y[ok], res, n_label=f"{r.opts.params_label} N",
                             loss_label=lc)
    r.doc.figure(fig, "isoflop", "IsoFLOP profiles: per budget a parabola of loss in "
                 "log N on the 7 sizes nearest its lowest loss (a parabola over a wide "
                 "grid biases the minimum); its minimum N* against C gives the allocation "
                 "exponent a.")
    r.doc.p(f"a = {fmt(res.a)} {ci(res.a_ci)}, b = 1 − a = {fmt(res.b)} {ci(res.b_ci)}.")
    r.doc.table(pd.DataFrame([b.to_dict() for b in res.budgets]))
    r.doc.bullets(res.warnings, "warn")
    r.summary["isoflop"] = res
