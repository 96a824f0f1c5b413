"""``python -m analysis fit|predict|isoflop|correlate|backtest|report`` on any CSV or parquet table.

Exit status: 0 success, 1 the fit ran but did not converge (reported, never silent), 2 the input
cannot support the request (the message says why).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from .cli_isoflop import add_isoflop_args, run_isoflop
from .cli_predict import add_predict_parser, check_args, cmd_predict, from_aimscale
from .cli_two_step import add_two_step_parser, cmd_two_step
from .data import clean_rows, load_table, numeric, require_columns
from .errors import AnalysisError, FitWarning
from .fitting import DEFAULT_DELTA
from .jsonio import dumps
from .selection import add_selection_args, load_rows, run_command


def _common(p: argparse.ArgumentParser, bootstrap: int = DEFAULT_RESAMPLES) -> None:
    p.add_argument("table", help="CSV, TSV, parquet or JSON-lines file")
    p.add_argument("--bootstrap", type=int, default=bootstrap, metavar="K",
                   help=f"bootstrap resamples over runs (default {bootstrap}; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=float, default=DEFAULT_LEVEL,
                   help="interval level (default 0.95)")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes for the bootstrap (default: the usable cores)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_selection_args(p)


def _law_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--law", choices=("chinchilla", "power", "bnsl"), default="chinchilla")
    p.add_argument("--n", help="parameter-count column (chinchilla)")
    p.add_argument("--d", help="data column (chinchilla), e.g. tokens, images or patches")
    p.add_argument("--x", help="input column (power, bnsl)")
    p.add_argument("--loss", required=True, help="loss column")
    p.add_argument("--delta", type=float, default=DEFAULT_DELTA, help="Huber delta (1e-3)")
    p.add_argument("--no-floor", action="store_true", help="fix E = 0 (power, chinchilla)")
    p.add_argument("--breaks", type=int, default=1, help="breaks of the BNSL (default 1)")
    p.add_argument("--group", help="column of run ids: resample whole runs (e.g. checkpoints)")
    p.add_argument("--reduction", choices=("sum", "mean"), default="sum",
                   help="how the reported objective aggregates Huber terms (same optimum)")
    p.add_argument("--objective", choices=("huber", "huber-mle"), default="huber",
                   help="chinchilla: Huber sum (default) or the Huber-likelihood MLE (fits σ)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m analysis",
                                 description="Scaling-law fits, IsoFLOP, correlations, backtests "
                                             "and reports on any table of runs.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a scaling law")
    _common(p)
    _law_args(p)
    p.add_argument("--plan", type=float, action="append", metavar="FLOPS",
                   help="chinchilla: recommend (N, D) for this compute budget (repeatable)")
    p.add_argument("--flops-per-param-token", type=float, default=6.0,
                   help="k in C = k·N·D for --plan and the frontier (default 6)")
    p.add_argument("--save", metavar="FIT.json", help="save the fit for 'predict --fit'")

    add_predict_parser(sub, _law_args)

    p = sub.add_parser("isoflop", help="IsoFLOP analysis (Approach 2)")
    _common(p)
    p.add_argument("--flops", required=True, help="compute column")
    add_isoflop_args(p)

    p = sub.add_parser("correlate", help="correlate two columns (e.g. loss and accuracy)")
    _common(p)
    p.add_argument("--x", required=True, help="predictor column, e.g. the loss")
    p.add_argument("--y", required=True, help="response column, e.g. probe accuracy")
    p.add_argument("--group", help="column of run ids: resample whole runs (rows = checkpoints)")

    p = sub.add_parser("backtest", help="fit below a threshold, predict above")
    _common(p, bootstrap=DEFAULT_RESAMPLES)
    _law_args(p)
    p.add_argument("--holdout-above", metavar="COL=VALUE",
                   help="hold out runs with COL > VALUE, e.g. total_flops=1e20")
    p.add_argument("--holdout", metavar="'COL>V'",
                   help="hold out runs with COL > V or COL >= V, e.g. 'total_flops>=1e20'")
    p.add_argument("--holdout-where", metavar="EXPR",
                   help="hold out the rows matching a pandas query, e.g. 'split==\"extrapolate\"'")

    p = sub.add_parser("report", help="HTML + Markdown report of a runs table")
    p.add_argument("table", help="runs table (CSV or parquet)")
    p.add_argument("--curves", help="curves table with run_id, step, flops, loss, …")
    p.add_argument("-o", "--out", default=None, help="output folder (default: ./report)")
    add_selection_args(p)
    p.add_argument("--bootstrap", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None)
    for name in ("loss", "params", "data", "flops", "accuracy"):
        p.add_argument(f"--{name}", default=None, help=f"{name} column (default: detected)")
    p.add_argument("--title", default=None)
    add_two_step_parser(sub, _common)
    return ap


def _inputs(args, df) -> tuple[dict[str, str], list[str]]:
    if args.law == "chinchilla":
        if not args.n or not args.d:
            raise AnalysisError("The chinchilla law needs --n (parameters) and --d (data) "
                                "columns.")
        return {"N": args.n, "D": args.d}, [args.n, args.d, args.loss]
    if not args.x:
        raise AnalysisError(f"The {args.law} law needs --x (the input column).")
    return {args.x: args.x}, [args.x, args.loss]


def _fit(args, df, names_cols):
    from .cli_predict import fit_clean, law_columns

    return fit_clean(args, df, law_columns(args))


def _print_fit(fit, out) -> None:
    from .plots import fmt

    ci = fit.ci()
    print(f"{fit.law} fit on {fit.n_points} points: converged {fit.converged}", file=out)
    for k, v in fit.params.items():
        iv = f"  [{fmt(ci[k][0], 4)}, {fmt(ci[k][1], 4)}]" if k in ci else ""
        print(f"  {k:>6} = {fmt(v, 5)}{iv}", file=out)
    print(f"  RMSE {fmt(fit.gof.rmse)}, MAE {fmt(fit.gof.mae)}, R² log {fmt(fit.gof.r2_log, 5)}",
          file=out)
    for k, v in fit.derived().items():
        dci = fit.derived_ci().get(k)
        iv = f"  [{fmt(dci[0], 4)}, {fmt(dci[1], 4)}]" if dci else ""
        print(f"  compute-optimal {k} = {fmt(v, 4)}{iv}", file=out)


def cmd_fit(args) -> tuple[dict, int]:
    df = load_rows(args)
    names, cols = _inputs(args, df)
    if args.group:
        cols = cols + [args.group]
    df, dropped = clean_rows(df, cols, positive=[c for c in cols if c != args.group])
    fit = _fit(args, df, names)
    out = fit.to_dict()
    out["warnings"] = dropped + out["warnings"]
    if args.plan and args.law == "chinchilla":
        from .cli_predict import plans

        out["plans"], plan_warn = plans(fit, args.plan, args.flops_per_param_token,
                                        from_aimscale(df))
        out["warnings"] += plan_warn
    if args.save:
        from .fitfile import save_fit

        save_fit(fit, args.save, dict(zip(("N", "D") if args.law == "chinchilla" else ("x",),
                                          fit.inputs, strict=True)))
        out["saved"] = args.save
    if not args.json:
        _print_fit(fit, sys.stdout)
        for p in out.get("plans", []):
            pre = (f"; nearest preset {p['preset']['name']}" if p.get("preset") else "")
            print(f"  plan for C = {p['flops']:.3g}: N = {p['n_opt']:.3g}, D = {p['d_opt']:.3g}, "
                  f"loss {p['loss']:.4g}{pre}")
    return out, 0 if fit.converged else 1


def cmd_isoflop(args) -> tuple[dict, int]:
    return run_isoflop(args, load_rows(args))


def cmd_correlate(args) -> tuple[dict, int]:
    from .correlate import correlate

    df = load_rows(args)
    require_columns(df, [args.group] if args.group else [])  # run ids may be text
    df, dropped = clean_rows(df, [args.x, args.y], positive=[], what="correlation")
    res = correlate(numeric(df, args.x), numeric(df, args.y), bootstrap=args.bootstrap,
                    seed=args.seed, level=args.level,
                    groups=df[args.group].to_numpy() if args.group else None)
    out = res.to_dict()
    out["warnings"] = dropped + out["warnings"]
    if not args.json:
        print(f"pearson {res.pearson:.4f} {res.ci.get('pearson')}, spearman {res.spearman:.4f} "
              f"{res.ci.get('spearman')}, LOO MAE {res.loo_mae:.4g} ({res.loo_model})")
    return out, 0


def cmd_backtest(args) -> tuple[dict, int]:
    from .cli_predict import backtest_from_args

    return backtest_from_args(args, load_rows(args), _inputs)


def cmd_report(args) -> tuple[dict, int]:
    from .report import ReportOptions, build_report
    from .report_columns import check_mappable

    runs = load_rows(args)
    for note in check_mappable(runs, {"loss": args.loss, "params": args.params,
                                      "data": args.data, "flops": args.flops}):
        print(f"note: {note}", file=sys.stderr)
    curves = load_table(args.curves, allow_empty=True) if args.curves else None
    out_dir = Path(args.out) if args.out else Path("report")
    opts = ReportOptions(bootstrap=args.bootstrap, seed=args.seed, n_jobs=args.jobs,
                         loss=args.loss, params=args.params, data=args.data, flops=args.flops,
                         accuracy=args.accuracy,
                         title=args.title or f"Scaling report: {Path(args.table).name}")
    path = build_report(runs, curves, out_dir, opts)
    print(path)
    return {"html": str(path)}, 0


COMMANDS = {"fit": cmd_fit, "isoflop": cmd_isoflop, "correlate": cmd_correlate,
            "backtest": cmd_backtest, "report": cmd_report, "two-step": cmd_two_step,
            "predict": cmd_predict}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    old_format = warnings.formatwarning
    with warnings.catch_warnings():
        # Warnings are part of the JSON output; on the console they print once, readably.
        warnings.simplefilter("ignore" if as_json else "default", FitWarning)
        warnings.formatwarning = lambda m, c, *a, **k: f"warning: {m}\n"
        try:
            check_args(args)
            if args.command == "predict" and not args.table:  # from a saved fit: no rows
                out, code = cmd_predict(args)
            else:
                out, code = run_command(COMMANDS[args.command], args)
        except AnalysisError as err:
            print(f"error: {err}", file=sys.stderr)
            if as_json:
                print(dumps({"error": str(err)}))
            return 2
        finally:
            warnings.formatwarning = old_format
    if as_json:
        print(dumps(out))
    elif code == 1:
        print("warning: the fit did not converge; see 'message' with --json", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
