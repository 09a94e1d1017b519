"""The SQLite tracking statements on the driver connection (``perfkit.store._lean``) write
exactly the rows the SQLAlchemy path writes.

Two real SQLite stores get the same tracking calls (bootstrap baseline, alerts and their
cooldown, a pending batch completed by its labels, a new class, segments, refused calls);
one runs the lean path, the other is forced onto SQLAlchemy Core. Every table is then read
raw (the stored text and integers, not parsed values) and compared; only the wall-clock
columns (``created_at`` ...) and the random alert ids differ, and those are mapped first.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from perfkit import ModelPerformanceTracker
from perfkit.config import parse_config
from perfkit.exceptions import ModelIdentityError, StoreError
from perfkit.store import BatchRecord, Store

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_TABLES = {
    "perfkit_models": "model",
    "perfkit_batches": "id",
    "perfkit_baselines": "id",
    "perfkit_alerts": "timestamp, alert_type, metric, segment",
    "perfkit_alert_deliveries": "alert_id, channel",
}
_CLOCK = ("created_at", "updated_at", "last_attempt_at", "delivered_at", "lease_until", "lease_owner")
_TIME_TEXT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


def _config(**extra):
    return parse_config({"degradation_thresholds": {"accuracy_drop": 0.05, "f1_drop": 0.05, "mse_increase": 0.1},
                         "alert_channels": ["log"], "baseline_batches": 3, "alert_cooldown_hours": 6, **extra})


def _multiclass(rng, n, acc, k=4):
    y = rng.integers(0, k, n)
    yp = np.where(rng.random(n) < acc, y, (y + rng.integers(1, k, n)) % k)
    p = np.full((n, k), 0.1 / (k - 1))
    p[np.arange(n), yp] = 0.9
    return y, yp, p


def _scenario(t: ModelPerformanceTracker) -> list[str]:
    """The same calls on any tracker; returns what each call did (errors included)."""
    rng = np.random.default_rng(5)
    done = []

    def call(**kw):
        try:
            r = t.track_performance(**kw)
            done.append(f"ok {r.batch_id} {len(r.alerts)} {[o.status for o in r.alert_outcomes]}")
        except (StoreError, ModelIdentityError) as exc:
            done.append(f"{type(exc).__name__}")

    for i in range(4):  # the third becomes the bootstrap baseline (written with its batch)
        y, yp, p = _multiclass(rng, 400, 0.9)
        call(y_true=y, y_pred=yp, y_pred_proba=p, timestamp=T0 + timedelta(hours=i), batch_id=f"b{i}",
             metadata={"shift": i, "note": "é ✓"})
    for i in range(4, 7):  # degraded: alerts, then the cooldown suppresses repeats
        y, yp, p = _multiclass(rng, 400, 0.55)
        call(y_true=y, y_pred=yp, y_pred_proba=p, timestamp=T0 + timedelta(hours=i, microseconds=7 * i),
             batch_id=f"b{i}")
    y, yp, p = _multiclass(rng, 300, 0.9)
    call(y_true=None, y_pred=yp, y_pred_proba=p, timestamp=T0 + timedelta(hours=8), batch_id="late")
    call(y_true=y, y_pred=yp, y_pred_proba=p, timestamp=T0 + timedelta(hours=8), batch_id="late")
    call(y_true=y, y_pred=yp, y_pred_proba=p, timestamp=T0 + timedelta(hours=9), batch_id="late")  # duplicate
    y, yp, p = _multiclass(rng, 300, 0.9, k=5)  # a new class grows the identity
    call(y_true=y, y_pred=yp, y_pred_proba=p, timestamp=T0 + timedelta(hours=10), batch_id="grow")
    call(y_true=rng.normal(size=50), y_pred=rng.normal(size=50), task="regression",
         timestamp=T0 + timedelta(hours=11))  # another task: refused
    y, yp, p = _multiclass(rng, 600, 0.6, k=5)
    call(y_true=y, y_pred=yp, y_pred_proba=p, segments=rng.choice(["n", "s"], 600),
         timestamp=datetime(2026, 3, 2, 21, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))), batch_id="seg")
    # another model: regression, a bootstrap baseline and a window
    for i in range(5):
        yt = rng.normal(size=200) * 3
        call(y_true=yt, y_pred=yt + rng.normal(size=200) * (1 + 2 * (i > 3)), task="regression", model="reg",
             timestamp=T0 + timedelta(days=1, hours=i), batch_id=f"r{i}")
    for i, labels in enumerate((["no", "yes"], [0, 1])):  # binary identities: text and integer labels
        y = rng.integers(0, 2, 100)
        call(y_true=np.array(labels)[y], y_pred=np.array(labels)[(y + (rng.random(100) < 0.1)) % 2],
             y_pred_proba=rng.random(100), model=f"bin{i}", timestamp=T0 + timedelta(days=2), batch_id="x")
    return done


def _dump(path) -> dict[str, list[tuple]]:
    """Every row of every table as stored (raw text / numbers), clock columns checked for their
    format and masked, alert ids replaced by their order of appearance."""
    conn = sqlite3.connect(path)
    ids: dict[str, str] = {}
    out = {}
    for table, order in _TABLES.items():
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
        names = [d[0] for d in cur.description]
        rows = []
        for row in cur.fetchall():
            values = []
            for name, v in zip(names, row, strict=True):
                if name in _CLOCK and v is not None:
                    assert name == "lease_owner" or _TIME_TEXT.fullmatch(v), (table, name, v)
                    v = "<clock>"
                values.append((name, type(v).__name__, v))
            rows.append(values)
        out[table] = rows
    for table in ("perfkit_alerts", "perfkit_alert_deliveries"):
        for row in out[table]:
            for _, _, v in row:
                if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{32}|[0-9a-f-]{36}", v):
                    ids.setdefault(v, f"<alert {len(ids)}>")
    conn.close()

    def mask(v):
        if isinstance(v, str):
            for raw, name in ids.items():
                v = v.replace(raw, name)
        return v

    masked = {t: [[(n, k, mask(v)) for n, k, v in row] for row in rows] for t, rows in out.items()}
    masked["perfkit_alert_deliveries"].sort(key=repr)  # ordered by the (masked) alert ids
    return masked


def _run(path, lean: bool) -> list[str]:
    store = Store(f"sqlite:///{path}")
    assert store._lean  # the standard sqlite3 driver: the lean path is the default
    store._lean = lean
    t = ModelPerformanceTracker(store=store, config=_config(), model="m")
    done = _scenario(t)
    t.deliver_pending()
    t.close()
    return done


def test_lean_rows_equal_sqlalchemy_rows(tmp_path):
    lean_done = _run(tmp_path / "lean.db", True)
    core_done = _run(tmp_path / "core.db", False)
    assert lean_done == core_done
    # the scenario does what it claims: alerts, a suppressed one, a refused duplicate and task
    assert any(d.startswith("ok") and "'suppressed'" in d for d in lean_done)
    assert lean_done.count("StoreError") == 1 and lean_done.count("ModelIdentityError") == 1
    lean, core = _dump(tmp_path / "lean.db"), _dump(tmp_path / "core.db")
    assert {t: len(r) for t, r in lean.items()} == {t: len(r) for t, r in core.items()}
    assert len(lean["perfkit_batches"]) == 4 + 3 + 1 + 1 + 3 + 5 + 2
    assert len(lean["perfkit_baselines"]) == 2 and lean["perfkit_alert_deliveries"]
    for table in _TABLES:
        assert lean[table] == core[table], table


def test_lean_reads_equal_sqlalchemy_reads(tmp_path):
    _run(tmp_path / "s.db", True)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    for model in ("m", "reg", "bin0", "bin1", "nobody"):
        for segment in (None, "n", "s"):
            for ts, before_id in ((T0 + timedelta(hours=5), None), (T0 + timedelta(days=2), 3),
                                  (T0 + timedelta(hours=4, microseconds=28), 5)):
                before = BatchRecord(model if model != "nobody" else "x", ts, "binary", state={}, metrics={},
                                     sample_count=1, id=before_id)
                got = []
                for lean in (True, False):
                    store._lean = lean
                    got.append((store.previous_metrics(model, segment=segment, before=before, limit=3),
                                store.model_identity(model), store.has_open_deliveries(["log", "x"]),
                                store.has_open_deliveries([]), store.baseline_key(model, segment=segment)))
                assert got[0] == got[1]
                full = store.get_baseline(model, segment=segment)
                assert got[0][-1] == (None if full is None else (full.id, full.version, full.segment))
    store._lean = True
    assert store.model_identity("m")["classes"] == [0, 1, 2, 3, 4]
    assert store.model_identity("bin1")["positive_label"] == 1  # stored as an SQLite integer
    assert store.model_identity("bin0")["positive_label"] == "yes"
    assert store.previous_metrics("m", segment=None, before=before, limit=3)
    store.close()


def test_lean_transaction_writes_nothing_on_failure(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    t = ModelPerformanceTracker(store=store, config=_config(), model="m")
    rng = np.random.default_rng(1)
    for i in range(3):
        t.track_performance(*_multiclass(rng, 300, 0.9), timestamp=T0 + timedelta(hours=i))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TRIGGER boom BEFORE INSERT ON perfkit_alerts "
                             "BEGIN SELECT RAISE(ABORT, 'alert table is broken'); END")
    before = (store.count(), len(store.alerts()), store.model_identity("m"))
    with pytest.raises(StoreError, match="alert table is broken"):
        t.track_performance(*_multiclass(rng, 300, 0.4, k=5), timestamp=T0 + timedelta(hours=5), batch_id="bad")
    assert (store.count(), len(store.alerts()), store.model_identity("m")) == before
    # the connection went back to the pool outside a transaction: the next call writes
    t.track_performance(*_multiclass(rng, 300, 0.9), timestamp=T0 + timedelta(hours=6), batch_id="next")
    assert store.count() == 4
    t.close()


def test_naive_time_is_refused_as_by_the_column_type(tmp_path):
    from perfkit.store import _lean

    with pytest.raises(ValueError, match="naive"):
        _lean._time(datetime(2026, 1, 1))
    assert _lean._time(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-01 00:00:00.000000"


def test_baseline_key_names_the_baseline_get_baseline_returns(store_url):
    """``Store.baseline_key`` (what the tracker reads before deciding whether to read the whole
    baseline) on both databases: SQLite's lean read and PostgreSQL's SQLAlchemy one."""
    store = Store(store_url)
    assert store.baseline_key("m") is None and store.baseline_key("m", segment="EU") is None
    store.set_baseline("m", {"a": 1}, {"accuracy": 0.9}, source="x", sample_count=10)
    store.set_baseline("m", {"a": 2}, {"accuracy": 0.8}, source="x", sample_count=10)
    store.set_baseline("m", {"a": 3}, {"accuracy": 0.7}, source="x", sample_count=10, segment="US")
    for segment in (None, "EU", "US"):
        b = store.get_baseline("m", segment=segment)
        assert store.baseline_key("m", segment=segment) == (b.id, b.version, b.segment)
    assert store.baseline_key("m", segment="US")[1:] == (1, "US")
    assert store.baseline_key("m", segment="EU")[1:] == (2, None)  # the whole model's, as get_baseline
    store.close()
