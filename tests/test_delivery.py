"""The tracking transaction and the alert outbox: atomic writes, leases, deadline, idempotency.

Real components only: SQLite files and the PostgreSQL server of the test setup, a real
loopback HTTP server counting POSTs per alert id, an SMTP/TCP black hole, real processes
killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import sqlalchemy as sa

import perfkit
from perfkit import ModelPerformanceTracker
from perfkit.alerts import CallbackChannel, EmailChannel, FileChannel, WebhookChannel
from perfkit.alerts.policy import AlertManager
from perfkit.config import PerformanceConfig, load_config
from perfkit.exceptions import ConfigError, StoreError
from perfkit.store import Store
from perfkit.store.schema import alert_deliveries

ROOT = pathlib.Path(perfkit.__file__).resolve().parent.parent
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _data(acc: float, n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < acc, y, 1 - y)
    proba = np.clip(np.where(pred == 1, 0.8, 0.2) + rng.normal(0, 0.05, n), 0.01, 0.99)
    return y, pred, proba


def _config(**changes) -> PerformanceConfig:
    cfg = load_config()
    return cfg.replace(alert_channels=(), alert_cooldown_hours=0,
                       detection=cfg.detection.replace(window_batches=1), **changes)


def _tracker(url: str, channels=(), **changes) -> ModelPerformanceTracker:
    t = ModelPerformanceTracker(store=url, config=_config(**changes), model="m", channels=list(channels))
    return t


def _counts(store: Store) -> tuple[int, int, int]:
    return store.count(), len(store.alerts()), len(store.baselines())


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# --------------------------------------------------------------------------- one transaction
def _break_alert_table(store: Store) -> None:
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON perfkit_alerts "
                "BEGIN SELECT RAISE(ABORT, 'alert table is broken'); END")
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'alert table is broken'; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON perfkit_alerts FOR EACH ROW EXECUTE FUNCTION boom()")


def test_failing_alert_table_writes_nothing(store_url):
    t = _tracker(store_url)
    t.set_baseline(*_data(0.95, seed=1))
    t.track_performance(*_data(0.95, seed=2), timestamp=T0)
    _break_alert_table(t.store)
    before = _counts(t.store)
    with pytest.raises(StoreError, match="alert table is broken"):
        t.track_performance(*_data(0.55, seed=3), timestamp=T0 + timedelta(hours=1), batch_id="bad")
    assert _counts(t.store) == before
    with pytest.raises(StoreError):
        t.store.get("m", "bad")
    t.close()


def test_bootstrap_baseline_is_written_with_its_batch(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    t = _tracker(url, baseline_batches=3)
    for i in range(2):
        t.track_performance(*_data(0.9, seed=i), timestamp=T0 + timedelta(hours=i))
    assert t.store.get_baseline("m") is None
    r = t.track_performance(*_data(0.9, seed=5), timestamp=T0 + timedelta(hours=3))
    b = t.store.get_baseline("m")
    assert b is not None and b.source == "first_3_batches" and b.sample_count == 1200
    assert not r.degradation_analysis.degradation_detected  # part of its own baseline
    r = t.track_performance(*_data(0.55, seed=6), timestamp=T0 + timedelta(hours=4))
    assert r.degradation_analysis.degradation_detected
    t.close()


def test_completion_with_another_row_count_is_refused(tmp_path):
    t = _tracker(f"sqlite:///{tmp_path / 's.db'}")
    y, pred, proba = _data(0.9, n=200)
    t.track_performance(None, pred, proba, batch_id="late", timestamp=T0)
    before = _counts(t.store)
    with pytest.raises(perfkit.exceptions.ValidationError, match="200 rows") as info:
        t.track_performance(y[:50], pred[:50], proba[:50], batch_id="late", timestamp=T0)
    assert info.value.parameter == "y_true"
    assert _counts(t.store) == before and t.store.get("m", "late").labels_pending
    done = t.track_performance(y, pred, proba, batch_id="late", timestamp=T0)
    assert not done.labels_pending and t.store.count() == 1
    t.close()


# --------------------------------------------------------------------------- deadline
def test_hanging_channels_do_not_stall_tracking(tmp_path, blackhole_server):
    """A webhook that never answers and an SMTP server that accepts and never replies."""
    channels = [
        WebhookChannel(blackhole_server.url, timeout=30),
        EmailChannel(blackhole_server.host, blackhole_server.port, sender="p@example.org",
                     recipients="ml@example.org", timeout=30),
    ]
    t = _tracker(f"sqlite:///{tmp_path / 's.db'}", channels, delivery_deadline_seconds=1.0)
    t.set_baseline(*_data(0.95, seed=1))
    began = time.monotonic()
    r = t.track_performance(*_data(0.55, seed=3), timestamp=T0, batch_id="x")
    elapsed = time.monotonic() - began
    assert elapsed < 1.0 + 0.5, elapsed
    assert t.store.get("m", "x").sample_count == 400
    assert r.alerts and {o.status for o in r.alert_outcomes} == {"pending"}
    deliveries = t.store.alerts("m").deliveries.tolist()
    assert all(set(d) == {"webhook", "email"} and set(d.values()) == {"pending"} for d in deliveries)
    # the next call does not wait longer either (backlog included)
    began = time.monotonic()
    t.track_performance(*_data(0.95, seed=4), timestamp=T0 + timedelta(hours=1))
    assert time.monotonic() - began < 1.0 + 0.5
    t.close()


def test_trickling_webhook_is_bounded_by_its_timeout():
    """A server sending one header byte every 0.3 s cannot hold a 1 s webhook for longer."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
            if stop.is_set():
                break
            try:
                conn.send(bytes([ch]))
            except OSError:
                break
            time.sleep(0.3)
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    ch = WebhookChannel(f"http://127.0.0.1:{srv.getsockname()[1]}/hook", timeout=1.0)
    began = time.monotonic()
    result = ch.deliver(perfkit.alerts.Alert(model="m", alert_type="low_performance", severity="minor"))
    elapsed = time.monotonic() - began
    stop.set()
    srv.close()
    assert result.status == "failed" and "timed out" in result.error
    assert elapsed < 1.0 + 0.5, elapsed


