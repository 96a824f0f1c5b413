"""Figures for scaling studies (matplotlib, Agg, no pyplot state): each function returns a Figure,
``save`` writes it as PNG and SVG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless; harmless when a backend is already chosen for files

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .correlate import Correlation, sigmoid  # noqa: E402
from .plot_sources import scatter_by_source, source_legend, source_markers  # noqa: E402
from .result import Fit  # noqa: E402

CMAP = "viridis"
EXTRAP_COLOR = "0.92"
RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
      "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
      "grid.alpha": 0.3, "grid.linewidth": 0.6, "svg.fonttype": "none"}


def fmt(v: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits: 0.0123, 4.56, 1500, 2.5e5, 1.2e-5."""
    if v is None or not np.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        text = f"{v:.{digits}g}"
        return f"{v:.0f}" if "e" in text else text
    mant, exp = f"{v:.{max(digits - 1, 0)}e}".split("e")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    return f"{mant}e{int(exp)}"


def ci_text(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{fmt(ci[0])}, {fmt(ci[1])}]"


def new_figure(width: float = 6.4, height: float = 4.4, ncols: int = 1) -> tuple[Figure, list]:
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def save(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem``.png (150 dpi) and ``stem``.svg; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with matplotlib.rc_context(RC):
        for ext, kw in ((".png", {"dpi": 150}), (".svg", {})):
            path = stem.with_suffix(ext)
            fig.savefig(path, **kw)
            out.append(path)
            # The layout (in figure fractions) is done; the SVG reuses it instead of paying for
            # constrained layout a second time.
            fig.set_layout_engine("none")
    return out


def no_data(ax, message: str) -> None:
    """Say plainly on the axes why nothing is drawn."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True,
            fontsize=10, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


@dataclass
class Series:
    """Points of one group and, optionally, the law fitted to them (or why there is none)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    fit: Fit | None = None
    note: str | None = None  # shown in the report's table, not on the axes
    source: np.ndarray | None = None  # per point: final run, cooldown branch, checkpoint…


def _band(ax, fit: Fit, xs: np.ndarray, color, extra: tuple = ()) -> None:
    pred, lo, hi = fit.predict_interval(xs, *extra, kind="ci")
    if lo is not None:
        ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)
    return pred


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
            pred = _band(ax, s.fit, xs_in, color)
            ax.plot(xs_in, pred, color=color, lw=1.8, label=s.label)
            if right > x_max * 1.0001:
                xs_out = np.geomspace(x_max, right, 60)
                pred_out = _band(ax, s.fit, xs_out, color)
                ax.plot(xs_out, pred_out, color=color, lw=1.5, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_beside(ax, source_legend(ax, markers))
    _log_minor_labels(ax)
    return fig


def _legend_beside(ax, extra: list | None = None) -> None:
    """Legend to the right of the axes, one short line per entry, so it covers no data and is
    never taller than the plot (constrained layout makes room for it)."""
    handles, labels = ax.get_legend_handles_labels()
    handles, labels = handles + list(extra or []), labels + [h.get_label() for h in extra or []]
    if handles:
        ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False,
                  ncol=1 if len(handles) <= 12 else 2, fontsize=8)


