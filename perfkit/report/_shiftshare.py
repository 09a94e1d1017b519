"""Shift-share: split an overall change into within-segment change and segment-mix change.

For a metric that is a ratio of sums over rows, the overall value is a weighted mean of the
segments' values, ``M = sum_s w_s m_s`` with ``w_s = den_s / sum(den)`` and
``m_s = num_s / den_s``. Between a baseline (0) and a current period (1)::

    M1 - M0 = sum_s (w0_s + w1_s) / 2 * (m1_s - m0_s)              within-segment performance change
            + sum_s ((m0_s + m1_s) / 2 - R) * (w1_s - w0_s)        segment-mix change

an identity for any constant ``R`` (the shares sum to 1 in both periods): the symmetric,
midpoint form, with no residual term and no order dependence. ``R = (M0 + M1) / 2`` makes each
segment's mix term readable (a segment gaining share while better than average raises the
metric). A segment present in only one period (or with an empty denominator there) has no
within term: its whole contribution ``w1_s m1_s - w0_s m0_s`` is mix, so the identity holds.

Supported metrics (:data:`SUPPORTED_METRICS`) are those whose value is exactly such a ratio of
additive sums in the stored states:

* ``accuracy`` (correct / labelled rows), binary ``precision`` (TP / predicted positives) and
  binary ``recall`` (TP / actual positives), from the confusion counts;
* ``log_loss`` (mean per-row log loss), and for regression ``mse``, ``mae``, ``mape``,
  ``smape`` (means of per-row terms), from the moments' count and mean.

AUC, F1, macro averages, RMSE and R² are not weighted means of segment values, so they have
no exact shift-share split: they raise :class:`~perfkit.exceptions.ValidationError`.

Examples
--------
>>> from perfkit.metrics import compute_state
>>> base = {"a": compute_state([1, 1, 0, 0], [1, 1, 0, 0]), "b": compute_state([1, 0], [0, 0])}
>>> cur = {"a": compute_state([1, 0], [1, 1]), "b": compute_state([1, 0, 1, 0], [0, 0, 0, 0])}
>>> s = shift_share(base, cur, "accuracy")
>>> round(s.baseline_value, 4), round(s.current_value, 4)
(0.8333, 0.5)
>>> abs(s.within + s.mix - s.change) < 1e-12
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from perfkit.exceptions import ValidationError

__all__ = ["SUPPORTED_METRICS", "SegmentShare", "ShiftShare", "ratio_parts", "shift_share"]

#: Metrics with an exact shift-share split (ratios of additive sums over rows).
SUPPORTED_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "log_loss", "mse", "mae",
                                      "mape", "smape")
_REGRESSION_MOMENTS = {"mse": "se", "mae": "ae", "mape": "ape", "smape": "sape"}


def _state(value: Any) -> Any:
    if isinstance(value, dict):
        from perfkit.metrics import state_from_dict

        return state_from_dict(value)
    return value


def ratio_parts(state: Any, metric: str) -> tuple[float, float]:
    """Return ``(numerator, denominator)`` of ``metric`` in ``state`` (value = num / den).

    Parameters
    ----------
    state : State or dict
        A classification or regression state (or its ``to_dict()``).
    metric : str
        One of :data:`SUPPORTED_METRICS`.

    Raises
    ------
    ValidationError
        For an unsupported metric or one the state cannot give (``parameter="metric"``).

    Examples
    --------
    >>> from perfkit.metrics import compute_state
    >>> ratio_parts(compute_state([1, 0, 1], [1, 1, 1]), "accuracy")
    (2.0, 3.0)
    """
    st = _state(state)
    kind = getattr(st, "task", None)
    if metric not in SUPPORTED_METRICS:
        raise ValidationError(f"metric {metric!r} has no exact shift-share decomposition; supported: "
                              f"{list(SUPPORTED_METRICS)}", parameter="metric")
    if not getattr(st, "labelled", True):
        return 0.0, 0.0
    if metric in _REGRESSION_MOMENTS:
        moments = getattr(st, _REGRESSION_MOMENTS[metric], None) if kind == "regression" else None
        if moments is None:
            raise ValidationError(f"metric {metric!r} needs a regression state, got a {kind} state",
                                  parameter="metric")
        return float(moments.mean) * moments.n, float(moments.n)
    if kind == "regression":
        raise ValidationError(f"metric {metric!r} needs a classification state, got a regression state",
                              parameter="metric")
    if metric == "log_loss":
        m = st.logloss
        if m is None:
            raise ValidationError("log_loss needs scores in the state", parameter="metric")
        return float(m.mean) * m.n, float(m.n)
    cm = np.asarray(st.confusion, dtype=float)
    if metric == "accuracy":
        return float(np.trace(cm)), float(cm.sum())
    if kind != "binary":
        raise ValidationError(f"metric {metric!r} is binary only; this state is {kind}", parameter="metric")
    p = st.positive_index
    if metric == "precision":
        return float(cm[p, p]), float(cm[:, p].sum())
    return float(cm[p, p]), float(cm[p, :].sum())  # recall


@dataclass(frozen=True)
class SegmentShare:
    """One segment's part of a :class:`ShiftShare`.

    ``within`` + ``mix`` is the segment's contribution ``w1 m1 - w0 m0`` to the overall change.
    ``presence`` is ``"both"``, ``"new"`` (only current) or ``"gone"`` (only baseline).
    """

    segment: str | None
    baseline_weight: float
    current_weight: float
    baseline_value: float
    current_value: float
    within: float
    mix: float
    presence: str

    @property
    def contribution(self) -> float:
        """The segment's total contribution to the overall change."""
        return self.within + self.mix


