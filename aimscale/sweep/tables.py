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


STAMP = ".inputs_mtime_ns"  # newest input seen by the last collect (clock-skew safe)


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _inputs(sweep_dir: Path, manifest: dict):
    """(path, mtime_ns) of every file a runs table is made of: the manifest, each run's
    summary.json and probe results."""
    yield manifest_path(sweep_dir), _mtime(manifest_path(sweep_dir))
    for run_id, entry in (manifest.get("runs") or {}).items():
        run_dir = Path(entry.get("run_dir") or sweep_dir / run_id)
        if not run_dir.is_dir():
            run_dir = sweep_dir / run_id
        yield run_dir / "summary.json", _mtime(run_dir / "summary.json")
        try:
            probes = os.scandir(run_dir / "probe")
        except OSError:
            continue
        with probes:
            for item in probes:
                if item.name.endswith(".json"):
                    yield Path(item.path), item.stat().st_mtime_ns


def newer_input(sweep_dir: str | Path, table: Path, manifest: dict) -> Path | None:
    """A file of the sweep written after `table` was collected (the manifest, a summary, a
    probe), or None. "After" compares with the newest input the collect saw (its stamp), else
    with the table's own mtime, so an input with a future timestamp does not re-collect forever.
    """
    sweep_dir = Path(sweep_dir)
    try:
        made = int((table.parent / STAMP).read_text())
    except (OSError, ValueError):
        made = _mtime(table)
    for path, mtime in _inputs(sweep_dir, manifest):
        if mtime > made:
            return path
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
    newest = max(mtime for _, mtime in _inputs(sweep_dir, manifest))  # before reading them
    runs, curves = write_tables(sweep_dir, fmt=fmt)
    (runs.parent / STAMP).write_text(str(newest))
    return runs, curves, note
