"""Probe baselines of a sweep, paid once: `baselines: [pixels, untrained]` in a sweep spec.

```yaml
probe:
  - {kind: both, dataset: fashion-mnist, blocks: last, epochs: 5, limit_train: 2000}
baselines: [pixels, untrained]
```
Each baseline runs the same protocol as the spec's probes (every `probe:` entry of kind
attentive, linear or both with a single block window; layer sweeps and LoRA are left out) with
`features: pixels` or `features: untrained` (see `aimscale.probe.features`), once per distinct
input rather than once per run:

- `pixels`: once per (image size, patch size, channels) — the patches do not depend on the
  model's width, depth or training;
- `untrained`: once per (model config, train.seed) — the step-0 trunk is a function of both.

The planner names one owner run per baseline (the cheapest training task with that key); that
run's probe task, after its own probes, writes the baseline into `SWEEP_DIR/baselines/<id>/`.
The baseline does not depend on the owner's training: when that fails, the probe task still
computes it (the run's own probes are `blocked`), and a later `launch` submits a probe task
for a failed, stopped or cancelled owner whose baseline is still missing. It writes a copy of the
owner's config.yaml, `baseline.json` (id, features, owner, key) and `probe/<features>_<kind>_
<window>.json`. `collect` adds one row per baseline directory (`features` = pixels | untrained,
`status` = baseline) whose probe columns carry the trunk protocol's names
(`probe.attentive_last.top1`), so the report can set them beside the trained runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimscale.sweep.data_sizes import training_task_of

BASELINE_FEATURES = ("pixels", "untrained")
DIRNAME = "baselines"
ELIGIBLE_KINDS = ("attentive", "linear", "both")


@dataclass
class Baseline:
    """One baseline of a sweep: what it is, which run's job computes it, where it goes."""

    id: str
    features: str
    owner: str  # run id
    dir: str
    key: dict[str, Any]
    probes: list[dict[str, Any]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "features": self.features, "owner": self.owner, "key": self.key}


def parse_baselines(value: Any) -> tuple[tuple[str, ...], list[str]]:
    """The spec's `baselines:` entry (a name or a list of names) and its problems."""
    if value is None:
        return (), []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return (), [f"baselines: expected a list of {list(BASELINE_FEATURES)}, got {value!r}"]
    bad = [n for n in names if n not in BASELINE_FEATURES]
    if bad:
        return (), [f"baselines: {', '.join(map(repr, bad))} is not one of "
                    f"{list(BASELINE_FEATURES)} (raw pixels, or the untrained trunk at step 0)"]
    return tuple(dict.fromkeys(names)), []


