"""Digests of state JSON, evaluate results and tracked store rows of seeded batches.

Run on two checkouts (e.g. main and a branch) and compare the files: an optimisation must
leave every entry unchanged. Batches: 5-class (with and without a class absent from the
batch), binary and regression, 50 / 1,000 / 10,000 / 250,000 rows, with and without
probabilities, labelled and not; evaluate at the defaults and at level 0.9 / seed 7; a
tracked SQLite store (the lean-store test scenario, then 5 batches per task and size, one
of them degraded) read raw with its clock columns and alert ids masked.

Usage (from the checkout's root)::

    PYTHONPATH=. python benchmarks/identity_dump.py main.json
    diff main.json branch.json
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from scipy.special import expit, softmax

from perfkit import ModelPerformanceTracker
from perfkit.metrics import compute_state, evaluate

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SIZES = (50, 1000, 10_000, 250_000)
_VOLATILE = re.compile(r"[0-9a-f]{32}|[0-9a-f-]{36}|\d{4}-\d\d-\d\dT[0-9:.+]+")


def _lean_test_module():
    path = Path(__file__).resolve().parent.parent / "tests" / "test_store_lean.py"
    spec = importlib.util.spec_from_file_location("_lean_scenario", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batch(task: str, n: int, seed: int, missing: bool = False):
    """(y, y_pred, proba) of a seeded batch; a tenth of the scores rounded (ties)."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(size=n) * 3 + 10
        return y, y + rng.standard_t(3, size=n), None
    k = 2 if task == "binary" else 5
    y = rng.integers(0, k - (1 if missing else 0), n)
    if k == 2:
        p = expit(rng.normal(size=n) * 2 + 1.5 * y - 0.75)
        p[: n // 10] = np.round(p[: n // 10], 2)
        return y, (p > 0.5).astype(np.int64), p
    proba = softmax(rng.normal(size=(n, k)) * 1.3 + 1.5 * np.eye(k)[y], axis=1)
    head = np.round(proba[: n // 10], 3)
    proba[: n // 10] = head / head.sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


def main(out_path: str) -> None:
    out: dict[str, str] = {}

    def put(key: str, text: str) -> None:
        out[key] = f"{hashlib.sha256(text.encode()).hexdigest()} {len(text)}"

    for task in ("multiclass", "binary", "regression"):
        scored = (True, False) if task != "regression" else (False,)
        for n in SIZES:
            for with_p in scored:
                for missing in (False, True) if task == "multiclass" else (False,):
                    for labelled in (True, False) if task != "regression" else (True,):
                        y, yp, p = batch(task, n, n + len(task) + missing, missing)
                        kw = {"task": task, **({"classes": [0, 1, 2, 3, 4]} if missing else {})}
                        key = f"{task} n={n} proba={with_p} missing={missing} labelled={labelled}"
                        s = compute_state(y if labelled else None, yp, p if with_p else None, **kw)
                        put(key + " state", json.dumps(s.to_dict(), separators=(",", ":")))
                        if labelled:
                            put(key + " evaluate", json.dumps(evaluate(s).to_dict(), sort_keys=True, default=str))
                            put(key + " evaluate90", json.dumps(evaluate(s, level=0.9, seed=7).to_dict(),
                                                                sort_keys=True, default=str))
    lean = _lean_test_module()
    with tempfile.TemporaryDirectory() as tmp:
        t = ModelPerformanceTracker(store=f"sqlite:///{tmp}/a.db", config=lean._config(), model="m")
        done = lean._scenario(t)
        i = 0
        for task in ("multiclass", "binary", "regression"):
            for n in SIZES:
                for j in range(5):
                    y, yp, p = batch(task, n, 100 * n + j + len(task), missing=(j == 3 and task == "multiclass"))
                    if j == 4 and task != "regression":  # degraded
                        yp = np.roll(yp, 1)
                    extra = {"classes": [0, 1, 2, 3, 4]} if task == "multiclass" else {}
                    r = t.track_performance(y, yp, p, model=f"{task}{n}", task=task, batch_id=f"t{i}",
                                            timestamp=T0 + timedelta(hours=i), **extra)
                    alerts = [(a.metric, a.alert_type, a.severity) for a in r.alerts]
                    done.append(f"{r.batch_id} {alerts} {json.dumps(r.degradation_analysis.to_dict(), default=str)}")
                    i += 1
        t.deliver_pending()
        t.close()
        put("store calls", _VOLATILE.sub("<x>", json.dumps(done, default=str)))
        for table, rows in lean._dump(f"{tmp}/a.db").items():
            put("store " + table, json.dumps(rows, default=str))
    Path(out_path).write_text(json.dumps(out, indent=1, sort_keys=True))
    print(f"{len(out)} entries written to {out_path}")


if __name__ == "__main__":
    main(sys.argv[1])
