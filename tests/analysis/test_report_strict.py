"""A report section that crashes: a visible warning for users, an error for tests and CI."""

from __future__ import annotations

import pytest
from fake_sweep import write_sweep

from aimscale.cli import main
from aimscale.report import write_report
from analysis.report import overview as overview_section


@pytest.fixture
def broken_section(monkeypatch):
    """Fault injection: the report's first section has a bug (so the report stays quick)."""

    def overview(report):
        raise ZeroDivisionError("injected bug")

    monkeypatch.setattr(overview_section, "section", overview)


def test_a_crashing_section_is_a_warning_for_users(tmp_path, monkeypatch, capsys,
                                                   broken_section):
    monkeypatch.delenv("AIMSCALE_STRICT", raising=False)
    sweep = write_sweep(tmp_path / "sweep", widths=(64, 96, 128), depths=(2,), n_steps=20)
    assert main(["report", str(sweep), "--bootstrap", "10", "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: section 'Overview' failed" in err
    assert "ZeroDivisionError('injected bug')" in err
    assert err.count("injected bug") == 1  # one warning, not one from each layer
    assert (sweep / "report" / "report.html").is_file()  # the rest is still written


def test_a_crashing_section_fails_a_strict_report(tmp_path, monkeypatch, broken_section):
    sweep = write_sweep(tmp_path / "sweep", widths=(64, 96, 128), depths=(2,), n_steps=20)
    monkeypatch.delenv("AIMSCALE_STRICT", raising=False)
    with pytest.raises(ZeroDivisionError, match="injected bug"):
        main(["report", str(sweep), "--strict", "--bootstrap", "10", "--jobs", "1"])
    monkeypatch.setenv("AIMSCALE_STRICT", "1")  # what scripts/test.sh (CI) sets
    with pytest.raises(ZeroDivisionError, match="injected bug"):
        write_report(sweep, bootstrap=10, n_jobs=1)
    monkeypatch.setenv("AIMSCALE_STRICT", "0")
    assert write_report(sweep, bootstrap=10, n_jobs=1).is_file()