def eligible_probes(probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `probe:` entries a baseline repeats: attentive / linear / both, one block window,
    on the trained trunk (a chosen checkpoint is dropped: a baseline has none)."""
    return [{k: v for k, v in p.items() if k not in ("checkpoint", "fractions")}
            for p in probes
            if p.get("kind", "attentive") in ELIGIBLE_KINDS
            and p.get("blocks", "last") != "all-windows"
            and p.get("features", "trunk") == "trunk"]


def baseline_key(features: str, cfg) -> dict[str, Any]:
    """What the baseline's features depend on (cfg: a RunConfig)."""
    from aimscale.config import to_plain

    model = cfg.model
    if features == "pixels":
        return {"image_size": model.image_size, "patch_size": model.patch_size,
                "channels": model.channels}
    return {"model": to_plain(model), "train.seed": cfg.train.seed}


def baseline_id(features: str, key: dict[str, Any]) -> str:
    if features == "pixels":
        return f"pixels-i{key['image_size']}-p{key['patch_size']}-c{key['channels']}"
    model = key["model"]
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    return (f"untrained-w{model['width']}-d{model['depth']}-seed{key['train.seed']}-"
            f"{digest}")


def plan_baselines(names: tuple[str, ...], probes: list[dict[str, Any]], runs: list,
                   sweep_dir: str) -> tuple[list[Baseline], list[str]]:
    """One Baseline per (name, distinct key) over the planned `runs` (PlannedRun), owned by
    the first run with that key; problems when nothing can be repeated."""
    if not names:
        return [], []
    entries = eligible_probes(probes)
    if not entries:
        return [], ["baselines: no `probe:` entry to repeat on them; add one of kind attentive, "
                    "linear or both with a single block window (e.g. blocks: last)"]
    from aimscale.probe.config import ProbeError, probe_config

    problems = []
    for name in names:
        for i, entry in enumerate(entries):
            try:
                probe_config({**entry, "features": name})
            except (ProbeError, ValueError) as err:
                problems.append(f"[baselines: {name}, probe entry {i}] {err}")
    if problems:
        return [], problems
    # the owner is the cheapest training task with the key: the soonest done and the least
    # likely to fail (a trunk trains its branches in its task, so their cost is its own)
    cost: dict[str, float] = {}
    for run in runs:
        task = training_task_of(run)
        cost[task] = cost.get(task, 0.0) + run.spent_flops
    trunks = sorted((run for run in runs if not getattr(run, "branch_of", None)),
                    key=lambda run: cost[run.run_id])  # stable: plan order breaks ties
    out: dict[str, Baseline] = {}
    for name in names:
        for run in trunks:
            key = baseline_key(name, run.template)
            bid = baseline_id(name, key)
            if bid not in out:
                out[bid] = Baseline(bid, name, run.run_id, f"{sweep_dir}/{DIRNAME}/{bid}", key,
                                    [{**p, "features": name} for p in entries])
    return list(out.values()), []


def missing_baselines(baselines: list[Baseline]) -> list[Baseline]:
    """The baselines with no probe result in their directory yet."""
    return [b for b in baselines if not any((Path(b.dir) / "probe").glob("*.json"))]


def job_probes(probes: list[dict[str, Any]], baselines: list[Baseline]) -> list[dict[str, Any]]:
    """The probe list every job of the sweep gets: the spec's probes, then each baseline's
    entries marked with `baseline` (id, dir, owner): only the owner's job runs them."""
    out = [dict(p) for p in probes]
    for b in baselines:
        out += [{**p, "baseline": {**b.info(), "dir": b.dir}} for p in b.probes]
    return out


def run_baseline_probe(run_dir: str | Path, probe: dict[str, Any]) -> list[dict[str, Any]]:
    """In the owner's job: one baseline entry (a `job_probes` item) into its directory; results
    made by the same request are kept. Other runs' jobs return [] at once."""
    from aimscale.atomic import atomic_write_json, atomic_write_text
    from aimscale.probe.run import run_probes

    probe = dict(probe)
    where = probe.pop("baseline")
    if Path(run_dir).name != where["owner"]:
        return []
    target = Path(where["dir"])
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "config.yaml").is_file():
        atomic_write_text(target / "config.yaml", (Path(run_dir) / "config.yaml").read_text())
    info = {k: where[k] for k in ("id", "features", "owner", "key")}
    atomic_write_json(target / "baseline.json", info)
    return run_probes(target, probe, skip_existing=True)



def baseline_rows(sweep_dir: str | Path, warnings: list[str]) -> list[dict[str, Any]]:
    """One runs-table row per `SWEEP_DIR/baselines/<id>/` (for `collect`): `features`
    (pixels | untrained), `status` = baseline, `baseline_owner`, the config columns of the owner
    run, and the probe columns under the trunk protocol's names (`probe.linear_last.top1` from
    `pixels_linear_last.json`)."""
    from aimscale.jsonfiles import UnreadableFileError, read_json
    from aimscale.sweep.collect import run_row

    rows = []
    for folder in sorted((Path(sweep_dir) / DIRNAME).glob("*/")):
        try:
            info = read_json(folder / "baseline.json")
        except UnreadableFileError as err:
            warnings.append(f"baseline {folder.name} is unreadable: {err}")
            continue
        if not isinstance(info, dict) or info.get("features") not in BASELINE_FEATURES:
            continue  # not written by a baseline job (yet)
        features = info["features"]
        row = run_row(str(info.get("id", folder.name)), folder, {}, "baseline")
        if row["status"] == "unreadable":
            warnings.append(f"baseline {folder.name} is unreadable: {row.get('error')}")
        prefix = f"probe.{features}_"
        for column in [c for c in row if c.startswith(prefix)]:
            row[f"probe.{column[len(prefix):]}"] = row.pop(column)
        if features == "pixels":  # the owner's shape is not the baseline's: leave it blank
            kept = {f"model.{k}" for k in ("image_size", "patch_size", "channels")}
            for column in [c for c in row if c.startswith("model.") and c not in kept]:
                row[column] = None
        row.update(features=features, baseline_owner=info.get("owner"))
        rows.append(row)
    return rows
