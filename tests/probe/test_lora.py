"""LoRA fine-tuning: only the adapters and the head learn; the pre-trained trunk stays put."""

from __future__ import annotations

import json

import torch

from aimscale.probe.config import probe_config
from aimscale.probe.features import load_trunk
from aimscale.probe.fit import Hparams
from aimscale.probe.lora import LoRALinear, finetune_lora
from aimscale.probe.run import run_probe


def test_only_adapters_and_head_change(trained_run):
    trunk = load_trunk(trained_run, 20, torch.device("cpu"))
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    seen = []

    def image_batches(epoch):  # 4 batches of 16 per epoch
        seen.append(epoch)
        return zip(images.split(16), labels.split(16), strict=True)

    tuned, head = finetune_lora(
        trunk, [1, 2], Hparams(1e-2, 0.0), image_batches, 4, num_classes=10, heads=4, rank=2,
        epochs=2, generator=gen,
    )  # fmt: skip
    assert seen == [0, 1]
    # the original trunk is untouched and the adapted copy keeps its base weights
    for key, value in trunk.state_dict().items():
        assert torch.equal(value, before[key]), key
    adapted = tuned.state_dict()
    for key, value in before.items():
        base_key = key.replace(".qkv.", ".qkv.base.").replace("attn.proj.", "attn.proj.base.")
        assert torch.equal(adapted[base_key], value), key
    wrapped = [m for m in tuned.modules() if isinstance(m, LoRALinear)]
    assert len(wrapped) == 2 * 3  # qkv and proj of each of the 3 blocks
    trainable = {name for name, p in tuned.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith((".down", ".up")) for name in trainable)
    for module in wrapped:
        assert module.up.abs().sum() > 0  # started at zero, learned something
        assert module.down.shape == (2, module.base.in_features)
    assert head.query.grad is not None and head.weight.grad.abs().sum() > 0


def test_lora_probe_result(run_copy, fast):
    fast.update(limit_train=300, limit_test=200)
    cfg = probe_config(kind="lora", lrs=[3e-3], weight_decays=[0.0], lora_rank=2, lora_epochs=2,
                       **fast)  # fmt: skip
    result = run_probe(run_copy, cfg)
    saved = json.loads((run_copy / "probe" / "lora_last.json").read_text())
    assert saved == result and saved["kind"] == "lora"
    assert saved["hparams"]["lora_rank"] == 2 and saved["hparams"]["epochs"] == 2
    assert saved["top1"] > 0.3  # 10 classes
