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
"""

from __future__ import annotations

from typing import Any

from aimscale import config as C
from aimscale.train.branches import branch_config, family_problems, trunk_config

AXIS = "data_size"  # the axis the runs of a family differ in (images seen)


def parse_data_sizes(raw: Any, taken: set[str]) -> tuple[list[int], list[str]]:
    """The sizes (images, ascending) and the problems; `taken`: keys axes or overrides set."""
    if raw is None:
        return [], []
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
    for key in ("train.steps", AXIS):
        if key in taken:
            problems.append(f"data_sizes sets train.steps of every run; drop the {key} axis or "
                            "override, or drop data_sizes")
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
