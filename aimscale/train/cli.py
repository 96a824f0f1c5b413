"""`aimscale train [overrides]`: validate the config and the data, then train one run.

Exit codes: 0 done (or already done), 1 failed (error.txt says why), 2 invalid config or data,
75 stopped by a signal at a step boundary with a checkpoint saved (run the same command again to
resume). SIGTERM, SIGUSR2 (SLURM's warning before a time limit) and a first Ctrl-C request that
graceful stop; a second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

EXIT_STOPPED = 75  # EX_TEMPFAIL: try again later (resumes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra-style overrides, e.g. model=aim-small train.steps=500 run_dir=runs/x",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the config and the data, print the resolved config and run dir, and exit",
    )


class _StopFlag:
    """Set by a signal; `train` checks it after every step."""

    def __init__(self):
        self.signum: int | None = None
        self._interrupts = 0

    def __call__(self) -> bool:
        return self.signum is not None

    def handle(self, signum, frame) -> None:
        if signum == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                raise KeyboardInterrupt
        self.signum = signum
        print(
            f"aimscale train: {signal.Signals(signum).name} received; stopping after this step "
            "with a checkpoint",
            file=sys.stderr,
            flush=True,
        )

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT):
            signal.signal(signum, self.handle)


def preflight(overrides: list[str]):
    """The resolved config, or a list of every problem found in the config and the data."""
    from aimscale.config import ConfigError, compose

    try:
        cfg = compose(overrides)
    except ConfigError as err:
        return None, err.problems
    from aimscale.data import check_data
    from aimscale.train.support import unsupported

    return cfg, unsupported(cfg.train) + check_data(cfg.data, cfg.model)


def run(args: argparse.Namespace) -> int:
    from aimscale.config import to_yaml
    from aimscale.train.runstate import resolve_run_dir

    cfg, problems = preflight(args.overrides)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        print(
            f"aimscale train: {len(problems)} problem(s), nothing was run:\n{lines}",
            file=sys.stderr,
        )
        return 2
    cfg.run_dir = str(resolve_run_dir(cfg))
    if args.dry_run:
        print(to_yaml(cfg), end="")
        print(f"# run dir: {cfg.run_dir}")
        return 0

    from aimscale.errors import EXIT_BAD_INPUT, UserError
    from aimscale.train.loop import Diverged, train

    stop = _StopFlag()
    stop.install()
    print(f"aimscale train: run dir {cfg.run_dir}", file=sys.stderr, flush=True)
    try:
        result = train(cfg, stop_requested=stop)
    except Diverged as err:
        print(f"aimscale train: {err}", file=sys.stderr)
        return 1
    except UserError as err:  # bad input found once training started, e.g. a damaged config.yaml
        print(f"aimscale train: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:
        print(
            f"aimscale train: failed: {type(err).__name__}: {err} "
            f"(details in {cfg.run_dir}/error.txt)",
            file=sys.stderr,
        )
        return 1
    if result.get("status") == "stopped":
        return EXIT_STOPPED
    print(json.dumps(result, sort_keys=True))
    return 0
