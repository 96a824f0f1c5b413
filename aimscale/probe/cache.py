"""Where a probe's features come from between epochs: the trunk again, or an fp16 store.

`feature_streams` opens the (train, test) `FeatureStream`s of one checkpoint and says which
cache it used:

- `none`: the trunk runs over the images every epoch (nothing on disk; the right choice when
  the features would be huge, e.g. ImageNet-1k through AIM-0.6B is about 2 TB).
- `temporary` (cache=auto, when epochs > 1 and the training split's store needs at most
  AIMSCALE_PROBE_CACHE_GB, default 4): one trunk pass writes `FeatureStore`s into
  RUN_DIR/probe/.cache-<id>/, every epoch reads them, the folder is deleted at the end. The
  test split is read once, so it streams from the trunk.
- `disk` (cache=disk): stores for both splits in RUN_DIR/probe/cache/<step, dataset, split,
  limit>/blocks<s>-<e>/, kept; a later probe of the same checkpoint, data and window reads them
  without running the trunk (the checkpoint's mtime and size are part of the store's identity,
  so a retrained run never reads stale features).

Probes use no augmentation, so the stored features are exactly what the trunk would produce
again (rounded to fp16).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from aimscale.probe.store import FeatureStore
from aimscale.probe.stream import FeatureStream, build_stores

DEFAULT_BUDGET_GB = 4.0


def cache_mode(cfg, rows: int, windows: int, tokens: int, width: int) -> str:
    """none | temporary | disk for a probe of `rows` training images over `windows` windows."""
    if cfg.cache == "disk":
        return "disk"
    if cfg.cache == "none" or cfg.epochs < 2:
        return "none"
    budget = float(os.environ.get("AIMSCALE_PROBE_CACHE_GB", DEFAULT_BUDGET_GB)) * 2**30
    return "temporary" if rows * windows * tokens * width * 2 <= budget else "none"


@contextmanager
def feature_streams(cfg, sets, model, windows, trunk, env, plan):
    """(train stream, test stream, cache mode) for one checkpoint; `trunk` is the lazy loader
    with an `identity` (step, checkpoint mtime and size)."""
    tokens, width = model.num_patches, model.width
    mode = cache_mode(cfg, len(sets.train), len(windows), tokens, width)
    if mode == "none":
        yield (FeatureStream(sets.train, model, windows, trunk, env),
               FeatureStream(sets.test, model, windows, trunk, env), mode)  # fmt: skip
        return
    probe_dir = plan.run_dir / "probe"
    root = probe_dir / "cache" if mode == "disk" else _shared_temp_dir(probe_dir, env)
    opened: list[FeatureStore] = []
    try:
        streams = []
        for split_name, split, limit in (
            ("train", sets.train, cfg.limit_train),
            ("test", sets.test, cfg.limit_test),
        ):
            if split_name == "test" and mode == "temporary":  # read once: no store needed
                streams.append(FeatureStream(split, model, windows, trunk, env))
                continue
            dataset = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.dataset)[-60:]
            tag = f"{trunk.identity['features']}_" if "features" in trunk.identity else ""
            folder = root / (f"{tag}step{trunk.identity['step']}_{dataset}_{split_name}"
                             f"_n{limit or 'all'}")
            identity = {**trunk.identity, "dataset": cfg.dataset, "split": split_name,
                        "limit": limit}  # fmt: skip
            stores = [
                FeatureStore(
                    folder / f"blocks{w.start}-{w.end}",
                    len(split),
                    tokens,
                    width,
                    {**identity, "blocks": w.span},
                )  # fmt: skip
                for w in windows
            ]
            opened += stores
            seconds = build_stores(split, model, windows, stores, trunk, env, cfg.batch_size)
            stream = FeatureStream(split, model, windows, trunk, env, stores)
            stream.seconds = seconds
            streams.append(stream)
        yield streams[0], streams[1], mode
    finally:
        for store in opened:
            store.close()
        if mode == "temporary":
            _barrier(env)  # no rank still reads the store
            if env.rank == 0:
                shutil.rmtree(root, ignore_errors=True)


def _shared_temp_dir(probe_dir: Path, env) -> Path:
    """A fresh folder under RUN_DIR/probe/ made by rank 0, the same path on every rank."""
    from aimscale.train.distributed import all_gather_objects

    name = None
    if env.rank == 0:
        probe_dir.mkdir(parents=True, exist_ok=True)
        name = tempfile.mkdtemp(prefix=".cache-", dir=probe_dir)
    return Path(all_gather_objects(env, name)[0])


def _barrier(env) -> None:
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()
