"""Autoregression orders: permutations with the documented shapes, and the loss follows them."""

from __future__ import annotations

import pytest
import torch

from aimscale.model import AIM
from aimscale.model.config import ORDERS
from aimscale.model.objectives import normalize_patches, patchify
from aimscale.model.orders import checkerboard, order_permutation, spiral


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("grid", [1, 2, 3, 4, 7, 16])
def test_every_order_is_a_permutation(order, grid):
    perm = order_permutation(order, grid, seed=3)
    assert sorted(perm.tolist()) == list(range(grid * grid))


def test_raster_is_identity():
    assert order_permutation("raster", 4).tolist() == list(range(16))


def test_spiral_starts_at_centre_and_walks_to_neighbours():
    grid = 7
    cells = [divmod(i, grid) for i in spiral(grid).tolist()]
    assert cells[0] == (3, 3)
    assert set(cells[:9]) == {(r, c) for r in (2, 3, 4) for c in (2, 3, 4)}  # first ring
    for (r0, c0), (r1, c1) in zip(cells, cells[1:], strict=False):
        assert abs(r0 - r1) + abs(c0 - c1) == 1  # odd grid: one unbroken spiral
    # distance from the centre never decreases ring by ring
    rings = [max(abs(r - 3), abs(c - 3)) for r, c in cells]
    assert rings == sorted(rings)
    # even grid: starts at the upper-left cell of the central 2x2
    assert spiral(4).tolist()[:4] == [5, 6, 10, 9]


def test_checkerboard_puts_all_even_cells_first():
    grid = 5
    cells = [divmod(i, grid) for i in checkerboard(grid).tolist()]
    parities = [(r + c) % 2 for r, c in cells]
    assert parities == [0] * 13 + [1] * 12


def test_random_order_is_fixed_by_its_seed():
    a, b = order_permutation("random", 4, seed=1), order_permutation("random", 4, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, order_permutation("random", 4, seed=2))
    assert not torch.equal(a, torch.arange(16))


@pytest.mark.parametrize("order", ["spiral", "checkerboard", "random"])
def test_tokens_and_targets_follow_the_order(order, tiny):
    cfg = tiny(order=order, attention="causal", head="none")
    model = AIM(cfg)
    images = torch.randn(2, 1, 8, 8)
    seen = {}
    model.trunk.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    model.head.register_forward_hook(lambda m, args, out: seen.update(pred=out))
    loss = model(images)["loss"]
    perm = model.order
    assert torch.equal(perm, order_permutation(order, 4, cfg.order_seed))
    # slot k of the trunk input is patch perm[k], carrying its own spatial position
    raster = model.trunk.patch_embed(images) + model.trunk.pos
    torch.testing.assert_close(seen["x"], raster[:, perm])
    # slot k predicts patch perm[k + 1]
    targets = normalize_patches(patchify(images, 2))
    expected = torch.stack(
        [((seen["pred"][:, k] - targets[:, perm[k + 1]]) ** 2).mean(-1) for k in range(15)]
    ).mean()
    torch.testing.assert_close(loss, expected)
