"""The pre-training stream: `build_pretrain_data(cfg, model, seed, rank, world_size)`.

Determinism (contract): the stream is a sequence of global sample positions 0, 1, 2, ...; a call
`next_batch(n)` on each of `world_size` ranks consumes the next n·world_size positions, and rank r
takes positions r, r + world_size, ... of them. Position p is rendered from
- its source: `SourceSchedule(weights, seed)` (pure function of (seed, p));
- its source-local position q (how many earlier positions chose the same source): epoch q // N_s,
  image = subset[permutation(seed, source, epoch)[q % N_s]], where the epoch's permutation is a
  keyed permutation (`aimscale.data.permutation`) evaluated per position, never stored;
- its crop and flip: a generator seeded by (seed, source, q).
So a batch depends only on (seed, position, rank, world_size), never on timing or worker count;
`state_dict()` is the position, the per-source counters and the skip count.

A corrupt image is replaced by another image of the same subset chosen by (seed, source, q, try),
counted in `skipped`, and logged once.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from dataclasses import dataclass

import numpy as np
import torch

from aimscale.data.augment import PIXEL_MEAN, PIXEL_STD, crop_resize, sample_crop
from aimscale.data.config import DataConfig
from aimscale.data.errors import DataError
from aimscale.data.mixture import SourceSchedule
from aimscale.data.permutation import KeyedPermutation, derive_key
from aimscale.data.seeding import sample_rng
from aimscale.data.sources import ImageSource, open_source, source_label
from aimscale.data.subsets import OrderSlice, share, split_indices
from aimscale.model.config import ModelConfig

log = logging.getLogger("aimscale.data")
MAX_TRIES = 64  # consecutive corrupt draws before giving up on a source
_CLOSE_WAIT_S = 60.0  # for a prefetched batch still rendering when the stream closes
_EPOCH_STREAM = 0xE90C
_AUG_STREAM = 0xA06
_RETRY_STREAM = 0x7E70000  # + the try number


@dataclass
class Renderer:
    """Turns (source, image index, local position) into an augmented tensor; runs in workers."""

    sources: list[ImageSource]
    subsets: list[OrderSlice]
    seed: int
    size: int
    channels: int
    scale: tuple[float, float]
    hflip: bool

    def render_many(self, tasks: list[tuple[int, int, int]]) -> tuple[np.ndarray, int]:
        """tasks of (source, image index, local position) -> (float32 [k, C, H, W], skipped)."""
        out = np.empty((len(tasks), self.channels, self.size, self.size), dtype=np.float32)
        skipped = 0
        for row, (s, index, q) in enumerate(tasks):
            image = self.sources[s].load(index)
            tries = 0
            while image is None:
                skipped += 1
                tries += 1
                if tries >= MAX_TRIES:
                    raise DataError(
                        f"{self.sources[s].name}: {MAX_TRIES} corrupt images in a row; the "
                        "dataset is unreadable, check its files"
                    )
                pick = sample_rng(self.seed, _RETRY_STREAM + tries, s, q).random()
                subset = self.subsets[s]
                image = self.sources[s].load(int(subset[int(pick * len(subset))]))
            rng = sample_rng(self.seed, _AUG_STREAM, s, q)
            crop = sample_crop(image.shape[0], image.shape[1], self.scale, self.hflip, rng)
            out[row] = crop_resize(image, crop, self.size, self.channels).numpy()
        out -= PIXEL_MEAN
        out /= PIXEL_STD
        return out, skipped


_WORKER_RENDERER: Renderer | None = None


def _init_worker(renderer: Renderer) -> None:
    global _WORKER_RENDERER
    _WORKER_RENDERER = renderer
    # forked workers inherit the trainer's stop handlers; with them, the SIGTERM of
    # Pool.terminate would only set a flag and `close()` would wait for them forever. The main
    # process alone decides when to stop: SIGTERM ends a worker, SIGINT and SIGUSR2 (a Ctrl-C or
    # SLURM's warning, sent to the whole process group) leave it running.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    torch.set_num_threads(1)  # the parallelism is across workers


def _worker_render(tasks):
    return _WORKER_RENDERER.render_many(tasks)


class PretrainStream:
    """Endless, resumable stream of augmented training batches for one rank."""

    def __init__(self, renderer: Renderer, weights: list[float], rank: int, world_size: int,
                 num_workers: int = 0):
        self.renderer = renderer
        self.schedule = SourceSchedule(weights, renderer.seed)
        self.rank, self.world_size = rank, world_size
        self.num_workers = num_workers
        self.position = 0
        self.counts = np.zeros(len(weights), dtype=np.int64)
        self.skipped = 0
        self._warned = False
        self._pool = None
        self._prefetch = None  # (position, n, async result, counts after)

    # -- planning: which image and augmentation each position gets -------------------------
    def _image_indices(self, s: int, q: np.ndarray) -> np.ndarray:
        """Image indices of source s at local positions q (int64 array)."""
        subset = self.renderer.subsets[s]
        epochs, offsets = np.divmod(q, len(subset))
        out = np.empty(len(q), dtype=np.int64)
        for epoch in np.unique(epochs).tolist():  # one or two epochs per batch
            rows = epochs == epoch
            key = derive_key(self.renderer.seed, _EPOCH_STREAM, s, epoch)
            out[rows] = subset.take(KeyedPermutation(len(subset), key).take(offsets[rows]))
        return out

    def _plan(self, n: int, position: int, counts: np.ndarray):
        """This rank's tasks for the next global batch, and the counters after it."""
        total = n * self.world_size
        chosen = self.schedule.sources(position, total)
        local = np.empty(total, dtype=np.int64)
        counts = counts.copy()
        for s in range(len(counts)):
            mask = chosen == s
            k = int(mask.sum())
            local[mask] = counts[s] + np.arange(k)
            counts[s] += k
        mine = slice(self.rank, total, self.world_size)
        chosen, local = chosen[mine], local[mine]
        images = np.empty(len(local), dtype=np.int64)
        for s in np.unique(chosen).tolist():
            rows = chosen == s
            images[rows] = self._image_indices(s, local[rows])
        tasks = list(zip(chosen.tolist(), images.tolist(), local.tolist(), strict=True))
        return tasks, counts

    # -- rendering ---------------------------------------------------------------------------
    def _submit(self, tasks):
        if self.num_workers == 0:
            return self.renderer.render_many(tasks)
        if self._pool is None:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            self._pool = multiprocessing.get_context(method).Pool(
                self.num_workers, initializer=_init_worker, initargs=(self.renderer,)
            )
        per = -(-len(tasks) // self.num_workers)
        chunks = [tasks[i : i + per] for i in range(0, len(tasks), per)]
        return self._pool.map_async(_worker_render, chunks)

    @staticmethod
    def _collect(pending) -> tuple[np.ndarray, int]:
        if isinstance(pending, tuple):
            return pending
        parts = pending.get()
        return np.concatenate([p[0] for p in parts]), sum(p[1] for p in parts)

    def next_batch(self, n: int) -> torch.Tensor:
        """float32 [n, C, H, W], normalised (see `aimscale.data.augment`)."""
        if n <= 0:
            raise ValueError(f"batch size must be positive, got {n}")
        ready = self._prefetch
        self._prefetch = None
        if ready is not None and ready[0] == self.position and ready[1] == n:
            pending, counts = ready[2], ready[3]
        else:
            tasks, counts = self._plan(n, self.position, self.counts)
            pending = self._submit(tasks)
        images, skipped = self._collect(pending)
        self.position += n * self.world_size
        self.counts = counts
        self._count_skipped(skipped)
        if self.num_workers > 0:  # overlap the next batch with the caller's step
            tasks, after = self._plan(n, self.position, self.counts)
            self._prefetch = (self.position, n, self._submit(tasks), after)
        return torch.from_numpy(images)

    def _count_skipped(self, skipped: int) -> None:
        if skipped and not self._warned:
            log.warning("skipped %d corrupt or truncated image(s) (replaced by others; the count "
                        "is logged as skipped_images)", skipped)
            self._warned = True
        self.skipped += skipped

    # -- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "position": int(self.position),
            "counts": [int(c) for c in self.counts],
            "skipped": int(self.skipped),
            "subset_sizes": [len(s) for s in self.renderer.subsets],
        }

    def load_state_dict(self, state: dict) -> None:
        sizes = [len(s) for s in self.renderer.subsets]
        if list(state.get("subset_sizes", sizes)) != sizes or len(state["counts"]) != len(sizes):
            raise DataError(
                f"the checkpoint's data position is for subsets of sizes "
                f"{state.get('subset_sizes')}, but this config gives {sizes}; resume with the "
                "data config the run started with"
            )
        self._prefetch = None
        self.position = int(state["position"])
        self.counts = np.asarray(state["counts"], dtype=np.int64)
        self.skipped = int(state.get("skipped", 0))

    def close(self) -> None:
        if self._pool is not None:
            pending = self._prefetch[2] if self._prefetch is not None else None
            if pending is not None:
                # terminating workers mid-task can deadlock the pool's own shutdown (its task
                # handler then waits on a queue lock forever); let the prefetch finish first
                pending.wait(_CLOSE_WAIT_S)
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self._prefetch = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            try:
                pool.terminate()
            except Exception:  # interpreter shutdown: the workers are daemons and die anyway
                pass


