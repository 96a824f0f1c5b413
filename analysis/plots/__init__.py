"""Figures for scaling studies (matplotlib, Agg, no pyplot state): each ``plot_*`` returns a
Figure, ``save`` writes it as PNG and SVG.

One module per figure family: ``base`` (style, formatting, saving, shared axes helpers),
``scaling`` (loss against N, D or C with fits; joint law; IsoFLOP; frontier), ``runs`` (training
curves, layer-wise probes, loss ↔ accuracy, ablations), ``backtest``, and ``sources`` (a marker
shape per point origin: final run, cooldown branch, intermediate checkpoint).
"""

from .backtest import plot_backtest
from .base import CMAP, EXTRAP_COLOR, RC, ci_text, fmt, new_figure, no_data, save
from .runs import plot_ablation, plot_correlation, plot_curves, plot_layerwise
from .scaling import Series, plot_frontier, plot_isoflop, plot_joint, plot_scaling
from .sources import scatter_by_source, source_legend, source_markers

__all__ = ["CMAP", "EXTRAP_COLOR", "RC", "Series", "ci_text", "fmt", "new_figure", "no_data",
           "plot_ablation", "plot_backtest", "plot_correlation", "plot_curves", "plot_frontier",
           "plot_isoflop", "plot_joint", "plot_layerwise", "plot_scaling", "save",
           "scatter_by_source", "source_legend", "source_markers"]
