"""Joint law L(N, D) = E + A/N^α + B/D^β, fitted once and shared with the frontier, backtest and
next-scale sections (``r.fits['joint']``, ``r.fits['k']``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plots
from ..errors import AnalysisError
from ..fit_joint import fit_joint
from ..plots import fmt
from .power import remember_inputs
from .render import ci


def section(r) -> None:
    pc, dc, lc, fc = (r.cols.get(k) for k in ("params", "data", "loss", "flops"))
    if pc is None or dc is None:
        raise AnalysisError("the joint law needs both a parameter and a data column")
    n, d, y = r.values(pc), r.values(dc), r.values(lc)
    ok = np.isfinite(n) & np.isfinite(d) & (n > 0) & (d > 0)
    fit = fit_joint(n[ok], d[ok], y[ok], grid=r.opts.joint_grid, names=("N", "D"), **r.boot())
    r.fits["joint"] = fit
    remember_inputs(r, fit, [n[ok], d[ok]], y[ok], ok)
    k_factor = 6.0
    if fc is not None:
        ratio = r.values(fc)[ok] / (n[ok] * d[ok])
        if np.isfinite(ratio).any():
            k_factor = float(np.nanmedian(ratio))
    r.fits["k"] = k_factor
    fig = plots.plot_joint(n[ok], d[ok], y[ok], fit, n_label=f"{r.opts.params_label} N",
                           d_label=f"{r.opts.data_label} D", loss_label=lc,
                           source=r.runs[r.opts.source].to_numpy()[ok])
    r.doc.figure(fig, "joint_fit", "Joint law fitted as in Hoffmann et al.: Huber "
                 f"(δ = 1e-3) on log loss, {len(fit.param_names)} parameters, L-BFGS-B "
                 "from a grid of starts, bootstrap over runs.")
    intervals = fit.ci()
    rows = [{"parameter": k, "value": v, "CI": ci(intervals.get(k))}
            for k, v in fit.params.items()]
    dci = fit.derived_ci()
    rows += [{"parameter": f"{k} (N_opt ∝ C^a, D_opt ∝ C^b)" if k == "a" else k,
              "value": v, "CI": ci(dci.get(k))} for k, v in fit.derived().items()]
    r.doc.table(pd.DataFrame(rows))
    r.doc.p(f"RMSE {fmt(fit.gof.rmse)}, MAE {fmt(fit.gof.mae)} ({lc} units); "
            f"R² of log loss {fmt(fit.gof.r2_log, 4)}; converged: "
            f"{'yes' if fit.converged else 'NO — ' + fit.message}. Compute is taken as "
            f"C = k·N·D with k = {fmt(k_factor)} (median of {fc or 'assumed'} / (N·D)).")
    r.doc.bullets(fit.warnings + fit.notes, "warn")
    r.summary["joint"] = {"fit": fit, "flops_per_param_datum": k_factor}