def _log_log(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Log-log axes with labels, title and readable minor tick labels."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _log_minor_labels(ax)


def _log_minor_labels(ax) -> None:
    """Readable tick labels on a log y axis spanning less than about a decade (plain decimals at
    1, 2, 3, 5 × 10^k instead of a lone power of ten)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < 30:
        subs = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
        ax.yaxis.set_major_locator(LogLocator(subs=subs, numticks=30))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    if ax.get_xscale() == "log":  # matplotlib's minor labels (3×10⁴ 4×10⁴ …) run into each other
        xlo, xhi = ax.get_xlim()
        if xlo > 0 and xhi / xlo < 100:  # at most 2 powers of ten inside: add 2 and 5 × 10^k
            ax.xaxis.set_minor_formatter(FuncFormatter(
                lambda v, _: fmt(v) if f"{v:.0e}"[0] in "25" else ""))
        else:
            ax.xaxis.set_minor_formatter(NullFormatter())


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
            pred = _band(ax, fit, xs, color, (np.full_like(xs, lev),))
            ax.plot(xs, pred, color=color, lw=1.2)
    if norm is not None:
        _colorbar(fig, ax, norm, d_label)
    _log_log(ax, n_label, loss_label, "Joint law L(N, D)")
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
    from .isoflop import group_budgets

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
    _colorbar(fig, ax, norm, "compute budget C (FLOPs)")
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
    _log_minor_labels(ax2)
    return fig


def plot_correlation(x, y, corr: Correlation, *, xlabel: str = "loss",
                     ylabel: str = "accuracy", color=None, color_label: str = "") -> Figure:
    """Accuracy against loss with the linear and sigmoid fits and the correlations."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    fig, (ax,) = new_figure()
    cmap = colormaps[CMAP]
    if color is not None:
        c = np.asarray(color, float)
        norm = (LogNorm if np.all(c > 0) and c.max() / c.min() > 3 else Normalize)(c.min(),
                                                                                 c.max())
        ax.scatter(x, y, c=c, cmap=cmap, norm=norm, s=32, edgecolor="white", zorder=3)
        _colorbar(fig, ax, norm, color_label)
    else:
        ax.scatter(x, y, s=32, color=cmap(0.35), edgecolor="white", zorder=3)
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
    ax.legend(loc="lower left", frameon=False)
    return fig


def _size_colors(values: np.ndarray):
    v = np.asarray(values, float)
    finite = v[np.isfinite(v) & (v > 0)]
    if finite.size == 0 or finite.max() == finite.min():
        return (lambda _: colormaps[CMAP](0.4)), None
    norm = LogNorm(finite.min(), finite.max())
    return (lambda val: colormaps[CMAP](norm(val)) if val is not None and np.isfinite(val)
            else "0.5"), norm


def _colorbar(fig, ax, norm, label: str) -> None:
    """Colour bar with plain, short tick labels (2.5e5 rather than 2.5×10⁵ or 250000)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=CMAP), ax=ax, label=label)
    if isinstance(norm, LogNorm):
        cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0), numticks=20))
        cb.ax.yaxis.set_minor_locator(LogLocator(subs="auto", numticks=20))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    cb.ax.yaxis.set_minor_formatter(NullFormatter())  # no text objects to lay out


def plot_curves(curves: pd.DataFrame, sizes: dict, *, x: str = "images_seen", y: str = "loss",
                xlabel: str = "images seen", ylabel: str = "training loss",
                size_label: str = "parameters", run_id: str = "run_id",
                title: str = "Training curves") -> Figure:
    """Loss curves on log-log axes, one line per run, coloured by model size (``sizes``: run →
    size)."""
    fig, (ax,) = new_figure()
    color_of, norm = _size_colors(np.array(list(sizes.values()), float))
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
        _colorbar(fig, ax, norm, size_label)
    _log_log(ax, xlabel, ylabel, title)
    return fig


def plot_frontier(curves: pd.DataFrame, sizes: dict, envelope: pd.DataFrame, fit: Fit | None, *,
                  x: str = "flops", y: str = "loss", run_id: str = "run_id",
                  ylabel: str = "loss", size_label: str = "parameters",
                  extrapolate_to: float | None = None) -> Figure:
    """Loss against compute for every run, the lower envelope (compute frontier) and the power
    law fitted to it, extrapolated dashed."""
    fig, (ax,) = new_figure()
    color_of, norm = _size_colors(np.array(list(sizes.values()), float))
    for rid, g in curves.groupby(run_id, sort=False):
        g = g[[x, y]].apply(pd.to_numeric, errors="coerce").dropna()
        g = g[(g[x] > 0) & (g[y] > 0)].sort_values(x)
        ax.plot(g[x], g[y], color=color_of(sizes.get(rid, np.nan)), lw=0.9, alpha=0.55)
    if norm is not None:
        _colorbar(fig, ax, norm, size_label)
    ax.scatter(envelope[x], envelope[y], s=16, color="black", zorder=3, label="frontier points")
    if fit is not None and not fit.flat:
        lo_x, hi_x = float(envelope[x].min()), float(envelope[x].max())
        right = max(extrapolate_to or hi_x, hi_x)
        xs = np.geomspace(lo_x, hi_x, 100)
        pred = _band(ax, fit, xs, "crimson")
        ax.plot(xs, pred, color="crimson", lw=1.8, label="power-law fit")
        if right > hi_x * 1.0001:
            ax.axvspan(hi_x, right, color=EXTRAP_COLOR, zorder=0, lw=0)
            xs2 = np.geomspace(hi_x, right, 50)
            ax.plot(xs2, _band(ax, fit, xs2, "crimson"), color="crimson", lw=1.5, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel(ylabel)
    ax.set_title("Compute frontier: lowest loss reached at each compute")
    ax.legend(loc="upper right", frameon=False)  # inside: the colour bar is beside
    _log_minor_labels(ax)
    return fig


def plot_layerwise(tidy: pd.DataFrame, sizes: dict, depths: dict | None = None, *,
                   run_id: str = "run_id", size_label: str = "trunk parameters") -> Figure:
    """Top-1 of probes on groups of blocks against the last block used, one line per run and
    probe kind, coloured by model size; x is relative depth when depths are known."""
    fig, (ax,) = new_figure()
    color_of, norm = _size_colors(np.array(list(sizes.values()), float))
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
        _colorbar(fig, ax, norm, size_label)
    ax.set_xlabel("last block used / depth" if relative else "last block used (1-based)")
    ax.set_ylabel("probe top-1 accuracy")
    ax.set_title("Layer-wise probe accuracy")
    ax.legend(frameon=False)
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


def plot_backtest(bt, train_split: np.ndarray, train_loss: np.ndarray, *,
                  split_label: str = "holdout column", loss_label: str = "loss") -> Figure:
    """Loss against the holdout variable: training runs, held-out runs, and their predictions
    with prediction intervals, with the threshold marked."""
    fig, (ax,) = new_figure()
    cmap = colormaps[CMAP]
    xs = np.array([p["split"] for p in bt.predictions])
    obs = np.array([p["observed"] for p in bt.predictions])
    pred = np.array([p["predicted"] for p in bt.predictions])
    ax.scatter(train_split, train_loss, s=24, color=cmap(0.3), label="fitted on", zorder=3)
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
    ax.scatter(xs, obs, s=40, facecolor="none", edgecolor="crimson", linewidth=1.4, zorder=5,
               label="held-out, observed")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(split_label)
    ax.set_ylabel(loss_label)
    cov = "" if bt.coverage is None else f", intervals held {fmt(100 * bt.coverage)}%"
    ax.set_title(f"Backtest: fit on {bt.n_train}, predict {bt.n_test} (grey)\n"
                 f"MAPE {fmt(bt.mape)}%{cov}")
    ax.legend(loc="lower left", frameon=False)
    _log_minor_labels(ax)
    return fig
