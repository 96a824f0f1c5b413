"""`aimscale demo`: the main job — a small AIM scaling study end to end on one machine.

Obtains Fashion-MNIST, launches the scaling sweep `sweeps/demo.yaml` on the local executor
(widths x data sizes, each run probed after pre-training), then the ablation sweep
`sweeps/demo_ablation.yaml` (one of the paper's ablations over seeds), showing progress until
every run has ended; collects and reports each sweep and writes the study's verdict
(`SWEEP_DIR/demo.json`, `aimscale/demo_summary.py`). Two specs, because a spec is one product of
axes: the ablation varies a factor at one size over seeds, the scaling sweep varies size and data
at one seed. A second invocation reuses finished runs (the launch skips them) and only redoes the
collection and the reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO_ROOT / "sweeps" / "demo.yaml"
DEFAULT_ABLATION = REPO_ROOT / "sweeps" / "demo_ablation.yaml"
ACTIVE_STATES = ("pending", "running", "requeued", "probing")
PRINT_EVERY_S = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    parser.add_argument("--spec", default=str(DEFAULT_SPEC), help="sweep spec (default: demo)")
    parser.add_argument("--ablation-spec", default=str(DEFAULT_ABLATION),
                        help="ablation sweep spec run after the scaling sweep (default: "
                             "demo_ablation); 'none' skips it")
    parser.add_argument("--sweep-dir", help="where runs go (default: the spec's sweep_dir; the "
                                            "ablation's runs go to SWEEP_DIR-ablation)")
    parser.add_argument("--max-parallel", type=int, help="runs at once (default: the spec's)")
    parser.add_argument("--wandb", action="store_true",
                        help="mirror every run to wandb (offline unless you are logged in)")
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="bootstrap resamples for the report's intervals")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between progress lines")
    parser.add_argument("--strict", action="store_true", default=None,
                        help="a report section that fails is an error (default: "
                             "$AIMSCALE_STRICT)")


def run(args: argparse.Namespace) -> int:
    from aimscale.atomic import atomic_write_json
    from aimscale.config import ConfigError
    from aimscale.data.errors import DataError
    from aimscale.data.fetch import fetch
    from aimscale.jsonfiles import UnreadableFileError
    from aimscale.sweep.launch import DataProblems

    started = time.perf_counter()
    try:
        data_dir = fetch("fashion-mnist")
    except DataError as err:
        print(f"aimscale demo: {err}", file=sys.stderr)
        return 1
    print(f"[demo] Fashion-MNIST: {data_dir}")

    overrides = list(args.overrides)
    if args.wandb:
        overrides += ["logging.wandb=true", f"logging.wandb_mode={_wandb_mode()}"]
    ablation = None if str(args.ablation_spec).lower() == "none" else args.ablation_spec
    try:  # both specs are checked before anything is launched
        sweeps = [_plan(args.spec, overrides, args.sweep_dir)]
        if ablation:
            abl_dir = args.sweep_dir and f"{args.sweep_dir}-ablation"
            sweeps.append(_plan(ablation, overrides, abl_dir))
    except ConfigError as err:
        print(f"aimscale demo: {err}", file=sys.stderr)
        return 2
    states, dirs = [], []
    for plan in sweeps:
        try:
            dirs.append(_launch(plan, args.max_parallel))
        except (ConfigError, DataProblems, UnreadableFileError) as err:  # bad input
            print(f"aimscale demo: {err}", file=sys.stderr)
            return 2
        except RuntimeError as err:  # a launch that failed at run time (as `aimscale launch`)
            print(f"aimscale demo: {err}", file=sys.stderr)
            return 1
        states += _watch(dirs[-1], args.poll, started)
    failed = [s for s in states if s.state != "done"]
    for state in failed:
        print(f"[demo] run {state.run_id} ended {state.state}: {state.error or ''}".rstrip())

    from aimscale.demo_summary import lines, summarise
    from aimscale.report import write_report
    from aimscale.sweep.collect import write_tables

    for sweep_dir in dirs:
        runs_path, curves_path = write_tables(sweep_dir)
        print(f"[demo] collected {runs_path} and {curves_path}")
        report = write_report(sweep_dir, bootstrap=args.bootstrap, strict=args.strict)
        print(f"[demo] report: {report}")
    summary = summarise(dirs[0], dirs[1] if len(dirs) > 1 else None)
    summary["wall_time_s"] = time.perf_counter() - started
    atomic_write_json(dirs[0] / "demo.json", summary)
    for line in lines(summary):
        print(f"[demo] {line}")
    elapsed = summary["wall_time_s"]
    print(f"[demo] study summary: {dirs[0] / 'demo.json'}")
    print(f"[demo] {len(states) - len(failed)}/{len(states)} runs done; "
          f"wall time {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    return 0 if not failed else 1


def _wandb_mode() -> str:
    """Online when the user is logged in (an API key is known), offline otherwise."""
    import os

    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    netrc = Path.home() / ".netrc"
    logged_in = os.environ.get("WANDB_API_KEY") or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text()
    )
    return "online" if logged_in else "offline"


def _plan(spec_path: str, overrides: list[str], sweep_dir: str | None):
    from aimscale.sweep.plan import build_plan
    from aimscale.sweep.spec import load_spec

    spec = load_spec(spec_path, overrides)
    if sweep_dir:
        spec = dataclasses.replace(spec, sweep_dir=sweep_dir)
    plan = build_plan(spec)
    # largest first: the small runs fill the other slot at the end instead of one big run
    # running alone (the plan keeps its run ids; only the queue order changes)
    plan.runs.sort(key=lambda r: -r.total_flops)
    return plan


def _launch(plan, max_parallel: int | None) -> Path:
    from aimscale.sweep.launch import launch

    result = launch(plan, "local", max_parallel=max_parallel)
    print(f"[demo] sweep {plan.spec.name}: {len(plan.runs)} runs, {len(result.submitted)} to "
          f"train, {len(result.skipped)} already done or under way -> {result.sweep_dir}")
    return result.sweep_dir


def _watch(sweep_dir: Path, poll_s: float, started: float):
    """Print a progress line until no run is pending or running; return the final states."""
    from aimscale.sweep.manifest import read_manifest
    from aimscale.sweep.state import sweep_states

    last_done, last_print = -1, 0.0
    while True:
        states = sweep_states(sweep_dir, read_manifest(sweep_dir) or {})
        active = [s for s in states if s.state in ACTIVE_STATES]
        done = sum(s.state == "done" for s in states)
        now = time.perf_counter()
        # a line when a run finishes, else every PRINT_EVERY_S: readable in a log file too
        if done != last_done or now - last_print >= PRINT_EVERY_S or not active:
            print(_progress_line(states, now - started), flush=True)
            last_done, last_print = done, now
        if not active:
            return states
        time.sleep(poll_s)


def _progress_line(states, elapsed: float) -> str:
    """Runs done, the running ones with step and loss, and a time-left estimate from run fractions
    (a pending run counts as 0, a done one as 1; probes are not counted)."""
    finished = sum(s.state == "done" for s in states)
    running = [s for s in states if s.state == "running"]
    parts = [f"[demo] runs done {finished}/{len(states)}"]
    fraction = finished + sum(s.state == "probing" for s in states)
    for s in running:
        loss = f" loss {s.loss:.4f}" if s.loss is not None else ""
        parts.append(f"{s.run_id} {s.step or 0}/{s.total_steps or '?'}{loss}")
        if s.total_steps:
            fraction += (s.step or 0) / s.total_steps
    fraction /= max(1, len(states))
    if 0.05 < fraction < 1.0:
        parts.append(f"~{elapsed * (1 - fraction) / fraction:.0f} s left")
    parts.append(f"{elapsed:.0f} s")
    return " | ".join(parts)
