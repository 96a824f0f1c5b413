"""Size rules: hyperparameters computed from each run's model size (`size_rules:` in a spec).

```yaml
size_rules:
  optim.lr: "3e-3 * (width / 128) ** -1"           # LR ∝ 1/width, 3e-3 at width 128
  optim.warmup_fraction: "min(0.1, 50 / steps)"
  train.batch_size: "max(32, 32 * round(sqrt(params / 2e5)))"
```
Variables (the run's values after its axes and overrides, before any rule): `width`, `depth`,
`heads`, `patches` (per image), `params` (trunk parameters, closed form of `aimscale.flops`),
`steps`, `batch_size`. An expression is arithmetic only: numbers, `+ - * / // **`, unary minus,
parentheses and `min`, `max`, `round`, `sqrt`, `log` (natural, or `log(x, base)`). It is parsed
with `ast` and walked node by node, never `eval`ed; anything else is refused with the rule's
name. All arithmetic is in floats; an integer setting (`train.batch_size`) must come out whole
(use `round`). Rules cannot set `model.*` keys (the size they are computed from) nor a key that
an axis or a command-line override sets; they do replace the base's value. `plan` shows every
computed value per run.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from aimscale.config import RunConfig
from aimscale.flops import trunk_params

VARIABLES = ("width", "depth", "heads", "patches", "params", "steps", "batch_size")
FUNCTIONS = {  # name -> (function, allowed argument counts)
    "min": (min, range(2, 65)),
    "max": (max, range(2, 65)),
    "round": (round, (1,)),
    "sqrt": (math.sqrt, (1,)),
    "log": (math.log, (1, 2)),
}


def _power(base: float, exponent: float) -> float:
    if base < 0 and not exponent.is_integer():
        raise ValueError(f"({base:g}) ** {exponent:g} is not a real number")
    return base**exponent


BINARY = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Pow: _power,
}
UNARY = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a}
MAX_LENGTH = 500


@dataclass(frozen=True)
class SizeRule:
    """`key: expression`; `path` splits the key, `integer` says the setting is an int."""

    key: str
    text: str
    tree: ast.Expression
    path: tuple[str, ...]
    integer: bool

    def value(self, variables: dict[str, float]) -> int | float:
        """The setting for one run; ValueError (a sentence) when it cannot be computed."""
        try:
            result = _evaluate(self.tree.body, variables)
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
        except OverflowError:
            raise ValueError("a value is too large for a float") from None
        except ValueError as err:  # math domain: sqrt or log of a number out of range
            raise ValueError(f"{err} (sqrt or log of a number out of range?)") from None
        if not math.isfinite(result):
            raise ValueError(f"the result {result} is not a finite real number")
        if self.integer:
            if abs(result - round(result)) > 1e-9 * max(1.0, abs(result)):
                raise ValueError(f"{self.key} is an integer setting but the rule gives "
                                 f"{result:.6g}; wrap the expression in round(...)")
            return int(round(result))
        return float(result)


def _evaluate(node: ast.AST, variables: dict[str, float]) -> float:
    """Walk a tree that `_check` accepted: numbers, variables, operators, allowed calls."""
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(variables[node.id])
    if isinstance(node, ast.BinOp):
        return BINARY[type(node.op)](_evaluate(node.left, variables),
                                     _evaluate(node.right, variables))
    if isinstance(node, ast.UnaryOp):
        return UNARY[type(node.op)](_evaluate(node.operand, variables))
    function = FUNCTIONS[node.func.id][0]
    return float(function(*(_evaluate(arg, variables) for arg in node.args)))


def _check(node: ast.AST) -> list[str]:
    """Every construct outside the arithmetic subset, as sentences."""
    if isinstance(node, ast.Constant):
        ok = isinstance(node.value, int | float) and not isinstance(node.value, bool)
        return [] if ok else [f"{node.value!r} is not a number"]
    if isinstance(node, ast.Name):
        return [] if node.id in VARIABLES else [
            f"unknown variable {node.id!r}; use {', '.join(VARIABLES)}"
        ]
    if isinstance(node, ast.BinOp):
        found = [] if type(node.op) in BINARY else [
            f"operator {type(node.op).__name__} is not allowed; use + - * / // **"
        ]
        return found + _check(node.left) + _check(node.right)
    if isinstance(node, ast.UnaryOp):
        found = [] if type(node.op) in UNARY else [f"{type(node.op).__name__} is not allowed"]
        return found + _check(node.operand)
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            return [f"only the functions {', '.join(FUNCTIONS)} may be called"]
        if node.keywords or len(node.args) not in FUNCTIONS[name][1]:
            return [f"{name}() takes {_arity(name)} positional argument(s)"]
        return [p for arg in node.args for p in _check(arg)]
    return [f"{type(node).__name__} is not allowed (arithmetic on numbers and variables only)"]


def _arity(name: str) -> str:
    counts = FUNCTIONS[name][1]
    return f"{counts[0]}-{counts[-1]}" if len(counts) > 2 else " or ".join(map(str, counts))


def _settings() -> dict[tuple[str, ...], bool]:
    """Numeric settings of RunConfig outside `model`: path -> is it an integer?"""
    found = {}
    hints = typing.get_type_hints(RunConfig)
    for section in dataclasses.fields(RunConfig):
        cls = hints[section.name]
        if section.name == "model" or not dataclasses.is_dataclass(cls):
            continue
        for name, kind in typing.get_type_hints(cls).items():
            origin = typing.get_origin(kind)
            if origin is None:
                args = {kind}
            elif origin in (typing.Union, types.UnionType):
                args = set(typing.get_args(kind)) - {type(None)}
            else:  # lists, dicts
                continue
            if args <= {int} or args <= {float}:
                found[(section.name, name)] = args <= {int}
    return found


def parse_size_rules(raw: Any, taken: set[str] = frozenset()) -> tuple[list, list[str]]:
    """Parse a `size_rules` mapping; return (rules, problems), each problem naming its rule.
    `taken`: keys that axes or command-line overrides set, which a rule may not override."""
    if not raw:
        return [], []
    if not isinstance(raw, dict):
        return [], [f"size_rules: expected a mapping of config key to expression, got {raw!r}"]
    settings = _settings()
    rules, problems = [], []
    for key, text in raw.items():
        key, where = str(key), f"size_rules.{key}"
        path = tuple(key.split("."))
        if path[0] == "model":
            problems.append(f"{where}: a size rule cannot set model.* (it is computed from the "
                            "model); vary the model with an axis")
            continue
        if path not in settings:
            problems.append(f"{where}: {key!r} is not a numeric setting; rules can set "
                            + ", ".join(".".join(p) for p in settings))
            continue
        if key in taken:
            problems.append(f"{where}: {key} is also an axis or a command-line override; keep "
                            "one of them")
            continue
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = repr(text)
        if not isinstance(text, str) or len(text) > MAX_LENGTH:
            problems.append(f"{where}: expected an expression (text up to {MAX_LENGTH} "
                            f"characters), got {text!r}")
            continue
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, RecursionError) as err:
            problems.append(f"{where}: cannot parse {text!r}: {getattr(err, 'msg', err)}")
            continue
        found = _check(tree.body)
        if found:
            problems += [f"{where}: {text!r}: {p}" for p in dict.fromkeys(found)]
            continue
        rules.append(SizeRule(key, text, tree, path, settings[path]))
    return rules, problems


def size_variables(cfg: RunConfig) -> dict[str, float]:
    model = cfg.model
    return {
        "width": model.width, "depth": model.depth, "heads": model.heads,
        "patches": model.num_patches, "params": trunk_params(model),
        "steps": cfg.train.steps, "batch_size": cfg.train.batch_size,
    }


def size_values(rules: list[SizeRule], cfg: RunConfig) -> tuple[dict[str, Any], list[str]]:
    """The rules' values for one run (key -> value) and the problems, each naming its rule."""
    if not rules:
        return {}, []
    variables = size_variables(cfg)
    values, problems = {}, []
    for rule in rules:
        try:
            values[rule.key] = rule.value(variables)
        except ValueError as err:
            problems.append(f"size rule {rule.key}: {rule.text!r}: {err}")
    return values, problems
