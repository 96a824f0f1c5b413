"""μP width scaling: the standard model at the base width, the roles and factors it assigns, the
coordinate check (activation scales flat across widths after a few Adam steps) and an LR sweep
at two widths (the optimum moves less than under the standard parametrization)."""

from __future__ import annotations

import math

import pytest
import torch

from aimscale.config import ConfigError, compose
from aimscale.model import AIM
from aimscale.model.mup import parameter_roles
from aimscale.train.config import OptimConfig
from aimscale.train.optim import build_optimizer, lr_at, set_lr


def gratings(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Sinusoidal gratings of random frequency, angle and phase: learnable next-patch structure."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    freq, angle, phase = (torch.rand(n, 1, 1, generator=g) * s for s in (4, math.pi, 2 * math.pi))
    wave = torch.sin(2 * math.pi * (freq + 1) * (xx * angle.cos() + yy * angle.sin()) + phase)
    return (0.5 + 0.4 * wave).unsqueeze(1)


def model_cfg(width: int, parametrization: str, base: int = 32, *extra: str, size: int = 16):
    """size² images in patches of 4×4; head dim 16 (heads grow with width); a fixed head."""
    return compose([
        f"model.image_size={size}", f"model.width={width}", f"model.heads={width // 16}",
        "model.depth=2", "model.head_width=64", "model.head_depth=1",
        f"model.parametrization={parametrization}", f"model.mup_base_width={base}", *extra,
    ]).model


def train_steps(model: AIM, lr: float, steps: int, batch: int = 32) -> list[float]:
    """Warmup + cosine AdamW steps with clipping (as the trainer does), fresh gratings each."""
    optim = OptimConfig(lr=lr, weight_decay=0.0, warmup_fraction=0.1)
    optimizer = build_optimizer(model, optim)
    losses = []
    for step in range(steps):
        set_lr(optimizer, lr_at(step, optim, steps))
        torch.manual_seed(100 + step)  # prefix lengths
        loss = model(gratings(batch, step, model.cfg.image_size))["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("extra", [(), ("model.mup_base_head_dim=16", "model.head=transformer")])
def test_mup_at_the_base_width_is_the_standard_model(extra):
    runs = []
    for parametrization in ("standard", "mup"):
        torch.manual_seed(0)
        model = AIM(model_cfg(64, parametrization, 64, *extra))
        groups = [(len(g["params"]), g["weight_decay"], g["lr_mult"])
                  for g in model.param_groups(0.05)]
        runs.append((model, groups, train_steps(model, 3e-3, 3, batch=8)))
    (standard, groups_sp, losses_sp), (mup, groups_mup, losses_mup) = runs
    assert groups_sp == groups_mup and len(groups_sp) == 2
    assert losses_sp == losses_mup  # bit for bit, step for step
    for (name, a), b in zip(standard.state_dict().items(), mup.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_roles_and_factors():
    torch.manual_seed(0)
    standard = AIM(model_cfg(128, "standard"))
    torch.manual_seed(0)
    mup = AIM(model_cfg(128, "mup", 32))  # m = 4
    roles = parameter_roles(mup, mup.cfg)
    assert roles["trunk.blocks.0.attn.qkv.weight"] == "hidden"
    assert roles["trunk.blocks.1.mlp.fc2.weight"] == "hidden"
    assert roles["trunk.patch_embed.proj.weight"] == "input"
    assert roles["head.proj.weight"] == "readout"
    assert roles["trunk.norm.weight"] == "vector" and roles["head.out.weight"] == "fixed"
    hidden = {n for n, r in roles.items() if r == "hidden"}
    assert {n: m for n, m in mup.lr_mult.items() if m != 1.0} == dict.fromkeys(hidden, 0.25)
    assert mup.readout_mult == 0.25
    groups = mup.param_groups(0.05)
    assert [(g["weight_decay"], g["lr_mult"]) for g in groups] == [
        (0.05, 1.0), (0.0, 1.0), (0.05, 0.25)
    ]
    optimizer = build_optimizer(mup, OptimConfig(lr=1e-2))
    set_lr(optimizer, 1e-2)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 1e-2, 2.5e-3]
    # init: hidden as standard (xavier, var ∝ 1/fan_in); input and readout at their base-width
    # variance 2 / (fan_in + fan_out): conv 16 -> 128 as 16 -> 32, readout 128 -> 64 as 32 -> 64
    sp, mp = dict(standard.named_parameters()), dict(mup.named_parameters())
    qkv = "trunk.blocks.0.attn.qkv.weight"
    assert torch.equal(sp[qkv], mp[qkv])
    ratio = mp["trunk.patch_embed.proj.weight"].std() / sp["trunk.patch_embed.proj.weight"].std()
    assert ratio.item() == pytest.approx(math.sqrt((16 + 128) / (16 + 32)), rel=1e-5)
    ratio = mp["head.proj.weight"].std() / sp["head.proj.weight"].std()
    assert ratio.item() == pytest.approx(math.sqrt((128 + 64) / (32 + 64)), rel=1e-5)


def test_attention_scale_follows_the_base_head_dim():
    wide_heads = AIM(model_cfg(128, "mup", 32, "model.heads=2", "model.mup_base_head_dim=16"))
    assert wide_heads.trunk.blocks[0].attn.scale == pytest.approx(4 / 64)  # sqrt(16) / 64
    fixed = AIM(model_cfg(128, "mup", 32))  # head dim 16 at every width: 1/sqrt(16), default
    assert fixed.trunk.blocks[0].attn.scale is None


def test_bad_mup_settings():
    with pytest.raises(ConfigError) as err:
        compose(["model.parametrization=mu", "model.mup_base_width=30",
                 "model.mup_base_head_dim=0"])
    text = str(err.value)
    assert "model.parametrization='mu'" in text
    assert "model.mup_base_width must be a positive multiple of 4, got 30" in text
    assert "model.mup_base_head_dim must be positive" in text


def activation_scales(width: int, parametrization: str, steps: int = 3, lr: float = 1e-2):
    """Mean |activation| of three layers after `steps` Adam steps on a fixed batch."""
    torch.manual_seed(0)
    model = AIM(model_cfg(width, parametrization))
    optimizer = build_optimizer(model, OptimConfig(lr=lr, weight_decay=0.0))
    images = gratings(16, 1)
    scales = {}

    def record(name):
        def hook(module, inputs, output):
            scales[name] = output.detach().abs().mean().item()
        return hook

    model.trunk.blocks[0].attn.register_forward_hook(record("attention"))
    model.trunk.blocks[-1].register_forward_hook(record("residual"))
    model.head.proj.register_forward_hook(record("readout"))
    for step in range(steps + 1):
        torch.manual_seed(100 + step)
        loss = model(images)["loss"]
        if step == steps:
            return scales
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_coordinate_check():
    """Widths 32..256 (base 32): under standard the activations grow with width after 3 steps
    (Adam's updates add ~lr·fan_in per coordinate); under μP they stay flat."""
    widths = (32, 64, 128, 256)
    standard = {w: activation_scales(w, "standard") for w in widths}
    mup = {w: activation_scales(w, "mup") for w in widths}
    assert standard[32] == mup[32]  # the base width: the same model
    for layer in ("attention", "residual"):
        sp = [standard[w][layer] for w in widths]
        mp = [mup[w][layer] for w in widths]
        assert sp[-1] / sp[0] > 2.5, (layer, sp)
        assert all(a < b for a, b in zip(sp, sp[1:], strict=False)), (layer, sp)
        assert max(mp) / min(mp) < 1.3, (layer, mp)
    sp = [standard[w]["readout"] for w in widths]
    mp = [mup[w]["readout"] for w in widths]
    assert sp[-1] / sp[0] > 2.0, sp
    assert max(mp[1:]) / min(mp[1:]) < 1.5 and mp[-1] <= mp[0], mp  # no growth with width


def best_log2_lr(losses: dict[float, float]) -> float:
    """log2 of the loss-minimising LR: the vertex of a parabola through the grid minimum and its
    two neighbours (the grid is in factors of 2)."""
    lrs = sorted(losses)
    i = min(range(len(lrs)), key=lambda j: losses[lrs[j]])
    assert 0 < i < len(lrs) - 1, f"optimum at the edge of the grid: {losses}"
    a, b, c = (losses[lrs[j]] for j in (i - 1, i, i + 1))
    return math.log2(lrs[i]) + (a - c) / (2 * (a - 2 * b + c))


@pytest.mark.slow
def test_optimal_lr_transfers_across_width():
    """Widths 32 (= base) and 128; 4 LRs in factors of 2; 40 steps of batch 32 on 28×28
    gratings; loss on a held-out batch. Measured: the optimum moves by -1.0 octave under
    standard and +0.06 under μP (about 2 minutes on one thread)."""
    lrs = [2e-3, 4e-3, 8e-3, 1.6e-2]
    val = gratings(64, 999, 28)

    def val_loss(width, parametrization, lr):
        torch.manual_seed(0)
        model = AIM(model_cfg(width, parametrization, size=28))
        train_steps(model, lr, 40)
        torch.manual_seed(7)
        with torch.no_grad():
            return model(val)["loss"].item()

    narrow = {lr: val_loss(32, "standard", lr) for lr in lrs}  # μP = standard at the base
    best = {
        p: best_log2_lr({lr: val_loss(128, p, lr) for lr in lrs}) for p in ("standard", "mup")
    }
    shift = {p: best[p] - best_log2_lr(narrow) for p in best}  # in octaves of LR
    assert shift["standard"] < -0.5, shift
    assert abs(shift["mup"]) < 0.35, shift
    assert abs(shift["mup"]) < abs(shift["standard"]) / 2, shift
