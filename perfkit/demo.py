"""A realistic production history to try perfkit on: ``perfkit demo`` / ``make demo``.

:func:`run_demo` trains a scikit-learn logistic-regression pipeline on synthetic data
(:func:`sklearn.datasets.make_classification`), then simulates several weeks of daily
prediction batches in three segments (``eu``, ``us``, ``apac``). Halfway through, two
segments degrade: ``apac`` sees a growing covariate shift (its inputs drift away from the
training distribution) and ``us`` sees growing label noise (the world changed, the model did
not). ``eu`` stays healthy.

Everything goes under ``output_dir`` (default ``data/performance`` of the working directory)::

    demo_config.yaml        the configuration the demo used (unless ``config_path`` says
                            elsewhere: ``perfkit demo`` writes ``config/main_config.yaml``,
                            the project configuration every perfkit command and
                            ``ModelPerformanceTracker()`` discover in that directory)
    demo.db                 the SQLite history store (baselines, batches, alerts)
    demo_alerts.jsonl       alerts delivered by the file channel
    reports/weekly_review.html   the offline weekly review (+ .ipynb and summary.json)
    reports/performance_report.json

Each run starts from fresh demo files (only the files above are replaced).

Examples
--------
>>> import tempfile
>>> result = run_demo(tempfile.mkdtemp(), weeks=2, rows=(200, 300), report=False)
>>> result.n_batches, result.report is None
(42, True)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from perfkit.exceptions import ValidationError

__all__ = ["DEMO_MODEL", "DEMO_SEGMENTS", "DemoResult", "project_config_path", "run_demo", "simulate_batches"]

logger = logging.getLogger("perfkit")

#: Model name used by the demo.
DEMO_MODEL = "churn-classifier"
#: Segments of the demo traffic.
DEMO_SEGMENTS: tuple[str, ...] = ("eu", "us", "apac")

#: First line of a configuration written by the demo (the demo may replace such a file).
DEMO_MARKER = "# written by `perfkit demo`: safe to edit or delete (the demo rewrites it)"

_N_FEATURES = 20
_HOUR_OF_SEGMENT = (6, 14, 22)


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    output_dir : pathlib.Path
    store_url : str
        SQLAlchemy URL of the demo store.
    config_path : pathlib.Path
        The YAML configuration written for the demo.
    n_batches : int
        Batches tracked.
    n_alerts : int
        Alerts raised while tracking (delivered or suppressed).
    json_report : pathlib.Path or None
        The JSON performance report.
    report : perfkit.report.RunResult or None
        The weekly review run (None with ``report=False``).
    duration_s : float
    """

    output_dir: Path
    store_url: str
    config_path: Path
    n_batches: int
    n_alerts: int
    json_report: Path | None
    report: Any
    duration_s: float

    @property
    def discovered(self) -> bool:
        """True when plain ``perfkit`` commands in the working directory find this demo's config."""
        from perfkit.config import DEFAULT_CONFIG_PATH

        env = os.environ.get("PERFKIT_CONFIG")
        found = Path(env) if env else DEFAULT_CONFIG_PATH
        return found.exists() and found.resolve() == self.config_path.resolve() \
            and not os.environ.get("PERFKIT_STORE_URL")

    @property
    def next_commands(self) -> list[str]:
        """Three commands to try next (with ``--config`` when the config is not discovered)."""
        opt = "" if self.discovered else f" --config {self.config_path}"
        return [f"perfkit summary{opt}", f"perfkit alerts list{opt}", f"perfkit review{opt}"]

    @property
    def html_path(self) -> Path | None:
        """The weekly review HTML, if it was rendered."""
        return None if self.report is None else self.report.html_path


def _demo_config(out: Path, model: str) -> dict[str, Any]:
    return {
        "model_performance": {
            "model_name": model,
            "degradation_thresholds": {"accuracy_drop": 0.05, "auc_drop": 0.03, "f1_drop": 0.05},
            "metrics_to_track": ["accuracy", "f1_macro", "roc_auc", "log_loss"],
            "alert_channels": ["file"],
            "alert_cooldown_hours": 24,
            "performance_window_days": 28,
            "performance_storage": {
                "store_url": f"sqlite:///{(out / 'demo.db').as_posix()}",
                "alerts_file": (out / "demo_alerts.jsonl").as_posix(),
                "history_file": (out / "demo_history.jsonl").as_posix(),
                "reports_dir": (out / "reports").as_posix(),
            },
        }
    }


