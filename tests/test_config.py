"""The run configuration: presets, override grammar, validation, run ids."""

import pytest

from aimscale.config import ConfigError, compose, config_hash, from_yaml, run_id, to_yaml


def test_preset_then_override():
    cfg = compose(["model=aim-600m", "model.depth=12"])
    assert (cfg.model.width, cfg.model.depth, cfg.model.heads) == (1536, 12, 12)
    assert (cfg.model.image_size, cfg.model.patch_size, cfg.model.channels) == (224, 14, 3)


def test_all_problems_reported_together():
    with pytest.raises(ConfigError) as err:
        compose(["model.widht=3", "model.heads=5", "train.steps=0", "model.order=zigzag"])
    problems = err.value.problems
    assert len(problems) == 4
    assert any("widht" in p for p in problems)
    assert any("heads=5 must divide" in p for p in problems)
    assert any("train.steps must be positive" in p for p in problems)
    assert any("zigzag" in p for p in problems)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="aim-tiny"):
        compose(["model=aim-9b"])


def test_sweep_syntax_is_rejected_for_a_single_run():
    with pytest.raises(ConfigError, match="is a sweep"):
        compose(["model.width=64,128"])


def test_base_dict_with_preset():
    cfg = compose(["train.steps=7"], base={"model": {"preset": "aim-small", "depth": 2}})
    assert (cfg.model.width, cfg.model.depth, cfg.train.steps) == (256, 2, 7)


def test_run_id_ignores_logging_and_paths_but_not_results():
    a = compose(["logging.wandb=true", "run_dir=/tmp/x"])
    b = compose([])
    c = compose(["optim.lr=0.002"])
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert run_id(b, {"model.width": 128}).startswith("width128-")


def test_yaml_round_trip(tmp_path):
    cfg = compose(["model=aim-1b", "data.num_images=1000"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert from_yaml(path) == cfg
