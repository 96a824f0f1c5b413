"""Parameter counts and FLOPs: closed form vs the reference card, real modules, flop counter."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from aimscale.config import compose
from aimscale.flops import flops_per_image, forward_flops_per_image, param_counts
from aimscale.model import AIM

# preset -> (width, depth, paper trunk size)
PAPER = {
    "aim-600m": (1536, 24, 0.6e9),
    "aim-1b": (2048, 24, 1.2e9),
    "aim-3b": (3072, 24, 2.7e9),
    "aim-7b": (4096, 32, 6.5e9),
}


@pytest.mark.parametrize("preset", sorted(PAPER))
def test_paper_presets_match_the_reference_closed_form(preset):
    cfg = compose([f"model={preset}"]).model
    d, depth, paper = PAPER[preset]
    assert (cfg.width, cfg.depth, cfg.patch_size, cfg.channels) == (d, depth, 14, 3)
    card = depth * (12 * d * d + 4 * d) + (3 * 14 * 14 * d + d) + 2 * d + 2 * d
    counts = param_counts(cfg)
    assert counts.trunk == card
    assert abs(counts.trunk - paper) / paper < 0.15  # "0.6B" is 0.68B: the card rounds down
    # the paper's head: ~0.41B at every trunk size, in the authors' (l3m) form by default:
    # in-projection, 12 blocks of LN_a + LN_b + fc1 + fc2, final LN, out-projection
    assert (cfg.head_block, cfg.target_var) == ("l3m", "unbiased")
    w, out = 2048, 3 * 14 * 14
    l3m = (d * w + w) + 12 * (2 * w + 2 * w + 8 * w * w) + 2 * w + (w * out + out)
    assert counts.head == l3m
    assert 0.40e9 < counts.head < 0.42e9
    plain = param_counts(compose([f"model={preset}", "model.head_block=plain"]).model)
    assert counts.head - plain.head == 49_152 == 12 * 2 * 2048
    assert plain.trunk == counts.trunk


@pytest.mark.parametrize("block", ["l3m", "plain"])
def test_paper_preset_counts_equal_the_real_modules(block):
    cfg = compose(["model=aim-600m", f"model.head_block={block}"]).model
    with torch.device("meta"):  # shapes only: no 4 GB of weights
        model = AIM(cfg)
    counts = param_counts(cfg)
    assert counts.trunk == sum(p.numel() for p in model.trunk.parameters())
    assert counts.head == sum(p.numel() for p in model.head.parameters())


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"head_block": "plain"},
        {"head_depth": 3, "head_width": 40},
        {"head": "none"},
        {"head": "transformer", "head_width": 48},
        {"objective": "tokens", "num_tokens": 12},
        {"objective": "mim"},
        {"channels": 3, "image_size": 12, "patch_size": 3, "mlp_ratio": 2.0},
    ],
)
def test_counts_equal_instantiated_parameters(tiny, overrides):
    model = AIM(tiny(**overrides))
    counts = param_counts(model.cfg)
    assert counts.trunk == sum(p.numel() for p in model.trunk.parameters())
    assert counts.total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"head_block": "plain"},
        {"attention": "causal", "order": "spiral"},
        {"head": "transformer"},
        {"head": "none", "objective": "mim"},
    ],
)
def test_flops_agree_with_torch_flop_counter(tiny, overrides):
    cfg = tiny(image_size=16, width=64, heads=4, head_width=64, **overrides)  # 64 tokens
    model = AIM(cfg)
    images = torch.rand(2, 1, 16, 16)
    # the math backend decomposes attention into matmuls the counter sees on CPU
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(images)["loss"].backward()
    measured = counter.get_total_flops() / 2
    assert abs(measured - flops_per_image(cfg)) / flops_per_image(cfg) < 0.05
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(images)
    forward = counter.get_total_flops() / 2
    assert abs(forward - forward_flops_per_image(cfg)) / forward_flops_per_image(cfg) < 0.05


def test_training_flops_are_three_forwards(tiny):
    cfg = tiny()
    assert flops_per_image(cfg) == 3 * forward_flops_per_image(cfg)
