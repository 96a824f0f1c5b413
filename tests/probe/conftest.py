"""One tiny pre-trained run shared by the probe tests (a few seconds on one CPU thread).

Width 32, depth 3, 4 heads, 32×32 RGB synthetic images in 16 patches of 8×8, 20 steps of 32
images, checkpoints at steps 10 (kept as half of training) and 20.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TRAIN = [
    "data=synthetic",
    "data.num_images=2000",
    "data.val_images=64",
    "model.image_size=32",
    "model.patch_size=8",
    "model.channels=3",
    "model.width=32",
    "model.depth=3",
    "model.heads=4",
    "model.head_width=32",
    "model.head_depth=1",
    "train.steps=20",
    "train.batch_size=32",
    "train.eval_every=20",
    "train.eval_images=64",
    "train.checkpoint_every=10",
    "train.keep_checkpoints=1",
    "train.keep_fractions=[0.5]",
    "logging.progress=none",
]
# small and quick: 600 training images (60 of them for validation), 300 test images
FAST = dict(dataset="synthetic", limit_train=600, limit_test=300, epochs=5, batch_size=64)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    from aimscale.config import compose
    from aimscale.train import train

    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("probe") / "run"
    summary = train(compose([*TRAIN, f"run_dir={run_dir}"]))
    assert summary["status"] == "done"
    return run_dir


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    """A private copy of the trained run (its probe/ folder starts empty)."""
    import shutil

    target = tmp_path / "run"
    shutil.copytree(trained_run, target, ignore=shutil.ignore_patterns("probe"))
    return target


@pytest.fixture
def fast() -> dict:
    """ProbeConfig fields of a quick probe on the synthetic set."""
    return dict(FAST)
