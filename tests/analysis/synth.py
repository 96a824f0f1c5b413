"""Synthetic data from known laws for the analysis tests."""

from __future__ import annotations

import numpy as np

CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
SMALL_GRID = {"alpha": (0.5, 1.0), "beta": (0.5, 1.0), "e": (0.0, 1.0), "a": (5.0, 15.0),
              "b": (5.0, 15.0)}


def chinchilla_grid(n_n: int = 16, n_d: int = 15):
    """240 (N, D) points spanning three decades each."""
    n, d = np.meshgrid(np.logspace(7, 10, n_n), np.logspace(9, 12, n_d))
    return n.ravel(), d.ravel()


def joint_loss(n, d, p=None):
    p = CHINCHILLA if p is None else p
    return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]


def noisy(loss, sigma, seed):
    """Multiplicative log-normal noise of relative size ``sigma``."""
    return loss * np.exp(sigma * np.random.default_rng(seed).standard_normal(np.shape(loss)))
