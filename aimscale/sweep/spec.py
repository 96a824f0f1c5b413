"""Sweep specs: a YAML file naming a base config, the axes to vary, resources and probes.

```yaml
name: width_depth
base: {model: {preset: aim-tiny}, data: {preset: fashion-mnist}, train: {steps: 300}}
overrides: [optim.lr=2e-3]              # applied to the base, before the axes
grid: {model.width: "64,128", model.depth: "range(2,8,2)"}      # cartesian product
zip: {model.width: [64, 128], model.heads: [2, 4]}             # advanced together
                                        # (+ data_sizes: [[..], [..]], one list per entry)
variants: {causal: [model.attention=causal], prefix: []}       # named sets of overrides
size_rules: {optim.lr: "3e-3 * (width / 128) ** -1"}           # values from the model size
seeds: 3                                # replicates: a train.seed axis (aimscale/sweep/ablation.py)
data_sizes: [6400, 12800, 25600]        # images; one wsd run + cooldown branches (data_sizes.py)
compare: {factor: model.attention, baseline: prefix}           # what the report compares
resources: {classes: {...}, rules: [{max_params: 2.0e8, class: small}, {class: large}]}
cost: {gpu_peak_flops: 9.89e14, mfu: 0.4}
probe: [{name: linear, ...}]            # probe jobs, each after its pre-training run
baselines: [pixels, untrained]          # the probes on baselines, once each (sweep/baselines.py)
local: {max_parallel: 2}
```
Axis values use Hydra's sweep syntax (`64,128`, `range(2,8,2)`, `choice(a,b)`) or YAML lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aimscale.config import ConfigError, path_component
from aimscale.sweep.ablation import SEED_KEY, Compare, parse_compare, seed_values
from aimscale.sweep.baselines import parse_baselines
from aimscale.sweep.data_sizes import COLUMN, parse_data_sizes, parse_zip_columns
from aimscale.sweep.resources import ResourcePolicy, parse_resources
from aimscale.sweep.size_rules import SizeRule, parse_size_rules

SPEC_KEYS = (
    "name", "sweep_dir", "base", "overrides", "grid", "zip", "variants", "resources", "cost",
    "probe", "local", "size_rules", "seeds", "compare", "baselines", "data_sizes",
)


@dataclass(frozen=True)
class Axis:
    """One varied config key and its values, as Hydra override values (`model.width=64`)."""

    key: str
    values: tuple[str, ...]


@dataclass
class CostModel:
    """Turns FLOPs into GPU-hours: hours = FLOPs / (gpu_peak_flops * mfu) / 3600."""

    gpu_peak_flops: float = 989e12  # H100 SXM dense bf16
    mfu: float = 0.4


@dataclass
class LocalSettings:
    max_parallel: int = 1


@dataclass
class SweepSpec:
    """A parsed sweep spec (see the module docstring for the YAML form)."""

    name: str
    path: str | None = None
    sweep_dir: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    grid: list[Axis] = field(default_factory=list)
    zips: list[list[Axis]] = field(default_factory=list)
    variants: dict[str, list[str]] = field(default_factory=dict)
    resources: ResourcePolicy = field(default_factory=ResourcePolicy)
    size_rules: list[SizeRule] = field(default_factory=list)  # aimscale/sweep/size_rules.py
    compare: Compare | None = None  # aimscale/sweep/ablation.py
    data_sizes: list[int] = field(default_factory=list)  # images; aimscale/sweep/data_sizes.py
    # per-point sizes: zip group index -> the sizes of each of its entries (a zip column)
    zip_data_sizes: dict[int, list[list[int]]] = field(default_factory=dict)
    cost: CostModel = field(default_factory=CostModel)
    probes: list[dict[str, Any]] = field(default_factory=list)
    baselines: tuple[str, ...] = ()  # aimscale/sweep/baselines.py
    local: LocalSettings = field(default_factory=LocalSettings)
    cli_overrides: list[str] = field(default_factory=list)  # plain ones, applied last
    raw: dict[str, Any] = field(default_factory=dict)  # the YAML as read, for the manifest

    @property
    def axes(self) -> list[Axis]:
        return self.grid + [axis for group in self.zips for axis in group]


def load_spec(path: str | Path, cli_overrides: list[str] = ()) -> SweepSpec:
    """Read a spec file; `cli_overrides` apply on top (a sweep override adds a grid axis)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"sweep spec {str(path)!r} not found; pass a YAML file (see sweeps/)"])
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: not valid YAML: {err}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: a sweep spec must be a mapping, got {type(raw).__name__}"])
    raw.setdefault("name", path.stem)
    return parse_spec(raw, cli_overrides, path=str(path))


