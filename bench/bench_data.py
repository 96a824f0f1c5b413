"""Loader throughput of the pre-training stream (images/s), per source and worker count.

    python bench/bench_data.py [--batch 256] [--batches 20] [--workers 0 2] [--sources ...]

Not a timed test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time

from aimscale.data import build_pretrain_data
from aimscale.data.config import DataConfig, SourceConfig
from aimscale.model.config import ModelConfig


def measure(cfg: DataConfig, model: ModelConfig, batch: int, batches: int) -> float:
    with build_pretrain_data(cfg, model, seed=0) as stream:
        stream.next_batch(batch)  # warm-up: opens sources, starts workers
        start = time.perf_counter()
        for _ in range(batches):
            stream.next_batch(batch)
        return batch * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--sources", nargs="+", default=["fashion-mnist", "synthetic"],
                        help="kinds or kind:path")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args()
    model = ModelConfig(image_size=args.image_size, channels=args.channels)
    for spec in args.sources:
        kind, _, path = spec.partition(":")
        for workers in args.workers:
            cfg = DataConfig(sources=[SourceConfig(kind=kind, path=path or None)],
                             num_workers=workers)
            rate = measure(cfg, model, args.batch, args.batches)
            print(f"{spec:40s} workers={workers}  {rate:9.0f} images/s")


if __name__ == "__main__":
    main()
