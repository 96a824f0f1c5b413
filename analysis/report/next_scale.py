"""Predictions beyond the largest run, from the shared fits: each per-size power law at 2×, 4× and
``extrapolate``× its largest N; the joint law's compute-optimal plan at larger budgets; and, with
a loss ↔ accuracy fit, the two-step accuracy.

Each prediction has two intervals. CI: the fitted curve's (percentile bootstrap over runs). PI:
a single new run's, the curve's bootstrap draws times a log-normal run-to-run error, so in log
loss  var(PI) = var(curve) + σ²  (``intervals.build_model`` without nested backtests, then
``intervals.predict``). σ comes from the seed replicates when the sweep has them (pooled
within-point SD of log loss, ``replicates.noise_estimate``; the larger of it and the residual
scatter put on one run's scale, since residuals also carry lack of fit), else from the fit's
residuals; the table's "PI noise" column says which. Neither interval has a term for the law's
form failing beyond the fitted range (the backtest section measures that error).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..correlate import two_step
from ..errors import AnalysisError
from ..frontier import plan, presets_table
from ..intervals import build_model, predict
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


def noise_model(r, fit):
    """The run-to-run error model of ``fit`` (no extrapolation term) from what it was fitted on,
    or None when the section that fitted it kept no inputs."""
    kept = r.fits.get("inputs", {}).get(id(fit))
    if kept is None:
        return None
    inputs, loss, reps = kept
    return build_model(fit.law, inputs, loss, fit, None, noise=r.fits.get("noise"),
                       replicates=reps)


def noise_label(model) -> str:
    """What the PI's run-to-run error is: ``replicates, σ 0.012 (36 dof)`` or
    ``residuals, σ 0.008 (no replicates)``."""
    if model is None:
        return "none (curve only)"
    text = f"{model.noise_source}, σ {fmt(model.sigma_noise)}"
    if model.sigma_replicates is None:
        return text + " (no replicates)"
    return text


def pi_of(fit, model, inputs: list, level: float, seed: int):
    """(lo, hi) of a new run's prediction interval, or None without a noise model."""
    if model is None:
        return None
    (p,) = predict(fit, model, [np.atleast_1d(np.asarray(v, float)) for v in inputs], level,
                   seed)
    return p.pi


def section(r) -> None:
    rows = []
    lvl = int(100 * r.opts.level)
    models = {}
    for label, fit, _ in r.fits.get("power_n") or []:
        if fit.flat:
            continue
        top = fit.input_range["N"][1]
        model = models.setdefault(id(fit), (f"power law in N ({label})",
                                             noise_model(r, fit)))[1]
        for mult in (2.0, 4.0, r.opts.extrapolate):
            pred, lo, hi = fit.predict_interval([top * mult], kind="ci")
            rows.append({"from": f"power law in N ({label})", "N": top * mult,
                         "D": label, "predicted loss": pred[0],
                         f"{lvl}% CI": ci(None if lo is None else (lo[0], hi[0])),
                         f"{lvl}% PI": ci(pi_of(fit, model, [top * mult], r.opts.level,
                                                r.opts.seed)),
                         "PI noise": noise_label(model),
                         "_fit": (fit, [top * mult])})
    joint = r.fits.get("joint")
    plans = []
    if joint is not None:
        k = r.fits.get("k", 6.0)
        shapes = presets(r)
        model = models.setdefault(id(joint), ("joint law", noise_model(r, joint)))[1]
        n, d = r.values(r.cols["params"]), r.values(r.cols["data"])
        cmax = float(np.nanmax(k * n * d))
        for mult in (r.opts.extrapolate, r.opts.extrapolate**2):
            pl = plan(joint, cmax * mult, shapes, k)
            plans.append(pl)
            rows.append({"from": f"joint law, C = {fmt(mult)}× largest run",
                         "N": pl.n_opt, "D": pl.d_opt, "predicted loss": pl.loss,
                         f"{lvl}% CI": ci(pl.loss_ci),
                         f"{lvl}% PI": ci(pi_of(joint, model, [pl.n_opt, pl.d_opt],
                                                r.opts.level, r.opts.seed)),
                         "PI noise": noise_label(model),
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
    noise = r.fits.get("noise")
    said = ("run-to-run noise from the seed replicates" if noise is not None and noise.sigma
            else "no seed replicates in this sweep, so the run-to-run noise is estimated from "
                 "the fits' residual scatter (add `seeds: 3` to the sweep spec to measure it)")
    r.doc.p("Predictions beyond the largest run. CI: interval of the fitted curve (bootstrap "
            "over runs). PI: interval for a single new run, the curve's uncertainty ⊕ run-to-run "
            f"noise (variances added in log loss; {said}; column 'PI noise'). Neither includes "
            "the error of the law's form beyond the fitted range (see the backtest), so treat "
            "anything far outside it with suspicion.")
    r.doc.table(pd.DataFrame(rows))
    r.summary["next_scale"] = {"rows": rows, "plans": plans, "pi_noise": [
        {"fit": name, **m.to_dict()} for name, m in models.values() if m is not None]}
