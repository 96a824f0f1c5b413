"""What every figure shares: the style, number formatting, a figure without pyplot state, saving
as PNG + SVG, and the helpers for bands, legends, log axes and colour bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless; harmless when a backend is already chosen for files

import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..result import Fit  # noqa: E402

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


def band(ax, fit: Fit, xs: np.ndarray, color, extra: tuple = ()) -> None:
    pred, lo, hi = fit.predict_interval(xs, *extra, kind="ci")
    if lo is not None:
        ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)
    return pred


def legend_beside(ax, extra: list | None = None) -> None:
    """Legend to the right of the axes, one short line per entry, so it covers no data and is
    never taller than the plot (constrained layout makes room for it)."""
    handles, labels = ax.get_legend_handles_labels()
    handles, labels = handles + list(extra or []), labels + [h.get_label() for h in extra or []]
    if handles:
        ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False,
                  ncol=1 if len(handles) <= 12 else 2, fontsize=8)


def log_log(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Log-log axes with labels, title and readable minor tick labels."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    log_minor_labels(ax)


def log_minor_labels(ax) -> None:
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


def size_colors(values: np.ndarray):
    v = np.asarray(values, float)
    finite = v[np.isfinite(v) & (v > 0)]
    if finite.size == 0 or finite.max() == finite.min():
        return (lambda _: colormaps[CMAP](0.4)), None
    norm = LogNorm(finite.min(), finite.max())
    return (lambda val: colormaps[CMAP](norm(val)) if val is not None and np.isfinite(val)
            else "0.5"), norm


def colorbar(fig, ax, norm, label: str) -> None:
    """Colour bar with plain, short tick labels (2.5e5 rather than 2.5×10⁵ or 250000)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=CMAP), ax=ax, label=label)
    if isinstance(norm, LogNorm):
        cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0), numticks=20))
        cb.ax.yaxis.set_minor_locator(LogLocator(subs="auto", numticks=20))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    cb.ax.yaxis.set_minor_formatter(NullFormatter())  # no text objects to lay out
