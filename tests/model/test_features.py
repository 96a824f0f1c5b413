"""Frozen-trunk features for probes."""

from __future__ import annotations

import pytest
import torch

from aimscale.model import AIM


@torch.no_grad()
def test_window_mean_equals_manual_mean_of_block_outputs(tiny):
    model = AIM(tiny(depth=4, order="spiral"))
    images = torch.rand(2, 1, 8, 8)
    trunk = model.trunk
    # manual: embed in raster order, run the blocks one by one without any mask
    x = trunk.patch_embed(images) + trunk.pos
    outputs = []
    for block in trunk.blocks:
        x = block(x)
        outputs.append(x)
    features = trunk.features(images, [1, 2, 3])
    assert features.shape == (2, 16, 32)
    torch.testing.assert_close(features, (outputs[1] + outputs[2] + outputs[3]) / 3)
    torch.testing.assert_close(trunk.features(images, [0]), outputs[0])
    # raw block outputs: the final LayerNorm is not applied
    assert not torch.allclose(trunk.features(images, [3]), trunk.norm(outputs[3]))


@torch.no_grad()
def test_features_are_bidirectional(tiny):
    trunk = AIM(tiny()).trunk
    images = torch.rand(1, 1, 8, 8)
    changed = images.clone()
    changed[..., 6:, 6:] = torch.rand(2, 2)  # the last patch in raster order
    before, after = trunk.features(images, [1]), trunk.features(changed, [1])
    assert not torch.allclose(before[:, 0], after[:, 0], atol=1e-5)  # first token sees it


def test_invalid_blocks_are_named(tiny):
    trunk = AIM(tiny()).trunk
    with pytest.raises(ValueError, match=r"0\.\.1"):
        trunk.features(torch.rand(1, 1, 8, 8), [2])


def test_wrong_image_shape_is_explained(tiny):
    with pytest.raises(ValueError, match="model.image_size"):
        AIM(tiny())(torch.rand(1, 1, 28, 28))
