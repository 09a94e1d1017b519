"""NannyML side of benchmarks/estimation.py (runs in a SEPARATE benchmark-only venv).

Usage: <nannyml venv python> benchmarks/_nannyml_side.py OUT_DIR [--rows N]
Writes each shipped dataset (reference / analysis + targets) to Parquet, NannyML's CBPE
per-chunk estimates (and realized values) as JSON, and the time of ``estimate`` (fit
excluded) on the analysis rows and on an N-row frame. NannyML is never a perfkit dependency.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import nannyml as nml
import numpy as np

warnings.filterwarnings("ignore")
out = sys.argv[1]
rows = int(sys.argv[sys.argv.index("--rows") + 1]) if "--rows" in sys.argv else 1_000_000

MC_CLASSES = ["highstreet_card", "prepaid_card", "upmarket_card"]
DATASETS = {
    "car_loan": (nml.load_synthetic_car_loan_dataset, "repaid", "y_pred_proba", "classification_binary", 5000),
    "work_from_home": (nml.load_synthetic_binary_classification_dataset, "work_home_actual", "y_pred_proba",
                       "classification_binary", 5000),
    "credit_card": (nml.load_synthetic_multiclass_classification_dataset, "y_true",
                    {c: f"y_pred_proba_{c}" for c in MC_CLASSES}, "classification_multiclass", 6000),
}
BIN_METRICS = ["roc_auc", "accuracy", "f1", "precision", "recall"]
summary = {}
for name, (loader, target, proba, problem, chunk) in DATASETS.items():
    ref, ana, tgt = loader()
    ana = ana.merge(tgt, on="id")
    cols = [target, "y_pred"] + ([proba] if isinstance(proba, str) else list(proba.values()))
    ref[cols].to_parquet(f"{out}/{name}_reference.parquet")
    ana[cols].to_parquet(f"{out}/{name}_analysis.parquet")
    est = nml.CBPE(y_pred_proba=proba, y_pred="y_pred", y_true=target, metrics=BIN_METRICS,
                   chunk_size=chunk, problem_type=problem)
    est.fit(ref)
    res = est.estimate(ana).filter(period="analysis").to_df()
    per = {}
    for m in BIN_METRICS:
        per[m] = {"estimated": res[(m, "value")].tolist(), "realized": res[(m, "realized")].tolist(),
                  "sampling_error": res[(m, "sampling_error")].tolist()}
    no_target = ana.drop(columns=[target])
    t = []
    for _ in range(3):
        t0 = time.perf_counter()
        est.estimate(no_target)
        t.append(time.perf_counter() - t0)
    summary[name] = {"chunk_size": chunk, "metrics": per, "estimate_seconds": min(t), "rows": len(ana)}

# speed on N rows: the car-loan analysis rows repeated, one chunk, fit excluded
ref, ana, _ = nml.load_synthetic_car_loan_dataset()
big = ana.iloc[np.arange(rows) % len(ana)].reset_index(drop=True)
est = nml.CBPE(y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="repaid", metrics=["roc_auc", "accuracy", "f1"],
               chunk_number=1, problem_type="classification_binary")
est.fit(ref)
t = []
for _ in range(2):
    t0 = time.perf_counter()
    est.estimate(big)
    t.append(time.perf_counter() - t0)
summary["speed"] = {"rows": rows, "estimate_seconds": min(t), "nannyml": nml.__version__}
big[["y_pred_proba", "y_pred"]].to_parquet(f"{out}/speed_rows.parquet")
with open(f"{out}/nannyml.json", "w") as f:
    json.dump(summary, f)
