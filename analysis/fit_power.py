"""Saturating power law in one variable: L = E + A·x^−α (x = params, data, steps or compute)."""

from __future__ import annotations

import numpy as np

from .bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from .data import valid_mask
from .fitting import DEFAULT_DELTA, check_points, fit_sum_of_powers
from .laws import POWER_PARAMS
from .result import Fit


def power_grid(x: np.ndarray, loss: np.ndarray, floor: bool = True) -> np.ndarray:
    """Starts [e, a, α] adapted to the data: floors at fractions of min L (including none),
    exponents from 0.05 to 2.5, each amplitude chosen so the curve meets the mean log loss at the
    geometric-mean x. Plus a coarse data-free grid, in the spirit of Hoffmann et al."""
    lx, ly = np.log(x), np.log(loss)
    c, ybar, lmin = lx.mean(), np.exp(ly.mean()), float(np.min(loss))
    fracs = (0.0, 0.25, 0.5, 0.75, 0.9, 0.97) if floor else (0.0,)
    starts = []
    for frac in fracs:
        E = frac * lmin
        e = np.log(E) if E > 0 else np.log(lmin) - 50.0  # clipped to the floor bound later
        for alpha in (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5):
            starts.append((e, np.log(ybar - E) + alpha * c, alpha))
    for e in (-1.0, 0.0, 1.0):
        for a in (0.0, 5.0, 10.0, 15.0, 20.0, 25.0):
            for alpha in (0.0, 0.5, 1.0, 1.5, 2.0):
                starts.append((e, a, alpha))
    return np.array(starts)


def fit_power(x, loss, *, floor: bool = True, delta: float = DEFAULT_DELTA,
              reduction: str = "sum", bootstrap: int = DEFAULT_RESAMPLES, seed: int | None = 0,
              level: float = DEFAULT_LEVEL, n_jobs: int | None = None, groups=None,
              grid: np.ndarray | None = None, name: str = "x") -> Fit:
    """Fit L = E + A·x^−α (E ≥ 0, may be 0; ``floor=False`` fixes E = 0) to positive finite data.

    Huber_δ on log residuals, multi-start L-BFGS; ``bootstrap`` resamples of the runs (rows, or
    ``groups``) give intervals for every parameter and prediction.
    """
    x = np.asarray(x, dtype=float)
    loss = np.asarray(loss, dtype=float)
    keep, dropped = valid_mask({name: x, "loss": loss})
    x, loss = x[keep], loss[keep]
    groups = None if groups is None else np.asarray(groups)[keep]
    n_params = 3 if floor else 2
    text = ("The saturating power law L = E + A·x^−α" if floor else "The power law L = A·x^−α")
    hint = "" if not floor else ", or fit without a floor (floor=False / --no-floor)"
    check_points(text, n_params, len(loss), {name: len(np.unique(x))}, n_params, hint)
    starts = power_grid(x, loss, floor) if grid is None else np.atleast_2d(grid)
    return fit_sum_of_powers("power", (name,), POWER_PARAMS, [x], loss, starts, delta=delta,
                             reduction=reduction, floor=floor, bootstrap=bootstrap, seed=seed,
                             level=level, n_jobs=n_jobs, groups=groups, dropped=dropped)
