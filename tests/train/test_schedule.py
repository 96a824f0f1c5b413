"""The WSD schedule (warmup, constant, cooldown) in numbers, and its branch form."""

from __future__ import annotations

import math

import pytest

from aimscale.config import ConfigError, compose
from aimscale.train.config import OptimConfig
from aimscale.train.optim import cooldown_start_step, lr_at

PEAK, FLOOR = 1e-3, 1e-5


def wsd(**kw) -> OptimConfig:
    return OptimConfig(lr=PEAK, min_lr=FLOOR, warmup_fraction=0.1, schedule="wsd", **kw)


@pytest.mark.parametrize(
    ("shape", "mid", "last"),
    [
        # p = 10/20 and 19/20 of the cooldown: lr = 1e-5 + 0.99e-3 * (1 - sqrt(p)) or (1 - p)
        ("1-sqrt", 2.99964e-4, 3.50673e-5),
        ("linear", 5.05e-4, 5.95e-5),
    ],
)
def test_wsd_values(shape, mid, last):
    cfg = wsd(cooldown_shape=shape)  # 100 steps: warmup 10, constant 10..79, cooldown 80..99
    lrs = [lr_at(step, cfg, 100) for step in range(101)]
    assert lrs[0] == pytest.approx(1e-4)  # warmup: first update at lr/W
    assert lrs[9] == PEAK  # end of warmup
    assert lrs[45] == PEAK and lrs[79] == PEAK  # constant
    assert cooldown_start_step(cfg, 100) == 80
    assert lrs[80] == PEAK  # cooldown starts from the peak ...
    assert lrs[81] < PEAK
    assert lrs[90] == pytest.approx(mid, rel=1e-5)  # ... half-way ...
    assert lrs[99] == pytest.approx(last, rel=1e-5)  # ... last update just above the floor
    assert lrs[100] == pytest.approx(FLOOR)  # reached at total_steps
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))


def test_one_minus_sqrt_cools_faster_early():
    sqrt_cfg, linear_cfg = wsd(), wsd(cooldown_shape="linear")
    assert lr_at(85, sqrt_cfg, 100) < lr_at(85, linear_cfg, 100)
    assert sum(lr_at(s, sqrt_cfg, 100) for s in range(80, 100)) < sum(
        lr_at(s, linear_cfg, 100) for s in range(80, 100)
    )


def test_cooldown_fraction():
    cfg = wsd(cooldown_fraction=0.5)
    assert cooldown_start_step(cfg, 100) == 50
    assert lr_at(49, cfg, 100) == PEAK
    assert lr_at(75, cfg, 100) == pytest.approx(FLOOR + (PEAK - FLOOR) * (1 - math.sqrt(0.5)))
    # no cooldown: constant to the end
    assert [lr_at(s, wsd(cooldown_fraction=0.0), 100) for s in (10, 99)] == [PEAK, PEAK]


def test_branch_form_reuses_the_parent_schedule():
    """A cooldown branch from step S of a constant run: the parent's LR before S, then K steps."""
    cfg = wsd()
    parent_warmup = 10
    branch = [lr_at(s, cfg, 60, cooldown_start=50, warmup=parent_warmup) for s in range(60)]
    parent = [lr_at(s, cfg, 100) for s in range(60)]
    assert branch[:51] == parent[:51]  # same warmup and constant phase, step for step
    assert branch[55] == pytest.approx(FLOOR + (PEAK - FLOOR) * (1 - math.sqrt(0.5)))
    assert branch[59] == pytest.approx(FLOOR + (PEAK - FLOOR) * (1 - math.sqrt(0.9)))
    # a constant-LR parent: cooldown_start at (or past) the end
    assert lr_at(99, cfg, 100, cooldown_start=100) == PEAK
    with pytest.raises(ValueError, match="inside the warmup"):
        lr_at(20, cfg, 100, cooldown_start=5)
    with pytest.raises(ValueError, match="schedule=wsd"):
        lr_at(20, OptimConfig(), 100, cooldown_start=50)


def test_cosine_is_unchanged_by_the_new_keys():
    cosine = OptimConfig(lr=PEAK, min_lr=FLOOR, warmup_fraction=0.1)
    assert lr_at(55, cosine, 100) == pytest.approx(FLOOR + 0.5 * (PEAK - FLOOR))


def test_bad_schedule_settings_are_listed_together():
    with pytest.raises(ConfigError) as err:
        compose(["optim.schedule=step", "optim.cooldown_shape=cubic",
                 "optim.cooldown_fraction=1.5"])
    text = str(err.value)
    assert "optim.schedule='step'" in text and "optim.cooldown_shape='cubic'" in text
    assert "optim.cooldown_fraction must be in [0, 1]" in text
    with pytest.raises(ConfigError, match="exceeds 1"):
        compose(["optim.schedule=wsd", "optim.warmup_fraction=0.5",
                 "optim.cooldown_fraction=0.6"])
