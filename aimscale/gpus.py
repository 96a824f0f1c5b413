"""Known GPUs: memory and dense peak FLOP/s, by the name CUDA reports (no torch import).

Used by `plan` (memory per GPU of a resource class, `gpu: H100-SXM`) and by training (MFU against
the device's peak, `aimscale.train.mfu`). Peaks are the vendors' datasheet figures for *dense*
maths (the headline tensor figures are "with sparsity", twice these); `bf16` is the tensor-core
peak with FP32 accumulation, `fp32` the plain (non-TF32) FP32 peak. Memory is the nominal
capacity in GB (10^9 bytes, a little less than the card holds: a conservative bound).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_gb: float
    bf16_flops: float  # dense tensor-core peak, FLOP/s
    fp32_flops: float  # dense FP32 (non-tensor) peak, FLOP/s
    pattern: str  # regex on the lower-cased CUDA device name

    def peak_flops(self, precision: str) -> float:
        return self.bf16_flops if precision == "bf16" else self.fp32_flops


T = 1e12
# Order matters: the first pattern that matches the device name wins (specific before general).
KNOWN_GPUS: tuple[GpuSpec, ...] = (
    # NVIDIA B200 datasheet (HGX B200): 4.5 PFLOPS FP16/BF16 with sparsity -> 2.25 dense; 180 GB
    GpuSpec("B200", 180, 2250 * T, 80 * T, r"\bb200\b"),
    # H200 datasheet: SXM 1,979 TFLOPS BF16 with sparsity (989 dense), FP32 67 TF, 141 GB;
    # NVL 1,671 sparse (835 dense), FP32 60 TF
    GpuSpec("H200-NVL", 141, 835 * T, 60 * T, r"\bh200\b.*\bnvl\b"),
    GpuSpec("H200", 141, 989 * T, 67 * T, r"\bh200\b"),
    # H100 datasheet: SXM 1,979 sparse (989 dense) BF16, FP32 67 TF, 80 GB; PCIe 1,513 sparse
    # (756 dense), FP32 51 TF, 80 GB; NVL 1,671 sparse (835 dense), FP32 60 TF, 94 GB
    GpuSpec("H100-NVL", 94, 835 * T, 60 * T, r"\bh100\b.*\bnvl\b"),
    GpuSpec("H100-PCIe", 80, 756 * T, 51 * T, r"\bh100\b.*\bpcie\b"),
    GpuSpec("H100-SXM", 80, 989 * T, 67 * T, r"\bh100\b"),
    # A100 datasheet: BF16 312 TF dense (624 sparse), FP32 19.5 TF; 40 GB and 80 GB models
    GpuSpec("A100-40GB", 40, 312 * T, 19.5 * T, r"\ba100\b.*\b40\s*gb\b"),
    GpuSpec("A100-80GB", 80, 312 * T, 19.5 * T, r"\ba100\b"),
    # L40S datasheet: BF16 733 TF with sparsity (362 dense), FP32 91.6 TF, 48 GB
    GpuSpec("L40S", 48, 362 * T, 91.6 * T, r"\bl40s\b"),
    # A40 datasheet: BF16 299 TF with sparsity (150 dense), FP32 37.4 TF, 48 GB
    GpuSpec("A40", 48, 150 * T, 37.4 * T, r"\ba40\b"),
    # A10 datasheet: BF16 250 TF with sparsity (125 dense), FP32 31.2 TF, 24 GB
    GpuSpec("A10", 24, 125 * T, 31.2 * T, r"\ba10\b"),
    # L4 datasheet: BF16 242 TF with sparsity (121 dense), FP32 30.3 TF, 24 GB
    GpuSpec("L4", 24, 121 * T, 30.3 * T, r"\bl4\b"),
    # V100 datasheet (SXM2): 125 TF FP16 tensor, FP32 15.7 TF, 16/32 GB. V100 has no BF16 tensor
    # cores: the FP16 figure is its tensor peak, which bf16 autocast cannot reach there.
    GpuSpec("V100-16GB", 16, 125 * T, 15.7 * T, r"\bv100\b.*\b16\s*gb\b"),
    GpuSpec("V100", 32, 125 * T, 15.7 * T, r"\bv100\b"),
)

_BY_NAME = {spec.name.lower(): spec for spec in KNOWN_GPUS}


def _normalise(name: str) -> str:
    return re.sub(r"[-_]", " ", name.lower())


def gpu_by_device_name(device_name: str) -> GpuSpec | None:
    """The spec whose pattern matches a CUDA device name ("NVIDIA H100 80GB HBM3"), or None."""
    text = _normalise(device_name)
    for spec in KNOWN_GPUS:
        if re.search(spec.pattern, text):
            return spec
    return None


def gpu_by_name(name: str) -> GpuSpec | None:
    """A table entry by its own name (`H100-SXM`, case-insensitive) or by a device name."""
    return _BY_NAME.get(name.lower()) or gpu_by_device_name(name)


def known_names() -> list[str]:
    return [spec.name for spec in KNOWN_GPUS]
