"""Model FLOP utilisation: model FLOP/s of a run against its devices' peak.

    model_flops_per_s = images per second × training FLOPs per image (aimscale.flops: 3 × the
                        forward's counted matmuls; recomputation is not counted: *model* FLOPs)
    mfu               = model_flops_per_s / (peak per device × world size)

The peak per device: `train.peak_flops` when set; on CUDA the datasheet figure of a known GPU
(aimscale.gpus, by device name; bf16 tensor peak under bf16, FP32 otherwise), None for an unknown
GPU (the run then logs no MFU rather than a guess); on CPU a measured GEMM peak: the best of a
few timed fp32 matmuls with the process's threads, measured once per process.
"""

from __future__ import annotations

import time

import torch

from aimscale.gpus import gpu_by_device_name

_CPU_PEAK: dict[int, float] = {}  # threads -> FLOP/s


def measured_cpu_peak(size: int = 256, repeats: int = 10, inner: int = 2) -> float:
    """FLOP/s of the best of `repeats` timings of `inner` size×size fp32 matmuls (cached).

    Short timings, many of them: on a shared machine the best one is the least disturbed, and
    the whole measurement takes well under a second of a run's start-up."""
    threads = torch.get_num_threads()
    if threads not in _CPU_PEAK:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen)
        b = torch.randn(size, size, generator=gen)
        out = torch.empty(size, size)
        torch.mm(a, b, out=out)  # warm up the kernel and the caches
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(inner):
                torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - start)
        _CPU_PEAK[threads] = 2 * size**3 * inner / best
    return _CPU_PEAK[threads]


def resolved_precision(precision: str, device_type: str) -> str:
    if precision == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return precision


def device_peak(device: torch.device, precision: str, override: float | None
                ) -> tuple[float | None, str]:
    """(peak FLOP/s of one device or None, where the figure comes from)."""
    if override:
        return float(override), "train.peak_flops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        spec = gpu_by_device_name(name)
        if spec is None:
            return None, f"unknown GPU {name!r}: set train.peak_flops for MFU"
        precision = resolved_precision(precision, "cuda")
        return spec.peak_flops(precision), f"{spec.name} {precision} datasheet"
    return measured_cpu_peak(), f"measured CPU GEMM ({torch.get_num_threads()} threads)"


def throughput_fields(flops_per_image: int, images_per_s: float, peak: float | None,
                      world_size: int) -> dict[str, float]:
    """The metrics row's `model_flops_per_s` and (with a known peak) `mfu`."""
    flops_per_s = float(flops_per_image) * images_per_s
    fields = {"model_flops_per_s": float(f"{flops_per_s:.4g}")}
    if peak:
        fields["mfu"] = round(flops_per_s / (peak * max(1, world_size)), 5)
    return fields


def median_throughput(rows: list[dict]) -> dict[str, float]:
    """The summary's `mfu` and `model_flops_per_s`: medians over the metrics rows, the first
    row left out when there are others (it holds start-up: compile, first batches, caches)."""
    import statistics

    rows = [r for r in rows if "model_flops_per_s" in r]
    rows = rows[1:] if len(rows) > 1 else rows
    out = {}
    for key in ("model_flops_per_s", "mfu"):
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            out[key] = statistics.median(values)
    return out
