"""End to end on Fashion-MNIST: pre-train a tiny AIM, then probe it (slow: about a minute)."""

from __future__ import annotations

import pytest

from aimscale.probe.config import probe_config
from aimscale.probe.run import run_probes


@pytest.mark.slow
def test_attentive_and_linear_probes_on_fashion_mnist(tmp_path):
    from aimscale.config import compose
    from aimscale.data import DataError
    from aimscale.data.fetch import locate_idx_dir
    from aimscale.train import train

    try:
        locate_idx_dir("fashion-mnist")
    except DataError as err:
        pytest.skip(f"Fashion-MNIST not available: {err}")
    run_dir = tmp_path / "run"
    overrides = [
        "model.width=64", "model.depth=4", "model.heads=4", "model.head_width=64",
        "model.head_depth=1", "data.num_images=5000", "data.val_images=200", "train.steps=150",
        "train.batch_size=32", "train.eval_every=150", "train.eval_images=200",
        "train.checkpoint_every=150",
        "logging.progress=none", f"run_dir={run_dir}",
    ]  # fmt: skip
    assert train(compose(overrides))["status"] == "done"
    cfg = probe_config(kind="both", limit_train=3000, limit_test=2000, epochs=8)
    attentive, linear = run_probes(run_dir, cfg)
    assert attentive["top1"] > 0.6 and linear["top1"] > 0.55  # 10 classes
    assert attentive["top1"] >= linear["top1"] - 0.02
