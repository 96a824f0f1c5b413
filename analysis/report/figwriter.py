"""Writing the report's figures beside its fits: each PNG + SVG is rendered in a forked child
while the parent goes on with the next section.

Rendering (constrained layout, PNG at 150 dpi, SVG) costs about a quarter of the report's CPU
time and needs nothing from the sections that follow, so on a machine with a second core it
overlaps with the fits. The files are the ones ``plots.save`` writes in-process: the child calls
it on its copy of the figure. Forking is used only where it is safe and asked for: on a platform
with ``os.fork``, with more than one job allowed, and while this process runs no other thread (a
child forked from a threaded process can deadlock on a lock another thread held). Otherwise, or
when a child fails or takes longer than ``CHILD_TIMEOUT`` s, the figure is saved in-process, so an
error in a figure surfaces here with its traceback.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from .. import plots

MAX_CHILDREN = 2  # figures rendering at once; more only compete for the same cores
CHILD_TIMEOUT = 120.0


def _can_fork(n_jobs: int | None) -> bool:
    return (hasattr(os, "fork") and (n_jobs is None or n_jobs > 1)
            and threading.active_count() == 1)


class FigureWriter:
    """``submit(fig, stem)`` returns the paths ``plots.save`` writes (PNG first); ``finish()``
    waits until every file is on disk."""

    def __init__(self, n_jobs: int | None = None):
        self.n_jobs = n_jobs
        self.pending: list[tuple[int, object, Path, float]] = []  # pid, figure, stem, start

    def submit(self, fig, stem: str | Path) -> list[Path]:
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
        if not _can_fork(self.n_jobs):
            return plots.save(fig, stem)
        while len(self.pending) >= MAX_CHILDREN:
            self._reap(self.pending[0])
        pid = os.fork()
        if pid == 0:  # child: render, then leave without running the parent's exit handlers
            code = 1
            try:
                plots.save(fig, stem)
                code = 0
            finally:
                os._exit(code)
        self.pending.append((pid, fig, stem, time.monotonic()))
        return paths

    def _reap(self, job) -> None:
        pid, fig, stem, start = job
        self.pending.remove(job)
        status = None
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif time.monotonic() - start > CHILD_TIMEOUT:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = -1
            else:
                time.sleep(0.005)
        if status != 0 or not all(p.exists() for p in (stem.with_suffix(".png"),
                                                        stem.with_suffix(".svg"))):
            plots.save(fig, stem)  # again in-process: its error, if any, is raised here

    def finish(self, on_error=None) -> None:
        """Wait for every child; ``on_error(stem, err)`` (else raise) for a figure that failed
        again in-process."""
        while self.pending:
            job = self.pending[0]
            try:
                self._reap(job)
            except Exception as err:
                if on_error is None:
                    raise
                on_error(job[2], err)
