"""Tiny model configs shared by the model tests (fast on a shared CPU)."""

from __future__ import annotations

import pytest
import torch

from aimscale.model.config import ModelConfig


def make_tiny(**overrides) -> ModelConfig:
    """8×8 images, patch 2 -> 16 tokens; width 32, 2 blocks; a 1-block MLP head of width 32."""
    base = dict(
        image_size=8, patch_size=2, channels=1, width=32, depth=2, heads=2,
        head_width=32, head_depth=1, num_tokens=8,
    )  # fmt: skip
    base.update(overrides)
    return ModelConfig(**base)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny():
    """Factory of tiny configs: `tiny(order="spiral")`."""
    return make_tiny
