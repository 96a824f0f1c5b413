"""``python -m analysis two-step``: OLMo's model-ladder protocol (N, D) → task loss → accuracy."""

from __future__ import annotations

import argparse
import warnings

from .errors import AnalysisError, FitWarning
from .ladder import Columns, LadderConfig, fit_ladder
from .selection import load_rows


def add_two_step_parser(sub, common) -> None:
    """Register the subcommand; ``common`` adds the shared table/bootstrap/--json arguments."""
    p = sub.add_parser("two-step", help="loss → accuracy prediction as in OLMo's model ladder",
                       description="Step 1: the joint law on each run's final task loss; step 2: "
                                   "a sigmoid of accuracy against task loss on checkpoints; "
                                   "chained, with a bootstrap over runs.")
    common(p)
    for name, what in (("run", "run id"), ("n", "parameter count"),
                       ("d", "data seen at the checkpoint (tokens, images or patches)"),
                       ("step", "checkpoint step"), ("task-loss", "task loss"),
                       ("acc", "accuracy")):
        p.add_argument(f"--{name}", required=True, help=f"{what} column")
    p.add_argument("--at", action="append", required=True, metavar="N=…,D=…",
                   help="predict at this (N, D), e.g. N=7e9,D=1.4e11 (repeatable)")
    d = LadderConfig()
    p.add_argument("--final-checkpoints", type=int, default=d.final_checkpoints,
                   help=f"step 1: mean of each run's last K checkpoints (default "
                        f"{d.final_checkpoints})")
    p.add_argument("--skip-fraction", type=float, default=d.skip_fraction,
                   help=f"step 2: drop each run's first fraction of steps (default "
                        f"{d.skip_fraction})")
    p.add_argument("--smooth", type=int, default=d.smooth,
                   help=f"step 2: moving average over K checkpoints (default {d.smooth}; 1 = off)")
    p.add_argument("--acc-max", type=float, default=d.acc_max,
                   help=f"step 2: accuracy of the ideal point at loss 0 (default {d.acc_max:g})")
    p.add_argument("--no-ideal-point", action="store_true",
                   help="step 2: fit without the ideal point")


def parse_points(specs: list[str]) -> tuple[list[float], list[float]]:
    """``["N=1e9,D=2e10", …]`` → ([N…], [D…]); a clear error for anything else."""
    ns, ds = [], []
    for spec in specs:
        vals = {}
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            try:
                vals[key.strip().upper()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise AnalysisError(f"--at takes N=VALUE,D=VALUE, e.g. --at N=7e9,D=1.4e11; got "
                                    f"{spec!r}.")
        if set(vals) != {"N", "D"} or not all(v > 0 for v in vals.values()):
            raise AnalysisError(f"--at needs positive N and D, e.g. --at N=7e9,D=1.4e11; got "
                                f"{spec!r}.")
        ns.append(vals["N"])
        ds.append(vals["D"])
    return ns, ds


def _check(args: argparse.Namespace) -> None:
    problems = []
    if args.bootstrap < 0:
        problems.append(f"--bootstrap must be ≥ 0 (got {args.bootstrap})")
    if not 0 < args.level < 1:
        problems.append(f"--level is a fraction in (0, 1), e.g. 0.95 (got {args.level})")
    if args.seed < 0:
        problems.append(f"--seed must be ≥ 0 (got {args.seed})")
    if problems:
        raise AnalysisError("; ".join(problems) + ".")


def cmd_two_step(args) -> tuple[dict, int]:
    _check(args)
    ns, ds = parse_points(args.at)
    cfg = LadderConfig(final_checkpoints=args.final_checkpoints,
                       skip_fraction=args.skip_fraction, smooth=args.smooth,
                       acc_max=args.acc_max, ideal_point=not args.no_ideal_point)
    cols = Columns(run=args.run, n=args.n, d=args.d, step=args.step, task_loss=args.task_loss,
                   acc=args.acc)
    lad = fit_ladder(load_rows(args), cols, cfg, bootstrap=args.bootstrap, seed=args.seed,
                     level=args.level, n_jobs=args.jobs)
    out = lad.to_dict()
    out["predictions"] = lad.predict(ns, ds)
    for p in out["predictions"]:
        for w in p["warnings"]:
            if w not in out["warnings"]:
                out["warnings"].append(w)
                warnings.warn(f"two-step: {w}", FitWarning, stacklevel=2)
    if not args.json:
        s1, s2 = lad.step1.params, out["step2"]["params"]
        print(f"step 1 on {len(lad.runs)} runs: L = {s1['E']:.4g} + {s1['A']:.4g}/N^"
              f"{s1['alpha']:.3f} + {s1['B']:.4g}/D^{s1['beta']:.3f}")
        print(f"step 2 on {lad.n_step2} checkpoints: acc = a/(1+exp(-k·(L-l0))) + b with "
              f"a = {s2['a']:.3g}, k = {s2['k']:.3g}, l0 = {s2['l0']:.3g}, b = {s2['b']:.3g}; "
              f"RMSE {lad.sigmoid_rmse:.3g}")
        for p in out["predictions"]:
            iv = ("" if p["acc_lo"] is None else
                  f" [{p['task_loss_lo']:.4g}, {p['task_loss_hi']:.4g}]")
            ia = "" if p["acc_lo"] is None else f" [{p['acc_lo']:.3f}, {p['acc_hi']:.3f}]"
            print(f"  N = {p['N']:.3g}, D = {p['D']:.3g}: task loss {p['task_loss']:.4g}{iv}, "
                  f"acc {p['acc']:.3f}{ia}")
    return out, 0 if lad.step1.converged else 1
