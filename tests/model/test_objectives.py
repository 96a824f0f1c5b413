"""Discrete k-means tokens with cross-entropy, and the masked-image-modelling baseline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aimscale.model import AIM
from aimscale.model.objectives import assign_tokens, kmeans, normalize_patches, patchify


def test_kmeans_recovers_separated_clusters():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = centres.repeat_interleave(50, 0) + 0.1 * torch.randn(150, 2)
    found = kmeans(points, 3, iters=10, seed=0)
    matched = torch.cdist(centres, found).min(dim=1).values
    assert (matched < 0.1).all()
    labels = assign_tokens(points, found)
    assert len(set(labels.view(3, 50)[:, 0].tolist())) == 3  # one token per cluster
    assert (labels.view(3, 50) == labels.view(3, 50)[:, :1]).all()


def test_kmeans_needs_enough_points():
    with pytest.raises(ValueError, match="num_tokens"):
        kmeans(torch.randn(4, 2), 8)


def test_tokens_objective_prepare_then_cross_entropy(tiny):
    model = AIM(tiny(objective="tokens", num_tokens=8, attention="causal", head="none"))
    images = torch.rand(16, 1, 8, 8)
    with pytest.raises(RuntimeError, match="prepare"):
        model(images)
    model.prepare(images)
    assert bool(model.codebook_fitted)
    patches = normalize_patches(patchify(images, 2))
    assert torch.equal(model.codebook, kmeans(patches.flatten(0, 1), 8, iters=25, seed=0))
    assert "codebook" in model.state_dict()  # checkpoints carry the codebook

    seen = {}
    model.head.register_forward_hook(lambda m, a, out: seen.update(logits=out))
    out = model(images[:2])
    assert seen["logits"].shape == (2, 16, 8)
    ids = assign_tokens(patches[:2], model.codebook)
    expected = F.cross_entropy(seen["logits"][:, :-1].reshape(-1, 8), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out["loss"], expected)
    assert out["num_targets"] == 30


def test_prepare_is_a_no_op_for_pixel_objectives(tiny):
    model = AIM(tiny())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.prepare(torch.rand(4, 1, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_masked_modelling_scores_masked_patches_only(tiny):
    model = AIM(tiny(objective="mim", mask_ratio=0.75, head="none"))
    images = torch.rand(3, 1, 8, 8)
    seen = {}
    model.trunk.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))

    def keep(module, args, out):
        out.retain_grad()
        seen["pred"] = out

    model.head.register_forward_hook(keep)
    torch.manual_seed(4)
    masked = torch.zeros(3, 16, dtype=torch.bool)
    masked.scatter_(1, torch.rand(3, 16).argsort(1)[:, :12], True)  # the draw forward makes
    torch.manual_seed(4)
    out = model(images)
    out["loss"].backward()

    assert out["num_targets"] == 3 * 12
    # masked inputs are the mask token plus their position; the others are the patches
    trunk = model.trunk
    expected_in = torch.where(masked[..., None], model.mask_token, trunk.patch_embed(images))
    torch.testing.assert_close(seen["x"], expected_in + trunk.pos)
    # no shift: the prediction at patch i is scored against patch i, masked ones only
    has_grad = seen["pred"].grad.abs().sum(-1) > 0
    assert torch.equal(has_grad, masked)
    targets = normalize_patches(patchify(images, 2))
    per_patch = ((seen["pred"] - targets) ** 2).mean(-1)
    torch.testing.assert_close(out["loss"], per_patch[masked].mean())
    assert model.mask_token.grad is not None and model.mask_token.grad.abs().sum() > 0
