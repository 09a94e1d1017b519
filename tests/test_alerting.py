"""Alerting end to end: real SMTP and HTTP servers, failures then retries, cooldown, escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from perfkit import ModelPerformanceTracker
from perfkit.alerts import CallbackChannel
from perfkit.config import parse_config

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _batch(rng, n, acc):
    y = rng.integers(0, 2, n)
    correct = rng.random(n) < acc
    yp = np.where(correct, y, 1 - y)
    p = np.clip(np.where(yp == 1, 0.5 + 0.5 * rng.random(n), 0.5 * rng.random(n)), 0, 1)
    return y, yp, p


def _tracker(tmp_path, monkeypatch, *, channels=("log",), extra=None, smtp=None, webhook=None, **cfg):
    section = {
        "degradation_thresholds": {"accuracy_drop": 0.05},
        "metrics_to_track": ["accuracy"],
        "alert_channels": list(channels),
        "alert_cooldown_hours": 24,
        "performance_storage": {"alerts_file": str(tmp_path / "alerts.jsonl")},
        **cfg,
    }
    if smtp is not None:
        section["email"] = {"host": smtp.host, "port": smtp.port, "sender": "perfkit@example.test",
                            "recipients": ["ds@example.test"], "timeout": 2}
    if webhook is not None:
        monkeypatch.setenv("PERFKIT_WEBHOOK_URL", webhook.url + "/hook")
        section["webhook"] = {"timeout": 2}
    t = ModelPerformanceTracker(config=parse_config(section), store=tmp_path / "perf.db", model="churn",
                                channels=extra)
    rng = np.random.default_rng(0)
    t.set_baseline(*_batch(rng, 20_000, 0.9))
    return t, rng


def test_alert_reaches_email_and_webhook_with_content(tmp_path, monkeypatch, smtp_server, http_server):
    t, rng = _tracker(tmp_path, monkeypatch, channels=("log", "file", "email", "webhook"),
                      smtp=smtp_server, webhook=http_server)
    r = t.track_performance(*_batch(rng, 3000, 0.7), metadata={"note": "<script>alert(1)</script>"},
                            timestamp=T0, batch_id="b-1")
    assert r["degradation_analysis"]["degradation_detected"]
    kinds = {(o.alert.alert_type, o.status) for o in r.alert_outcomes}
    assert ("performance_degradation", "delivered") in kinds
    assert ("retraining_trigger", "delivered") in kinds
    assert len(smtp_server.messages) == 2 and len(http_server.requests) == 2
    msg = smtp_server.messages[0]
    assert "churn" in msg["Subject"] and "accuracy" in msg["Subject"]
    html_part = msg.get_body(("html",)).get_content()
    assert "<script>alert(1)</script>" not in html_part and "&lt;script&gt;" in html_part
    body = http_server.requests[0].json
    assert body["model"] == "churn" and body["metric"] == "accuracy" and body["batch_id"] == "b-1"
    assert body["severity"] == "critical" and body["relative_change"] < -0.2
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 2
    stored = t.store.alerts("churn")
    assert set(stored["status"]) == {"delivered"}
    assert all(d == {"log": "delivered", "file": "delivered", "email": "delivered", "webhook": "delivered"}
               for d in stored["deliveries"])


def test_failed_channels_are_retried_and_delivered_exactly_once(tmp_path, monkeypatch, smtp_server, http_server):
    t, rng = _tracker(tmp_path, monkeypatch, channels=("email", "webhook"), smtp=smtp_server, webhook=http_server)
    smtp_server.stop()
    http_server.status = 500
    r = t.track_performance(*_batch(rng, 3000, 0.7), timestamp=T0, batch_id="b-1")  # must not raise
    assert {o.status for o in r.alert_outcomes} == {"failed"}
    stored = t.store.alerts("churn")
    assert set(stored["status"]) == {"failed"}
    assert smtp_server.messages == [] and len(http_server.requests) == 2  # the 500 answers
    # the servers come back: an explicit retry delivers every pending delivery once
    smtp_server.start()
    http_server.status = 200
    delivered = t.retry_pending_alerts()
    assert delivered == 4
    assert len(smtp_server.messages) == 2
    ok_posts = [q for q in http_server.requests if q.json["alert_id"]]
    assert len(ok_posts) == 4
    assert set(t.store.alerts("churn")["status"]) == {"delivered"}
    # nothing is sent twice
    assert t.retry_pending_alerts() == 0
    t.track_performance(*_batch(rng, 3000, 0.9), timestamp=T0 + timedelta(hours=1), batch_id="b-2")
    assert len(smtp_server.messages) == 2 and len(http_server.requests) == 4


def test_next_tracking_call_retries(tmp_path, monkeypatch, http_server):
    t, rng = _tracker(tmp_path, monkeypatch, channels=("webhook",), webhook=http_server)
    http_server.status = 503
    t.track_performance(*_batch(rng, 3000, 0.7), timestamp=T0, batch_id="b-1")
    http_server.status = 200
    t.track_performance(*_batch(rng, 3000, 0.9), timestamp=T0 + timedelta(hours=2), batch_id="b-2")
    assert set(t.store.alerts("churn")["status"]) == {"delivered"}
    ids = [q.json["alert_id"] for q in http_server.requests[2:]]
    assert len(ids) == len(set(ids)) == 2


def test_cooldown_suppresses_and_escalation_passes(tmp_path, monkeypatch):
    got = []
    t, rng = _tracker(tmp_path, monkeypatch, extra=[CallbackChannel(got.append, name="cb")],
                      auto_retraining_threshold=0.9)
    first = t.track_performance(*_batch(rng, 4000, 0.8), timestamp=T0, batch_id="b1")  # ~11 % drop: moderate
    assert [(o.alert.severity, o.status) for o in first.alert_outcomes] == [("moderate", "delivered")]
    second = t.track_performance(*_batch(rng, 4000, 0.8), timestamp=T0 + timedelta(hours=3), batch_id="b2")
    (o2,) = second.alert_outcomes
    assert o2.status == "suppressed" and o2.suppressed_by == first.alert_outcomes[0].alert.alert_id
    third = t.track_performance(*_batch(rng, 4000, 0.65), timestamp=T0 + timedelta(hours=6), batch_id="b3")
    (o3,) = third.alert_outcomes
    assert o3.alert.severity == "critical" and o3.status == "delivered"  # escalation inside the cooldown
    fourth = t.track_performance(*_batch(rng, 4000, 0.65), timestamp=T0 + timedelta(hours=12), batch_id="b4")
    assert fourth.alert_outcomes[0].status == "suppressed"
    fifth = t.track_performance(*_batch(rng, 4000, 0.8), timestamp=T0 + timedelta(hours=31), batch_id="b5")
    assert fifth.alert_outcomes[0].status == "delivered"  # cooldown of the critical alert is over
    assert [a.batch_id for a in got] == ["b1", "b3", "b5"]
    frame = t.store.alerts("churn")
    assert list(frame["status"]) == ["delivered", "suppressed", "delivered", "suppressed", "delivered"]
    assert frame["suppressed_by"].iloc[1] == frame["alert_id"].iloc[0]


def test_low_performance_alert(tmp_path, monkeypatch):
    t, rng = _tracker(tmp_path, monkeypatch)
    r = t.track_performance(*_batch(rng, 2000, 0.3), timestamp=T0)
    types = {o.alert.alert_type for o in r.alert_outcomes}
    assert "low_performance" in types and r.performance_score < 0.5


def test_retraining_hook_called_for_trigger(tmp_path, monkeypatch):
    calls = []
    t, rng = _tracker(tmp_path, monkeypatch)
    t.alert_manager.retraining_hook = calls.append
    t.track_performance(*_batch(rng, 3000, 0.9), timestamp=T0)
    assert calls == []
    t.track_performance(*_batch(rng, 3000, 0.7), timestamp=T0 + timedelta(hours=1))
    assert len(calls) == 1 and calls[0].alert_type == "retraining_trigger"


@pytest.mark.parametrize("gating", ["minimum_effect", "significance", "none"])
def test_replay_reproduces_the_tracker(tmp_path, monkeypatch, gating):
    """The explorer's replay gives exactly the alerts the tracker raised."""
    from perfkit.analysis.degradation import replay
    from perfkit.metrics import evaluate, state_from_dict

    t, rng = _tracker(tmp_path, monkeypatch, statistical_gating=gating,
                      degradation_thresholds={"accuracy_drop": 0.03, "f1_drop": 0.03},
                      metrics_to_track=["accuracy", "f1_macro"], alert_cooldown_hours=30)
    for d in range(20):
        t.track_performance(*_batch(rng, 400, 0.9 if d < 10 else 0.84), timestamp=T0 + timedelta(hours=12 * d),
                            batch_id=f"b{d}")
    base = evaluate(state_from_dict(t.store.get_baseline("churn").state))
    out = replay(t.store.records("churn"), base, t.config.detection, metrics=["accuracy", "f1_macro"],
                 cooldown_hours=30)
    stored = t.store.alerts("churn")
    got = sorted(zip(out["batch_id"], out["metric"], out["alert_type"], out["severity"],
                     out["status"].replace({"fires": "delivered"}), strict=True))
    want = sorted(zip(stored["batch_id"], stored["metric"], stored["alert_type"], stored["severity"],
                      stored["status"], strict=True))
    assert got == want and len(want) > 0


