"""Size rules: values computed from each run's model size, evaluated without `eval`, shown in
`plan`; every bad rule is refused by name before anything is written."""

from __future__ import annotations

import json

import pytest
from sweep_helpers import TINY_BASE, aimscale, write_spec

from aimscale.config import ConfigError, run_id
from aimscale.sweep.plan import build_plan
from aimscale.sweep.size_rules import parse_size_rules, size_variables
from aimscale.sweep.spec import parse_spec

WIDTHS = {"model.width": [32, 64, 128], "model.heads": [2, 4, 8]}
RULES = {
    "optim.lr": "3e-3 * (width / 128) ** -1",
    "train.batch_size": "16 * round(sqrt(params / 25000))",
    "optim.warmup_fraction": "min(0.1, 2 / steps) + 0 * depth // heads",
}


def spec_of(tmp_path, rules, **sections):
    return parse_spec({"name": "t", "sweep_dir": str(tmp_path / "s"), "base": TINY_BASE,
                       "zip": WIDTHS, "size_rules": rules, **sections})


def test_values_follow_the_model_size(tmp_path):
    plan = build_plan(spec_of(tmp_path, RULES))
    # trunk parameters (closed form): 25,504 / 100,160 / 396,928 -> sqrt(params / 25k) ≈ 1, 2, 4
    assert [size_variables(r.cfg)["params"] for r in plan.runs] == [25504, 100160, 396928]
    assert [r.size_values for r in plan.runs] == [
        {"optim.lr": pytest.approx(1.2e-2), "train.batch_size": 16, "optim.warmup_fraction": 0.1},
        {"optim.lr": pytest.approx(6e-3), "train.batch_size": 32, "optim.warmup_fraction": 0.1},
        {"optim.lr": pytest.approx(3e-3), "train.batch_size": 64, "optim.warmup_fraction": 0.1},
    ]
    run = plan.runs[2]
    assert run.cfg.optim.lr == pytest.approx(3e-3) and run.cfg.train.batch_size == 64
    assert isinstance(run.cfg.train.batch_size, int)
    assert [r.images_seen for r in plan.runs] == [160, 320, 640]  # 10 steps x the rule's batch
    assert run.run_id == run_id(run.cfg, run.axes)  # the computed values are in the hash
    _base, diffs = plan.flat_configs()  # what `collect` reads: the values become columns
    assert diffs[run.run_id]["train.batch_size"] == 64


def test_variables_are_read_before_any_rule(tmp_path):
    rules = {"train.steps": "steps * 3", "train.eval_every": "steps"}
    plan = build_plan(spec_of(tmp_path, rules))
    assert plan.runs[0].size_values == {"train.steps": 30, "train.eval_every": 10}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os').system('touch pwned')", "only the functions min, max, round"),
        ("width.bit_length()", "only the functions"),
        ("(lambda: 1)()", "only the functions"),
        ("depth if width else 1", "IfExp is not allowed"),
        ("[width][0]", "Subscript is not allowed"),
        ("width % 3", "operator Mod is not allowed"),
        ("'3e-3'", "is not a number"),
        ("lr * 2", "unknown variable 'lr'"),
        ("max(width)", "max() takes 2-64"),
        ("round(width, ndigits=1)", "round() takes 1"),
        ("3e-3 *", "cannot parse"),
    ],
)
def test_anything_but_arithmetic_is_refused(tmp_path, text, reason):
    with pytest.raises(ConfigError) as err:
        spec_of(tmp_path, {"optim.lr": text})
    assert "size_rules.optim.lr" in str(err.value) and reason in str(err.value)
    assert not (tmp_path / "pwned").exists()


def test_targets_are_checked(tmp_path):
    with pytest.raises(ConfigError) as err:
        spec_of(tmp_path, {"model.depth": "2", "train.nope": "1", "model.heads": "1",
                           "train.keep_fractions": "0.5"})
    problems = err.value.problems
    assert len(problems) == 4
    assert "size_rules.model.depth: a size rule cannot set model.*" in problems[0]
    assert "'train.nope' is not a numeric setting" in problems[1]
    with pytest.raises(ConfigError, match="optim.lr is also an axis"):
        spec_of(tmp_path, {"optim.lr": "1e-3"}, grid={"optim.lr": [1e-3, 2e-3]})
    raw = {"name": "t", "base": TINY_BASE, "size_rules": {"optim.lr": "1e-3"}}
    with pytest.raises(ConfigError, match="optim.lr is also an axis or a command-line override"):
        parse_spec(raw, ["optim.lr=5e-3"])
    spec = parse_spec({**raw, "overrides": ["optim.lr=5e-3"]})  # the spec's own: replaced
    assert build_plan(spec).runs[0].cfg.optim.lr == 1e-3


def test_run_time_failures_name_the_rule_and_the_run(tmp_path):
    rules = {"optim.lr": "1e-3 / (width - 64)", "train.batch_size": "width / 3",
             "optim.min_lr": "sqrt(32 - width)", "optim.beta2": "(32 - width) ** 0.5",
             "train.steps": "10 ** (width * 10)"}
    with pytest.raises(ConfigError) as err:
        build_plan(spec_of(tmp_path, rules))
    text = str(err.value)
    assert "[model.width=64 model.heads=4] size rule optim.lr: '1e-3 / (width - 64)': division " \
           "by zero" in text
    assert "size rule train.batch_size: 'width / 3': train.batch_size is an integer setting but " \
           "the rule gives 10.6667; wrap the expression in round(...)" in text
    assert "size rule optim.min_lr: 'sqrt(32 - width)': math domain error" in text
    assert "(-32) ** 0.5 is not a real number" in text
    assert "size rule train.steps: '10 ** (width * 10)': a value is too large" in text
    # a rule whose value the config refuses: the config's own check says why
    with pytest.raises(ConfigError, match="optim.lr must be positive"):
        build_plan(spec_of(tmp_path, {"optim.lr": "-1e-3 * width"}))


def test_plan_cli_shows_the_values_and_refuses_bad_rules(tmp_path):
    path = write_spec(tmp_path / "s.yaml", "t", tmp_path / "s", zip=WIDTHS, size_rules=RULES)
    text = aimscale("plan", str(path)).stdout
    assert "size rules:\n  optim.lr = 3e-3 * (width / 128) ** -1" in text
    assert "optim.lr=0.006 train.batch_size=32 optim.warmup_fraction=0.1" in text
    out = json.loads(aimscale("plan", str(path), "--json").stdout)
    assert [r["size_values"]["train.batch_size"] for r in out["runs"]] == [16, 32, 64]
    bad = write_spec(tmp_path / "bad.yaml", "t", tmp_path / "s", zip=WIDTHS,
                     size_rules={"optim.lr": "open('x')", "train.steps": "steps +"})
    result = aimscale("plan", str(bad), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "size_rules.optim.lr" in result.stderr and "size_rules.train.steps" in result.stderr
    assert "Nothing was submitted" in result.stderr
    assert not (tmp_path / "s").exists()


def test_no_rules_no_values():
    assert parse_size_rules(None) == ([], [])
    assert parse_size_rules([1]) == (
        [], ["size_rules: expected a mapping of config key to expression, got [1]"]
    )
