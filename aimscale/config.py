"""The run configuration: one typed tree, composed from presets and Hydra-style overrides.

`compose(["model=aim-600m", "model.depth=12"])` starts from the dataclass defaults, merges the
named presets (`aimscale/conf/<group>/<name>.yaml`) and applies dotted overrides with Hydra's
override grammar, in struct mode, so a mistyped key is an error and not a new field. `validate`
collects every problem of the resolved tree at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aimscale.data.config import DataConfig
from aimscale.errors import UserError
from aimscale.model.config import ModelConfig
from aimscale.train.config import BranchConfig, LoggingConfig, OptimConfig, TrainConfig

CONF_DIR = Path(__file__).parent / "conf"
GROUPS = ("model", "data")
# keys that never change results: excluded from the run hash
NON_RESULT_KEYS = ("logging", "run_dir", "sweep_name", "train.device", "data.num_workers",
                   "train.peak_flops")


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    branch: BranchConfig = field(default_factory=BranchConfig)  # a cooldown branch, or not
    run_dir: str | None = None  # None: runs/<run_id>
    sweep_name: str = ""


class ConfigError(UserError, ValueError):
    """A configuration with one or more problems; `problems` lists them all."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


def preset_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@cache
def _load_preset(group: str, name: str) -> DictConfig:
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError([f"unknown {group} preset {name!r}; choose one of {preset_names(group)}"])
    return OmegaConf.load(path)


@lru_cache(maxsize=1)
def _schema() -> DictConfig:
    return OmegaConf.structured(RunConfig)


