"""Compute frontier: the lowest loss reached at each compute (from curves, else from the runs) with
a power law in C, and the compute-optimal allocation of the joint law."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import plots
from ..data import numeric
from ..errors import AnalysisError
from ..frontier import frontier
from ..plots import fmt
from .power import fit_1d, fit_table
from .render import ci


def envelope(curves: pd.DataFrame, run_id: str, n_grid: int = 40) -> pd.DataFrame:
    """Lowest loss reached at each compute across runs, ignoring each run's first 10%."""
    per_run = []
    for _, g in curves.groupby(run_id, sort=False):
        f, y = numeric(g, "flops"), numeric(g, "loss")
        ok = np.isfinite(f) & np.isfinite(y) & (f > 0) & (y > 0)
        if ok.sum() < 3:
            continue
        f, y = f[ok], y[ok]
        order = np.argsort(f)
        f, y = f[order], y[order]
        if len(y) >= 15:  # a running median tames step-to-step noise in the training loss
            y = pd.Series(y).rolling(9, center=True, min_periods=1).median().to_numpy()
        keep = f >= 0.1 * f.max()
        per_run.append((np.log(f[keep]), np.log(y[keep])))
    if not per_run:
        return pd.DataFrame(columns=["flops", "loss"])
    lo = min(p[0].min() for p in per_run)
    hi = max(p[0].max() for p in per_run)
    grid = np.linspace(lo, hi, n_grid)
    best = np.full(n_grid, np.inf)
    for lf, ly in per_run:
        inside = (grid >= lf.min()) & (grid <= lf.max())
        best[inside] = np.minimum(best[inside], np.interp(grid[inside], lf, ly))
    ok = np.isfinite(best)
    return pd.DataFrame({"flops": np.exp(grid[ok]), "loss": np.exp(best[ok])})


def section(r) -> None:
    c, fc, lc = r.curves, r.cols.get("flops"), r.cols["loss"]
    env = None
    rid = r.opts.run_id
    sizes = r.sizes()
    note = None
    if c is not None and {rid, "flops", "loss"} <= set(c.columns):
        curves = c[c[rid].isin(sizes)] if sizes else c
        env = envelope(curves, rid)
        ycol = "loss"
        note = ("frontier from training curves: points before 10% of a run's compute "
                "are left out; intermediate checkpoints of a decaying schedule overstate "
                "the loss, so this frontier is conservative")
    elif fc is not None:
        f, y = r.values(fc), r.values(lc)
        ok = np.isfinite(f) & (f > 0)
        order = np.argsort(f[ok])
        best = np.minimum.accumulate(y[ok][order])
        front = y[ok][order] <= best + 1e-12
        env = pd.DataFrame({"flops": f[ok][order][front], "loss": y[ok][order][front]})
        curves = pd.DataFrame(columns=[rid, "flops", "loss"])
        ycol = lc
    if env is None or len(env) == 0:
        raise AnalysisError("neither a curves table with flops and loss nor a compute column "
                            "in the runs table")
    fit, fnote = fit_1d(r, env["flops"].to_numpy(), env["loss"].to_numpy(), "C")
    r.fits["frontier_power"] = fit
    fig = plots.plot_frontier(curves, sizes, env, fit, ylabel=ycol,
                              size_label=r.opts.params_label,
                              extrapolate_to=float(env["flops"].max()) * r.opts.extrapolate)
    r.doc.figure(fig, "compute_frontier", "Loss against training compute for every run "
                 "(colour: size), the lowest loss reached at each compute (black) and "
                 "L = E + A·C^−γ fitted to it. " + (note or "") + (f" {fnote}." if fnote
                                                                    else ""))
    if fit is not None:
        r.doc.table(fit_table([("frontier", len(env), fit, fnote)]))
    joint = r.fits.get("joint")
    out = {"envelope_fit": fit}
    if joint is not None:
        k = r.fits.get("k", 6.0)
        fr = frontier(joint, k)
        r.doc.p(f"From the joint law: N_opt ∝ C^a with a = {fmt(fr.a)} {ci(fr.a_ci)}, "
                f"D_opt ∝ C^b with b = {fmt(fr.b)} {ci(fr.b_ci)}, G = {fmt(fr.G)} "
                f"{ci(fr.G_ci)} (C = {fmt(k)}·N·D).")
        out["joint_frontier"] = fr
    else:
        r.doc.p("No joint L(N, D) fit, so no closed-form compute-optimal allocation "
                "(see the joint-law section for why).")
    r.summary["compute_frontier"] = out
