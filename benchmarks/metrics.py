"""perfkit's metric suite (with intervals) against the plain scikit-learn suite.

Usage::

    python benchmarks/metrics.py            # 1e5 and 1e6 rows
    python benchmarks/metrics.py --large    # also 1e7 rows (several GB of RAM, minutes)
    python benchmarks/metrics.py --profile  # where perfkit's time goes at 1e6 rows

Both suites run on the same arrays in the same process; each time is the best of
``--repeat`` runs after a warm-up call (which also compiles perfkit's numba kernels).
Targets at 1e6 rows: >= 15x for binary and 5-class, >= 5x for regression, both for the
metric suite and for the full ``track_performance`` call on a SQLite store (validation,
state, evaluation with intervals, the decision against a baseline, the write transaction).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
from scipy.special import expit, softmax
from sklearn import metrics as skm

from perfkit.metrics import compute_metrics, compute_state, evaluate

TARGETS = {"binary": 15.0, "5-class": 15.0, "regression": 5.0}


def make_data(task: str, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(size=n) * 3 + 10
        return y, y + rng.normal(size=n), None
    k = 2 if task == "binary" else 5
    y = rng.integers(0, k, n)
    if k == 2:
        p = expit(rng.normal(size=n) + 1.5 * y - 0.75)
        return y, (p > 0.5).astype(np.int64), p
    proba = softmax(rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y], axis=1)
    return y, proba.argmax(axis=1), proba


def sklearn_suite(task: str, y, pred, proba) -> None:
    if task == "regression":
        skm.mean_squared_error(y, pred)
        skm.root_mean_squared_error(y, pred)
        skm.mean_absolute_error(y, pred)
        skm.r2_score(y, pred)
        skm.mean_absolute_percentage_error(y, pred)
        np.mean(2 * np.abs(y - pred) / (np.abs(y) + np.abs(pred)))  # sMAPE (no 0/0 here)
        return
    skm.accuracy_score(y, pred)
    skm.precision_score(y, pred, average="macro")
    skm.recall_score(y, pred, average="macro")
    skm.f1_score(y, pred, average="macro")
    if task == "binary":
        skm.roc_auc_score(y, proba)
    else:
        skm.roc_auc_score(y, proba, multi_class="ovr")
    skm.log_loss(y, proba)


def perfkit_suite(task: str, y, pred, proba) -> None:
    compute_metrics(y, pred, proba, task="regression" if task == "regression" else None)


class _Tracked:
    """A tracker on a fresh SQLite file with a baseline: one ``track_performance`` per call."""

    def __init__(self, task: str, directory: str) -> None:
        from perfkit import ModelPerformanceTracker
        from perfkit.config import parse_config

        thresholds = ({"mse_increase": 0.1, "mae_increase": 0.1} if task == "regression"
                      else {"accuracy_drop": 0.05, "f1_drop": 0.05, "auc_drop": 0.05})
        cfg = parse_config({"degradation_thresholds": thresholds, "alert_channels": ["log"],
                            "metrics_to_track": (["mse", "rmse", "mae", "r2", "mape", "smape"] if task == "regression"
                                                 else ["accuracy", "precision_macro", "recall_macro", "f1_macro",
                                                       "roc_auc", "log_loss"])})
        self.tracker = ModelPerformanceTracker(config=cfg, store=f"{directory}/{task}.db", model=task)
        self.kw = {"task": "regression"} if task == "regression" else {}
        y, pred, proba = make_data(task, 20_000, seed=1)
        self.tracker.set_baseline(y, pred, proba, **self.kw)

    def __call__(self, y, pred, proba) -> None:
        self.tracker.track_performance(y, pred, proba, **self.kw)


def best_of(fn: Callable[[], None], repeat: int) -> float:
    fn()  # warm-up (numba compilation, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def in_call_split(tracked: _Tracked, y, pred, proba, calls: int = 15) -> str:
    """Where one ``track_performance`` call spends its time, measured inside the real call
    (the parts overlap with work on other threads: reads, encoding, bootstrap draws): the
    tracker's state, evaluation, decision and write steps wrapped with timers for ``calls``
    calls (best call's parts), the rest is validation, records and delivery."""
    import perfkit.tracker as tracker_module
    from perfkit.store import Store

    parts: dict[str, float] = {}
    patched = [(tracker_module.ModelPerformanceTracker, "_model_state", "state"),
               (tracker_module, "evaluate", "evaluate"), (tracker_module, "assess", "decision"),
               (Store, "write_tracked", "write")]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patched]

    def timed(fn, label):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                parts[label] = parts.get(label, 0.0) + time.perf_counter() - t0
        return run

    best: tuple[float, dict] | None = None
    try:
        for obj, name, label in patched:
            setattr(obj, name, timed(getattr(obj, name), label))
        for _ in range(calls):
            parts.clear()
            t0 = time.perf_counter()
            tracked(y, pred, proba)
            total = time.perf_counter() - t0
            if best is None or total < best[0]:
                best = (total, dict(parts))
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)
    total, got = best
    rest = total - sum(got.values())
    return ("    inside the call: " + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in got.items())
            + f", rest {rest * 1e3:.2f} = {total * 1e3:.2f} ms")


