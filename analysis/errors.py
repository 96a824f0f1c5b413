"""Errors and warnings raised by the analysis package."""

from __future__ import annotations


class AnalysisError(ValueError):
    """The data cannot support what was asked; the message says why and what to do."""


class FitWarning(UserWarning):
    """Something about a fit the user should know (dropped rows, bounds hit, no convergence)."""
