"""The probe's parts on their own: config, block windows, batched heads, grid training."""

from __future__ import annotations

import math

import pytest
import torch

from aimscale.probe.config import ProbeConfig, ProbeError, probe_config
from aimscale.probe.fit import GridAdamW, fit_heads, make_grid, predict, topk_accuracy
from aimscale.probe.heads import AttentiveHeads, LinearHeads
from aimscale.probe.windows import default_window_size, resolve_windows


def test_config_from_dict_and_errors():
    cfg = probe_config({"kind": "both", "checkpoint": 100, "lrs": [0.01]})
    assert isinstance(cfg, ProbeConfig)
    assert cfg.checkpoint_step == 100 and cfg.kinds == ["attentive", "linear"]
    assert probe_config().kinds == ["attentive"]
    with pytest.raises(ProbeError) as err:
        probe_config({"kindd": "linear", "epochs": "many", "blocks": "3-x", "lrs": [-1.0]})
    message = str(err.value)
    assert "4 problem(s)" in message
    assert "unknown key 'kindd'" in message and "epochs" in message
    assert "blocks='3-x'" in message and "lrs" in message
    with pytest.raises(ProbeError, match="either probe checkpoint or probe fractions"):
        probe_config(checkpoint="10", fractions=[0.5])
    with pytest.raises(ProbeError, match="image-folder needs a path"):
        probe_config(dataset="image-folder")


@pytest.mark.parametrize(
    ("depth", "size"), [(1, 1), (2, 1), (4, 1), (8, 2), (12, 3), (24, 6), (32, 6)]
)
def test_default_window_size(depth, size):
    assert default_window_size(depth) == size


def test_resolve_windows():
    (last,) = resolve_windows("last", 24)
    assert (last.start, last.end, last.label) == (18, 23, "last")
    (best,) = resolve_windows("best", 24)
    assert best.span == [12, 17] and best.label == "best"  # the paper's 1B/3B window
    (best4,) = resolve_windows("best", 4)
    assert best4.blocks == [2]
    sweep = resolve_windows("all-windows", 8)
    assert [w.span for w in sweep] == [[s, s + 1] for s in range(7)]
    assert sweep[0].label == "blocks0-1"
    (pick,) = resolve_windows("1-2", 4)
    assert pick.blocks == [1, 2] and pick.label == "blocks1-2"
    assert resolve_windows("3", 4)[0].span == [3, 3]
    with pytest.raises(ProbeError, match="out of range for a trunk with 4 blocks"):
        resolve_windows("2-4", 4)
    with pytest.raises(ProbeError, match="exceeds the trunk depth 2"):
        resolve_windows("last", 2, size=3)


def test_attentive_heads_match_the_plain_formula():
    """The folded computation (W_kᵀq, pooled-then-projected v) equals k/v per token."""
    torch.manual_seed(0)
    groups, width, heads, classes = 3, 16, 4, 5
    module = AttentiveHeads(groups, width, heads, classes, torch.Generator().manual_seed(0))
    module.eval()  # fixed BatchNorm statistics, so both paths normalise the same way
    module.norm.running_mean.normal_()
    module.norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(7, 9, width)
    logits = module(x)
    xn = (x - module.norm.running_mean) / torch.sqrt(module.norm.running_var + 1e-6)
    dh = width // heads
    for g in range(groups):
        k = (xn @ module.key[g].T).view(7, 9, heads, dh)  # k and v of every token
        v = (xn @ module.value[g].T).view(7, 9, heads, dh)
        q = module.query[g].view(heads, dh)
        attn = (torch.einsum("he,bkhe->bhk", q, k) / math.sqrt(dh)).softmax(-1)
        pooled = torch.einsum("bhk,bkhe->bhe", attn, v).reshape(7, width)
        expected = pooled @ module.weight[g].T + module.bias[g]
        torch.testing.assert_close(logits[g], expected, atol=1e-5, rtol=1e-5)


