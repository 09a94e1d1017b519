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

``--scale`` adds the history-scale goals of issue 11 (a year of hourly batches of ~1,100 rows):

3. merging a year of 5-class states at once, ``merge_states`` on in-memory states and
   ``merge_dicts_to_state`` on stored dicts: < 1 s and < 1 GB (peak traced allocation of
   the merge; the size of the states themselves is printed beside it);
4. ``get_performance_summary(days=365)`` for binary, 5-class and regression: < 1 s (trends of
   such long histories are fitted on daily points: see ``analyze_trend(max_points=...)``);
5. a 5-class ``track_performance`` of 10,000 rows on a SQLite store: < 8 ms.

Run: ``.venv/bin/python benchmarks/store.py [--rows 1000] [--hours 8760] [--old] [--scale]``
(``--scale-only`` skips 1-2; ``--merge-hours`` sets how many states 3 merges in memory).
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


# --------------------------------------------------------------------- history scale (issue 11)
SCALE_ROWS = 1100
TASKS = ("binary", "multiclass", "regression")


def scale_batch(task: str, rows: int, rng: np.random.Generator):
    """(y_true, y_pred, y_pred_proba) of one batch: continuous scores, 5 classes for multiclass."""
    if task == "regression":
        y = rng.normal(10, 3, rows)
        return y, y + rng.normal(0, 1, rows), None
    k = 2 if task == "binary" else 5
    y = rng.integers(0, k, rows)
    p = rng.dirichlet(np.ones(k), rows)
    p[np.arange(rows), y] += 0.4
    p /= p.sum(axis=1, keepdims=True)
    return y, p.argmax(axis=1), (p[:, 1] if k == 2 else p)


def scale_templates(task: str, distinct: int, rows: int = SCALE_ROWS, seed: int = 1) -> list[tuple]:
    """``distinct`` (state dict, metrics dict, performance score) of real batches."""
    from perfkit.metrics import evaluate, performance_score

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(distinct):
        n = int(rng.integers(rows - 100, rows + 101))
        state = compute_state(*scale_batch(task, n, rng), task=task)
        report = evaluate(state)
        out.append((state.to_dict(), {k: v.to_dict() for k, v in report.items()},
                    performance_score(report, state.task), state.n))
    return out


def traced(func: Callable[[], Any]) -> tuple[float, Any]:
    """(peak MB allocated during ``func``, result), numpy buffers included."""
    import tracemalloc

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = func()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak / 2**20, result


def bench_year_merge(hours: int, merge_hours: int, repeat: int) -> None:
    from perfkit.metrics.state import merge_dicts_to_state, merge_states, state_from_dict

    templates = scale_templates("multiclass", 96)
    stored = [templates[i % len(templates)][0] for i in range(hours)]
    kb = statistics.mean(len(json.dumps(t[0])) for t in templates) / 1024
    print(f"year of hourly 5-class states: {hours} batches of ~{SCALE_ROWS} rows ({kb:.0f} KB of JSON each)")
    wall, cpu, merged = best_of(repeat, lambda: merge_dicts_to_state(stored))
    peak, _ = traced(lambda: merge_dicts_to_state(stored))
    assert merged.n_batches == hours
    print(f"  merge_dicts_to_state(stored dicts): {ms(wall)} (cpu {ms(cpu)}), peak {peak:.0f} MB "
          f"(target < 1000 ms, < 1024 MB) {'OK' if wall < 1 and peak < 1024 else 'MISSED'}")
    mb, states = traced(lambda: [state_from_dict(stored[i]) for i in range(merge_hours)])
    wall, cpu, merged = best_of(repeat, lambda: merge_states(states))
    peak, _ = traced(lambda: merge_states(states))
    assert merged.n_batches == merge_hours
    print(f"  merge_states({merge_hours} in-memory states, {mb:.0f} MB held): {ms(wall)} (cpu {ms(cpu)}), "
          f"peak {peak:.0f} MB (target < 1000 ms, < 1024 MB) {'OK' if wall < 1 and peak < 1024 else 'MISSED'}")


