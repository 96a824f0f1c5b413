"""Frozen-trunk features: load a checkpoint's trunk, run it once, cache what it produced.

One pass of the trunk over a split yields the features of every requested block window (the
trunk returns each block's raw output; a window is their element-wise mean, exactly as
`Trunk.features` computes it), with bidirectional attention. No augmentation is used, so the
features are cached per (run, checkpoint step, window, dataset, split, limit): in memory (an LRU
bounded by AIMSCALE_PROBE_CACHE_MB, default 1024) and, when asked, on disk under
RUN_DIR/probe/cache/ as float32 (N·K·width·4 bytes per entry: 25 MB for 1000 images of a
width-128 trunk on 7×7 patches).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from aimscale.atomic import atomic_write
from aimscale.probe.windows import Window


@dataclass(frozen=True)
class FeatureKey:
    run_dir: str
    step: int
    mtime_ns: int  # of the checkpoint file: a re-trained run never reuses stale features
    dataset: str
    split: str
    limit: int | None
    start: int
    end: int

    def file_name(self) -> str:
        dataset = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.dataset)[-60:]
        return (
            f"step{self.step}_{dataset}_{self.split}_n{self.limit or 'all'}"
            f"_blocks{self.start}-{self.end}.pt"
        )


class FeatureCache:
    """LRU of feature tensors, bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[FeatureKey, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: FeatureKey, disk_dir: Path | None = None) -> torch.Tensor | None:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        if disk_dir is not None and (disk_dir / key.file_name()).is_file():
            tensor = torch.load(disk_dir / key.file_name(), map_location="cpu", weights_only=True)
            self.put(key, tensor)
            self.hits += 1
            return tensor
        self.misses += 1
        return None

    def put(self, key: FeatureKey, tensor: torch.Tensor, disk_dir: Path | None = None) -> None:
        if disk_dir is not None and not (disk_dir / key.file_name()).is_file():
            atomic_write(disk_dir / key.file_name(), lambda f: torch.save(tensor.cpu(), f))
        self._items[key] = tensor
        self._items.move_to_end(key)
        while len(self._items) > 1 and self.nbytes > self.max_bytes:
            self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._items.values())

    def clear(self) -> None:
        self._items.clear()


CACHE = FeatureCache(int(os.environ.get("AIMSCALE_PROBE_CACHE_MB", "1024")) * 2**20)


def load_trunk(run_dir: Path, step: int, device: torch.device) -> torch.nn.Module:
    """The frozen trunk (eval mode, no gradients) of `run_dir`'s checkpoint at `step`."""
    from aimscale.model import AIM
    from aimscale.train.checkpoint import load_model_weights

    run_cfg, state = load_model_weights(run_dir, step)
    model = AIM(run_cfg.model)
    model.load_state_dict(state)
    trunk = model.trunk.to(device).eval()
    trunk.requires_grad_(False)
    return trunk


@torch.no_grad()
def extract_windows(
    trunk: torch.nn.Module,
    images: torch.Tensor,
    windows: list[Window],
    batch_size: int = 256,
) -> list[torch.Tensor]:
    """Features [N, K, width] of every window, from one pass of the trunk over `images`."""
    device = next(trunk.parameters()).device
    upto = max(w.end for w in windows) + 1
    outs: list[torch.Tensor] = [torch.empty(0)] * len(windows)
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size].to(device)
        blocks = trunk.run_blocks(trunk.embed(chunk), upto=upto)  # bidirectional: no mask
        for i, w in enumerate(windows):
            feats = torch.stack(blocks[w.start : w.end + 1]).mean(0)
            if not outs[i].numel():
                outs[i] = feats.new_empty((len(images), *feats.shape[1:]))
            outs[i][start : start + len(chunk)] = feats
    return outs


def window_features(
    keys: list[FeatureKey],
    windows: list[Window],
    images: torch.Tensor,
    trunk_loader,
    disk_dir: Path | None = None,
    cache: FeatureCache = CACHE,
) -> tuple[list[torch.Tensor], float]:
    """Features of each (key, window), from the cache or one trunk pass over the missing ones.

    `trunk_loader()` returns the trunk; it is called only when something is missing.
    Returns (features, seconds spent in the trunk).
    """
    import time

    found = [cache.get(key, disk_dir) for key in keys]
    missing = [i for i, feats in enumerate(found) if feats is None]
    elapsed = 0.0
    if missing:
        trunk = trunk_loader()
        start = time.perf_counter()
        computed = extract_windows(trunk, images, [windows[i] for i in missing])
        elapsed = time.perf_counter() - start
        for i, feats in zip(missing, computed, strict=True):
            cache.put(keys[i], feats, disk_dir)
            found[i] = feats
    return found, elapsed
