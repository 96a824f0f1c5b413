"""JSON output without NaN: numpy scalars and arrays become numbers and lists, NaN/inf become
null, objects with ``to_dict`` are expanded."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """A structure ``json.dumps(..., allow_nan=False)`` accepts."""
    if hasattr(obj, "to_dict") and not isinstance(obj, dict):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def dumps(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``obj``."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)