def test_window_of_two_batches_confirms_a_drop_the_batch_alone_cannot(tmp_path, monkeypatch):
    """A moderate error increase on 1,000-row batches: the pooled window makes it credible,
    replay (explorer) reproduces it, and a healthy batch after a bad one raises nothing."""
    from perfkit.analysis.degradation import replay
    from perfkit.metrics import evaluate, state_from_dict
    from perfkit.widgets import ThresholdExplorer

    # the strictest null (degradation <= the whole threshold), where one batch is not enough
    section = {"degradation_thresholds": {"mse_increase": 0.10, "mae_increase": 0.10},
               "metrics_to_track": ["mse", "mae", "rmse", "r2"], "alert_channels": ["log"],
               "alert_cooldown_hours": 1, "baseline_batches": 3, "minimum_effect_fraction": 1.0}
    t = ModelPerformanceTracker(config=parse_config(section), store=tmp_path / "w.db", model="reg")
    rng = np.random.default_rng(5)

    def batch(scale, n=1000):
        x = rng.normal(size=n)
        y = 3 + 2 * x + rng.normal(size=n)
        return y, y + rng.normal(scale=0.5 * scale, size=n)

    scales = [1.0] * 8 + [1.12] * 14
    results = [t.track_performance(*batch(s), timestamp=T0 + timedelta(hours=3 * i), batch_id=f"b{i}")
               for i, s in enumerate(scales)]
    windowed = [a for r in results for a in r.alerts if a.metadata.get("window_batches") == 2]
    assert windowed, "no alert came from the two-batch window"
    assert all(not r["degradation_analysis"]["degradation_detected"] for r in results[3:8])
    stored = t.store.alerts("reg")
    want = sorted(zip(stored["batch_id"], stored["metric"], stored["alert_type"], stored["severity"],
                      stored["status"], strict=True))
    # the explorer skips the baseline batches but keeps them as window partners
    ex = ThresholdExplorer(t, render_chart=False)
    got = sorted(zip(ex.alerts["batch_id"], ex.alerts["metric"], ex.alerts["alert_type"], ex.alerts["severity"],
                     ex.alerts["status"].replace({"fires": "delivered"}), strict=True))
    assert got == want
    base = evaluate(state_from_dict(t.store.get_baseline("reg").state))
    plain = replay(t.store.records("reg")[3:], base, t.config.detection, cooldown_hours=1,
                   metrics=["mse", "mae"])
    assert len(plain) <= len(want)  # without the partner of the first checked batch: never more
