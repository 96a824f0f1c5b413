"""Scaling figures: loss against one variable with fitted curves, the joint law, IsoFLOP profiles
and the compute frontier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..result import Fit
from .base import (
    CMAP,
    EXTRAP_COLOR,
    band,
    ci_text,
    colorbar,
    fmt,
    legend_beside,
    log_log,
    log_minor_labels,
    new_figure,
    no_data,
    size_colors,
)
from .sources import scatter_by_source, source_legend, source_markers


@dataclass
class Series:
    """Points of one group and, optionally, the law fitted to them (or why there is none)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    fit: Fit | None = None
    note: str | None = None  # shown in the report's table, not on the axes
    source: np.ndarray | None = None  # per point: final run, cooldown branch, checkpoint…


def plot_scaling(series: list[Series], xlabel: str, ylabel: str, title: str, *,
                 extrapolate_to: float | None = None, empty_note: str = "",
                 var: str = "x") -> Figure:
    """Loss against one variable on log-log axes: points (shape: where they come from), fitted
    curve with its 95% band, and the extrapolated range shaded and dashed. The legend, beside the
    axes, names the groups; fitted values and notes belong in the caption or table."""
    fig, (ax,) = new_figure(7.6, 4.4)
    if not series or all(len(s.x) == 0 for s in series):
        no_data(ax, empty_note or "no data")
        ax.set_title(title)
        return fig
    colors = colormaps[CMAP](np.linspace(0.1, 0.85, max(len(series), 1)))
    x_max = max(float(np.max(s.x)) for s in series if len(s.x))
    x_min = min(float(np.min(s.x)) for s in series if len(s.x))
    right = max(extrapolate_to or x_max, x_max)
    if right > x_max * 1.0001:
        ax.axvspan(x_max, right, color=EXTRAP_COLOR, zorder=0, lw=0)
        ax.text(x_max * (right / x_max) ** 0.5, 0.97, "extrapolation", ha="center", va="top",
                transform=ax.get_xaxis_transform(), fontsize=8.5, color="0.35")
    markers = source_markers(np.concatenate([s.source for s in series if s.source is not None])
                             if any(s.source is not None for s in series) else [])
    for s, color in zip(series, colors, strict=True):
        drawn = s.fit is not None and not s.fit.flat
        scatter_by_source(ax, s.x, s.y, s.source, markers, s=26, color=color,
                           edgecolor="white", linewidth=0.5, zorder=3,
                           label=None if drawn else s.label)
        if drawn:
            xs_in = np.geomspace(x_min, x_max, 120)
            pred = band(ax, s.fit, xs_in, color)
            ax.plot(xs_in, pred, color=color, lw=1.8, label=s.label)
            if right > x_max * 1.0001:
                xs_out = np.geomspace(x_max, right, 60)
                pred_out = band(ax, s.fit, xs_out, color)
                ax.plot(xs_out, pred_out, color=color, lw=1.5, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend_beside(ax, source_legend(ax, markers))
    log_minor_labels(ax)
    return fig


def plot_joint(n, d, loss, fit: Fit, *, n_label: str = "parameters N",
               d_label: str = "data D", loss_label: str = "loss", source=None) -> Figure:
    """Joint law: loss against N, one colour per data size with its fitted curve; and fitted
    against observed."""
    n, d, loss = (np.asarray(v, float) for v in (n, d, loss))
    fig, (ax, ax2) = new_figure(11, 4.4, ncols=2)
    levels = np.unique(d)
    markers = source_markers([] if source is None else source)
    norm = LogNorm(levels.min(), levels.max()) if levels.max() > levels.min() else None
    cmap = colormaps[CMAP]
    for lev in levels:
        m = d == lev
        color = cmap(norm(lev) if norm else 0.5)
        scatter_by_source(ax, n[m], loss[m], None if source is None else np.asarray(source)[m],
                           markers, s=22, color=color, edgecolor="white", linewidth=0.4,
                           zorder=3)
        if len(levels) <= 12:
            xs = np.geomspace(n.min(), n.max(), 80)
            pred = band(ax, fit, xs, color, (np.full_like(xs, lev),))
            ax.plot(xs, pred, color=color, lw=1.2)
    if norm is not None:
        colorbar(fig, ax, norm, d_label)
    log_log(ax, n_label, loss_label, "Joint law L(N, D)")
    if len(markers) > 1:
        ax.legend(handles=source_legend(ax, markers), loc="upper right", frameon=False)
    pred = fit.predict(n, d)
    ax2.scatter(loss, pred, s=18, color=cmap(0.35))
    lim = [min(loss.min(), pred.min()), max(loss.max(), pred.max())]
    ax2.plot(lim, lim, color="0.4", lw=1, ls="--", label="y = x")
    ax2.set_xlabel(f"observed {loss_label}")
    ax2.set_ylabel(f"fitted {loss_label}")
    ax2.set_title(f"Fit quality: RMSE {fmt(fit.gof.rmse)}, R² (log) {fmt(fit.gof.r2_log, 4)}")
    ax2.legend(frameon=False)
    return fig


def plot_isoflop(flops, n, loss, result, *, n_label: str = "parameters N",
                 loss_label: str = "loss") -> Figure:
    """IsoFLOP curves: loss against N per budget with parabolas and minima; and N* against C
    with the fitted frontier."""
    from ..isoflop import group_budgets

    flops, n, loss = (np.asarray(v, float) for v in (flops, n, loss))
    fig, (ax, ax2) = new_figure(11, 4.4, ncols=2)
    labels = group_budgets(flops)
    cmap = colormaps[CMAP]
    budgets = result.budgets
    norm = LogNorm(min(b.flops for b in budgets), max(b.flops for b in budgets) * 1.0001)
    for lab, b in zip(np.unique(labels), budgets, strict=False):
        m = labels == lab
        color = cmap(norm(b.flops))
        ax.scatter(n[m], loss[m], s=20, color=color, zorder=3, alpha=1.0 if b.used else 0.4)
        if b.coef is not None:
            lo, hi = b.fit_range or (n[m].min(), n[m].max())  # the window it was fitted on
            u = np.linspace(np.log10(lo), np.log10(hi), 60)
            c2, c1, c0 = b.coef
            ax.plot(10**u, c2 * u**2 + c1 * u + c0, color=color, lw=1.2,
                    ls="-" if b.used else ":")
        if b.used:
            ax.scatter([b.n_opt], [b.loss_opt], marker="*", s=110, color=color,
                       edgecolor="black", linewidth=0.6, zorder=4)
    colorbar(fig, ax, norm, "compute budget C (FLOPs)")
    ax.set_xscale("log")
    ax.set_xlabel(n_label)
    ax.set_ylabel(loss_label)
    ax.set_title("IsoFLOP profiles (★ minimum; dotted: budget dropped)")
    used = [b for b in budgets if b.used]
    cs = np.array([b.flops for b in used])
    ax2.scatter(cs, [b.n_opt for b in used], color=cmap(0.3), zorder=3, label="N* per budget")
    grid = np.geomspace(cs.min(), cs.max(), 50)
    ax2.plot(grid, result.n_opt(grid), color=cmap(0.3), lw=1.5,
             label=f"N* ∝ C$^{{{fmt(result.a)}}}${ci_text(result.a_ci)}")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("compute budget C (FLOPs)")
    ax2.set_ylabel(f"optimal {n_label}")
    ax2.set_title("Compute-optimal model size")
    ax2.legend(frameon=False)
    log_minor_labels(ax2)
    return fig


def plot_frontier(curves: pd.DataFrame, sizes: dict, envelope: pd.DataFrame, fit: Fit | None, *,
                  x: str = "flops", y: str = "loss", run_id: str = "run_id",
                  ylabel: str = "loss", size_label: str = "parameters",
                  extrapolate_to: float | None = None) -> Figure:
    """Loss against compute for every run, the lower envelope (compute frontier) and the power
    law fitted to it, extrapolated dashed."""
    fig, (ax,) = new_figure()
    color_of, norm = size_colors(np.array(list(sizes.values()), float))
    for rid, g in curves.groupby(run_id, sort=False):
        g = g[[x, y]].apply(pd.to_numeric, errors="coerce").dropna()
        g = g[(g[x] > 0) & (g[y] > 0)].sort_values(x)
        ax.plot(g[x], g[y], color=color_of(sizes.get(rid, np.nan)), lw=0.9, alpha=0.55)
    if norm is not None:
        colorbar(fig, ax, norm, size_label)
    ax.scatter(envelope[x], envelope[y], s=16, color="black", zorder=3, label="frontier points")
    if fit is not None and not fit.flat:
        lo_x, hi_x = float(envelope[x].min()), float(envelope[x].max())
        right = max(extrapolate_to or hi_x, hi_x)
        xs = np.geomspace(lo_x, hi_x, 100)
        pred = band(ax, fit, xs, "crimson")
        ax.plot(xs, pred, color="crimson", lw=1.8, label="power-law fit")
        if right > hi_x * 1.0001:
            ax.axvspan(hi_x, right, color=EXTRAP_COLOR, zorder=0, lw=0)
            xs2 = np.geomspace(hi_x, right, 50)
            ax.plot(xs2, band(ax, fit, xs2, "crimson"), color="crimson", lw=1.5, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel(ylabel)
    ax.set_title("Compute frontier: lowest loss reached at each compute")
    ax.legend(loc="upper right", frameon=False)  # inside: the colour bar is beside
    log_minor_labels(ax)
    return fig