@dataclass(frozen=True)
class ShiftShare:
    """An exact shift-share decomposition (see the module docstring).

    Attributes
    ----------
    metric : str
    baseline_value, current_value : float
        Overall values (sum of numerators over sum of denominators).
    within : float
        Part of the change due to performance changing inside segments.
    mix : float
        Part due to the segments' shares changing.
    segments : tuple of SegmentShare
        Largest absolute contribution first.
    """

    metric: str
    baseline_value: float
    current_value: float
    within: float
    mix: float
    segments: tuple[SegmentShare, ...]

    @property
    def change(self) -> float:
        """``current_value - baseline_value`` (equals ``within + mix``)."""
        return self.current_value - self.baseline_value

    def to_frame(self) -> pd.DataFrame:
        """One row per segment: weights, values, within, mix, contribution, presence."""
        cols = ["segment", "baseline_weight", "current_weight", "baseline_value", "current_value",
                "within", "mix", "contribution", "presence"]
        return pd.DataFrame([{**{c: getattr(s, c) for c in cols if c != "contribution"},
                              "contribution": s.contribution} for s in self.segments], columns=cols)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN as None)."""
        def clean(x: Any) -> Any:
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return {"metric": self.metric, "baseline_value": clean(self.baseline_value),
                "current_value": clean(self.current_value), "change": clean(self.change),
                "within": clean(self.within), "mix": clean(self.mix),
                "segments": [{k: clean(v) for k, v in row.items()} for row in self.to_frame().to_dict("records")]}


def _parts(states: Mapping[Any, Any], metric: str, parameter: str) -> dict[Any, tuple[float, float]]:
    if not isinstance(states, Mapping):
        raise ValidationError(f"{parameter} must be a mapping segment -> state, got {type(states).__name__}",
                              parameter=parameter)
    return {seg: ratio_parts(st, metric) for seg, st in states.items()}


def shift_share(baseline: Mapping[Any, Any], current: Mapping[Any, Any], metric: str) -> ShiftShare:
    """Split the overall change of ``metric`` into within-segment and mix parts, exactly.

    Parameters
    ----------
    baseline, current : mapping segment -> State or state dict
        The merged state of each segment in each period.
    metric : str
        One of :data:`SUPPORTED_METRICS`.

    Returns
    -------
    ShiftShare
        ``within + mix == current_value - baseline_value`` up to float rounding.

    Raises
    ------
    ValidationError
        Unsupported metric, a state that cannot give it, or an empty period
        (``parameter`` names which).
    """
    b = _parts(baseline, metric, "baseline")
    c = _parts(current, metric, "current")
    b_total = sum(d for _, d in b.values())
    c_total = sum(d for _, d in c.values())
    for name, total in (("baseline", b_total), ("current", c_total)):
        if not total > 0:
            raise ValidationError(f"{name} has no rows for {metric}: nothing to decompose", parameter=name)
    b_value = sum(n for n, _ in b.values()) / b_total
    c_value = sum(n for n, _ in c.values()) / c_total
    ref = (b_value + c_value) / 2
    rows = []
    for seg in list(dict.fromkeys([*b, *c])):
        n0, d0 = b.get(seg, (0.0, 0.0))
        n1, d1 = c.get(seg, (0.0, 0.0))
        w0, w1 = d0 / b_total, d1 / c_total
        m0 = n0 / d0 if d0 > 0 else math.nan
        m1 = n1 / d1 if d1 > 0 else math.nan
        if d0 > 0 and d1 > 0:
            within = (w0 + w1) / 2 * (m1 - m0)
            level, presence = (m0 + m1) / 2, "both"
        else:
            within = 0.0
            level, presence = (m1, "new") if d1 > 0 else (m0, "gone")
        # sum(w1 - w0) == 0, so measuring levels from ``ref`` leaves the total unchanged and
        # makes each segment's mix term readable: gaining share while better than average is +
        mix = (level - ref) * (w1 - w0)
        rows.append(SegmentShare(seg, w0, w1, m0, m1, within, mix, presence))
    rows.sort(key=lambda s: -abs(s.contribution))
    return ShiftShare(
        metric=metric,
        baseline_value=b_value,
        current_value=c_value,
        within=math.fsum(s.within for s in rows),
        mix=math.fsum(s.mix for s in rows),
        segments=tuple(rows),
    )
