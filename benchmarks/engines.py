"""Benchmark: per-batch states of binary predictions from Parquet, three ways.

Writes ``--rows`` rows (default 10 million) of ``y_true, y_pred, p, batch_id`` in
``--batches`` batches to Parquet in a temp dir, then times, each in its own subprocess so
that peak memory is measured separately:

* ``in-memory``: ``pandas.read_parquet`` + :func:`perfkit.metrics.compute_state` per batch;
* ``duckdb``: :func:`perfkit.engines.compute_states` over the Parquet path (rows stay in DuckDB);
* ``spark``: a local[2] SparkSession reads the Parquet and runs ``compute_states``.

Peak memory is the peak RSS of the worker process (``ru_maxrss``) plus, for Spark, its
JVM child (``RUSAGE_CHILDREN``, or psutil sampling when installed).

Usage::

    python benchmarks/engines.py            # 10 M rows
    python benchmarks/engines.py --rows 1000000 --engines duckdb,in-memory
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


def write_parquet(path: str, rows: int, batches: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    schema = pa.schema([("batch_id", pa.int32()), ("y_true", pa.int8()), ("y_pred", pa.int8()), ("p", pa.float64())])
    with pq.ParquetWriter(os.path.join(path, "preds.parquet"), schema) as w:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            y = rng.integers(0, 2, n, dtype=np.int8)
            p = np.clip(rng.beta(2, 5, n) + 0.35 * y, 0.0, 1.0)
            batch = ((start + np.arange(n)) * batches // rows).astype(np.int32)
            t = pa.table(
                {"batch_id": batch, "y_true": y, "y_pred": (p >= 0.5).astype(np.int8), "p": p},
                schema=schema,
            )
            w.write_table(t, row_group_size=250_000)


def _peak_children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def worker(engine: str, path: str) -> dict:
    """Run one engine in this process and return timings (called in a subprocess)."""
    out: dict = {"engine": engine}
    psutil_peak = [0.0]
    stop = threading.Event()
    try:
        import psutil

        me = psutil.Process()

        def sample() -> None:
            while not stop.is_set():
                try:
                    rss = me.memory_info().rss + sum(
                        c.memory_info().rss for c in me.children(recursive=True)
                    )
                    psutil_peak[0] = max(psutil_peak[0], rss / 2**20)
                except psutil.Error:
                    pass
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
    except ImportError:
        psutil = None

    from perfkit.engines import compute_states
    from perfkit.metrics import compute_state

    files = os.path.join(path, "*.parquet")
    if engine == "in-memory":
        import pandas as pd

        compute_state(np.array([0, 1]), np.array([0, 1]), np.array([0.1, 0.9]))  # JIT warm-up
        t0 = time.perf_counter()
        df = pd.read_parquet(os.path.join(path, "preds.parquet"))
        states = [
            compute_state(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), g["p"].to_numpy(), task="binary",
                          classes=[0, 1])
            for _, g in df.groupby("batch_id", sort=True)
        ]
        out["job_s"] = time.perf_counter() - t0
        out["start_s"] = 0.0
    elif engine == "duckdb":
        import duckdb

        t0 = time.perf_counter()
        con = duckdb.connect()
        out["start_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        states = compute_states(files, task="binary", proba="p", session=con)["state"].tolist()
        out["job_s"] = time.perf_counter() - t0
    else:
        from pyspark.sql import SparkSession

        t0 = time.perf_counter()
        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.driver.memory", "2g")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        spark.range(1).count()
        out["start_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        states = compute_states(spark.read.parquet(path), engine="spark", task="binary", proba="p")[
            "state"
        ].tolist()
        out["job_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compute_states(spark.read.parquet(path), engine="spark", task="binary", proba="p")
        out["warm_job_s"] = time.perf_counter() - t0
        spark.stop()
    stop.set()
    out["n_states"] = len(states)
    out["rows"] = int(sum(s.n for s in states))
    out["confusion_sum"] = int(sum(int(s.confusion.sum()) for s in states))
    out["peak_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_children_mb"] = _peak_children_mb()
    out["peak_psutil_mb"] = psutil_peak[0] if psutil is not None else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--engines", default="in-memory,duckdb,spark")
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    with tempfile.TemporaryDirectory(prefix="perfkit-bench-") as d:
        t0 = time.perf_counter()
        write_parquet(d, args.rows, args.batches)
        size = os.path.getsize(os.path.join(d, "preds.parquet")) / 2**20
        print(f"wrote {args.rows:,} rows in {args.batches} batches ({size:.0f} MB Parquet) "
              f"in {time.perf_counter() - t0:.1f} s")
        results = []
        for engine in args.engines.split(","):
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", engine, d],
                capture_output=True, text=True, check=False,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                print(f"{engine}: failed\n{proc.stderr[-2000:]}")
                continue
            results.append(json.loads(lines[-1]))
    base = next((r["job_s"] for r in results if r["engine"] == "duckdb"), None)
    print()
    print("| engine | session start | job | warm job | vs DuckDB | peak RSS (process + children) | states | rows |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        peak = r["peak_self_mb"] + r["peak_children_mb"]
        if r.get("peak_psutil_mb"):
            peak = max(peak, r["peak_psutil_mb"])
        warm = f"{r['warm_job_s']:.2f} s" if "warm_job_s" in r else "-"
        rel = f"{r['job_s'] / base:.1f}x" if base else "-"
        print(f"| {r['engine']} | {r['start_s']:.2f} s | {r['job_s']:.2f} s | {warm} | {rel} | "
              f"{peak:,.0f} MB | {r['n_states']} | {r['rows']:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
