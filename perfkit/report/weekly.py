"""The weekly review: the data behind ``templates/weekly_review.ipynb`` and its runner.

The template stays thin: it calls :func:`weekly_context` once, displays what it returns and
writes :meth:`WeeklyReview.write_summary`. All logic (windows, intervals, change against
the baseline, trends, alerts, segments, charts, escaped HTML tables) lives here, where
pytest reaches it.

Two windows are used:

* the **review period** (``days``, default 7, ending at ``as_of``): headline numbers, alerts
  and worst segments;
* the **trend window** (``trend_days``, default the config's ``performance_window_days``):
  trend charts, trend analysis and the threshold explorer, so the week is seen in context.

Every user string (model, segment, metric names, alert messages) is escaped in the HTML this
module builds; charts carry them as Vega text.

Examples
--------
>>> import tempfile, os
>>> review = weekly_context(os.path.join(tempfile.mkdtemp(), "empty.db"))
>>> review.empty, review.to_dict()["alerts"]
(True, 0)
>>> "No data for this period" in review.overview_html()
True
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from perfkit._checks import check_days, check_name
from perfkit._files import write_text_atomic
from perfkit._json import json_safe as _json
from perfkit.exceptions import ValidationError
from perfkit.report._build import model_review_fields
from perfkit.report._review_run import run_weekly_review, template_path

__all__ = [
    "ModelReview",
    "WeeklyReview",
    "review_payload",
    "run_weekly_review",
    "table_html",
    "template_path",
    "weekly_context",
]

logger = logging.getLogger("perfkit")

_MAX_ALERT_ROWS = 50
_STATUS_CSS = {"degraded": "perfkit-bad", "ok": "perfkit-good", "changed, no threshold": "perfkit-warn",
               }

_CSS = """<style>
.perfkit-table{border-collapse:collapse;font:13px Helvetica,Arial,sans-serif;margin:6px 0 14px}
.perfkit-table th,.perfkit-table td{border-bottom:1px solid #e0e0e0;padding:4px 10px;text-align:right}
.perfkit-table th:first-child,.perfkit-table td:first-child{text-align:left}
.perfkit-table caption{text-align:left;font-weight:bold;padding:4px 0}
.perfkit-bad{color:#d62728;font-weight:bold}.perfkit-good{color:#2ca02c}
.perfkit-warn{color:#b35900;font-weight:bold}
.perfkit-table td{vertical-align:top;white-space:nowrap}
.perfkit-summary{border:1px solid #d0d7de;border-left:5px solid #4c78a8;background:#f6f8fa;padding:8px 14px;
margin:8px 0 14px;font:14px/1.5 Helvetica,Arial,sans-serif}
.perfkit-summary.perfkit-alarm{border-left-color:#d62728}
.perfkit-summary li{margin:2px 0}
.perfkit-note{color:#555;font:13px Helvetica,Arial,sans-serif}
</style>"""


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------
def _fmt(value: Any, fmt: str = ".4f") -> str:
    if value is None:
        return "–"
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return "–"
        return format(value, fmt) if isinstance(value, float) else str(value)
    try:
        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        pass
    return str(value)


def table_html(frame: pd.DataFrame, *, caption: str | None = None, formats: dict[str, str] | None = None,
               classes: dict[str, pd.Series] | None = None, max_rows: int | None = None) -> str:
    """Render ``frame`` as an HTML table with every cell and header escaped.

    Parameters
    ----------
    frame : pandas.DataFrame
    caption : str, optional
    formats : dict, optional
        ``{column: format spec}`` for float columns (default ``".4f"``).
    classes : dict, optional
        ``{column: Series of CSS class names}`` (for highlighting cells).
    max_rows : int, optional
        Show only the first rows and say how many were left out.

    Examples
    --------
    >>> t = table_html(pd.DataFrame({"model": ["<script>alert(1)</script>"], "value": [0.5]}))
    >>> "<script>" in t, "&lt;script&gt;alert(1)&lt;/script&gt;" in t
    (False, True)
    """
    formats = formats or {}
    classes = classes or {}
    shown = frame if max_rows is None else frame.head(max_rows)
    parts = ['<table class="perfkit-table">']
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
                 + "</tr></thead><tbody>")
    for i, (_, row) in enumerate(shown.iterrows()):
        cells = []
        for c in shown.columns:
            css = ""
            if c in classes and i < len(classes[c]) and classes[c].iloc[i]:
                css = f' class="{html.escape(str(classes[c].iloc[i]))}"'
            text = html.escape(_fmt(row[c], formats.get(c, '.4f'))).replace("\n", "<br>")
            cells.append(f"<td{css}>{text}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    if max_rows is not None and len(frame) > max_rows:
        parts.append(f'<p class="perfkit-note">… and {len(frame) - max_rows} more</p>')
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# value objects
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelReview:
    """The weekly review of one model (see :func:`weekly_context`).

    Attributes
    ----------
    model : str
    segment : str or None
        The segment filter (None: every segment).
    records, samples : int
        Batches and rows in the review period.
    task : str or None
    headline : DataFrame
        One row per tracked metric of the period's merged state: ``metric``, ``value``,
        ``ci_lower``, ``ci_upper``, ``baseline``, ``change``, ``change_ci_lower``,
        ``change_ci_upper``, ``relative_change``, ``threshold``, ``status``.
    trends : DataFrame
        Trend analysis over the trend window, one row per metric.
    alerts : DataFrame
        Alerts of the period (delivered, pending, failed and suppressed).
    segments : DataFrame
        Per segment, worst first, for :attr:`primary_metric`.
    charts : list
        Trend charts (altair), one per charted metric.
    volume_chart, segment_chart, explorer_chart : altair chart or None
    primary_metric : str or None
    notes : list of str
        Why something is missing (no baseline, too few points ...).
    narrative : tuple of str
        The top box: 3-5 sentences generated by :func:`perfkit.report._narrative.narrate`.
    shift_shares : dict
        ``{metric: ShiftShare}``: exact within-segment / mix split of the change against the
        segments' baselines (metrics with an exact split, several segments only).
    drift : DataFrame
        Prediction drift per segment over the review period (see
        :func:`perfkit.report._sections.segment_drift`).
    estimates : DataFrame
        Batches of the period whose labels are pending: per tracked metric the label-free
        estimate with its interval, the baseline and the estimated alert it raised (see
        :func:`perfkit.report._build.estimate_tables`).
    concept_drift : DataFrame
        Batches of the period completed since their estimate: realized against estimated
        per checked metric (``z``, ``p_value``, ``suspected``).
    """

    model: str
    segment: str | None
    records: int
    samples: int
    task: str | None
    headline: pd.DataFrame
    trends: pd.DataFrame
    alerts: pd.DataFrame
    segments: pd.DataFrame
    charts: list = field(default_factory=list)
    volume_chart: Any = None
    segment_chart: Any = None
    explorer_chart: Any = None
    primary_metric: str | None = None
    notes: list = field(default_factory=list)
    narrative: tuple = ()
    shift_shares: dict = field(default_factory=dict)
    drift: pd.DataFrame = field(default_factory=pd.DataFrame)
    drift_note: str | None = None
    estimates: pd.DataFrame = field(default_factory=pd.DataFrame)
    concept_drift: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def empty(self) -> bool:
        """True when the model has no labelled batch in the review period."""
        return self.records == 0

    @property
    def n_alerts(self) -> int:
        """Alerts of the period that were not suppressed (delivered, pending or failed)."""
        return int((self.alerts["status"] != "suppressed").sum()) if len(self.alerts) else 0

    @property
    def n_suppressed(self) -> int:
        """Alerts of the period suppressed by the cooldown."""
        return int((self.alerts["status"] == "suppressed").sum()) if len(self.alerts) else 0

    def narrative_html(self) -> str:
        """The top box: what is wrong, since when, where, why, what was done (3-5 sentences)."""
        if not self.narrative:
            return ""
        alarm = " perfkit-alarm" if any(m == "degraded" or m.startswith("changed") for m in self.headline["status"]) \
            else ""
        items = "".join(f"<li>{html.escape(s)}</li>" for s in self.narrative)
        return _CSS + f'<div class="perfkit-summary{alarm}"><b>In short</b><ul>{items}</ul></div>'

    def headline_html(self) -> str:
        """The headline table: value with interval and change against the baseline."""
        if not len(self.headline):
            return '<p class="perfkit-note">No metric could be computed for this period.</p>'
        h = self.headline
        level = "95 %"
        frame = pd.DataFrame({
            "metric": h["metric"],
            "value": h["value"],
            f"{level} interval": [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(h["ci_lower"], h["ci_upper"],
                                                                                 strict=True)],
            "baseline": h["baseline"],
            "change vs baseline": [_signed(c) for c in h["change"]],
            "change interval": [f"[{_signed(lo)}, {_signed(hi)}]" if _finite(lo) else "–"
                                for lo, hi in zip(h["change_ci_lower"], h["change_ci_upper"], strict=True)],
            "relative": [f"{r:+.1%}" if _finite(r) else "–" for r in h["relative_change"]],
            "alert threshold": h["threshold"],
            "status": h["status"],
        })
        css = h["status"].map(_STATUS_CSS).fillna("")
        return _CSS + table_html(frame, caption=f"Headline numbers: the whole period against the model baseline "
                                 f"({self.records} batches, {self.samples:,} rows)", classes={"status": css})

    def trends_html(self) -> str:
        """The trend analysis table."""
        if not len(self.trends):
            return '<p class="perfkit-note">Not enough history for a trend analysis.</p>'
        css = self.trends["direction"].map({"degrading": "perfkit-bad", "improving": "perfkit-good"}).fillna("")
        return _CSS + table_html(self.trends, caption="Trend analysis",
                                 formats={"slope_per_day": "+.5f", "p_value": ".3g", "shift": "+.4f",
                                          "time_to_breach_days": ".1f"},
                                 classes={"direction": css})

    def alerts_html(self) -> str:
        """Alerts of the period grouped by batch and segment, newest first.

        One row per batch and segment: its metrics with value, baseline and change (the
        segment's batch against the segment's baseline), severity, delivery, and a
        retraining flag (a trigger is not a row of its own).
        """
        if not len(self.alerts):
            return '<p class="perfkit-note">No alerts in this period.</p>'
        from perfkit.report._sections import grouped_alerts

        g = grouped_alerts(self.alerts)
        shown = g.drop(columns=["_severity", "_sent"])
        css = {"severity": g["_severity"].map({"critical": "perfkit-bad", "moderate": "perfkit-warn"}).fillna(""),
               "retraining": g["retraining"].map(lambda v: "perfkit-bad" if v.startswith("yes") else "")}
        caption = (f"Alerts by batch and segment: {self.n_alerts} sent, {self.n_suppressed} suppressed by the "
                   "cooldown (times UTC). Values and changes are each segment's batch against that segment's "
                   "baseline (the headline compares the whole period with the model baseline).")
        return _CSS + table_html(shown, caption=caption, classes=css, max_rows=_MAX_ALERT_ROWS)

    def why_html(self) -> str:
        """The shift-share tables: within-segment change vs segment-mix change."""
        if not self.shift_shares:
            return ('<p class="perfkit-note">No exact within/mix split: it needs several segments with '
                    "baselines and a metric that is a ratio of counts or a mean over rows (accuracy, "
                    "precision, recall, log loss, MSE, MAE ...).</p>")
        parts = [_CSS]
        for metric, ss in self.shift_shares.items():
            frame = ss.to_frame()
            frame["baseline share"] = [f"{w:.1%}" for w in frame["baseline_weight"]]
            frame["current share"] = [f"{w:.1%}" for w in frame["current_weight"]]
            shown = frame[["segment", "baseline share", "current share", "baseline_value", "current_value",
                           "within", "mix", "contribution"]].rename(columns={
                               "baseline_value": "baseline", "current_value": "this period",
                               "within": "within-segment", "mix": "segment mix", "contribution": "total"})
            shown.loc[len(shown)] = ["all segments", "100.0%", "100.0%", ss.baseline_value, ss.current_value,
                                     ss.within, ss.mix, ss.change]
            big = 0.5 * abs(ss.change)
            css = shown["total"].map(lambda v, big=big: "perfkit-bad" if _finite(v) and big and abs(v) >= big else "")
            parts.append(table_html(
                shown, caption=(f"{metric}: change {ss.change:+.4f} = within-segment {ss.within:+.4f} "
                                f"+ segment mix {ss.mix:+.4f} (segments against their baselines)"),
                formats={"within-segment": "+.4f", "segment mix": "+.4f", "total": "+.4f"},
                classes={"total": css}))
        return "".join(parts)

    def drift_html(self) -> str:
        """Prediction drift per segment (predictions only: labels are not needed)."""
        if not len(self.drift):
            return f'<p class="perfkit-note">{html.escape(self.drift_note or "No prediction drift computed.")}</p>'
        d = self.drift
        css = d["latest_label"].map({"major": "perfkit-bad", "moderate": "perfkit-warn"}).fillna("")
        return _CSS + table_html(
            d.rename(columns={"drifted_batches": "drifted batches", "median_psi": "median PSI",
                              "max_psi": "max PSI", "latest_psi": "latest PSI", "latest_label": "latest band"}),
            caption="Prediction drift per segment against its baseline (PSI of the score distribution; "
                    "drifted = test at 5 %)",
            formats={"median PSI": ".3f", "max PSI": ".3f", "latest PSI": ".3f"}, classes={"latest band": css})

    def estimates_html(self) -> str:
        """Before the labels arrive: pending batches with their label-free estimates, and the
        concept-drift check of the batches completed since (realized against estimated)."""
        parts = [_CSS]
        est = self.estimates
        if len(est):
            shown = pd.DataFrame({
                "time": est["timestamp"], "batch": est["batch_id"], "segment": est["segment"],
                "rows": est["rows"], "metric": est["metric"], "estimate": est["estimate"],
                "95 % interval": [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(est["ci_lower"], est["ci_upper"],
                                                                                 strict=True)],
                "baseline": est["baseline"],
                "change vs baseline": [_signed(e - b) if _finite(e) and _finite(b) else "–"
                                       for e, b in zip(est["estimate"], est["baseline"], strict=True)],
                "estimated alert": est["alert"],
            })
            css = est["alert"].map(lambda a: "perfkit-bad" if a != "none" and "suppressed" not in a else "")
            n_batches = est[["batch_id", "segment"]].drop_duplicates().shape[0]
            parts.append(table_html(
                shown, caption=(f"Labels pending: {n_batches} batches, label-free estimates (CBPE: the baseline's "
                                "calibration read off each batch's scores; valid while the score-outcome relation "
                                "holds)"), classes={"estimated alert": css}, max_rows=_MAX_ALERT_ROWS))
        else:
            parts.append('<p class="perfkit-note">No batch of this period is waiting for labels.</p>')
        cd = self.concept_drift
        if len(cd):
            shown = pd.DataFrame({
                "time": cd["timestamp"], "batch": cd["batch_id"], "segment": cd["segment"], "metric": cd["metric"],
                "estimated": cd["estimated"],
                "95 % interval": [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(cd["ci_lower"], cd["ci_upper"],
                                                                                 strict=True)],
                "realized": cd["realized"], "realized - estimated": [_signed(r - e) for r, e in
                                                                     zip(cd["realized"], cd["estimated"], strict=True)],
                "z": cd["z"], "p-value": cd["p_value"],
                "finding": ["concept drift suspected" if x else "none" for x in cd["suspected"]],
            })
            css = cd["suspected"].map(lambda x: "perfkit-bad" if x else "")
            n_sus = int(cd.loc[cd["suspected"], ["batch_id", "segment"]].drop_duplicates().shape[0])
            parts.append(table_html(
                shown, caption=(f"Labels arrived: realized against the earlier estimate, "
                                f"{n_sus} of {cd[['batch_id', 'segment']].drop_duplicates().shape[0]} batches with "
                                "concept drift suspected (realized outside what the estimate allows)"),
                formats={"z": "+.2f", "p-value": ".3g"}, classes={"finding": css}, max_rows=_MAX_ALERT_ROWS))
        return "".join(parts)

    def segments_html(self) -> str:
        """Segments of the period, worst first."""
        if not len(self.segments):
            return '<p class="perfkit-note">No segments in this period.</p>'
        seg = self.segments.copy()
        seg["change interval"] = [f"[{_signed(lo)}, {_signed(hi)}]" if _finite(lo) else "–"
                                  for lo, hi in zip(seg["change_ci_lower"], seg["change_ci_upper"], strict=True)]
        seg = seg.drop(columns=["change_ci_lower", "change_ci_upper"])
        return _CSS + table_html(seg, caption=f"Segments by {self.primary_metric}, worst first: each segment "
                                 "against its own baseline", formats={"relative_change": "+.1%", "change": "+.4f"})

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary of this model's review."""
        headline = {r.metric: {k: _json(getattr(r, k)) for k in
                               ("value", "ci_lower", "ci_upper", "baseline", "change", "relative_change", "status")}
                    for r in self.headline.itertuples()}
        worst = self.segments.iloc[0]["segment"] if len(self.segments) else None
        return {
            "model": self.model, "segment": self.segment, "records": self.records,
            "samples": self.samples, "task": self.task, "alerts": self.n_alerts,
            "suppressed_alerts": self.n_suppressed,
            "alerts_by_severity": {str(k): int(v) for k, v in self.alerts[self.alerts["status"] != "suppressed"]
                                   .groupby("severity").size().items()} if len(self.alerts) else {},
            "headline": headline,
            "degraded_metrics": [m for m, v in headline.items() if v["status"] == "degraded"],
            "trends": {r.metric: r.direction for r in self.trends.itertuples()} if len(self.trends) else {},
            "worst_segment": worst, "primary_metric": self.primary_metric, "notes": list(self.notes),
            "narrative": list(self.narrative),
            "drift_by_segment": [{k: _json(v) for k, v in row.items()} for row in self.drift.to_dict("records")]
            if len(self.drift) else [],
            "shift_share": {m: ss.to_dict() for m, ss in self.shift_shares.items()},
            "estimates": [{k: _json(v) for k, v in row.items()} for row in self.estimates.to_dict("records")]
            if len(self.estimates) else [],
            "concept_drift": [{k: _json(v) for k, v in row.items()} for row in self.concept_drift.to_dict("records")]
            if len(self.concept_drift) else [],
        }


@dataclass(frozen=True)
class WeeklyReview:
    """Everything the weekly review template shows (see :func:`weekly_context`)."""

    store: str
    as_of: datetime
    days: float
    trend_days: float
    models: tuple[ModelReview, ...]
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def start(self) -> datetime:
        return self.as_of - timedelta(days=self.days)

    @property
    def empty(self) -> bool:
        """True when no model has data in the review period."""
        return all(m.empty for m in self.models)

    @property
    def alerts(self) -> int:
        """Non-suppressed alerts of the period, over every model."""
        return sum(m.n_alerts for m in self.models)

    def overview_html(self) -> str:
        """Period, store and one row per model (or the "no data" message)."""
        period = (f"{_fmt(self.start)} – {_fmt(self.as_of)} ({_fmt(float(self.days), 'g')} days); "
                  f"trends over {_fmt(float(self.trend_days), 'g')} days")
        head = f'<p class="perfkit-note">Period: {html.escape(period)}. Store: {html.escape(self.store)}.</p>'
        if self.empty:
            return _CSS + head + ('<p class="perfkit-empty"><b>No data for this period.</b> The store has no '
                                  'labelled batches between these dates'
                                  + ("" if self.models else " (no model at all)") + ".</p>")
        rows = []
        for m in self.models:
            d = m.to_dict()
            rows.append({"model": m.model, "batches": m.records, "rows": m.samples,
                         "alerts": m.n_alerts, "suppressed": m.n_suppressed,
                         "degraded metrics": ", ".join(d["degraded_metrics"]) or "none",
                         "worst segment": d["worst_segment"]})
        frame = pd.DataFrame(rows)
        css = frame["alerts"].map(lambda n: "perfkit-bad" if n else "")
        return _CSS + head + table_html(frame, caption="Models", classes={"alerts": css})

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary the template writes (``alerts`` = non-suppressed alert count)."""
        return {
            "schema": "perfkit.weekly_review/1",
            "generated_at": self.generated_at.isoformat(),
            "as_of": self.as_of.isoformat(),
            "period": {"start": self.start.isoformat(), "end": self.as_of.isoformat(), "days": self.days},
            "trend_days": self.trend_days,
            "store": self.store,
            "empty": self.empty,
            "alerts": self.alerts,
            "suppressed_alerts": sum(m.n_suppressed for m in self.models),
            "models": [m.to_dict() for m in self.models],
        }

    def outputs(self) -> list[dict[str, str]]:
        """Everything the template shows, in order, as Jupyter mime bundles.

        Markdown headings (user strings escaped), the HTML tables and the charts (static SVG
        plus the upgrade script, see :mod:`perfkit.report.display`).
        """
        from perfkit.report.display import chart_mimebundle, format_markdown

        out: list[dict[str, str]] = []

        def md(template: str, **values: Any) -> None:
            text = format_markdown(template, **values)
            out.append({"text/markdown": text, "text/plain": "<IPython.core.display.Markdown object>"})

        def page(text: str) -> None:
            out.append({"text/html": text, "text/plain": "<IPython.core.display.HTML object>"})

        def chart(c: Any) -> None:
            if c is not None:
                out.append(chart_mimebundle(c))

        md("## Weekly review, {start} to {end}", start=f"{self.start:%Y-%m-%d}", end=f"{self.as_of:%Y-%m-%d}")
        page(self.overview_html())
        for section in self.models:
            md("## Model {model}", model=section.model)
            if section.empty:
                md("No data for this period for model {model}. {notes}", model=section.model,
                   notes="; ".join(section.notes))
                if len(section.estimates):
                    page(section.estimates_html())
                continue
            page(section.narrative_html())
            for note in section.notes:
                md("*Note:* {note}", note=note)
            md("### Is something wrong?")
            page(section.headline_html())
            if len(section.estimates) or len(section.concept_drift):
                md("### Before the labels arrive: label-free estimates and the concept-drift check")
                page(section.estimates_html())
            md("### Since when? Trends over the last {n} days", n=f"{self.trend_days:g}")
            for c in section.charts:
                chart(c)
            page(section.trends_html())
            chart(section.volume_chart)
            md("### Where? Segments")
            chart(section.segment_chart)
            page(section.segments_html())
            md("### Why? Within-segment change, segment mix and prediction drift")
            page(section.why_html())
            page(section.drift_html())
            md("### What was done? Alerts of the period")
            page(section.alerts_html())
            if section.explorer_chart is not None:
                md("### Threshold explorer")
                md("Pick a metric and move the slider: points whose change against their segment's baseline "
                   "is worse than the threshold (in percent) turn red. Works offline.")
                chart(section.explorer_chart)
        return out

    def write_summary(self, path: str | os.PathLike[str] | None) -> Path | None:
        """Write :meth:`to_dict` as JSON to ``path`` (atomically); None does nothing."""
        if not path:
            return None
        p = Path(path)
        write_text_atomic(p, json.dumps(self.to_dict(), indent=2, allow_nan=False))
        return p


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _signed(x: Any) -> str:
    return f"{x:+.4f}" if _finite(x) else "–"


def _as_of(value: Any) -> datetime:
    if value is None or value == "":
        return datetime.now(UTC)
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"as_of {value!r} is not an ISO 8601 date or time", parameter="as_of") from exc
    if ts is pd.NaT:
        raise ValidationError(f"as_of {value!r} is not an ISO 8601 date or time", parameter="as_of")
    if isinstance(value, str) and len(value.strip()) == 10:  # a date: the review covers that whole day
        ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def weekly_context(
    store_url: str | os.PathLike[str],
    config_path: str | os.PathLike[str] | None = None,
    model: str | Sequence[str] | None = None,
    segment: str | None = None,
    as_of: Any = None,
    days: float = 7,
    *,
    trend_days: float | None = None,
    charts: bool = True,
) -> WeeklyReview:
    """Load everything the weekly review shows.

    Parameters
    ----------
    store_url : str or path-like
        SQLAlchemy URL or SQLite file path of the history store. A missing SQLite file is
        an empty store (the review says "no data").
    config_path : path-like, optional
        perfkit YAML configuration (thresholds, tracked metrics ...); default as
        :func:`perfkit.config.load_config`. A missing file is an error.
    model : str or list of str, optional
        Models to review; default every model in the store.
    segment : str, optional
        Only this segment (default: every segment).
    as_of : str or datetime, optional
        End of the review period (ISO date = the end of that day, UTC); default now.
    days : float, default 7
        Length of the review period.
    trend_days : float, optional
        Length of the trend window (default: the config's ``performance_window_days``,
        at least ``days``).
    charts : bool, default True
        Build the altair charts (False for a quick data-only review).

    Returns
    -------
    WeeklyReview

    Raises
    ------
    ValidationError
        Bad ``as_of`` / ``days``, or an unknown model.
    ConfigError
        The configuration file is missing or invalid.
    """
    from perfkit.config import load_config
    from perfkit.tracker import ModelPerformanceTracker

    days = check_days(days, "days")
    end = _as_of(as_of)
    config = load_config(config_path)
    trend = max(check_days(trend_days, "trend_days") if trend_days is not None
                else float(config.performance_window_days), days)
    check_name(segment, "segment", optional=True)
    url = os.fspath(store_url) if isinstance(store_url, os.PathLike) else store_url
    if not isinstance(url, str) or not url:
        raise ValidationError(f"store_url must be a URL or a file path, got {store_url!r}", parameter="store_url")
    store_arg: Any = url
    if "://" not in url:
        path = Path(url)
        if not path.exists():
            logger.warning("store %s does not exist: the review will say 'no data'", path)
            return WeeklyReview(store=str(path), as_of=end, days=days, trend_days=trend, models=())
        store_arg = path
    with ModelPerformanceTracker(config=config, store=store_arg) as tracker:
        available = tracker.store.models()
        if model is None or model == "":
            names = available
        else:
            names = [model] if isinstance(model, str) else list(model)
            unknown = [m for m in names if m not in available]
            if unknown:
                raise ValidationError(f"model(s) {unknown} are not in the store; it has {available}",
                                      parameter="model")
        sections = tuple(ModelReview(**model_review_fields(tracker, m, segment, end, days, trend, charts))
                         for m in names)
        store_name = tracker.store.url
    return WeeklyReview(store=store_name, as_of=end, days=days, trend_days=trend, models=sections)


def review_payload(
    store_url: str | os.PathLike[str],
    config_path: str | os.PathLike[str] | None = None,
    model: str | Sequence[str] | None = None,
    segment: str | None = None,
    as_of: Any = None,
    days: float = 7,
) -> dict[str, Any]:
    """Everything the weekly review template displays, as JSON (see :mod:`perfkit.report.payload`).

    Built by ``perfkit review`` in a process of its own while the kernel starts, or by the
    template itself when it is run by hand. The perfkit warnings logged while building are
    returned in ``log`` (the template shows them on its stderr).

    Examples
    --------
    >>> import tempfile, os
    >>> payload = review_payload(os.path.join(tempfile.mkdtemp(), "empty.db"))
    >>> payload["empty"], payload["summary"]["alerts"], len(payload["outputs"])
    (True, 0, 2)
    """
    from perfkit.report._payload_io import PAYLOAD_FORMAT

    log: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            log.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    handler = _Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        review = weekly_context(store_url, config_path, model=model, segment=segment, as_of=as_of, days=days)
        outputs = review.outputs()
    finally:
        logger.removeHandler(handler)
    return {"format": PAYLOAD_FORMAT, "outputs": outputs, "summary": review.to_dict(),
            "models": [{"model": m.model, "empty": m.empty} for m in review.models], "empty": review.empty,
            "log": log}
