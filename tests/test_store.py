"""The history store on SQLite files and on a real PostgreSQL server (``store_url``)."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from perfkit.exceptions import (
    InputTypeError,
    RecordNotFoundError,
    SchemaVersionError,
    StoreError,
    ValidationError,
)
from perfkit.store import (
    ALERT_COLUMNS,
    ALL_SEGMENTS,
    BASELINE_COLUMNS,
    HISTORY_COLUMNS,
    METRICS_FRAME_COLUMNS,
    SCHEMA_REVISION,
    BatchRecord,
    Store,
    open_store,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def rec(i: int = 0, **kw) -> BatchRecord:
    values = {
        "model": "churn",
        "timestamp": T0 + timedelta(hours=i),
        "task": "binary",
        "state": {"kind": "confusion", "counts": [i, 1, 2, 3], "n": 6 + i},
        "metrics": {
            "accuracy": {"value": 0.5 + i / 1000, "ci_lower": 0.4, "ci_upper": 0.6, "se": 0.05,
                         "reason": None},
        },
        "sample_count": 6 + i,
        "batch_id": f"b{i:05d}",
    }
    values.update(kw)
    return BatchRecord(**values)


@pytest.fixture
def store(store_url):
    with Store(store_url) as s:
        yield s


def alert(i: int, **kw) -> dict:
    out = {
        "alert_id": f"a{i}",
        "model": "churn",
        "segment": None,
        "metric": "accuracy",
        "alert_type": "threshold",
        "severity": "warning",
        "timestamp": T0 + timedelta(hours=i),
        "batch_id": f"b{i:05d}",
        "message": "accuracy fell",
        "value": 0.5,
    }
    out.update(kw)
    return out


# ----------------------------------------------------------------------------- basics
def test_empty_store_has_schema_and_empty_frames(store):
    assert store.count() == 0
    assert store.models() == []
    assert store.records() == []
    assert list(store.history().columns) == list(HISTORY_COLUMNS)
    assert list(store.metrics_frame().columns) == list(METRICS_FRAME_COLUMNS)
    assert list(store.alerts().columns) == list(ALERT_COLUMNS)
    assert list(store.baselines().columns) == list(BASELINE_COLUMNS)
    assert store.pending_deliveries() == []
    assert store.integrity_check() == []
    with store.engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM perfkit_alembic_version")
        assert version.scalar_one() == SCHEMA_REVISION
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("perfkit_batches")}
    assert "ix_perfkit_batches_model_segment_ts" in indexes


def test_append_get_round_trip_every_field(store):
    r = rec(
        1,
        segment="EU",
        model_version="v2",
        performance_score=0.71,
        metadata={"source": "s3://x", "tags": ["a", "b"], "nested": {"k": 1}},
        state={"counts": [1, 2], "mean": 0.25, "nan": float("nan"), "inf": float("inf"),
               "ninf": float("-inf"), "nested": {"vals": [1.5, None, True]}},
    )
    saved = store.append(r)
    assert saved.id is not None and saved.created_at is not None
    got = store.get("churn", r.batch_id, segment="EU")
    assert got.id == saved.id
    for name in ("model", "timestamp", "task", "metrics", "sample_count", "batch_id",
                 "segment", "model_version", "performance_score", "labels_pending",
                 "metadata"):
        assert getattr(got, name) == getattr(r, name), name
    assert math.isnan(got.state["nan"])
    assert got.state["inf"] == math.inf and got.state["ninf"] == -math.inf
    assert got.state["nested"] == {"vals": [1.5, None, True]}
    assert got.state["counts"] == [1, 2]
    with pytest.raises(RecordNotFoundError):
        store.get("churn", r.batch_id)  # the unsegmented key does not exist
    with pytest.raises(RecordNotFoundError):
        store.get("other", r.batch_id, segment="EU")


def test_non_finite_metrics_become_none_with_reason(store):
    r = rec(metrics={
        "f1": {"value": float("nan"), "ci_lower": None, "ci_upper": None, "se": None,
               "reason": "no positive labels"},
        "mape": {"value": float("inf")},
        "mae": 0.3,
    })
    store.append(r)
    got = store.get("churn", r.batch_id)
    assert got.metrics["f1"] == {"value": None, "ci_lower": None, "ci_upper": None,
                                 "se": None, "reason": "no positive labels"}
    assert got.metrics["mape"]["value"] is None
    assert got.metrics["mape"]["reason"] == "non-finite value: inf"
    assert got.metrics["mae"]["value"] == 0.3
    frame = store.metrics_frame()
    f1 = frame[frame.metric == "f1"].iloc[0]
    assert math.isnan(f1.value) and f1.reason == "no positive labels"


# ----------------------------------------------------------------------------- timestamps
def test_timestamps_utc_in_and_out(store):
    local = datetime(2024, 3, 1, 13, 30, tzinfo=CET)
    r = rec(timestamp=local)
    assert r.timestamp == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    assert r.timestamp.tzinfo is UTC
    store.append(r)
    got = store.get("churn", r.batch_id)
    assert got.timestamp == local and got.timestamp.utcoffset() == timedelta(0)
    assert got.created_at.utcoffset() == timedelta(0)
    frame = store.history()
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-03-01 12:30", tz="UTC")
    # filters in another zone select the same instant
    assert len(store.records(start=datetime(2024, 3, 1, 13, 30, tzinfo=CET))) == 1
    assert len(store.records(end=datetime(2024, 3, 1, 13, 30, tzinfo=CET))) == 0


def test_naive_timestamps_rejected(store):
    with pytest.raises(ValidationError) as info:
        rec(timestamp=datetime(2024, 1, 1))
    assert info.value.parameter == "timestamp"
    with pytest.raises(ValidationError) as info:
        store.records(start=datetime(2024, 1, 1))
    assert info.value.parameter == "start"
    with pytest.raises(ValidationError):
        store.delete_older_than(1, now=datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("task", "ranking", ValidationError),
        ("sample_count", -1, ValidationError),
        ("model", "", ValidationError),
        ("segment", "", ValidationError),
        ("state", [1, 2], InputTypeError),
        ("metrics", {"acc": "high"}, ValidationError),
    ],
)
def test_invalid_records_rejected(field, value, error):
    with pytest.raises(error) as info:
        rec(**{field: value})
    assert info.value.parameter == field


# ----------------------------------------------------------------------------- failures
def test_failing_append_leaves_count_unchanged(store):
    store.append(rec(0))
    store.append(rec(1))
    with pytest.raises(StoreError, match="already in the store"):
        store.append(rec(1, sample_count=99))
    assert store.count() == 2
    assert store.get("churn", "b00001").sample_count == 7
    with pytest.raises(ValidationError):  # not JSON-safe: fails before the database
        store.append(rec(2, state={"s": {1, 2}}))
    with pytest.raises(ValidationError):
        store.append(rec(3, metadata={1: "int key"}))
    assert store.count() == 2
    # the same batch id in another segment or model is fine
    store.append(rec(1, segment="EU"))
    store.append(rec(1, model="fraud"))
    assert store.count() == 4
    assert store.integrity_check() == []


def test_failing_add_alert_is_atomic(store):
    with pytest.raises(StoreError):
        store.add_alert(alert(1), status="suppressed", suppressed_by="missing",
                        channels=["email"])
    assert store.alerts().empty
    assert store.pending_deliveries() == []
    store.add_alert(alert(1), status="pending", channels=["email"])
    with pytest.raises(StoreError):
        store.add_alert(alert(1), status="pending", channels=["slack"])
    assert len(store.alerts()) == 1
    assert store.pending_deliveries() == [(store.alerts().payload.iloc[0], "email")]


# ----------------------------------------------------------------------------- pending labels
def test_pending_then_complete(store):
    ts = T0 + timedelta(days=1)
    pending = store.append(rec(5, timestamp=ts, state={}, metrics={}, labels_pending=True,
                               metadata={"predictions": 6}))
    found = store.find_pending("churn", "b00005")
    assert found is not None and found.id == pending.id and found.labels_pending
    assert store.find_pending("churn", "nope") is None
    assert store.count() == 1
    assert store.records(include_pending=False) == []
    done = store.complete(rec(5, timestamp=ts))
    assert done.id == pending.id and not done.labels_pending
    got = store.get("churn", "b00005")
    assert got.created_at == pending.created_at
    assert got.updated_at >= pending.updated_at
    assert got.state == rec(5).state and got.metrics == rec(5).metrics
    assert store.find_pending("churn", "b00005") is None
    with pytest.raises(StoreError, match="already has labels"):
        store.complete(rec(5, timestamp=ts))
    with pytest.raises(RecordNotFoundError):
        store.complete(rec(6))
    with pytest.raises(ValidationError):
        store.complete(rec(5, labels_pending=True))
    assert store.count() == 1


def test_append_over_pending_completes_it(store):
    pending = store.append(rec(7, labels_pending=True, state={}, metrics={}))
    with pytest.raises(StoreError):  # a second pending record is a duplicate
        store.append(rec(7, labels_pending=True))
    done = store.append(rec(7))
    assert done.id == pending.id and not done.labels_pending
    assert store.count() == 1
    with pytest.raises(StoreError):
        store.append(rec(7))


# ----------------------------------------------------------------------------- queries
def test_records_filters_models_segments(store):
    for i in range(6):
        store.append(rec(i))
        store.append(rec(i, segment="EU"))
        store.append(rec(i, segment="US", model="fraud"))
    assert store.count() == 18
    assert store.count("churn") == 12
    assert store.models() == ["churn", "fraud"]
    assert store.segments("churn") == [None, "EU"]
    assert store.segments("fraud") == ["US"]
    assert len(store.records("churn")) == 12
    assert len(store.records("churn", segment=ALL_SEGMENTS)) == 12
    unseg = store.records("churn", segment=None)
    assert len(unseg) == 6 and {r.segment for r in unseg} == {None}
    eu = store.records("churn", segment="EU", start=T0 + timedelta(hours=2),
                       end=T0 + timedelta(hours=4))
    assert [r.batch_id for r in eu] == ["b00002", "b00003"]
    ts = [r.timestamp for r in store.records()]
    assert ts == sorted(ts)


def test_history_frame(store):
    store.append(rec(0, metrics={"accuracy": 0.5}, performance_score=0.5,
                     metadata={"k": 1}))
    store.append(rec(1, metrics={"accuracy": {"value": 0.6, "ci_lower": 0.5,
                                              "ci_upper": 0.7, "se": 0.05},
                                 "recall": 0.9}, segment="EU", model_version="v1"))
    store.append(rec(2, metrics={"recall": {"value": None, "reason": "no positives"}}))
    frame = store.history("churn")
    assert list(frame.columns) == [*HISTORY_COLUMNS, "accuracy", "accuracy_ci_lower",
                                   "accuracy_ci_upper", "accuracy_se", "recall",
                                   "recall_ci_lower", "recall_ci_upper", "recall_se"]
    assert frame["batch_id"].tolist() == ["b00000", "b00001", "b00002"]
    assert frame["segment"].tolist() == [None, "EU", None]
    assert frame["metadata"].iloc[0] == {"k": 1}
    assert frame["accuracy"].iloc[:2].tolist() == [0.5, 0.6]
    assert math.isnan(frame["accuracy"].iloc[2])
    assert math.isnan(frame["recall"].iloc[0]) and frame["recall"].iloc[1] == 0.9
    assert frame["accuracy_ci_upper"].iloc[1] == 0.7
    assert frame["accuracy"].dtype == "float64"
    assert frame["labels_pending"].tolist() == [False, False, False]
    assert store.history("churn", segment=None)["batch_id"].tolist() == ["b00000", "b00002"]
    tidy = store.metrics_frame("churn")
    assert list(tidy.columns) == list(METRICS_FRAME_COLUMNS)
    assert tidy[["batch_id", "metric"]].values.tolist() == [
        ["b00000", "accuracy"], ["b00001", "accuracy"], ["b00001", "recall"],
        ["b00002", "recall"]]
    assert tidy["reason"].iloc[3] == "no positives"


def test_window_state_merges_labelled_states(store):
    metrics = pytest.importorskip("perfkit.metrics")
    if not hasattr(metrics, "merge_state_dicts"):
        pytest.skip("perfkit.metrics.merge_state_dicts is not available yet")
    import numpy as np

    rng = np.random.default_rng(0)
    states = []
    for i in range(4):
        y_true = rng.integers(0, 2, 50)
        proba = rng.random(50)
        states.append(metrics.compute_state(y_true, (proba > 0.5).astype(int), proba,
                                            task="binary").to_dict())
        store.append(rec(i, state=states[-1]))
    store.append(rec(9, state={}, metrics={}, labels_pending=True))
    assert store.get("churn", "b00000").state == states[0]
    assert store.window_state("churn") == metrics.merge_state_dicts(states)
    assert store.window_state("churn", start=T0 + timedelta(hours=2)) == (
        metrics.merge_state_dicts(states[2:]))
    assert store.window_state("churn", segment="EU") is None


# ----------------------------------------------------------------------------- retention
def test_delete_older_than_batches_and_alerts(store):
    now = T0 + timedelta(days=100)
    for age in (1, 10, 50, 200):
        store.append(rec(age, timestamp=now - timedelta(days=age)))
        store.add_alert(alert(age, timestamp=now - timedelta(days=age)), status="pending",
                        channels=["email"])
    # a recent alert suppressed by an old one keeps existing without the reference
    store.add_alert(alert(999, timestamp=now - timedelta(days=2)), status="suppressed",
                    suppressed_by="a50")
    store.set_baseline("churn", {"n": 1}, {}, source="reference", sample_count=1,
                       created_at=now - timedelta(days=400))
    assert store.delete_older_than(30, now=now) == 2
    assert store.count() == 2
    remaining = store.alerts()
    assert sorted(remaining.alert_id) == ["a1", "a10", "a999"]
    assert remaining.set_index("alert_id").loc["a999", "suppressed_by"] is None
    assert {p["alert_id"] for p, _ in store.pending_deliveries()} == {"a1", "a10"}
    assert store.get_baseline("churn") is not None
    assert store.integrity_check() == []
    with pytest.raises(ValidationError):
        store.delete_older_than(-1)
    assert store.delete_older_than(0) == 2  # default now: everything is older


# ----------------------------------------------------------------------------- baselines
def test_baselines_versioned_with_segment_fallback(store):
    assert store.get_baseline("churn") is None
    v1 = store.set_baseline("churn", {"n": 1}, {"accuracy": 0.9}, source="reference",
                            sample_count=100, model_version="v1")
    v2 = store.set_baseline("churn", {"n": 2, "x": float("nan")}, {"accuracy": 0.8},
                            source="first-weeks", sample_count=200, model_version="v2")
    s1 = store.set_baseline("churn", {"n": 3}, {"accuracy": 0.7}, segment="EU",
                            source="reference", sample_count=50)
    assert (v1, v2, s1) == (1, 2, 1)
    latest = store.get_baseline("churn")
    assert latest.version == 2 and latest.source == "first-weeks"
    assert latest.state["n"] == 2 and math.isnan(latest.state["x"])
    assert latest.metrics["accuracy"]["value"] == 0.8
    assert latest.created_at.utcoffset() == timedelta(0)
    assert store.get_baseline("churn", model_version="v1").version == 1
    eu = store.get_baseline("churn", segment="EU")
    assert eu.segment == "EU" and eu.state == {"n": 3}
    us = store.get_baseline("churn", segment="US")  # no US baseline: the model's one
    assert us.segment is None and us.version == 2
    assert store.get_baseline("fraud") is None
    frame = store.baselines("churn")
    assert list(frame.columns) == list(BASELINE_COLUMNS)
    assert frame[["segment", "version"]].values.tolist() == [[None, 1], [None, 2],
                                                             ["EU", 1]]
    with pytest.raises(ValidationError):
        store.set_baseline("churn", {}, {}, source="", sample_count=1)


# ----------------------------------------------------------------------------- alerts
def test_alert_deliveries_lifecycle(store):
    store.add_alert(alert(1), status="pending", channels=["email", "slack"])
    assert [(p["alert_id"], ch) for p, ch in store.pending_deliveries()] == [
        ("a1", "email"), ("a1", "slack")]
    payload = store.pending_deliveries()[0][0]
    assert payload == alert(1)  # datetimes round-trip in the payload
    store.record_delivery("a1", "email", status="failed", error="smtp timeout")
    store.record_delivery("a1", "slack", status="delivered")
    frame = store.alerts().set_index("alert_id")
    assert frame.loc["a1", "status"] == "failed"
    assert frame.loc["a1", "deliveries"] == {"email": "failed", "slack": "delivered"}
    assert [ch for _, ch in store.pending_deliveries()] == ["email"]
    store.record_delivery("a1", "email", status="delivered")
    assert store.pending_deliveries() == []
    assert store.alerts().status.tolist() == ["delivered"]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT channel, attempts, last_error, delivered_at FROM perfkit_alert_deliveries "
            "ORDER BY channel")).all()
    assert [(r[0], r[1]) for r in rows] == [("email", 2), ("slack", 1)]
    assert all(r[3] is not None for r in rows)
    with pytest.raises(StoreError, match="already delivered"):
        store.record_delivery("a1", "slack", status="delivered")
    with pytest.raises(StoreError, match="already delivered"):
        store.record_delivery("a1", "slack", status="failed")
    with pytest.raises(RecordNotFoundError):
        store.record_delivery("nope", "email", status="delivered")
    with pytest.raises(ValidationError):
        store.record_delivery("a1", "email", status="sent")
    store.record_delivery("a1", "webhook", status="failed", error="500")  # new channel row
    assert store.alerts().deliveries.iloc[0]["webhook"] == "failed"
    assert store.integrity_check() == []


def test_alerts_frame_filters_and_cooldown(store):
    store.add_alert(alert(1), status="recorded")
    store.add_alert(alert(2, segment="EU"), status="pending", channels=["email"])
    store.add_alert(alert(3), status="suppressed", suppressed_by="a1")
    store.add_alert(alert(4, metric=None, alert_type="volume",
                          timestamp=(T0 + timedelta(hours=4)).astimezone(CET).isoformat()),
                    status="recorded")
    frame = store.alerts()
    assert frame.alert_id.tolist() == ["a1", "a2", "a3", "a4"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame.set_index("alert_id").loc["a3", "suppressed_by"] == "a1"
    assert store.alerts(include_suppressed=False).alert_id.tolist() == ["a1", "a2", "a4"]
    assert store.alerts(segment="EU").alert_id.tolist() == ["a2"]
    assert store.alerts(segment=None).alert_id.tolist() == ["a1", "a3", "a4"]
    assert store.alerts(start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=4)
                        ).alert_id.tolist() == ["a2", "a3"]
    # cooldown: latest non-suppressed alert of the key at/after since
    last = store.last_alert("churn", None, "accuracy", "threshold", since=T0)
    assert last["alert_id"] == "a1"
    assert store.last_alert("churn", None, "accuracy", "threshold",
                            since=T0 + timedelta(hours=2)) is None
    assert store.last_alert("churn", "EU", "accuracy", "threshold",
                            since=T0)["alert_id"] == "a2"
    assert store.last_alert("churn", None, None, "volume", since=T0)["alert_id"] == "a4"
    with pytest.raises(ValidationError):
        store.add_alert({"alert_id": "x"}, status="pending")
    with pytest.raises(ValidationError):
        store.add_alert(alert(5), status="sent")
    with pytest.raises(ValidationError):
        store.add_alert(alert(5, timestamp=datetime(2024, 1, 1)), status="pending")


# ----------------------------------------------------------------------------- backup
def _populate(store: Store) -> None:
    for i in range(20):
        store.append(rec(i, segment=None if i % 2 else "EU",
                         state={"i": i, "x": [0.1 * i, float("nan")]},
                         metadata={"when": T0, "i": i}, labels_pending=i == 19))
    store.set_baseline("churn", {"n": 1}, {"accuracy": 0.9}, source="ref", sample_count=10)
    store.set_baseline("churn", {"n": 2}, {"accuracy": 0.8}, source="ref", sample_count=10,
                       segment="EU")
    store.add_alert(alert(1), status="pending", channels=["email", "slack"])
    store.add_alert(alert(2), status="suppressed", suppressed_by="a1")
    store.record_delivery("a1", "email", status="delivered")
    store.record_delivery("a1", "slack", status="failed", error="boom")


def _second_url(store_url, request, tmp_path) -> str:
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'second.db'}"
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    request.addfinalizer(lambda: server.drop_database(name))
    return server.url(name)


@pytest.mark.parametrize("lines", [True, False])
def test_export_import_round_trip(store, store_url, request, tmp_path, lines):
    _populate(store)
    first, second = tmp_path / "one.json", tmp_path / "two.json"
    n = store.export_json(first, lines=lines)
    assert n == 20 + 2 + 2 + 2
    if lines:
        header = json.loads(first.read_text().splitlines()[0])
        assert header["table"] == "_header" and header["schema_revision"] == SCHEMA_REVISION
    with Store(_second_url(store_url, request, tmp_path)) as copy:
        assert copy.import_json(first) == n
        copy.export_json(second, lines=lines)
        assert first.read_bytes() == second.read_bytes()
        assert [repr(r) for r in copy.records()] == [repr(r) for r in store.records()]
        pd.testing.assert_frame_equal(copy.history(), store.history())
        pd.testing.assert_frame_equal(copy.alerts(), store.alerts())
        assert copy.integrity_check() == []
        with pytest.raises(StoreError, match="empty store"):
            copy.import_json(first)
        # ids continue after the imported ones
        assert copy.append(rec(100)).id > max(r.id for r in store.records())
        assert copy.set_baseline("churn", {}, {}, source="ref", sample_count=1) == 2


# ----------------------------------------------------------------------------- schema
def test_newer_schema_revision_is_refused(store_url):
    Store(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE perfkit_alembic_version SET version_num = '9999_future'")
    with pytest.raises(SchemaVersionError) as info:
        Store(store_url)
    assert "9999_future" in str(info.value) and SCHEMA_REVISION in str(info.value)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM perfkit_alembic_version")
    with pytest.raises(SchemaVersionError, match="no schema revision"):
        Store(store_url)
    engine.dispose()


def test_create_false_needs_an_existing_store(store_url, tmp_path):
    with pytest.raises(StoreError):
        Store(store_url, create=False)
    Store(store_url).close()
    with Store(store_url, create=False) as s:
        assert s.count() == 0
    with pytest.raises(StoreError, match="no perfkit store"):
        Store(f"sqlite:///{tmp_path / 'missing' / 'x.db'}", create=False)


def test_default_url_and_sqlite_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store() as store:
        assert (tmp_path / "data" / "performance" / "perfkit.db").exists()
        assert open_store(store) is store
        with store.engine.connect() as conn:
            pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                      for name in ("journal_mode", "synchronous", "busy_timeout",
                                   "foreign_keys")}
    assert pragma == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 20000,
                      "foreign_keys": 1}


def test_bad_urls():
    from perfkit.exceptions import ConfigError

    with pytest.raises(ConfigError):
        Store("mysql://u@h/db")
    with pytest.raises(ConfigError):
        Store("://not a url")
    with pytest.raises(InputTypeError):
        Store(42)


def test_migration_0003_keeps_every_record_and_reads_states_lazily(store_url):
    """0002 -> 0003: on PostgreSQL the states and metrics become ``json`` (text as written),
    on SQLite nothing changes; every record, baseline and merge reads the same before and after
    (rows written as ``jsonb`` too), and records keep their state text until it is used."""
    from alembic import command
    from alembic.config import Config

    from perfkit.metrics import compute_state
    from perfkit.store._common import _migrations_location, _state_text

    states = [compute_state([0, 1, 2, 1, 0], [0, 1, 1, 1, 2], [[.8, .1, .1], [.1, .8, .1], [.2, .5, .3],
                                                              [.1, .7, .2], [.3, .3, .4]]).to_dict()] * 3
    with Store(store_url) as store:
        for i, st in enumerate(states[:2]):
            store.append(rec(i, state=st, task="multiclass"))
        store.set_baseline("churn", states[0], {"accuracy": {"value": 0.6}}, source="ref", sample_count=5)
        with store.engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", _migrations_location())
            config.attributes["connection"] = conn
            command.downgrade(config, "0002_outbox_models")
    engine = sa.create_engine(store_url)
    kinds = "SELECT data_type FROM information_schema.columns WHERE table_name = :t AND column_name = :c"
    if store.dialect == "postgresql":
        with engine.connect() as conn:
            assert conn.execute(sa.text(kinds), {"t": "perfkit_batches", "c": "state"}).scalar() == "jsonb"
    with pytest.raises(SchemaVersionError, match="auto_upgrade=True") if store.dialect == "postgresql" \
            else contextlib.nullcontext():
        Store(store_url).close()
    with Store(store_url, auto_upgrade=True) as store:
        store.append(rec(2, state=states[2], task="multiclass"))  # written as json
        records = store.records("churn")
        assert [_state_text(r) is not None for r in records] == [True] * 3  # lazy on both backends
        assert [r.state for r in records] == states
        assert [r.metrics for r in records] == [rec(i).metrics for i in range(3)]
        from perfkit.metrics import evaluate

        lean, full = store.merged_state(records, for_evaluation=True), store.merged_state(store.records("churn"))
        assert {k: v.value for k, v in evaluate(lean).items()} == {k: v.value for k, v in evaluate(full).items()}
        assert full.n == 15 and full.confusion.sum() == 15
        assert store.get_baseline("churn").state == states[0]
    if store.dialect == "postgresql":
        with engine.connect() as conn:
            for t in ("perfkit_batches", "perfkit_baselines"):
                for c in ("state", "metrics"):
                    assert conn.execute(sa.text(kinds), {"t": t, "c": c}).scalar() == "json", (t, c)
    engine.dispose()
