"""Figures rendered in forked children: the same files as in-process, embedded once written, and
a figure that fails is saved again in-process so its error surfaces."""

from __future__ import annotations

import os

import pytest

from analysis import plots
from analysis.report import figwriter
from analysis.report.figwriter import FigureWriter
from analysis.report.render import Doc

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def small_figure():
    fig, (ax,) = plots.new_figure(3, 2)
    ax.plot([1, 2, 3], [3, 1, 2])
    return fig


def test_forked_figures_are_written_and_embedded(tmp_path, monkeypatch):
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(figwriter.os, "fork", lambda: forks.append(1) or real_fork())
    doc = Doc(tmp_path, writer=FigureWriter(n_jobs=2))
    for i in range(3):  # more than MAX_CHILDREN: the oldest is waited for
        doc.figure(small_figure(), f"f{i}", "a caption with {braces}")
    assert len(forks) == 3
    doc.finish()
    assert not doc.writer.pending
    for i in range(3):
        png = tmp_path / "figures" / f"f{i}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / "figures" / f"f{i}.svg").read_text().lstrip().startswith("<?xml")
    page = "\n".join(doc.html)
    assert page.count('src="data:image/png;base64,iVBOR') == 3
    assert "a caption with {braces}" in page


def test_one_job_saves_in_process(tmp_path, monkeypatch):
    monkeypatch.setattr(figwriter.os, "fork", lambda: pytest.fail("forked with n_jobs=1"))
    w = FigureWriter(n_jobs=1)
    w.submit(small_figure(), tmp_path / "a")
    assert not w.pending and (tmp_path / "a.png").exists()


def test_failed_child_is_saved_again_in_process(tmp_path, monkeypatch):
    calls = []

    def failing_save(fig, stem):
        calls.append(os.getpid())
        raise RuntimeError("cannot draw this")

    monkeypatch.setattr(figwriter.plots, "save", failing_save)
    w = FigureWriter(n_jobs=2)
    w.submit(small_figure(), tmp_path / "bad")
    seen = []
    w.finish(on_error=lambda stem, err: seen.append((stem.name, str(err))))
    assert seen == [("bad", "cannot draw this")]
    assert calls == [os.getpid()]  # the child's call happened in the child, not counted here
    w.submit(small_figure(), tmp_path / "bad2")
    with pytest.raises(RuntimeError, match="cannot draw this"):
        w.finish()
