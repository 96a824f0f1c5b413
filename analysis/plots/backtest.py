"""The backtest figure: runs fitted on, held-out runs, and their predictions with intervals."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .base import CMAP, EXTRAP_COLOR, fmt, log_minor_labels, new_figure
from .sources import scatter_by_source, source_legend, source_markers


def plot_backtest(bt, train_split: np.ndarray, train_loss: np.ndarray, *,
                  split_label: str = "holdout column", loss_label: str = "loss",
                  train_source=None, test_source=None) -> Figure:
    """Loss against the holdout variable: training runs, held-out runs, and their predictions
    with prediction intervals, with the threshold marked. Marker shape of the runs: where each
    comes from (``train_source``, ``test_source`` in the order of ``bt.predictions``)."""
    fig, (ax,) = new_figure()
    cmap = colormaps[CMAP]
    xs = np.array([p["split"] for p in bt.predictions])
    obs = np.array([p["observed"] for p in bt.predictions])
    pred = np.array([p["predicted"] for p in bt.predictions])
    both = [v for v in (train_source, test_source) if v is not None]
    markers = source_markers(np.concatenate([np.asarray(v, dtype=str) for v in both])
                             if both else [])
    scatter_by_source(ax, train_split, train_loss, train_source, markers, s=24,
                      color=cmap(0.3), label="fitted on", zorder=3)
    if bt.fit.law != "chinchilla" and len(train_split):  # 1-D law in the split variable: draw it
        grid = np.geomspace(np.min(train_split), max(xs.max(), bt.threshold), 100)
        ax.plot(grid, bt.fit.predict(grid), color=cmap(0.3), lw=1.2, ls="--",
                label="fit, extrapolated")
    ax.axvspan(bt.threshold, max(xs.max(), bt.threshold) * 1.5, color=EXTRAP_COLOR, zorder=0,
               lw=0)
    jitter = np.exp(np.linspace(-0.03, 0.03, len(xs))) if len(xs) > 1 else np.ones(1)
    if bt.predictions and bt.predictions[0]["lo"] is not None:
        lo = np.array([p["lo"] for p in bt.predictions])
        hi = np.array([p["hi"] for p in bt.predictions])
        ax.errorbar(xs * jitter, pred, yerr=[pred - lo, hi - pred], fmt="D", ms=4,
                    color=cmap(0.75), capsize=3, zorder=4,
                    label=f"predicted, {int(100 * bt.fit.level)}% prediction interval")
    else:
        ax.scatter(xs, pred, marker="D", s=20, color=cmap(0.75), label="predicted", zorder=4)
    scatter_by_source(ax, xs, obs, test_source, markers, s=40, facecolor="none",
                      edgecolor="crimson", linewidth=1.4, zorder=5, label="held-out, observed")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(split_label)
    ax.set_ylabel(loss_label)
    cov = "" if bt.coverage is None else f", intervals held {fmt(100 * bt.coverage)}%"
    ax.set_title(f"Backtest: fit on {bt.n_train}, predict {bt.n_test} (grey)\n"
                 f"MAPE {fmt(bt.mape)}%{cov}")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + source_legend(ax, markers), loc="lower left", frameon=False)
    log_minor_labels(ax)
    return fig
