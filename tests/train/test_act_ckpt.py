"""Activation checkpointing: the same loss and gradients, and the memory `plan` estimates."""

from __future__ import annotations

import torch

from aimscale.memory import activation_bytes
from aimscale.model import AIM
from aimscale.model.config import ModelConfig
from aimscale.train import train
from aimscale.train.act_ckpt import apply_activation_checkpointing
from aimscale.train.metrics import read_metrics, without_timing

from .conftest import compose_run


def _loss_and_grads(cfg, images, checkpointed: bool):
    torch.manual_seed(0)
    model = AIM(cfg)
    if checkpointed:
        assert apply_activation_checkpointing(model) == cfg.depth
    torch.manual_seed(1)
    out = model(images, torch.arange(len(images)), len(images))
    out["loss"].backward()
    return out["loss"].detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                  if p.grad is not None}


def test_checkpointed_blocks_give_the_same_loss_and_gradients():
    cfg = ModelConfig(depth=3)
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    loss, grads = _loss_and_grads(cfg, images, False)
    loss_ck, grads_ck = _loss_and_grads(cfg, images, True)
    assert torch.equal(loss, loss_ck)
    assert grads.keys() == grads_ck.keys()
    for name in grads:
        torch.testing.assert_close(grads_ck[name], grads[name], rtol=0, atol=1e-7)


def test_saved_bytes_match_the_checkpointed_estimate():
    """What autograd keeps between forward and backward is the estimate less the one block that
    is recomputed at a time (transient), within 5%; about half of the plain model's here."""
    cfg, batch = ModelConfig(depth=6), 8
    torch.manual_seed(0)
    model = AIM(cfg)
    apply_activation_checkpointing(model)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.rand(batch, 1, 28, 28), torch.arange(batch), batch)
    measured = sum(v for k, v in saved.items() if k not in params)
    one_block = 4 * cfg.num_patches * batch * cfg.width * 16  # fp32, MLP ratio 4
    estimate = activation_bytes(cfg, batch, 4, checkpointing=True) - one_block
    assert abs(measured / estimate - 1) < 0.05, (measured, estimate)
    assert measured < 0.5 * activation_bytes(cfg, batch, 4, checkpointing=False)


def test_a_checkpointed_run_equals_its_twin(tmp_path, monkeypatch):
    from aimscale.train import act_ckpt

    wrapped = []
    monkeypatch.setattr(act_ckpt, "apply_activation_checkpointing",
                        lambda model: wrapped.append(apply_activation_checkpointing(model)))
    steps = ("train.steps=4", "train.log_every=1")
    plain = compose_run(tmp_path / "plain", *steps)
    ckpt = compose_run(tmp_path / "ckpt", *steps,
                       "train.activation_checkpointing=true")
    train(plain)
    assert wrapped == []
    train(ckpt)
    assert wrapped == [ckpt.model.depth]  # the loop checkpointed every trunk block
    rows = [[without_timing(r) for r in read_metrics(d / "metrics.jsonl")]
            for d in (tmp_path / "plain", tmp_path / "ckpt")]
    assert len(rows[0]) == 4
    for a, b in zip(*rows, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-6 and abs(a["grad_norm"] - b["grad_norm"]) < 1e-5
