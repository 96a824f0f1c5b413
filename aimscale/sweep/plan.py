"""Expand a sweep spec into validated runs with their size, cost and resource class.

Composing every grid point from scratch is slow (OmegaConf, ~5-15 ms a point), so the base is
composed once and each distinct override chunk (one axis value, one variant) is applied once to a
copy of it; a run's template is then the base with its chunks' values set on shallow copies of
the dataclasses on their paths, so templates share what they do not change and are never
mutated (`config_tree.py`). `PlannedRun.cfg` is the run's own deep copy of its template, made
on first use: editing one run's config changes no other run. Every run id comes from
`aimscale.config.run_id`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from aimscale import config as C
from aimscale.flops import forward_flops, param_counts
from aimscale.memory import run_memory
from aimscale.sweep.config_tree import Chunk, apply_chunk, copy_tree, with_values
from aimscale.sweep.data_sizes import family, training_task_of
from aimscale.sweep.resources import ResourceClass
from aimscale.sweep.size_rules import size_values
from aimscale.sweep.spec import SweepSpec
from aimscale.train.branches import flops_spent

_plain = C.to_plain  # `launch` imports it by this name


@dataclass
class PlannedRun:
    """One run of a sweep: its config, what it costs and where it goes."""

    run_id: str
    axes: dict[str, str]  # axis key (or "variant") -> value text
    overrides: list[str]  # applied to the spec's base, in order
    template: C.RunConfig = field(repr=False)  # shares parts with other runs: read, never edit
    resource_class: str
    trunk_params: int
    head_params: int
    flops_per_image: int
    head_flops_per_image: int
    images_seen: int
    patches_seen: int
    total_flops: float
    gpu_hours: float
    size_values: dict[str, Any] = field(default_factory=dict)  # computed by the size rules
    memory: dict[str, Any] | None = None  # aimscale.memory estimate per GPU (+ fit, suggestion)
    # a cooldown branch (aimscale/sweep/data_sizes.py): the run id of its trunk, whose task
    # trains it, and the trunk step it starts from; None for every other run
    branch_of: str | None = None
    branch_step: int | None = None
    # FLOPs its own training spends: a branch's cooldown only (the trunk's steps before its
    # branch point are the trunk's); `total_flops` is the equivalent run's. None: total_flops
    flops_spent: float | None = None
    _cfg: C.RunConfig | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def cfg(self) -> C.RunConfig:
        """This run's own config (a copy of its template, made on first use)."""
        if self._cfg is None:
            self._cfg = copy_tree(self.template)
        return self._cfg

    def summary(self) -> dict[str, Any]:
        """The JSON form used by `plan --json` and the manifest (config not included)."""
        return {
            "run_id": self.run_id, "axes": self.axes, "overrides": self.overrides,
            "resource_class": self.resource_class, "trunk_params": self.trunk_params,
            "head_params": self.head_params, "flops_per_image": self.flops_per_image,
            "head_flops_per_image": self.head_flops_per_image, "images_seen": self.images_seen,
            "patches_seen": self.patches_seen, "total_flops": self.total_flops,
            "gpu_hours": self.gpu_hours, "size_values": self.size_values,
            "memory": self.memory, "branch_of": self.branch_of, "branch_step": self.branch_step,
            "flops_spent": self.spent_flops,
        }

    @property
    def spent_flops(self) -> float:
        return self.total_flops if self.flops_spent is None else self.flops_spent


