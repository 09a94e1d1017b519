"""The ``perfkit`` command.

Subcommands: ``track``, ``summary``, ``report``, ``review``, ``alerts list``,
``alerts retry`` and ``demo``; ``perfkit <command> --help`` describes each one.

Exit codes (stable, for cron and Airflow):

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success
1     unexpected internal error (a bug: rerun with ``--debug`` for the traceback)
2     bad usage or invalid input: unknown option, unreadable file, missing column, bad
      configuration, missing or unreachable store (any perfkit error); ``review`` checks
      its arguments, configuration and store before it starts a kernel; for ``review``
      also: a report cell raised
3     ``review``: a report cell ran longer than ``--cell-timeout``
4     ``review``: the report kernel died
5     ``review``: exporting the HTML failed
6     ``review --fail-on-alerts``: the review period has (non-suppressed) alerts
64    ``review``: the runner refused its arguments (template, output dir)
130   interrupted (Ctrl-C)
====  =====================================================================================

Errors are one line on stderr (``perfkit: error: ...``); ``--debug`` shows the traceback
and DEBUG logs, ``-v`` shows INFO logs. Passwords in store URLs are masked in every message
(``user:***@host``).

Read commands (``summary``, ``report``, ``review``, ``alerts``) never create a store: a
missing one is an error naming the path. The store and configuration are found as in the
library: ``--store`` / ``--config``, else ``$PERFKIT_STORE_URL`` / ``$PERFKIT_CONFIG``, else
``config/main_config.yaml`` of the working directory (``perfkit demo`` writes one), else
``data/performance/perfkit.db``.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
perfkit ...
0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from perfkit._checks import check_days
from perfkit._checks import mask_urls_in_text as mask_urls
from perfkit._json import json_safe
from perfkit.exceptions import PerfkitError, ReportError, ValidationError


class _UsageError(PerfkitError):
    """A command-line usage problem found after parsing (exit 2)."""

__all__ = ["EXIT_CODES", "build_parser", "main", "run"]

logger = logging.getLogger("perfkit")

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Exit code -> meaning (the table of the module docstring).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error (rerun with --debug)",
    2: "bad usage, invalid input/config, missing or unreachable store; review: a report cell raised",
    3: "review: a report cell timed out",
    4: "review: the report kernel died",
    5: "review: HTML export failed",
    6: "review --fail-on-alerts: alerts in the period",
    64: "review: the runner refused its arguments (template, output dir)",
    130: "interrupted",
}

_PROGRESS_MIN_BATCHES = 20

#: True in the ``perfkit`` program (:func:`run`), whose process ends with the command; False
#: when :func:`main` is called by a library user or a test (their collector is left alone).
_AS_PROGRAM = False


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _epilog() -> str:
    lines = ["exit codes:"] + [f"  {code:<4} {text}" for code, text in EXIT_CODES.items()]
    return "\n".join(lines)


def _load_config(args: argparse.Namespace) -> Any:
    import os

    from perfkit.config import load_config

    early = getattr(args, "store", None) or os.environ.get("PERFKIT_STORE_URL")
    if early and getattr(args, "func", None) is not _cmd_track:
        _check_store_path(early)  # before the configuration's (slower) metric checks
    return load_config(args.config)


def _store_url(args: argparse.Namespace, config: Any) -> str:
    return args.store or config.store_url


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite store URL or plain path (None: not a SQLite file)."""
    if "://" not in url:
        return Path(url)
    if not url.lower().startswith("sqlite"):
        return None
    db = url.split("://", 1)[1]
    db = db[1:] if db.startswith("/") else db  # sqlite:///rel or sqlite:////abs
    db = db.split("?", 1)[0]
    if db in ("", ":memory:") or db.startswith("file:"):
        return None
    return Path(db)


def _check_store_path(url: str) -> Path | None:
    path = _sqlite_path(url)
    if path is not None and not path.is_file():
        raise _UsageError(
            f"no perfkit store at {path}: check --store or the config's store_url "
            f"(perfkit track or perfkit demo create one)")
    return path


def _open_existing_store(url: str) -> Any:
    """Open a store for a read command: never create a file, a directory or a schema."""
    path = _check_store_path(url)
    from perfkit.store import Store

    try:
        return Store(path if path is not None and "://" not in url else url, create=False)
    except PerfkitError as exc:
        raise _UsageError(f"cannot open store {mask_urls(url)}: {mask_urls(str(exc))}") from exc


