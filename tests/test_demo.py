"""The main job end to end, reduced: a tiny demo sweep from a clean directory, then a rerun."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from aimscale.data.fetch import find

TINY_DEMO = """
name: tiny-demo
base:
  model: {preset: aim-tiny, head_width: 32, head_depth: 1, depth: 1}
  data: {preset: fashion-mnist, val_images: 200}
  train: {batch_size: 16, log_every: 5, eval_every: 10, eval_images: 64, checkpoint_every: 20}
  logging: {progress: none}
zip:
  - {model.width: [16, 32, 48], model.heads: [2, 2, 2]}
  - {train.steps: [10, 20], data.num_images: [160, 320]}
probe:
  - {kind: both, dataset: fashion-mnist, epochs: 2, limit_train: 300, limit_test: 200,
     lrs: [0.01, 0.03], weight_decays: [0.0]}
local: {max_parallel: 2}
"""

pytestmark = pytest.mark.skipif(
    find("fashion-mnist") is None, reason="Fashion-MNIST not found: run `aimscale data fetch`"
)


def _demo(tmp_path: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(  # --strict: a report section that crashes fails the demo (exit 1)
        [sys.executable, "-m", "aimscale", "demo", "--spec", "tiny.yaml", "--sweep-dir",
         "runs", "--bootstrap", "50", "--poll", "0.5", "--strict"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_reduced_demo_end_to_end(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_DEMO)
    out = _demo(tmp_path)
    sweep = tmp_path / "runs"
    assert "6 runs, 6 to train" in out
    assert re.search(r"6/6 runs done; wall time \d+ s", out)

    runs = pd.read_csv(sweep / "collect" / "runs.csv")
    assert len(runs) == 6 and set(runs["status"]) == {"done"}
    assert runs["probe.attentive_last.top1"].between(0.0, 1.0).all()
    assert runs["probe.linear_last.top1"].notna().all()
    curves = pd.read_csv(sweep / "collect" / "curves.csv")
    assert set(curves["run_id"]) == set(runs["run_id"])
    for run_id in runs["run_id"]:
        assert (sweep / run_id / "summary.json").is_file()
        assert {p.name for p in (sweep / run_id / "probe").glob("*.json")} >= {
            "attentive_last.json", "linear_last.json"}

    report = sweep / "report" / "report.html"
    html = report.read_text()
    figures = sorted((sweep / "report" / "figures").glob("*.png"))
    assert len(figures) >= 4
    for png in figures:
        with Image.open(png) as image:
            image.verify()  # a real PNG, not an empty file
        with Image.open(png) as image:
            assert min(image.size) > 100
        # self-contained page: every figure is embedded (by name in its alt text or inline)
        assert png.stem in html

    again = _demo(tmp_path)  # finished runs are reused; only collect and report are redone
    assert "6 runs, 0 to train, 6 already done" in again
