"""Attention masks: the definition, and what a token can actually see through the trunk."""

from __future__ import annotations

import torch

from aimscale.model.masks import causal_mask, prefix_causal_mask, sample_prefix_lengths
from aimscale.model.trunk import Trunk


def test_prefix_causal_mask_matches_definition():
    num = 7
    prefix = torch.tensor([1, 3, 6])
    mask = prefix_causal_mask(prefix, num)
    assert mask.shape == (3, 1, num, num) and mask.dtype == torch.bool
    for b, s in enumerate(prefix.tolist()):
        for i in range(num):
            for j in range(num):
                assert bool(mask[b, 0, i, j]) == (j < s or j <= i), (b, i, j)
    # prefix tokens see each other both ways
    assert bool(mask[1, 0, 0, 2]) and bool(mask[1, 0, 2, 0])
    assert not bool(mask[1, 0, 0, 3])


def test_causal_mask_is_lower_triangular():
    mask = causal_mask(5)
    assert torch.equal(mask, torch.ones(5, 5, dtype=torch.bool).tril())


def test_prefix_lengths_cover_one_to_k_minus_one():
    draws = sample_prefix_lengths(4000, 6)
    assert set(draws.tolist()) == {1, 2, 3, 4, 5}


def _trunk_and_tokens(tiny):
    trunk = Trunk(tiny()).eval()
    return trunk, torch.randn(2, 16, 32)


@torch.no_grad()
def test_prefix_outputs_ignore_tokens_after_max_i_and_prefix(tiny):
    trunk, x = _trunk_and_tokens(tiny)
    num, s = 16, 5
    mask = prefix_causal_mask(torch.tensor([s, s]), num)
    base = trunk(x, attn_mask=mask)
    for i in (0, 3, 4, 9, 14):
        last_visible = max(i, s - 1)
        perturbed = x.clone()
        perturbed[:, last_visible + 1 :] += torch.randn_like(perturbed[:, last_visible + 1 :])
        out = trunk(perturbed, attn_mask=mask)
        torch.testing.assert_close(out[:, i], base[:, i], atol=1e-5, rtol=1e-5)
        # ... but a visible token does change it (the test is not vacuous)
        visible = x.clone()
        visible[:, last_visible] += torch.randn(32)  # not a constant: LN would undo that
        assert not torch.allclose(trunk(visible, attn_mask=mask)[:, i], base[:, i], atol=1e-4)


@torch.no_grad()
def test_causal_fast_path_equals_explicit_mask_and_hides_the_future(tiny):
    trunk, x = _trunk_and_tokens(tiny)
    fast = trunk(x, is_causal=True)
    explicit = trunk(x, attn_mask=causal_mask(16))
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    perturbed = x.clone()
    perturbed[:, 8:] += torch.randn(8, 32)
    torch.testing.assert_close(trunk(perturbed, is_causal=True)[:, :8], fast[:, :8])


@torch.no_grad()
def test_bidirectional_sees_everything(tiny):
    trunk, x = _trunk_and_tokens(tiny)
    perturbed = x.clone()
    perturbed[:, -1] += torch.randn(32)
    assert not torch.allclose(trunk(perturbed)[:, 0], trunk(x)[:, 0], atol=1e-4)