def simulate_batches(
    *,
    weeks: int = 6,
    segments: Sequence[str] = DEMO_SEGMENTS,
    rows: tuple[int, int] = (500, 2000),
    degrade_after_days: int | None = None,
    end: datetime | None = None,
    seed: int = 7,
) -> tuple[Any, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Train the demo model and simulate its production batches.

    Parameters
    ----------
    weeks : int, default 6
        Weeks of daily batches per segment.
    segments : sequence of str
        Segment names; the second one gets label noise, the third a covariate shift
        after ``degrade_after_days``.
    rows : (int, int), default (500, 2000)
        Range of rows per batch.
    degrade_after_days : int, optional
        First degraded day (default: half the history, i.e. week 4 of 6).
    end : datetime, optional
        Time after the last batch (default: now, UTC); batches are daily before it.
    seed : int, default 7

    Returns
    -------
    model : sklearn estimator
    batches : list of dict
        ``y_true``, ``y_pred``, ``y_pred_proba``, ``segment``, ``timestamp``, ``batch_id``.
    validation : dict
        Per segment (and ``None`` for the whole population): ``y_true``, ``y_pred``,
        ``y_pred_proba`` of held-out validation data, for the baselines.

    Examples
    --------
    >>> _, batches, validation = simulate_batches(weeks=1, rows=(100, 120))
    >>> len(batches), sorted(k for k in validation if k)
    (21, ['apac', 'eu', 'us'])
    """
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
        raise ValidationError(f"weeks must be a positive int, got {weeks!r}", parameter="weeks")
    lo, hi = (int(rows[0]), int(rows[1])) if isinstance(rows, Sequence) and len(rows) == 2 else (0, 0)
    if not 50 <= lo <= hi:
        raise ValidationError(f"rows must be (low, high) with 50 <= low <= high, got {rows!r}",
                              parameter="rows")
    segments = list(segments)
    if not segments or len(set(segments)) != len(segments):
        raise ValidationError(f"segments must be distinct names, got {segments!r}", parameter="segments")
    n_days = weeks * 7
    degrade_from = n_days // 2 if degrade_after_days is None else int(degrade_after_days)
    rng = np.random.default_rng(seed)

    n_train, n_val = 20_000, 3_000 * len(segments)
    n_prod = n_days * len(segments) * hi
    X, y = make_classification(
        n_samples=n_train + n_val + n_prod, n_features=_N_FEATURES, n_informative=8,
        n_redundant=4, class_sep=1.0, flip_y=0.02, weights=[0.7], random_state=seed,
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    model.fit(X[:n_train], y[:n_train])
    coef = model[-1].coef_[0] / model[0].scale_

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        proba = model.predict_proba(x)[:, 1]
        return (proba >= 0.5).astype(int), proba

    validation: dict[str, dict[str, Any]] = {}
    Xv, yv = X[n_train:n_train + n_val], y[n_train:n_train + n_val]
    pred, proba = predict(Xv)
    validation[None] = {"y_true": yv, "y_pred": pred, "y_pred_proba": proba}  # type: ignore[index]
    for i, s in enumerate(segments):
        sl = slice(i * 3_000, (i + 1) * 3_000)
        validation[s] = {"y_true": yv[sl], "y_pred": pred[sl], "y_pred_proba": proba[sl]}

    end = (end or datetime.now(UTC)).astimezone(UTC)
    day0 = end.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=n_days)
    # the shift moves inputs across the decision boundary (along the model's weights)
    shift_direction = coef / np.linalg.norm(coef) + 0.3 * rng.normal(size=_N_FEATURES)
    shift_direction /= np.linalg.norm(shift_direction)
    batches: list[dict[str, Any]] = []
    cursor = n_train + n_val
    for day in range(n_days):
        severity = 0.0 if day < degrade_from else (day - degrade_from + 1) / max(n_days - degrade_from, 1)
        for i, s in enumerate(segments):
            n = int(rng.integers(lo, hi + 1))
            x, yt = X[cursor:cursor + n].copy(), y[cursor:cursor + n].copy()
            cursor += n
            if severity and i == 2 % len(segments) and len(segments) > 2:
                x += 3.0 * severity * shift_direction  # covariate shift, growing
            if severity and i == 1 % len(segments) and len(segments) > 1:
                flip = rng.random(n) < 0.22 * severity  # label noise, growing
                yt[flip] = 1 - yt[flip]
            p, pr = predict(x)
            ts = day0 + timedelta(days=day, hours=_HOUR_OF_SEGMENT[i % len(_HOUR_OF_SEGMENT)])
            if ts >= end:
                ts = end - timedelta(minutes=len(segments) - i)
            batches.append({"y_true": yt, "y_pred": p, "y_pred_proba": pr, "segment": s,
                            "timestamp": ts, "batch_id": f"{ts:%Y%m%d}-{s}"})
    return model, batches, validation


def project_config_path(output_dir: str | os.PathLike[str] = "data/performance") -> Path:
    """Where ``perfkit demo`` writes its configuration.

    ``config/main_config.yaml`` of the working directory (the configuration perfkit discovers)
    when that file does not exist or an earlier demo wrote it, and ``$PERFKIT_CONFIG`` is not
    set; else ``<output_dir>/demo_config.yaml`` (a user's own configuration is never replaced).
    """
    from perfkit.config import DEFAULT_CONFIG_PATH

    target = DEFAULT_CONFIG_PATH
    if os.environ.get("PERFKIT_CONFIG"):
        return Path(output_dir) / "demo_config.yaml"
    if target.exists():
        try:
            first = target.read_text(encoding="utf-8").splitlines()[:1]
        except OSError:
            first = []
        if first != [DEMO_MARKER]:
            return Path(output_dir) / "demo_config.yaml"
    return target


def _fresh(out: Path) -> None:
    for name in ("demo.db", "demo.db-wal", "demo.db-shm", "demo_alerts.jsonl", "demo_history.jsonl"):
        (out / name).unlink(missing_ok=True)
    reports = out / "reports"
    for name in ("weekly_review.ipynb", "weekly_review.html", "summary.json", "performance_report.json"):
        (reports / name).unlink(missing_ok=True)


def run_demo(
    output_dir: str | os.PathLike[str] = "data/performance",
    *,
    weeks: int = 6,
    rows: tuple[int, int] = (500, 2000),
    segments: Sequence[str] = DEMO_SEGMENTS,
    seed: int = 7,
    model: str = DEMO_MODEL,
    report: bool = True,
    progress: bool = False,
    cell_timeout: float = 300,
    config_path: str | os.PathLike[str] | None = None,
) -> DemoResult:
    """Generate, track and report a realistic production history (see the module docstring).

    Parameters
    ----------
    output_dir : path-like, default "data/performance"
        Where the demo files go (created if missing).
    weeks, rows, segments, seed
        See :func:`simulate_batches`.
    model : str
        Model name in the store.
    report : bool, default True
        Also render the weekly review (papermill + HTML export) and the JSON report.
    progress : bool, default False
        Show a tqdm progress bar on stderr while tracking.
    cell_timeout : float, default 300
        Per-cell timeout of the weekly review run.
    config_path : path-like, optional
        Where to write the demo's configuration (default ``<output_dir>/demo_config.yaml``;
        ``perfkit demo`` passes :func:`project_config_path`). Its storage paths are absolute.

    Returns
    -------
    DemoResult

    Raises
    ------
    perfkit.exceptions.ReportError
        When the weekly review fails (``.exit_code`` tells how).
    """
    from perfkit.tracker import ModelPerformanceTracker

    start = time.perf_counter()
    out = Path(output_dir).resolve()
    if out.exists() and not out.is_dir():
        raise ValidationError(f"output_dir {str(out)!r} is not a directory", parameter="output_dir")
    out.mkdir(parents=True, exist_ok=True)
    _fresh(out)
    config_path = out / "demo_config.yaml" if config_path is None else Path(config_path).resolve()
    config_path.parent.mkdir(parents=True, exist_ok=True)
    cfg = _demo_config(out, model)
    config_path.write_text(f"{DEMO_MARKER}\n" + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    store_url = cfg["model_performance"]["performance_storage"]["store_url"]

    _, batches, validation = simulate_batches(weeks=weeks, segments=segments, rows=rows, seed=seed)
    logger.info("demo: %d batches simulated", len(batches))
    n_alerts = 0
    with ModelPerformanceTracker(config_path, model=model) as tracker:
        for segment, v in validation.items():
            tracker.set_baseline(v["y_true"], v["y_pred"], v["y_pred_proba"], segment=segment,
                                 model_version="1.0", source="validation")
        iterator: Any = batches
        if progress:
            from tqdm import tqdm

            iterator = tqdm(batches, desc="tracking", unit="batch", leave=False)
        for b in iterator:
            result = tracker.track_performance(
                b["y_true"], b["y_pred"], b["y_pred_proba"], {"source": "perfkit demo"},
                timestamp=b["timestamp"], segment=b["segment"], batch_id=b["batch_id"],
                model_version="1.0",
            )
            n_alerts += len(result.alert_outcomes)
        json_report = None
        if report:
            json_report = out / "reports" / "performance_report.json"
            tracker.generate_performance_report(json_report, days=min(weeks * 7, 28))

    run = None
    if report:
        from perfkit.report.weekly import run_weekly_review

        run = run_weekly_review(store_url, out / "reports", config_path=config_path,
                                cell_timeout=cell_timeout)
    duration = time.perf_counter() - start
    logger.info("demo finished in %.1f s", duration)
    return DemoResult(output_dir=out, store_url=store_url, config_path=config_path,
                      n_batches=len(batches), n_alerts=n_alerts, json_report=json_report,
                      report=run, duration_s=duration)
