"""The loop's parts on their own: schedule, optimiser groups, checkpoints, metrics file."""

from __future__ import annotations

import math

import pytest
import torch

from aimscale.config import compose
from aimscale.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from aimscale.train.config import OptimConfig, TrainConfig
from aimscale.train.metrics import MetricsWriter, read_metrics
from aimscale.train.optim import build_optimizer, lr_at


def test_warmup_then_cosine():
    cfg = OptimConfig(lr=1e-3, warmup_fraction=0.1, min_lr=1e-5)
    lrs = [lr_at(step, cfg, 100) for step in range(100)]
    assert lrs[0] == pytest.approx(1e-4)  # first update at lr/W, not 0
    assert lrs[9] == pytest.approx(1e-3)  # end of warmup: the peak
    assert lrs[55] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))  # half-way through the cosine
    assert lrs[-1] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 89 / 90)))
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))  # monotone decay


def test_adamw_decays_matrices_only():
    from aimscale.model import AIM

    cfg = compose(
        [
            "model.width=32",
            "model.depth=1",
            "model.heads=2",
            "model.head_width=32",
            "model.head_depth=1",
        ]
    )
    optimizer = build_optimizer(AIM(cfg.model), cfg.optim)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert optimizer.defaults["betas"] == (0.9, 0.95) and optimizer.defaults["eps"] == 1e-8


def test_kept_steps_from_fractions():
    train = TrainConfig(steps=10, keep_fractions=[0.25, 0.5, 0.01])
    assert train.kept_steps() == [1, 2, 5, 10]


def test_rotation_keeps_newest_and_protected(tmp_path):
    for step in (2, 4, 6, 8, 10):
        save_checkpoint(tmp_path, step, {"w": torch.full((2,), float(step))}, keep=2, protect=[4])
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 8, 10]
    state = load_checkpoint(checkpoint_path(tmp_path, 8))
    assert state["step"] == 8 and state["w"].tolist() == [8.0, 8.0]


def test_latest_skips_torn_and_temp_files(tmp_path):
    good = save_checkpoint(tmp_path, 3, {"w": torch.zeros(1000)}, keep=5)
    torn = checkpoint_path(tmp_path, 7)
    torn.write_bytes(good.read_bytes()[:-100])
    (good.parent / ".step_00000009.pt.x.tmp").write_bytes(b"")
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 7]
    assert latest_checkpoint(tmp_path) == good


def test_metrics_truncate_to_checkpoint_offset(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write({"step": 1, "loss": 1.5})
    offset = writer.offset()
    writer.write({"step": 2, "loss": 1.25})
    writer.close()
    with open(path, "a") as handle:
        handle.write('{"step": 3, "lo')  # a line torn by a kill
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    MetricsWriter(path, truncate_to=offset).close()
    assert read_metrics(path) == [{"step": 1, "loss": 1.5}]
    with pytest.raises(ValueError, match="metrics file was edited"):
        MetricsWriter(path, truncate_to=10_000)
