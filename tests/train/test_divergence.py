"""A diverging run stops with status failed and says why; it does not write garbage."""

from __future__ import annotations

import json

import pytest

from aimscale.cli import main
from aimscale.train import Diverged, train
from aimscale.train.metrics import read_metrics

from .conftest import SYNTHETIC, TINY, compose_run


def test_huge_learning_rate_fails_the_run(tmp_path):
    # lr 1e6 with no warmup: the first update blows the weights up; the loss of a later step is
    # inf or NaN (a real divergence, no injected fault)
    cfg = compose_run(
        tmp_path,
        "train.steps=20",
        "train.log_every=1",
        "optim.lr=1e6",
        "optim.warmup_fraction=0",
        "optim.grad_clip=0",
    )
    with pytest.raises(Diverged, match="diverged at step"):
        train(cfg)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed"
    assert "diverged" in status["reason"]
    assert (tmp_path / "error.txt").read_text().startswith("training diverged at step")
    assert not (tmp_path / "summary.json").exists()
    rows = read_metrics(tmp_path / "metrics.jsonl")  # only finite rows, before the divergence
    assert len(rows) == status["step"] < 20


def test_cli_exits_non_zero_on_divergence(tmp_path, capsys):
    code = main(
        [
            "train",
            *TINY,
            *SYNTHETIC,
            "train.steps=20",
            "optim.lr=1e6",
            "optim.warmup_fraction=0",
            "optim.grad_clip=0",
            f"run_dir={tmp_path}",
        ]
    )
    assert code == 1
    assert "diverged" in capsys.readouterr().err
