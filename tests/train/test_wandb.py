"""The optional wandb mirror: a real offline run inside the run directory."""

from __future__ import annotations

import json
import time

from aimscale.train import train
from aimscale.train.metrics import read_metrics

from .conftest import compose_run


def test_offline_wandb_mirrors_metrics(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tmp_path / "run-abc"
    cfg = compose_run(
        run_dir,
        "train.steps=4",
        "train.log_every=2",
        "train.eval_every=4",
        "logging.wandb=true",
        "sweep_name=demo-sweep",
    )
    train(cfg)

    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    records = offline[0] / "run-run-abc.wandb"  # wandb id = the run directory's name
    rows = read_metrics(run_dir / "metrics.jsonl")
    # wandb's service process may still be flushing the record file after finish() returns
    deadline = time.monotonic() + 60
    while json.dumps(rows[-1]["loss"]).encode() not in records.read_bytes():
        assert time.monotonic() < deadline, "wandb never wrote the last row"
        time.sleep(0.2)
    data = records.read_bytes()
    # history rows are stored with their values as JSON text: every logged loss is in there
    for row in rows:
        assert json.dumps(row["loss"]).encode() in data
    assert b"val_loss" in data and b"demo-sweep" in data  # the group is the sweep name
    # the resolved config rides along as JSON text in the run record
    assert b'"width":32' in data and b'"steps":4' in data
    assert b"aimscale" in data  # the project
