"""The one error type of the data stage."""

from __future__ import annotations

from aimscale.errors import UserError


class DataError(UserError, ValueError):
    """A dataset that cannot be used as configured (missing path, empty, too small, unreadable).

    The message names the path or setting at fault and says how to fix it.
    """
