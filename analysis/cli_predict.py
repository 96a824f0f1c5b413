"""``predict`` and the shared pieces of ``fit --save`` / ``backtest`` splits / argument checks.

Kept apart from ``cli.py`` so that each subcommand's logic lives in one small place.
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np

from .data import clean_rows, numeric
from .errors import AnalysisError
from .intervals import DEFAULT_PREDICT_LEVEL
from .selection import add_selection_args, load_rows

AIMSCALE_COLUMNS = ("run_id", "trunk_params")  # what `aimscale collect` writes


def check_args(args: argparse.Namespace) -> None:
    """Bad numbers in the common options are input errors (exit 2), not crashes."""
    level = getattr(args, "level", None)
    if level is not None and not 0 < level < 1:
        hint = f" (did you mean {level / 100:g}?)" if 1 < level < 100 else ""
        raise AnalysisError(f"--level is a fraction between 0 and 1, e.g. 0.9; got {level:g}"
                            f"{hint}.")
    for name, low in (("bootstrap", 0), ("seed", 0), ("jobs", 1), ("breaks", 1)):
        v = getattr(args, name, None)
        if v is not None and v < low:
            raise AnalysisError(f"--{name} must be at least {low}; got {v}.")
    delta = getattr(args, "delta", None)
    if delta is not None and not delta > 0:
        raise AnalysisError(f"--delta (the Huber threshold) must be positive; got {delta:g}.")
    k = getattr(args, "flops_per_param_token", None)
    if k is not None and not k > 0:
        raise AnalysisError(f"--flops-per-param-token must be positive; got {k:g}.")
    for c in getattr(args, "plan", None) or []:
        if not c > 0:
            raise AnalysisError(f"--plan takes a positive FLOP budget; got {c:g}.")


def from_aimscale(df) -> bool:
    """Whether a table was written by `aimscale collect` (AIM presets make sense only then)."""
    return all(c in df.columns for c in AIMSCALE_COLUMNS)


_SPLIT = re.compile(r"^\s*([^<>=!]+?)\s*(>=|>|=)\s*([^<>=]+?)\s*$")


def parse_split(text: str) -> tuple[str, str, float]:
    """'COL>V', 'COL>=V' or the older 'COL=V' (meaning >) → (column, op, value)."""
    m = _SPLIT.match(text or "")
    try:
        value = float(m.group(3)) if m else float("nan")
    except ValueError:
        value = float("nan")
    if not m or not np.isfinite(value):
        raise AnalysisError(f"A holdout split is COL>V or COL>=V, e.g. total_flops>1e20; got "
                            f"{text!r}.")
    op = ">" if m.group(2) == "=" else m.group(2)
    return m.group(1), op, value


def query_mask(df, expr: str) -> np.ndarray:
    """Rows matching a pandas query (``--holdout-where``); a bad expression is an input error."""
    try:
        sel = df.eval(expr)
    except Exception as err:  # pandas raises many types for a bad expression
        raise AnalysisError(f"--holdout-where {expr!r} is not a valid pandas query over the "
                            f"table's columns ({type(err).__name__}: {err}); e.g. "
                            "'split == \"extrapolate\"' or 'flops > 1e20'.") from err
    sel = np.asarray(sel)
    if sel.dtype != bool or sel.shape != (len(df),):
        raise AnalysisError(f"--holdout-where {expr!r} must give True/False per row "
                            f"(got {sel.dtype}).")
    return sel


def add_predict_parser(sub, law_args) -> None:
    p = sub.add_parser("predict", help="predict the loss at given inputs, with ci and pi")
    p.add_argument("table", nargs="?", help="runs table to fit (omit with --fit)")
    p.add_argument("--fit", dest="fit_file", metavar="FIT.json",
                   help="a fit saved by 'fit --save' instead of fitting TABLE")
    p.add_argument("--at", action="append", required=True, metavar="N=…,D=…",
                   help="target inputs (repeatable): N=…,D=… for chinchilla, x=… otherwise "
                        "(or the column names)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="K")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--level", type=float, default=DEFAULT_PREDICT_LEVEL,
                   help=f"interval level, a fraction (default {DEFAULT_PREDICT_LEVEL})")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--json", action="store_true")
    add_selection_args(p)
    law_args(p)
    for action in p._actions:  # with --fit the loss column is not needed
        if action.dest == "loss":
            action.required = False


def fit_from_args(args, df) -> tuple:
    """Clean ``df`` and fit the law named by ``args`` with its prediction-error model.

    Returns (fit, columns, warnings)."""
    cols = law_columns(args)
    if not args.loss:
        raise AnalysisError("Fitting needs --loss (the loss column).")
    use = list(cols.values()) + [args.loss]
    extra = [args.group] if getattr(args, "group", None) else []
    df, dropped = clean_rows(df, use + extra, positive=use)
    return fit_clean(args, df, cols), cols, dropped


def law_columns(args) -> dict[str, str]:
    """{'N': col, 'D': col} for the joint law, {'x': col} otherwise."""
    if args.law == "chinchilla":
        if not args.n or not args.d:
            raise AnalysisError("The chinchilla law needs --n (parameters) and --d (data) "
                                "columns.")
        cols = {"N": args.n, "D": args.d}
    else:
        if not args.x:
            raise AnalysisError(f"The {args.law} law needs --x (the input column).")
        cols = {"x": args.x}
    return cols


def fit_clean(args, df, cols: dict[str, str]):
    """Fit ``args.law`` on the already cleaned ``df`` and attach its prediction-error model."""
    from .predict import calibrated, fit_law

    xs = [numeric(df, c) for c in cols.values()]
    loss = numeric(df, args.loss)
    group = getattr(args, "group", None)
    kw = {"bootstrap": args.bootstrap, "seed": args.seed, "level": args.level,
          "n_jobs": args.jobs, "groups": df[group].to_numpy() if group else None}
    if args.law == "bnsl":
        kw["breaks"] = args.breaks
    else:
        kw.update(delta=args.delta, floor=not args.no_floor, reduction=args.reduction)
    objective = getattr(args, "objective", "huber")
    fit = fit_law(args.law, xs, loss, names=tuple(cols.values()), objective=objective, **kw)
    calibrated(args.law, xs, loss, fit, **kw)
    return fit


def cmd_predict(args) -> tuple[dict, int]:
    from .fitfile import load_fit
    from .plots import fmt
    from .predict import parse_at, predictions

    if args.fit_file:
        if args.table:
            raise AnalysisError("Give either TABLE (fit now) or --fit FIT.json (a saved fit), "
                                "not both.")
        fit, cols = load_fit(args.fit_file)
        dropped = []
    else:
        if not args.table:
            raise AnalysisError("predict needs a runs TABLE to fit, or --fit FIT.json.")
        fit, cols, dropped = fit_from_args(args, load_rows(args))
    targets = parse_at(args.at, fit.law, tuple(cols.values()))
    out = predictions(fit, targets, args.level, args.seed)
    out["fit"] = fit.to_dict()
    out["warnings"] = dropped + list(fit.warnings) + out["warnings"]
    if not args.json:
        pct = f"{100 * args.level:g}%"
        for p in out["predictions"]:
            where = ", ".join(f"{k}={p[k]:.3g}" for k in ("N", "D", "x") if k in p)
            ci = "" if p["ci"] is None else f"  ci [{fmt(p['ci'][0], 4)}, {fmt(p['ci'][1], 4)}]"
            print(f"{where}: loss {fmt(p['loss'], 4)}{ci}  pi [{fmt(p['pi'][0], 4)}, "
                  f"{fmt(p['pi'][1], 4)}] ({pct}; {p['extrapolation_decades']:.2g} decade(s) "
                  "beyond the fitted range)")
        for w in out["warnings"][len(dropped) + len(fit.warnings):]:  # the rest printed already
            print(f"warning: {w}", file=sys.stderr)
    return out, 0 if fit.converged else 1



def plans(fit, budgets: list[float], k: float, aimscale: bool) -> tuple[list[dict], list[str]]:
    """``fit --plan`` rows: the compute-optimal (N, D) and loss with ``ci`` and ``pi``; the nearest
    AIM preset only for tables written by aimscale."""
    from .frontier import plan
    from .intervals import predict
    from .laws import optimal_allocation

    rows, warn = [], []
    for c in budgets:
        d = plan(fit, c, k=k).to_dict()
        if not aimscale:
            for key in ("preset", "preset_d", "preset_loss", "preset_loss_ci"):
                d.pop(key, None)
        if fit.pi_model is not None:
            p = predict(fit, fit.pi_model, [np.array([d["n_opt"]]), np.array([d["d_opt"]])],
                        fit.level, fit.seed)[0]
            d.update(loss_pi=list(p.pi), loss_pi_se=p.pi_se, loss_ci_se=p.ci_se,
                     extrapolation_decades=p.decades_beyond, level=fit.level)
        if fit.n_resamples > 1:
            s = fit.samples
            ns, ds = optimal_allocation(c, s[:, 1], s[:, 2], s[:, 3], s[:, 4], k)
            d.update(n_se=float(np.nanstd(ns, ddof=1)), d_se=float(np.nanstd(ds, ddof=1)))
            warn += [f"plan for C = {c:.3g}: {w}" for w in p.warnings]
        rows.append(d)
    return rows, warn


def backtest_from_args(args, df, inputs_fn) -> tuple[dict, int]:
    """``backtest``: one of --holdout 'COL>V' / 'COL>=V', --holdout-above COL=V (means >) or
    --holdout-where EXPR; fit the rest, predict the held-out runs."""
    from .backtest import backtest, backtest_split

    given = [a for a in ("holdout", "holdout_above", "holdout_where") if getattr(args, a)]
    if len(given) != 1:
        raise AnalysisError("backtest needs exactly one split: --holdout 'COL>V' (or 'COL>=V'), "
                            "--holdout-above COL=V, or --holdout-where EXPR.")
    names, cols = inputs_fn(args, df)
    split_col = None
    if not args.holdout_where:
        split_col, op, thr = parse_split(args.holdout or args.holdout_above)
    need = cols + ([split_col] if split_col and split_col not in cols else [])
    df, dropped = clean_rows(df, need, positive=cols, what="backtest")
    inputs = {kname: numeric(df, c) for kname, c in names.items()}
    kw = {"bootstrap": args.bootstrap, "seed": args.seed, "level": args.level,
          "n_jobs": args.jobs, "objective": args.objective}
    if args.law == "bnsl":
        kw["breaks"] = args.breaks
    else:
        kw.update(delta=args.delta, floor=not args.no_floor)
    loss = numeric(df, args.loss)
    if args.holdout_where:
        bt = backtest_split(args.law, inputs, loss, query_mask(df, args.holdout_where),
                            split=args.holdout_where, **kw)
    else:
        bt = backtest(args.law, inputs, loss, numeric(df, split_col), thr, column=split_col,
                      inclusive=op == ">=", **kw)
    out = bt.to_dict()
    out["warnings"] = dropped + out["warnings"]
    if not args.json:
        print(f"backtest ({bt.split}): fit on {bt.n_train}, predicted {bt.n_test}: "
              f"MAE {bt.mae:.4g}, RMSE {bt.rmse:.4g}, max {bt.max_abs:.4g}, MAPE {bt.mape:.3g}%, "
              f"RMSLE {bt.rmsle:.4g} (log1p form {bt.rmsle_log1p:.4g}); coverage of the "
              f"{100 * bt.level:g}% pi {100 * bt.coverage:.0f}%, median pi half-width "
              f"{bt.median_pi_halfwidth_pct:.3g}%")
    return out, 0 if bt.fit.converged else 1
