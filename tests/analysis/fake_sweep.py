"""A synthetic collected sweep in the shape `aimscale collect` writes, from a known joint law."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TRUE = {"E": 0.20, "A": 60.0, "B": 90.0, "alpha": 0.45, "beta": 0.55}
PATCHES = 49  # 28 px images, patch 4


def law(n, d):
    return TRUE["E"] + TRUE["A"] * n ** -TRUE["alpha"] + TRUE["B"] * d ** -TRUE["beta"]


def trunk(width, depth):
    return depth * (12 * width**2 + 4 * width) + (16 * width + width) + 4 * width


def make_runs(widths=(64, 96, 128), depths=(2, 4), images=(20_000, 60_000), seeds=(0,),
              noise=0.01, seed=0, variants=None, layerwise=True, n_steps=60):
    """(runs, curves) tables with the columns of `aimscale collect`."""
    rng = np.random.default_rng(seed)
    runs, curves = [], []
    grid = [(w, d, im, s, v) for w in widths for d in depths for im in images for s in seeds
            for v in (variants or [None])]
    for w, dep, im, s, v in grid:
        n = trunk(w, dep)
        shift = {"baseline": 0.0, "no_prefix": 0.02, "raster": 0.0, "random": 0.03}.get(v, 0.0)
        loss = law(n, im) * np.exp(noise * rng.standard_normal()) + shift
        acc = 0.8 / (1 + np.exp(10 * (loss - 0.75))) + 0.1 + 0.005 * rng.standard_normal()
        rid = f"w{w}-d{dep}-i{im}-s{s}" + (f"-{v}" if v else "")
        fpi = 6 * n * PATCHES
        row = {"run_id": rid, "status": "done", "model.width": w, "model.depth": dep,
               "model.heads": max(1, w // 32), "data.num_images": im, "train.steps": n_steps,
               "train.seed": s, "trunk_params": n, "head_params": 1000,
               "flops_per_image": fpi, "images_seen": im, "patches_seen": im * PATCHES,
               "total_flops": fpi * im, "final_loss": loss * 0.98, "final_val_loss": loss,
               "best_val_loss": loss, "probe.attentive_last.top1": acc,
               "probe.attentive_last.top5": min(1.0, acc + 0.1),
               "probe.linear_last.top1": acc - 0.05, "probe.linear_last.top5": acc + 0.05}
        if v is not None:
            row["variant"] = v
        if layerwise:
            for start in range(0, dep, 1):
                mid = (start + 1) / dep
                row[f"probe.linear_blocks{start}-{start}.top1"] = acc - 0.1 * (mid - 0.6) ** 2
        runs.append(row)
        steps = np.arange(1, n_steps + 1)
        seen = steps * im / n_steps
        curve = law(n, seen) * np.exp(0.01 * rng.standard_normal(n_steps)) * (1 + 0.3 / steps)
        val = np.where(steps % 10 == 0, law(n, seen), np.nan)
        for st, se, lo, va in zip(steps, seen, curve, val, strict=True):
            curves.append({"run_id": rid, "step": st, "images_seen": se,
                           "patches_seen": se * PATCHES, "flops": fpi * se, "lr": 1e-3,
                           "loss": lo, "val_loss": va})
    return pd.DataFrame(runs), pd.DataFrame(curves)


def write_sweep(root: Path, **kw) -> Path:
    """SWEEP_DIR with collect/runs.csv and collect/curves.csv; returns SWEEP_DIR."""
    runs, curves = make_runs(**kw)
    col = Path(root) / "collect"
    col.mkdir(parents=True, exist_ok=True)
    runs.to_csv(col / "runs.csv", index=False)
    curves.to_csv(col / "curves.csv", index=False)
    return Path(root)