def _tracker(args: argparse.Namespace, *, model: str | None = None, read: bool = False) -> Any:
    """A tracker on the command's store; ``read=True``: the store must already exist."""
    config = _load_config(args)
    url = _store_url(args, config)
    store = _open_existing_store(url) if read else (args.store or None)
    try:
        from perfkit.tracker import ModelPerformanceTracker


        return ModelPerformanceTracker(config=config, store=store, model=model)
    except BaseException:
        if read:
            store.close()
        raise


def _baseline_text(store: Any, config: Any, model: str, segment: str | None) -> str:
    b = store.get_baseline(model, segment=segment)
    n = int(config.baseline_batches)
    if b is not None:
        own = b.segment == segment
        where = "" if own or segment is None else " (the whole model's)"
        if b.source == f"first_{n}_batches" or str(b.source).startswith("first_"):
            k = str(b.source).split("_")[1] if str(b.source).count("_") >= 2 else n
            return f"first {k} batches{where}"
        rows = f", {b.sample_count} rows" if b.sample_count else ""
        return f"explicit ({b.source or 'set_baseline'}{rows}){where}"
    labelled = store.count(model, segment=segment, include_pending=False)
    if labelled < n:
        return f"none yet: {n - labelled} more batches needed"
    return f"none yet: the first {n} batches become it with the next batch"


def _baseline_line(store: Any, config: Any, model: str, segment: Any = "__all__") -> str:
    """One line saying which baseline each segment of ``model`` is compared with."""
    segments = store.segments(model) if segment == "__all__" else [segment]
    groups: dict[str, list[str]] = {}
    for seg in segments or [None]:
        groups.setdefault(_baseline_text(store, config, model, seg), []).append(
            "whole model" if seg is None else str(seg))
    if len(groups) == 1:
        (text, segs), = groups.items()
        return f"baseline: {text}" + ("" if segs == ["whole model"] else f" for {', '.join(segs)}")
    return "baseline: " + "; ".join(f"{', '.join(segs)}: {text}" for text, segs in groups.items())


def _models(store: Any, wanted: str | None) -> list[str]:
    available = store.models()
    if wanted is not None:
        if wanted not in available:
            raise ValidationError(f"model {wanted!r} is not in the store; it has {available}", parameter="model")
        return [wanted]
    return available


def _one_model_of(available: list[str], wanted: str | None) -> str:
    """The one model a command is about: ``wanted`` (it must be in ``available``) or the only one."""
    if wanted is not None:
        if wanted not in available:
            raise ValidationError(f"model {wanted!r} is not in the store; it has {available}", parameter="model")
        return wanted
    if not available:
        raise ValidationError("the store has no model yet (track some batches first)", parameter="model")
    if len(available) > 1:
        raise ValidationError(f"the store has several models {available}: pick one with --model", parameter="model")
    return available[0]


