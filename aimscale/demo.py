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
# A training step on a CPU costs about 14 ms of fixed work (Python, optimiser, data) on top of
# its FLOPs at about 8e10 FLOP/s, i.e. some 1.1e9 FLOPs' worth: measured on the demo's runs
# (widths 8-96, 2 cores). Only the queue order uses it.
STEP_OVERHEAD_FLOPS = 1.1e9


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
    dirs = []
    for index, plan in enumerate(sweeps):
        try:
            dirs.append(_launch(plan, args.max_parallel))
        except (ConfigError, DataProblems, UnreadableFileError) as err:  # bad input
            print(f"aimscale demo: {err}", file=sys.stderr)
            return 2
        except RuntimeError as err:  # a launch that failed at run time (as `aimscale launch`)
            print(f"aimscale demo: {err}", file=sys.stderr)
            return 1
        if index + 1 < len(sweeps):  # the next sweep starts once this one's last task has:
            # its runs then fill the slots this sweep's tail leaves idle
            _watch(dirs, args.poll, started, until=lambda d=dirs[-1]: _all_started(d))
    states = _watch(dirs, args.poll, started)
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
    # longest task first: the short ones fill the other slot at the end instead of one long
    # task running alone (the plan keeps its run ids; only the queue order changes)
    from aimscale.sweep.data_sizes import training_task_of

    cost = task_costs(plan.runs)
    plan.runs.sort(key=lambda r: -cost[training_task_of(r)])
    return plan


def task_costs(runs) -> dict[str, float]:
    """Estimated CPU time of each training task, in FLOPs: a trunk and its cooldown branches are
    one task; each step costs its FLOPs plus `STEP_OVERHEAD_FLOPS` (on a CPU, small models are
    bound by the per-step overhead, so a long narrow run outlasts a short wide one)."""
    from aimscale.sweep.data_sizes import training_task_of

    cost: dict[str, float] = {}
    for run in runs:
        steps = run.spent_flops / (run.flops_per_image * run.cfg.train.batch_size)
        task = training_task_of(run)
        cost[task] = cost.get(task, 0.0) + run.spent_flops + steps * STEP_OVERHEAD_FLOPS
    return cost


def _all_started(sweep_dir: Path) -> bool:
    """Whether the local scheduler of the sweep's latest launch has started every training
    task (none is `queued`); a scheduler that has not written its state yet has not."""
    from aimscale.jsonfiles import read_json
    from aimscale.sweep.manifest import latest_attempt, read_manifest

    manifest = read_manifest(sweep_dir) or {}
    paths = {(latest_attempt(e) or {}).get("scheduler_state")
             for e in manifest.get("runs", {}).values()} - {None}
    for path in paths:
        state = read_json(path)
        if state is None or any(v.get("state") == "queued"
                                for v in state.get("runs", {}).values()):
            return False
    return True


def _launch(plan, max_parallel: int | None) -> Path:
    from aimscale.sweep.launch import launch

    result = launch(plan, "local", max_parallel=max_parallel)
    print(f"[demo] sweep {plan.spec.name}: {len(plan.runs)} runs, {len(result.submitted)} to "
          f"train, {len(result.skipped)} already done or under way -> {result.sweep_dir}")
    return result.sweep_dir


def _watch(sweep_dirs: list[Path], poll_s: float, started: float, until=None):
    """Print a progress line (over all `sweep_dirs`) until no run is pending or running, or
    `until()` holds; return the states."""
    from aimscale.sweep.manifest import read_manifest
    from aimscale.sweep.state import sweep_states

    last_done, last_print = -1, 0.0
    while True:
        states = [s for d in sweep_dirs for s in sweep_states(d, read_manifest(d) or {})]
        active = [s for s in states if s.state in ACTIVE_STATES]
        if until is not None and until():
            return states
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
