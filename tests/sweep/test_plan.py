"""Spec parsing, expansion, validation, resource classes and dry-run launches (no training)."""

from __future__ import annotations

import json

import pytest
from sweep_helpers import ROOT, TINY_BASE, aimscale, write_spec

from aimscale.config import ConfigError, compose, run_id
from aimscale.sweep.launch import launch
from aimscale.sweep.manifest import LaunchLocked, launch_lock
from aimscale.sweep.plan import build_plan
from aimscale.sweep.spec import load_spec, parse_spec
from aimscale.sweep.submit import split_arrays


def spec_of(tmp_path, **sections):
    return parse_spec({"name": "t", "sweep_dir": str(tmp_path / "s"), "base": TINY_BASE,
                       **sections})


def test_grid_zip_variants_expand_to_the_product(tmp_path):
    spec = spec_of(
        tmp_path,
        grid={"model.depth": "range(1,4)", "optim.lr": [1.0e-3, 2.0e-3]},
        zip={"model.width": [32, 64], "model.heads": [2, 4]},
        variants={"causal": ["model.attention=causal"], "prefix": []},
    )
    plan = build_plan(spec)
    assert len(plan.runs) == 3 * 2 * 2 * 2
    widths = {(r.cfg.model.width, r.cfg.model.heads) for r in plan.runs}
    assert widths == {(32, 2), (64, 4)}  # zipped, not crossed
    assert {r.cfg.model.attention for r in plan.runs} == {"causal", "prefix"}
    assert {r.cfg.model.depth for r in plan.runs} == {1, 2, 3}


def test_run_ids_and_configs_match_compose(tmp_path):
    spec = spec_of(tmp_path, grid={"model.width": "32,64"},
                   variants={"raw": ["model.objective=pixel_raw"], "mim": [
                       "model.objective=mim", "model.mask_ratio=0.5"]})
    for run in build_plan(spec).runs:
        cfg = compose(run.overrides, base=TINY_BASE)
        assert run.cfg.model == cfg.model and run.cfg.data == cfg.data
        assert run.cfg.train == cfg.train and run.cfg.optim == cfg.optim
        assert run.run_id == run_id(cfg, run.axes)
        assert run.run_id.startswith(f"width{cfg.model.width}-variant")


def test_sizes_and_costs(tmp_path):
    from aimscale.flops import flops_per_image, param_counts

    spec = spec_of(tmp_path, grid={"model.width": "32,64"},
                   cost={"gpu_peak_flops": 1.0e12, "mfu": 0.5})
    for run in build_plan(spec).runs:
        counts = param_counts(run.cfg.model)
        assert (run.trunk_params, run.head_params) == (counts.trunk, counts.head)
        assert run.flops_per_image == flops_per_image(run.cfg.model)
        assert run.images_seen == 10 * 16 and run.patches_seen == 160 * 49
        assert run.total_flops == run.flops_per_image * 160
        assert run.gpu_hours == pytest.approx(run.total_flops / 0.5e12 / 3600)


def test_every_problem_is_listed_with_its_axes(tmp_path):
    spec = spec_of(tmp_path, grid={"model.heads": "2,3", "model.widht": "5"},
                   variants={"bad": ["model.order=zigzag"], "ok": []})
    with pytest.raises(ConfigError) as err:
        build_plan(spec)
    problems = err.value.problems
    assert any(p.startswith("[model.widht=5]") and "widht" in p for p in problems)
    assert any(p.startswith("[variant=bad]") or "zigzag" in p for p in problems)
    # heads=3 does not divide width 32: reported for the points where it is the only problem
    assert any("model.heads=3" in p for p in problems), problems


def test_resource_rules_pick_a_class_by_size(tmp_path):
    spec = spec_of(
        tmp_path, grid={"model.width": "32,128"},
        resources={"classes": {"small": {"cpus_per_task": 1},
                               "big": {"cpus_per_task": 2, "time_min": 5}},
                   "rules": [{"max_params": "1e5", "class": "small"}, {"class": "big"}]},
    )
    classes = {r.cfg.model.width: r.resource_class for r in build_plan(spec).runs}
    assert classes == {32: "small", 128: "big"}
    with pytest.raises(ConfigError, match="not defined"):
        spec_of(tmp_path, resources={"classes": {"a": {}}, "rules": [{"class": "b"}]})


