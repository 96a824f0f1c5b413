"""`aimscale launch`: plan, skip what is done or under way, write run dirs, submit arrays.

Runs submitted: the new ones, plus the failed, stopped and cancelled ones with `retry_failed`.
Every other state is skipped, in particular `unknown` (the scheduler did not answer), `stale`
and `ending`: such a run may still be alive, and resubmitting it would give its directory a
second writer. On SLURM the controller must answer before anything is written. The manifest is
rewritten (atomically) after every array, so a crash half-way still records what was submitted;
a launch whose sbatch fails is recorded with `failed` (the runs not submitted stay `new`).

Probes (the spec's `probe` list) are their own job arrays on the `probe` resource class, each
training array followed at once by its probe array (`probe_tasks.py` chooses them); each run's
probe tasks are recorded under `probe_attempts` in the manifest, as training attempts are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from aimscale.atomic import atomic_write_text
from aimscale.config import to_yaml
from aimscale.sweep import slurm
from aimscale.sweep.heartbeat import HEARTBEAT_S
from aimscale.sweep.manifest import launch_lock, new_manifest, read_manifest, write_manifest
from aimscale.sweep.plan import Plan
from aimscale.sweep.probe_tasks import select_probe_arrays
from aimscale.sweep.state import RETRY_STATES, sweep_states
from aimscale.sweep.submit import ArrayRequest, ProbeArray, split_arrays
from aimscale.train.branches import write_branch_list

EXECUTORS = ("local", "slurm", "debug")


@dataclass
class LaunchResult:
    sweep_dir: Path
    submitted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # run_id -> state
    arrays: list[ArrayRequest] = field(default_factory=list)
    job_ids: dict[str, str] = field(default_factory=dict)
    probe_arrays: list[ProbeArray] = field(default_factory=list)
    probe_job_ids: dict[str, str] = field(default_factory=dict)  # result run_id -> probe task
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)
    # trunk run id -> its cooldown branches, trained in the trunk's task (aimscale.train.branches)
    branches: dict[str, list[str]] = field(default_factory=dict)


class LaunchFailed(RuntimeError):
    """Submission stopped half-way (e.g. sbatch refused an array); the manifest says so."""


def launch(plan: Plan, executor: str = "local", dry_run: bool = False,
           retry_failed: bool = False, max_parallel: int | None = None,
           max_array_size: int | None = None) -> LaunchResult:
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    if executor == "slurm" and not dry_run and not slurm.available():
        raise RuntimeError("--executor slurm needs sbatch and squeue on PATH (a SLURM login "
                           "node); use --executor local on a workstation")
    if executor == "slurm" and not dry_run:
        try:
            slurm.check_controller()
        except slurm.SlurmUnavailable as err:
            raise slurm.SlurmUnavailable(
                f"SLURM did not answer ({err}); nothing was submitted or written. Launch again "
                "when `squeue` works (runs already submitted are not touched)") from None
    spec = plan.spec
    sweep_dir = Path(spec.sweep_dir).resolve()
    if dry_run:
        return _select(plan, sweep_dir, executor, retry_failed, max_array_size, dry_run=True)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with launch_lock(sweep_dir):
        result = _select(plan, sweep_dir, executor, retry_failed, max_array_size)
        check_run_data(plan, result.submitted)
        _submit(plan, result, executor, max_parallel or spec.local.max_parallel)
    return result


class DataProblems(RuntimeError):
    """The data of runs about to be submitted is missing or too small; nothing was submitted."""


def check_run_data(plan: Plan, run_ids: list[str]) -> None:
    """Run the data pre-flight check once per distinct data set-up, before anything is submitted
    (`plan` does not, so a spec can be planned away from its data)."""
    import json

    from aimscale.data import check_data

    wanted = set(run_ids)
    seen: dict[str, list[str]] = {}
    problems: list[str] = []
    for run in plan.runs:
        if run.run_id not in wanted:
            continue
        data, model = run.cfg.data, run.cfg.model
        key = json.dumps([repr(data), model.image_size, model.channels])
        if key not in seen:
            seen[key] = check_data(data, model)
            problems += [f"[{run.run_id}] {p}" for p in seen[key]]
    if problems:
        raise DataProblems("nothing submitted; the data of these runs is not usable:\n"
                           + "\n".join(f"  - {p}" for p in problems))


def _select(plan: Plan, sweep_dir: Path, executor: str, retry_failed: bool,
            max_array_size: int | None, dry_run: bool = False) -> LaunchResult:
    """Which runs to submit, grouped into arrays."""
    result = LaunchResult(sweep_dir=sweep_dir, dry_run=dry_run)
    manifest = read_manifest(sweep_dir) or {"runs": {}}
    states = {r.run_id: r for r in sweep_states(sweep_dir, manifest, with_loss=False,
                                                warnings=result.warnings)}
    known = {run_id: r.train or r.state for run_id, r in states.items()}  # the training side
    groups: dict[str, list[tuple[str, str]]] = {}
    branches: dict[str, list[str]] = {}
    for run in plan.runs:
        if run.branch_of:
            branches.setdefault(run.branch_of, []).append(run.run_id)

    def state_of(run_id: str) -> str | None:
        state = known.get(run_id)
        if state is None and (sweep_dir / run_id / "summary.json").exists():
            state = "done"
        return state

    submittable = {None, "new", *(RETRY_STATES if retry_failed else ())}
    for run in plan.runs:
        if run.branch_of:  # trained in its trunk's task, submitted with it
            continue
        family = [run.run_id, *branches.get(run.run_id, [])]
        members = {run_id: state_of(run_id) for run_id in family}
        # a task trains the whole family: submit it when a member needs it and none is alive
        if set(members.values()) <= submittable | {"done"} and set(members.values()) - {"done"}:
            groups.setdefault(run.resource_class, []).append(
                (run.run_id, str(sweep_dir / run.run_id))
            )
            if run.run_id in branches:
                result.branches[run.run_id] = branches[run.run_id]
        else:
            result.skipped.update(members)
    unsure = sorted(r for r, s in result.skipped.items() if s in ("unknown", "stale", "ending"))
    if unsure and retry_failed:
        result.warnings.append(
            f"{len(unsure)} run(s) not resubmitted because they may still be alive (unknown, "
            f"stale or ending), e.g. {unsure[0]}; check `aimscale status`, `aimscale cancel` "
            "them if they are dead, then retry")
    if max_array_size is None:
        max_array_size = slurm.max_array_size() if executor == "slurm" else 1_000_000
    result.arrays = split_arrays(groups, plan.spec.resources.classes, max_array_size)
    result.submitted = [r for a in result.arrays for r in a.run_ids]
    result.probe_arrays = select_probe_arrays(plan, sweep_dir, result.arrays, states,
                                              retry_failed, max_array_size, result.warnings)
    return result


def probed(result: LaunchResult) -> list[str]:
    """The result runs the launch's probe arrays probe, in task order."""
    return [r for a in result.probe_arrays for task in a.run_ids for r in task]


