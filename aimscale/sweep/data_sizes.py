"""`data_sizes:` in a sweep spec: several data sizes of one model from one run and its branches.

```yaml
base: {optim: {schedule: wsd, cooldown_fraction: 0.2}, train: {batch_size: 64}}
data_sizes: [6400, 12800, 25600]     # images seen, each a multiple of train.batch_size
```
For every point of the grid, the largest size is the *trunk*: an ordinary wsd run of that many
images that keeps its checkpoints at the branch points. Each smaller size is a *cooldown
branch* of it: a result with its own run id and directory, which starts from the trunk's
checkpoint at its own cooldown start and trains only the cooldown (`aimscale.train.branches`).
Runs get a `data_size` axis (the images seen). The plan counts the trunk's FLOPs once and each
branch's cooldown only; a branch is trained inside its trunk's task.

Per-point sizes (a staircase design: small models long, large ones near their compute-optimal
point) are a zip column, one list per zip entry, each parsed like the global list:
```yaml
zip: {model.width: [64, 256], data_sizes: [[6400, 12800, 25600], [25600, 51200]]}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aimscale import config as C
from aimscale.train.branches import branch_config, family_problems, trunk_config

AXIS = "data_size"  # the axis the runs of a family differ in (images seen)
COLUMN = "data_sizes"  # the spec key, and the zip column of per-point sizes


def parse_data_sizes(raw: Any, taken: set[str]) -> tuple[list[int], list[str]]:
    """The sizes (images, ascending) and the problems; `taken`: keys axes or overrides set."""
    if raw is None:
        return [], []
    sizes, problems = _size_list(raw)
    if isinstance(raw, list) and raw:
        problems += _taken_problems(taken)
    return sizes, problems


def parse_zip_columns(columns: dict[int, Any], spec_key: bool, taken: set[str]):
    """({zip index: [sizes of each entry]}, problems) of the zips' `data_sizes` columns (zip
    index -> the column as read); `spec_key`: the spec also has a global `data_sizes:`."""
    where = " and ".join(f"zip[{i}]" for i in columns)
    if columns and spec_key:
        return {}, [f"{COLUMN} is given both as a spec key and as a column of {where}; give "
                    "every point the same sizes with the spec key, or each its own in the zip "
                    "column, not both"]
    if len(columns) > 1:
        return {}, [f"{COLUMN} is a column of {where}; a point has one list of sizes: give the "
                    f"{COLUMN} column in one zip"]
    parsed, problems = {}, []
    for i, column in columns.items():
        parsed[i], found = parse_zip_column(column, f"zip[{i}].{COLUMN}", taken)
        problems += found
    return parsed, problems


def parse_zip_column(column: Any, where: str, taken: set[str]):
    """([sizes of each zip entry], problems) of a zip's `data_sizes` column (at `where`, e.g.
    `zip[0].data_sizes`): one list per entry, each parsed like the global `data_sizes:`."""
    if not isinstance(column, list) or not any(isinstance(entry, list) for entry in column):
        return [], [f"{where}: expected one list of data sizes per zip entry (e.g. [[6400, "
                    f"12800], [12800, 25600]]), got {column!r}; for the same sizes at every point "
                    f"use the spec key {COLUMN}: instead"]
    per_entry, problems = [], []
    for j, entry in enumerate(column):
        sizes, found = _size_list(entry)
        per_entry.append(sizes)
        problems += [p.replace(COLUMN, f"{where}[{j}]", 1) for p in found]
    return per_entry, problems + _taken_problems(taken)


def _taken_problems(taken: set[str]) -> list[str]:
    return [f"data_sizes sets train.steps of every run; drop the {key} axis or override, or drop "
            "data_sizes" for key in ("train.steps", AXIS) if key in taken]


def _size_list(raw: Any) -> tuple[list[int], list[str]]:
    """One list of sizes: (the sizes, ascending, and the problems, each `data_sizes: ...`)."""
    if not isinstance(raw, list) or not raw:
        return [], [f"data_sizes: expected a list of data sizes in images seen (e.g. [6400, "
                    f"12800]), got {raw!r}"]
    sizes, problems = [], []
    for value in raw:
        whole = isinstance(value, int | float) and not isinstance(value, bool) and (
            float(value).is_integer())
        if not whole or value <= 0:
            problems.append(f"data_sizes: {value!r} is not a positive whole number of images")
        else:
            sizes.append(int(value))
    if len(set(sizes)) != len(sizes):
        problems.append(f"data_sizes: {sorted(sizes)} lists a size twice; give each once")
    return sorted(set(sizes)), problems


def family(cfg: C.RunConfig, axes: dict[str, str], sizes: list[int]):
    """([(config, axes, trunk run id or None)], problems): the trunk first, then its branches
    from the smallest size up (the order the trunk's job trains them)."""
    batch = cfg.train.batch_size
    uneven = [d for d in sizes if d % batch]
    if uneven:
        return [], [
            f"data_sizes: {d} images is not a whole number of steps at train.batch_size={batch}; "
            f"use a multiple of {batch} (e.g. {d // batch * batch or batch} or "
            f"{(d // batch + 1) * batch})" for d in uneven]
    steps = [d // batch for d in sizes]
    problems = family_problems(cfg, steps)
    if problems:
        return [], [f"data_sizes: {p}" for p in problems]
    trunk = trunk_config(cfg, steps)
    trunk_axes = {**axes, AXIS: str(sizes[-1])}
    trunk_id = C.run_id(trunk, trunk_axes)
    members: list[tuple[C.RunConfig, dict[str, str], str | None]] = [(trunk, trunk_axes, None)]
    for size, n in zip(sizes[:-1], steps[:-1], strict=True):
        branch = branch_config(cfg, trunk_id, steps[-1], n)
        members.append((branch, {**axes, AXIS: str(size)}, trunk_id))
    return members, []


def training_task_of(run: Any) -> str:
    """The run id of the training task whose success a probe of result run `run` waits for (a
    PlannedRun, or a manifest entry / plan summary with `run_id`).

    A cooldown branch (`branch_of: <run_id>`, trained inside its trunk's task) returns its
    trunk's id, so its probes join that task's probe task; any other run is its own task."""
    if isinstance(run, Mapping):
        return run.get("branch_of") or run["run_id"]
    return getattr(run, "branch_of", None) or run.run_id
