"""JSON-safe conversion shared by every result's ``to_dict()`` (internal)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(value: Any) -> Any:
    """Convert numpy scalars, NaN / inf (-> None), datetimes (-> ISO) and tuples for JSON.

    Examples
    --------
    >>> json_safe({"a": np.float64("nan"), "b": (np.int64(2), True)})
    {'a': None, 'b': [2, True]}
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