# --------------------------------------------------------------------------- idempotency keys
def test_idempotency_key_and_message_id(http_server, smtp_server):
    alert = perfkit.alerts.Alert(model="m", alert_type="low_performance", severity="minor")
    assert WebhookChannel(http_server.url + "/h").deliver(alert).ok
    assert WebhookChannel(http_server.url + "/h").deliver(alert).ok
    keys = [r.headers.get("Idempotency-Key") for r in http_server.requests]
    assert keys == [alert.alert_id, alert.alert_id]
    email = EmailChannel(smtp_server.host, smtp_server.port, sender="p@example.org", recipients="ml@example.org")
    assert email.deliver(alert).ok and email.deliver(alert).ok
    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert ids[0] == ids[1] == f"<{alert.alert_id}@example.org>"


# --------------------------------------------------------------------------- secrets
@pytest.mark.parametrize("url", [
    "http://hooks.example.org/T000/SECRETTOKEN with space",
    "http://hooks.example.org:SECRETTOKEN/x",
    "http://[hooks.example.org/SECRETTOKEN",
    "http://hooks.example.org/T0\n00/SECRETTOKEN",
])
def test_malformed_webhook_url_is_never_shown(url, caplog):
    with pytest.raises(ConfigError) as info:
        WebhookChannel(url)
    assert "SECRETTOKEN" not in str(info.value)