def fill_task(url: str, task: str, hours: int, templates: list[tuple], end: datetime) -> None:
    """``hours`` hourly records of model ``task`` ending at ``end`` (one transaction), and a baseline."""
    from perfkit.metrics.state import merge_dicts_to_state

    now = datetime.now(UTC)
    start = end - timedelta(hours=hours - 1)
    values = []
    for i in range(hours):
        state, metrics, score, n = templates[i % len(templates)]
        rec = BatchRecord(model=task, timestamp=start + timedelta(hours=i), task=state["task"], state=state,
                          metrics=metrics, sample_count=n, batch_id=f"h{i:06d}", performance_score=score)
        values.append(_batch_row(rec, now))
    with Store(url) as store:
        with store.engine.begin() as conn:
            conn.execute(batches.insert(), values)
        base = merge_dicts_to_state([t[0] for t in templates[:5]])
        from perfkit.metrics import evaluate

        store.set_baseline(task, base.to_dict(), {k: v.to_dict() for k, v in evaluate(base).items()},
                           source="reference_data", sample_count=base.n)


def bench_summary(tmp: str, hours: int, repeat: int) -> None:
    from perfkit import ModelPerformanceTracker

    url = f"sqlite:///{Path(tmp) / 'summary.db'}"
    end = datetime.now(UTC) - timedelta(minutes=1)
    for task in TASKS:
        fill_task(url, task, hours, scale_templates(task, 48), end)
    for task in TASKS:
        tracker = ModelPerformanceTracker(store=url, model=task)
        wall, cpu, summary = best_of(repeat, lambda: tracker.get_performance_summary(days=365))  # noqa: B023
        assert summary["labelled_records"] == hours, summary["labelled_records"]
        perf = summary["performance_trend"]
        points = f"{perf['n_points']} {perf.get('aggregation') or 'batch'} points"
        print(f"get_performance_summary(days=365), {task:10s} {hours} batches: {ms(wall)} (cpu {ms(cpu)}; "
              f"target < 1000 ms) {'OK' if wall < 1 else 'MISSED'}; trends fitted on {points}")
        tracker.close()


def bench_track(tmp: str, rows: int, calls: int) -> None:
    from perfkit import ModelPerformanceTracker

    rng = np.random.default_rng(5)
    tracker = ModelPerformanceTracker(store=f"sqlite:///{Path(tmp) / 'track.db'}", model="mc")
    tracker.set_baseline(*scale_batch("multiclass", rows, rng))
    data = [scale_batch("multiclass", rows, rng) for _ in range(8)]
    for d in data[:3]:
        tracker.track_performance(*d)
    times, cpus = [], []
    for i in range(calls):
        c, w = time.process_time(), time.perf_counter()
        tracker.track_performance(*data[i % len(data)])
        times.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    med = statistics.median(times)
    print(f"5-class track_performance of {rows} rows: median {med * 1000:.1f} ms (cpu "
          f"{statistics.median(cpus) * 1000:.1f} ms, {calls} calls; target < 8 ms) {'OK' if med < 0.008 else 'MISSED'}")
    tracker.close()
    from perfkit.metrics import evaluate

    def median_ms(func: Callable[[int], Any]) -> float:
        out = []
        for i in range(calls):
            t = time.perf_counter()
            func(i)
            out.append(time.perf_counter() - t)
        return statistics.median(out) * 1000

    states = [compute_state(*d) for d in data]
    parts = {"state": median_ms(lambda i: compute_state(*data[i % len(data)])),
             "evaluate": median_ms(lambda i: evaluate(states[i % len(states)])),
             "state.to_dict": median_ms(lambda i: states[i % len(states)].to_dict())}
    rest = med * 1000 - sum(parts.values())
    print("  split (medians): " + ", ".join(f"{k} {v:.1f} ms" for k, v in parts.items())
          + f", rest (decision, store reads, write) {rest:.1f} ms")




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows per hourly batch")
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old", action="store_true",
                        help="also time the old path (records() + merge_state_dicts)")
    parser.add_argument("--scale", action="store_true", help="also run the history-scale goals (issue 11)")
    parser.add_argument("--scale-only", action="store_true", help="run only the history-scale goals")
    parser.add_argument("--merge-hours", type=int, default=None,
                        help="states merge_states merges in memory (default: --hours)")
    parser.add_argument("--track-only", action="store_true",
                        help="run only the 5-class track_performance measurement (10,000 rows, 40 calls)")
    args = parser.parse_args()
    if args.track_only:
        import os

        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        with tempfile.TemporaryDirectory() as tmp:
            bench_track(tmp, 10_000, 40)
        return
    if args.scale or args.scale_only:
        import os
        import subprocess

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"load average {load:.1f} on {os.cpu_count()} cores "
              f"({subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()})")
        bench_year_merge(args.hours, args.merge_hours or args.hours, args.repeat)
        with tempfile.TemporaryDirectory() as tmp:
            bench_track(tmp, 10_000, 40)
            bench_summary(tmp, args.hours, args.repeat)
        if args.scale_only:
            return

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
