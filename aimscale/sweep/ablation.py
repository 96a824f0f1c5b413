"""Seeds and the compared factor of a sweep spec: `seeds:` and `compare:`.

```yaml
seeds: 3                                   # replicates: train.seed = 0, 1, 2 (a grid axis)
seeds: [0, 7, 11]                          # or the seeds themselves
compare: {factor: model.attention, baseline: prefix}   # what the report's Ablations compares
```
`seeds` adds the grid axis `train.seed` (so each seed is its own run, run id `…-seed1-<hash>`,
and its own row in `collect`). `compare.factor` is one of the spec's axes (or `variant`) and
`compare.baseline` one of its values; without `compare` the report compares the one factor
that the runs vary besides the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEED_KEY = "train.seed"  # the run's seed (aimscale/train/config.py: TrainConfig.seed)
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Compare:
    """The factor the report compares and the value the others are compared against."""

    factor: str
    baseline: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "baseline": self.baseline}


def seed_values(value: Any, taken: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """The `seeds:` entry as override values of `train.seed` (empty when absent), and problems.

    `taken`: the keys the spec already varies (a `train.seed` axis besides `seeds:` is refused).
    """
    if value is None:
        return (), []
    if isinstance(value, bool) or not isinstance(value, int | list):
        return (), [f"seeds: expected a count (e.g. `seeds: 3` for seeds 0, 1, 2) or a list of "
                    f"integer seeds, got {value!r}"]
    if isinstance(value, int):
        if not 1 <= value <= MAX_SEEDS:
            return (), [f"seeds: {value} is not a count between 1 and {MAX_SEEDS}"]
        seeds = list(range(value))
    else:
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        if bad or not value:
            return (), [f"seeds: a list needs non-negative integers, got {value!r}"]
        if len(set(value)) != len(value):
            return (), [f"seeds: {value!r} repeats a seed; list each once"]
        seeds = list(value)
    if SEED_KEY in taken:
        return (), [f"seeds: the spec also varies {SEED_KEY} as an axis; keep one of them"]
    return tuple(str(s) for s in seeds), []


def parse_compare(value: Any, axes: dict[str, tuple[str, ...]]) -> tuple[Compare | None, list[str]]:
    """The `compare:` entry checked against the spec's axes (key -> value texts; `variant` for
    the variants); returns (Compare or None, problems)."""
    if value is None:
        return None, []
    if not isinstance(value, dict) or "factor" not in value:
        return None, [f"compare: expected {{factor: KEY, baseline: VALUE}}, got {value!r}"]
    unknown = sorted(set(value) - {"factor", "baseline"})
    if unknown:
        return None, [f"compare: unknown key(s) {', '.join(unknown)}; allowed: factor, baseline"]
    factor = str(value["factor"])
    varied = {k: v for k, v in axes.items() if k != SEED_KEY}
    if factor not in varied:
        return None, [f"compare.factor {factor!r} is not varied by the spec; use one of "
                      f"{', '.join(varied) or '(none: add a grid axis or variants)'}"]
    baseline = value.get("baseline")
    if baseline is None:
        return Compare(factor), []
    from aimscale.sweep.spec import to_override_value

    text = baseline if isinstance(baseline, str) else to_override_value(baseline)
    if text not in varied[factor]:
        return None, [f"compare.baseline {baseline!r} is not a value of {factor}; use one of "
                      f"{', '.join(varied[factor])}"]
    return Compare(factor, text), []


def sweep_compare(manifest: dict[str, Any]) -> Compare | None:
    """What a launched sweep compares: its spec's `compare:`, else its one varied axis besides
    the seed (`variant` for variants), else None (the report then looks at the table)."""
    raw = (manifest.get("spec") or {}).get("compare")
    if isinstance(raw, dict) and raw.get("factor"):
        from aimscale.sweep.spec import to_override_value

        baseline = raw.get("baseline")
        if baseline is not None and not isinstance(baseline, str):
            baseline = to_override_value(baseline)
        return Compare(str(raw["factor"]), baseline)
    keys = {k for entry in (manifest.get("runs") or {}).values()
            for k in (entry.get("axes") or {}) if k != SEED_KEY}
    return Compare(keys.pop()) if len(keys) == 1 else None