@dataclass
class Plan:
    spec: SweepSpec
    runs: list[PlannedRun] = field(default_factory=list)
    base_cfg: C.RunConfig | None = None
    baselines: list = field(default_factory=list)  # aimscale.sweep.baselines.Baseline

    def job_probes(self) -> list[dict[str, Any]]:
        """What every job of the sweep probes: the spec's probes and the baselines (each run
        only by its owner's job)."""
        from aimscale.sweep.baselines import job_probes

        return job_probes(self.spec.probes, self.baselines)

    def flat_configs(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """(base config as dotted keys, per run id the dotted keys that differ from it): the
        compact form `collect` reads from the manifest instead of parsing every config.yaml."""
        from aimscale.sweep.collect import flatten

        base = flatten(_plain(self.base_cfg)) if self.base_cfg is not None else {}
        diffs = {}
        for run in self.runs:  # the template unless the run's own copy was made (and edited)
            flat = flatten(_plain(run.template if run._cfg is None else run._cfg))
            diffs[run.run_id] = {k: v for k, v in flat.items() if base.get(k, ...) != v}
        return base, diffs

    def by_class(self) -> dict[str, list[PlannedRun]]:
        groups: dict[str, list[PlannedRun]] = {}
        for run in self.runs:
            groups.setdefault(run.resource_class, []).append(run)
        return groups

    def totals(self) -> dict[str, dict[str, float]]:
        """Runs, FLOPs spent and GPU-hours per resource class and overall ("all"): a trunk's
        steps are counted once, a branch's cooldown only."""
        out = {}
        for name, runs in [*self.by_class().items(), ("all", self.runs)]:
            resource = self.spec.resources.classes.get(name)
            gpus = resource.nodes * resource.gpus_per_node if resource else None
            out[name] = {
                "runs": len(runs),
                "total_flops": float(sum(r.spent_flops for r in runs)),  # a trunk once
                "gpu_hours": float(sum(r.gpu_hours for r in runs)),
                **({"gpus_per_run": gpus} if gpus is not None else {}),
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.spec.name, "sweep_dir": self.spec.sweep_dir,
            "cost": dataclasses.asdict(self.spec.cost),
            "resource_classes": {
                k: v.to_dict() for k, v in self.spec.resources.classes.items()
            },
            "runs": [run.summary() for run in self.runs],
            "totals": self.totals(),
            "baselines": [{**b.info(), "dir": b.dir} for b in self.baselines],
            "probe_resource_class": self.probe_class_summary(),
        }

    def probe_class_summary(self) -> dict[str, Any] | None:
        """The probe tasks' resource class (None without probes), whether the spec gave it
        (`resources.classes.probe`) or it is the default, and how many tasks it gets."""
        if not self.spec.probes:
            return None
        policy = self.spec.resources
        return {**policy.probe_class.to_dict(), "given": policy.probe is not None,
                "tasks": len({training_task_of(run) for run in self.runs})}


def build_plan(spec: SweepSpec) -> Plan:
    """Expand and validate every point; raise ConfigError listing all problems at once."""
    base_cfg = _compose_base(spec)
    base_tree = OmegaConf.structured(base_cfg)
    OmegaConf.set_struct(base_tree, True)
    chunk_cache: dict[tuple[str, ...], Chunk] = {}

    def chunk(overrides: tuple[str, ...]) -> Chunk:
        if overrides not in chunk_cache:
            chunk_cache[overrides] = apply_chunk(base_tree, overrides)
        return chunk_cache[overrides]

    # the dimensions of the product: each value is (axes shown, overrides, data sizes or None)
    dims: list[list[tuple[dict[str, str], tuple[str, ...], list[int] | None]]] = []
    for axis in spec.grid:
        dims.append([({axis.key: v}, (f"{axis.key}={v}",), None) for v in axis.values])
    for g, group in enumerate(spec.zips):
        sizes = spec.zip_data_sizes.get(g)  # a zip column: each entry's own data sizes
        dims.append([
            ({a.key: a.values[i] for a in group}, tuple(f"{a.key}={a.values[i]}" for a in group),
             sizes[i] if sizes else None)
            for i in range(len(group[0].values))
        ])
    if spec.variants:
        dims.append([({"variant": name}, tuple(o), None) for name, o in spec.variants.items()])
    cli = tuple(spec.cli_overrides)

    probes, problems = _probe_configs(spec)
    reported: set[int] = set()
    runs: list[PlannedRun] = []
    seen_ids: dict[str, dict[str, str]] = {}
    size_cache: dict[tuple, tuple[int, int, int, int]] = {}
    memory_cache: dict[tuple, dict] = {}
    probe_cache: dict[tuple, list[str]] = {}
    for point in itertools.product(*dims):
        axes: dict[str, str] = {}
        chunks, overrides = [], []
        data_sizes = spec.data_sizes  # the spec's, or this point's zip entry's
        for shown, ovr, sizes in point:
            data_sizes = sizes or data_sizes
            axes.update(shown)
            chunks.append(chunk(ovr))
            overrides += ovr
        if cli:
            chunks.append(chunk(cli))
            overrides += cli
        label = " ".join(f"{k}={v}" for k, v in axes.items()) or "base"
        bad = False
        for (shown, *_), ch in zip(point, chunks, strict=False):
            if ch.problems:
                bad = True
                if id(ch) not in reported:  # a bad axis value is reported once, not per point
                    reported.add(id(ch))
                    tag = " ".join(f"{k}={v}" for k, v in shown.items())
                    problems += [f"[{tag}] {p}" for p in ch.problems]
        if cli and chunks[-1].problems and id(chunks[-1]) not in reported:
            reported.add(id(chunks[-1]))
            problems += [f"[command line] {p}" for p in chunks[-1].problems]
        bad = bad or bool(cli and chunks[-1].problems)
        # the values that did apply are still checked, so every problem shows in one go
        cfg = with_values(base_cfg, [s for ch in chunks for s in ch.sets])
        sized, point_problems = size_values(spec.size_rules, cfg)
        if sized:
            cfg = with_values(cfg, [(tuple(k.split(".")), v) for k, v in sized.items()])
        point_problems += _validate(cfg)
        if bad:
            problems += [f"[{label}] {p}" for p in point_problems]
            continue
        model_key = tuple(vars(cfg.model).values())
        if model_key not in size_cache:
            counts, fwd = param_counts(cfg.model), forward_flops(cfg.model)
            size_cache[model_key] = (counts.trunk, counts.head, 3 * fwd.total, 3 * fwd.head)
        trunk, head, fpi, head_fpi = size_cache[model_key]
        try:
            resource = spec.resources.assign(trunk + head)
        except C.ConfigError as err:
            point_problems += err.problems
            resource = None
        if resource is not None:
            point_problems += _fit_problems(cfg, resource)
        members: list[tuple[C.RunConfig, dict[str, str], str | None]] = [(cfg, axes, None)]
        if data_sizes and not point_problems:  # a trunk and its cooldown branches
            members, family_problems = family(cfg, axes, data_sizes)
            point_problems += family_problems
        for member, *_ in members if data_sizes else []:
            point_problems += _validate(member)
        if probes:
            for member, *_ in members:
                point_problems += _run_probe_problems(probes, member, probe_cache)
        if point_problems:
            problems += [f"[{label}] {p}" for p in dict.fromkeys(point_problems)]
            continue
        memory = run_memory(cfg, resource, memory_cache)
        for member, member_axes, branch_of in members:
            run_id = C.run_id(member, member_axes)
            if run_id in seen_ids:
                problems.append(f"[{label}] gives the same run id {run_id} as "
                                f"{seen_ids[run_id]}; remove the duplicate axis value")
                continue
            seen_ids[run_id] = member_axes
            member.sweep_name = spec.name
            member.run_dir = f"{spec.sweep_dir}/{run_id}"
            images = member.train.steps * member.train.batch_size
            spent = flops_spent(member, fpi)  # a branch: its cooldown only
            runs.append(PlannedRun(
                run_id=run_id, axes=member_axes, overrides=list(overrides), template=member,
                resource_class=resource.name, trunk_params=trunk, head_params=head,
                flops_per_image=fpi, head_flops_per_image=head_fpi, images_seen=images,
                patches_seen=images * member.model.num_patches, total_flops=float(fpi) * images,
                gpu_hours=spent / (spec.cost.gpu_peak_flops * spec.cost.mfu) / 3600.0,
                size_values=sized, memory=memory, branch_of=branch_of,
                branch_step=member.branch.step if branch_of else None, flops_spent=spent,
            ))
    from aimscale.sweep.baselines import plan_baselines

    baselines, baseline_problems = plan_baselines(spec.baselines, spec.probes, runs,
                                                  spec.sweep_dir)
    problems += baseline_problems
    if problems:
        raise C.ConfigError(problems)
    return Plan(spec=spec, runs=runs, base_cfg=copy_tree(base_cfg), baselines=baselines)


def _probe_configs(spec: SweepSpec) -> tuple[list, list[str]]:
    """The `probe:` entries as ProbeConfigs, and their problems, before anything is submitted."""
    if not spec.probes:
        return [], []
    from aimscale.probe.config import ProbeError, probe_config

    configs, problems = [], []
    for i, probe in enumerate(spec.probes):
        try:
            configs.append(probe_config(dict(probe)))
        except (ProbeError, ValueError) as err:
            problems.append(f"[probe[{i}]] {err}")
    return configs, problems


def _run_probe_problems(probes: list, cfg: C.RunConfig, cache: dict[tuple, list[str]]):
    """What would stop the probes on this run once it is trained (blocks outside its trunk, a
    checkpoint step it does not keep); cached by the fields that decide it."""
    train = cfg.train
    key = (cfg.model.depth, train.steps, train.checkpoint_every, train.keep_checkpoints,
           tuple(train.keep_fractions))
    if key not in cache:
        cache[key] = [f"probe[{i}] ({probe.name or probe.kind}, blocks={probe.blocks}): {p}"
                      for i, probe in enumerate(probes) for p in probe.run_problems(cfg)]
    return cache[key]


def _compose_base(spec: SweepSpec) -> C.RunConfig:
    try:
        return C.compose(spec.overrides, base=spec.base)
    except C.ConfigError as err:
        raise C.ConfigError([f"[base] {p}" for p in err.problems]) from None


def _validate(cfg: C.RunConfig) -> list[str]:
    try:
        C.validate(cfg)
    except C.ConfigError as err:
        return err.problems
    return []


def _fit_problems(cfg: C.RunConfig, resource: ResourceClass) -> list[str]:
    """Does the run split over the class's ranks?"""
    world = resource.world_size
    if cfg.train.batch_size % world:
        return [f"train.batch_size={cfg.train.batch_size} does not split over the {world} ranks "
                f"of resource class {resource.name!r}; use a multiple of {world}"]
    return []

