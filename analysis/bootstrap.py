"""Bootstrap helpers: resample weights over runs, percentile intervals, a small process pool."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


def resample_weights(n: int, n_resamples: int, seed: int | None,
                     groups: Sequence | np.ndarray | None = None) -> np.ndarray:
    """Counts (R, n): how often each row is drawn when resampling runs with replacement.

    With ``groups`` (one label per row) whole groups are drawn, e.g. all checkpoints of a run.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    g = len(labels)
    counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n_resamples).astype(float)
    return counts[:, inverse]


def interval(samples: np.ndarray, level: float = DEFAULT_LEVEL, axis: int = 0) -> np.ndarray:
    """Percentile interval [lo, hi] along ``axis`` ignoring NaN; shape (2, ...)."""
    tail = 100.0 * (1.0 - level) / 2.0
    with np.errstate(invalid="ignore"):
        return np.nanpercentile(samples, [tail, 100.0 - tail], axis=axis)


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs() -> int:
    """Worker processes for bootstrap work: the usable cores, at most 8."""
    return max(1, min(available_cores(), 8))


def parallel_map(fn: Callable[[Any], Any], tasks: list, n_jobs: int | None) -> list:
    """``[fn(t) for t in tasks]``, in worker processes when ``n_jobs`` > 1 and there is >1 task.

    ``fn`` must be a module-level function (it is pickled). Results keep the order of ``tasks``.
    """
    n_jobs = default_jobs() if n_jobs is None else n_jobs
    if n_jobs <= 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=min(n_jobs, len(tasks)),
                             mp_context=mp.get_context(method)) as pool:
        return list(pool.map(fn, tasks))


FORK_WORTH_S = 0.4  # work left (s, one process) that repays starting worker processes


def adaptive_map(fn: Callable[[Any], Any], tasks: list, n_jobs: int | None) -> list:
    """``parallel_map`` that, with ``n_jobs`` None, first runs one task here and starts workers
    for the rest only when they would take longer than ``FORK_WORTH_S`` in this process.

    Most bootstrap chunks of a small fit take milliseconds, less than forking a pool; the joint
    law's take a second. Results never depend on the choice (each task is computed the same
    way), only the wall time does. A given ``n_jobs`` is used as it is."""
    if n_jobs is not None or len(tasks) <= 1:
        return parallel_map(fn, tasks, n_jobs)
    t0 = time.perf_counter()
    first = fn(tasks[0])
    rest = tasks[1:]
    worth = (time.perf_counter() - t0) * len(rest) > FORK_WORTH_S
    return [first] + parallel_map(fn, rest, default_jobs() if worth else 1)


RESAMPLE_CHUNK = 128  # resamples solved together; fixed, so results never depend on the workers


def chunks(n: int, size: int = RESAMPLE_CHUNK) -> list[slice]:
    """Slices of ``size`` covering range(n): the units of bootstrap work.

    A batched solver's rounding depends on what it solves together, so the batches are fixed by
    ``n`` alone and only their distribution over worker processes depends on ``n_jobs``.
    """
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]