def _parse_overrides(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as err:
        raise ConfigError([f"cannot parse override: {err}"]) from None


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """Apply overrides to `cfg` in place; return the problems (unknown keys, bad values).

    `group=name` merges a preset; `key=value` sets a value; `~key` resets it to its default.
    Sweep syntax (`a,b`, `range(...)`) is not allowed here: expand it with a sweep spec.
    """
    problems = []
    for override in _parse_overrides(overrides):
        key = override.key_or_group
        if override.is_sweep_override():
            problems.append(
                f"override {override.input_line!r} is a sweep; use `aimscale plan/launch` with a "
                "sweep spec, or pick one value"
            )
            continue
        try:
            if override.is_delete():
                OmegaConf.update(cfg, key, OmegaConf.select(_schema(), key), merge=False)
            elif key in GROUPS and isinstance(override.value(), str):
                preset = _load_preset(key, override.value())
                cfg[key] = OmegaConf.merge(cfg[key], preset)
            else:
                value = override.value()
                OmegaConf.update(cfg, key, value, merge=True)
        except ConfigError as err:
            problems.extend(err.problems)
        except OmegaConfBaseException as err:
            reason = str(err).splitlines()[0]
            problems.append(f"override {override.input_line!r} failed: {reason}")
    return problems


def compose(overrides: list[str] = (), base: dict | DictConfig | None = None) -> RunConfig:
    """Resolve defaults + `base` (e.g. a sweep's base section) + overrides into a valid RunConfig.

    Raises ConfigError listing every problem found.
    """
    cfg = _schema().copy()
    OmegaConf.set_struct(cfg, True)
    problems: list[str] = []
    if base:
        base_overrides = []
        base = OmegaConf.create(base) if not isinstance(base, DictConfig) else base
        for group in GROUPS:
            preset = OmegaConf.select(base, f"{group}.preset", default=None)
            if preset is not None:
                base_overrides.append(f"{group}={preset}")
        problems += apply_overrides(cfg, base_overrides)
        plain = OmegaConf.to_container(base)
        for group in GROUPS:
            if isinstance(plain.get(group), dict):
                plain[group].pop("preset", None)
        try:
            cfg.merge_with(plain)
        except OmegaConfBaseException as err:
            problems.append(f"base config: {str(err).splitlines()[0]}")
    problems += apply_overrides(cfg, list(overrides))
    run_cfg: RunConfig = OmegaConf.to_object(cfg)
    try:
        validate(run_cfg)
    except ConfigError as err:
        problems += err.problems
    if problems:
        raise ConfigError(problems)
    return run_cfg


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError with every problem of the tree, or return None."""
    problems = cfg.model.problems() + cfg.data.problems() + cfg.optim.problems()
    problems += cfg.train.problems() + cfg.logging.problems() + _branch_problems(cfg)
    micro = cfg.train.micro_batch_size
    if micro is not None and micro > 0 and cfg.train.batch_size % micro:
        problems.append(
            f"train.batch_size={cfg.train.batch_size} is not a multiple of "
            f"train.micro_batch_size={micro}"
        )
    problems += _eval_problems(cfg)
    if problems:
        raise ConfigError(problems)


def _branch_problems(cfg: RunConfig) -> list[str]:
    """A cooldown branch: a wsd run whose branch point lies inside its own steps."""
    branch = cfg.branch
    found = branch.problems()
    if not branch.active:
        return found
    if cfg.optim.schedule != "wsd":
        found.append(f"branch.trunk is set but optim.schedule={cfg.optim.schedule!r}; cooldown "
                     "branches need optim.schedule=wsd")
    if not branch.step < cfg.train.steps:
        found.append(f"branch.step={branch.step} must be below train.steps={cfg.train.steps} "
                     "(the branch trains the steps after it)")
    return found


def _eval_problems(cfg: RunConfig) -> list[str]:
    """Can every source's held-out set (data.val_images each) supply its share of the
    train.eval_images validation images (split by source weight, as `build_val_images` does)?"""
    weights = [s.weight for s in cfg.data.sources]
    if cfg.train.eval_images <= 0 or not weights or not all(w > 0 for w in weights):
        return []
    total = cfg.train.eval_images
    if len(weights) == 1:
        shares = [total]
    else:
        from aimscale.data.subsets import exact_share

        shares = exact_share(total, weights)
    if max(shares) <= cfg.data.val_images:
        return []
    per_source = "" if len(shares) == 1 else f" ({max(shares)} from one source)"
    return [
        f"train.eval_images={cfg.train.eval_images}{per_source} exceeds data.val_images="
        f"{cfg.data.val_images}, the images held out per source; lower train.eval_images or raise "
        "data.val_images"
    ]


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def to_yaml(cfg: RunConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml(path: str | Path) -> RunConfig:
    """Load a run's config.yaml back, validated against the current schema; ConfigError naming
    the file if it cannot be read, is not YAML, or holds unknown keys or bad values."""
    import yaml

    cfg = _schema().copy()
    OmegaConf.set_struct(cfg, True)
    try:
        cfg.merge_with(OmegaConf.load(path))
        run_cfg = OmegaConf.to_object(cfg)
    except (OSError, yaml.YAMLError, OmegaConfBaseException) as err:
        reason = " ".join(str(err).split("\n")[0].split())
        raise ConfigError([
            f"{path}: {reason}; the file was edited or written by another version of aimscale: "
            "restore it, or run again in a new run_dir"
        ]) from None
    try:
        validate(run_cfg)
    except ConfigError as err:
        raise ConfigError([f"{path}: {p}" for p in err.problems]) from None
    return run_cfg


_ATOMS = frozenset({str, int, float, bool, type(None)})


@cache
def _float_fields(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(fields typed float, fields typed list of floats) of a config dataclass."""
    types = [(f.name, str(f.type)) for f in dataclasses.fields(cls)]
    return (tuple(name for name, text in types if text.startswith("float")),
            tuple(name for name, text in types if text.startswith("list[float]")))


def to_plain(value: Any) -> Any:
    """A config tree as plain dicts, lists and scalars: what `to_dict` gives, ~100x faster.

    Like OmegaConf, it stores an int held by a float field as a float, so a hand-built config
    (`OptimConfig(lr=1)`) has the same canonical form, and hash, as the composed one; -0.0 is
    written as 0.0 (the same run).
    """
    if hasattr(value, "__dataclass_fields__"):
        out = dict(vars(value))
        floats, float_lists = _float_fields(type(value))
        for key in floats:
            if type(out[key]) is int or out[key] == 0.0:
                out[key] = float(out[key]) + 0.0  # int -> float, -0.0 -> 0.0
        for key, item in out.items():
            if type(item) not in _ATOMS:
                out[key] = to_plain(item)
        for key in float_lists:
            if out[key] is not None:
                out[key] = [float(v) + 0.0 if type(v) is int or v == 0.0 else v
                            for v in out[key]]
        return out
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def _omitted(cfg: RunConfig) -> tuple[str, ...]:
    """Sections left out of the hash: the result keys, less `branch` when the run is not a
    branch (so adding that section did not change the id of any ordinary run)."""
    return NON_RESULT_KEYS if cfg.branch.active else (*NON_RESULT_KEYS, "branch")


def result_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config without the keys that do not change results (logging, paths, device; the
    default `branch` section)."""
    tree = to_plain(cfg)
    if not cfg.branch.active:
        tree.pop("branch", None)
    for key in NON_RESULT_KEYS:
        parent, _, leaf = key.rpartition(".")
        node = tree
        for part in parent.split(".") if parent else []:
            node = node[part]
        node.pop(leaf, None)
    return tree


def canonical_json(cfg: RunConfig) -> str:
    """`json.dumps(result_dict(cfg), sort_keys=True, separators=(",", ":"))`, built section by
    section with each section's text cached by its values: the runs of a sweep share most
    sections, so planning 100k runs does not encode the same model section 100k times."""
    parts, omitted = [], _omitted(cfg)
    for name in sorted(vars(cfg)):
        if name not in omitted:
            parts.append(f"{json.dumps(name)}:{_section_json(name, getattr(cfg, name))}")
    return "{" + ",".join(parts) + "}"


_SECTION_JSON: dict[tuple, str] = {}  # (section name, its values) -> its canonical JSON


def _section_json(name: str, section: Any) -> str:
    key = (name, _frozen(section))
    text = _SECTION_JSON.get(key)
    if text is None:
        tree = to_plain(section)
        if isinstance(tree, dict):
            for excluded in NON_RESULT_KEYS:
                parent, _, leaf = excluded.rpartition(".")
                if parent == name:
                    tree.pop(leaf, None)
        text = json.dumps(tree, sort_keys=True, separators=(",", ":"))
        if len(_SECTION_JSON) > 100_000:
            _SECTION_JSON.clear()
        _SECTION_JSON[key] = text
    return text


def _frozen(value: Any) -> Any:
    """A hashable form of a config value (dataclasses, lists, dicts, scalars), with the type of
    every scalar so that 1, 1.0 and True stay apart (-0.0 and 0.0 share one: `to_plain` writes
    both as 0.0)."""
    if hasattr(value, "__dataclass_fields__"):
        fields = vars(value)
        names, values = tuple(fields), tuple(fields.values())
    elif isinstance(value, dict):
        names, values = tuple(value), tuple(value.values())
    elif isinstance(value, list | tuple):
        names, values = "list", tuple(value)
    else:
        return type(value), value
    types = tuple(map(type, values))
    if not _ATOMS.issuperset(types):
        values = tuple([v if type(v) in _ATOMS else _frozen(v) for v in values])
    return type(value), names, values, types


def config_hash(cfg: RunConfig, length: int = 8) -> str:
    """Short stable hash of everything that can change a run's results."""
    return hashlib.sha256(canonical_json(cfg).encode()).hexdigest()[:length]


def run_id(cfg: RunConfig, varied: dict[str, Any] | None = None) -> str:
    """Readable prefix from the varied axes + the config hash, e.g. `width256-depth4-3f9a1c2e`."""
    parts = []
    for key, value in (varied or {}).items():
        leaf = key.rsplit(".", 1)[-1].replace("_", "")
        parts.append(f"{leaf}{path_component(value)}"[:24])
    parts.append(config_hash(cfg))
    return "-".join(parts)


def path_component(value: Any) -> str:
    """`value` as text that is safe as one path component: `/` becomes `_`, spaces go, and a
    name of only dots (`.`, `..`) becomes underscores. Run ids and sweep directories use it."""
    text = str(value).replace("/", "_").replace(" ", "")
    return "_" * len(text) if not text.strip(".") and text else text
