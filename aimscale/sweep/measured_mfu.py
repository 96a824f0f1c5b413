"""`plan --mfu-from SWEEP_DIR`: GPU-hours from the MFU that finished runs measured.

Per resource class, the median of the `mfu` in the summaries of the finished runs of that class
in an earlier sweep (its manifest says each run's class). Classes without a measurement keep
the spec's `cost.mfu`.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from aimscale.config import ConfigError
from aimscale.jsonfiles import read_json
from aimscale.sweep.manifest import read_manifest


def measured_mfu(sweep_dir: str | Path) -> dict[str, tuple[float, int]]:
    """resource class -> (median MFU, number of finished runs measured)."""
    sweep_dir = Path(sweep_dir)
    manifest = read_manifest(sweep_dir)
    if manifest is None:
        raise ConfigError([f"--mfu-from {sweep_dir}: no sweep.json there; give a sweep "
                           "directory that `aimscale launch` wrote"])
    by_class: dict[str, list[float]] = {}
    for run_id, entry in manifest.get("runs", {}).items():
        run_dir = Path(entry.get("run_dir") or sweep_dir / run_id)
        if not run_dir.is_dir():
            run_dir = sweep_dir / run_id
        summary = read_json(run_dir / "summary.json") or {}
        mfu = summary.get("mfu")
        if summary.get("status") == "done" and isinstance(mfu, int | float) and 0 < mfu <= 1:
            by_class.setdefault(entry.get("resource_class", "default"), []).append(float(mfu))
    if not by_class:
        raise ConfigError([f"--mfu-from {sweep_dir}: no finished run there has a measured mfu "
                           "in its summary.json; run the sweep first or drop --mfu-from"])
    return {name: (statistics.median(v), len(v)) for name, v in by_class.items()}


def apply_measured_mfu(plan, measured: dict[str, tuple[float, int]]) -> list[str]:
    """Recompute the GPU-hours of the plan's runs whose class was measured; return notes."""
    peak = plan.spec.cost.gpu_peak_flops
    for run in plan.runs:
        if run.resource_class in measured:
            run.gpu_hours = run.spent_flops / (peak * measured[run.resource_class][0]) / 3600.0
    notes = [f"measured MFU of class {name}: {mfu:.3g} (median of {n} run(s))"
             for name, (mfu, n) in sorted(measured.items())]
    missing = sorted({r.resource_class for r in plan.runs} - set(measured))
    if missing:
        notes.append(f"no measurement for class(es) {missing}: cost.mfu={plan.spec.cost.mfu}")
    return notes
