"""``python -m analysis isoflop``: arguments and the command (Approach 2 with windowed parabolas,
N or D as the size axis, predictions at given budgets)."""

from __future__ import annotations

import argparse
import sys
import warnings

import pandas as pd

from .data import clean_rows, numeric
from .errors import AnalysisError, FitWarning
from .isoflop import DEFAULT_WINDOW, SIZE_RTOL, isoflop


def add_isoflop_args(p: argparse.ArgumentParser) -> None:
    """Arguments after ``--flops`` of the isoflop subcommand."""
    p.add_argument("--n", help="parameter-count column (give --n, --d or both)")
    p.add_argument("--d", help="data column (tokens, images or patches); with only --d the "
                               "parabolas are fitted in log D")
    p.add_argument("--loss", required=True, help="loss column")
    p.add_argument("--budget", help="column labelling budgets (default: group flops within 10%%)")
    p.add_argument("--flops-per-param-token", type=float, default=None, metavar="K",
                   help="k in C = k·N·D (default: median C/(N·D) with --n and --d, else 6)")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW, metavar="K",
                   help=f"fit each parabola on the K distinct sizes nearest the lowest loss "
                        f"(default {DEFAULT_WINDOW}; 0 = every size, the biased classic)")
    p.add_argument("--window-decades", type=float, default=None, metavar="W",
                   help="instead of --window: the sizes within W/2 decades of the lowest loss")
    p.add_argument("--size-rtol", type=float, default=SIZE_RTOL,
                   help=f"sizes closer than this (relative) are one size (default {SIZE_RTOL:g})")
    p.add_argument("--edge", choices=("drop", "flag"), default="drop",
                   help="a budget whose lowest loss is at the grid edge: drop it (default) or "
                        "keep it with a warning")
    p.add_argument("--at", metavar="C[,C…]", action="append", default=None,
                   help="predict N*, D* and L* at these budgets (FLOPs; repeatable)")


def _budgets(specs: list[str] | None) -> list[float]:
    out = []
    for spec in specs or []:
        for part in spec.split(","):
            try:
                out.append(float(part))
            except ValueError:
                raise AnalysisError(f"--at takes compute budgets in FLOPs, e.g. --at 1e21,1e22; "
                                    f"got {part!r}.") from None
    return out


def run_isoflop(args, df: pd.DataFrame) -> tuple[dict, int]:
    """Fit, print (unless --json) and return the JSON-ready result."""
    from .isoflop_at import predict_at

    if not args.n and not args.d:
        raise AnalysisError("isoflop needs a size column: --n COL (parameters), --d COL "
                            "(tokens/images/patches) or both.")
    if args.window < 0 or 0 < args.window < 3:
        raise AnalysisError(f"--window must be 0 (all sizes) or at least 3; got {args.window}.")
    if args.window_decades is not None and not args.window_decades > 0:
        raise AnalysisError(f"--window-decades must be positive; got {args.window_decades}.")
    if not args.size_rtol >= 0:
        raise AnalysisError(f"--size-rtol must be ≥ 0; got {args.size_rtol}.")
    at = _budgets(args.at)
    sizes = [c for c in (args.n, args.d) if c]
    cols = [args.flops, *sizes, args.loss] + ([args.budget] if args.budget else [])
    df, dropped = clean_rows(df, cols, positive=[args.flops, *sizes, args.loss], what="isoflop")
    res = isoflop(numeric(df, args.flops), numeric(df, args.n) if args.n else None,
                  numeric(df, args.loss), d=numeric(df, args.d) if args.d else None,
                  budget=df[args.budget].to_numpy() if args.budget else None,
                  k=args.flops_per_param_token, window=args.window,
                  window_decades=args.window_decades, size_rtol=args.size_rtol, edge=args.edge,
                  bootstrap=args.bootstrap, seed=args.seed, level=args.level)
    out = res.to_dict()
    out["warnings"] = dropped + out["warnings"]
    if at:
        out["at"], out["loss_law"] = predict_at(res, at)
        for w in dict.fromkeys(w for row in out["at"] for w in row["warnings"]):
            out["warnings"].append(f"--at: {w}")
            warnings.warn(f"isoflop: {w}", FitWarning, stacklevel=2)
    if not args.json:
        used = sum(b.used for b in res.budgets)
        print(f"a = {res.a:.4f} {_ci(res.a_ci)}, N* = {out['n_coefficient']:.4g}·C^a; "
              f"b = {res.b:.4f} {_ci(res.b_ci)}, D* = {out['d_coefficient']:.4g}·C^b "
              f"(k = {res.k:.4g}, {res.k_source}); {used} of {len(res.budgets)} budgets used")
        for row in out.get("at", []):
            print(f"  C = {row['flops']:.3g}: N* = {row['n_opt']:.4g} {_ci(row['n_opt_ci'])}, "
                  f"D* = {row['d_opt']:.4g} {_ci(row['d_opt_ci'])}, "
                  f"L* = {row['loss_opt']:.4g} {_ci(row['loss_opt_ci'])}", file=sys.stdout)
    return out, 0


def _ci(ci) -> str:
    return "" if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"
