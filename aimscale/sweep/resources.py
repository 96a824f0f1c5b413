"""Resource classes: which SLURM request a run gets, chosen by model size.

```yaml
resources:
  classes:
    small: {gpus_per_node: 1, nodes: 1, time_min: 240, partition: gpu, mem_gb: 64, cpus_per_task: 8,
            gpu: A100-40GB}          # a known GPU (aimscale.gpus): its memory and peak FLOP/s
    large: {gpus_per_node: 8, nodes: 4, time_min: 2880, partition: gpu, account: my-lab,
            gpu_memory_gb: 80}       # or only the memory per GPU, for `plan`'s memory check
  rules:            # first match wins; a rule without max_params matches everything
    - {max_params: 2.0e8, class: small}
    - {class: large}
  signal_delay_s: 120      # USR2 this long before the time limit: checkpoint and requeue
  array_parallelism: 64    # at most this many tasks of one array run at once
  max_num_timeout: 20      # requeues allowed after time-outs
```
Without a `resources` section every run gets the class `default` (1 CPU task, no GPU).

The class named `probe` is the request of the probe tasks (the spec's probes run as their own
job array after training, one task per training task); rules cannot assign it to training.
Without one, `default_probe_class` derives it from the training classes: one GPU (or one CPU
task) of the smallest class, on its partition and account, with that GPU's share of the memory,
for 120 minutes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from aimscale.config import ConfigError
from aimscale.gpus import gpu_by_name, known_names


@dataclass(frozen=True)
class ResourceClass:
    """One SLURM resource request, shared by every run of an array."""

    name: str = "default"
    gpus_per_node: int = 0
    nodes: int = 1
    time_min: float = 60  # SLURM gets whole minutes (rounded up); the local executor takes less
    tasks_per_node: int | None = None  # None: one per GPU, or 1 without GPUs
    partition: str | None = None
    mem_gb: float | None = 4
    cpus_per_task: int = 1
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpu: str | None = None  # a GPU of aimscale.gpus (e.g. H100-SXM): memory and peak for `plan`
    gpu_memory_gb: float | None = None  # memory per GPU; overrides the `gpu` table's

    @property
    def gpu_memory(self) -> float | None:
        """GB per GPU for the memory check, or None when unknown (or a CPU-only class)."""
        if self.gpus_per_node <= 0:
            return None
        if self.gpu_memory_gb is not None:
            return self.gpu_memory_gb
        spec = gpu_by_name(self.gpu) if self.gpu else None
        return spec.memory_gb if spec else None

    @property
    def ranks_per_node(self) -> int:
        """One task (DDP rank) per GPU; one on CPU-only classes unless tasks_per_node says."""
        return self.tasks_per_node or max(self.gpus_per_node, 1)

    @property
    def world_size(self) -> int:
        return self.nodes * self.ranks_per_node

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResourceRule:
    resource_class: str
    max_params: float | None = None  # trunk + head parameters; None matches any size


@dataclass
class ResourcePolicy:
    classes: dict[str, ResourceClass] = field(
        default_factory=lambda: {"default": ResourceClass()}
    )
    rules: list[ResourceRule] = field(default_factory=lambda: [ResourceRule("default")])
    signal_delay_s: int = 60
    array_parallelism: int = 256
    max_num_timeout: int = 20
    probe: ResourceClass | None = None  # `classes.probe` as given; see `probe_class`

    @property
    def probe_class(self) -> ResourceClass:
        """The probe tasks' request: `classes.probe`, else `default_probe_class`."""
        return self.probe or default_probe_class(self.classes)

    def assign(self, num_params: float) -> ResourceClass:
        """The class of the first rule whose max_params bounds `num_params`."""
        for rule in self.rules:
            if rule.max_params is None or num_params <= rule.max_params:
                return self.classes[rule.resource_class]
        raise ConfigError(
            [f"no resource rule matches a model with {num_params:.3g} parameters; add a last "
             "rule without max_params (e.g. `- {class: large}`)"]
        )


CLASS_FIELDS = {f.name for f in fields(ResourceClass)} - {"name"}
PROBE_CLASS = "probe"
PROBE_TIME_MIN = 120.0


def default_probe_class(classes: dict[str, ResourceClass]) -> ResourceClass:
    """One GPU (one CPU task without GPUs) of the training class with the fewest GPUs per node,
    on its partition/account/qos/constraint, with its memory per GPU, for PROBE_TIME_MIN."""
    base = min(classes.values(), key=lambda c: (c.gpus_per_node, c.nodes))
    gpus = min(base.gpus_per_node, 1)
    mem = base.mem_gb / base.gpus_per_node if base.mem_gb and base.gpus_per_node > 1 else (
        base.mem_gb)
    return replace(base, name=PROBE_CLASS, nodes=1, gpus_per_node=gpus, tasks_per_node=1,
                   mem_gb=mem, time_min=PROBE_TIME_MIN)


