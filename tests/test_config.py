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


def test_non_finite_and_negative_optimiser_values_are_refused():
    with pytest.raises(ConfigError) as err:
        compose(["optim.lr=nan", "optim.weight_decay=inf", "optim.grad_clip=-1",
                 "optim.beta1=2"])
    assert err.value.problems == [
        "optim.lr must be a finite number, got nan",
        "optim.weight_decay must be a finite number, got inf",
        "optim.beta1/beta2 must be in [0, 1), got 2.0/0.95",
        "optim.grad_clip must be >= 0, got -1.0",
    ]
    with pytest.raises(ConfigError, match="optim.weight_decay must be >= 0, got -0.1"):
        compose(["optim.weight_decay=-0.1"])
    with pytest.raises(ConfigError, match="optim.lr must be a finite number, got -inf"):
        compose(["optim.lr=-inf"])


def test_eval_images_must_fit_in_the_held_out_images():
    with pytest.raises(ConfigError, match="train.eval_images=512 exceeds data.val_images=100"):
        compose(["data.val_images=100"])
    compose(["data.val_images=512"])  # exactly enough
    two = "data.sources=[{kind:synthetic,weight:0.5},{kind:synthetic,size:5000,weight:0.5}]"
    compose([two, "data.val_images=256"])  # 256 held out per source, 256 + 256 asked for
    with pytest.raises(ConfigError, match=r"eval_images=512 \(259 from one source\)"):
        compose([two.replace("weight:0.5}]", "weight:0.49}]"), "data.val_images=256"])


def test_train_cli_lists_every_problem_and_exits_2(tmp_path, capsys):
    from aimscale.cli import main

    code = main(["train", "optim.lr=nan", "optim.weight_decay=-1", "data.val_images=10",
                 f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "3 problem(s), nothing was run" in err
    assert "optim.lr" in err and "optim.weight_decay" in err and "train.eval_images" in err
    assert not (tmp_path / "run").exists()


def test_config_yaml_with_an_unknown_key_is_a_config_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(compose([])) + "extra_key: 1\n")
    with pytest.raises(ConfigError, match=f"{path}: Key 'extra_key' not in 'RunConfig'"):
        from_yaml(path)
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=str(path)):
        from_yaml(path)


def test_run_id_is_the_canonical_json_hash_of_the_result_keys():
    """One recipe: sha256 of the sorted JSON of `result_dict` (what OmegaConf gives); an int in
    a float field hashes as the float, as OmegaConf stores it."""
    import hashlib
    import json

    from aimscale.config import RunConfig, result_dict, to_dict
    from aimscale.train.config import OptimConfig

    mixed = compose(["model=aim-600m", "train.keep_fractions=[0.5,1]",
                     "data.sources=[{kind:synthetic},{kind:mnist,weight:0.2}]"])
    for cfg in (RunConfig(), compose([]), mixed):
        tree = to_dict(cfg)
        for key in ("logging", "run_dir", "sweep_name"):
            tree.pop(key)
        tree["train"].pop("device"), tree["train"].pop("peak_flops")
        tree["data"].pop("num_workers")
        tree.pop("branch")  # not a cooldown branch: the section is not hashed
        assert result_dict(cfg) == tree
        text = json.dumps(tree, sort_keys=True, separators=(",", ":"))
        assert config_hash(cfg) == hashlib.sha256(text.encode()).hexdigest()[:8]
    assert config_hash(RunConfig(optim=OptimConfig(lr=1))) == config_hash(compose(["optim.lr=1"]))
    # values that compare equal: -0.0 is the same run as 0.0; text "1" and "1.0" are not
    assert config_hash(compose([])) == config_hash(RunConfig(optim=OptimConfig(min_lr=-0.0)))
    assert result_dict(RunConfig(optim=OptimConfig(min_lr=-0.0)))["optim"]["min_lr"] == 0.0
    assert config_hash(compose(["model.name='1'"])) != config_hash(compose(["model.name='1.0'"]))
    # the recipe of existing run directories (changes only when a result key is added/changed)
    assert config_hash(compose([])) == "8678c951"
    # a cooldown branch's section is hashed (where it branches from changes the run)
    branch = ["optim.schedule=wsd", "branch.trunk=abc", "branch.step=50", "branch.warmup=5"]
    assert "branch" in result_dict(compose(branch))
    assert config_hash(compose(branch)) != config_hash(compose(branch[:1]))
