"""Where the report's backtest splits fitted from held-out runs (`analysis.report.backtest`)."""

import numpy as np
import pytest

from analysis.errors import AnalysisError
from analysis.report.backtest import threshold


def test_a_clear_break_in_compute_is_where_the_backtest_splits():
    """18 fitted runs 1.2x apart, then 4 runs >= 4x beyond: all 4 and only they are held out
    (the quarter rule alone would hold out 2 runs from below the break)."""
    fitted = 1e9 * 1.2 ** np.arange(18)
    held = fitted.max() * np.array([4.1, 5.0, 6.3, 8.2])
    flops = np.concatenate([fitted, held])
    n = np.tile([1.0, 2.0, 3.0], 8)[: len(flops)]
    thr = threshold(flops, need=6, distinct=(n,))
    assert thr == fitted.max()
    assert sorted(flops[flops > thr]) == sorted(held)


def test_without_a_break_about_a_quarter_is_held_out():
    flops = 1e9 * 1.2 ** np.arange(20)
    thr = threshold(flops, need=6)
    assert (flops > thr).sum() == 5  # the old rule, unchanged


def test_a_break_that_would_hold_out_most_runs_is_not_used():
    """A gap after the 3rd of 20 runs would hold out 85%: the quarter rule applies instead."""
    flops = np.concatenate([1e9 * np.arange(1, 4), 1e11 * 1.1 ** np.arange(17)])
    thr = threshold(flops, need=3)
    assert (flops > thr).sum() == 5


def test_a_break_is_skipped_when_too_few_distinct_sizes_lie_below_it():
    fitted = 1e9 * 1.2 ** np.arange(12)
    flops = np.concatenate([fitted, fitted.max() * np.array([5.0, 6.0, 7.0])])
    n = np.concatenate([np.full(12, 7.0), [8.0, 9.0, 10.0]])  # one size below the break
    assert threshold(flops, need=6, distinct=(n,)) > fitted.max()  # fits 3 distinct sizes
    with pytest.raises(AnalysisError, match="too few runs"):
        threshold(flops, need=6, distinct=(n,), distinct_min=5)
