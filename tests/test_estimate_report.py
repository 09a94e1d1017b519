"""Estimated and realized side by side: the weekly review (chart layer, tables, JSON
summary) and the JSON report (schema) for a history with pending and completed batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources

import pytest
from late_history import AS_OF, METRICS, build_history

from perfkit.metrics import MetricValue, concept_drift_check, estimate
from perfkit.report.charts import metric_chart
from perfkit.report.weekly import weekly_context


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    d = tmp_path_factory.mktemp("estrep")
    t = build_history(d / "h.db", d / "cfg.yaml")
    yield t, d / "h.db", d / "cfg.yaml"
    t.close()


def test_weekly_review_lists_pending_estimates_and_concept_drift(history):
    t, db, cfg = history
    review = weekly_context(db, cfg, as_of=AS_OF, days=7, charts=False).models[0]
    est = review.estimates
    assert set(est["batch_id"]) == {"p2", "p3", "p4"} and set(est["metric"]) == set(METRICS)
    for r in t.store.records("churn", include_pending=True):
        if r.labels_pending:
            stored = r.metadata["estimated_metrics"]
            rows = est[est["batch_id"] == r.batch_id].set_index("metric")
            for m in METRICS:  # the tracker's own estimate, interval included
                assert rows.loc[m, "estimate"] == pytest.approx(stored[m]["value"], abs=1e-12)
                assert rows.loc[m, "ci_lower"] == pytest.approx(stored[m]["ci_lower"], abs=1e-12)
    # the degraded pending batch shows its estimated alert
    assert (est[est["batch_id"] == "p4"]["alert"] != "none").any()
    assert (est[est["batch_id"] == "p2"]["alert"] == "none").all()
    cd = review.concept_drift
    assert set(cd["batch_id"]) == {"p0", "p1"}
    assert cd.groupby("batch_id")["suspected"].any().to_dict() == {"p0": False, "p1": True}
    # the same check the tracker ran (and alerted on) when the labels arrived
    rec = next(r for r in t.store.records("churn") if r.batch_id == "p1")
    check = concept_drift_check({m: MetricValue.from_dict({"name": m, **v})
                                 for m, v in rec.metadata["estimated_metrics"].items()},
                                {m: MetricValue.from_dict({"name": m, **v}) for m, v in rec.metrics.items()})
    assert set(cd[(cd["batch_id"] == "p1") & cd["suspected"]]["metric"]) == set(check.metrics)
    assert "concept_drift_suspected" in set(t.store.alerts("churn")["alert_type"])
    html = review.estimates_html()
    assert "Labels pending: 3 batches" in html and "concept drift suspected" in html and "1 of 2 batches" in html
    summary = review.to_dict()
    json.dumps(summary, allow_nan=False)
    assert {e["batch_id"] for e in summary["estimates"]} == {"p2", "p3", "p4"}
    assert {e["batch_id"] for e in summary["concept_drift"]} == {"p0", "p1"}


def test_trend_chart_draws_pending_estimates_dashed_with_band(history):
    t, db, cfg = history
    review = weekly_context(db, cfg, as_of=AS_OF, days=7).models[0]
    spec = review.charts[0].to_dict()
    layers = spec["layer"]
    dashed = [lay for lay in layers if isinstance(lay.get("mark"), dict) and lay["mark"].get("type") == "line"
              and lay["mark"].get("strokeDash") == [5, 3]]
    assert len(dashed) == 1
    legend = dashed[0]["encoding"]["color"]
    assert legend["scale"]["domain"] == ["estimate, labels pending"] and legend["legend"]["symbolDash"] == [5, 3]
    pts = next(lay for lay in layers if lay.get("name") == "estimate_points")
    data = spec["datasets"][pts["data"]["name"]] if "name" in pts.get("data", {}) else None
    data = data if data is not None else spec["datasets"][spec["data"]["name"]] if "data" in spec else None
    # the estimate points are exactly the pending batches (completed ones show realized values)
    metric = spec["title"]["text"].split(" — ")[0]
    pending = {r.timestamp: r.metadata["estimated_metrics"][metric]["value"]
               for r in t.store.records("churn", include_pending=True) if r.labels_pending}
    values = sorted(d["value"] for d in data)
    assert values == pytest.approx(sorted(pending.values()), abs=1e-12)
    bands = [lay for lay in layers if isinstance(lay.get("mark"), dict) and lay["mark"].get("type") == "area"
             and lay["encoding"].get("color", {}).get("scale", {}).get("domain") == ["estimate 95 % interval"]]
    assert len(bands) == 1
    # realized points are labelled batches only: no pending batch among them
    series = next(lay for lay in layers if lay.get("name") == "series_points")
    realized = spec["datasets"][series["data"]["name"]] if "data" in series else spec["datasets"][spec["data"]["name"]]
    assert len(realized) == 10  # 8 labelled + 2 completed


def test_window_estimate_of_merged_pending_states_is_the_estimate_of_the_window(history):
    """Daily points (several segments) estimate the merged prediction states, as windows of
    realized values merge: equal to estimate() of the concatenated pending rows' states."""
    from perfkit.metrics.state import merge_dicts_to_state, state_from_dict
    from perfkit.report._build import estimate_points

    t, _, _ = history
    pending = [r for r in t.store.records("churn", include_pending=True) if r.labels_pending]
    pts = estimate_points(t, pending, "accuracy", "1D")
    base = state_from_dict(t.store.get_baseline("churn").state)
    day = pts.iloc[-1]
    recs = [r for r in pending if r.timestamp.date() == day["timestamp"].date()]
    ref = estimate(merge_dicts_to_state([r.state for r in recs]), base)["accuracy"]
    assert day["value"] == pytest.approx(ref.value, abs=1e-12)
    assert day["n"] == sum(r.sample_count for r in recs)


def test_metric_chart_estimates_are_validated_and_optional():
    import pandas as pd

    ts = pd.date_range("2026-01-05", periods=3, freq="D", tz="UTC")
    df = pd.DataFrame({"timestamp": ts, "value": [0.9, 0.8, 0.7]})
    plain = metric_chart(df, metric="accuracy").to_dict()
    assert not any(lay.get("name") == "estimate_points" for lay in plain["layer"])
    with pytest.raises(Exception, match="estimates"):
        metric_chart(df, metric="accuracy", estimates=pd.DataFrame({"value": [0.5]}))


def test_json_report_has_estimates_next_to_realized_and_follows_the_schema(history):
    jsonschema = pytest.importorskip("jsonschema")
    t, _, _ = history
    # the report's period ends now: move the as-of clock by asking for a long enough window
    days = (datetime.now(UTC) - AS_OF).days + 8
    doc = t.generate_performance_report(days=days)
    schema = json.loads((resources.files("perfkit") / "report_schema.json").read_text())
    jsonschema.validate(doc, schema)
    rows = {e["batch_id"]: e for e in doc["summary"]["estimates"]}
    assert set(rows) == {"p0", "p1", "p2", "p3", "p4"}
    assert rows["p2"]["labels_pending"] and rows["p2"]["realized"] is None
    assert rows["p0"]["realized"]["accuracy"] is not None
    assert {"estimated_performance_degradation", "concept_drift_suspected"} <= {a["alert_type"] for a in doc["alerts"]}
    # an entry that breaks the documented shape is refused
    bad = json.loads(json.dumps(doc))
    bad["summary"]["estimates"][0]["estimated"]["accuracy"] = {"ci_lower": 0.1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
