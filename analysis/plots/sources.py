"""Where a plotted point comes from (final run, cooldown branch, intermediate checkpoint), as a
marker shape, and the legend entries that name the shapes."""

from __future__ import annotations

import numpy as np

# Marker per point source: a reader tells a final run from a cooldown branch or an intermediate
# checkpoint at a glance. Unknown sources take the remaining shapes in order.
SOURCE_MARKERS = {"final run": "o", "cooldown branch": "s", "intermediate checkpoint": "^"}
SPARE_MARKERS = ("D", "v", "P", "X")


def source_markers(sources) -> dict[str, str]:
    """Marker of each source present, known ones first."""
    present = list(dict.fromkeys(str(v) for v in sources))
    out, spare = {}, iter(SPARE_MARKERS)
    for name in present:
        out[name] = SOURCE_MARKERS.get(name) or next(spare, "o")
    return out


def scatter_by_source(ax, x, y, sources, markers: dict, **kw) -> None:
    """Points, one marker shape per source (all circles without sources); a per-point ``c``
    (colour values) is split with them."""
    if sources is None:
        ax.scatter(x, y, marker="o", **kw)
        return
    sources = np.asarray(sources, dtype=str)
    per_point = {k: v for k, v in kw.items() if k == "c" and np.ndim(v) == 1}  # colour values
    for name, marker in markers.items():
        m = sources == name
        if m.any():
            ax.scatter(np.asarray(x)[m], np.asarray(y)[m], marker=marker,
                       **{**kw, **{k: np.asarray(v)[m] for k, v in per_point.items()}})
        kw.pop("label", None)


def source_legend(ax, markers: dict):
    """Handles for a marker legend when points come from more than one source."""
    from matplotlib.lines import Line2D

    if len(markers) < 2:
        return []
    return [Line2D([], [], ls="", marker=mk, color="0.35", label=name)
            for name, mk in markers.items()]