def test_batch_must_split_over_ranks(tmp_path):
    spec = spec_of(tmp_path, grid={"train.batch_size": "15,16"},
                   resources={"classes": {"ddp": {"tasks_per_node": 2}}})
    with pytest.raises(ConfigError, match="does not split over the 2 ranks"):
        build_plan(spec)


def test_cli_overrides_apply_on_top_and_can_add_axes(tmp_path):
    path = write_spec(tmp_path / "s.yaml", "t", tmp_path / "s", grid={"model.width": "32,64"})
    plan = build_plan(load_spec(path, ["train.steps=7", "model.depth=1,2"]))
    assert len(plan.runs) == 4 and {r.cfg.train.steps for r in plan.runs} == {7}


def test_arrays_split_at_max_array_size(tmp_path):
    spec = spec_of(tmp_path, grid={"train.seed": "range(0,25)"})
    plan = build_plan(spec)
    groups = {"default": [(r.run_id, "d") for r in plan.runs]}
    arrays = split_arrays(groups, spec.resources.classes, 10)
    assert [len(a.run_ids) for a in arrays] == [10, 10, 5]
    result = launch(plan, "slurm", dry_run=True, max_array_size=10)
    assert len(result.arrays) == 3 and len(result.submitted) == 25
    assert not (tmp_path / "s").exists()  # a dry run writes nothing


def test_second_launch_is_refused_while_one_holds_the_lock(tmp_path):
    with launch_lock(tmp_path):
        with pytest.raises(LaunchLocked, match="another `aimscale launch`"):
            with launch_lock(tmp_path):
                pass
    with launch_lock(tmp_path):  # released
        pass


def test_plan_cli_json_and_errors(tmp_path):
    path = write_spec(tmp_path / "s.yaml", "t", tmp_path / "s", grid={"model.width": "32,64"})
    out = json.loads(aimscale("plan", str(path), "--json").stdout)
    assert len(out["runs"]) == 2 and out["totals"]["all"]["runs"] == 2
    bad = aimscale("plan", str(path), "model.nope=1", "train.steps=-1", check=False)
    assert bad.returncode == 2 and "model.nope" in bad.stderr and "train.steps" in bad.stderr
    assert "Nothing was submitted" in bad.stderr


SWEEPS = ROOT / "sweeps"
SHIPPED_SPECS = sorted(str(p.relative_to(SWEEPS)) for p in SWEEPS.rglob("*.yaml"))


def test_every_shipped_spec_is_tested():
    assert len(SHIPPED_SPECS) >= 18 and "exploration/patch4.yaml" in SHIPPED_SPECS


@pytest.mark.parametrize("spec", SHIPPED_SPECS)
def test_shipped_specs_plan(spec):
    plan = build_plan(load_spec(ROOT / "sweeps" / spec))
    assert plan.runs and all(r.total_flops > 0 for r in plan.runs)


def test_launch_refuses_runs_whose_data_is_missing(tmp_path):
    """Plan works away from the data; launch checks it first and submits nothing."""
    from aimscale.sweep.launch import DataProblems, launch
    from aimscale.sweep.plan import build_plan
    from aimscale.sweep.spec import parse_spec

    spec = parse_spec({
        "name": "nodata", "sweep_dir": str(tmp_path / "sweep"),
        "base": {"model": {"preset": "aim-tiny", "width": 32, "heads": 2, "depth": 1},
                 "data": {"sources": [{"kind": "image-folder", "path": str(tmp_path / "no")}]},
                 "train": {"steps": 2}},
        "grid": {"model.depth": "1,2"},
    })
    plan = build_plan(spec)
    assert len(plan.runs) == 2
    with pytest.raises(DataProblems, match="does not exist|not found|missing"):
        launch(plan, "local")
    assert not (tmp_path / "sweep" / "sweep.json").exists()


PROBE = {"kind": "linear", "dataset": "synthetic", "epochs": 1}


def test_probe_blocks_beyond_the_trunk_are_refused_at_plan_time(tmp_path):
    spec = spec_of(tmp_path, grid={"model.depth": "2,12"},
                   probe=[{**PROBE, "blocks": "7-9"}, {**PROBE, "name": "ok"}])
    with pytest.raises(ConfigError) as err:
        build_plan(spec)
    problems = err.value.problems
    assert len(problems) == 1, problems  # depth 12 holds blocks 7-9; the second probe is fine
    assert problems[0].startswith("[model.depth=2] probe[0] (linear, blocks=7-9):")
    assert "out of range for a trunk with 2 blocks" in problems[0]


