"""Protocols from the command line: --where / --group-by, two-step (OLMo's ladder),
correlate --group, and report's column mapping."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synth import CHINCHILLA, chinchilla_grid, joint_loss, noisy
from synth_ladder import TARGETS, accuracy, ladder_table, task_loss

from analysis.cli import main
from analysis.laws import compute_optimal

OTHER = {"E": 2.0, "A": 300.0, "B": 900.0, "alpha": 0.4, "beta": 0.2}


def run_json(capsys, argv):
    code = main(argv + ["--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def mixed_csv(tmp_path):
    """Two configurations at the same (N, D) grid, as in a published table with several models,
    plus rows the publication excludes."""
    n, d = chinchilla_grid(8, 4)
    frames = []
    for name, law, seed in (("a", None, 0), ("b", OTHER, 1)):
        frames.append(pd.DataFrame({"model": name, "params": n, "tokens": d,
                                    "loss": noisy(joint_loss(n, d, law), 0.003, seed),
                                    "excluded": np.arange(len(n)) % 7 == 0}))
    path = tmp_path / "mixed.csv"
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


FIT = ["--law", "power", "--x", "params", "--loss", "loss", "--bootstrap", "20", "--jobs", "1"]


def test_where_equals_a_prefiltered_table(capsys, tmp_path, mixed_csv):
    df = pd.read_csv(mixed_csv)
    pre = tmp_path / "pre.csv"
    df[(df.model == "a") & ~df.excluded & (df.tokens == df.tokens.max())].to_csv(pre, index=False)
    code, filtered = run_json(capsys, ["fit", str(mixed_csv), *FIT, "--where",
                                       "model == 'a' and not excluded and tokens == 1e12"])
    code2, direct = run_json(capsys, ["fit", str(pre), *FIT])
    assert code == code2 == 0
    assert filtered["n_points"] == direct["n_points"] == len(pd.read_csv(pre))
    assert filtered["params"] == direct["params"] and filtered["ci"] == direct["ci"]


def test_group_by_gives_one_result_per_group_equal_to_prefiltered(capsys, tmp_path,
                                                                  mixed_csv):
    iso_args = ["--bootstrap", "30"]
    rows = []
    for name, law in (("a", None), ("b", OTHER)):
        for c in np.logspace(18, 21, 4):
            _, _, g = compute_optimal(*(dict(CHINCHILLA, **(law or {}))[k]
                                        for k in ("A", "B", "alpha", "beta")))
            n_opt = g * (c / 6) ** ((law or CHINCHILLA)["beta"] / sum(
                (law or CHINCHILLA)[k] for k in ("alpha", "beta")))
            for f in 10 ** np.linspace(-1, 1, 9):
                n = n_opt * f
                rows.append({"model": name, "C": c, "N": n, "L": joint_loss(n, c / (6 * n), law)})
    table = tmp_path / "iso.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    base = ["isoflop", str(table), "--flops", "C", "--n", "N", "--loss", "L", *iso_args]
    code, pooled = run_json(capsys, base)
    assert code == 0 and any("mixes groups" in w and "--group-by model" in w
                             for w in pooled["warnings"])
    code, grouped = run_json(capsys, base + ["--group-by", "model"])
    assert code == 0 and isinstance(grouped, list) and len(grouped) == 2
    for g in grouped:
        name = g["group"]["model"]
        pre = tmp_path / f"iso_{name}.csv"
        pd.DataFrame(rows).query(f"model == '{name}'").to_csv(pre, index=False)
        _, alone = run_json(capsys, ["isoflop", str(pre), "--flops", "C", "--n", "N",
                                     "--loss", "L", *iso_args])
        assert g["a"] == alone["a"] and g["a_ci"] == alone["a_ci"]
        assert not any("mixes groups" in w for w in g["warnings"])
    assert grouped[0]["a"] != pytest.approx(grouped[1]["a"], abs=0.01)
    # fit: the same (N, D) carries two losses in the pooled table
    code, fit_pooled = run_json(capsys, ["fit", str(mixed_csv), "--law", "chinchilla", "--n",
                                         "params", "--d", "tokens", "--loss", "loss",
                                         "--bootstrap", "0"])
    assert any("mixes groups" in w for w in fit_pooled["warnings"])


def test_bad_where_and_group_by_are_exit_2(capsys, mixed_csv):
    for extra, text in ((["--where", "nope > 3"], "not a valid filter"),
                        (["--where", "params < 0"], "keeps none"),
                        (["--group-by", "nope"], "nope")):
        code, out = run_json(capsys, ["fit", str(mixed_csv), *FIT, *extra])
        assert code == 2 and text in out["error"]


def test_group_with_too_few_rows_reports_its_error(capsys, mixed_csv):
    code, out = run_json(capsys, ["fit", str(mixed_csv), *FIT, "--where",
                                  "model == 'a' or params < 2e7", "--group-by", "model"])
    assert code == 2 and [g["group"]["model"] for g in out] == ["a", "b"]
    assert "params" in out[0] and "needs at least" in out[1]["error"]


@pytest.fixture(scope="module")
def ladder_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("ladder") / "ladder.csv"
    ladder_table().to_csv(path, index=False)
    return path


LADDER = ["--run", "run", "--n", "params", "--d", "tokens", "--step", "step", "--task-loss",
          "task_loss", "--acc", "acc", "--jobs", "1"]


def test_two_step_predicts_a_synthetic_ladder(capsys, ladder_csv):
    at = [a for n, d in TARGETS for a in ("--at", f"N={n:g},D={d:g}")]
    code, out = run_json(capsys, ["two-step", str(ladder_csv), *LADDER, *at,
                                  "--bootstrap", "150"])
    assert code == 0 and out["n_runs"] == 20
    assert len(out["predictions"]) == 2
    for (n, d), p in zip(TARGETS, out["predictions"], strict=True):
        assert (p["N"], p["D"]) == (n, d)
        truth_l = task_loss(n, d)
        truth_a = accuracy(truth_l)
        # stated error: task loss within 2% and accuracy within 0.02 of the truth, 3-7× beyond
        # the ladder's largest model
        assert abs(p["task_loss"] / truth_l - 1) < 0.02
        assert abs(p["acc"] - truth_a) < 0.02
        assert p["task_loss_lo"] < p["task_loss"] < p["task_loss_hi"]
        assert p["acc_lo"] < p["acc"] < p["acc_hi"]
        assert p["warnings"] and "beyond the ladder" in p["warnings"][0]
    s2 = out["step2"]["params"]
    assert s2["k"] == pytest.approx(-5.0, rel=0.1) and s2["l0"] == pytest.approx(1.3, abs=0.03)
    # 20 runs × 40 checkpoints, 4 of each run's first 10% of steps dropped
    assert out["step2"]["n_points"] == 20 * 36


def test_two_step_options_change_the_protocol(capsys, ladder_csv):
    df = pd.read_csv(ladder_csv)
    base = ["two-step", str(ladder_csv), *LADDER, "--at", "N=1e9,D=2e10", "--bootstrap", "0"]
    code, out = run_json(capsys, base + ["--final-checkpoints", "1", "--skip-fraction", "0.5",
                                         "--smooth", "1", "--no-ideal-point"])
    assert code == 0
    last = df.sort_values("step").groupby("run").tail(1).set_index("run")["task_loss"]
    for r in out["runs"]:
        assert r["task_loss"] == pytest.approx(last[r["run"]])
    assert out["step2"]["n_points"] == 20 * 20
    assert out["predictions"][0]["acc_lo"] is None  # no bootstrap, no interval
    _, five = run_json(capsys, base)
    tail5 = df.sort_values("step").groupby("run").tail(5).groupby("run")["task_loss"].mean()
    assert five["runs"][0]["task_loss"] == pytest.approx(tail5[five["runs"][0]["run"]])
    for extra, text in ((["--at", "N=1e9"], "N=VALUE,D=VALUE|positive N and D"),
                        (["--skip-fraction", "1.5"], "skip-fraction"),
                        (["--level", "95"], "fraction")):
        code, err = run_json(capsys, base + extra)
        assert code == 2 and any(t in err["error"] for t in text.split("|"))


def test_correlate_group_resamples_whole_runs(capsys, tmp_path):
    """Checkpoints of one run share its offset: resampling them as independent pairs makes the
    interval far too narrow."""
    rng = np.random.default_rng(0)
    rows = []
    for r in range(8):
        offset, shift = 0.05 * rng.standard_normal(), 0.3 * rng.standard_normal()
        for loss in np.linspace(2.0, 1.2, 12) + shift:
            rows.append({"run": f"run-{r}", "loss": loss,  # text ids, as collect writes
                         "acc": 0.9 - 0.4 * loss + offset + 0.005 * rng.standard_normal()})
    path = tmp_path / "ckpt.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    argv = ["correlate", str(path), "--x", "loss", "--y", "acc", "--bootstrap", "60"]
    _, pairs = run_json(capsys, argv)
    _, runs = run_json(capsys, argv + ["--group", "run"])
    assert runs["pearson"] == pairs["pearson"]  # same point estimate
    width = {k: v["ci"]["slope"][1] - v["ci"]["slope"][0] for k, v in
             (("pairs", pairs), ("runs", runs))}
    assert width["runs"] > 2 * width["pairs"]


def test_report_names_the_flags_and_writes_to_cwd(tmp_path, monkeypatch, capsys):
    n, d = chinchilla_grid(4, 4)
    odd = tmp_path / "data" / "odd.csv"
    odd.parent.mkdir()
    pd.DataFrame({"model_params": n, "train_tokens_b": d / 1e9,
                  "val": joint_loss(n, d)}).to_csv(odd, index=False)
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(odd), "--bootstrap", "0"]) == 2
    assert "pass --loss COL" in capsys.readouterr().err
    assert main(["report", str(odd), "--loss", "val", "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert "--params COL, --data COL" in err and "model_params" in err
    assert main(["report", str(odd), "--loss", "nope"]) == 2
    assert "--loss nope: no such column" in capsys.readouterr().err
    assert not (tmp_path / "report").exists() and not (odd.parent / "report").exists()
    code = main(["report", str(odd), "--loss", "val", "--params", "model_params", "--data",
                 "train_tokens_b", "--bootstrap", "0"])
    assert code == 0 and (tmp_path / "report" / "report.html").exists()
    assert not (odd.parent / "report").exists()
    text = (tmp_path / "report" / "report.md").read_text()
    assert "tokens ≈" in text and "images seen" not in text


def test_mixing_warning_tells_replicates_from_groups():
    from analysis.selection import mixing_warning

    base = pd.DataFrame({"N": [1, 1, 2, 2, 3, 3], "D": [5] * 6,
                         "loss": [3.0, 3.1, 2.5, 2.6, 2.2, 2.25]})
    assert mixing_warning(base.assign(seed=[0, 1] * 3), ["N", "D"], "loss") is None
    mixed = mixing_warning(base.assign(dataset=["web", "code"] * 3), ["N", "D"], "loss")
    assert "mixes groups" in mixed and "--group-by dataset" in mixed
    unknown = mixing_warning(base, ["N", "D"], "loss")
    assert "3 points (N, D) carry several different losses" in unknown
    assert mixing_warning(base.iloc[::2], ["N", "D"], "loss") is None  # one loss per point
