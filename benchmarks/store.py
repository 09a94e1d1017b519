"""Benchmark the SQLite history store (issue 3).

1. Appending one batch record (median and p95 over ``--appends`` appends, wall and CPU).
2. Reading a year of hourly records (8,760) and merging their states into weekly
   windows with :meth:`Store.window_states` (``states()`` + ``merge_dicts_to_state``).

States are real: ``compute_state(...).to_dict()`` of binary batches of ``--rows`` rows
(default 1,000, the top of the 200-1,000 rows an hourly batch has) with continuous
scores, so every score lands in its own histogram bin (the largest states).

Targets: append < 5 ms; year read + weekly merge < 1 s. The machine may be shared: every
timing is the best of ``--repeat`` runs and is printed as wall time and CPU time
(``time.process_time``); the verdict uses wall time.

Run: ``.venv/bin/python benchmarks/store.py [--rows 1000] [--hours 8760] [--old]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from perfkit.metrics import compute_state, merge_state_dicts
from perfkit.store import BatchRecord, Store
from perfkit.store.schema import batches
from perfkit.store.sql import _batch_row

START = datetime(2024, 1, 1, tzinfo=UTC)


def make_states(rows: int, n_distinct: int = 24) -> list[dict]:
    """Return ``n_distinct`` state dicts of binary batches of ``rows`` rows."""
    rng = np.random.default_rng(0)
    states = []
    for _ in range(n_distinct):
        y_true = rng.integers(0, 2, rows)
        proba = np.clip(y_true * 0.3 + rng.random(rows) * 0.7, 0, 1)
        states.append(
            compute_state(y_true, (proba > 0.5).astype(int), proba, task="binary").to_dict()
        )
    return states


def record(i: int, state: dict, rows: int, model: str = "churn") -> BatchRecord:
    """The ``i``-th hourly record of ``model``."""
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
        sample_count=rows,
        batch_id=f"hour-{i:06d}",
        performance_score=value,
        metadata={"source": "benchmark"},
    )


def best_of(repeat: int, func: Callable[[], Any]) -> tuple[float, float, Any]:
    """Return (best wall s, best CPU s, last result) of ``repeat`` calls."""
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        result = func()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def bench_append(url: str, states: list[dict], rows: int, n: int, repeat: int) -> None:
    medians, p95s, cpus = [], [], []
    with Store(url) as store:
        for run in range(repeat):
            timings = []
            cpu = time.process_time()
            for i in range(n):
                rec = record(i, states[i % len(states)], rows, model=f"append-{run}")
                began = time.perf_counter()
                store.append(rec)
                timings.append(time.perf_counter() - began)
            cpus.append((time.process_time() - cpu) / n)
            medians.append(statistics.median(timings))
            p95s.append(sorted(timings)[int(0.95 * n)])
    median = min(medians)
    print(f"append one batch record: median {median * 1000:.2f} ms, "
          f"p95 {min(p95s) * 1000:.2f} ms, cpu {min(cpus) * 1000:.2f} ms per append "
          f"(best of {repeat} x {n}; target < 5 ms) {'OK' if median < 0.005 else 'SLOW'}")


def fill(url: str, states: list[dict], rows: int, hours: int) -> None:
    """Insert ``hours`` hourly records in one transaction (the read side is measured)."""
    now = datetime.now(UTC)
    values = [_batch_row(record(i, states[i % len(states)], rows), now) for i in range(hours)]
    with Store(url) as store, store.engine.begin() as conn:
        conn.execute(batches.insert(), values)


def bench_year(url: str, hours: int, repeat: int, old: bool) -> None:
    from perfkit.metrics.state import merge_dicts_to_state

    with Store(url) as store:  # a fresh Store, as a report job would open it
        wall, cpu, windows = best_of(repeat, lambda: store.window_states("churn", "7D"))
        assert sum(state.n_batches for _, state in windows) == hours
        print(f"year read + weekly merge, window_states('7D'): {len(windows)} windows of "
              f"{hours} records in {ms(wall)} (cpu {ms(cpu)}; target < 1000 ms) "
              f"{'OK' if wall < 1 else 'SLOW'}")
        wall, cpu, states = best_of(repeat, lambda: store.states("churn"))
        print(f"  of which states() read + parse: {ms(wall)} (cpu {ms(cpu)})")
        weeks: dict[int, list[dict]] = {}
        for ts, state in states:
            weeks.setdefault((ts - START).days // 7, []).append(state)
        wall, cpu, _ = best_of(
            repeat, lambda: [merge_dicts_to_state(group) for group in weeks.values()]
        )
        print(f"  of which merge_dicts_to_state per week: {ms(wall)} (cpu {ms(cpu)})")
        if not old:
            return
        wall, cpu, recs = best_of(1, lambda: store.records("churn", include_pending=False))
        print(f"old path: records() {ms(wall)} (cpu {ms(cpu)})", end="")
        weeks = {}
        for rec in recs:
            weeks.setdefault((rec.timestamp - START).days // 7, []).append(rec.state)
        wall, cpu, _ = best_of(1, lambda: [merge_state_dicts(g) for g in weeks.values()])
        print(f" + merge_state_dicts per week {ms(wall)} (cpu {ms(cpu)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows per hourly batch")
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old", action="store_true",
                        help="also time the old path (records() + merge_state_dicts)")
    args = parser.parse_args()

    states = make_states(args.rows)
    state_kb = statistics.mean(len(json.dumps(s)) for s in states) / 1024
    print(f"states: binary, {args.rows} rows per batch, {state_kb:.1f} KB of JSON each")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        bench_append(url, states, args.rows, args.appends, args.repeat)
        fill(url, states, args.rows, args.hours)
        bench_year(url, args.hours, args.repeat, args.old)


if __name__ == "__main__":
    main()
