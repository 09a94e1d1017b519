"""Benchmark: threshold explorer responsiveness on a year of hourly batches (8,760 records).

Builds a SQLite store in a temp dir (batch records written directly with ``Store.append``:
200 distinct synthetic batches re-used with new timestamps, accuracy 0.90 dropping to 0.80
for the last quarter), opens :class:`perfkit.widgets.ThresholdExplorer` on it and times
slider changes (median of 10 updates):

* ``update``: replay + counts + table + chart spec (what every slider change costs),
* ``update + SVG``: the same plus rendering the chart SVG with vl-convert (the widget's
  default ``render_chart=True``; line downsampled to <= 2,000 points).

Run: ``.venv/bin/python benchmarks/explorer.py``
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np


def build_store(path: Path, n: int = 8760, seed: int = 0) -> tuple[str, object]:
    from perfkit.config import parse_config
    from perfkit.metrics import compute_state, evaluate, merge_states, performance_score
    from perfkit.store import BatchRecord, Store

    rng = np.random.default_rng(seed)
    templates = {}
    for kind, acc in (("ok", 0.90), ("bad", 0.80)):
        templates[kind] = []
        for _ in range(100):
            size = 300
            y = rng.integers(0, 2, size)
            pred = np.where(rng.random(size) < acc, y, 1 - y)
            proba = np.where(pred == 1, rng.uniform(0.5, 1, size), rng.uniform(0, 0.5, size))
            state = compute_state(y, pred, proba)
            report = evaluate(state)
            templates[kind].append((state, report, performance_score(report, state.task)))
    url = f"sqlite:///{path}"
    store = Store("sqlite://")  # in memory, then one bulk import into the file
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(n):
        kind = "bad" if i >= 3 * n // 4 else "ok"
        state, report, score = templates[kind][int(rng.integers(0, 100))]
        store.append(BatchRecord("bench", t0 + timedelta(hours=i), state.task, state.to_dict(),
                                 {k: v.to_dict() for k, v in report.items()}, state.n,
                                 batch_id=f"h{i:05d}", performance_score=score))
    base = merge_states([s for s, _, _ in templates["ok"][:20]])
    cfg = parse_config({})
    store.set_baseline("bench", base.to_dict(), {k: v.to_dict() for k, v in evaluate(base).items()},
                       source="reference_data", sample_count=base.n)
    dump = path.with_suffix(".jsonl")
    store.export_json(dump)
    store.close()
    with Store(url) as target:
        target.import_json(dump)
    return url, cfg


def main() -> None:
    import sys

    from perfkit.config import parse_config
    from perfkit.store import Store
    from perfkit.widgets import ThresholdExplorer

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        keep = sys.argv[1] if len(sys.argv) > 1 else None  # optional: re-use a built store
        if keep and Path(keep).exists():
            url, cfg = f"sqlite:///{keep}", parse_config({})
        else:
            url, cfg = build_store(Path(keep) if keep else Path(tmp) / "bench.db")
        print(f"built store with 8760 hourly batches in {time.perf_counter() - t:.1f} s")
        store = Store(url)
        t = time.perf_counter()
        ex = ThresholdExplorer(store, config=cfg, render_chart=False)
        print(f"explorer opened (records + baseline loaded once, first replay) in "
              f"{time.perf_counter() - t:.2f} s; {ex.counts}")
        slider = ex.threshold_sliders["accuracy"]
        for render in (False, True):
            ex.render_chart = render
            if render:
                ex.update()  # vl-convert warm-up (first call in a process takes seconds)
            times = []
            for k in range(10):
                t = time.perf_counter()
                slider.value = round(0.02 + 0.01 * k, 3)
                times.append(time.perf_counter() - t)
            label = "update + SVG" if render else "update"
            print(f"{label:>13}: median {statistics.median(times) * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms over 10 slider changes "
                  f"(last: {ex.counts['fires']} firing, {ex.counts['suppressed']} suppressed)")
        for name, widget, values in (("cooldown", ex.cooldown_slider, [1, 6, 12, 24, 48]),
                                     ("gating", ex.gating_dropdown, ["none", "significance",
                                                                     "minimum_effect"])):
            times = []
            for v in values:
                t = time.perf_counter()
                widget.value = v
                times.append(time.perf_counter() - t)
            print(f"{name:>13}: median {statistics.median(times) * 1000:.0f} ms (with SVG)")
        store.close()


if __name__ == "__main__":
    main()