def task_index(result: LaunchResult) -> dict[str, int]:
    """Each probed run's place in its probe task (0: probed first; a task probes a trunk's
    family one run after another)."""
    return {r: i for a in result.probe_arrays for task in a.run_ids for i, r in enumerate(task)}


def _submit(plan: Plan, result: LaunchResult, executor: str, max_parallel: int) -> None:
    spec, sweep_dir = plan.spec, result.sweep_dir
    manifest = read_manifest(sweep_dir) or new_manifest(spec.name, spec.raw)
    manifest["spec"] = spec.raw
    manifest["resource_classes"] = {k: v.to_dict() for k, v in spec.resources.classes.items()}
    if spec.probes:
        manifest["probe_resource_class"] = spec.resources.probe_class.to_dict()
    by_id = {run.run_id: run for run in plan.runs}
    base_flat, diffs = plan.flat_configs()
    if manifest.get("base_config") not in (None, base_flat):  # keep the first base; diff to it
        from aimscale.sweep.collect import flatten
        from aimscale.sweep.plan import _plain

        base_flat = manifest["base_config"]
        diffs = {run.run_id: {k: v for k, v in flatten(_plain(run.cfg)).items()
                              if base_flat.get(k, ...) != v} for run in plan.runs}
    manifest["base_config"] = base_flat
    for run in plan.runs:  # every planned run is listed, submitted or not
        entry = manifest["runs"].setdefault(run.run_id, {"attempts": []})
        entry.update(run.summary(), run_dir=str(sweep_dir / run.run_id),
                     config=diffs[run.run_id])
    # `submitted` counts what the scheduler accepted, array by array
    launch_record = {"at": time.time(), "executor": executor, "planned": len(result.submitted),
                     "planned_probes": len(probed(result)), "submitted": 0, "arrays": []}
    code_root = _record_provenance(sweep_dir, launch_record, len(manifest["launches"]),
                                   snapshot=bool(result.arrays or result.probe_arrays)
                                   and executor != "debug")
    manifest["launches"].append(launch_record)
    with_branches = [*result.submitted, *(b for ids in result.branches.values() for b in ids)]
    for run_id in with_branches:  # the run dir with its config exists before submission
        cfg = by_id[run_id].cfg
        cfg.run_dir = str(sweep_dir / run_id)
        atomic_write_text(sweep_dir / run_id / "config.yaml", to_yaml(cfg))
    for trunk_id, branch_ids in result.branches.items():  # what the trunk's task trains after it
        write_branch_list(sweep_dir / trunk_id, branch_ids)
    write_manifest(sweep_dir, manifest)
    if not result.arrays and not result.probe_arrays:
        return
    if executor == "slurm":
        _submit_slurm(plan, result, manifest, launch_record, code_root)
    elif executor == "local":
        from aimscale.sweep.submit import start_local_scheduler

        submitted_at = time.time()
        pid, state_file = start_local_scheduler(sweep_dir, result.arrays, spec.resources,
                                                max_parallel, plan.job_probes(), code_root,
                                                result.probe_arrays)
        folder = str(sweep_dir / ".submitit" / "local")
        for run_id in result.submitted:
            manifest["runs"][run_id]["attempts"].append({
                "executor": "local", "job_id": None, "submitted_at": submitted_at,
                "scheduler_state": str(state_file), "folder": folder,
                "heartbeat_s": HEARTBEAT_S,
            })
        place = task_index(result)
        for run_id in probed(result):
            manifest["runs"][run_id].setdefault("probe_attempts", []).append({
                "executor": "local", "job_id": None, "submitted_at": submitted_at,
                "scheduler_state": str(state_file), "folder": folder,
                "heartbeat_s": HEARTBEAT_S, "task_index": place[run_id],
            })
        launch_record["arrays"].append({"scheduler_pid": pid, "tasks": len(result.submitted),
                                        "probe_tasks": sum(len(a.run_ids)
                                                           for a in result.probe_arrays)})
        launch_record["submitted"] = len(result.submitted)
        _branch_attempts(manifest, result)
        write_manifest(sweep_dir, manifest)
    else:  # debug: inline, blocking, in this process
        _run_inline(plan, result, manifest, launch_record)


