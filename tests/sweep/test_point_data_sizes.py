"""`data_sizes` as a zip column: each zip entry its own trunk and cooldown branches (a staircase
design), planned, launched and collected exactly as a global `data_sizes:` list of that point."""

from __future__ import annotations

import pytest
from sweep_helpers import TINY_BASE, aimscale, write_spec

from aimscale.config import ConfigError
from aimscale.sweep.plan import build_plan
from aimscale.sweep.spec import parse_spec

WSD_BASE = {**TINY_BASE, "optim": {"schedule": "wsd", "cooldown_fraction": 0.25}}
# batch 16: width 32 trains 12 steps (branches at 4, 8), width 64 16 (branch at 8), width 48 6
STAIRS = {"model.width": [32, 64, 48],
          "data_sizes": [[64, 128, 192], [256, 128], [96]]}


def spec_of(tmp_path, base=WSD_BASE, **sections):
    return parse_spec({"name": "t", "sweep_dir": str(tmp_path / "s"), "base": base, **sections})


def test_each_zip_entry_is_its_own_trunk_and_branches(tmp_path):
    plan = build_plan(spec_of(tmp_path, zip=STAIRS))
    rows = {(r.cfg.model.width, r.images_seen): r for r in plan.runs}
    assert sorted(rows) == [(32, 64), (32, 128), (32, 192), (48, 96), (64, 128), (64, 256)]
    fpi = {w: rows[w, d].flops_per_image for w, d in rows}
    # the trunks: ordinary runs of the entry's largest size, keeping the branch points
    for width, images, kept in ((32, 192, [3, 6, 12]), (64, 256, [6, 16]), (48, 96, [6])):
        trunk = rows[width, images]
        assert trunk.branch_of is None and trunk.cfg.train.steps == images // 16
        assert trunk.axes == {"model.width": str(width), "data_size": str(images)}
        assert trunk.run_id.startswith(f"width{width}-datasize{images}-")
        assert trunk.cfg.train.kept_steps() == kept
        assert trunk.spent_flops == trunk.total_flops == fpi[width] * images
    # the branches: each of its own entry's trunk, spending its cooldown only
    for width, images, trunk_images, step in ((32, 64, 192, 3), (32, 128, 192, 6),
                                              (64, 128, 256, 6)):
        branch = rows[width, images]
        assert branch.branch_of == rows[width, trunk_images].run_id
        assert branch.branch_step == step and branch.cfg.train.steps == images // 16
        assert branch.total_flops == fpi[width] * images
        assert branch.spent_flops == fpi[width] * (images - 16 * step)
    assert plan.totals()["all"]["total_flops"] == (
        fpi[32] * (192 + 16 + 32) + fpi[64] * (256 + 32) + fpi[48] * 96)
    summary = {run["run_id"]: run for run in plan.to_json()["runs"]}
    branch = rows[64, 128]
    assert summary[branch.run_id]["branch_of"] == rows[64, 256].run_id
    assert summary[branch.run_id]["flops_spent"] == fpi[64] * 32


def test_a_zip_entry_plans_as_the_global_list_of_that_point(tmp_path):
    """Same run ids, sizes, branch points and FLOPs as `grid: {model.width: w}` with the global
    `data_sizes:` of that entry: one implementation for both forms."""
    zipped = build_plan(spec_of(tmp_path, zip=STAIRS)).runs
    for width, sizes in zip(STAIRS["model.width"], STAIRS["data_sizes"], strict=True):
        alone = build_plan(spec_of(tmp_path, grid={"model.width": [width]}, data_sizes=sizes))
        mine = [r for r in zipped if r.cfg.model.width == width]
        assert [r.summary() for r in mine] == [r.summary() for r in alone.runs]
        assert [r.cfg for r in mine] == [r.cfg for r in alone.runs]


def test_plan_cli_lists_each_trunk_with_its_own_sizes(tmp_path):
    path = write_spec(tmp_path / "s.yaml", "t", tmp_path / "s", base=WSD_BASE, zip=STAIRS)
    out = aimscale("plan", str(path)).stdout
    plan = build_plan(spec_of(tmp_path, zip=STAIRS))
    trunk = {r.cfg.model.width: r.run_id for r in plan.runs if not r.branch_of}
    section = out.split("data sizes per trunk")[1].split("\n\n")[0].splitlines()
    assert section[0].endswith(": 3 trunk(s)")
    listed = {line.split()[0]: line.split()[1:] for line in section[1:]}
    assert listed == {trunk[32]: ["64", "128", "192"], trunk[64]: ["128", "256"],
                      trunk[48]: ["96"]}
    assert "cooldown branches (data_sizes" in out and f"<- {trunk[64]} at step 6" in out
    assert not (tmp_path / "s").exists()


