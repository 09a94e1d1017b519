"""Benchmark ``perfkit review`` and ``perfkit report`` on a year of hourly batches (issue 14).

Builds (once, cached under ``--workdir``) a SQLite store with a year of hourly batches
(8,760 by default) of one binary model, the segments ``eu``, ``us``, ``apac`` taking turns,
tracked with :meth:`ModelPerformanceTracker.track_performance` (real baselines and alerts; the
``us`` segment degrades in the last three weeks). Then it times:

* ``import perfkit`` in a fresh interpreter (minus the bare interpreter's start-up);
* the phases of the review in this process: **import** (the modules the payload builder uses),
  **load** (open the store, read every record), **analyse** (``weekly_context(charts=False)``,
  warm), **render** (``review_payload`` minus analyse: the charts, HTML tables and each chart's
  static SVG + script), **execute** (papermill, kernel start to stop, the payload already
  written: ``run_notebook(html=False)`` with ``payload_path``) and **export** (``export_html``);
  with ``--profile`` analyse and render also run under cProfile and the top entries are printed.
  ``perfkit review`` runs import + load + analyse + render in a builder process while papermill
  and the kernel start (:mod:`perfkit.report.payload`), so its wall time is not their sum;
* ``perfkit review`` and ``perfkit report`` end to end as the user runs them (subprocesses),
  with the CPU seconds they and their child processes used (on a loaded machine the CPU time
  says more than the wall time), and the size of the HTML.

Targets: review < 8 s, HTML < 2 MB, report < 2 s, import perfkit < 0.5 s. The machine may be
shared: each end-to-end timing is the best of ``--repeat`` runs, printed with the load average.

Run: ``.venv/bin/python benchmarks/review.py [--hours 8760] [--rows 300] [--repeat 2] [--profile]``
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

SEGMENTS = ("eu", "us", "apac")
MODEL = "ranker"
TARGETS = {"review": 8.0, "html_mb": 2.0, "report": 2.0, "import": 0.5}


def build_store(path: Path, hours: int, rows: int, seed: int = 0) -> float:
    """Track ``hours`` hourly batches into a new SQLite store; returns the seconds it took."""
    from perfkit.config import parse_config
    from perfkit.tracker import ModelPerformanceTracker

    path.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours)
    config = parse_config({"model_name": MODEL, "alert_channels": [],
                           "metrics_to_track": ["accuracy", "f1_macro", "roc_auc", "log_loss"]})
    t0 = time.perf_counter()
    with ModelPerformanceTracker(config=config, store=path) as tracker:
        for i in range(hours):
            segment = SEGMENTS[i % len(SEGMENTS)]
            degraded = segment == "us" and i >= hours - 21 * 24
            y = rng.integers(0, 2, rows)
            noise = 0.32 if degraded else 0.22
            p = np.clip(np.where(y == 1, 0.68, 0.32) + rng.normal(0, noise, rows), 0, 1)
            tracker.track_performance(y, (p >= 0.5).astype(int), p, timestamp=start + timedelta(hours=i),
                                      segment=segment, batch_id=f"h{i:05d}")
            if i and i % 1000 == 0:
                print(f"  built {i} / {hours} batches ({time.perf_counter() - t0:.0f} s)", flush=True)
    return time.perf_counter() - t0


def _python(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())
    return time.perf_counter() - t0


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def import_time(repeat: int) -> tuple[float, float]:
    """Best ``import perfkit`` time and the bare interpreter start-up it is measured against."""
    bare = min(_python("pass") for _ in range(repeat + 1))
    full = min(_python("import perfkit") for _ in range(repeat + 1))
    return full - bare, bare


def _profiled(name: str, fn, profile_dir: Path | None):
    """Run ``fn`` (under cProfile when ``profile_dir`` is set); returns (seconds, result)."""
    if profile_dir is None:
        t0 = time.perf_counter()
        result = fn()
        return time.perf_counter() - t0, result
    import cProfile

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    result = prof.runcall(fn)
    took = time.perf_counter() - t0
    prof.dump_stats(str(profile_dir / f"{name}.prof"))
    return took, result


def _top(profile_dir: Path, name: str, n: int = 12) -> None:
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(profile_dir / f"{name}.prof"), stream=buf)
    stats.sort_stats("cumulative").print_stats(r"perfkit|vl_convert|nbconvert|altair/vegalite", n)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip() and ("perfkit" in ln or "{" in ln
                                                                       or "nbconvert" in ln or "altair" in ln)]
    print(f"  cProfile {name} (cumulative s, under the profiler):")
    for ln in lines[:n]:
        parts = ln.split()
        if len(parts) >= 6 and parts[3].replace(".", "").isdigit():
            print(f"    {float(parts[3]):7.2f}  {' '.join(parts[5:])[-90:]}")


def phases(store: Path, out: Path, profile_dir: Path | None = None) -> dict[str, float]:
    """Time the review's phases in this process (see the module docstring).

    ``import`` is the first import of the modules the payload builder uses; ``analyse`` and
    ``render`` are measured warm (after one small review), as the builder runs them after its
    imports: ``render`` = ``review_payload`` (charts, tables, every chart's static SVG + script)
    minus ``weekly_context(charts=False)``.
    """
    from perfkit.report._startup import defer_rfc3987_syntax

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    defer_rfc3987_syntax()  # as perfkit review and its builder do
    import altair  # noqa: F401
    import vl_convert  # noqa: F401

    import perfkit.report.charts
    import perfkit.summary
    import perfkit.tracker  # noqa: F401
    from perfkit.report.html import export_html
    from perfkit.report.payload import write_payload
    from perfkit.report.runner import run_notebook
    from perfkit.report.weekly import review_payload, template_path, weekly_context
    from perfkit.store import Store

    t["import"] = time.perf_counter() - t0
    weekly_context(str(store), charts=False, days=1)  # warm: lazy imports (scipy, statsmodels) and caches
    t0 = time.perf_counter()
    with Store(store, create=False) as s:
        for m in s.models():
            s.records(m)
    t["load"] = time.perf_counter() - t0
    took, _ = _profiled("analyse", lambda: weekly_context(str(store), charts=False), profile_dir)
    t["analyse"] = took

    took, payload = _profiled("render", lambda: review_payload(str(store)), profile_dir)
    t["render"] = max(took - t["analyse"], 0.0)
    payload_path = out / "payload" / "payload.json"
    write_payload(payload_path, payload)
    params = {"store_url": str(store), "config_path": None, "model": None, "segment": None,
              "as_of": None, "days": 7, "show_widgets": False, "payload_path": str(payload_path)}
    t0 = time.perf_counter()
    result = run_notebook(template_path(), out, params, html=False, cell_timeout=600, cwd=out.parent,
                          title="Weekly performance review")
    t["execute"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    export_html(result.notebook_path, out / "weekly_review.html", title="Weekly performance review")
    t["export"] = time.perf_counter() - t0
    return t


CPU: dict[str, float] = {}

#: What ``perfkit report`` imports before it reads the store, as the program does (no garbage
#: collection meanwhile); prints the seconds it took in the interpreter (no start-up or exit).
_REPORT_IMPORTS = ("import gc, time\nt = time.perf_counter()\ngc.disable()\n"
                   "import perfkit.cli, perfkit.config, perfkit.store, perfkit.summary\n"
                   "print(time.perf_counter() - t)")


def _report_imports() -> float:
    out = subprocess.run([sys.executable, "-c", _REPORT_IMPORTS], check=True, env=_env(), capture_output=True,
                         text=True).stdout
    return float(out.split()[-1])


def cli(args: list[str], cwd: Path, expect: int = 0) -> float:
    """Wall seconds of one ``perfkit`` command; its CPU seconds (with its children's) go to CPU."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "perfkit.cli", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if expect == 0:  # the fail-fast mistakes are timed apart
        CPU[args[0]] = min(CPU.get(args[0], math.inf), cpu)
    if proc.returncode != expect:
        raise SystemExit(f"perfkit {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return took


def _load() -> str:
    """The 1/5/15-minute load averages: the machine may be shared, read the timings with them."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=8760, help="hourly batches (default a year: 8760)")
    parser.add_argument("--rows", type=int, default=300, help="rows per batch (default 300)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per end-to-end timing (best is kept)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "perfkit-bench-review"),
                        help="where the store (cached between runs) and the outputs go")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the store even if cached")
    parser.add_argument("--skip-phases", action="store_true", help="only the end-to-end timings")
    parser.add_argument("--profile", action="store_true",
                        help="also run analyse and render under cProfile (<workdir>/*.prof) and print the top entries")
    a = parser.parse_args()

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    store = work / f"year-{a.hours}x{a.rows}.db"
    if a.rebuild or not store.exists():
        print(f"building {a.hours} hourly batches of {a.rows} rows ({', '.join(SEGMENTS)}) into {store} ...")
        built = build_store(store, a.hours, a.rows)
        print(f"built in {built:.1f} s ({built / a.hours * 1000:.1f} ms per tracked batch)")
    else:
        print(f"using the cached store {store} (--rebuild to rebuild)")

    imp, bare = import_time(a.repeat)
    rows = [("import perfkit", imp, TARGETS["import"], f"(interpreter start-up {bare:.2f} s subtracted)")]
    if not a.skip_phases:
        t = phases(store, work / "phases", work if a.profile else None)
        print(f"\nreview phases (this process; execute = kernel start to stop; load average {_load()}):")
        for name in ("import", "load", "analyse", "render", "execute", "export"):
            print(f"  {name:<8} {t[name]:6.2f} s")
        if a.profile:
            _top(work, "analyse")
            _top(work, "render")
    review = min(cli(["review", "--store", str(store), "--output-dir", str(work / "review")], work)
                 for _ in range(a.repeat))
    html_mb = (work / "review" / "weekly_review.html").stat().st_size / 1e6
    report = min(cli(["report", "--store", str(store), "--output", str(work / "report.json")], work)
                 for _ in range(a.repeat))
    report_imports = min(_report_imports() for _ in range(a.repeat))
    print(f"\nperfkit report (best of {a.repeat}; load average {_load()}):")
    print(f"  import   {report_imports:6.2f} s  (the modules the command loads before it reads the store)")
    print(f"  rest     {max(report - report_imports, 0.0):6.2f} s  (interpreter start and exit, read, summary, "
          "daily windows, trends, drift, JSON; numba's first compiled call)")
    print(f"  total    {report:6.2f} s wall, CPU {CPU['report']:.2f} s")
    bad = {
        "review --as-of yesterday": ["review", "--store", str(store), "--as-of", "yesterday"],
        "review --model nope": ["review", "--store", str(store), "--model", "nope"],
        "summary --store /typo/x.db": ["summary", "--store", "/typo/dir/x.db"],
    }
    print("\nmistakes (exit 2, before any kernel; target < 3 s):")
    for name, args in bad.items():
        took = min(cli(args, work, expect=2) for _ in range(a.repeat))
        print(f"  perfkit {name:<28} {took:5.2f} s  {'ok' if took < 3 else 'MISSED'}")
    rows += [("perfkit review", review, TARGETS["review"],
              f"(wall, CLI end to end; CPU {CPU['review']:.1f} s with its builder and kernel)"),
             ("review HTML size", html_mb, TARGETS["html_mb"], "MB"),
             ("perfkit report", report, TARGETS["report"], f"(wall, CLI end to end; CPU {CPU['report']:.1f} s)")]
    print(f"\n{a.hours} hourly batches, {os.cpu_count()} CPUs, best of {a.repeat} (load average {_load()}):")
    print(f"  {'what':<18} {'measured':>9} {'target':>8}  verdict")
    for name, value, target, note in rows:
        unit = "" if "MB" in note else " s"
        verdict = "ok" if value < target else "MISSED"
        print(f"  {name:<18} {value:8.2f}{unit:<2} < {target:g}{unit:<2} {verdict}  {note if unit else ''}")


if __name__ == "__main__":
    main()
