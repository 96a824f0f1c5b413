"""AIM as a whole: variants run and learn, initialisation, optimiser groups, config errors."""

from __future__ import annotations

import pytest
import torch

from aimscale.config import ConfigError
from aimscale.model import AIM, Trunk


@pytest.mark.parametrize(
    "overrides",
    [
        {"head": "none"},
        {"head": "transformer", "attention": "prefix"},
        {"head": "transformer", "attention": "causal"},
        {"head": "mlp", "objective": "pixel_raw", "order": "checkerboard"},
        {"channels": 3, "image_size": 12, "patch_size": 4},  # RGB, 3x3 patches
    ],
)
def test_variants_train(tiny, overrides):
    model = AIM(tiny(**overrides))
    images = torch.rand(8, model.cfg.channels, model.cfg.image_size, model.cfg.image_size)
    optimizer = torch.optim.AdamW(model.param_groups(0.05), lr=3e-3)
    losses = []
    for _ in range(15):  # the same batch: a working model must fit it
        out = model(images)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < 0.9 * losses[0]


def test_transformer_head_uses_the_trunk_mask(tiny):
    model = AIM(tiny(head="transformer", attention="causal")).eval()
    hidden = torch.randn(1, 16, 32)
    changed = hidden.clone()
    changed[:, 10:] += torch.randn(6, 32)
    with torch.no_grad():
        a = model.head(hidden, is_causal=True)
        b = model.head(changed, is_causal=True)
    torch.testing.assert_close(a[:, :10], b[:, :10])


def test_initialisation(tiny):
    model = AIM(tiny())
    trunk = model.trunk
    assert trunk.blocks[0].attn.qkv.bias is None and trunk.blocks[0].mlp.fc2.bias is None
    conv_bias = trunk.patch_embed.proj.bias  # PyTorch's default: uniform(±1/sqrt(C·p²))
    assert 0.25 < conv_bias.abs().max() <= (1 / 4) ** 0.5 and conv_bias.unique().numel() == 32
    for name, param in model.named_parameters():
        if name.endswith("bias") and name != "trunk.patch_embed.proj.bias":
            assert torch.count_nonzero(param) == 0, name
        elif "norm" in name:
            assert torch.all(param == 1), name
    # xavier-uniform: |w| <= sqrt(6 / (fan_in + fan_out)); the conv counts as a C·p² -> d linear
    qkv = trunk.blocks[0].attn.qkv.weight
    assert qkv.abs().max() <= (6 / (32 + 96)) ** 0.5
    conv = trunk.patch_embed.proj.weight
    bound = (6 / (4 + 32)) ** 0.5
    assert conv.abs().max() <= bound and conv.abs().max() > 0.5 * bound
    assert not any("pos" in name for name, _ in model.named_parameters())  # fixed positions


def test_l3m_head_block_is_identity_attention_then_mlp(tiny):
    model = AIM(tiny(head_depth=2)).eval()
    for block in model.head.blocks:  # non-trivial LayerNorm affines, so each LN is visible
        for norm in (block.identity_norm, block.norm):
            torch.nn.init.normal_(norm.weight)
            torch.nn.init.normal_(norm.bias)
    hidden = torch.randn(2, 16, 32)
    x = model.head.proj(hidden) + model.head.pos
    for block in model.head.blocks:
        x = x + block.identity_norm(x)
        x = x + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm(x))))
    expected = model.head.out(model.head.norm(x))
    with torch.no_grad():
        torch.testing.assert_close(model.head(hidden), expected)
    plain = AIM(tiny(head_depth=2, head_block="plain"))
    assert all(block.identity_norm is None for block in plain.head.blocks)
    assert not any("identity_norm" in name for name, _ in plain.named_parameters())


def test_param_groups_decay_only_matrices(tiny):
    model = AIM(tiny(objective="mim"))
    decay, no_decay = model.param_groups(0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decayed and all(n.endswith("weight") and "norm" not in n for n in decayed)
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert "mask_token" in skipped and "trunk.norm.weight" in skipped
    assert len(decayed) + len(skipped) == len(names)


def test_positions_are_sincos_mae_convention(tiny):
    trunk = Trunk(tiny())
    pos = trunk.pos.view(4, 4, 32)
    # first half encodes the column: equal along a column, differs along a row
    torch.testing.assert_close(pos[0, :, :16], pos[3, :, :16])
    assert not torch.allclose(pos[:, 0, :16], pos[:, 1, :16])
    torch.testing.assert_close(pos[:, 0, 16:], pos[:, 3, 16:])
    # position 0 of a row: sin(0) = 0, cos(0) = 1
    assert torch.equal(pos[0, 0, :8], torch.zeros(8))
    assert torch.equal(pos[0, 0, 8:16], torch.ones(8))


def test_invalid_config_lists_every_problem(tiny):
    with pytest.raises(ConfigError) as err:
        AIM(tiny(width=30, heads=4, order="zigzag", head_block="deep", target_var="sample"))
    text = str(err.value)
    assert "multiple of 4" in text and "zigzag" in text and "heads=4" in text
    assert "model.head_block='deep'" in text and "model.target_var='sample'" in text
