"""Which probe tasks a launch submits, grouped into probe arrays (`submit.ProbeArray`).

A probe task probes the result runs of one training task (`data_sizes.training_task_of`).
- Every training array submitted now gets one probe array with a task per training task, in
  the same order, each after its own training task (SLURM `aftercorr`; the local scheduler
  waits for that run).
- Result runs whose training is done and whose probes are `new` (or, with `retry_failed`,
  failed, blocked or cancelled) get probe arrays without a dependency.
- Probes of a run whose training is still queued or running but has no probe task (the probe
  sbatch of an earlier launch failed) are left for a later launch, with a warning: an array
  shares one dependency, so they cannot join an array already submitted.
- The owner of a sweep baseline that is still missing (`baselines.py`) gets a probe task even
  when its training failed, stopped or was cancelled: the baseline needs no trained trunk.
Runs whose probes are done, queued or running are never submitted again.
"""

from __future__ import annotations

from pathlib import Path

from aimscale.sweep.data_sizes import training_task_of
from aimscale.sweep.probe_state import PROBE_LIVE, PROBE_RETRY, TRAINING_ENDED
from aimscale.sweep.submit import ArrayRequest, ProbeArray


def select_probe_arrays(plan, sweep_dir: Path, train_arrays: list[ArrayRequest],
                        known: dict, retry_failed: bool, max_array_size: int,
                        warnings: list[str]) -> list[ProbeArray]:
    """`known`: run id -> RunState of the sweep before this launch (absent: never listed)."""
    if not plan.spec.probes:
        return []
    resource = plan.spec.resources.probe_class
    results: dict[str, list[str]] = {}  # training task -> its result runs, in plan order
    for run in plan.runs:
        results.setdefault(training_task_of(run), []).append(run.run_id)

    def dirs(run_ids: list[str]) -> list[str]:
        return [str(sweep_dir / r) for r in run_ids]

    arrays = []
    training_now = set()
    for array in train_arrays:
        tasks = [results.get(train_id, [train_id]) for train_id in array.run_ids]
        training_now.update(array.run_ids)
        arrays.append(ProbeArray(resource, tasks, [dirs(t) for t in tasks],
                                 list(array.run_ids), after=array))
    from aimscale.sweep.baselines import missing_baselines

    # owners of a baseline that is still missing: it needs no trained trunk, so even an owner
    # whose training failed gets a probe task (its runs' own probes end `blocked`)
    owners = {b.owner for b in missing_baselines(plan.baselines)}
    ready: list[tuple[str, list[str]]] = []
    waiting = []
    for train_id, run_ids in results.items():
        if train_id in training_now:
            continue
        train = known.get(train_id)
        train_state = train.train if train is not None else None
        if train_state is None and (sweep_dir / train_id / "summary.json").exists():
            train_state = "done"
        if train_id in owners and train_state in TRAINING_ENDED and not any(
                known.get(r) is not None and known[r].probe in PROBE_LIVE for r in run_ids):
            ready.append((train_id, run_ids))
            continue
        wanted = []
        for run_id in run_ids:
            state = known.get(run_id)
            probe = state.probe if state is not None else "new"
            if probe == "new" or (retry_failed and probe in PROBE_RETRY):
                wanted.append(run_id)
        if not wanted:
            continue
        if train_state == "done":
            ready.append((train_id, wanted))
        elif train_state not in (None, "new", "failed", "cancelled", "stopped", "unreadable"):
            waiting += wanted
    if waiting:
        warnings.append(
            f"the probes of {len(waiting)} run(s) whose training is still under way have no "
            f"probe task (e.g. {waiting[0]}); launch again once their training is done to "
            "submit them")
    for start in range(0, len(ready), max_array_size):
        part = ready[start:start + max_array_size]
        arrays.append(ProbeArray(resource, [t for _, t in part], [dirs(t) for _, t in part],
                                 [train_id for train_id, _ in part]))
    return arrays