def parse_spec(raw: dict[str, Any], cli_overrides: list[str] = (), path: str | None = None):
    """Build a SweepSpec from its YAML mapping; raise ConfigError listing every problem."""
    problems = [
        f"unknown spec key {key!r}; allowed: {', '.join(SPEC_KEYS)}" for key in raw
        if key not in SPEC_KEYS
    ]
    name = str(raw.get("name") or "sweep")
    spec = SweepSpec(name=name, path=path, raw=raw)
    # the name becomes a path component only after sanitising, as axis values in run ids do
    spec.sweep_dir = str(raw.get("sweep_dir") or f"sweep_runs/{path_component(name)}")
    spec.base = dict(raw.get("base") or {})
    spec.overrides = [str(o) for o in raw.get("overrides") or []]
    grid = raw.get("grid") or {}
    if isinstance(grid, dict) and COLUMN in grid:
        problems.append(f"grid.{COLUMN}: data sizes are not a grid axis; give each point its own "
                        f"list as a zip column (zip: {{model.width: [64, 256], {COLUMN}: [[6400, "
                        f"12800], [25600, 51200]]}}), or the same list for every point as the "
                        f"spec key {COLUMN}:")
        grid = {k: v for k, v in grid.items() if k != COLUMN}
    grid, grid_problems = _parse_axes(grid, "grid")
    spec.grid, problems = grid, problems + grid_problems
    zips = raw.get("zip") or []
    size_columns: dict[int, Any] = {}  # zip index -> its data_sizes column, parsed below
    for i, group in enumerate([zips] if isinstance(zips, dict) else zips):
        if isinstance(group, dict) and COLUMN in group:
            size_columns[i] = group[COLUMN]
            group = {k: v for k, v in group.items() if k != COLUMN}
            if not group:
                problems.append(f"zip[{i}]: a {COLUMN} column needs a column of config values "
                                f"beside it (e.g. model.width); for the same sizes at every "
                                f"point use the spec key {COLUMN}:")
        axes, zip_problems = _parse_axes(group, f"zip[{i}]")
        problems += zip_problems
        counts = [(a.key, len(a.values)) for a in axes]
        if isinstance(size_columns.get(i), list):
            counts.append((COLUMN, len(size_columns[i])))
        if len({n for _, n in counts}) > 1:
            problems.append(
                f"zip[{i}]: zipped axes need the same number of values, got "
                + ", ".join(f"{key}: {n}" for key, n in counts)
            )
        spec.zips.append(axes)
    for variant, overrides in (raw.get("variants") or {}).items():
        if overrides is not None and not isinstance(overrides, list):
            problems.append(f"variants.{variant}: expected a list of overrides, got {overrides!r}")
            continue
        spec.variants[str(variant)] = [str(o) for o in overrides or []]
    try:
        spec.resources = parse_resources(raw.get("resources") or {})
    except ConfigError as err:
        problems += err.problems
    cost = raw.get("cost") or {}
    try:
        spec.cost = CostModel(
            gpu_peak_flops=float(cost.get("gpu_peak_flops", CostModel.gpu_peak_flops)),
            mfu=float(cost.get("mfu", CostModel.mfu)),
        )
        if spec.cost.gpu_peak_flops <= 0 or not 0 < spec.cost.mfu <= 1:
            problems.append("cost.gpu_peak_flops must be positive and cost.mfu in (0, 1]")
    except (TypeError, ValueError) as err:
        problems.append(f"cost: {err}")
    probes = raw.get("probe") or []
    if not isinstance(probes, list) or not all(isinstance(p, dict) for p in probes):
        problems.append("probe: expected a list of probe settings (mappings)")
    else:
        spec.probes = [dict(p) for p in probes]
    spec.baselines, baseline_problems = parse_baselines(raw.get("baselines"))
    problems += baseline_problems
    local = raw.get("local") or {}
    max_parallel = local.get("max_parallel", 1)
    if not isinstance(max_parallel, int) or max_parallel < 1:
        problems.append(f"local.max_parallel must be a positive integer, got {max_parallel!r}")
    else:
        spec.local = LocalSettings(max_parallel=max_parallel)
    seeds, seed_problems = seed_values(raw.get("seeds"), [a.key for a in spec.axes])
    problems += seed_problems
    if seeds:
        spec.grid.append(Axis(SEED_KEY, seeds))
    # command-line overrides: sweeps become grid axes, plain ones apply to every run
    cli_axes, cli_plain = [], []
    for override in cli_overrides:
        axes, cli_problems = _parse_axes({override.split("=", 1)[0]: override.split("=", 1)[1]}
                                         if "=" in override else {}, "command line")
        if "=" not in override and not override.startswith("~"):
            problems.append(f"command-line override {override!r} needs the form key=value")
        elif axes and len(axes[0].values) > 1:
            cli_axes += axes
        else:
            cli_plain.append(override)
        problems += cli_problems
    keys = {a.key for a in cli_axes}
    spec.grid = [a for a in spec.grid if a.key not in keys] + cli_axes
    spec.raw = {**raw, "cli_overrides": list(cli_overrides)}
    spec.cli_overrides = cli_plain
    seen: set[str] = set()
    for axis in spec.axes:
        if axis.key in seen:
            problems.append(f"axis {axis.key!r} appears twice (grid and zip?); vary it once")
        seen.add(axis.key)
    taken = seen | {o.split("=", 1)[0].lstrip("+~") for o in cli_plain}  # rules don't hide them
    spec.data_sizes, size_problems = parse_data_sizes(raw.get(COLUMN), taken)
    problems += size_problems
    spec.zip_data_sizes, column_problems = parse_zip_columns(
        size_columns, raw.get(COLUMN) is not None, taken)
    problems += column_problems
    if spec.data_sizes or spec.zip_data_sizes:
        taken = taken | {"train.steps"}  # a size rule may not set it either
    spec.size_rules, rule_problems = parse_size_rules(raw.get("size_rules"), taken)
    problems += rule_problems
    if seeds and SEED_KEY in {o.split("=", 1)[0].lstrip("+~") for o in cli_plain}:
        problems.append(f"seeds: the command line sets {SEED_KEY} for every run; drop it, or "
                        f"give several ({SEED_KEY}=0,1) to replace the spec's seeds")
    varied = {a.key: a.values for a in spec.axes}
    if spec.variants:
        varied["variant"] = tuple(spec.variants)
    spec.compare, compare_problems = parse_compare(raw.get("compare"), varied)
    problems += compare_problems
    if problems:
        raise ConfigError(problems)
    return spec


def _parse_axes(table: Any, where: str) -> tuple[list[Axis], list[str]]:
    """Parse `{key: values}` where values is Hydra sweep text, a YAML list or a scalar."""
    if not isinstance(table, dict):
        return [], [f"{where}: expected a mapping of config key to values, got {table!r}"]
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    axes, problems = [], []
    for key, values in table.items():
        if isinstance(values, list):
            texts = [to_override_value(v) for v in values]
        else:
            text = values if isinstance(values, str) else to_override_value(values)
            try:
                override = parser.parse_overrides([f"{key}={text}"])[0]
                if override.is_sweep_override():
                    texts = list(override.sweep_string_iterator())
                else:
                    texts = [text]
            except (HydraException, ValueError) as err:
                problems.append(f"{where}.{key}: cannot parse {text!r}: {err}")
                continue
        if not texts:
            problems.append(f"{where}.{key}: no values")
            continue
        axes.append(Axis(str(key), tuple(texts)))
    return axes, problems


def to_override_value(value: Any) -> str:
    """Write a YAML value in Hydra's override grammar (`null`, `true`, quoted strings, lists)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(to_override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{to_override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if text.replace("-", "").replace("_", "").replace(".", "").replace("/", "").isalnum():
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
