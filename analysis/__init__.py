"""Scaling-law analysis for aimscale: fits with honest uncertainty, compute-optimal frontier,
loss → accuracy, comparisons, plots and reports. Reads tables only; never imports torch.

Depends on numpy, scipy, pandas and matplotlib (plots and reports).
"""

from .backtest import Backtest, backtest
from .bnsl import fit_bnsl
from .compare import ablation_table, layerwise, width_vs_depth
from .correlate import Correlation, correlate, two_step
from .errors import AnalysisError, FitWarning
from .fit_joint import HOFFMANN_GRID, fit_joint, joint_grid
from .fit_power import fit_power
from .frontier import AIM_PRESETS, Frontier, Plan, allocation, frontier, plan, presets_table
from .isoflop import IsoflopResult, isoflop
from .laws import compute_optimal, optimal_allocation
from .result import Fit, Goodness

__all__ = [
    "AIM_PRESETS", "HOFFMANN_GRID", "AnalysisError", "Backtest", "Correlation", "Fit",
    "FitWarning", "Frontier", "Goodness", "IsoflopResult", "Plan", "ablation_table", "allocation",
    "backtest", "compute_optimal", "correlate", "fit_bnsl", "fit_joint", "fit_power", "frontier",
    "isoflop", "joint_grid", "layerwise", "optimal_allocation", "plan", "presets_table",
    "two_step", "width_vs_depth",
]
