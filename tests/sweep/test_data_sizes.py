"""`data_sizes:` in a spec: one trunk and its cooldown branches per point; plan counts the trunk
once and each branch's cooldown; launch trains a family in one task; collect has `branch_of`."""

from __future__ import annotations

import pytest
from sweep_helpers import TINY_BASE, aimscale, write_spec

from aimscale.config import ConfigError
from aimscale.sweep.plan import build_plan
from aimscale.sweep.spec import parse_spec

WSD_BASE = {**TINY_BASE, "optim": {"schedule": "wsd", "cooldown_fraction": 0.25}}
SIZES = [64, 128, 192]  # images: 4, 8 and 12 steps of 16


def spec_of(tmp_path, base=WSD_BASE, **sections):
    return parse_spec({"name": "t", "sweep_dir": str(tmp_path / "s"), "base": base,
                       "data_sizes": SIZES, **sections})


def test_plan_counts_the_trunk_once_and_each_cooldown(tmp_path):
    plan = build_plan(spec_of(tmp_path, grid={"model.width": "32,64"}))
    assert len(plan.runs) == 6
    for width in (32, 64):
        runs = {r.images_seen: r for r in plan.runs if r.cfg.model.width == width}
        trunk = runs[192]
        fpi = trunk.flops_per_image
        assert trunk.branch_of is None and trunk.cfg.train.steps == 12
        assert trunk.cfg.train.kept_steps() == [3, 6, 12]  # the branch points are kept
        for images, point in ((64, 3), (128, 6)):
            branch = runs[images]
            assert branch.branch_of == trunk.run_id and branch.branch_step == point
            assert branch.cfg.branch.step == point and branch.cfg.train.steps == images // 16
            assert branch.total_flops == fpi * images  # the equivalent run's
            assert branch.spent_flops == fpi * (images - 16 * point)  # the cooldown only
            assert branch.axes["data_size"] == str(images)
    fpis = {r.cfg.model.width: r.flops_per_image for r in plan.runs}
    spent = sum(fpi * 16 * (12 + 1 + 2) for fpi in fpis.values())
    assert plan.totals()["all"]["total_flops"] == spent
    separate = sum(fpi * 16 * (4 + 8 + 12) for fpi in fpis.values())
    assert spent / separate == pytest.approx(15 / 24)
    assert plan.to_json()["runs"][1]["branch_of"] == plan.runs[0].run_id


def test_a_branch_keeps_only_fractions_after_its_branch_point(tmp_path):
    base = {**WSD_BASE, "train": {**WSD_BASE["train"], "keep_fractions": [0.5, 0.9]}}
    runs = {r.images_seen: r.cfg.train for r in build_plan(spec_of(tmp_path, base=base)).runs}
    assert runs[192].kept_steps() == [3, 6, 11, 12]  # 0.5, 0.9 of 12 and the branch points
    assert runs[128].keep_fractions == [0.9] and runs[128].kept_steps() == [7, 8]  # after 6
    assert runs[64].keep_fractions == [0.9] and runs[64].kept_steps() == [4]  # 0.9 · 4 → 4


