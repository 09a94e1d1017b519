"""The report's top box: three to five sentences generated from the findings.

:func:`narrate` is a pure function of a :class:`Findings` value (built by
:mod:`perfkit.report.weekly` from the store): it answers, in order, *is something wrong*
(metric, change and its interval), *since when* (change point), *where* (segments), *why*
(within-segment vs mix, when an exact split exists) and *what was done* (alerts sent /
suppressed, retraining triggers).

A change is **credible** when the confidence interval of (value - baseline) excludes 0, and
a **worsening** when it moves against the metric's direction.

Examples
--------
>>> healthy = Findings(days=7, metrics=(MetricChange("accuracy", 0.87, 0.871, -0.01, 0.008, True, 0.83),))
>>> narrate(healthy)[0]
'No credible change in the last 7 days: for accuracy the 95 % interval of the change against the baseline includes 0.'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Findings", "MetricChange", "SegmentChange", "credible_direction", "narrate"]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class MetricChange:
    """One metric of the period against its baseline.

    ``change_lo`` / ``change_hi`` bound ``value - baseline`` at the report's confidence level.
    ``threshold`` is the metric level at which an alert fires (None: no threshold).
    """

    metric: str
    value: float
    baseline: float
    change_lo: float
    change_hi: float
    higher_is_better: bool | None
    threshold: float | None = None

    @property
    def change(self) -> float:
        """``value - baseline``."""
        return self.value - self.baseline if _finite(self.baseline) else math.nan

    @property
    def relative(self) -> float:
        """Relative change against the baseline (NaN without one)."""
        return self.change / abs(self.baseline) if _finite(self.baseline) and self.baseline else math.nan

    @property
    def direction(self) -> str | None:
        """``"worse"``, ``"better"`` or None (no credible change), see :func:`credible_direction`."""
        return credible_direction(self.change_lo, self.change_hi, self.higher_is_better)


@dataclass(frozen=True)
class SegmentChange:
    """One segment's change of the lead metric (and its shift-share contribution, if any)."""

    segment: str
    value: float
    baseline: float
    change_lo: float
    change_hi: float
    higher_is_better: bool | None
    contribution: float = math.nan

    @property
    def direction(self) -> str | None:
        return credible_direction(self.change_lo, self.change_hi, self.higher_is_better)


@dataclass(frozen=True)
class Findings:
    """What the narrative is generated from.

    Attributes
    ----------
    days : float
        Length of the review period.
    metrics : tuple of MetricChange
        Tracked metrics, most important first (thresholded metrics before the others).
    change_points : dict
        ``{metric: datetime}`` of significant change points in the trend window.
    trend_days : float
    segments : dict
        ``{metric: tuple of SegmentChange}``.
    within, mix : dict
        ``{metric: float}``, exact shift-share parts where the metric has them.
    alerts_sent, alerts_suppressed, retraining_triggers : int
    level : float
        Confidence level of the intervals.
    has_baseline : bool
    """

    days: float
    metrics: tuple[MetricChange, ...]
    change_points: dict = field(default_factory=dict)
    trend_days: float | None = None
    segments: dict = field(default_factory=dict)
    within: dict = field(default_factory=dict)
    mix: dict = field(default_factory=dict)
    alerts_sent: int = 0
    alerts_suppressed: int = 0
    retraining_triggers: int = 0
    level: float = 0.95
    has_baseline: bool = True


def credible_direction(lo: float, hi: float, higher_is_better: bool | None) -> str | None:
    """``"worse"`` / ``"better"`` when the change interval ``[lo, hi]`` excludes 0, else None.

    Examples
    --------
    >>> credible_direction(-0.05, -0.01, True), credible_direction(-0.05, -0.01, False)
    ('worse', 'better')
    >>> credible_direction(-0.01, 0.02, True) is None
    True
    """
    if not (_finite(lo) and _finite(hi)) or higher_is_better is None or lo <= 0 <= hi:
        return None
    up = lo > 0
    return "better" if up == bool(higher_is_better) else "worse"


def _num(x: float) -> str:
    return f"{x:.3f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"


def _signed(x: float) -> str:
    return f"{x:+.3f}" if abs(x) >= 0.01 or x == 0 else f"{x:+.2g}"


def _pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _days(x: float | None) -> str:
    return f"{x:g} days" if x is not None else "the trend window"


def _lead(findings: Findings) -> tuple[MetricChange | None, list[MetricChange], list[MetricChange]]:
    worse = [m for m in findings.metrics if m.direction == "worse"]
    better = [m for m in findings.metrics if m.direction == "better"]
    if not worse:
        return None, [], better
    # the first worsened metric with a threshold leads (``metrics`` is in order of importance)
    ranked = sorted(worse, key=lambda m: m.threshold is None)
    return ranked[0], ranked[1:], better


