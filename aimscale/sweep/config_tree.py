"""Config trees for the planner: the effect of a list of overrides on the base config
(`apply_chunk`), templates that share every untouched dataclass with the base (`with_values`),
and a fast deep copy of a config tree (`copy_tree`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from aimscale import config as C


@dataclass
class Chunk:
    """The effect of one list of overrides on the base: config paths and their new values."""

    sets: list[tuple[tuple[str, ...], Any]]
    problems: list[str]


def apply_chunk(base_tree, overrides: tuple[str, ...]) -> Chunk:
    """Apply `overrides` to a copy of the base; read back the values of the keys they touch."""
    tree = base_tree.copy()  # OmegaConf copies the nodes: the base stays untouched
    try:
        problems = C.apply_overrides(tree, list(overrides))
    except C.ConfigError as err:  # unparsable: nothing applied
        return Chunk([], err.problems)
    touched: list[tuple[str, ...]] = []
    for override in C._parse_overrides(list(overrides)):
        key = override.key_or_group
        if key in C.GROUPS and isinstance(override.value(), str):
            try:
                preset = C._load_preset(key, override.value())
            except C.ConfigError:
                continue
            touched += [(key, sub) for sub in preset.keys()]
        else:
            touched.append(tuple(key.split(".")))
    try:
        resolved = OmegaConf.to_object(tree)
    except Exception as err:  # noqa: BLE001 - an invalid value shows up here, say which
        return Chunk([], [f"overrides {list(overrides)} failed: {str(err).splitlines()[0]}"])
    sets = []  # the overrides that failed left their key unchanged; the others still count
    for path in dict.fromkeys(touched):
        node = resolved
        try:
            for part in path:
                node = getattr(node, part)
        except AttributeError:
            continue
        sets.append((path, node))
    return Chunk(sets, problems)


def with_values(base: C.RunConfig, sets: list[tuple[tuple[str, ...], Any]]) -> C.RunConfig:
    """A template: `base` with the given paths set; only the dataclasses on those paths are
    copied, the rest (and the values set) is shared with `base` and other templates."""
    root = _shallow_copy(base)
    copied = {id(root)}
    for path, value in sets:
        node = root
        for part in path[:-1]:
            child = getattr(node, part)
            if id(child) not in copied:
                child = _shallow_copy(child)
                copied.add(id(child))
                setattr(node, part, child)
            node = child
        setattr(node, path[-1], value)
    return root


def _shallow_copy(obj: Any) -> Any:
    """copy.copy for plain dataclasses, without its reduce protocol overhead."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new


_ATOMS = frozenset({str, int, float, bool, type(None)})


def copy_tree(value: Any) -> Any:
    """copy.deepcopy for config trees (dataclasses, lists, dicts, scalars), a lot faster."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if hasattr(value, "__dataclass_fields__"):
        fields = dict(vars(value))
        for key, item in fields.items():
            if type(item) not in _ATOMS:
                fields[key] = copy_tree(item)
        new = object.__new__(kind)
        new.__dict__ = fields
        return new
    if kind is list or kind is tuple:
        return kind(copy_tree(v) for v in value)
    if kind is dict:
        return {k: copy_tree(v) for k, v in value.items()}
    raise TypeError(f"cannot copy {kind.__name__} in a config tree")