def test_heads_trained_together_equal_heads_trained_alone():
    """Each grid member gets exactly its own gradient and its own lr / weight decay."""
    torch.manual_seed(0)
    x, y = torch.randn(200, 6, 16), torch.randint(0, 4, (200,))
    grid = make_grid([1e-3, 3e-2], [0.0, 0.1])
    together = AttentiveHeads(len(grid), 16, 2, 4, torch.Generator().manual_seed(0))
    alone = []
    for g in range(len(grid)):
        single = AttentiveHeads(1, 16, 2, 4, torch.Generator())
        for name, param in single.named_parameters():
            param.data.copy_(getattr(together, name).data[g : g + 1])
        alone.append(single)
    rows = torch.arange(150)
    fit_heads(together, grid, x, y, rows, 3, 32, torch.Generator().manual_seed(1))
    joint = predict(together, x[150:])
    for g, single in enumerate(alone):
        fit_heads(single, [grid[g]], x, y, rows, 3, 32, torch.Generator().manual_seed(1))
        torch.testing.assert_close(predict(single, x[150:])[0], joint[g], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(joint[0], joint[3])  # different hyper-parameters, different heads


def test_grid_adamw_matches_torch_adamw():
    """Each grid member follows torch.optim.AdamW with its own lr and weight decay."""
    torch.manual_seed(0)
    grid = make_grid([1e-2, 1e-1], [0.0, 0.5])
    ours = torch.nn.Parameter(torch.randn(len(grid), 3, 5))
    theirs = [torch.nn.Parameter(ours.data[g].clone()) for g in range(len(grid))]
    optimizer = GridAdamW([(ours, True)], grid)
    reference = torch.optim.AdamW(
        [{"params": [p], "lr": hp.lr, "weight_decay": hp.weight_decay}
         for p, hp in zip(theirs, grid, strict=True)],
        betas=(0.9, 0.999),
    )  # fmt: skip
    schedule = [1.0, 0.5, 0.25, 0.1]
    for step, factor in enumerate(schedule):
        target = torch.randn(len(grid), 3, 5, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        ((ours - target) ** 3).sum().backward()
        optimizer.step(factor)
        for g, p in enumerate(theirs):
            reference.param_groups[g]["lr"] = grid[g].lr * factor
            p.grad = None
            ((p - target[g]) ** 3).sum().backward()
        reference.step()
    for g, p in enumerate(theirs):
        torch.testing.assert_close(ours.data[g], p.data, atol=1e-6, rtol=1e-5)


def test_linear_probe_reaches_the_bayes_rate():
    """Two Gaussian classes ±μ·e₁ with unit noise: the best accuracy is Φ(μ) = 0.841 (μ = 1);
    the linear probe must get there, and not beyond (no leak of test labels)."""
    gen = torch.Generator().manual_seed(0)
    n, width = 6000, 12
    labels = torch.randint(0, 2, (n,), generator=gen)
    feats = torch.randn(n, width, generator=gen)
    feats[:, 0] += 2.0 * labels - 1.0
    feats = feats * torch.linspace(0.5, 3.0, width) + 5.0  # BatchNorm undoes scale and shift
    grid = make_grid([1e-2, 3e-2], [0.0])
    heads = LinearHeads(len(grid), width, 2, torch.Generator().manual_seed(0))
    fit_heads(heads, grid, feats, labels, torch.arange(3000), 10, 128, gen)
    accuracy = max(topk_accuracy(predict(heads, feats[3000:]), labels[3000:], 1))
    bayes = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    assert bayes - 0.025 < accuracy < bayes + 0.02


def test_topk_accuracy_is_an_exact_fraction():
    logits = torch.tensor([[[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]])
    labels = torch.tensor([0, 1, 2])
    assert topk_accuracy(logits, labels, 1) == [1 / 3]
    assert topk_accuracy(logits, labels, 2) == [2 / 3]
    assert topk_accuracy(logits, labels, 5) == [1.0]
