"""Probe benchmark: trunk feature throughput, a grid of 8 heads trained together vs one after
another on the same features, and (`--memory`) the peak RSS of whole probes against data size.

    python bench/bench_probe.py                 # aim-tiny trunk (width 128, depth 4), 1 thread
    python bench/bench_probe.py --width 64 --images 2000 --threads 2
    python bench/bench_probe.py --memory        # `aimscale probe` on 6k and all 60k images
    python bench/bench_probe.py --memory --pythonpath /path/to/other/checkout --cache ""

The trunk is randomly initialised (speed does not depend on the weights); the features are its
real outputs on random 28×28 images. Each timing is the best of `--repeats` after a warm-up.
`--memory` pre-trains an aim-tiny run on Fashion-MNIST for 2 steps, then runs
`aimscale probe RUN --kind both --limit-train N ...` for each size in its own wrapper process,
which reports `getrusage(RUSAGE_CHILDREN).ru_maxrss` (the probe's peak RSS).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from aimscale.model import AIM
from aimscale.model.config import ModelConfig
from aimscale.probe.features import extract_windows
from aimscale.probe.fit import fit_heads, make_grid
from aimscale.probe.heads import AttentiveHeads, LinearHeads
from aimscale.probe.windows import resolve_windows


def best_of(repeats: int, fn) -> float:
    fn()  # warm-up (first-call allocations, optimizer imports)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


WRAPPER = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss(args: argparse.Namespace) -> None:
    """Peak RSS of `aimscale probe` on Fashion-MNIST for each training-set size."""
    from aimscale.config import compose
    from aimscale.train import train

    run_dir = Path(tempfile.mkdtemp(prefix="bench_probe_")) / "run"
    train(compose([
        "data=fashion-mnist", "train.steps=2", "train.batch_size=32", "data.num_images=1000",
        "data.val_images=100", "train.eval_every=2", "train.eval_images=64",
        "train.checkpoint_every=2", "logging.progress=none", f"run_dir={run_dir}",
    ]))  # fmt: skip
    code = args.pythonpath or str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=code)
    print(f"aim-tiny (width 128, depth 4), Fashion-MNIST, code {code}, {args.threads} thread(s)")
    for size in args.sizes.split(","):
        cmd = [sys.executable, "-m", "aimscale", "probe", str(run_dir), "--kind", "both",
               "--limit-train", size, "--limit-test", str(args.limit_test),
               "--epochs", str(args.epochs), "--name", f"n{size}"]  # fmt: skip
        if args.cache:
            cmd += ["--cache", args.cache]
        start = time.perf_counter()
        # cwd=code: `python -m` puts the working directory first on sys.path
        out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], env=env, cwd=code, text=True,
                             capture_output=True, check=True).stdout.split()  # fmt: skip
        seconds = time.perf_counter() - start
        status = "ok" if out[0] == "0" else f"exit {out[0]}"
        print(f"  --limit-train {size:>6}: peak RSS {int(out[1]) / 1024:7.0f} MiB "
              f"({seconds:5.1f} s, {status})")  # fmt: skip
    print("  command: " + " ".join(cmd[2:]).replace(str(run_dir), "RUN"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--images", type=int, default=8000, help="training images for the heads")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="peak RSS of whole probes instead")
    parser.add_argument("--sizes", default="6000,all", help="--memory: training-set sizes")
    parser.add_argument("--limit-test", type=int, default=2000, help="--memory: test images")
    parser.add_argument("--cache", default="auto", help="--memory: auto|disk|none ('' to omit)")
    parser.add_argument("--pythonpath", help="--memory: measure the code of another checkout")
    args = parser.parse_args()
    if args.memory:
        peak_rss(args)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = ModelConfig(width=args.width, depth=args.depth, heads=args.heads)
    trunk = AIM(cfg).trunk.eval().requires_grad_(False)
    images = torch.randn(args.images, cfg.channels, cfg.image_size, cfg.image_size)
    window = resolve_windows("last", cfg.depth)
    seconds = best_of(args.repeats, lambda: extract_windows(trunk, images, window))
    print(f"trunk width {cfg.width} depth {cfg.depth}, {cfg.num_patches} patches, "
          f"{args.threads} thread(s)")  # fmt: skip
    print(f"feature extraction: {args.images / seconds:8.0f} images/s ({seconds:.2f} s for "
          f"{args.images})")  # fmt: skip

    (features,) = extract_windows(trunk, images, window)
    labels = torch.randint(0, 10, (args.images,))
    rows = torch.arange(args.images)
    grid = make_grid([1e-3, 3e-3, 1e-2, 3e-2], [0.0, 0.05])

    def build(kind: str, groups: int):
        gen = torch.Generator().manual_seed(0)
        if kind == "attentive":
            return AttentiveHeads(groups, cfg.width, cfg.heads, 10, gen)
        return LinearHeads(groups, cfg.width, 10, gen)

    for kind, feats in (("attentive", features), ("linear", features.mean(1))):

        def together(kind=kind, feats=feats):
            fit_heads(build(kind, len(grid)), grid, feats, labels, rows, args.epochs,
                      args.batch_size, torch.Generator().manual_seed(0))  # fmt: skip

        def one_by_one(kind=kind, feats=feats):
            for hp in grid:
                fit_heads(build(kind, 1), [hp], feats, labels, rows, args.epochs,
                          args.batch_size, torch.Generator().manual_seed(0))  # fmt: skip

        t_grid = best_of(args.repeats, together)
        t_seq = best_of(args.repeats, one_by_one)
        per_epoch = args.images * args.epochs
        print(f"{kind:>9} grid of {len(grid)}: together {t_grid:6.2f} s "
              f"({per_epoch / t_grid:7.0f} images·epochs/s), one after another {t_seq:6.2f} s "
              f"-> speed-up {t_seq / t_grid:4.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
