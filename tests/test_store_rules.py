"""Store rules every backend shares: names, read-only files, plain paths, scoped retention."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from perfkit import ModelPerformanceTracker
from perfkit.config import load_config
from perfkit.exceptions import StoreError, ValidationError
from perfkit.store import BatchRecord, Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _rec(model="m", batch_id="b", **kw) -> BatchRecord:
    return BatchRecord(model, kw.pop("timestamp", T0), "binary", {"tp": 1}, {}, 1, batch_id=batch_id, **kw)


@pytest.mark.parametrize(("field", "value"), [
    ("model", "x" * 256), ("batch_id", "   "), ("segment", "\t"), ("model_version", "v" * 300), ("model", ""),
])
def test_one_name_rule_on_every_backend(store_url, field, value):
    with Store(store_url) as store:
        kwargs = {"model": "m", "batch_id": "b", field: value}
        with pytest.raises(ValidationError, match="non-blank str|at most 255 characters") as info:
            store.append(_rec(**kwargs))
        assert info.value.parameter == field
        assert store.count() == 0
        store.append(_rec(model="x" * 255, batch_id="y" * 255))  # the limit itself is fine everywhere
        assert store.count() == 1


def test_tracker_refuses_blank_batch_id_and_long_names(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    for kwargs in ({"batch_id": "  "}, {"segment": "s" * 256}):
        with pytest.raises(ValidationError):
            t.track_performance([0, 1], [0, 1], **kwargs)
    assert t.store.count() == 0


def test_plain_path_string_is_a_sqlite_file(tmp_path):
    path = str(tmp_path / "plain.db")
    with Store(path) as store:
        store.append(_rec())
    assert os.path.exists(path)
    with Store(path) as store:
        assert store.count() == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_sqlite_store_is_readable(tmp_path):
    _read_only_check(tmp_path)


def _read_only_check(tmp_path):
    path = tmp_path / "ro.db"
    with Store(path) as store:
        store.append(_rec())
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP)
    try:
        with Store(path) as store:
            assert store.read_only and store.count() == 1 and store.get("m", "b").state == {"tp": 1}
            with pytest.raises(StoreError, match="read-only"):
                store.append(_rec(batch_id="c"))
            assert store.count() == 1
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def test_read_only_store_as_an_unprivileged_user(tmp_path):
    """As root (CI containers) drop to ``nobody`` in a child process to check the same."""
    if os.geteuid() != 0:
        pytest.skip("covered by test_read_only_sqlite_store_is_readable")
    import subprocess
    import sys
    import tempfile
    import textwrap
    from pathlib import Path

    import perfkit

    folder = Path(tempfile.mkdtemp())  # pytest's tmp_path is private to root
    os.chmod(folder, 0o755)
    path = folder / "ro.db"
    with Store(path) as store:
        store.append(_rec())
    os.chmod(path, 0o644)
    root = os.path.dirname(os.path.dirname(perfkit.__file__))
    code = textwrap.dedent(f"""
        import os
        import importlib.readers, importlib.resources, sqlite3, alembic.command, alembic.config
        import alembic.runtime.migration, alembic.script
        import sqlalchemy.dialects.sqlite, sqlalchemy.dialects.sqlite.pysqlite
        from perfkit.store import Store
        from perfkit.store._common import _migration_scripts
        from perfkit.exceptions import StoreError
        _migration_scripts().get_current_head()  # the checkout may be private to root (mktemp -d): read it first
        os.setgid(65534); os.setuid(65534)  # the interpreter's own files are private to root: import first
        with Store({str(path)!r}) as s:
            assert s.read_only and s.count() == 1
            try:
                s.set_baseline("m", {{}}, {{}}, source="x", sample_count=1)
            except StoreError as exc:
                assert "read-only" in str(exc)
            else:
                raise AssertionError("wrote to a read-only store")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         env={**os.environ, "PYTHONPATH": root}, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_apply_retention_is_scoped_and_keeps_undelivered_alerts(tmp_path):
    cfg = load_config().replace(alert_channels=())
    now = datetime.now(UTC)
    t = ModelPerformanceTracker(store=tmp_path / "s.db", config=cfg, model="a")
    store = t.store
    for model in ("a", "b"):
        store.append(_rec(model=model, batch_id="old", timestamp=now - timedelta(days=100)))
        store.append(_rec(model=model, batch_id="new", timestamp=now - timedelta(days=1)))
    for alert_id, status in (("sent", "delivered"), ("stuck", "pending")):
        store.add_alert({"alert_id": alert_id, "model": "a", "alert_type": "low_performance", "severity": "minor",
                         "timestamp": now - timedelta(days=100)}, status="pending", channels=["file"])
        if status == "delivered":
            store.record_delivery(alert_id, "file", status="delivered")
    done = t.apply_retention(30)
    assert done == {"batches": 1, "alerts": 1, "undelivered_alerts_kept": 1}
    assert store.count("a") == 1 and store.count("b") == 2
    assert list(store.alerts().alert_id) == ["stuck"]
    assert t.apply_retention(30, all_models=True, keep_undelivered=False) == {
        "batches": 1, "alerts": 1, "undelivered_alerts_kept": 0}
    assert store.count() == 2 and len(store.alerts()) == 0
    t.close()
