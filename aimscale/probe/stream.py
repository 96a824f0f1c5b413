"""Feature streams: batches of a split's positions -> features of every block window + labels.

A `FeatureStream` yields, per batch of positions, float32 features [W, B, K, width] (one slice
per window) and labels [B], computed by the frozen trunk from freshly rendered images, or read
from `FeatureStore`s written once by `build_stores` (no augmentation, so features are fixed).
At most two batches are in memory: the next one is decoded (or read) in a background thread
while the current one runs through the trunk and the heads.

Several ranks (a probe job with N processes): each rank computes its contiguous share of every
batch (the trunk is the expensive part), then the shares are all-gathered in rank order, so
every rank holds the whole batch, in the order one rank would see it, and trains identical
copies of the heads (which are cheap) without any gradient exchange. The only difference to one
rank is the trunk's floating-point arithmetic on smaller batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.distributed as dist

from aimscale.model.config import ModelConfig
from aimscale.probe.data import Split, render_rows
from aimscale.probe.features import batch_windows
from aimscale.probe.store import FeatureStore
from aimscale.probe.windows import Window

Batch = tuple[torch.Tensor, torch.Tensor]  # features [W, B, K, width], labels [B]


class FeatureStream:
    """Features of `windows` over batches of `split`; `seconds` counts the time in the trunk."""

    def __init__(
        self,
        split: Split,
        model: ModelConfig,
        windows: list[Window],
        trunk: Callable[[], torch.nn.Module],
        env,  # aimscale.train.distributed.DistEnv
        stores: list[FeatureStore] | None = None,
    ):
        self.split, self.model, self.windows = split, model, windows
        self.trunk, self.env, self.stores = trunk, env, stores
        self.seconds = 0.0

    def __call__(self, batches: Iterable[np.ndarray]) -> Iterator[Batch]:
        mine = (share(np.asarray(positions), self.env) for positions in batches)
        load = self._read if self.stores else self._render
        for loaded in ahead(load, mine):  # the next batch loads while this one computes
            feats, labels = loaded if self.stores else self._compute(*loaded)
            yield gather(self.env, feats.to(self.env.device), labels.to(self.env.device))

    def _render(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, _ = render_rows(self.split, positions, self.model)
        return images, labels

    def _compute(self, images: torch.Tensor, labels: torch.Tensor) -> Batch:
        if not len(images):
            shape = (len(self.windows), 0, self.model.num_patches, self.model.width)
            return torch.empty(shape), labels
        start = time.perf_counter()
        feats = batch_windows(self.trunk(), images, self.windows)
        self.seconds += time.perf_counter() - start
        return feats, labels

    def _read(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [store.read(positions) for store in self.stores]
        kept = parts[0][1]
        return torch.stack([feats for feats, _ in parts]), torch.from_numpy(self.split.labels[kept])


def ahead(fn: Callable, items: Iterable) -> Iterator:
    """`fn(item)` of each item in order, each computed in a background thread while the caller
    works on the previous result (decoding overlaps the trunk; two batches in memory)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for item in items:
            future = pool.submit(fn, item)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def share(positions: np.ndarray, env) -> np.ndarray:
    """This rank's contiguous part of a batch (sizes differ by at most one)."""
    if not env.distributed:
        return positions
    return np.array_split(positions, env.world_size)[env.rank]


def gather(env, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (features [W, b, ...], labels [b]) joined along b in rank order."""
    if not env.distributed:
        return feats, labels
    size = torch.tensor([len(labels)], device=feats.device)
    sizes = [torch.zeros_like(size) for _ in range(env.world_size)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    most = max(sizes)
    pad_feats = feats.new_zeros((feats.shape[0], most, *feats.shape[2:]))
    pad_feats[:, : len(labels)] = feats
    pad_labels = labels.new_zeros(most)
    pad_labels[: len(labels)] = labels
    all_feats = [torch.empty_like(pad_feats) for _ in sizes]
    all_labels = [torch.empty_like(pad_labels) for _ in sizes]
    dist.all_gather(all_feats, pad_feats)
    dist.all_gather(all_labels, pad_labels)
    joined = torch.cat([f[:, :n] for f, n in zip(all_feats, sizes, strict=True)], dim=1)
    return joined, torch.cat([y[:n] for y, n in zip(all_labels, sizes, strict=True)])


def build_stores(
    split: Split,
    model: ModelConfig,
    windows: list[Window],
    stores: list[FeatureStore],
    trunk: Callable[[], torch.nn.Module],
    env,
    batch_size: int,
) -> float:
    """Write every incomplete store of `stores` (one per window) from one trunk pass over
    `split`, shards shared round-robin over ranks; returns the seconds spent in the trunk."""
    missing = [i for i, store in enumerate(stores) if not store.complete()]
    if env.distributed:  # every rank must agree on what to build
        flags = [float(i in missing) for i in range(len(stores))]
        flags = torch.tensor(flags, device=env.device)
        dist.all_reduce(flags)  # sum over ranks
        missing = [i for i in range(len(stores)) if flags[i] > 0]
    if not missing:
        return 0.0
    todo = [stores[i] for i in missing]
    todo_windows = [windows[i] for i in missing]
    seconds = 0.0
    first = todo[0]
    for shard in range(env.rank, first.num_shards, env.world_size):
        writers = [store.writer(shard) for store in todo]
        rows = first.shard_range(shard)
        starts = range(rows.start, rows.stop, batch_size)
        chunks = (np.arange(start, min(rows.stop, start + batch_size)) for start in starts)
        for positions, (images, _, kept) in ahead(
            lambda p: (p, render_rows(split, p, model)), chunks
        ):
            start = int(positions[0])
            feats = np.zeros((len(todo), len(positions), first.tokens, first.width), np.float16)
            ok = np.zeros(len(positions), dtype=bool)
            if len(images):
                begin = time.perf_counter()
                computed = batch_windows(trunk(), images, todo_windows)
                seconds += time.perf_counter() - begin
                feats[:, kept - start] = computed.to(torch.float16).cpu().numpy()
                ok[kept - start] = True
            for writer, part in zip(writers, feats, strict=True):
                writer.append(part, ok)
        for writer in writers:
            writer.commit()
    if env.distributed:
        dist.barrier()
    if env.rank == 0:
        for store in todo:
            store.finish()
    if env.distributed:
        dist.barrier()
    return seconds
