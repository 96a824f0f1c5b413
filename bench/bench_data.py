"""Loader throughput of the pre-training stream (images/s), and the stored shard index at scale.

    python bench/bench_data.py [--batch 256] [--batches 20] [--workers 0 2] [--sources ...]
    python bench/bench_data.py --index [--samples 100000000] [--per-shard 10000]

`--index` builds a synthetic index of `--samples` samples (the arrays are written through the
real `IndexWriter`; the shards are symlinks to one real tar of 1,000 PNGs, each sample pointing at
one of its members, so no 10^8 files are made), then reports its build time and size, and, in a
fresh process, the memory and latency of opening it and rendering the first batch, and of
resuming far into the stream. For comparison it times scanning the real shard's headers (what
every process did without an index) and materialising one permutation of `--samples`.

Not a timed test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimscale.data import build_pretrain_data  # noqa: E402
from aimscale.data.config import DataConfig, SourceConfig  # noqa: E402
from aimscale.model.config import ModelConfig  # noqa: E402


def measure(cfg: DataConfig, model: ModelConfig, batch: int, batches: int) -> float:
    with build_pretrain_data(cfg, model, seed=0) as stream:
        stream.next_batch(batch)  # warm-up: opens sources, starts workers
        start = time.perf_counter()
        for _ in range(batches):
            stream.next_batch(batch)
        return batch * batches / (time.perf_counter() - start)


def _real_shard(path: Path, members: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    with tarfile.open(path, "w") as tar:
        for k in range(members):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
            info = tarfile.TarInfo(f"{k:06d}.png")
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)


def _memory() -> dict[str, float]:
    """This process's resident memory in MiB: anonymous (private) and file-backed (mmap)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def open_and_first_batch(root: str, samples: int, batch: int) -> dict:
    """In a fresh process: open the indexed source, render a batch; resume near the end."""
    before = _memory()
    start = time.perf_counter()
    cfg = DataConfig(sources=[SourceConfig(kind="tar-shards", path=root)], val_images=10_000)
    model = ModelConfig(image_size=32, patch_size=4, channels=3)
    stream = build_pretrain_data(cfg, model, seed=0)
    opened = time.perf_counter() - start
    stream.next_batch(batch)
    first = time.perf_counter() - start
    position = 7 * (samples - 10_000) + 12_345  # 7 epochs in: a far-away requeue
    state = {"position": position, "counts": [position], "skipped": 0,
             "subset_sizes": [samples - 10_000]}
    resume_start = time.perf_counter()
    stream.load_state_dict(state)
    stream.next_batch(batch)
    resumed = time.perf_counter() - resume_start
    return {"open_s": opened, "first_batch_s": first, "resume_batch_s": resumed,
            "before": before, "after": _memory()}


def bench_index(samples: int, per_shard: int, batch: int) -> None:
    from aimscale.data.permutation import KeyedPermutation
    from aimscale.data.shard_index import IndexWriter, default_index_dir
    from aimscale.data.tar_shards import scan_shard

    members = 1000
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        root = Path(tmp) / "shards"
        root.mkdir()
        real = Path(tmp) / "real.tar"
        _real_shard(real, members)
        scans = []
        for _ in range(3):  # best of three: the shard is in the page cache
            start = time.perf_counter()
            offsets, sizes, _ = scan_shard(str(real))
            scans.append(time.perf_counter() - start)
        scan_rate = members / min(scans)
        num_shards = -(-samples // per_shard)
        member = np.arange(per_shard) % members
        start = time.perf_counter()
        writer = IndexWriter(default_index_dir(root), source=str(root))
        for k in range(num_shards):
            shard = root / f"shard-{k:06d}.tar"
            os.symlink(real, shard)
            count = min(per_shard, samples - k * per_shard)
            writer.add_shard(str(shard), offsets[member[:count]], sizes[member[:count]])
        info = writer.close()
        build = time.perf_counter() - start
        index_dir = default_index_dir(root)
        on_disk = sum(f.stat().st_size for f in index_dir.iterdir())
        print(f"index of {info['num_samples']:,} samples in {num_shards:,} shards: built in "
              f"{build:.1f} s, {on_disk / 2**20:,.0f} MiB on disk "
              f"({on_disk / info['num_samples']:.1f} bytes/sample), builder's private memory "
              f"{_memory()['RssAnon']:.0f} MiB")
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                "from bench_data import open_and_first_batch as f; "
                f"print(json.dumps(f({str(root)!r}, {samples}, {batch})))")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env=env, cwd=Path(__file__).resolve().parents[1])
        child = json.loads(out.stdout.strip().splitlines()[-1])
        after, before = child["after"], child["before"]
        print(f"fresh process: open {child['open_s']:.2f} s, first batch of {batch} after "
              f"{child['first_batch_s']:.2f} s, resume 7 epochs in + one batch "
              f"{child['resume_batch_s']:.3f} s")
        print(f"  private memory: {after['RssAnon'] - before['RssAnon']:+.1f} MiB over the "
              f"imports ({before['RssAnon']:.0f} -> {after['RssAnon']:.0f} MiB); mapped index "
              f"pages {after['RssFile'] - before['RssFile']:.0f} MiB (the node's shared page "
              "cache, mapped by the kernel in up to 2 MiB folios)")
        perm = KeyedPermutation(samples, 1)
        start = time.perf_counter()
        perm.take(np.arange(0, samples, max(1, samples // 1_000_000)))
        keyed = (time.perf_counter() - start) / min(samples, 1_000_000) * 1e9
    part = min(samples, 10_000_000)
    start = time.perf_counter()
    np.random.default_rng(0).permutation(part)
    took = (time.perf_counter() - start) * samples / part
    print(f"without the index: scanning headers {scan_rate:,.0f} samples/s per process "
          f"({samples / scan_rate / 3600:.1f} h per process for {samples:,}, extrapolated); "
          f"one materialised int64 permutation {8 * samples / 2**20:,.0f} MiB, {took:.1f} s "
          f"(timed on {part:,}, scaled); the keyed permutation stores 0 bytes, "
          f"{keyed:.0f} ns per element")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--sources", nargs="+", default=["fashion-mnist", "synthetic"],
                        help="kinds or kind:path")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--index", action="store_true",
                        help="benchmark a stored shard index of --samples samples instead")
    parser.add_argument("--samples", type=float, default=1e8)
    parser.add_argument("--per-shard", type=int, default=10_000)
    args = parser.parse_args()
    if args.index:
        bench_index(int(args.samples), args.per_shard, args.batch)
        return
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
