"""Joint law L(N, D) = E + A/N^α + B/D^β fitted as in Hoffmann et al. (2022), Approach 3.

Huber_δ (δ = 1e-3) on log-loss residuals, log-sum-exp parameterisation, L-BFGS-B from a grid of
starts (by default their 4,500 points), bootstrap over runs for intervals.
"""

from __future__ import annotations

import itertools

import numpy as np

from .bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from .data import valid_mask
from .fitting import DEFAULT_DELTA, check_points, fit_sum_of_powers
from .laws import JOINT_PARAMS
from .result import Fit

HOFFMANN_GRID = {
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
}


def joint_grid(spec: dict | None = None) -> np.ndarray:
    """Cartesian grid of starts as rows [e, a, α, b, β]; ``spec`` overrides any axis of the
    Hoffmann grid (keys alpha, beta, e, a, b; e, a, b are logs of E, A, B)."""
    g = dict(HOFFMANN_GRID)
    if spec:
        unknown = set(spec) - set(g)
        if unknown:
            raise ValueError(f"unknown grid axes {sorted(unknown)}; use {sorted(g)}")
        g.update({k: tuple(v) for k, v in spec.items()})
    rows = itertools.product(g["e"], g["a"], g["alpha"], g["b"], g["beta"])
    return np.array(list(rows), dtype=float)


def fit_joint(n, d, loss, *, delta: float = DEFAULT_DELTA, reduction: str = "sum",
              grid: dict | np.ndarray | None = None, bootstrap: int = DEFAULT_RESAMPLES,
              seed: int | None = 0, level: float = DEFAULT_LEVEL, n_jobs: int | None = None,
              groups=None, names: tuple[str, str] = ("N", "D"), floor: bool = True) -> Fit:
    """Fit L(N, D) = E + A/N^α + B/D^β to positive finite data.

    ``grid``: None (Hoffmann's 4,500 starts), a dict overriding grid axes, or an array of rows
    [e, a, α, b, β]. ``reduction`` only changes the reported objective; the optimum is the same.
    """
    n, d, loss = (np.asarray(v, dtype=float) for v in (n, d, loss))
    keep, dropped = valid_mask({names[0]: n, names[1]: d, "loss": loss})
    n, d, loss = n[keep], d[keep], loss[keep]
    groups = None if groups is None else np.asarray(groups)[keep]
    check_points("The joint law L = E + A/N^α + B/D^β", 5 if floor else 4, len(loss),
                 {names[0]: len(np.unique(n)), names[1]: len(np.unique(d))}, 3)
    starts = grid if isinstance(grid, np.ndarray) else joint_grid(grid)
    return fit_sum_of_powers("chinchilla", names, JOINT_PARAMS, [n, d], loss, starts, delta=delta,
                             reduction=reduction, floor=floor, bootstrap=bootstrap, seed=seed,
                             level=level, n_jobs=n_jobs, groups=groups, dropped=dropped)


# Starts for refits near a known optimum: that optimum first, then a coarse grid (32 points).
NEAR_GRID = {"alpha": (0.3, 0.7), "beta": (0.3, 0.7), "e": (-0.5, 0.5), "a": (5.0, 15.0),
             "b": (5.0, 15.0)}


def starts_near(fit: Fit) -> np.ndarray:
    """Raw starts [e, a, α, b, β] for refitting the joint law near ``fit``'s optimum."""
    p = fit.params
    e = np.log(max(p["E"], 1e-9))
    best = [e, np.log(p["A"]), p["alpha"], np.log(p["B"]), p["beta"]]
    return np.vstack([np.array(best)[None, :], joint_grid(NEAR_GRID)])
