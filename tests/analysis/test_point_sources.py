"""Where each point comes from (final run, cooldown branch via `branch_of`, intermediate
checkpoint) is a marker shape in the backtest and loss ↔ accuracy figures and a column in the
backtest and seeds tables."""

from __future__ import annotations

import json

import numpy as np
from fake_sweep import make_runs
from synth import SMALL_GRID

from analysis import plots
from analysis.correlate import correlate
from analysis.report import ReportOptions, build_report


def marker_shapes(ax) -> set:
    return {tuple(np.round(c.get_paths()[0].vertices[:3].ravel(), 3)) for c in ax.collections
            if len(c.get_offsets())}


def test_correlation_figure_has_a_marker_per_source_and_keeps_colours():
    x = np.linspace(0.6, 1.2, 8)
    y = 0.9 - 0.5 * x
    src = np.array(["final run", "cooldown branch"] * 4)
    corr = correlate(x, y, bootstrap=0)
    fig = plots.plot_correlation(x, y, corr, color=np.arange(1, 9.0), source=src)
    ax = fig.axes[0]
    assert len(marker_shapes(ax)) == 2
    sizes = sorted(len(c.get_offsets()) for c in ax.collections if len(c.get_offsets()))
    assert sizes == [4, 4]
    colours = np.concatenate([c.get_array() for c in ax.collections if len(c.get_offsets())])
    assert sorted(colours) == list(np.arange(1, 9.0))  # the colour values went with the points
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"final run", "cooldown branch"} <= labels


def test_branch_of_marks_points_in_backtest_and_seed_tables(tmp_path):
    runs, _ = make_runs(widths=(32, 64, 128), depths=(2, 4), images=(3200, 6400, 12800),
                        n_steps=2, seeds=(0, 1), layerwise=False)
    longest = runs["data.num_images"] == 12800
    runs["branch_of"] = np.where(longest, "", "trunk-" + runs["run_id"])
    build_report(runs, None, tmp_path, ReportOptions(bootstrap=0, n_jobs=1, strict=True,
                                                     joint_grid=SMALL_GRID))
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["sources"] == {"cooldown branch": 24, "final run": 12}
    table = summary["replicates"]["table"]
    assert {(row["data.num_images"], row["source"]) for row in table} == {
        (3200, "cooldown branch"), (6400, "cooldown branch"), (12800, "final run")}
    md = (tmp_path / "report.md").read_text()
    backtest = md[md.index("## Backtest"):md.index("## Loss and downstream")]
    header = next(line for line in backtest.splitlines() if line.startswith("| source |"))
    rows = [line for line in backtest.splitlines()
            if line.startswith("| final run |") or line.startswith("| cooldown branch |")]
    assert header and len(rows) == summary["backtest"]["n_test"]
