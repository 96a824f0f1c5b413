"""Memory per GPU in `plan` (aimscale/memory.py): numbers, a real forward's saved tensors, the
paper spec and the warnings."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sweep_helpers import aimscale, write_spec

from aimscale.config import ConfigError, compose
from aimscale.flops import param_counts
from aimscale.gpus import gpu_by_device_name, gpu_by_name
from aimscale.memory import GB, activation_bytes, estimate_memory, fits, suggest
from aimscale.model.config import ModelConfig
from aimscale.sweep.plan import build_plan
from aimscale.sweep.resources import parse_resources
from aimscale.sweep.spec import load_spec


def _aim7b(**train):
    cfg = compose(["model=aim-7b", "train.batch_size=4096", "train.precision=bf16",
                   *(f"train.{k}={v}" for k, v in train.items())])
    return cfg.model, cfg.train


def test_aim7b_ddp_state_alone_overflows_an_80gb_gpu():
    model, train = _aim7b(micro_batch_size=8)
    n = param_counts(model).total
    assert 6.85e9 < n < 6.87e9
    est = estimate_memory(model, train, world_size=64, on_gpu=True)
    assert est.params + est.grads + est.optimizer == 16 * n  # fp32 weights, grads, 2 moments
    assert est.buffers == 4 * n + 2 * n  # DDP buckets + bf16 autocast weight copies
    assert 16 * n / GB > 109 and est.total_gb > 150
    assert fits(est, gpu_by_name("H100-SXM").memory_gb) is False


def test_aim7b_fsdp_over_8_gpus_shards_the_state_and_fits():
    model, train = _aim7b(strategy="fsdp", activation_checkpointing="true", micro_batch_size=8)
    n = param_counts(model).total
    est = estimate_memory(model, train, world_size=8, on_gpu=True)
    assert est.params + est.grads + est.optimizer == pytest.approx(16 * n / 8)  # 13.7 GB
    block = 4 * 4096**2 + 2 * 4096 * 16384 + 4 * 4096  # the largest unit: a trunk block
    assert est.buffers == 8 * block  # 2 gathered bf16 units + one fp32 gradient
    assert est.total_gb < 0.9 * 80
    assert fits(est, 80) is True


def test_trunk_block_activations_follow_the_closed_form():
    """Per block, bf16, MLP ratio 4: 32·s·b·h bytes (Korthikanti et al. without dropout);
    with checkpointing only the fp32 block input (4·s·b·h) per block plus one full block."""
    base = ModelConfig(width=256, heads=4, depth=1)
    deeper = replace(base, depth=3)
    s, b, h = base.num_patches, 16, 256
    per_block = (activation_bytes(deeper, b, 2, False) - activation_bytes(base, b, 2, False)) / 2
    assert per_block == 32 * s * b * h
    ckpt = (activation_bytes(deeper, b, 2, True) - activation_bytes(base, b, 2, True)) / 2
    assert ckpt == 4 * s * b * h
    assert activation_bytes(replace(base, heads=8), b, 2, False) == activation_bytes(
        base, b, 2, False)  # fused attention: no s x s matrix per head
    assert activation_bytes(base, b, 2, False, fused_attention=False) - activation_bytes(
        base, b, 2, False) == 2 * 4 * s * s * b


@pytest.mark.parametrize("kwargs", [{}, {"head_depth": 4, "head_width": 64},
                                    {"head_block": "plain", "attention": "causal"}])
def test_activation_estimate_matches_the_tensors_a_real_forward_saves(kwargs):
    """The bytes autograd keeps for the backward (saved-tensor hooks, one count per storage,
    parameters excluded) of a real fp32 forward on CPU are within 5% of the estimate."""
    torch = pytest.importorskip("torch")
    from aimscale.model import AIM

    cfg = ModelConfig(**kwargs)
    torch.manual_seed(0)
    model, batch = AIM(cfg), 8
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.rand(batch, 1, 28, 28), torch.arange(batch), batch)
    measured = sum(v for k, v in saved.items() if k not in params)
    estimate = activation_bytes(cfg, batch, 4, checkpointing=False)
    assert abs(measured / estimate - 1) < 0.05, (measured, estimate)


def test_suggestion_is_the_first_option_that_fits():
    model, train = _aim7b(micro_batch_size=64)
    text, est = suggest(model, train, 64, 80)
    assert text == "train.strategy=fsdp train.activation_checkpointing=true"
    assert 20 < est.total_gb < 30
    text, _ = suggest(model, replace(train, micro_batch_size=32), 64, 80)
    assert text == "train.strategy=fsdp"


def test_paper_spec_fits_80gb_gpus_with_a_strategy_per_preset():
    plan = build_plan(load_spec("sweeps/paper/aim.yaml"))
    got = {r.axes["variant"]: r.memory for r in plan.runs}
    assert set(got) == {"aim-600m", "aim-1b", "aim-3b", "aim-7b"}
    assert {k: m["strategy"] for k, m in got.items()} == {
        "aim-600m": "ddp", "aim-1b": "ddp", "aim-3b": "fsdp", "aim-7b": "fsdp"}
    for memory in got.values():
        assert memory["capacity_gb"] == 80 and memory["fits"] is True
        assert 30 < memory["total_gb"] < 72
    out = aimscale("plan", "sweeps/paper/aim.yaml").stdout
    assert "GB/GPU" in out and "42.4/80 ok" in out and "OVER" not in out


def test_plan_warns_and_suggests_when_ddp_cannot_fit(tmp_path):
    base = {"model": {"preset": "aim-7b"}, "train": {"batch_size": 512, "precision": "bf16"}}
    resources = {"classes": {"h100": {"gpus_per_node": 8, "gpu": "H100-SXM"}}}
    spec = write_spec(tmp_path / "s.yaml", "big", tmp_path / "s", base=base,
                      resources=resources)
    out = aimscale("plan", str(spec)).stdout
    assert "OVER" in out and "1 run(s) do not fit their GPUs" in out
    assert "does not fit 90% of the 80 GB GPUs of class 'h100'; set train.strategy=fsdp" in out
    assert "set train.strategy=fsdp train.activation_checkpointing=true (~" in out
    out = aimscale("plan", str(spec), "train.strategy=fsdp").stdout
    assert "93.5/80 OVER" in out  # sharding alone is not enough at micro-batch 64
    out = aimscale("plan", str(spec), "train.strategy=fsdp",
                   "train.activation_checkpointing=true").stdout
    assert "OVER" not in out and "fsdp+ac" in out


def test_bad_gpu_and_strategy_are_input_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown gpu 'H9000'"):
        parse_resources({"classes": {"x": {"gpus_per_node": 1, "gpu": "H9000"}}})
    spec = write_spec(tmp_path / "s.yaml", "bad", tmp_path / "s")
    out = aimscale("plan", str(spec), "train.strategy=zero3", check=False)
    assert out.returncode == 2 and "train.strategy='zero3' is not one of" in out.stderr
    assert not (tmp_path / "s").exists()


def test_gpu_table_matches_cuda_device_names():
    names = {"NVIDIA H100 80GB HBM3": "H100-SXM", "NVIDIA H100 PCIe": "H100-PCIe",
             "NVIDIA H200": "H200", "NVIDIA A100-SXM4-40GB": "A100-40GB",
             "NVIDIA A100-SXM4-80GB": "A100-80GB", "NVIDIA A100 80GB PCIe": "A100-80GB",
             "Tesla V100-SXM2-16GB": "V100-16GB", "Tesla V100-SXM2-32GB": "V100",
             "NVIDIA L40S": "L40S", "NVIDIA A10": "A10", "NVIDIA L4": "L4"}
    for device, name in names.items():
        assert gpu_by_device_name(device).name == name, device
    assert gpu_by_device_name("NVIDIA A10G") is None  # unknown: no guess
    assert gpu_by_name("h100-sxm").bf16_flops == 989e12
