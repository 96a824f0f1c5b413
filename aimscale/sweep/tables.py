"""The collected tables of a sweep, (re)collected when missing or stale.

A runs table is stale when a file it is made of is newer than it: the manifest (`sweep.json`,
rewritten by each launch), a run's `summary.json`, or a probe result (`probe/*.json`). The
report calls `ensure_tables` so that `aimscale launch … && aimscale report …` just works.
"""

from __future__ import annotations

import os
from pathlib import Path

from aimscale.sweep.manifest import manifest_path, read_manifest

FORMATS = ("parquet", "csv")


def find_table(sweep_dir: str | Path, stem: str) -> Path | None:
    """`SWEEP_DIR/collect/<stem>.parquet` or `.csv`, whichever exists (parquet first)."""
    for ext in FORMATS:
        path = Path(sweep_dir) / "collect" / f"{stem}.{ext}"
        if path.exists():
            return path
    return None


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def newer_input(sweep_dir: str | Path, table: Path, manifest: dict) -> Path | None:
    """A file of the sweep written after `table` (the manifest, a summary, a probe), or None."""
    sweep_dir = Path(sweep_dir)
    made = _mtime(table)
    if _mtime(manifest_path(sweep_dir)) > made:
        return manifest_path(sweep_dir)
    for run_id, entry in (manifest.get("runs") or {}).items():
        run_dir = Path(entry.get("run_dir") or sweep_dir / run_id)
        if not run_dir.is_dir():
            run_dir = sweep_dir / run_id
        if _mtime(run_dir / "summary.json") > made:
            return run_dir / "summary.json"
        try:
            probes = os.scandir(run_dir / "probe")
        except OSError:
            continue
        with probes:
            for item in probes:
                if item.name.endswith(".json") and item.stat().st_mtime_ns > made:
                    return Path(item.path)
    return None


def ensure_tables(sweep_dir: str | Path) -> tuple[Path | None, Path | None, str | None]:
    """(runs table, curves table, what was done): collects into `SWEEP_DIR/collect/` when the
    sweep has a manifest and its runs table is missing or stale. Without a manifest the tables
    found are used as they are; (None, None, None) when there is none."""
    from aimscale.sweep.collect import write_tables

    sweep_dir = Path(sweep_dir)
    runs = find_table(sweep_dir, "runs")
    manifest = read_manifest(sweep_dir)
    if manifest is None:
        return runs, find_table(sweep_dir, "curves"), None
    if runs is None:
        note = "no runs table yet: collected it"
    else:
        newer = newer_input(sweep_dir, runs, manifest)
        if newer is None:
            return runs, find_table(sweep_dir, "curves"), None
        note = f"the runs table was older than {newer}: collected it again"
    fmt = runs.suffix.lstrip(".") if runs is not None else "csv"
    runs, curves = write_tables(sweep_dir, fmt=fmt)
    return runs, curves, note
