"""`aimscale train`: a full Fashion-MNIST run through the CLI; errors stop it before it runs."""

from __future__ import annotations

import json

from aimscale.cli import main
from aimscale.config import config_hash, from_yaml
from aimscale.train.checkpoint import list_checkpoints, load_checkpoint
from aimscale.train.metrics import read_metrics

from .conftest import STEPS, compose_reference_config

ROW_KEYS = {
    "step",
    "images_seen",
    "patches_seen",
    "flops",
    "lr",
    "loss",
    "grad_norm",
    "skipped_images",
    "time_s",
    "images_per_s",
    "model_flops_per_s",
    "mfu",
}
SUMMARY_KEYS = {
    "status",
    "final_loss",
    "final_val_loss",
    "best_val_loss",
    "trunk_params",
    "head_params",
    "flops_per_image",
    "total_flops",
    "images_seen",
    "patches_seen",
    "steps",
    "wall_time_s",
    "skipped_images",
    "model_flops_per_s",
    "mfu",
}


def test_cli_run_matches_the_run_directory_contract(cli_run):
    run_dir, result = cli_run
    # provenance.diff only when the checkout has uncommitted changes
    assert sorted(p.name for p in run_dir.iterdir() if p.name != "provenance.diff") == [
        "checkpoints", "config.yaml", "metrics.jsonl", "provenance.json", "status.json",
        "summary.json",
    ]  # fmt: skip
    assert config_hash(from_yaml(run_dir / "config.yaml")) == config_hash(
        compose_reference_config(run_dir)
    )
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all(set(r) - {"val_loss"} == ROW_KEYS for r in rows)
    assert [r["step"] for r in rows if "val_loss" in r] == [16, 32]
    last = rows[-1]
    assert last["images_seen"] == STEPS * 16
    assert last["patches_seen"] == STEPS * 16 * 49
    assert last["flops"] == last["images_seen"] * rows[0]["flops"] // 16

    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary == json.loads(result.stdout)  # the CLI prints the summary
    assert summary["status"] == "done" and summary["steps"] == STEPS
    assert summary["final_val_loss"] == last["val_loss"]
    assert summary["best_val_loss"] == min(r["val_loss"] for r in rows if "val_loss" in r)
    assert summary["total_flops"] == last["flops"]
    assert summary["trunk_params"] > 0 and summary["head_params"] > 0

    # rotation keeps the newest two plus the kept fraction (0.25 · 32 = step 8)
    assert [s for s, _ in list_checkpoints(run_dir)] == [8, 24, 32]
    state = load_checkpoint(run_dir / "checkpoints" / "step_00000024.pt")
    assert state["step"] == 24 and state["data"]["position"] == 24 * 16
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "data", "metrics_offset"}
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["state"], status["step"], status["restarts"]) == ("done", STEPS, 0)


def test_loss_falls(cli_run):
    rows = read_metrics(cli_run[0] / "metrics.jsonl")
    first = sum(r["loss"] for r in rows[:4]) / 4
    last = sum(r["loss"] for r in rows[-4:]) / 4
    assert last < 0.85 * first, (first, last)
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    assert val[-1] < val[0]


def test_config_problems_are_reported_together(tmp_path, capsys):
    code = main(
        ["train", "model.widht=3", "train.steps=0", "optim.lr=-1", f"run_dir={tmp_path / 'run'}"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "3 problem(s), nothing was run" in err
    for needle in ("widht", "train.steps must be positive", "optim.lr must be positive"):
        assert needle in err
    assert not (tmp_path / "run").exists()


def test_data_problems_stop_the_run_before_it_starts(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    code = main(
        [
            "train",
            "data.sources=[{kind: image-folder, path: " + str(missing) + "}]",
            f"run_dir={tmp_path / 'run'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert str(missing) in err
    assert not (tmp_path / "run").exists()


def test_dry_run_prints_the_resolved_config_and_run_dir(tmp_path, capsys):
    code = main(["train", "--dry-run", "data=synthetic", "model.width=64"])
    out = capsys.readouterr().out
    assert code == 0
    assert "width: 64" in out
    assert "# run dir: runs/" in out
