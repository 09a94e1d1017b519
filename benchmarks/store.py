"""Benchmark the SQLite history store.

1. The cost of appending one batch record (median over 500 appends) with a realistic
   metric state (``compute_state(...).to_dict()`` of a 1,000-row binary batch when the
   metric core is importable, else a synthetic state of similar size).
2. Reading a year of hourly records (8,760) into ``history()`` and merging their states
   into weekly windows with ``perfkit.metrics.merge_state_dicts`` (when importable).

Targets: append < 5 ms; year read + weekly merge < 1 s.

Run: ``.venv/bin/python benchmarks/store.py [--hours 8760] [--appends 500]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from perfkit.store import BatchRecord, Store

START = datetime(2024, 1, 1, tzinfo=UTC)


def make_states(n_distinct: int = 24) -> tuple[list[dict], object | None]:
    """Return a few realistic state dicts and ``merge_state_dicts`` (or None)."""
    try:
        import numpy as np

        from perfkit.metrics import compute_state, merge_state_dicts
    except ImportError:
        synthetic = {
            "kind": "synthetic",
            "confusion": [[400, 100], [80, 420]],
            "hist_pos": [i % 7 for i in range(500)],
            "hist_neg": [i % 5 for i in range(500)],
        }
        return [synthetic] * n_distinct, None
    rng = np.random.default_rng(0)
    states = []
    for _ in range(n_distinct):
        y_true = rng.integers(0, 2, 1000)
        proba = np.clip(y_true * 0.3 + rng.random(1000) * 0.7, 0, 1)
        states.append(
            compute_state(y_true, (proba > 0.5).astype(int), proba, task="binary").to_dict()
        )
    return states, merge_state_dicts


def record(i: int, state: dict, model: str = "churn") -> BatchRecord:
    value = 0.8 + (i % 10) / 100
    return BatchRecord(
        model=model,
        timestamp=START + timedelta(hours=i),
        task="binary",
        state=state,
        metrics={
            name: {"value": value, "ci_lower": value - 0.02, "ci_upper": value + 0.02,
                   "se": 0.01, "reason": None}
            for name in ("accuracy", "precision", "recall", "f1", "roc_auc")
        },
        sample_count=1000,
        batch_id=f"hour-{i:06d}",
        performance_score=value,
        metadata={"source": "benchmark"},
    )


def bench_append(store: Store, states: list[dict], n: int) -> list[float]:
    timings = []
    for i in range(n):
        rec = record(i, states[i % len(states)], model="append-bench")
        began = time.perf_counter()
        store.append(rec)
        timings.append(time.perf_counter() - began)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--appends", type=int, default=500)
    args = parser.parse_args()

    states, merge_state_dicts = make_states()
    state_kb = statistics.mean(len(json.dumps(s)) for s in states) / 1024
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        with Store(url) as store:
            timings = bench_append(store, states, args.appends)
            median_ms = statistics.median(timings) * 1000
            p95_ms = sorted(timings)[int(0.95 * len(timings))] * 1000
            print(f"state size: {state_kb:.1f} KB (JSON)")
            print(f"append one batch record: median {median_ms:.2f} ms, p95 {p95_ms:.2f} ms "
                  f"over {args.appends} appends (target < 5 ms) "
                  f"{'OK' if median_ms < 5 else 'SLOW'}")

            began = time.perf_counter()
            for i in range(args.hours):
                store.append(record(i, states[i % len(states)]))
            fill = time.perf_counter() - began
            print(f"filled {args.hours} hourly records in {fill:.1f} s")

        # a fresh Store, as a report job would open it
        with Store(url) as store:
            cpu = time.process_time()
            began = time.perf_counter()
            history = store.history("churn")
            t_history = time.perf_counter() - began
            print(f"history(): {len(history)} rows x {history.shape[1]} columns "
                  f"in {t_history * 1000:.0f} ms (cpu {(time.process_time() - cpu) * 1000:.0f} ms)")
            if merge_state_dicts is None:
                print("perfkit.metrics.merge_state_dicts not importable: weekly merge skipped")
                return
            cpu = time.process_time()
            began = time.perf_counter()
            rows = store.records("churn", include_pending=False)
            t_read = time.perf_counter() - began
            cpu_read = time.process_time() - cpu
            weeks: dict[int, list[dict]] = {}
            for rec in rows:
                weeks.setdefault((rec.timestamp - START).days // 7, []).append(rec.state)
            cpu = time.process_time()
            began = time.perf_counter()
            merged = {week: merge_state_dicts(group) for week, group in weeks.items()}
            t_merge = time.perf_counter() - began
            cpu_merge = time.process_time() - cpu
            total = t_history + t_read + t_merge
            print(f"records() with states: {t_read * 1000:.0f} ms (cpu {cpu_read * 1000:.0f} ms); "
                  f"merge into {len(merged)} weekly windows: {t_merge * 1000:.0f} ms "
                  f"(cpu {cpu_merge * 1000:.0f} ms)")
            print(f"year read + weekly merge: {total * 1000:.0f} ms (target < 1000 ms) "
                  f"{'OK' if total < 1 else 'SLOW'}")
            began = time.perf_counter()
            for week in sorted(weeks):
                store.window_state("churn", start=START + timedelta(weeks=week),
                                   end=START + timedelta(weeks=week + 1))
            print(f"same via 53 window_state() queries: "
                  f"{(time.perf_counter() - began) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