def _submit_slurm(plan: Plan, result: LaunchResult, manifest: dict, launch_record: dict,
                  code_root: str) -> None:
    """sbatch each training array, then at once its probe array (after it, task by task), then
    the probe arrays of runs trained earlier; the manifest is written after each sbatch."""
    from aimscale.sweep.submit import submit_probe_slurm, submit_slurm

    spec, sweep_dir = plan.spec, result.sweep_dir
    folder = sweep_dir / ".submitit" / "%j"
    follows = {id(a.after): a for a in result.probe_arrays if a.after is not None}

    def failed(what: str, err: Exception) -> LaunchFailed:
        message = str(err).strip().splitlines()
        launch_record["failed"] = (f"sbatch of {what} failed: "
                                   f"{message[-1] if message else type(err).__name__}")
        write_manifest(sweep_dir, manifest)
        not_submitted = len(result.submitted) - launch_record["submitted"]
        result.submitted = [r for r in result.submitted if r in result.job_ids]
        return LaunchFailed(
            f"{launch_record['failed']}; {launch_record['submitted']} run(s) submitted, "
            f"{not_submitted} not (they stay `new`: launch again to submit them)")

    def submit_probes(array: ProbeArray, after_id: str | None) -> None:
        submitted_at = time.time()
        try:
            ids = submit_probe_slurm(array, spec.resources, folder, f"{spec.name}-probe",
                                     plan.job_probes(), after_id, code_root)
        except Exception as err:  # noqa: BLE001 - recorded, then reported as a failed launch
            raise failed("the probe array", err) from err
        for run_ids, train_id, job_id in zip(array.run_ids, array.train_ids, ids, strict=True):
            for place, run_id in enumerate(run_ids):
                manifest["runs"][run_id].setdefault("probe_attempts", []).append({
                    "executor": "slurm", "job_id": job_id, "submitted_at": submitted_at,
                    "folder": str(folder), "resource_class": array.resource.name,
                    "after": result.job_ids.get(train_id) if after_id else None,
                    "heartbeat_s": HEARTBEAT_S, "task_index": place,
                })
                result.probe_job_ids[run_id] = job_id
        launch_record["arrays"].append(
            {"kind": "probe", "resource_class": array.resource.name,
             "array_id": ids[0].split("_")[0], "tasks": len(ids), "after": after_id})
        write_manifest(sweep_dir, manifest)

    for array in result.arrays:
        submitted_at = time.time()
        try:
            ids = submit_slurm(array, spec.resources, folder,
                               f"{spec.name}-{array.resource.name}", code_root)
        except Exception as err:  # noqa: BLE001 - recorded, then reported as a failed launch
            raise failed(f"class {array.resource.name}", err) from err
        for run_id, job_id in zip(array.run_ids, ids, strict=True):
            manifest["runs"][run_id]["attempts"].append({
                "executor": "slurm", "job_id": job_id, "submitted_at": submitted_at,
                "folder": str(folder), "resource_class": array.resource.name,
                "heartbeat_s": HEARTBEAT_S,
            })
            result.job_ids[run_id] = job_id
        array_id = ids[0].split("_")[0]
        launch_record["arrays"].append({"kind": "train", "resource_class": array.resource.name,
                                        "array_id": array_id, "tasks": len(ids)})
        launch_record["submitted"] += len(ids)
        _branch_attempts(manifest, result)
        write_manifest(sweep_dir, manifest)
        if id(array) in follows:
            submit_probes(follows[id(array)], array_id)
    for probe_array in result.probe_arrays:
        if probe_array.after is None:
            submit_probes(probe_array, None)