def _positive_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a number of days, got {text!r}") from exc
    try:
        return check_days(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(f"must be a positive number of days, got {text!r}") from exc


def _json_out(obj: Any, output: str | None, *, safe: bool = False) -> None:
    """Write ``obj`` as JSON (``safe``: it is JSON-safe already, no conversion pass)."""
    text = json.dumps(obj if safe else json_safe(obj), indent=2, allow_nan=False)
    if output in (None, "-"):
        sys.stdout.write(text + "\n")
    else:
        from perfkit._files import write_output

        p = write_output(output, text + "\n", "output")  # a directory / unwritable place: a named error
        print(f"wrote {p}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# track
# --------------------------------------------------------------------------------------------
def _read_table(path: Path) -> Any:
    import pandas as pd

    if not path.is_file():
        raise ValidationError(f"{path}: no such file", parameter="file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".gz") or suffix == "":
            return pd.read_csv(path)
    except ImportError as exc:
        raise ValidationError(f"{path}: reading {suffix} needs an extra package: {exc}", parameter="file") from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ValidationError(f"{path}: cannot read it as {suffix.lstrip('.') or 'CSV'}: {exc}",
                              parameter="file") from exc
    raise ValidationError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet", parameter="file")


def _columns(frame: Any, names: Sequence[str | None], path: Path) -> None:
    missing = [n for n in names if n is not None and n not in frame.columns]
    if missing:
        raise ValidationError(f"{path}: column(s) {missing} not found; it has {list(frame.columns)}",
                              parameter="columns")


def _proba_columns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise ValidationError("--proba needs one column or a comma-separated list", parameter="proba")
    return cols


def _batch_time(column: Any, path: Path) -> Any:
    """The time of one batch: the latest value of its ``--timestamp-col`` cells (naive: UTC)."""
    import pandas as pd

    t = pd.to_datetime(column, utc=True, errors="coerce")
    bad = t.isna() & column.notna()
    if bad.any():  # used to be dropped silently
        raise ValidationError(f"{path}: column {column.name!r} has {int(bad.sum())} value(s) that are not times "
                              f"(first: {column[bad].iloc[0]!r}); nothing was tracked", parameter="timestamp_col")
    if t.isna().all():
        raise ValidationError(f"{path}: column {column.name!r} holds no timestamps", parameter="timestamp_col")
    return t.max().to_pydatetime()


def _check_rows(frame: Any, y_true: str | None, y_pred: str | None, proba: list[str] | None, task: str | None,
                path: Path) -> tuple | None:
    """Row-level problems of the whole file (a missing label, a score outside [0, 1] ...), found before
    the first batch is written: a file is tracked whole or not at all. Returns the file's class labels
    (None for regression, or when the file as one batch does not settle them)."""
    from perfkit.exceptions import InputTypeError, LabelError
    from perfkit.metrics._validation import (  # compute_state's checks only
        PreparedClassification,
        prepare,
    )

    scores = None if not proba else frame[proba[0]].to_numpy() if len(proba) == 1 else frame[proba].to_numpy()
    try:  # the whole file as one batch: the same checks as each batch's (300k rows: 5 ms, the state 78 ms)
        prepared = prepare(frame[y_true].to_numpy() if y_true else None, frame[y_pred].to_numpy() if y_pred else None,
                           scores, task=task, classes=None, positive_label=None, proba_tol=1e-4)
    except LabelError:
        return None
    except (ValidationError, InputTypeError) as exc:
        raise type(exc)(f"{path}: {exc}; nothing was tracked", parameter=exc.parameter) from exc
    return tuple(prepared.classes) if isinstance(prepared, PreparedClassification) else None


def _file_classes(tracker: Any, file_classes: tuple | None) -> list | None:
    """The label set to track a multiclass file's batches in: the model's known classes and every
    class of the file (None: leave it to each batch, as for binary and regression files). A batch
    showing two of a file's three classes is then the model's multiclass batch from the first one
    on, and a third class for a binary model is refused at the first batch, before any write."""
    from perfkit.metrics.layout import sorted_labels

    if file_classes is None:
        return None
    ident = tracker.store.model_identity(tracker.model)
    known = list(ident["classes"]) if ident is not None and ident.get("task") != "regression" else []
    union = list(sorted_labels({*known, *file_classes}))
    return union if len(union) > 2 else None


def _cmd_track(args: argparse.Namespace) -> int:
    import pandas as pd

    path = Path(args.file)
    proba = _proba_columns(args.proba)
    if args.engine:
        return _track_engine(args, path, proba)
    frame = _read_table(path)
    y_true = args.y_true if args.y_true and args.y_true.lower() != "none" else None
    _columns(frame, [y_true, args.y_pred, args.batch_col, args.segment_col, args.timestamp_col, *(proba or [])],
             path)
    if args.y_pred is None and proba is None:
        raise ValidationError("give --y-pred and/or --proba", parameter="y_pred")
    if len(frame) == 0:
        raise ValidationError(f"{path}: the file has no rows", parameter="file")
    keys = [c for c in (args.batch_col, args.segment_col) if c]
    groups = list(frame.groupby(keys, sort=False, dropna=False)) if keys else [((), frame)]
    # every check that can fail on the file's rows runs before the first batch is written
    times = [_batch_time(g[args.timestamp_col], path) if args.timestamp_col else None for _, g in groups]
    file_classes = _check_rows(frame, y_true, args.y_pred, proba, args.task, path)
    tracker = _tracker(args, model=args.model)
    n_alerts = 0
    done = 0
    try:
        classes = _file_classes(tracker, file_classes)
        iterator: Any = zip(groups, times, strict=True)
        if len(groups) >= _PROGRESS_MIN_BATCHES and not args.quiet:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(groups), desc="tracking", unit="batch", file=sys.stderr, leave=False)
        for (key, g), ts in iterator:
            key = key if isinstance(key, tuple) else (key,)
            kv = dict(zip(keys, key, strict=True))
            probs = None
            if proba:
                probs = g[proba[0]].to_numpy() if len(proba) == 1 else g[proba].to_numpy()
            segment = kv.get(args.segment_col) if args.segment_col else None
            batch = kv.get(args.batch_col) if args.batch_col else None
            result = tracker.track_performance(
                g[y_true].to_numpy() if y_true else None,
                g[args.y_pred].to_numpy() if args.y_pred else None,
                probs,
                timestamp=ts,
                segment=None if segment is None or pd.isna(segment) else str(segment),
                batch_id=None if batch is None or pd.isna(batch) else str(batch),
                model_version=args.model_version,
                task=args.task,
                classes=classes,
            )
            n_alerts += len(result.alert_outcomes)
            done += 1
        line = _baseline_line(tracker.store, tracker.config, tracker.model)
    except PerfkitError:
        if done:  # say what is in the store: the batches before this one were tracked
            print(f"perfkit: batch {done + 1} of {len(groups)} ({', '.join(f'{k}={v!r}' for k, v in kv.items()) or 'the file'}) "
                  f"was refused; the {done} batch(es) before it were tracked", file=sys.stderr)
        raise
    finally:
        tracker.close()
    print(f"tracked {len(groups)} batch(es) of {len(frame)} rows for model {tracker.model!r}; "
          f"{n_alerts} alert(s)", file=sys.stderr)
    print(line, file=sys.stderr)
    return EXIT_OK


def _track_engine(args: argparse.Namespace, path: Path, proba: list[str] | None) -> int:
    try:
        from perfkit.engines import compute_states
    except ImportError as exc:
        raise ValidationError(f"--engine {args.engine} needs perfkit.engines ({exc}); install perfkit[engines]",
                              parameter="engine") from exc
    if not path.exists():
        raise ValidationError(f"{path}: no such file", parameter="file")
    task = args.task
    if task is None:
        if proba is not None and len(proba) > 1:
            task = "multiclass"
        elif proba is not None:
            task = "binary"
        else:
            raise ValidationError("--engine needs --task (or --proba to infer it)", parameter="task")
    group_by = [c for c in (args.batch_col, args.segment_col) if c]
    y_true = args.y_true if args.y_true and args.y_true.lower() != "none" else None
    frame = compute_states(str(path), engine=args.engine, task=task, y_true=y_true, y_pred=args.y_pred,
                           proba=(proba[0] if proba and len(proba) == 1 else proba), group_by=group_by,
                           time_bucket="1d" if args.timestamp_col else None,
                           timestamp_col=args.timestamp_col or "timestamp")
    tracker = _tracker(args, model=args.model)
    try:
        results = tracker.track_states(frame, timestamp_col="time_bucket", batch_col=args.batch_col or "batch_id",
                                       segment_col=args.segment_col)
    finally:
        tracker.close()
    n_alerts = sum(len(r.alert_outcomes) for r in results)
    print(f"tracked {len(results)} batch state(s) with {args.engine}; {n_alerts} alert(s)", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# summary / report / alerts
# --------------------------------------------------------------------------------------------
def _cmd_summary(args: argparse.Namespace) -> int:
    # a read command: the store and the configuration, no tracker (as perfkit report)
    with _importing():
        config = _load_config(args)
        from perfkit.summary import build_summary

        store = _open_existing_store(_store_url(args, config))
    with store:
        names = _models(store, args.model)
        summaries = [build_summary(store, config, days=args.days, model=m).to_dict() for m in names]
        baselines = {m: _baseline_line(store, config, m) for m in names}
    if args.json:
        _json_out({"days": args.days, "models": summaries}, None)
        return EXIT_OK
    if not summaries:
        print("the store has no model yet")
        return EXIT_OK
    for s in summaries:
        d = s["degradation_summary"]
        print(f"model {s['model']}: {s['labelled_records']} labelled batches, {s['total_samples']} rows "
              f"in the last {args.days:g} days; trend {s['performance_trend'].get('trend_direction')}; "
              f"alerts {d['delivered_or_pending']} (+{d['suppressed']} suppressed)")
        print(f"  {baselines[s['model']]}")
        for name, v in s["window_metrics"].items():
            if v.get("value") is None or name not in s["metric_trends"]:
                continue
            lo, hi = v.get("ci_lower"), v.get("ci_upper")
            ci = f" [{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else ""
            print(f"  {name:<16} {v['value']:.4f}{ci}  trend {s['metric_trends'][name].get('direction')}")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    # a read command: the store and the configuration, no tracker (no alert channels, no
    # decision or delivery code to import)
    with _importing():
        config = _load_config(args)  # a missing store fails here, before the imports below
        from perfkit.summary import build_report

        store = _open_existing_store(_store_url(args, config))
    with store:
        model = _one_model_of(store.models(), args.model)
        report = build_report(store, config, days=args.days, model=model)
    _json_out(report, args.output, safe=True)  # build_report returns JSON-safe values
    return EXIT_OK


def _magnitude(payload: Any) -> dict[str, float | None]:
    """Value, baseline and relative change of an alert (None where the alert has none)."""
    p = payload if isinstance(payload, dict) else {}

    def num(key: str) -> float | None:
        v = p.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None

    return {"value": num("current"), "baseline": num("baseline"), "relative_change": num("relative_change")}


def _cmd_alerts_list(args: argparse.Namespace) -> int:
    # a read command: the store and the configuration, no tracker (as perfkit summary)
    from datetime import UTC, datetime, timedelta

    with _importing():
        config = _load_config(args)
        store = _open_existing_store(_store_url(args, config))
    start = datetime.now(UTC) - timedelta(days=args.days)
    with store:
        names = _models(store, args.model)
        frames = [store.alerts(m, start=start, include_suppressed=args.all) for m in names]
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if args.json:
        rows = [{"alert_id": r.alert_id, "timestamp": pd.Timestamp(r.timestamp).isoformat(), "model": r.model,
                 "segment": r.segment, "metric": r.metric, "alert_type": r.alert_type, "severity": r.severity,
                 "status": r.status, **_magnitude(r.payload), "deliveries": dict(r.deliveries or {})}
                for r in frame.itertuples()]
        _json_out({"days": args.days, "alerts": rows}, None)
        return EXIT_OK
    if not len(frame):
        print(f"no alerts in the last {args.days:g} days")
        return EXIT_OK
    for r in frame.itertuples():
        m = _magnitude(r.payload)
        size = ""
        if m["value"] is not None and m["baseline"] is not None:
            size = f" {m['value']:.4f} vs baseline {m['baseline']:.4f}"
            if m["relative_change"] is not None:
                size += f" ({m['relative_change']:+.1%})"
        print(f"{pd.Timestamp(r.timestamp):%Y-%m-%d %H:%M}  {r.severity:<9} {r.status:<10} {r.model} "
              f"segment={r.segment or '-'} {r.alert_type} {r.metric or ''}{size}".rstrip())
    return EXIT_OK


def _cmd_alerts_retry(args: argparse.Namespace) -> int:
    with _tracker(args, read=True) as tracker:
        pending = len(tracker.store.pending_deliveries())
        delivered = tracker.retry_pending_alerts()
        left = len(tracker.store.pending_deliveries())
    print(f"retried {pending} pending deliveries: {delivered} delivered, {left} still pending")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# review / demo
# --------------------------------------------------------------------------------------------
def _config_file(config: Any) -> str | None:
    source = getattr(config, "source", None)
    return source if source and not source.startswith("<") and Path(source).is_file() else None


def _check_as_of(text: str | None) -> None:
    """``--as-of`` must be an ISO 8601 date or time (checked before any kernel starts)."""
    from datetime import datetime

    if text is None:
        return
    try:
        datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _UsageError(f"--as-of {text!r} is not an ISO 8601 date or time "
                          "(for example 2026-11-30 or 2026-11-30T12:00Z)") from None


def _check_review(args: argparse.Namespace, names_checked: Any = None) -> tuple[Any, str, list[str]]:
    """Validate every review argument, the config and the store before a kernel starts.

    Returns the config, the store URL and one baseline line per reviewed model.
    ``names_checked()`` is called once ``--store``'s model and segment are known good,
    before the (slower) configuration checks.
    """
    _check_as_of(args.as_of)
    if args.segment is not None and not args.segment.strip():
        raise _UsageError("--segment must not be empty")
    import os

    early = args.store or os.environ.get("PERFKIT_STORE_URL")
    store = _open_existing_store(early) if early else None  # model / segment checks first: fast
    try:
        if store is not None:
            _check_names(args, store)
            if names_checked is not None:
                names_checked()
        config = _load_config(args)
        url = _store_url(args, config)
        if store is None:
            store = _open_existing_store(url)
            _check_names(args, store)
        names = [args.model] if args.model is not None else store.models()
        lines = [f"model {m}: " + _baseline_line(store, config, m,
                                                   "__all__" if args.segment is None else args.segment)
                 for m in names]
    finally:
        if store is not None:
            store.close()
    return config, url, lines


def _check_names(args: argparse.Namespace, store: Any) -> None:
    """``--model`` and ``--segment`` must be in the store."""
    available = store.models()
    if args.model is not None and args.model not in available:
        raise _UsageError(f"model {args.model!r} is not in the store {mask_urls(store.url)}; "
                          f"it has {available}")
    names = [args.model] if args.model is not None else available
    if args.segment is not None:
        known = {s for m in names for s in store.segments(m)}
        if args.segment not in known:
            raise _UsageError(f"segment {args.segment!r} is not in the store for "
                              f"{'model ' + repr(args.model) if args.model else 'any model'}; "
                              f"it has {sorted(s for s in known if s is not None)}")


def _early_builder(args: argparse.Namespace) -> Any:
    """Start the review's payload builder before the configuration checks when ``--store`` names
    the store (and its model / segment were found in it): its imports and analysis overlap those
    checks, papermill's import and the kernel's start. Stopped at once if a check fails."""
    import os

    from perfkit.config import DEFAULT_CONFIG_PATH

    config_path = args.config or os.environ.get("PERFKIT_CONFIG") or (
        str(DEFAULT_CONFIG_PATH) if DEFAULT_CONFIG_PATH.exists() else None)
    from perfkit.report._review_run import start_payload_builder

    return start_payload_builder(args.store, model=args.model, segment=args.segment, as_of=args.as_of,
                                 days=args.days, config_path=config_path)


def _cmd_review(args: argparse.Namespace) -> int:
    started: list[Any] = []

    def start() -> None:
        if args.store:
            started.append(_early_builder(args))

    try:
        config, store, baselines = _check_review(args, start)
    except BaseException:
        for builder in started:
            builder.close()
        raise
    builder = started[0] if started else None
    from perfkit.report._review_run import run_weekly_review
    from perfkit.report.runner import ExitCode

    output_dir = args.output_dir or config.storage.reports_dir
    for line in baselines:
        print(line)
    try:
        result = run_weekly_review(store, output_dir, model=args.model, segment=args.segment, as_of=args.as_of,
                                   days=args.days, config_path=args.config or _config_file(config),
                                   cell_timeout=args.cell_timeout, fail_on_alerts=args.fail_on_alerts,
                                   payload_builder=builder)
    except ReportError as exc:
        code = int(getattr(exc, "exit_code", ExitCode.CELL_ERROR))
        where = getattr(exc, "html_path", None) or getattr(exc, "notebook_path", None)
        print(f"perfkit: error: {mask_urls(str(exc))}" + (f" (partial report: {where})" if where else ""),
              file=sys.stderr)
        return code
    except ValidationError as exc:
        print(f"perfkit: error: {mask_urls(str(exc))}", file=sys.stderr)
        return int(getattr(exc, "exit_code", ExitCode.BAD_USAGE))
    n = (result.summary or {}).get("alerts", 0)
    print(f"weekly review: {result.html_path} ({n} alert(s) in the period, {result.duration_s:.1f} s)")
    if result.exit_code == ExitCode.ALERTS_PRESENT:
        print(f"perfkit: {n} alert(s) in the period (exit {int(result.exit_code)})", file=sys.stderr)
    return int(result.exit_code)


def _cmd_demo(args: argparse.Namespace) -> int:
    from perfkit.demo import project_config_path, run_demo

    output_dir = args.output_dir or "data/performance"
    config_path = args.config or (project_config_path(output_dir) if args.output_dir is None else None)
    print(f"perfkit demo: simulating {args.weeks} weeks of production traffic into {output_dir} ...",
          file=sys.stderr)
    result = run_demo(output_dir, weeks=args.weeks, rows=(args.min_rows, args.max_rows), seed=args.seed,
                      report=not args.no_report, progress=not args.quiet, config_path=config_path)
    print(f"tracked {result.n_batches} batches ({result.n_alerts} alerts) into {mask_urls(result.store_url)}")
    print(f"config:         {result.config_path}"
          + ("  (found by every perfkit command here)" if result.discovered else ""))
    if result.json_report:
        print(f"JSON report:    {result.json_report}")
    if result.html_path:
        print(f"weekly review:  {result.html_path}")
        print(f"open it:        {result.html_path.as_uri()}")
    print(f"done in {result.duration_s:.1f} s")
    print("next, try:")
    prog = _program()
    for command in result.next_commands:
        print(f"  {prog}{command.removeprefix('perfkit')}")
    return EXIT_OK


def _program() -> str:
    """How to call ``perfkit`` again: the plain name when it is on PATH, else the path used."""
    import os
    import shutil

    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is None or argv0.name != "perfkit":
        return "perfkit"
    found = shutil.which("perfkit")
    if found and Path(found).resolve() == argv0.resolve():
        return "perfkit"
    return os.path.relpath(argv0) if not argv0.is_absolute() else str(argv0)


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="URL_OR_PATH",
                   help="history store: SQLAlchemy URL or SQLite file (default: the config's store_url)")
    p.add_argument("--config", metavar="YAML",
                   help="perfkit configuration (default: $PERFKIT_CONFIG or config/main_config.yaml)")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``perfkit`` argument parser."""
    from perfkit import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="perfkit", formatter_class=fmt,
        description="Model-performance monitoring: track batches, summarize, report, review.",
        epilog=_epilog(),
    )
    parser.add_argument("--version", action="version", version=f"perfkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="INFO logs on stderr")
    parser.add_argument("--debug", action="store_true", help="DEBUG logs and tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("track", help="track a CSV or Parquet file of predictions", formatter_class=fmt,
                       description="Track a CSV or Parquet file of predictions: one batch per distinct "
                                   "--batch-col value (and --segment-col value), else one batch.",
                       epilog=_epilog())
    p.add_argument("file", help="CSV or Parquet file")
    p.add_argument("--y-true", default="y_true", help="label column (default y_true; 'none': labels pending)")
    p.add_argument("--y-pred", default=None, help="predicted label / value column")
    p.add_argument("--proba", default=None,
                   help="probability column (binary) or comma-separated columns in sorted class order")
    p.add_argument("--batch-col", default=None, help="batch id column (one batch per value)")
    p.add_argument("--segment-col", default=None, help="segment column")
    p.add_argument("--timestamp-col", default=None, help="time column (batch time = its latest value; UTC if naive)")
    p.add_argument("--task", choices=("binary", "multiclass", "regression"), default=None,
                   help="task (default: inferred)")
    p.add_argument("--model", default=None, help="model name (default: the config's model_name)")
    p.add_argument("--model-version", default=None)
    p.add_argument("--engine", choices=("duckdb", "spark"), default=None,
                   help="compute states inside DuckDB / Spark (needs perfkit[engines] / pyspark); "
                        "with --timestamp-col, batches are also split by UTC day")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _common(p)
    p.set_defaults(func=_cmd_track)

    p = sub.add_parser("summary", help="performance summary of the last days", epilog=_epilog(), formatter_class=fmt)
    p.add_argument("--days", type=_positive_days, default=30.0, help="window in days (default 30)")
    p.add_argument("--model", default=None, help="only this model (default: every model)")
    p.add_argument("--json", action="store_true", help='JSON on stdout: {"days", "models": [...]}')
    _common(p)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("report", help="JSON performance report", epilog=_epilog(), formatter_class=fmt)
    p.add_argument("--days", type=_positive_days, default=30.0, help="window in days (default 30)")
    p.add_argument("--model", default=None, help="model (needed when the store has several)")
    p.add_argument("-o", "--output", default=None, help="output file (default: stdout)")
    _common(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("review", help="weekly review: executed notebook + offline HTML + JSON summary",
                       epilog=_epilog(), formatter_class=fmt)
    p.add_argument("--output-dir", default=None, help="where the report goes (default: the config's reports_dir)")
    p.add_argument("--as-of", default=None, help="end of the period, ISO date or time, UTC (default: now)")
    p.add_argument("--days", type=_positive_days, default=7.0, help="length of the period (default 7)")
    p.add_argument("--model", default=None, help="only this model (default: every model)")
    p.add_argument("--segment", default=None, help="only this segment")
    p.add_argument("--fail-on-alerts", action="store_true", help="exit 6 when the period has alerts")
    p.add_argument("--cell-timeout", type=_positive_days, default=600.0, metavar="SECONDS",
                   help="seconds allowed per notebook cell (default 600)")
    _common(p)
    p.set_defaults(func=_cmd_review)

    p = sub.add_parser("alerts", help="list alerts or retry failed deliveries", epilog=_epilog(),
                       formatter_class=fmt)
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION")
    pl = asub.add_parser("list", help="alerts of the last days", epilog=_epilog(), formatter_class=fmt)
    pl.add_argument("--days", type=_positive_days, default=7.0, help="window in days (default 7)")
    pl.add_argument("--model", default=None, help="only this model (default: every model)")
    pl.add_argument("--all", action="store_true", help="include alerts suppressed by the cooldown")
    pl.add_argument("--json", action="store_true", help="JSON on stdout")
    _common(pl)
    pl.set_defaults(func=_cmd_alerts_list)
    pr = asub.add_parser("retry", help="retry pending / failed deliveries", epilog=_epilog(), formatter_class=fmt)
    _common(pr)
    pr.set_defaults(func=_cmd_alerts_retry)
    p.set_defaults(func=None, parser=p)

    p = sub.add_parser("demo", help="simulate a production history, track it and render the weekly review",
                       epilog=_epilog(), formatter_class=fmt)
    p.add_argument("--output-dir", default=None,
                   help="where the demo's store, alerts and reports go (default data/performance; then "
                        "its configuration goes to config/main_config.yaml, found by every command here, "
                        "unless that file is your own)")
    p.add_argument("--config", default=None, metavar="YAML",
                   help="write the demo's configuration here (default: see --output-dir)")
    p.add_argument("--weeks", type=int, default=6, help="weeks of daily batches (default 6)")
    p.add_argument("--min-rows", type=int, default=500, help="rows per batch, low (default 500)")
    p.add_argument("--max-rows", type=int, default=2000, help="rows per batch, high (default 2000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-report", action="store_true", help="only track, do not render the review")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)
    parser.set_defaults(parser=parser)
    return parser


@contextlib.contextmanager
def _importing() -> Iterator[None]:
    """In the program, keep the garbage collector out of the command's imports.

    Modules make no garbage, yet the collector walks them again and again while they load;
    it is paused meanwhile, and ``gc.freeze()`` then moves every object alive (the modules of
    numpy, pandas, SQLAlchemy, scipy, numba ...) to the permanent generation, which the full
    collections of the command skip (together about 0.2 s of ``perfkit report``). Only when
    the process ends with the command (:func:`run`); a library caller's collector is left alone.
    """
    if not _AS_PROGRAM:
        yield
        return
    import gc

    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _not_reported_by_cli(record: logging.LogRecord) -> bool:
    """Drop the runner's own failure line: the CLI prints that error itself (one line)."""
    return not (record.levelno >= logging.ERROR and record.module == "runner")


def _setup_logging(verbose: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not (verbose or debug):
        handler.addFilter(_not_reported_by_cli)
    for name in ("perfkit", "papermill"):
        log = logging.getLogger(name)
        log.handlers = [h for h in log.handlers if not getattr(h, "_perfkit_cli", False)]
        handler._perfkit_cli = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.setLevel(level if name == "perfkit" else max(level, logging.WARNING))
        log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``perfkit`` command; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    _setup_logging(args.verbose, args.debug)
    from perfkit.report._startup import defer_rfc3987_syntax

    defer_rfc3987_syntax()  # a program, not a library: jsonschema's IRI parser only when used
    if getattr(args, "func", None) is None:
        args.parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except BrokenPipeError:  # `perfkit alerts list | head`: the reader left, not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("perfkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except PerfkitError as exc:
        if args.debug:
            raise
        print(f"perfkit: error: {mask_urls(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if args.debug:
            raise
        print(f"perfkit: internal error: {type(exc).__name__}: {mask_urls(str(exc))} "
              "(rerun with --debug for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    """The ``perfkit`` program (console script, ``python -m perfkit.cli``): :func:`main`, then exit.

    Before the interpreter shuts down, ``gc.freeze()`` takes every object out of its final
    collections: with numba's and pandas' objects loaded these took about 0.4 s, longer
    than a short command's work. Exit handlers, flushing and closing run as usual.
    """
    global _AS_PROGRAM
    _AS_PROGRAM = True
    code = main()
    import gc

    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
