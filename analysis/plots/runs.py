"""Figures of the runs themselves: training curves, layer-wise probes, loss against downstream
accuracy, ablation bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from ..correlate import Correlation, sigmoid
from .base import CMAP, ci_text, colorbar, fmt, log_log, new_figure, no_data, size_colors
from .sources import scatter_by_source, source_legend, source_markers


def plot_curves(curves: pd.DataFrame, sizes: dict, *, x: str = "images_seen", y: str = "loss",
                xlabel: str = "images seen", ylabel: str = "training loss",
                size_label: str = "parameters", run_id: str = "run_id",
                title: str = "Training curves") -> Figure:
    """Loss curves on log-log axes, one line per run, coloured by model size (``sizes``: run →
    size)."""
    fig, (ax,) = new_figure()
    color_of, norm = size_colors(np.array(list(sizes.values()), float))
    drawn = 0
    for rid, g in curves.groupby(run_id, sort=False):
        g = g[[x, y]].apply(pd.to_numeric, errors="coerce").dropna()
        g = g[(g[x] > 0) & (g[y] > 0)].sort_values(x)
        if g.empty:
            continue
        ax.plot(g[x], g[y], color=color_of(sizes.get(rid, np.nan)), lw=1.1, alpha=0.9)
        drawn += 1
    if drawn == 0:
        no_data(ax, f"no finite '{y}' against '{x}' in the curves table")
        return fig
    if norm is not None:
        colorbar(fig, ax, norm, size_label)
    log_log(ax, xlabel, ylabel, title)
    return fig


def plot_layerwise(tidy: pd.DataFrame, sizes: dict, depths: dict | None = None, *,
                   run_id: str = "run_id", size_label: str = "trunk parameters") -> Figure:
    """Top-1 of probes on groups of blocks against the last block used, one line per run and
    probe kind, coloured by model size; x is relative depth when depths are known."""
    fig, (ax,) = new_figure()
    color_of, norm = size_colors(np.array(list(sizes.values()), float))
    relative = bool(depths) and all(r in depths for r in tidy[run_id].unique())
    styles = ["-", "--", ":", "-."]
    kinds = list(dict.fromkeys(tidy["kind"]))
    for (rid, kind), g in tidy.groupby([run_id, "kind"], sort=False):
        g = g.sort_values("end")
        pos = (g["end"] + 1) / depths[rid] if relative else g["end"] + 1
        ax.plot(pos, g["top1"], marker="o", ms=3.5, lw=1.2, color=color_of(sizes.get(rid)),
                ls=styles[kinds.index(kind) % len(styles)])
    for i, k in enumerate(kinds):
        ax.plot([], [], color="0.3", ls=styles[i % len(styles)], label=f"{k} probe")
    if norm is not None:
        colorbar(fig, ax, norm, size_label)
    ax.set_xlabel("last block used / depth" if relative else "last block used (1-based)")
    ax.set_ylabel("probe top-1 accuracy")
    ax.set_title("Layer-wise probe accuracy")
    ax.legend(frameon=False)
    return fig


def plot_correlation(x, y, corr: Correlation, *, xlabel: str = "loss",
                     ylabel: str = "accuracy", color=None, color_label: str = "",
                     source=None) -> Figure:
    """Accuracy against loss with the linear and sigmoid fits and the correlations; marker
    shape: where each point comes from (``source``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    fig, (ax,) = new_figure()
    cmap = colormaps[CMAP]
    markers = source_markers([] if source is None else source)
    if color is not None:
        c = np.asarray(color, float)
        norm = (LogNorm if np.all(c > 0) and c.max() / c.min() > 3 else Normalize)(c.min(),
                                                                                 c.max())
        scatter_by_source(ax, x, y, source, markers, c=c, cmap=cmap, norm=norm, s=32,
                          edgecolor="white", zorder=3)
        colorbar(fig, ax, norm, color_label)
    else:
        scatter_by_source(ax, x, y, source, markers, s=32, color=cmap(0.35), edgecolor="white",
                          zorder=3)
    xs = np.linspace(x.min(), x.max(), 100)
    lin = corr.linear
    ax.plot(xs, lin["slope"] * xs + lin["intercept"], color="0.35", lw=1.2, ls="--",
            label=f"linear (LOO MAE {fmt(lin['loo_mae'])})")
    if corr.sigmoid is not None:
        s = corr.sigmoid
        ax.plot(xs, sigmoid(xs, s["a"], s["k"], s["l0"], s["b"]), color=cmap(0.7), lw=1.8,
                label=f"sigmoid (LOO MAE {fmt(s['loo_mae'])})")
    txt = (f"Pearson r = {fmt(corr.pearson)}{ci_text(corr.ci.get('pearson'))}\n"
           f"Spearman ρ = {fmt(corr.spearman)}{ci_text(corr.ci.get('spearman'))}\n"
           f"n = {corr.n} runs")
    ax.text(0.98, 0.98, txt, transform=ax.transAxes, ha="right", va="top", fontsize=8.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} against {xlabel}")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + source_legend(ax, markers), loc="lower left", frameon=False)
    return fig


def plot_ablation(table: pd.DataFrame, *, metric_label: str = "metric",
                  title: str = "Ablations") -> Figure:
    """Bars of mean ± std per variant (baseline hatched), with the difference to the baseline
    and its interval written on each bar."""
    fig, (ax,) = new_figure(max(5.0, 1.1 * len(table) + 2), 4.2)
    cmap = colormaps[CMAP]
    xs = np.arange(len(table))
    std = table["std"].fillna(0).to_numpy()
    colors = [cmap(0.25) if b else cmap(0.65) for b in table["baseline"]]
    bars = ax.bar(xs, table["mean"], yerr=std, color=colors, capsize=4, edgecolor="black",
                  linewidth=0.5)
    for bar, b in zip(bars, table["baseline"], strict=True):
        if b:
            bar.set_hatch("//")
    lo = float((table["mean"] - std).min())
    hi = float((table["mean"] + std).max())
    pad = 0.15 * (hi - lo if hi > lo else abs(hi) or 1.0)
    ax.set_ylim(lo - pad, hi + 2 * pad)
    for i, row in table.reset_index(drop=True).iterrows():
        txt = "baseline" if row["baseline"] else f"Δ {fmt(row['diff'])}"
        if not row["baseline"] and np.isfinite(row["diff_lo"]):
            txt += f"\n[{fmt(row['diff_lo'])}, {fmt(row['diff_hi'])}]"
        ax.text(i, row["mean"] + std[i] + 0.2 * pad, txt, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, table["variant"], rotation=20 if len(table) > 4 else 0)
    ax.set_ylabel(f"{metric_label} (mean ± std over seeds)")
    ax.set_title(title)
    return fig
