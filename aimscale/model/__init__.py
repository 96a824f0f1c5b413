"""The AIM model: trunk, heads, objectives (`AIM`, `Trunk`).

Torch is imported lazily, so `aimscale.model.config` (used by the config system and the CLI)
stays importable without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimscale.model.aim import AIM
    from aimscale.model.trunk import Trunk

__all__ = ["AIM", "Trunk"]


def __getattr__(name: str):
    if name == "AIM":
        from aimscale.model.aim import AIM

        return AIM
    if name == "Trunk":
        from aimscale.model.trunk import Trunk

        return Trunk
    raise AttributeError(f"module 'aimscale.model' has no attribute {name!r}")
