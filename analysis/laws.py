"""Scaling-law formulas, vectorised over parameter samples.

Every ``predict`` takes ``theta`` of shape ``(..., p)`` (one row per parameter sample) and inputs of
shape ``(m,)`` and returns predictions of shape ``(..., m)``.
"""

from __future__ import annotations

import numpy as np

JOINT_PARAMS = ("E", "A", "B", "alpha", "beta")
POWER_PARAMS = ("E", "A", "alpha")


def power(x, E, A, alpha):
    """Saturating power law L = E + A·x^−α."""
    return E + A * np.power(x, -alpha)


def joint(n, d, E, A, B, alpha, beta):
    """Chinchilla joint law L(N, D) = E + A/N^α + B/D^β."""
    return E + A * np.power(n, -alpha) + B * np.power(d, -beta)


def predict_power(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Power law for parameter rows ``theta[..., (E, A, alpha)]``."""
    t = np.asarray(theta, dtype=float)[..., None, :]
    return power(np.asarray(x, dtype=float), t[..., 0], t[..., 1], t[..., 2])


def predict_joint(theta: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Joint law for parameter rows ``theta[..., (E, A, B, alpha, beta)]``."""
    t = np.asarray(theta, dtype=float)[..., None, :]
    n = np.asarray(n, dtype=float)
    d = np.asarray(d, dtype=float)
    return joint(n, d, t[..., 0], t[..., 1], t[..., 2], t[..., 3], t[..., 4])


def compute_optimal(A, B, alpha, beta):
    """Closed-form allocation exponents for C = k·N·D: returns (a, b, G).

    N_opt = G·(C/k)^a and D_opt = G⁻¹·(C/k)^b with a = β/(α+β), b = α/(α+β) and
    G = (αA/(βB))^(1/(α+β)). Works elementwise on arrays of samples.
    """
    A, B, alpha, beta = (np.asarray(v, dtype=float) for v in (A, B, alpha, beta))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = alpha + beta
        a = beta / s
        b = alpha / s
        G = np.exp((np.log(alpha * A) - np.log(beta * B)) / s)
    return a, b, G


def optimal_allocation(flops, A, B, alpha, beta, k: float = 6.0):
    """N_opt(C), D_opt(C) for compute C = k·N·D (k = 6 for dense transformers, forward+backward)."""
    a, b, G = compute_optimal(A, B, alpha, beta)
    c = np.asarray(flops, dtype=float) / k
    a, b, G = (np.asarray(v)[..., None] if np.ndim(v) else v for v in (a, b, G))
    return G * np.power(c, a), np.power(c, b) / G


def bnsl_param_names(breaks: int) -> tuple[str, ...]:
    """(a, b, c0, c1, d1, f1, …) for a broken neural scaling law with ``breaks`` breaks."""
    names = ["a", "b", "c0"]
    for i in range(1, breaks + 1):
        names += [f"c{i}", f"d{i}", f"f{i}"]
    return tuple(names)


def predict_bnsl(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Broken neural scaling law (Caballero et al. 2023):
    y = a + b·x^−c0 · Π_i (1 + (x/d_i)^(1/f_i))^(−c_i·f_i), evaluated in log space for stability."""
    t = np.asarray(theta, dtype=float)[..., None, :]
    lx = np.log(np.asarray(x, dtype=float))
    log_term = np.log(t[..., 1]) - t[..., 2] * lx
    for i in range((t.shape[-1] - 3) // 3):
        c, d, f = t[..., 3 + 3 * i], t[..., 4 + 3 * i], t[..., 5 + 3 * i]
        log_term = log_term - c * f * np.logaddexp(0.0, (lx - np.log(d)) / f)
    return t[..., 0] + np.exp(np.minimum(log_term, 700.0))


def predict(law: str, theta: np.ndarray, *inputs: np.ndarray) -> np.ndarray:
    """Dispatch on the law's name: 'power' (x), 'chinchilla' (n, d) or 'bnsl' (x)."""
    if law == "power":
        return predict_power(theta, *inputs)
    if law == "chinchilla":
        return predict_joint(theta, *inputs)
    if law == "bnsl":
        return predict_bnsl(theta, *inputs)
    raise ValueError(f"unknown law {law!r}; use power, chinchilla or bnsl")
