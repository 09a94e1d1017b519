"""The cooldown rule, written once: the alert policy and replay both call it."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

__all__ = ["SEVERITY_RANK", "apply_cooldown", "suppresses"]

SEVERITY_RANK = {None: 0, "minor": 1, "moderate": 2, "critical": 3}


def suppresses(
    last_time: datetime | np.datetime64 | None,
    last_severity: str | None,
    time: datetime | np.datetime64,
    severity: str | None,
    cooldown: timedelta | np.timedelta64,
) -> bool:
    """Whether a fired alert (``last_*``) suppresses a new one with the same key.

    The key is (model, segment, metric, alert type). A new alert is suppressed when the last
    one that *fired* is at most ``cooldown`` older and the new one is not an escalation to a
    higher severity.

    Examples
    --------
    >>> t = datetime(2026, 1, 1)
    >>> suppresses(t, "minor", t + timedelta(hours=3), "minor", timedelta(hours=24))
    True
    >>> suppresses(t, "minor", t + timedelta(hours=3), "critical", timedelta(hours=24))
    False
    >>> suppresses(t, "minor", t + timedelta(hours=30), "minor", timedelta(hours=24))
    False
    """
    if last_time is None:
        return False
    return bool(time - last_time <= cooldown) and (
        SEVERITY_RANK.get(severity, 0) <= SEVERITY_RANK.get(last_severity, 0)
    )


def apply_cooldown(
    times: Sequence[Any] | np.ndarray,
    keys: Sequence[Hashable],
    severities: Sequence[str | None],
    cooldown_hours: float,
) -> tuple[list[str], list[int | None]]:
    """Cooldown over time-ordered alerts: ``(status, suppressed_by)`` per alert.

    ``status`` is ``"fires"`` or ``"suppressed"``; ``suppressed_by`` the position of the
    fired alert that suppresses it.

    Examples
    --------
    >>> ts = np.array(["2026-01-01T00", "2026-01-01T05", "2026-01-02T06"], dtype="datetime64[ns]")
    >>> apply_cooldown(ts, ["a", "a", "a"], ["minor"] * 3, 24)
    (['fires', 'suppressed', 'fires'], [None, 0, None])
    """
    window = np.timedelta64(int(round(cooldown_hours * 3600e9)), "ns")
    t = np.asarray(times, dtype="datetime64[ns]")
    last: dict[Hashable, tuple[Any, str | None, int]] = {}
    status: list[str] = []
    by: list[int | None] = []
    for k, (tk, key, sev) in enumerate(zip(t, keys, severities, strict=True)):
        prev = last.get(key)
        if prev is not None and suppresses(prev[0], prev[1], tk, sev, window):
            status.append("suppressed")
            by.append(prev[2])
            continue
        status.append("fires")
        by.append(None)
        last[key] = (tk, sev, k)
    return status, by
