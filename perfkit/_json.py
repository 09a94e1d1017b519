"""JSON-safe conversion shared by every result's ``to_dict()`` and by alert payloads (internal).

The one implementation of "turn this into plain JSON types"; boundary checks of user input
live in :mod:`perfkit._checks`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(value: Any) -> Any:
    """Convert ``value`` into plain JSON types.

    * mappings -> ``dict`` with ``str`` keys; lists, tuples and numpy arrays -> ``list``;
      sets -> ``list`` sorted by ``repr`` (a stable order);
    * booleans (numpy's included) -> ``bool``; integers -> ``int``; real numbers ->
      ``float``, with NaN and infinities -> ``None``;
    * ``datetime`` / ``date`` / ``time`` / ``pandas.Timestamp`` -> ISO 8601 text,
      ``numpy.datetime64`` -> ISO text (``None`` for NaT of either kind);
    * other numpy scalars through ``.item()``; anything else -> ``str(value)``.

    Examples
    --------
    >>> json_safe({"a": np.float64("nan"), "b": (np.int64(2), True)})
    {'a': None, 'b': [2, True]}
    >>> json_safe({"s": {3, 1}, "t": np.datetime64("2024-01-01T00:00")})
    {'s': [1, 3], 't': '2024-01-01T00:00:00'}
    """
    kind = type(value)  # exact plain types first: reports hold tens of thousands of them
    if kind is float:
        return value if math.isfinite(value) else None
    if value is None or kind is str or kind is int:
        return value
    if kind is dict:
        return {str(k): json_safe(v) for k, v in value.items()}
    if kind is list:
        return [json_safe(v) for v in value]
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, (datetime, date, time)):
        return None if type(value).__name__ == "NaTType" else value.isoformat()
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        as_dt = value.astype("datetime64[us]").item()  # a datetime (an int when out of range)
        return as_dt.isoformat() if isinstance(as_dt, datetime) else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [json_safe(v) for v in sorted(value, key=repr)]
    if hasattr(value, "isoformat"):  # pandas.Timestamp subclasses datetime; other time types
        try:
            return value.isoformat()
        except (TypeError, ValueError):
            pass
    item = getattr(value, "item", None)  # other numpy scalars and 0-d arrays
    if callable(item):
        try:
            return json_safe(item())
        except (TypeError, ValueError):
            pass
    return str(value)
