"""The summary box's sentence generator as a pure function (no store)."""

from __future__ import annotations

from datetime import datetime

from perfkit.report._narrative import (
    Findings,
    MetricChange,
    SegmentChange,
    credible_direction,
    narrate,
)


def _drop(**kw) -> Findings:
    metrics = (MetricChange("accuracy", 0.79, 0.87, -0.09, -0.07, True, 0.83),
               MetricChange("roc_auc", 0.83, 0.93, -0.105, -0.089, True, 0.90),
               MetricChange("log_loss", 0.55, 0.32, 0.21, 0.25, False, None))
    segments = {"accuracy": (SegmentChange("us", 0.73, 0.87, -0.17, -0.11, True, -0.043),
                             SegmentChange("apac", 0.76, 0.87, -0.15, -0.07, True, -0.041),
                             SegmentChange("eu", 0.88, 0.87, -0.02, 0.04, True, 0.002))}
    base = dict(days=7, metrics=metrics, change_points={"accuracy": datetime(2026, 11, 22)}, trend_days=28,
                segments=segments, within={"accuracy": -0.081}, mix={"accuracy": -0.0015}, alerts_sent=25,
                alerts_suppressed=18, retraining_triggers=5)
    base.update(kw)
    return Findings(**base)


def test_a_drop_answers_every_question_in_order():
    what, since, where, why, done = narrate(_drop())
    assert what.startswith("accuracy fell from 0.870 (baseline) to 0.790 in the last 7 days: -0.080")
    assert "(95 % interval -0.090 to -0.070), -9.2 %, beyond its alert threshold 0.830" in what
    assert "roc_auc (-10.8 %) and log_loss (+71.9 %) also worsened" in what
    assert since == "It started around 2026-11-22 (change point of the accuracy series)."
    assert where.startswith("It is carried by segments us (0.870 to 0.730, -0.043 of the overall change) and apac")
    assert where.endswith("eu shows no credible change.")
    assert "-0.081 comes from performance changing inside segments and -0.0015 from the segment mix" in why
    assert done == "25 alerts were sent and 18 suppressed by the cooldown in the period, 5 of the sent ones " \
                   "retraining triggers."


def test_the_first_thresholded_metric_leads_and_missing_parts_are_said():
    f = _drop(metrics=(MetricChange("log_loss", 0.55, 0.32, 0.21, 0.25, False, None),
                       MetricChange("accuracy", 0.79, 0.87, -0.09, -0.07, True, 0.83)),
              change_points={}, segments={}, within={}, mix={}, alerts_sent=1, alerts_suppressed=0,
              retraining_triggers=0)
    sentences = narrate(f)
    assert sentences[0].startswith("accuracy fell")
    assert sentences[1].startswith("No change point in accuracy was found in the last 28 days")
    assert sentences[-1] == "1 alert was sent and 0 suppressed by the cooldown in the period."
    assert len(sentences) == 3


def test_healthy_improved_and_no_baseline():
    healthy = Findings(days=7, metrics=(MetricChange("accuracy", 0.87, 0.871, -0.01, 0.008, True, 0.83),))
    assert narrate(healthy) == [
        "No credible change in the last 7 days: for accuracy the 95 % interval of the change against the "
        "baseline includes 0.", "No alerts were raised in the period."]
    better = Findings(days=7, metrics=(MetricChange("log_loss", 0.2, 0.3, -0.12, -0.08, False, None),))
    assert narrate(better)[0] == "No credible degradation in the last 7 days; log_loss improved (-33.3 %)."
    none = Findings(days=7, metrics=(MetricChange("accuracy", 0.87, float("nan"), float("nan"), float("nan"),
                                                  True, None),), has_baseline=False)
    assert narrate(none)[0] == "No baseline yet, so no change can be assessed; accuracy is 0.870."


def test_credible_direction():
    assert credible_direction(0.01, 0.05, False) == "worse"
    assert credible_direction(0.01, 0.05, True) == "better"
    assert credible_direction(float("nan"), 0.05, True) is None
    assert credible_direction(-0.1, -0.01, None) is None


def test_segments_tracked_alone_are_narrated_against_their_own_baselines():
    """Every batch tracked by segment: no whole-model baseline, but the segments have theirs,
    so the box must not say "no baseline yet" beside the alerts those baselines raised."""
    acc = MetricChange("accuracy", 0.77, float("nan"), float("nan"), float("nan"), True, None)
    segs = (SegmentChange("us", 0.70, 0.78, -0.095, -0.065, True),
            SegmentChange("eu", 0.78, 0.78, -0.01, 0.01, True))
    f = Findings(days=7, metrics=(acc,), segments={"accuracy": segs}, alerts_sent=25, alerts_suppressed=111,
                 has_baseline=False)
    s = narrate(f)
    assert s[0].startswith("The whole model has no baseline of its own (its batches are tracked by segment)")
    assert "accuracy is 0.770 over the last 7 days" in s[0]
    assert s[1] == "accuracy is credibly worse in segment us (0.780 to 0.700)."
    assert s[2] == "25 alerts were sent and 111 suppressed by the cooldown in the period."
    steady = Findings(days=7, metrics=(acc,), segments={"accuracy": segs[1:]}, has_baseline=False)
    assert narrate(steady)[1] == "No segment shows a credible worsening of accuracy against its own baseline (eu)."
    assert not any("No baseline yet" in x for x in narrate(f))
