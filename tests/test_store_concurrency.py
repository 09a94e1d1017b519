"""Several processes writing one store at once, and a writer killed mid-write."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from datetime import UTC, datetime, timedelta

from perfkit.store import BatchRecord, Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WORKERS = 4
PER_WORKER = 250


def _record(worker: int, i: int) -> BatchRecord:
    return BatchRecord(
        model="churn",
        timestamp=T0 + timedelta(minutes=i, seconds=worker),
        task="binary",
        state={"kind": "tiny", "worker": worker, "i": i, "counts": [i, worker, 1]},
        metrics={"accuracy": {"value": (i % 100) / 100, "ci_lower": None, "ci_upper": None,
                              "se": None, "reason": None}},
        sample_count=i + 1,
        batch_id=f"w{worker}-{i:06d}",
        segment=None if i % 2 else "EU",
        metadata={"worker": worker},
    )


def _append_worker(url: str, worker: int, n: int, barrier, results) -> None:
    """Child process: open the store (maybe creating it) and append ``n`` records.

    Puts ``(worker, None, seconds)`` or ``(worker, error message, None)`` on ``results``.
    """
    try:
        barrier.wait(120)  # every child has imported perfkit: start together
        began = time.monotonic()
        with Store(url) as store:
            for i in range(n):
                store.append(_record(worker, i))
        results.put((worker, None, time.monotonic() - began))
    except BaseException as exc:
        results.put((worker, f"{type(exc).__name__}: {exc}", None))
        raise


def _append_forever(url: str) -> None:
    """Child process: append until killed."""
    with Store(url) as store:
        i = 0
        while True:
            store.append(_record(9, i))
            i += 1


def test_four_processes_append_1000_records(store_url):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    # The store does not exist yet: all four processes create it at the same time.
    procs = [
        ctx.Process(target=_append_worker, args=(store_url, w, PER_WORKER, barrier, results))
        for w in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=240) for _ in procs)
    for proc in procs:
        proc.join(60)
    assert [error for _, error, _ in outcomes] == [None] * WORKERS
    assert [p.exitcode for p in procs] == [0] * WORKERS
    # the concurrent phase (open + 250 appends per process), process start-up excluded
    assert max(seconds for _, _, seconds in outcomes) < 30
    with Store(store_url) as store:
        assert store.count() == WORKERS * PER_WORKER
        records = store.records()
        assert len({(r.segment, r.batch_id) for r in records}) == WORKERS * PER_WORKER
        assert {r.state["worker"] for r in records} == set(range(WORKERS))
        assert store.integrity_check() == []


def test_killed_writer_leaves_a_whole_store(store_url):
    Store(store_url).close()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_append_forever, args=(store_url,))
    proc.start()
    try:
        with Store(store_url) as watcher:
            deadline = time.monotonic() + 60
            while watcher.count() < 200 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert watcher.count() >= 200, "the writer did not get going"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    with Store(store_url) as store:
        assert store.integrity_check() == []
        n = store.count()
        records = store.records()
        assert len(records) == n >= 200
        for rec in records:
            expected = _record(9, rec.state["i"])
            for field in _FIELDS:
                assert getattr(rec, field) == getattr(expected, field), field
        # raw JSON of every row parses and holds the metrics
        with store.engine.connect() as conn:
            raw = conn.exec_driver_sql(
                "SELECT state, metrics FROM perfkit_batches"
                if store.dialect == "sqlite"
                else "SELECT state::text, metrics::text FROM perfkit_batches"
            ).all()
        assert len(raw) == n
        for state, metrics in raw:
            assert "i" in json.loads(state)
            assert json.loads(metrics)["accuracy"]["value"] is not None
        # and the store keeps working
        store.append(_record(10, 0))
        assert store.count() == n + 1


_FIELDS = ("model", "timestamp", "task", "state", "metrics", "sample_count", "batch_id",
           "segment", "model_version", "performance_score", "labels_pending", "metadata")