def test_webhook_token_never_in_errors_store_or_logs(tmp_path, caplog):
    channels = [WebhookChannel("http://user:SECRETPASS@127.0.0.1:1/T000/SECRETTOKEN?key=SECRETKEY", timeout=2)]
    t = _tracker(f"sqlite:///{tmp_path / 's.db'}", channels)
    t.set_baseline(*_data(0.95, seed=1))
    with caplog.at_level("DEBUG", logger="perfkit"):
        r = t.track_performance(*_data(0.55, seed=3), timestamp=T0)
        t.deliver_pending()
    assert r.alerts and all(o.status == "failed" for o in r.alert_outcomes)
    with t.store.engine.connect() as conn:
        errors = [e for (e,) in conn.execute(sa.select(alert_deliveries.c.last_error))]
    texts = [*errors, caplog.text, *(d.error or "" for o in r.alert_outcomes for d in o.deliveries)]
    assert errors and all(e for e in errors)
    for secret in ("SECRETTOKEN", "SECRETPASS", "SECRETKEY", "T000"):
        assert not any(secret in text for text in texts), secret
    t.close()


def test_store_url_password_is_masked():
    with pytest.raises(StoreError) as info:
        Store("postgresql+psycopg://bob:SECRETPASS@127.0.0.1:1/db")
    assert "SECRETPASS" not in str(info.value) and "bob:***@" in str(info.value)


# --------------------------------------------------------------------------- leases
class _CountingServer:
    """Loopback HTTP server counting POSTs per Idempotency-Key; each answer takes 50 ms."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.bodies: Counter[str] = Counter()
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(0.05)
                with lock:
                    owner.keys[self.headers.get("Idempotency-Key")] += 1
                    owner.bodies[json.loads(body)["alert_id"]] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hook/TOKEN"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


_RETRY_SCRIPT = textwrap.dedent("""
    import pathlib, sys, time
    from perfkit.alerts import WebhookChannel
    from perfkit.alerts.policy import AlertManager
    from perfkit.store import Store
    url, hook, go = sys.argv[1:4]
    store = Store(url)
    manager = AlertManager(store, [WebhookChannel(hook, timeout=10)])
    while not pathlib.Path(go).exists():
        time.sleep(0.01)
    results = manager.retry_pending()
    print(sum(r.status == "delivered" for r in results))
