"""The report package keeps its outputs: report.json on a fixed table equals the one written by
the single-module report before the split; a failing section raises under strict and is a
visible warning otherwise; every point says where it comes from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_sweep import make_runs

from analysis.report import ReportOptions, build_report
from analysis.report import core as report_core

REFERENCE = Path(__file__).parent / "data" / "report_reference.json"


def fixed_tables():
    """The table report_reference.json was written from (by the single-module analysis/report.py
    at main 41c390f, bootstrap=40, seed=0; `seconds` dropped). Since changed on purpose: the
    next-scale rows' "95% PI" (curve ⊕ run-to-run noise model instead of resampled residuals);
    bootstrap intervals and spreads of the joint and power fits by ≤ 3e-5 relative (resamples
    also start from E = 0, huber_lse.with_floor_starts: each reaches the same objective to 1e-9,
    at another point of a flat valley)."""
    return make_runs(widths=(32, 64, 128), depths=(2, 4), images=(3200, 6400, 12800),
                     n_steps=40, seeds=(0,))


def assert_close(ref, new, path="$"):
    """Every value of ``ref`` is in ``new``, numbers equal to rtol 1e-6 (keys may be added)."""
    if isinstance(ref, dict):
        assert isinstance(new, dict), path
        for k, v in ref.items():
            assert k in new, f"{path}.{k} is missing"
            assert_close(v, new[k], f"{path}.{k}")
    elif isinstance(ref, list):
        assert isinstance(new, list) and len(new) == len(ref), path
        for i, (a, b) in enumerate(zip(ref, new, strict=True)):
            assert_close(a, b, f"{path}[{i}]")
    elif isinstance(ref, float) and not isinstance(new, bool) and isinstance(new, (int, float)):
        assert np.isclose(new, ref, rtol=1e-6, atol=1e-12), f"{path}: {new} != {ref}"
    else:
        assert new == ref, f"{path}: {new!r} != {ref!r}"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    runs, curves = fixed_tables()
    build_report(runs, curves, out, ReportOptions(bootstrap=40, seed=0, n_jobs=1, strict=True))
    return out


def test_json_equals_pre_split_reference(report):
    new = json.loads((report / "report.json").read_text())
    ref = json.loads(REFERENCE.read_text())
    assert_close(ref, new)
    for key in ("params", "ci"):
        assert new["joint"]["fit"][key]
    assert {"coverage", "level", "mape", "n_test"} <= set(new["backtest"])
    assert "spearman" in new["downstream"]["correlation"]


def test_sources_default_to_final_runs_and_show(report):
    new = json.loads((report / "report.json").read_text())
    assert new["sources"] == {"final run": 18}
    assert "18 final run" in (report / "report.md").read_text()


def test_source_column_is_counted_in_tables(tmp_path):
    runs, _ = fixed_tables()
    runs["source"] = ["cooldown branch" if i % 3 else "final run" for i in range(len(runs))]
    build_report(runs, None, tmp_path, ReportOptions(bootstrap=0, n_jobs=1, strict=True))
    assert json.loads((tmp_path / "report.json").read_text())["sources"] == {
        "cooldown branch": 12, "final run": 6}
    md = (tmp_path / "report.md").read_text()
    assert "| group | runs | sources |" in md
    assert "2 cooldown branch, 1 final run" in md


def _boom(r):
    raise RuntimeError("deliberate failure in a section")


def test_strict_raises_on_a_failed_section(tmp_path, monkeypatch):
    monkeypatch.setattr(report_core, "SECTIONS", (("Broken", _boom),))
    runs, _ = fixed_tables()
    with pytest.raises(RuntimeError, match="deliberate failure"):
        build_report(runs, None, tmp_path, ReportOptions(bootstrap=0, n_jobs=1, strict=True))


def test_failed_section_is_a_visible_warning_when_not_strict(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report_core, "SECTIONS", (("Broken", _boom),))
    runs, _ = fixed_tables()
    build_report(runs, None, tmp_path, ReportOptions(bootstrap=0, n_jobs=1, strict=False))
    err = capsys.readouterr().err
    assert "section 'Broken' failed with an unexpected error: RuntimeError('deliberate" in err
    assert err.count("deliberate failure") == 1  # warned once
    page = (tmp_path / "report.html").read_text()
    top = page.index("class='failed'")
    assert top < page.index("<h2>Overview</h2>")  # above every section
    assert "deliberate failure" in page[top:page.index("<h2>Overview</h2>")]
    md = (tmp_path / "report.md").read_text()
    assert md.index("section(s) failed") < md.index("## Overview")
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["failed_sections"] == {
        "Broken": "RuntimeError('deliberate failure in a section')"}


def test_scaling_plot_marks_sources_and_keeps_notes_off_the_axes():
    from analysis import plots

    x = np.array([1e3, 2e3, 4e3, 8e3])
    src = np.array(["final run", "cooldown branch", "cooldown branch", "intermediate checkpoint"])
    s = plots.Series("N ≈ 1e5", x, 2.0 * x**-0.3, None, "a long note that once covered the data",
                     src)
    fig = plots.plot_scaling([s], "D", "loss", "t", var="D")
    ax = fig.axes[0]
    shapes = {tuple(np.round(c.get_paths()[0].vertices[:3].ravel(), 3)) for c in ax.collections}
    assert len(shapes) == 3  # one marker shape per source
    assert not any("long note" in t.get_text() for t in ax.texts)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"final run", "cooldown branch", "intermediate checkpoint"} <= set(labels)
    fig.canvas.draw()
    legend_h = ax.get_legend().get_window_extent().height
    assert legend_h <= ax.get_window_extent().height
    assert plots.source_markers(["x", "final run", "y"]) == {"x": "D", "final run": "o",
                                                             "y": "v"}


def test_sigmoid_bootstrap_does_not_depend_on_workers_and_can_be_skipped():
    from analysis.correlate import correlate

    rng = np.random.default_rng(1)
    x = np.linspace(0.6, 1.2, 14)
    y = 0.7 / (1 + np.exp(12 * (x - 0.9))) + 0.1 + 0.01 * rng.standard_normal(14)
    one = correlate(x, y, bootstrap=150, n_jobs=1)
    two = correlate(x, y, bootstrap=150, n_jobs=2)
    np.testing.assert_array_equal(one.sigmoid_samples, two.sigmoid_samples)
    assert one.ci == two.ci and "sigmoid_k" in one.ci
    quick = correlate(x, y, bootstrap=150, sigmoid_intervals=False)
    assert quick.sigmoid_samples is None and "sigmoid_k" not in quick.ci
    assert quick.ci["spearman"] == one.ci["spearman"]


def test_ablation_factor_ignores_the_point_source_column():
    """The overview adds `source` to every row; the factor detection must not count it."""
    import pandas as pd

    from analysis.compare import ablation_factor

    df = pd.DataFrame({"model.width": [32, 32, 64, 64], "train.seed": [0, 1, 0, 1],
                       "source": ["final run", "cooldown branch"] * 2,
                       "final_val_loss": [1.0, 1.1, 0.9, 0.95]})
    assert ablation_factor(df) == "model.width"
