"""Training-step throughput and model FLOP utilisation (MFU) of AIM.

MFU = achieved model FLOP/s (closed-form `flops_per_image` × images/s, a full AdamW step timed)
÷ this machine's matmul peak, measured in the same run: a large fp32 matmul on CPU, bf16 on GPU.
The peak is re-measured right before and after each shape and the larger value used, so
contention from other processes on a shared machine lowers both sides of the ratio alike.

    python bench/bench_model.py                 # CPU table
    python bench/bench_model.py --device cuda   # AIM-600M shape, bf16 autocast, largest batch

Under bf16 autocast LayerNorm runs in fp32 (autocast's policy), as in the paper's recipe.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimscale.config import compose  # noqa: E402
from aimscale.flops import flops_per_image  # noqa: E402
from aimscale.model import AIM  # noqa: E402
from aimscale.model.config import ModelConfig  # noqa: E402


@dataclass
class Shape:
    label: str
    cfg: ModelConfig
    batch: int


def cpu_shapes() -> list[Shape]:
    tiny = compose(["model=aim-tiny"]).model
    mid = ModelConfig(
        name="w512-k64", image_size=32, patch_size=4, channels=3, width=512, depth=4, heads=8,
        head_width=512, head_depth=2,
    )  # fmt: skip
    wide = ModelConfig(
        name="w768-k64", image_size=32, patch_size=4, channels=3, width=768, depth=4, heads=6,
        head_width=768, head_depth=2,
    )  # fmt: skip
    return [Shape("aim-tiny", tiny, 64), Shape("w512-k64", mid, 64), Shape("w768-k64", wide, 64)]


def matmul_peak(device: str, dtype: torch.dtype, size: int, seconds: float = 1.0) -> float:
    """FLOP/s of a square matmul, best of repeated timings."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(5):
            torch.mm(a, b, out=out)
        _sync(device)
        best = max(best, 5 * 2 * size**3 / (time.perf_counter() - t0))
    return best


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_training(
    shape: Shape, device: str, steps: int, autocast: bool, compile: bool = False
) -> float:
    """Seconds per optimiser step (forward, backward, AdamW), after two warm-up steps."""
    model = AIM(shape.cfg).to(device)
    optimizer = torch.optim.AdamW(model.param_groups(0.05), lr=1e-4, fused=device == "cuda")
    forward = torch.compile(model) if compile else model
    cfg = shape.cfg
    images = torch.randn(shape.batch, cfg.channels, cfg.image_size, cfg.image_size, device=device)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            loss = forward(images)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def largest_cuda_batch(cfg: ModelConfig, start: int = 16, limit: int = 1024) -> int:
    """Double the batch until a training step runs out of memory; keep the last that fitted."""
    fitted, batch = 0, start
    while batch <= limit:
        try:
            time_training(Shape("probe", cfg, batch), "cuda", steps=1, autocast=True)
            fitted, batch = batch, batch * 2
        except torch.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    if not fitted:
        raise SystemExit(f"batch {start} does not fit on this GPU; lower --start-batch")
    return fitted


def peak_memory_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, process peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per shape")
    parser.add_argument("--compile", action="store_true", help="time torch.compile(model)")
    parser.add_argument("--batch", type=int, default=0, help="cuda: fixed batch (0 = largest)")
    args = parser.parse_args()

    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        cfg = compose(["model=aim-600m"]).model
        batch = args.batch or largest_cuda_batch(cfg)
        shapes, dtype, size, autocast = [Shape("aim-600m", cfg, batch)], torch.bfloat16, 8192, True
    else:
        shapes, dtype, size, autocast = cpu_shapes(), torch.float32, 2048, False
    print(f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    header = (
        f"{'shape':<10} {'width':>5} {'tok':>4} {'batch':>5} {'img/s':>9} {'patch/s':>10} "
        f"{'TFLOP/s':>8} {'peak':>8} {'MFU':>5} {'mem GiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for shape in shapes:
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        before = matmul_peak(args.device, dtype, size)
        seconds = time_training(shape, args.device, args.steps, autocast, args.compile)
        peak = max(before, matmul_peak(args.device, dtype, size))
        images_per_s = shape.batch / seconds
        achieved = flops_per_image(shape.cfg) * images_per_s
        cfg = shape.cfg
        print(
            f"{shape.label:<10} {cfg.width:>5} {cfg.num_patches:>4} {shape.batch:>5} "
            f"{images_per_s:>9.1f} {images_per_s * cfg.num_patches:>10.0f} "
            f"{achieved / 1e12:>8.3f} {peak / 1e12:>8.3f} {achieved / peak:>5.2f} "
            f"{peak_memory_gib(args.device):>8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
