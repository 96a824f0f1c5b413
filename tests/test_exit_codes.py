"""The exit codes every command shares (aimscale.errors): 0 ok, 1 run-time failure, 2 bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from aimscale.cli import main
from aimscale.config import compose, to_yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.width=16", "model.heads=2", "model.depth=1", "model.head_width=16",
        "model.head_depth=1", "data=synthetic", "data.num_images=64", "data.val_images=16",
        "train.steps=2", "train.batch_size=8", "train.eval_images=16", "train.prepare_images=16",
        "train.device=cpu", "logging.progress=none"]


def test_train_on_a_run_whose_config_yaml_was_edited_exits_2(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = run_dir / "config.yaml"
    config.write_text(to_yaml(compose([*TINY, f"run_dir={run_dir}"])) + "extra_key: 1\n")
    code = main(["train", *TINY, f"run_dir={run_dir}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{config}: Key 'extra_key' not in 'RunConfig'" in err
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "summary.json").exists()


def test_launch_with_unusable_data_exits_2_and_submits_nothing(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "nodata", "sweep_dir": str(tmp_path / "sweep"),
        "base": {"model": {"width": 16, "heads": 2, "depth": 1},
                 "data": {"sources": [{"kind": "image-folder", "path": str(tmp_path / "no")}]},
                 "train": {"steps": 2}},
    }))
    out = subprocess.run([sys.executable, "-m", "aimscale", "launch", str(spec)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "nothing submitted" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "sweep" / "sweep.json").exists()
