"""Benchmark: the bootstrap of "Loss against model size" on a sweep shaped like the collected one
that took 373 s in that section: 6 model sizes (widths 16/32/48/96 at depth 2, width 48 at depths 1
and 4) at each of 4 data sizes, where depth moves the loss off the trend in N (depth 1 beats the
smaller width 32, depth 4 is worse than depth 2), so many resamples have their optimum at E = 0.

Prints, per data size and in total: wall seconds of `fit_power` with the report's bootstrap (one
process), the scipy fallbacks of the resample refits, objective evaluations (calls) and the
refits that did not converge.

    python bench/bench_power_bootstrap.py [--bootstrap 400]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from analysis import fit_power, huber_lse  # noqa: E402

N = np.array([7136.0, 26560.0, 30432.0, 58272.0, 113952.0, 227136.0])
SHAPE = np.array([1.0, 1.0, 0.985, 1.0, 1.012, 1.0])  # depth 1 / depth 4 off the width trend
IMAGES = (9600, 19200, 38400, 76800)


def losses(images: int) -> np.ndarray:
    """A joint law in N and D, bent by depth, with 0.3% scatter (seeded)."""
    rng = np.random.default_rng(images)
    law = 0.36 + 1.5 * N**-0.35 + 40.0 * images**-0.5
    return law * SHAPE * np.exp(0.003 * rng.standard_normal(len(N)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=400)
    args = ap.parse_args()
    counts = {"polish": 0, "calls": 0}
    polish, fun_grad = huber_lse._polish, huber_lse.LseProblem.fun_grad

    def counting_polish(*a, **k):
        counts["polish"] += 1
        return polish(*a, **k)

    def counting_fun_grad(self, *a, **k):
        counts["calls"] += 1
        return fun_grad(self, *a, **k)

    huber_lse._polish = counting_polish
    huber_lse.LseProblem.fun_grad = counting_fun_grad
    total = 0.0
    for images in IMAGES:
        counts.update(polish=0, calls=0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_power(N, losses(images), bootstrap=args.bootstrap, seed=0, n_jobs=1)
        dt = time.perf_counter() - t0
        total += dt
        failed = sum(int(w.split(" of ")[0]) for w in fit.warnings if "did not converge" in w)
        print(f"D = {images:6d}: {dt:6.2f} s  scipy fallbacks {counts['polish']:4d}  "
              f"objective calls {counts['calls']:7d}  refits not converged {failed}")
    print(f"total: {total:.2f} s for {len(IMAGES)} fits of {args.bootstrap} resamples")


if __name__ == "__main__":
    main()