@pytest.mark.parametrize(("base", "sections", "message"), [
    (TINY_BASE, {}, "data_sizes needs optim.schedule=wsd"),
    (WSD_BASE, {"data_sizes": [64, 250]}, "250 images is not a whole number of steps at "
                                           "train.batch_size=16; use a multiple of 16"),
    ({**WSD_BASE, "optim": {"schedule": "wsd", "warmup_fraction": 0.3}}, {},
     "cooldown would start at step 3, inside the trunk's warmup of 4 steps"),
    (WSD_BASE, {"grid": {"train.steps": "10,20"}}, "drop the train.steps axis"),
    (WSD_BASE, {"data_sizes": [64, "lots"]}, "'lots' is not a positive whole number"),
    (WSD_BASE, {"data_sizes": 64}, "expected a list of data sizes in images seen"),
])
def test_bad_data_sizes_are_refused_before_anything(tmp_path, base, sections, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_plan(spec_of(tmp_path, base=base, **sections))


def test_plan_cli_exit_2_and_nothing_written(tmp_path):
    path = write_spec(tmp_path / "bad.yaml", "bad", tmp_path / "s", data_sizes=[64, 128])
    out = aimscale("launch", str(path), "--executor", "debug", check=False)
    assert out.returncode == 2, out.stderr
    assert "data_sizes needs optim.schedule=wsd" in out.stderr
    assert not (tmp_path / "s").exists()
    good = write_spec(tmp_path / "good.yaml", "good", tmp_path / "s", base=WSD_BASE,
                      data_sizes=SIZES)
    out = aimscale("plan", str(good))
    assert "cooldown branches" in out.stdout and "<-" in out.stdout


def test_launch_trains_the_family_in_one_task_and_collect_has_branch_of(tmp_path):
    from aimscale.sweep.collect import collect
    from aimscale.sweep.launch import launch
    from aimscale.train.branches import branch_dirs
    from aimscale.train.runstate import read_summary

    plan = build_plan(spec_of(tmp_path))
    trunk = plan.runs[0]
    result = launch(plan, executor="debug")
    assert result.submitted == [trunk.run_id]  # one task: the trunk, then its branches
    assert result.branches == {trunk.run_id: [r.run_id for r in plan.runs[1:]]}
    sweep = tmp_path / "s"
    assert [d.name for d in branch_dirs(sweep / trunk.run_id)] == result.branches[trunk.run_id]
    runs, curves = collect(sweep)
    assert set(runs["status"]) == {"done"}
    rows = runs.set_index("images_seen")
    assert rows.loc[192, "branch_of"] == ""
    assert rows.loc[64, "branch_of"] == rows.loc[128, "branch_of"] == trunk.run_id
    fpi = trunk.flops_per_image
    assert rows.loc[64, "total_flops"] == fpi * 64
    assert rows.loc[64, "flops_spent"] == fpi * (64 - 16 * 3)
    assert rows.loc[192, "flops_spent"] == rows.loc[192, "total_flops"] == fpi * 192
    # each branch's curve is whole: the trunk's steps up to its branch point, then its cooldown
    for run in plan.runs:
        steps = curves[curves.run_id == run.run_id]["step"].tolist()
        assert steps == list(range(1, run.cfg.train.steps + 1))
        assert read_summary(sweep / run.run_id)["images_seen"] == run.images_seen
    # a second launch finds the whole family done and submits nothing
    again = launch(plan, executor="debug")
    assert again.submitted == [] and set(again.skipped.values()) == {"done"}


def test_baselines_are_owned_by_trunks_never_by_branches(tmp_path):
    """A branch is trained inside its trunk's task, so only a trunk's job can compute a baseline."""
    probe = {"kind": "both", "dataset": "synthetic", "limit_train": 200, "limit_test": 100,
             "epochs": 1, "batch_size": 64}
    plan = build_plan(spec_of(tmp_path, grid={"model.width": "32,64"}, probe=[probe],
                              baselines=["pixels", "untrained"]))
    trunks = {r.run_id for r in plan.runs if r.branch_of is None}
    assert sorted(b.features for b in plan.baselines) == ["pixels", "untrained", "untrained"]
    assert {b.owner for b in plan.baselines} <= trunks


def test_one_probe_task_probes_the_trunk_its_branches_and_the_baseline(tmp_path):
    """Probes are their own task after the family's training task: one probe task covers the
    trunk and each branch (and the untrained baseline its trunk owns); status says done/done."""
    from aimscale.sweep.collect import collect
    from aimscale.sweep.launch import launch
    from aimscale.sweep.manifest import read_manifest
    from aimscale.sweep.state import sweep_states

    probe = {"kind": "linear", "dataset": "synthetic", "limit_train": 64, "limit_test": 32,
             "epochs": 1, "batch_size": 32}
    plan = build_plan(spec_of(tmp_path, probe=[probe], baselines=["untrained"]))
    result = launch(plan, executor="debug")
    assert [a.run_ids for a in result.probe_arrays] == [[[r.run_id for r in plan.runs]]]
    sweep = tmp_path / "s"
    states = {s.run_id: s for s in sweep_states(sweep, read_manifest(sweep))}
    assert {(s.train, s.probe) for s in states.values()} == {("done", "done")}
    runs, _ = collect(sweep)
    trained = runs[runs["features"] == "trunk"]
    assert len(trained) == 3 and trained["probe.linear_last.top1"].notna().all()
    baseline = runs[runs["features"] == "untrained"]
    assert len(baseline) == 1 and baseline["baseline_owner"].iloc[0] == plan.runs[0].run_id
    assert baseline["probe.linear_last.top1"].notna().all()
