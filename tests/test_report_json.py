"""The JSON report is valid against its schema, also for NaN, empty and single-record windows."""

from __future__ import annotations

import json
import pathlib
from datetime import UTC, datetime, timedelta

import jsonschema
import numpy as np
import pytest

from perfkit import ModelPerformanceTracker

SCHEMA = json.loads((pathlib.Path(__file__).parents[1] / "perfkit" / "report_schema.json").read_text())
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _valid(doc):
    jsonschema.validate(doc, SCHEMA)
    text = json.dumps(doc, allow_nan=False)  # NaN / inf must not survive
    return json.loads(text)


@pytest.fixture
def tracker(tmp_path):
    return ModelPerformanceTracker(store=tmp_path / "r.db", model="m")


def test_empty_window(tracker, tmp_path):
    doc = _valid(tracker.generate_performance_report(tmp_path / "r.json", days=7, end=T0))
    assert doc["summary"]["total_records"] == 0 and doc["windows"] == []
    assert doc["summary"]["performance_trend"]["trend_direction"] == "insufficient_data"
    assert json.loads((tmp_path / "r.json").read_text()) == doc


def test_single_record_with_undefined_auc(tracker):
    # one class only: AUC is NaN with a reason, the report still validates
    tracker.track_performance([1, 1, 1], [1, 0, 1], [0.9, 0.4, 0.8], classes=[0, 1], timestamp=T0)
    doc = _valid(tracker.generate_performance_report(days=7, end=T0))
    auc = doc["summary"]["latest_metrics"]["roc_auc"]
    assert auc["value"] is None and auc["reason"]
    assert len(doc["windows"]) == 1


def test_full_history_with_alerts_and_drift(tracker):
    rng = np.random.default_rng(0)
    for d in range(20):
        n = 800
        y = rng.integers(0, 2, n)
        acc = 0.9 if d < 12 else 0.7
        yp = np.where(rng.random(n) < acc, y, 1 - y)
        p = np.clip(np.where(yp == 1, 0.55 + 0.45 * rng.random(n), 0.45 * rng.random(n)), 0, 1)
        tracker.track_performance(y, yp, p, timestamp=T0 + timedelta(days=d), segment=["a", "b"][d % 2])
    doc = _valid(tracker.generate_performance_report(days=30, end=T0 + timedelta(days=20)))
    assert doc["summary"]["degradation_summary"]["total_alerts"] > 0
    assert doc["trends"]["accuracy"]["direction"] in {"degrading", "uncertain"}
    assert len(doc["drift"]["batches"]) == 20 and "accuracy" in doc["drift"]["correlation"]
    assert set(doc["summary"]["segments"]) == {"a", "b"}