def profile(task: str, n: int, tracked: _Tracked | None = None) -> None:
    """Split perfkit's time: validation + state, evaluation (intervals), and, for the track
    call, the decision (``assess``: tests, family, alerts) and the rest (store reads, the
    write transaction, delivery), each run alone; then the same parts inside the real call
    (:func:`in_call_split`), where the call overlaps some of them with work on other threads."""
    y, pred, proba = make_data(task, n)
    kw = {"task": "regression"} if task == "regression" else {}
    state_t = best_of(lambda: compute_state(y, pred, proba, **kw), 3)
    s = compute_state(y, pred, proba, **kw)
    eval_t = best_of(lambda: evaluate(s), 3)
    line = f"  {task:<10} {n:>10,}  state {state_t * 1e3:8.1f} ms   evaluate {eval_t * 1e3:7.1f} ms"
    if tracked is not None:
        from datetime import UTC, datetime

        from perfkit.analysis import assess

        t = tracked.tracker
        report = evaluate(s, level=t.config.confidence_level)
        base = t.get_baseline(model=t.model)
        names = [m for m in t.config.metrics_to_track if m in report]
        now = datetime.now(UTC)
        decide_t = best_of(lambda: assess(report, base, t.config.detection, model=t.model, timestamp=now,
                                          metrics=names, performance_score=0.9), 5)
        track_t = best_of(lambda: tracked(y, pred, proba), 3)
        rest = track_t - state_t - eval_t - decide_t
        line += (f"   decision {decide_t * 1e3:6.1f} ms   store + rest {rest * 1e3:6.1f} ms"
                 f"   = track {track_t * 1e3:7.1f} ms\n" + in_call_split(tracked, y, pred, proba))
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also run 1e7 rows")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", action="store_true",
                    help="split perfkit's time (state, evaluation, decision, store) at 1e6 rows and 5-class 1e4")
    ap.add_argument("--quick", action="store_true", help="only 1e6 rows (skip 1e5)")
    args = ap.parse_args(argv)
    sizes = ([] if args.quick else [100_000]) + [1_000_000] + ([10_000_000] if args.large else [])
    warnings.simplefilter("ignore")
    import tempfile

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(ratios are measured in the same run; absolute times depend on the load)")
    print(f"{'task':<11}{'rows':>12}{'sklearn s':>12}{'perfkit s':>12}{'speed-up':>10}"
          f"{'track s':>10}{'speed-up':>10}  target (both)")
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in ("binary", "5-class", "regression"):
            tracked = _Tracked(task, tmp)
            for n in sizes:
                y, pred, proba = make_data(task, n)
                t_sk = best_of(lambda: sklearn_suite(task, y, pred, proba), args.repeat)  # noqa: B023
                t_pk = best_of(lambda: perfkit_suite(task, y, pred, proba), args.repeat)  # noqa: B023
                t_tr = best_of(lambda: tracked(y, pred, proba), args.repeat)  # noqa: B023
                ratio, ratio_tr = t_sk / t_pk, t_sk / t_tr
                target = ""
                if n == 1_000_000:
                    ok = min(ratio, ratio_tr) >= TARGETS[task]
                    target = f">= {TARGETS[task]:g}x {'ok' if ok else 'MISSED'}"
                    if not ok:
                        missed.append(task)
                print(f"{task:<11}{n:>12,}{t_sk:>12.4f}{t_pk:>12.4f}{ratio:>9.1f}x{t_tr:>10.4f}{ratio_tr:>9.1f}x"
                      f"  {target}", flush=True)
            tracked.tracker.close()
    if args.profile:
        print("perfkit time split (best of 3; 'store + rest' = track minus the parts):")
        with tempfile.TemporaryDirectory() as tmp:
            for task in ("binary", "5-class", "regression"):
                tracked = _Tracked(task, tmp)
                for n in [x for x in sizes if x >= 1_000_000][:1] + ([10_000] if task == "5-class" else []):
                    profile(task, n, tracked)
                tracked.tracker.close()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