def _run_inline(plan: Plan, result: LaunchResult, manifest: dict, launch_record: dict) -> None:
    """The debug executor: each training run, then its probe task; then the probe tasks of runs
    trained earlier. Blocking, in this process."""
    from aimscale.sweep.job import TrainJob
    from aimscale.sweep.probe_job import ProbeJob

    sweep_dir = result.sweep_dir

    def probe(run_ids: list[str], run_dirs: list[str]) -> None:
        for run_id in run_ids:
            manifest["runs"][run_id].setdefault("probe_attempts", []).append(
                {"executor": "debug", "job_id": None, "submitted_at": time.time()})
        write_manifest(sweep_dir, manifest)
        try:
            ProbeJob(run_dirs, plan.job_probes())()
        except Exception as err:  # noqa: BLE001 - recorded in probe_status.json; go on
            print(f"probes of {', '.join(run_ids)} failed: {err}")

    follows = {id(a.after): a for a in result.probe_arrays if a.after is not None}
    for array in result.arrays:
        probes = follows.get(id(array))
        for i, (run_id, run_dir) in enumerate(zip(array.run_ids, array.run_dirs, strict=True)):
            manifest["runs"][run_id]["attempts"].append(
                {"executor": "debug", "job_id": None, "submitted_at": time.time()}
            )
            _branch_attempts(manifest, result)
            write_manifest(sweep_dir, manifest)
            try:
                TrainJob(run_dir)()
            except Exception as err:  # noqa: BLE001 - recorded in the run dir; go on
                print(f"run {run_id} failed: {type(err).__name__}: {err}")
            launch_record["submitted"] += 1
            if probes is not None and (Path(run_dir) / "summary.json").exists():
                probe(probes.run_ids[i], probes.run_dirs[i])
    for array in result.probe_arrays:
        if array.after is None:
            for run_ids, run_dirs in zip(array.run_ids, array.run_dirs, strict=True):
                probe(run_ids, run_dirs)
    write_manifest(sweep_dir, manifest)


def _branch_attempts(manifest: dict, result: LaunchResult) -> None:
    """A branch is trained in its trunk's task: its latest attempt is the trunk's, marked
    `task_of` (status reads the trunk's task for it)."""
    for trunk_id, branch_ids in result.branches.items():
        attempts = manifest["runs"][trunk_id]["attempts"]
        if not attempts:
            continue
        record = {**attempts[-1], "task_of": trunk_id}
        for branch_id in branch_ids:
            own = manifest["runs"][branch_id].setdefault("attempts", [])
            if not own or own[-1] != record:
                own.append(record)


def _record_provenance(sweep_dir: Path, launch_record: dict, index: int, snapshot: bool) -> str:
    """Put the launch's provenance in its manifest record; with `snapshot`, copy the code to
    `<sweep_dir>/code/<stamp>/` and return it (the jobs import from there), else the live root."""
    from aimscale.provenance import PACKAGE_ROOT, collect, snapshot_code, store_diff

    record = collect()
    code_root = snapshot_code(sweep_dir, record=record) if snapshot else PACKAGE_ROOT
    launch_record["provenance"] = store_diff(record, sweep_dir / "code" / f"launch-{index}.diff")
    launch_record["code_snapshot"] = str(code_root) if snapshot else None
    return str(code_root)
