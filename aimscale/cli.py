"""The `aimscale` command: a thin dispatcher over one module per subcommand.

Each subcommand module exposes `add_arguments(parser)` and `run(args) -> int`, and keeps heavy
imports (torch, submitit) inside `run`, so `aimscale --help` and `aimscale status` stay fast.
Exit codes (`aimscale.errors`): 0 ok, 1 run-time failure, 2 bad input; a `UserError` that a
subcommand does not handle itself ends here as its message and exit 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from aimscale.errors import EXIT_BAD_INPUT, UserError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "aimscale.train.cli",
        "pre-train one AIM run (Hydra overrides, e.g. model.width=256)",
    ),
    "model": ("aimscale.model.cli", "shape, parameter counts and FLOPs of a preset (no weights)"),
    "data": ("aimscale.data.cli", "find or obtain datasets, index tar shards (data fetch|index)"),
    "probe": ("aimscale.probe.cli", "frozen-trunk attentive/linear probes of a finished run"),
    "plan": (
        "aimscale.sweep.plan_cli",
        "expand and validate a sweep spec; params, FLOPs, GPU-hours",
    ),
    "launch": ("aimscale.sweep.launch_cli", "submit a sweep (local, slurm or debug executor)"),
    "status": ("aimscale.sweep.status_cli", "where a sweep stands: states, steps, losses, errors"),
    "cancel": ("aimscale.sweep.cancel_cli", "cancel a sweep's runs on SLURM (scancel), recorded"),
    "collect": ("aimscale.sweep.collect_cli", "runs and curves tables of a sweep"),
    "report": ("aimscale.report", "fits, plots and an HTML report of a collected sweep"),
    "next": ("aimscale.next_rung", "the next rung's sweep spec from a fitted sweep and a budget"),
    "demo": ("aimscale.demo", "the main job: a small sweep end to end, then the report"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aimscale", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            sub_parser.set_defaults(_unavailable=module_name)
            continue
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_unavailable", None):
        print(f"aimscale {args.command}: not available in this build", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"aimscale {args.command}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