def parse_resources(raw: dict[str, Any]) -> ResourcePolicy:
    """Validate a `resources` section (all problems at once)."""
    if not raw:
        return ResourcePolicy()
    problems = []
    unknown = set(raw) - {"classes", "rules", "signal_delay_s", "array_parallelism",
                          "max_num_timeout"}
    problems += [f"resources: unknown key {key!r}" for key in sorted(unknown)]
    classes = {}
    for name, settings in (raw.get("classes") or {}).items():
        settings = dict(settings or {})
        bad = set(settings) - CLASS_FIELDS
        if bad:
            problems.append(
                f"resources.classes.{name}: unknown key(s) {sorted(bad)}; allowed: "
                f"{sorted(CLASS_FIELDS)}"
            )
            continue
        try:
            for key in ("gpus_per_node", "nodes", "cpus_per_task", "tasks_per_node"):
                if settings.get(key) is not None:
                    settings[key] = int(settings[key])
            if "time_min" in settings:
                settings["time_min"] = float(settings["time_min"])
            for key in ("mem_gb", "gpu_memory_gb"):
                if settings.get(key) is not None:
                    settings[key] = float(settings[key])
        except (TypeError, ValueError) as err:
            problems.append(f"resources.classes.{name}: {err}")
            continue
        resource_class = ResourceClass(name=str(name), **settings)
        rc = resource_class
        if min(rc.nodes, rc.cpus_per_task, rc.ranks_per_node) < 1 or rc.time_min <= 0:
            problems.append(f"resources.classes.{name}: nodes, cpus_per_task, tasks_per_node must "
                            "be >= 1 and time_min > 0")
        if rc.gpus_per_node < 0:
            problems.append(f"resources.classes.{name}: gpus_per_node must be >= 0")
        if rc.gpu_memory_gb is not None and rc.gpu_memory_gb <= 0:
            problems.append(f"resources.classes.{name}: gpu_memory_gb must be positive")
        if rc.gpu is not None:
            if gpu_by_name(str(rc.gpu)) is None:
                problems.append(f"resources.classes.{name}: unknown gpu {rc.gpu!r}; use one of "
                                f"{known_names()} or give gpu_memory_gb instead")
        classes[str(name)] = resource_class
    probe = classes.pop(PROBE_CLASS, None)  # the probe tasks' class, not a training one
    if not classes:
        classes = {"default": ResourceClass()}
    rules = []
    for i, rule in enumerate(raw.get("rules") or [{"class": next(iter(classes))}]):
        if not isinstance(rule, dict) or "class" not in rule:
            problems.append(f"resources.rules[{i}]: expected {{max_params: N, class: NAME}}")
            continue
        if rule["class"] == PROBE_CLASS:
            problems.append(f"resources.rules[{i}]: class {PROBE_CLASS!r} is reserved for the "
                            "probe tasks; give the training runs another class")
        elif rule["class"] not in classes:
            problems.append(
                f"resources.rules[{i}]: class {rule['class']!r} is not defined in "
                f"resources.classes ({sorted(classes)})"
            )
        max_params = rule.get("max_params")
        try:
            max_params = None if max_params is None else float(max_params)  # YAML reads 2e8 as text
        except (TypeError, ValueError):
            problems.append(f"resources.rules[{i}].max_params={max_params!r} is not a number")
            continue
        rules.append(ResourceRule(str(rule["class"]), max_params))
    policy = ResourcePolicy(classes=classes, rules=rules, probe=probe)
    for key in ("signal_delay_s", "array_parallelism", "max_num_timeout"):
        if key in raw:
            try:
                setattr(policy, key, int(raw[key]))
            except (TypeError, ValueError):
                problems.append(f"resources.{key}={raw[key]!r} is not an integer")
    if problems:
        raise ConfigError(problems)
    return policy


def time_limit_warnings(policy: ResourcePolicy, runs) -> list[str]:
    """One sentence per resource class whose time limit leaves a job less than one checkpoint
    interval before SLURM's stop signal: limit < `signal_delay_s` + the checkpoint interval
    (estimated from the plan's cost model; `runs` are planned runs). Such jobs are signalled
    soon after they start and may requeue forever without finishing an interval."""
    worst: dict[str, float] = {}  # class -> longest estimated checkpoint interval (s)
    for run in runs:
        resource = policy.classes[run.resource_class]
        train = run.cfg.train
        wall_s = run.gpu_hours * 3600.0 / max(resource.nodes * resource.gpus_per_node, 1)
        interval = wall_s * min(train.checkpoint_every, train.steps) / max(train.steps, 1)
        worst[run.resource_class] = max(worst.get(run.resource_class, 0.0), interval)
    warnings = []
    for name, interval in worst.items():
        limit_s = policy.classes[name].time_min * 60.0
        if limit_s < policy.signal_delay_s + interval:
            warnings.append(
                f"resources.classes.{name}: time_min={policy.classes[name].time_min:g} "
                f"({limit_s:.0f} s) is shorter than signal_delay_s={policy.signal_delay_s} plus "
                f"one checkpoint interval (~{interval:.0f} s estimated): SLURM signals each job "
                f"{max(limit_s - policy.signal_delay_s, 0):.0f} s after it starts, before it "
                "can save a checkpoint interval's progress; raise time_min or lower "
                "signal_delay_s / train.checkpoint_every")
    return warnings
