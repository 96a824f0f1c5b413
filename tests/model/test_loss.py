"""The autoregressive loss: one-patch shift, prefix exclusion, token weighting, targets."""

from __future__ import annotations

import torch

from aimscale.model import AIM
from aimscale.model.objectives import normalize_patches, patchify


def _run_with_captured_prediction(model, images, seed):
    """Forward + backward; return (output dict, head prediction with its gradient, drawn S)."""
    seen = {}

    def keep(module, args, out):
        out.retain_grad()
        seen["pred"] = out

    handle = model.head.register_forward_hook(keep)
    torch.manual_seed(seed)
    prefix = torch.randint(1, model.cfg.num_patches, (images.shape[0],))  # the draw forward makes
    torch.manual_seed(seed)
    out = model(images)
    out["loss"].backward()
    handle.remove()
    return out, seen["pred"], prefix


def test_prefix_loss_shift_and_exclusion_by_explicit_loop(tiny):
    model = AIM(tiny(head="none"))
    images = torch.rand(3, 1, 8, 8)
    out, pred, prefix = _run_with_captured_prediction(model, images, seed=11)
    targets = normalize_patches(patchify(images, 2))
    total, count = 0.0, 0
    for b in range(3):
        for k in range(15):  # output k predicts patch k+1; targets < S are never scored
            if k + 1 >= prefix[b]:
                total += ((pred[b, k] - targets[b, k + 1]) ** 2).mean()
                count += 1
    assert out["num_targets"] == count == int((16 - prefix).sum())
    torch.testing.assert_close(out["loss"], total / count)


def test_gradient_reaches_exactly_the_scored_positions(tiny):
    model = AIM(tiny())
    images = torch.rand(4, 1, 8, 8)
    _, pred, prefix = _run_with_captured_prediction(model, images, seed=5)
    has_grad = pred.grad.abs().sum(-1) > 0  # [B, K]
    for b, s in enumerate(prefix.tolist()):
        expected = [s - 1 <= k <= 14 for k in range(16)]  # k+1 >= S, and never the last slot
        assert has_grad[b].tolist() == expected


def test_causal_scores_every_patch_after_the_first(tiny):
    model = AIM(tiny(attention="causal"))
    images = torch.rand(2, 1, 8, 8)
    out, pred, _ = _run_with_captured_prediction(model, images, seed=0)
    assert out["num_targets"] == 2 * 15
    has_grad = pred.grad.abs().sum(-1) > 0
    assert has_grad[:, :15].all() and not has_grad[:, 15].any()


def test_loss_is_token_weighted_not_sample_weighted(tiny):
    # two samples with very different numbers of scored patches: the loss is the mean over all
    # scored patches, so it equals the per-patch losses summed over the batch / total count
    model = AIM(tiny(head="none", objective="pixel_raw"))
    images = torch.rand(2, 1, 8, 8)
    out, pred, prefix = _run_with_captured_prediction(model, images, seed=2)
    targets = patchify(images, 2)
    per_patch = ((pred[:, :-1] - targets[:, 1:]) ** 2).mean(-1)
    scored = torch.arange(1, 16)[None] >= prefix[:, None]
    torch.testing.assert_close(out["loss"], per_patch[scored].mean())


def test_patchify_layout():
    images = torch.arange(2 * 2 * 6 * 6, dtype=torch.float32).view(2, 2, 6, 6)
    patches = patchify(images, 3)
    assert patches.shape == (2, 4, 18)
    for r in range(2):
        for c in range(2):
            expected = images[:, :, 3 * r : 3 * r + 3, 3 * c : 3 * c + 3].reshape(2, -1)
            assert torch.equal(patches[:, r * 2 + c], expected)


def test_per_patch_normalisation_pools_channels():
    values = torch.arange(8, dtype=torch.float64)
    patch = torch.cat([values, values + 10]).view(1, 1, 16)  # two channels of one patch
    out = normalize_patches(patch)
    mean = patch.mean()
    var = ((patch - mean) ** 2).sum() / 15  # unbiased: the authors' library, torch's default
    torch.testing.assert_close(out, (patch - mean) / torch.sqrt(var + 1e-6))
    population = normalize_patches(patch, unbiased=False)
    var = ((patch - mean) ** 2).sum() / 16
    torch.testing.assert_close(population, (patch - mean) / torch.sqrt(var + 1e-6))
    assert (out[..., :8] < 0).all()  # pooled statistics: channel 0 sits below the mean
    torch.testing.assert_close(out.mean(), torch.tensor(0.0, dtype=torch.float64))
    # a constant patch stays finite (the eps)
    assert torch.isfinite(normalize_patches(torch.ones(1, 1, 16))).all()


def test_target_variance_follows_the_config(tiny):
    images = torch.rand(2, 1, 8, 8)
    unbiased = AIM(tiny()).targets(images)
    population = AIM(tiny(target_var="population")).targets(images)
    # 2x2 patches of 4 values: population targets are sqrt(4/3) larger (up to the eps)
    torch.testing.assert_close(population, unbiased * (4 / 3) ** 0.5, rtol=1e-4, atol=1e-4)
    assert unbiased.pow(2).sum(-1).sub(3).abs().max() < 1e-2  # sum of squares n - 1 (eps aside)
