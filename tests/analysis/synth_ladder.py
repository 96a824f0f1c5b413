"""A synthetic model ladder (OLMo-style): runs × checkpoints with task loss from a joint law and
accuracy from a sigmoid of the task loss, both with noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

LAW = {"E": 0.9, "A": 100.0, "B": 200.0, "alpha": 0.3, "beta": 0.3}
SIG = {"a": 0.75, "k": -5.0, "l0": 1.3, "b": 0.25}  # 4-way multiple choice: chance 0.25
SIZES = (2e7, 6e7, 1.5e8, 4e8, 1e9)
MULTIPLES = (1, 2, 5, 10)  # × 20 tokens per parameter
TARGETS = ((7e9, 1.4e11), (3e9, 6e10))


def task_loss(n, d):
    return LAW["E"] + LAW["A"] * np.power(n, -LAW["alpha"]) + LAW["B"] * np.power(d, -LAW["beta"])


def accuracy(loss):
    return SIG["a"] / (1 + np.exp(-SIG["k"] * (np.asarray(loss) - SIG["l0"]))) + SIG["b"]


def ladder_table(checkpoints: int = 40, loss_noise: float = 0.005, acc_noise: float = 0.01,
                 seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for n in SIZES:
        for m in MULTIPLES:
            d_final = 20 * m * n
            run = f"n{n:.0e}-x{m}"
            for t in range(1, checkpoints + 1):
                d = d_final * t / checkpoints
                loss = task_loss(n, d) * np.exp(loss_noise * rng.standard_normal())
                acc = accuracy(loss) + acc_noise * rng.standard_normal()
                rows.append({"run": run, "params": n, "tokens": d, "step": t * 100,
                             "task_loss": loss, "acc": acc})
    return pd.DataFrame(rows)
