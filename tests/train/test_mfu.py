"""Measured MFU: rows and summary carry model FLOP/s and 0 < MFU <= 1; the peak's sources."""

from __future__ import annotations

import statistics

import pytest
import torch

from aimscale.train import train
from aimscale.train.metrics import read_metrics
from aimscale.train.mfu import device_peak, measured_cpu_peak, median_throughput, throughput_fields

from .conftest import compose_run


def test_rows_and_summary_have_plausible_mfu_against_the_measured_cpu_peak(tmp_path):
    cfg = compose_run(tmp_path, "train.steps=6", "train.log_every=2")
    summary = train(cfg)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    peak = measured_cpu_peak()  # cached: the value the run used in this process
    assert 1e8 < peak < 1e13
    for row in rows:
        assert 0 < row["mfu"] <= 1
        expected = row["images_per_s"] * summary["flops_per_image"]
        assert row["model_flops_per_s"] == pytest.approx(expected, rel=2e-3)
        assert row["mfu"] == pytest.approx(row["model_flops_per_s"] / peak, rel=2e-3, abs=1e-5)
    assert 0 < summary["mfu"] <= 1
    assert summary["mfu"] == pytest.approx(statistics.median(r["mfu"] for r in rows[1:]))


def test_peak_flops_override_sets_the_denominator(tmp_path):
    cfg = compose_run(tmp_path, "train.steps=2", "train.log_every=1",
                      "train.peak_flops=1e15")
    train(cfg)
    for row in read_metrics(tmp_path / "metrics.jsonl"):
        assert row["mfu"] == pytest.approx(row["model_flops_per_s"] / 1e15, abs=1e-5)


def test_peak_sources_and_arithmetic():
    assert device_peak(torch.device("cpu"), "auto", 3e12) == (3e12, "train.peak_flops")
    peak, source = device_peak(torch.device("cpu"), "auto", None)
    assert peak == measured_cpu_peak() and source.startswith("measured CPU GEMM")
    fields = throughput_fields(10**9, 400.0, 1e12, world_size=4)
    assert fields == {"model_flops_per_s": 4e11, "mfu": 0.1}  # 4e11 / (1e12 x 4 GPUs)
    assert throughput_fields(10**9, 400.0, None, 1) == {"model_flops_per_s": 4e11}
    rows = [{"model_flops_per_s": 1.0, "mfu": 0.9}, {"model_flops_per_s": 2.0, "mfu": 0.2},
            {"model_flops_per_s": 4.0, "mfu": 0.4}, {"model_flops_per_s": 3.0, "mfu": 0.3}]
    assert median_throughput(rows) == {"model_flops_per_s": 3.0, "mfu": 0.3}  # first left out


def test_step_scalars_stay_on_the_device_until_a_log_step(tmp_path, monkeypatch):
    """No float()/item() of the loss or grad norm per step: `_step` returns tensors."""
    from aimscale.train import loop

    seen = []
    original = loop._Trainer._step

    def spy(self, *args):
        out = original(self, *args)
        seen.append(out)
        return out

    monkeypatch.setattr(loop._Trainer, "_step", spy)
    train(compose_run(tmp_path, "train.steps=3", "train.log_every=3"))
    assert len(seen) == 3
    assert all(isinstance(v, torch.Tensor) for out in seen for v in out)