def test_launch_trains_each_family_and_collect_has_a_row_per_branch(tmp_path):
    from aimscale.sweep.collect import collect
    from aimscale.sweep.launch import launch

    plan = build_plan(spec_of(tmp_path, zip={"model.width": [32, 64],
                                             "data_sizes": [[64, 128], [64]]}))
    trunks = [r.run_id for r in plan.runs if r.branch_of is None]
    branch = next(r for r in plan.runs if r.branch_of)
    result = launch(plan, executor="debug")
    assert result.submitted == trunks  # one task per family; the branch inside its trunk's
    assert result.branches == {trunks[0]: [branch.run_id]}
    runs, _ = collect(tmp_path / "s")
    assert set(runs["status"]) == {"done"} and len(runs) == 3
    rows = {(w, d): row for w, d, row in zip(runs["model.width"], runs["images_seen"],
                                             runs.to_dict("records"), strict=True)}
    assert sorted(rows) == [(32, 64), (32, 128), (64, 64)]
    assert rows[32, 64]["branch_of"] == trunks[0] == rows[32, 128]["run_id"]
    assert rows[32, 128]["branch_of"] == rows[64, 64]["branch_of"] == ""
    assert rows[64, 64]["run_id"] == trunks[1]
    fpi = branch.flops_per_image
    assert rows[32, 64]["flops_spent"] == fpi * (64 - 16 * 3)
    assert rows[32, 64]["total_flops"] == fpi * 64
    assert rows[32, 128]["flops_spent"] == fpi * 128


@pytest.mark.parametrize(("sections", "message"), [
    ({"zip": {**STAIRS, "data_sizes": [[64], [64], [64]]}, "data_sizes": [64, 128]},
     "data_sizes is given both as a spec key and as a column of zip[0]"),
    ({"grid": {"model.depth": "1,2", "data_sizes": [[64], [128]]}},
     "grid.data_sizes: data sizes are not a grid axis; give each point its own list as a zip"),
    ({"zip": {**STAIRS, "data_sizes": [[64, 128], 64, [96]]}},
     "zip[0].data_sizes[1]: expected a list of data sizes in images seen"),
    ({"zip": {**STAIRS, "data_sizes": [64, 128, 192]}},
     "zip[0].data_sizes: expected one list of data sizes per zip entry"),
    ({"zip": {**STAIRS, "data_sizes": [[64], [128]]}},
     "zip[0]: zipped axes need the same number of values, got model.width: 3, data_sizes: 2"),
    ({"zip": {**STAIRS, "data_sizes": [[64, "lots"], [64], [96]]}},
     "zip[0].data_sizes[0]: 'lots' is not a positive whole number of images"),
    ({"zip": {**STAIRS, "data_sizes": [[64, 64], [64], [96]]}},
     "zip[0].data_sizes[0]: [64, 64] lists a size twice"),
    ({"zip": {**STAIRS, "train.steps": [4, 8, 12]}}, "drop the train.steps axis"),
    ({"zip": STAIRS, "grid": {"train.steps": "4,8"}}, "drop the train.steps axis"),
    ({"zip": STAIRS, "size_rules": {"train.steps": "width"}},
     "size_rules.train.steps: train.steps is also an axis"),
    ({"zip": [STAIRS, {"model.depth": [1, 2], "data_sizes": [[64], [64]]}]},
     "data_sizes is a column of zip[0] and zip[1]; a point has one list of sizes"),
    ({"zip": {"data_sizes": [[64], [128]]}},
     "zip[0]: a data_sizes column needs a column of config values beside it"),
    ({"zip": {**STAIRS, "data_sizes": [[64, 250], [64], [96]]}},
     "[model.width=32] data_sizes: 250 images is not a whole number of steps"),
])
def test_bad_per_point_sizes_are_refused(tmp_path, sections, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[")):
        build_plan(spec_of(tmp_path, **sections))


@pytest.mark.parametrize(("command", "sections", "message"), [
    ("launch", {"zip": STAIRS, "data_sizes": [64, 128]}, "given both as a spec key"),
    ("plan", {"zip": {**STAIRS, "data_sizes": [[64], [128]]}}, "data_sizes: 2"),
])
def test_cli_exits_2_and_writes_nothing(tmp_path, command, sections, message):
    path = write_spec(tmp_path / "bad.yaml", "bad", tmp_path / "s", base=WSD_BASE, **sections)
    args = ("launch", str(path), "--executor", "debug") if command == "launch" else (
        "plan", str(path))
    out = aimscale(*args, check=False)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "s").exists()