""")


def test_two_processes_retrying_30_failed_deliveries_send_each_once(store_url, tmp_path):
    store = Store(store_url)
    for i in range(30):
        alert = {"alert_id": f"a{i:02d}", "model": "m", "alert_type": "low_performance", "severity": "minor",
                 "timestamp": T0 + timedelta(minutes=i)}
        store.add_alert(alert, status="pending", channels=["webhook"])
        store.record_delivery(f"a{i:02d}", "webhook", status="failed", error="HTTP 500")
    server = _CountingServer()
    script, go = tmp_path / "retry.py", tmp_path / "go"
    script.write_text(_RETRY_SCRIPT)
    try:
        procs = [subprocess.Popen([sys.executable, str(script), store_url, server.url, str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
                 for _ in range(2)]
        time.sleep(0.5)
        go.touch()
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        server.stop()
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    delivered = [int(o.strip()) for o, _ in outs]
    assert sum(delivered) == 30
    assert sum(server.keys.values()) == 30 and set(server.keys.values()) == {1}
    assert server.keys == server.bodies and len(server.keys) == 30
    frame = store.alerts()
    assert set(frame.status) == {"delivered"}
    assert store.pending_deliveries() == []
    store.close()


def test_a_claimed_delivery_is_not_claimed_twice(store_url):
    store = Store(store_url)
    store.add_alert({"alert_id": "a", "model": "m", "alert_type": "low_performance", "severity": "minor",
                     "timestamp": T0}, status="pending", channels=["webhook", "file"])
    first = store.claim_deliveries(["webhook", "file"], owner="p1", lease_seconds=60)
    assert [(c.alert_id, c.channel) for c in first] == [("a", "file"), ("a", "webhook")]
    assert store.claim_deliveries(["webhook", "file"], owner="p2", lease_seconds=60) == []
    assert store.record_claimed(first[0], status="delivered")
    assert store.claim_deliveries(["file"], owner="p2", lease_seconds=60) == []
    store.close()


def test_expired_lease_is_reclaimed_and_reported(store_url, caplog):
    store = Store(store_url)
    store.add_alert({"alert_id": "a", "model": "m", "alert_type": "low_performance", "severity": "minor",
                     "timestamp": T0}, status="pending", channels=["webhook"])
    (claim,) = store.claim_deliveries(["webhook"], owner="crashed", lease_seconds=0.2)
    time.sleep(0.3)
    with caplog.at_level("WARNING", logger="perfkit"):
        (again,) = store.claim_deliveries(["webhook"], owner="p2", lease_seconds=60)
    assert again.orphaned and again.attempt == 2 and "never recorded" in caplog.text
    assert not store.record_claimed(claim, status="delivered")  # the crashed owner lost its lease
    assert store.record_claimed(again, status="delivered")
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(alert_deliveries)).one()
    assert (row.status, row.orphaned, row.attempts, row.lease_owner) == ("delivered", 1, 2, None)
    store.close()


# --------------------------------------------------------------------------- SIGKILL
_TRACK_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from perfkit import ModelPerformanceTracker
    from perfkit.alerts import CallbackChannel, FileChannel
    from perfkit.config import load_config

    url, alerts_file, slow_dir = sys.argv[1:4]

    def slow(alert):  # one new file per sending: a kill cannot tear it (a line could be)
        time.sleep(0.03)
        os.makedirs(slow_dir, exist_ok=True)
        with open(os.path.join(slow_dir, f"{alert.alert_id}-{os.urandom(8).hex()}"), "x"):
            pass

    cfg = load_config()
    cfg = cfg.replace(alert_channels=(), alert_cooldown_hours=0, delivery_deadline_seconds=5.0,
                      detection=cfg.detection.replace(window_batches=1))
    t = ModelPerformanceTracker(store=url, config=cfg, model="m",
                                channels=[FileChannel(alerts_file), CallbackChannel(slow, name="slow")])
    t.alert_manager.lease_seconds = 1.0
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    pred = np.where(rng.random(400) < 0.55, y, 1 - y)
    # one batch on a throwaway store first: the kill window (0.05-0.6 s) is for tracking and
    # delivery, not for the first call's lazy imports and compiled kernels (about 1 s)
    warm = ModelPerformanceTracker(store=os.path.join(os.path.dirname(slow_dir), f"warm-{os.getpid()}.db"),
                                   config=cfg, model="m")
    warm.set_baseline(y, y)
    warm.track_performance(y, pred)
    warm.close()
    print("ready", flush=True)
    i = 0
    while True:
        t.track_performance(y, pred, batch_id=f"{os.getpid()}-{i}")
        i += 1
""")