def _what(findings: Findings, lead: MetricChange | None, others: list[MetricChange],
          better: list[MetricChange]) -> str:
    level = f"{findings.level * 100:g} %"
    if lead is None:
        names = _join([m.metric for m in findings.metrics]) if findings.metrics else "the tracked metrics"
        text = (f"No credible change in the last {findings.days:g} days: for {names} the {level} interval "
                "of the change against the baseline includes 0")
        if better:
            text = (f"No credible degradation in the last {findings.days:g} days; "
                    f"{_join([f'{m.metric} improved ({_pct(m.relative)})' for m in better])}")
        return text + "."
    verb = "rose" if lead.change > 0 else "fell"
    text = (f"{lead.metric} {verb} from {_num(lead.baseline)} (baseline) to {_num(lead.value)} in the last "
            f"{findings.days:g} days: {_signed(lead.change)} ({level} interval {_signed(lead.change_lo)} to "
            f"{_signed(lead.change_hi)}), {_pct(lead.relative)}")
    if lead.threshold is not None and _finite(lead.threshold):
        beyond = lead.value < lead.threshold if lead.higher_is_better else lead.value > lead.threshold
        text += (f", {'beyond' if beyond else 'within'} its alert threshold {_num(lead.threshold)}")
    if others:
        text += f"; {_join([f'{m.metric} ({_pct(m.relative)})' for m in others[:3]])} also worsened"
    return text + "."


def _since(findings: Findings, lead: MetricChange) -> str:
    cp = findings.change_points.get(lead.metric)
    if cp is None:
        return (f"No change point in {lead.metric} was found in the last {_days(findings.trend_days)}: "
                "the change is gradual or older than the trend window.")
    stamp = cp.strftime("%Y-%m-%d") if isinstance(cp, datetime) else str(cp)[:10]
    return f"It started around {stamp} (change point of the {lead.metric} series)."


def _where(findings: Findings, lead: MetricChange) -> str | None:
    segs = findings.segments.get(lead.metric) or ()
    if not segs:
        return None
    worse = [s for s in segs if s.direction == "worse"]
    steady = [s for s in segs if s.direction is None]
    if not worse:
        return (f"No single segment shows a credible worsening of {lead.metric} on its own "
                f"({_join([s.segment for s in segs])}).")
    parts = [f"{s.segment} ({_num(s.baseline)} to {_num(s.value)}"
             + (f", {_signed(s.contribution)} of the overall change" if _finite(s.contribution) else "") + ")"
             for s in worse]
    text = f"It is carried by segment{'s' if len(worse) > 1 else ''} {_join(parts)}"
    if steady:
        text += f"; {_join([s.segment for s in steady])} show{'s' if len(steady) == 1 else ''} no credible change"
    return text + "."


def _why(findings: Findings, lead: MetricChange) -> str | None:
    within, mix = findings.within.get(lead.metric), findings.mix.get(lead.metric)
    if not (_finite(within) and _finite(mix)):
        return None
    return (f"Of the {_signed(within + mix)} change in {lead.metric} (segments against their baselines), "
            f"{_signed(within)} comes from performance changing inside segments and {_signed(mix)} from "
            "the segment mix.")


def _done(findings: Findings) -> str:
    sent, supp, retrain = findings.alerts_sent, findings.alerts_suppressed, findings.retraining_triggers
    if sent == 0 and supp == 0:
        return "No alerts were raised in the period."
    text = (f"{sent} alert{'s were' if sent != 1 else ' was'} sent and {supp} suppressed by the cooldown "
            "in the period")
    if retrain:
        text += f", {retrain} of the sent ones retraining trigger{'s' if retrain != 1 else ''}"
    return text + "."


def _segment_lead(findings: Findings) -> MetricChange | None:
    """The first metric (thresholded first) whose segments carry baselines of their own."""
    for m in findings.metrics:
        if any(_finite(s.baseline) for s in findings.segments.get(m.metric) or ()):
            return m
    return None


def _segments_only(findings: Findings, lead: MetricChange) -> str:
    return ("The whole model has no baseline of its own (its batches are tracked by segment), so its "
            f"change is not assessed; {lead.metric} is {_num(lead.value)} over the last {_days(findings.days)} "
            "and each segment is compared with its own baseline.")


def _segment_changes(findings: Findings, lead: MetricChange) -> str:
    segs = [s for s in findings.segments.get(lead.metric) or () if _finite(s.baseline)]
    worse = [s for s in segs if s.direction == "worse"]
    if not worse:
        return (f"No segment shows a credible worsening of {lead.metric} against its own baseline "
                f"({_join([s.segment for s in segs])}).")
    parts = [f"{s.segment} ({_num(s.baseline)} to {_num(s.value)})" for s in worse]
    return f"{lead.metric} is credibly worse in segment{'s' if len(worse) > 1 else ''} {_join(parts)}."


def narrate(findings: Findings) -> list[str]:
    """Return 3-5 sentences answering: is something wrong, since when, where, why, what was done.

    Parameters
    ----------
    findings : Findings

    Returns
    -------
    list of str
        At most five sentences; at least two (what, and what was done) even for an empty
        period.
    """
    if not findings.has_baseline:
        seg_lead = _segment_lead(findings)
        if seg_lead is not None:  # segments tracked alone: each has its own baseline
            return [_segments_only(findings, seg_lead), _segment_changes(findings, seg_lead), _done(findings)]
        head = ("No baseline yet, so no change can be assessed"
                + (f"; {findings.metrics[0].metric} is {_num(findings.metrics[0].value)}"
                   if findings.metrics and _finite(findings.metrics[0].value) else "") + ".")
        return [head, _done(findings)]
    lead, others, better = _lead(findings)
    sentences = [_what(findings, lead, others, better)]
    if lead is not None:
        sentences.append(_since(findings, lead))
        where = _where(findings, lead)
        if where:
            sentences.append(where)
        why = _why(findings, lead)
        if why:
            sentences.append(why)
    sentences.append(_done(findings))
    return sentences[:5]
