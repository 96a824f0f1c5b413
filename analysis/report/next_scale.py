"""Predictions beyond the largest run, from the shared fits: each per-size power law at 2×, 4× and
``extrapolate``× its largest N; the joint law's compute-optimal plan at larger budgets; and, with
a loss ↔ accuracy fit, the two-step accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..correlate import two_step
from ..errors import AnalysisError
from ..frontier import plan, presets_table
from ..plots import fmt
from .render import ci


def presets(r) -> pd.DataFrame:
    """The preset shapes plus every (width, depth) the sweep ran."""
    base = presets_table(r.opts.presets)
    o, pc = r.opts, r.cols.get("params")
    if o.width in r.runs.columns and o.depth in r.runs.columns and pc:
        shapes = r.runs[[o.width, o.depth, pc]].dropna().drop_duplicates([o.width, o.depth])
        own = pd.DataFrame({"name": [f"w{int(w)}-d{int(d)}" for w, d in
                                     zip(shapes[o.width], shapes[o.depth], strict=True)],
                            "width": shapes[o.width].astype(int),
                            "depth": shapes[o.depth].astype(int),
                            "params": shapes[pc].astype(float)})
        base = pd.concat([base, own], ignore_index=True)
    return base


def section(r) -> None:
    rows = []
    lvl = int(100 * r.opts.level)
    for label, fit, _ in r.fits.get("power_n") or []:
        if fit.flat:
            continue
        top = fit.input_range["N"][1]
        for mult in (2.0, 4.0, r.opts.extrapolate):
            pred, lo, hi = fit.predict_interval([top * mult], kind="ci")
            _, plo, phi = fit.predict_interval([top * mult], kind="pi")
            rows.append({"from": f"power law in N ({label})", "N": top * mult,
                         "D": label, "predicted loss": pred[0],
                         f"{lvl}% CI": ci(None if lo is None else (lo[0], hi[0])),
                         f"{lvl}% PI": ci(None if plo is None else (plo[0], phi[0])),
                         "_fit": (fit, [top * mult])})
    joint = r.fits.get("joint")
    plans = []
    if joint is not None:
        k = r.fits.get("k", 6.0)
        shapes = presets(r)
        n, d = r.values(r.cols["params"]), r.values(r.cols["data"])
        cmax = float(np.nanmax(k * n * d))
        for mult in (r.opts.extrapolate, r.opts.extrapolate**2):
            pl = plan(joint, cmax * mult, shapes, k)
            plans.append(pl)
            rows.append({"from": f"joint law, C = {fmt(mult)}× largest run",
                         "N": pl.n_opt, "D": pl.d_opt, "predicted loss": pl.loss,
                         f"{lvl}% CI": ci(pl.loss_ci), f"{lvl}% PI": "",
                         "nearest preset": f"{pl.preset['name']} ({pl.preset['width']}×"
                                           f"{pl.preset['depth']})",
                         "_fit": (joint, [pl.n_opt], [pl.d_opt])})
    corr = r.fits.get("corr")
    for row in rows:
        fit_and_inputs = row.pop("_fit")
        if corr is not None:
            ts = two_step(fit_and_inputs[0], corr, *fit_and_inputs[1:])
            acc_ci = None if ts["accuracy_lo"] is None else (ts["accuracy_lo"][0],
                                                              ts["accuracy_hi"][0])
            row[f"predicted {r.cols['accuracy']}"] = f"{fmt(ts['accuracy'][0])} {ci(acc_ci)}"
    if not rows:
        raise AnalysisError("no usable scaling-law fit to extrapolate from")
    r.doc.p("Predictions beyond the largest run. CI: interval of the fitted curve; PI: "
            "interval for a single new run (adds run-to-run scatter). Treat anything far "
            "outside the fitted range with suspicion.")
    r.doc.table(pd.DataFrame(rows))
    r.summary["next_scale"] = {"rows": rows, "plans": plans}