@pytest.mark.slow
def test_sigkill_during_tracking_and_delivery(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    alerts_file, slow_dir = tmp_path / "alerts.jsonl", tmp_path / "slow"
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    t = _tracker(url)
    t.set_baseline(y, y)
    t.close()
    script = tmp_path / "track.py"
    script.write_text(_TRACK_SCRIPT)
    gen = random.Random(7)
    for _ in range(20):
        p = subprocess.Popen([sys.executable, str(script), url, str(alerts_file), str(slow_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        time.sleep(gen.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()
    time.sleep(1.1)  # the killed processes' leases expire
    slow_lines: list[str] = []
    t = ModelPerformanceTracker(store=url, config=_config(), model="m", channels=[
        FileChannel(alerts_file), CallbackChannel(lambda a: slow_lines.append(a.alert_id), name="slow")])
    t.deliver_pending()
    store = t.store
    assert store.integrity_check() == []
    n_batches = store.count("m")
    assert n_batches >= 5
    frame = store.alerts("m")
    per_batch = Counter(frame.batch_id)
    assert len(set(per_batch.values())) == 1 and len(per_batch) == n_batches, per_batch  # all or none
    assert store.pending_deliveries() == [] and set(frame.status) == {"delivered"}
    with store.engine.connect() as conn:
        orphaned = {(r.alert_id, r.channel): r.orphaned for r in conn.execute(sa.select(alert_deliveries))}
    file_ids = Counter(json.loads(line)["alert_id"] for line in alerts_file.read_text().splitlines())
    sent_files = [p.name.split("-")[0] for p in slow_dir.iterdir()] if slow_dir.exists() else []
    slow_ids = Counter(sent_files + slow_lines)
    for channel, sent in (("file", file_ids), ("slow", slow_ids)):
        for alert_id in frame.alert_id:
            assert 1 <= sent[alert_id] <= 1 + orphaned[(alert_id, channel)], (channel, alert_id)
    t.close()


# --------------------------------------------------------------------------- concurrency
_MANY_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from datetime import datetime, timedelta, timezone
    from perfkit import ModelPerformanceTracker
    from perfkit.config import load_config
    url, worker = sys.argv[1], int(sys.argv[2])
    t = ModelPerformanceTracker(store=url, config=load_config().replace(alert_channels=()), model="m")
    rng = np.random.default_rng(worker)
    for i in range(250):
        y = rng.integers(0, 2, 50)
        t.track_performance(y, np.where(rng.random(50) < 0.9, y, 1 - y), batch_id=f"w{worker}-{i}",
                            timestamp=datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=i))
""")


@pytest.mark.slow
def test_four_processes_track_1000_batches(store_url, tmp_path):
    Store(store_url).close()
    script = tmp_path / "many.py"
    script.write_text(_MANY_SCRIPT)
    procs = [subprocess.Popen([sys.executable, str(script), store_url, str(w)], stderr=subprocess.PIPE,
                              text=True, env=_env()) for w in range(4)]
    errors = [p.communicate(timeout=900)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    with Store(store_url) as store:
        assert store.count("m") == 1000
        assert len(store.baselines("m")) == 1
        assert store.integrity_check() == []


def test_alert_manager_deliver_twice_sends_once(tmp_path):
    """Two managers (two trackers) in one process never send one delivery twice."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    for i in range(10):
        store.add_alert({"alert_id": f"a{i}", "model": "m", "alert_type": "low_performance", "severity": "minor",
                         "timestamp": T0}, status="pending", channels=["cb"])
    seen: Counter[str] = Counter()

    def cb(alert):
        time.sleep(0.01)
        seen[alert.alert_id] += 1

    managers = [AlertManager(store, [CallbackChannel(cb, name="cb")]) for _ in range(2)]
    threads = [threading.Thread(target=m.retry_pending) for m in managers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(seen) == [f"a{i}" for i in range(10)] and set(seen.values()) == {1}
    store.close()


def test_two_cli_retry_processes_send_each_once(tmp_path):
    """The same race through ``perfkit alerts retry`` (two processes, 30 failed deliveries)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    for i in range(30):
        store.add_alert({"alert_id": f"c{i:02d}", "model": "m", "alert_type": "low_performance",
                         "severity": "minor", "timestamp": T0 + timedelta(minutes=i)},
                        status="pending", channels=["webhook"])
        store.record_delivery(f"c{i:02d}", "webhook", status="failed", error="HTTP 500")
    store.close()
    server = _CountingServer()
    config = tmp_path / "perfkit.yaml"
    config.write_text("model_performance:\n  alert_channels: [webhook]\n  webhook:\n"
                      f"    url: {server.url}\n    timeout: 10\n")
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "perfkit.cli", "alerts", "retry", "--store", url,
                                   "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=_env()) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        server.stop()
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert sum(server.keys.values()) == 30 and set(server.keys.values()) == {1}, server.keys
    assert "TOKEN" not in "".join(o + e for o, e in outs)
    with Store(url) as store:
        assert set(store.alerts().status) == {"delivered"}


def test_delivery_deadline_from_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_performance:\n  delivery_deadline_seconds: 0.5\n")
    assert load_config(path).delivery_deadline_seconds == 0.5
    assert load_config(None).delivery_deadline_seconds == 2.0
    path.write_text("model_performance:\n  delivery_deadline_seconds: -1\n")
    with pytest.raises(ConfigError, match="delivery_deadline_seconds"):
        load_config(path)