def _opened(cfg: DataConfig, model: ModelConfig) -> tuple[list[ImageSource], list]:
    """The training splits of cfg's sources and their (subset, held-out) indices."""
    problems = cfg.problems()
    if model.channels not in (1, 3):
        problems.append(f"model.channels={model.channels} is not supported by the data "
                        "pipeline; use 1 (grey) or 3 (RGB)")
    if problems:
        raise DataError("; ".join(problems))
    sources = [open_source(s, "train") for s in cfg.sources]
    weights = [s.weight for s in cfg.sources]
    if cfg.num_images is None:
        wanted = [None] * len(sources)
    elif len(sources) == 1:
        wanted = [cfg.num_images]
    else:
        wanted = share(cfg.num_images, weights)
    splits = [
        split_indices(len(src), cfg.val_images, want, cfg.subset_seed, source_label(sc))
        for src, want, sc in zip(sources, wanted, cfg.sources, strict=True)
    ]
    return sources, splits


def build_pretrain_data(cfg: DataConfig, model: ModelConfig, seed: int, rank: int = 0,
                        world_size: int = 1) -> PretrainStream:
    """The resumable training stream of `cfg` for one rank (see the module docstring)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    sources, splits = _opened(cfg, model)
    renderer = Renderer(
        sources=sources,
        subsets=[train for train, _ in splits],
        seed=int(seed),
        size=model.image_size,
        channels=model.channels,
        scale=(cfg.crop_scale_min, cfg.crop_scale_max),
        hflip=cfg.hflip,
    )
    return PretrainStream(renderer, [s.weight for s in cfg.sources], rank, world_size,
                          cfg.num_workers)
