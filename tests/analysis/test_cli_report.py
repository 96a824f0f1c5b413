"""`python -m analysis …` and the HTML report, on tables written to disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_sweep import make_runs, write_sweep
from synth import SMALL_GRID, chinchilla_grid, joint_loss, noisy

from analysis.cli import main
from analysis.report import ReportOptions, build_report

ROOT = Path(__file__).resolve().parents[2]


def strict_loads(text: str):
    """json.loads that fails on NaN/Infinity, which the contract forbids."""
    def reject(token):
        raise ValueError(f"{token} in JSON output")

    return json.loads(text, parse_constant=reject)


def run_json(capsys, argv):
    code = main(argv + ["--json"])
    return code, strict_loads(capsys.readouterr().out)


@pytest.fixture
def chinchilla_csv(tmp_path):
    n, d = chinchilla_grid(6, 6)
    y = noisy(joint_loss(n, d), 0.005, 0)
    df = pd.DataFrame({"params": n, "tokens": d, "loss": y, "flops": 6 * n * d})
    df.loc[0, "loss"] = np.nan
    df.loc[1, "tokens"] = -1.0
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    return path


def test_fit_json_shape_and_dropped_rows(capsys, chinchilla_csv):
    argv = ["fit", str(chinchilla_csv), "--law", "chinchilla", "--n", "params", "--d", "tokens",
            "--loss", "loss", "--bootstrap", "50", "--jobs", "1"]
    code, out = run_json(capsys, argv)
    assert code == 0
    assert out["law"] == "chinchilla" and out["n_points"] == 34
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert abs(out["params"]["alpha"] - 0.34) < 0.05
    assert {"a", "b", "G", "ci"} <= set(out["compute_optimal"])
    assert any("dropped 1 of 36 rows" in w and "'loss'" in w for w in out["warnings"])
    assert any("'tokens'" in w for w in out["warnings"])


def test_fit_error_is_a_sentence_and_exit_2(capsys, tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "loss": [3.0, 2.0, 1.5]}).to_csv(path, index=False)
    code = main(["fit", str(path), "--law", "power", "--x", "x", "--loss", "loss", "--json"])
    cap = capsys.readouterr()
    assert code == 2
    assert "needs at least 4 valid points" in strict_loads(cap.out)["error"]
    code = main(["fit", str(path), "--law", "power", "--x", "nope", "--loss", "loss"])
    assert code == 2 and "available columns: x, loss" in capsys.readouterr().err


def test_isoflop_correlate_backtest_json(capsys, tmp_path):
    rows = []
    for c in np.logspace(18, 21, 4):
        for f in 10 ** np.linspace(-1, 1, 7):
            n = np.sqrt(c / 6) * f
            rows.append({"C": c, "N": n, "L": joint_loss(n, c / (6 * n))})
    iso = tmp_path / "iso.csv"
    pd.DataFrame(rows).to_csv(iso, index=False)
    code, out = run_json(capsys, ["isoflop", str(iso), "--flops", "C", "--n", "N", "--loss", "L",
                                  "--bootstrap", "50"])
    assert code == 0 and len(out["budgets"]) == 4 and 0.3 < out["a"] < 0.6
    assert out["a_ci"][0] <= out["a"] <= out["a_ci"][1]

    x = np.linspace(0.5, 1.0, 10)
    corr = tmp_path / "corr.csv"
    pd.DataFrame({"loss": x, "acc": 1.5 - x}).to_csv(corr, index=False)
    code, out = run_json(capsys, ["correlate", str(corr), "--x", "loss", "--y", "acc",
                                  "--bootstrap", "50"])
    assert out["pearson"] == pytest.approx(-1.0) and out["linear"]["slope"] == pytest.approx(-1)

    xs = np.logspace(6, 10, 10)
    bt = tmp_path / "bt.csv"
    pd.DataFrame({"N": xs, "L": 0.3 + 40 * xs**-0.3}).to_csv(bt, index=False)
    code, out = run_json(capsys, ["backtest", str(bt), "--law", "power", "--x", "N", "--loss", "L",
                                  "--holdout-above", "N=1e9", "--bootstrap", "50", "--jobs", "1"])
    assert code == 0 and out["n_train"] == 7 and out["n_test"] == 3
    assert out["mape"] < 0.1 and {"observed", "predicted", "lo", "hi"} <= set(
        out["predictions"][0])


def test_report_on_a_demo_like_sweep(tmp_path):
    runs, curves = make_runs()
    html = build_report(runs, curves, tmp_path / "rep", ReportOptions(bootstrap=40, n_jobs=1,
                                                                      strict=True))
    text = html.read_text()
    for section in ("Loss against model size", "learning curve of the largest", "Compute frontier",
                    "Loss and downstream accuracy", "Training curves", "Layer-wise probes",
                    "Predictions for the next scale"):
        assert section in text
    assert text.count("data:image/png;base64,") >= 7
    assert "Skipped: The joint law" in text and "3 distinct values of D" in text
    assert (tmp_path / "rep" / "report.md").exists()
    summary = strict_loads((tmp_path / "rep" / "report.json").read_text())
    alpha = summary["loss_vs_params"][0]["fit"]["params"]["alpha"]
    assert 0.2 < alpha < 1.5
    assert (tmp_path / "rep" / "figures" / "loss_vs_params.svg").exists()


def test_report_with_joint_law_isoflop_and_ablations(tmp_path):
    runs, curves = make_runs(widths=(64, 96, 128), depths=(2, 4),
                             images=(10_000, 30_000, 90_000), variants=["baseline", "no_prefix"],
                             n_steps=20)
    html = build_report(runs, curves, tmp_path, ReportOptions(bootstrap=30, n_jobs=1,
                                                              strict=True, joint_grid=SMALL_GRID))
    summary = json.loads((tmp_path / "report.json").read_text())
    assert "joint" in summary and summary["joint"]["fit"]["converged"]
    assert "ablations" in summary
    text = html.read_text()
    assert "nearest preset" in text and "Ablations" in text


def test_report_with_a_handful_of_runs_says_what_it_cannot_do(tmp_path):
    runs, _ = make_runs(widths=(64, 96), depths=(2,), images=(20_000,), layerwise=False)
    runs = runs.drop(columns=["probe.attentive_last.top1", "probe.linear_last.top1"])
    html = build_report(runs, None, tmp_path, ReportOptions(bootstrap=20, n_jobs=1, strict=True))
    text = html.read_text()
    assert "2 distinct value(s) of N: at least 3 are needed for a fit" in text
    assert "Skipped: no probe accuracy column" in text
    assert "Skipped: no curves table" in text
    assert "Traceback" not in text


def test_aimscale_report_glue_and_cli(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "sweep", widths=(64, 96, 128), depths=(2,), n_steps=20)
    from aimscale.report import add_arguments, run, write_report

    path = write_report(sweep, bootstrap=20)
    assert path == sweep / "report" / "report.html" and path.exists()
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args([str(tmp_path / "missing")])) == 2
    assert "aimscale collect" in capsys.readouterr().err


def test_analysis_imports_and_runs_without_torch(tmp_path):
    """torch is made unimportable; every analysis module and the CLI still work."""
    xs = np.logspace(6, 9, 6)
    table = tmp_path / "t.csv"
    pd.DataFrame({"x": xs, "loss": 0.3 + 40 * xs**-0.3}).to_csv(table, index=False)
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is hidden for this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import analysis, analysis.cli, analysis.report, analysis.plots, aimscale.report\n"
        "from analysis.cli import main\n"
        f"rc = main(['fit', {str(table)!r}, '--law', 'power', '--x', 'x', '--loss', 'loss',"
        " '--bootstrap', '0', '--json'])\n"
        "assert rc == 0, rc\n"
        "assert 'torch' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["params"]["alpha"] == pytest.approx(0.3, rel=1e-3)
