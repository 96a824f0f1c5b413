"""Tables of a sweep for the analysis: one row per run, and the training curves.

`runs`: run_id, status (with `train_status` and `probe_status`, the two sides of it, see
`aimscale status`), every config leaf as a dotted column (`model.width`), `variant`, `seed`
(= `train.seed`), `branch_of` (the trunk of a cooldown branch, empty for other runs) and
`flops_spent` (a branch's cooldown; `total_flops` is its equivalent run's), the summary
(params, FLOPs, images/patches seen, final/best losses) and probe results
(`probe.<name>.top1` / `.top5`); `features` is `trunk` for a run, and a sweep's probe
baselines add one row each (`features` pixels | untrained, `status` baseline: see
`aimscale/sweep/baselines.py`). `curves`: metrics.jsonl rows with their run_id. Only
complete files are read: summary/status/probe files are written atomically, and a last metrics
line without its newline is still being written, so it is skipped. A run with a damaged file
(empty or torn JSON, a corrupt metrics line, unparsable config.yaml) gets `status` `unreadable`
and an `error` naming the file; every other run is collected as usual.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from aimscale.jsonfiles import UnreadableFileError, read_json, read_jsonl

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster
NON_COLUMNS = ("run_dir", "sweep_name")  # paths, not axes of the study
CURVE_COLUMNS = ("step", "images_seen", "patches_seen", "flops", "lr", "loss", "val_loss")
SUMMARY_COLUMNS = ("trunk_params", "head_params", "flops_per_image", "images_seen",
                   "patches_seen", "total_flops", "final_loss", "final_val_loss",
                   "best_val_loss", "steps", "wall_time_s", "mfu", "model_flops_per_s",
                   "flops_spent")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys; lists are kept as JSON text (e.g. data.sources)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, sort_keys=True)
        else:
            out[name] = value
    return out



def run_row(run_id: str, run_dir: Path, entry: dict[str, Any], state: str,
            base_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the runs table; a damaged file makes the row `unreadable` with an `error`
    naming it, and the columns of the run's other files are still filled."""
    row: dict[str, Any] = {"run_id": run_id, "status": state}
    damaged: list[str] = []

    def read(path: Path, default: Any = None) -> Any:
        try:
            return read_json(path, default)
        except UnreadableFileError as err:
            damaged.append(str(err))
            return default

    if base_config is not None and "config" in entry:  # launch stored it: no YAML to parse
        row.update(base_config)
        row.update(entry["config"])
    else:
        path = run_dir / "config.yaml"
        try:
            config = yaml.load(path.read_text(), Loader=_LOADER) or {}
        except OSError:
            config = {}
        except yaml.YAMLError as err:
            damaged.append(f"{path}: is not valid YAML ({str(err).splitlines()[0]})")
            config = {}
        row.update(flatten(config))
    for key in NON_COLUMNS:
        row.pop(key, None)
    row["variant"] = entry.get("axes", {}).get("variant")
    row["seed"] = row.get("train.seed")  # replicates differ only here (spec `seeds:`)
    for key in SUMMARY_COLUMNS:  # the plan's numbers, replaced by the summary's when done
        if key in entry:
            row[key] = entry[key]
    summary = read(run_dir / "summary.json") or {}
    for key in SUMMARY_COLUMNS:
        if key in summary:
            row[key] = summary[key]
    # cooldown branches (aimscale/train/branches.py): which run it branched from ("" for none),
    # and the FLOPs it spent itself next to `total_flops`, its equivalent run's
    row["branch_of"] = row.get("branch.trunk") or entry.get("branch_of") or ""
    if row.get("flops_spent") is None and row.get("total_flops") is not None:
        row["flops_spent"] = row["total_flops"]
    probe_dir = run_dir / "probe"
    if probe_dir.is_dir():
        for path in sorted(probe_dir.glob("*.json")):
            result = read(path) or {}
            for metric in ("top1", "top5"):
                if metric in result:
                    row[f"probe.{path.stem}.{metric}"] = result[metric]
    if damaged:
        row.update(status="unreadable", error="; ".join(damaged))
    return row


def collect(sweep_dir: str | Path, with_state: bool = True, warnings: list[str] | None = None):
    """(runs DataFrame, curves DataFrame) of the sweep in `sweep_dir`; a sentence per damaged
    run (or unanswered scheduler) is appended to `warnings`. UnreadableFileError when sweep.json
    itself is damaged."""
    import pandas as pd

    from aimscale.sweep.manifest import read_manifest
    from aimscale.sweep.state import sweep_states

    sweep_dir = Path(sweep_dir)
    manifest = read_manifest(sweep_dir)
    if manifest is None:
        raise FileNotFoundError(f"{sweep_dir}/sweep.json not found; is it a sweep directory?")
    warnings = [] if warnings is None else warnings
    states = {}
    if with_state:
        states = {s.run_id: s for s in sweep_states(sweep_dir, manifest, with_loss=False,
                                                    warnings=warnings)}
    rows, curves = [], []
    for run_id, entry in manifest.get("runs", {}).items():
        run_dir = Path(entry.get("run_dir") or sweep_dir / run_id)
        if not run_dir.is_dir():
            run_dir = sweep_dir / run_id  # the sweep dir was moved: runs sit beside sweep.json
        known = states.get(run_id)
        state = known.state if known else (
            "done" if (run_dir / "summary.json").exists() else "new")
        row = run_row(run_id, run_dir, entry, state, manifest.get("base_config"))
        row["train_status"] = known.train if known else state
        row["probe_status"] = known.probe if known else None
        try:
            metrics = read_jsonl(run_dir / "metrics.jsonl")
        except UnreadableFileError as err:
            metrics = []
            row.update(status="unreadable",
                       error="; ".join(e for e in (row.get("error"), str(err)) if e))
        if row["status"] == "unreadable" and state != "unreadable":  # else status warned
            warnings.append(f"run {run_id} is unreadable: {row.get('error')}")
        row["features"] = "trunk"
        rows.append(row)
        for metric in metrics:
            curves.append((run_id, *(metric.get(c) for c in CURVE_COLUMNS)))
    from aimscale.sweep.baselines import baseline_rows

    rows += baseline_rows(sweep_dir, warnings)
    runs = pd.DataFrame(rows)
    curves_df = pd.DataFrame(curves, columns=["run_id", *CURVE_COLUMNS])
    return runs, curves_df


def write_tables(sweep_dir: str | Path, output: str | Path | None = None,
                 fmt: str = "csv", warnings: list[str] | None = None) -> tuple[Path, Path]:
    """Write `runs` and `curves` (default `<sweep_dir>/collect/runs.csv`, `curves.csv`)."""
    from aimscale.atomic import atomic_write

    runs, curves = collect(sweep_dir, warnings=warnings)
    if output is None:
        runs_path = Path(sweep_dir) / "collect" / f"runs.{fmt}"
    else:
        runs_path = Path(output)
    curves_path = runs_path.with_name(f"curves{runs_path.suffix or '.' + fmt}")
    for frame, path in ((runs, runs_path), (curves, curves_path)):
        if fmt == "parquet":
            atomic_write(path, lambda handle, f=frame: f.to_parquet(handle, index=False))
        else:
            atomic_write(path, lambda handle, f=frame: handle.write(
                f.to_csv(index=False).encode()))
    return runs_path, curves_path