def test_probe_checkpoint_that_training_does_not_keep_is_refused(tmp_path):
    # TINY_BASE: 10 steps, a checkpoint every 5, keep 2 -> steps 5 and 10 remain
    ok = spec_of(tmp_path, probe=[{**PROBE, "checkpoint": "5"}])
    assert len(build_plan(ok).runs) == 1
    bad = spec_of(tmp_path, grid={"train.keep_checkpoints": "1,2"},
                  probe=[{**PROBE, "checkpoint": "5"}])
    with pytest.raises(ConfigError) as err:
        build_plan(bad)
    assert err.value.problems == [
        "[train.keep_checkpoints=1] probe[0] (linear, blocks=last): probe checkpoint=5: training "
        "keeps the checkpoints of steps [10] only; pick one of them, or keep step 5 with "
        "train.keep_fractions"]


def test_eval_images_beyond_val_images_are_refused_at_plan_time(tmp_path):
    spec = spec_of(tmp_path, grid={"data.val_images": "32,64"})  # TINY_BASE evaluates on 64
    with pytest.raises(ConfigError) as err:
        build_plan(spec)
    assert err.value.problems == [
        "[data.val_images=32] train.eval_images=64 exceeds data.val_images=32, the images held "
        "out per source; lower train.eval_images or raise data.val_images"]


def test_launch_refuses_bad_probes_and_values_with_exit_2_and_writes_nothing(tmp_path):
    sweep = tmp_path / "s"
    path = write_spec(tmp_path / "s.yaml", "t", sweep, grid={"optim.lr": "1e-3,nan"},
                      probe=[{**PROBE, "blocks": "7-9"}])
    out = aimscale("launch", str(path), "--executor", "local", check=False)
    assert out.returncode == 2, out.stderr
    assert "optim.lr must be a finite number, got nan" in out.stderr
    assert "out of range for a trunk with 2 blocks" in out.stderr
    assert "Nothing was submitted" in out.stderr and "Traceback" not in out.stderr
    assert not sweep.exists()


def test_sweep_name_cannot_escape_sweep_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("../../../escaped", "..", "a/../../b"):
        spec = parse_spec({"name": name, "base": TINY_BASE})
        where = (tmp_path / spec.sweep_dir).resolve()
        assert where.parent == tmp_path / "sweep_runs", (name, spec.sweep_dir)
        assert spec.name == name  # the name itself is kept (wandb group, job names)
        assert all(r.cfg.run_dir.startswith(spec.sweep_dir + "/") for r in build_plan(spec).runs)


def test_every_run_id_comes_from_config_run_id(tmp_path, monkeypatch):
    from aimscale import config

    calls = []
    real = config.run_id

    def counting(cfg, varied=None):
        calls.append(varied)
        return real(cfg, varied)

    monkeypatch.setattr(config, "run_id", counting)
    plan = build_plan(spec_of(tmp_path, grid={"model.width": "32,64", "train.seed": "0,1,2"}))
    assert len(calls) == len(plan.runs) == 6
    assert [r.run_id for r in plan.runs] == [real(r.cfg, r.axes) for r in plan.runs]


def test_planned_configs_are_independent(tmp_path):
    spec = spec_of(tmp_path, grid={"model.width": "32,64"},
                   variants={"two": ["train.keep_fractions=[0.5]"], "one": []})
    plan = build_plan(spec)
    first, second = plan.runs[0], plan.runs[1]
    assert first.cfg.data.sources[0].weight == second.cfg.data.sources[0].weight == 1.0
    first.cfg.data.sources[0].weight = 0.25
    first.cfg.data.sources.append(first.cfg.data.sources[0])
    first.cfg.train.keep_fractions.append(0.75)
    first.cfg.optim.lr = 9.0
    for other in plan.runs[1:]:
        assert other.cfg.data.sources[0].weight == 1.0 and len(other.cfg.data.sources) == 1
        assert 0.75 not in other.cfg.train.keep_fractions and other.cfg.optim.lr != 9.0
    assert plan.base_cfg.data.sources[0].weight == 1.0 and plan.base_cfg.optim.lr != 9.0
    # a second plan of the same spec is untouched by edits to the first
    again = build_plan(spec)
    assert [r.run_id for r in again.runs] == [r.run_id for r in plan.runs]
    assert again.runs[0].cfg.data.sources[0].weight == 1.0
