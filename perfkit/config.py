"""Typed configuration, loaded once from YAML (the seed's ``model_performance:`` block).

The seed guide's block loads unchanged and every key in it means something:

==============================  ===========================================================
``degradation_thresholds``      ``<metric>_drop`` (higher-is-better metrics) and
                                ``<metric>_increase`` (lower-is-better) relative thresholds
``performance_window_days``     window of the trend analysis and of summaries by default
``min_samples_for_trend``       fewer points give ``trend_direction = "insufficient_data"``
``alert_cooldown_hours``        same model/segment/metric/type alerts within it are
                                recorded as suppressed, not delivered (escalations pass)
``auto_retraining_threshold``   a credible degradation beyond it raises a retraining trigger
``metrics_to_track``            metrics stored, checked and reported
``alert_channels``              delivery channels: log, file, email, webhook
``performance_storage``         ``history_file`` (JSON-lines backup export),
                                ``alerts_file`` (the file channel), ``reports_dir``, and
                                ``store_url`` (SQLAlchemy URL of the history store)
==============================  ===========================================================

Extra key ``trend_tolerance`` (default 0.01): the smallest relative change **per 30 days**
that a trend must show to be called degrading or improving (a rate, so a 30-day and an
84-day history of the same decline get the same answer; it used to be a change over the
data span). It is ``tolerance`` of :func:`perfkit.analysis.analyze_trend`; must be in [0, 1].

Secrets come from the environment: ``PERFKIT_SMTP_PASSWORD``, ``PERFKIT_WEBHOOK_URL``
(and ``PERFKIT_STORE_URL`` overrides the store). They are never written to reports or logs.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from perfkit._checks import check_name, mask_url
from perfkit._files import write_text_atomic
from perfkit.exceptions import ConfigError, InputTypeError, UnknownMetricError, ValidationError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DetectionSettings",
    "EmailSettings",
    "PerformanceConfig",
    "StorageSettings",
    "WebhookSettings",
    "load_config",
    "save_config",
]

logger = logging.getLogger("perfkit")

DEFAULT_CONFIG_PATH = Path("config") / "main_config.yaml"
DEFAULT_DATA_DIR = Path("data") / "performance"

_SEED_THRESHOLDS = {
    "accuracy_drop": 0.05,
    "auc_drop": 0.03,
    "f1_drop": 0.05,
    "precision_drop": 0.05,
    "recall_drop": 0.05,
    "mse_increase": 0.10,
    "mae_increase": 0.10,
}
_SEED_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "log_loss",
    "mse",
    "rmse",
    "mae",
    "r2",
)


@dataclass(frozen=True)
class StorageSettings:
    """Where perfkit keeps things (paths relative to the working directory)."""

    store_url: str = f"sqlite:///{(DEFAULT_DATA_DIR / 'perfkit.db').as_posix()}"
    history_file: str = (DEFAULT_DATA_DIR / "performance_history.json").as_posix()
    alerts_file: str = (DEFAULT_DATA_DIR / "alerts.json").as_posix()
    reports_dir: str = (DEFAULT_DATA_DIR / "reports").as_posix()


@dataclass(frozen=True)
class EmailSettings:
    """SMTP settings of the email channel (password from ``PERFKIT_SMTP_PASSWORD``)."""

    host: str | None = None
    port: int = 25
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    security: str = "none"
    username: str | None = None
    password_env: str = "PERFKIT_SMTP_PASSWORD"
    timeout: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.host and self.sender and self.recipients)

    def __repr__(self) -> str:  # never shows a secret (there is none stored here anyway)
        return f"EmailSettings(host={self.host!r}, port={self.port}, sender={self.sender!r}, recipients={self.recipients!r})"


@dataclass(frozen=True)
class WebhookSettings:
    """Webhook channel settings (the URL usually holds a token: prefer ``PERFKIT_WEBHOOK_URL``)."""

    url: str | None = None
    format: str = "json"
    timeout: float = 5.0

    def resolved_url(self) -> str | None:
        return os.environ.get("PERFKIT_WEBHOOK_URL") or self.url

    def __repr__(self) -> str:
        return f"WebhookSettings(url={'<set>' if self.resolved_url() else None}, format={self.format!r})"


@dataclass(frozen=True)
class DetectionSettings:
    """How a degradation is decided.

    Attributes
    ----------
    thresholds : dict
        ``{metric: relative threshold}`` (canonical metric names).
    threshold_mode : {"relative", "absolute"}
    severity_bands : dict
        Lower edges of ``moderate`` and ``critical`` (``minor`` starts at the threshold).
    gating : {"minimum_effect", "significance", "none"}
        ``minimum_effect`` (default): the batch must be credibly worse than the baseline by
        more than the threshold (one-sided test of H0: degradation <= threshold);
        ``significance``: credibly worse at all AND the point estimate beyond the threshold;
        ``none``: the point estimate alone (the naive rule).
    alpha : float
        Significance level after false-discovery control.
    fdr_method : str
        ``statsmodels.stats.multitest.multipletests`` method across the metrics (and
        segments) checked at once; ``"none"`` to switch it off.
    auto_retraining_threshold, low_performance_threshold : float
    minimum_effect_fraction : float
        With ``minimum_effect`` gating the test's null is "degradation <= fraction x
        threshold" while the point estimate must still reach the full threshold. 1 is the
        strictest (a drop exactly at the threshold is never credible); the default 0.5 keeps
        false alerts under 1 % of tracking calls at 50 rows and still catches a drop equal to
        the threshold within two 1,000-row batches (``benchmarks/detection.py``).
    window_batches : int
        Besides each batch on its own, the merge of the last ``window_batches`` batches (of
        the same model and segment) is checked for the metrics whose window value follows
        exactly from the stored batch values (accuracy, positive-class precision / recall,
        MSE, MAE, log loss, MAPE, sMAPE); 1 switches it off. Pooling two batches catches a
        real drop sooner without raising the false-alert rate (``benchmarks/detection.py``).
    """

    thresholds: Mapping[str, float] = field(default_factory=dict)
    threshold_mode: str = "relative"
    severity_bands: Mapping[str, float] = field(default_factory=lambda: {"moderate": 0.10, "critical": 0.20})
    gating: str = "minimum_effect"
    alpha: float = 0.05
    fdr_method: str = "fdr_bh"
    auto_retraining_threshold: float = 0.15
    low_performance_threshold: float = 0.5
    window_batches: int = 2
    minimum_effect_fraction: float = 0.5

    def replace(self, **changes: Any) -> DetectionSettings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class PerformanceConfig:
    """The whole typed configuration (one object, parsed once)."""

    detection: DetectionSettings = field(default_factory=DetectionSettings)
    performance_window_days: float = 30
    min_samples_for_trend: int = 10
    alert_cooldown_hours: float = 24
    metrics_to_track: tuple[str, ...] = _SEED_METRICS
    alert_channels: tuple[str, ...] = ("log", "file")
    storage: StorageSettings = field(default_factory=StorageSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    model_name: str = "default"
    confidence_level: float = 0.95
    trend_tolerance: float = 0.01  # relative change per 30 days (a rate), see the module doc
    baseline_batches: int = 5
    delivery_deadline_seconds: float = 2.0
    retraining_hook: str | list[str] | None = None
    model_task: str | None = None
    model_classes: tuple[Any, ...] | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        _check_level(self.confidence_level, "confidence_level")

    @property
    def store_url(self) -> str:
        return os.environ.get("PERFKIT_STORE_URL") or self.storage.store_url

    @property
    def degradation_thresholds(self) -> Mapping[str, float]:
        return self.detection.thresholds

    @property
    def auto_retraining_threshold(self) -> float:
        return self.detection.auto_retraining_threshold

    def replace(self, **changes: Any) -> PerformanceConfig:
        return dataclasses.replace(self, **changes)

    def to_yaml_dict(self) -> dict[str, Any]:
        """The ``model_performance`` block (seed key names) for :func:`save_config`."""
        from perfkit.metrics import get_metric

        thresholds = {}
        for m, t in self.detection.thresholds.items():
            hib = get_metric(m).higher_is_better
            spec = get_metric(m)
            short = spec.threshold_keys[0] if spec.threshold_keys else m
            thresholds[f"{short}_{'drop' if hib else 'increase'}"] = float(t)
        d = self.detection
        return {
            "degradation_thresholds": thresholds,
            "threshold_mode": d.threshold_mode,
            "severity_bands": dict(d.severity_bands),
            "statistical_gating": d.gating,
            "significance_level": d.alpha,
            "fdr_method": d.fdr_method,
            "low_performance_threshold": d.low_performance_threshold,
            "detection_window_batches": d.window_batches,
            "minimum_effect_fraction": d.minimum_effect_fraction,
            "performance_window_days": self.performance_window_days,
            "min_samples_for_trend": self.min_samples_for_trend,
            "alert_cooldown_hours": self.alert_cooldown_hours,
            "auto_retraining_threshold": d.auto_retraining_threshold,
            "metrics_to_track": list(self.metrics_to_track),
            "alert_channels": list(self.alert_channels),
            "model_name": self.model_name,
            "confidence_level": self.confidence_level,
            "trend_tolerance": self.trend_tolerance,
            "baseline_batches": self.baseline_batches,
            **({"model_task": self.model_task} if self.model_task else {}),
            **({"model_classes": list(self.model_classes)} if self.model_classes else {}),
            "delivery_deadline_seconds": self.delivery_deadline_seconds,
        }



_KNOWN_KEYS = {
    "degradation_thresholds",
    "threshold_mode",
    "severity_bands",
    "statistical_gating",
    "significance_level",
    "fdr_method",
    "low_performance_threshold",
    "performance_window_days",
    "min_samples_for_trend",
    "alert_cooldown_hours",
    "auto_retraining_threshold",
    "metrics_to_track",
    "alert_channels",
    "performance_storage",
    "model_name",
    "confidence_level",
    "trend_tolerance",
    "baseline_batches",
    "delivery_deadline_seconds",
    "detection_window_batches",
    "minimum_effect_fraction",
    "email",
    "webhook",
    "retraining_hook",
    "model_task",
    "model_classes",
}


_LEVEL_RANGE = (0.5, 0.999)


def _check_level(value: Any, where: str) -> float:
    """``confidence_level``: a number in [0.5, 0.999] (the level of every interval perfkit shows)."""
    lo, hi = _LEVEL_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo <= value <= hi):
        raise ConfigError(f"{where}: must be a number in [{lo:g}, {hi:g}] (e.g. 0.95), got {value!r}")
    return float(value)


def _suggest(word: Any, options: Any) -> str:
    close = difflib.get_close_matches(str(word).lower(), [str(o) for o in options], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Parser:
    """Reads one mapping of the configuration; errors name the full key path and the file."""

    def __init__(self, source: str, prefix: str = ""):
        self.source = source
        self.prefix = prefix  # "" for the section itself, "email." for model_performance.email

    def sub(self, key: str) -> _Parser:
        """A parser for the nested mapping ``key`` (errors say ``model_performance.<key>.<sub>``)."""
        return _Parser(self.source, f"{self.prefix}{key}.")

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: model_performance.{self.prefix}{key}: {problem}")

    def number(self, raw: Mapping, key: str, default: float, *, lo: float = 0.0, hi: float = math.inf,
               integer: bool = False, open_lo: bool = False) -> float:
        if key not in raw or raw[key] is None:
            return default
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(key, f"must be a number, got {type(v).__name__} {v!r}")
        rng = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"
        try:
            float(v)
        except OverflowError:  # an int of 400 digits
            raise self.fail(key, f"must be in {rng}, got a {len(str(abs(v)))}-digit number") from None
        if integer and not float(v).is_integer():
            raise self.fail(key, f"must be a whole number, got {v!r}")
        if not math.isfinite(v) or v < lo or v > hi or (open_lo and v == lo):
            raise self.fail(key, f"must be in {rng}, got {v!r}")
        return int(v) if integer else float(v)

    def choice(self, raw: Mapping, key: str, default: str, options: tuple[str, ...]) -> str:
        v = raw.get(key, default)
        if v not in options:
            raise self.fail(key, f"must be one of {list(options)}, got {v!r}")
        return v

    def string_list(self, raw: Mapping, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        if key not in raw or raw[key] is None:
            return default
        v = raw[key]
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(key, f"must be a list of strings, got {v!r}")
        return tuple(v)

    def string(self, raw: Mapping, key: str, default: str | None) -> str | None:
        v = raw.get(key)
        if v is None:
            return default
        if not isinstance(v, str) or not v.strip():
            raise self.fail(key, f"must be a non-blank string, got {type(v).__name__} {v!r}")
        return v

    def mapping(self, raw: Mapping, key: str) -> Mapping:
        v = raw.get(key)
        if v is None:
            return {}
        if not isinstance(v, Mapping):  # [] / false / 0 / '' no longer read as "empty" (no thresholds)
            raise self.fail(key, f"must be a mapping, got {type(v).__name__}")
        return v

    def unknown(self, raw: Mapping, known: set[str]) -> None:
        extra = sorted(set(raw) - known, key=str)
        if extra:
            where = "model_performance" + ("." + self.prefix.rstrip(".") if self.prefix else "")
            named = ", ".join(f"{self.prefix}{e}{_suggest(e, known)}" for e in extra)
            raise ConfigError(
                f"{self.source}: unknown key(s) {named} in {where}; valid keys: {', '.join(sorted(known))}"
            )


def _model_task(p: _Parser, section: Mapping[str, Any]) -> str | None:
    """``model_task``: the task declared up front (default: fixed by the first labelled batch)."""
    if section.get("model_task") is None:
        return None
    return p.choice(section, "model_task", None, ("binary", "multiclass", "regression"))


def _model_classes(p: _Parser, section: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """``model_classes``: the model's label set declared up front (a batch missing a class is
    still encoded in it)."""
    raw = section.get("model_classes")
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)) or len(raw) < 2 or not all(
            isinstance(c, (str, int, bool)) for c in raw) or len(set(raw)) != len(raw):
        raise p.fail("model_classes", f"must be a list of at least 2 distinct labels (str, int or bool), got {raw!r}")
    return tuple(raw)


def _parse_thresholds(p: _Parser, raw: Mapping, mode: str) -> dict[str, float]:
    from perfkit.metrics import get_metric, threshold_metric

    out: dict[str, float] = {}
    for key in raw:
        if not isinstance(key, str) or not (key.endswith("_drop") or key.endswith("_increase")):
            raise p.fail(
                f"degradation_thresholds.{key}",
                "threshold keys are '<metric>_drop' (higher-is-better metrics) or '<metric>_increase' (lower-is-better)",
            )
        direction = "drop" if key.endswith("_drop") else "increase"
        name = key.rsplit("_", 1)[0]
        try:
            spec = get_metric(threshold_metric(name))
        except UnknownMetricError as exc:
            raise p.fail(f"degradation_thresholds.{key}", str(exc)) from exc
        if spec.higher_is_better is None:
            raise p.fail(f"degradation_thresholds.{key}", f"{spec.name} has no better direction to degrade in")
        expected = "drop" if spec.higher_is_better else "increase"
        if direction != expected:
            raise p.fail(
                f"degradation_thresholds.{key}",
                f"{spec.name} is {'higher' if spec.higher_is_better else 'lower'}-is-better: use '{name}_{expected}'",
            )
        t = p.sub("degradation_thresholds").number(raw, key, 0.0, lo=0.0, open_lo=True)
        reach = _max_degradation(spec, mode)
        if t > reach:
            kind = "a relative" if mode == "relative" else "an absolute"
            change = "drop" if spec.higher_is_better else "increase"
            raise p.fail(
                f"degradation_thresholds.{key}",
                f"{t:g} can never fire: {kind} {change} of {spec.name} (values in [{spec.lower:g}, "
                f"{spec.upper:g}]) is at most {reach:g} in threshold_mode {mode!r}",
            )
        out[spec.name] = t
    return out


def _max_degradation(spec: Any, mode: str) -> float:
    """The largest degradation a metric can show, from its bounds and direction (inf: unbounded).

    Relative mode divides by ``|baseline|``: a higher-is-better metric bounded below by
    ``lower >= 0`` cannot drop by more than ``1 - lower / upper`` (a [0, 1] metric: 1, i.e.
    to zero); a lower-is-better one bounded below by ``lower > 0`` cannot rise by more than
    ``upper / lower - 1``. Absolute mode: ``upper - lower``.
    """
    lo, hi = float(spec.lower), float(spec.upper)
    if mode == "absolute":
        return hi - lo
    if spec.higher_is_better:
        return 1.0 - lo / hi if lo >= 0 else math.inf
    return hi / lo - 1.0 if lo > 0 else math.inf


def parse_config(section: Mapping[str, Any], *, source: str = "<dict>") -> PerformanceConfig:
    """Build a :class:`PerformanceConfig` from a ``model_performance`` mapping.

    Examples
    --------
    >>> cfg = parse_config({"degradation_thresholds": {"auc_drop": 0.03}, "alert_cooldown_hours": 12})
    >>> dict(cfg.detection.thresholds), cfg.alert_cooldown_hours
    ({'roc_auc': 0.03}, 12.0)
    >>> parse_config({"alert_cooldown_hours": -1})
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ConfigError: <dict>: model_performance.alert_cooldown_hours: must be in [0, inf], got -1
    """
    from perfkit.metrics import resolve_metric_name

    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: model_performance must be a mapping, got {type(section).__name__}")
    p = _Parser(source)
    p.unknown(section, _KNOWN_KEYS)
    mode = p.choice(section, "threshold_mode", "relative", ("relative", "absolute"))
    raw_t = p.mapping(section, "degradation_thresholds")
    thresholds = _parse_thresholds(p, raw_t if "degradation_thresholds" in section else _SEED_THRESHOLDS, mode)
    bands_raw = p.mapping(section, "severity_bands")
    pb = p.sub("severity_bands")
    pb.unknown(bands_raw, {"moderate", "critical"})
    bands = {
        "moderate": pb.number(bands_raw, "moderate", 0.10, lo=0.0, open_lo=True),
        "critical": pb.number(bands_raw, "critical", 0.20, lo=0.0, open_lo=True),
    }
    if bands["critical"] <= bands["moderate"]:
        raise p.fail("severity_bands", f"critical ({bands['critical']}) must exceed moderate ({bands['moderate']})")
    detection = DetectionSettings(
        thresholds=thresholds,
        threshold_mode=mode,
        severity_bands=bands,
        gating=p.choice(section, "statistical_gating", "minimum_effect", ("minimum_effect", "significance", "none")),
        alpha=p.number(section, "significance_level", 0.05, lo=0.0, hi=0.5, open_lo=True),
        fdr_method=p.choice(section, "fdr_method", "fdr_bh", ("fdr_bh", "fdr_by", "holm", "bonferroni", "none")),
        auto_retraining_threshold=p.number(section, "auto_retraining_threshold", 0.15, lo=0.0, open_lo=True),
        low_performance_threshold=p.number(section, "low_performance_threshold", 0.5, lo=0.0, hi=1.0),
        window_batches=p.number(section, "detection_window_batches", 2, lo=1, hi=100, integer=True),
        minimum_effect_fraction=p.number(section, "minimum_effect_fraction", 0.5, lo=0.0, hi=1.0),
    )
    metrics = p.string_list(section, "metrics_to_track", _SEED_METRICS)
    resolved = []
    for m in metrics:
        try:
            resolved.append(resolve_metric_name(m))
        except UnknownMetricError as exc:
            raise p.fail("metrics_to_track", str(exc)) from exc
    channels = p.string_list(section, "alert_channels", ("log", "file"))
    valid_channels = ("log", "file", "email", "webhook")
    for c in channels:
        if c not in valid_channels:
            raise p.fail("alert_channels", f"unknown channel {c!r}; valid: {list(valid_channels)}")
    st = p.mapping(section, "performance_storage")
    ps = p.sub("performance_storage")
    ps.unknown(st, {"history_file", "alerts_file", "reports_dir", "store_url"})
    for k in st:
        if not isinstance(st[k], str) or not st[k].strip():
            shown = repr(mask_url(st[k]) if k == "store_url" and isinstance(st[k], str) else st[k])
            raise ps.fail(k, f"must be a non-blank string, got {shown}")
    storage = StorageSettings(**{k: st[k] for k in st})
    em = p.mapping(section, "email")
    pe = p.sub("email")
    pe.unknown(em, {f.name for f in dataclasses.fields(EmailSettings)} | {"password"})
    if "password" in em:
        raise pe.fail("password", "do not put secrets in the config file; set PERFKIT_SMTP_PASSWORD (or email.password_env)")
    email = EmailSettings(
        host=pe.string(em, "host", None),
        port=pe.number(em, "port", 25, lo=1, hi=65535, integer=True),
        sender=pe.string(em, "sender", None),
        recipients=pe.string_list(em, "recipients", ()),
        security=pe.choice(em, "security", "none", ("none", "starttls", "ssl")),
        username=pe.string(em, "username", None),
        password_env=pe.string(em, "password_env", "PERFKIT_SMTP_PASSWORD"),
        timeout=pe.number(em, "timeout", 10.0, lo=0.0, open_lo=True),
    )
    wh = p.mapping(section, "webhook")
    pw = p.sub("webhook")
    pw.unknown(wh, {"url", "format", "timeout"})
    url = pw.string(wh, "url", None)
    if url is not None and not url.lower().startswith(("http://", "https://")):
        raise pw.fail("url", f"must be an http:// or https:// URL, got {mask_url(url, keep_path=False)!r}")
    webhook = WebhookSettings(
        url=url,
        format=pw.choice(wh, "format", "json", ("json", "slack")),
        timeout=pw.number(wh, "timeout", 5.0, lo=0.0, open_lo=True),
    )
    hook = section.get("retraining_hook")
    if hook is not None and not (isinstance(hook, str) or (isinstance(hook, list) and all(isinstance(x, str) for x in hook))):
        raise p.fail("retraining_hook", "must be a command string or a list of strings")
    try:
        model_name = check_name(section.get("model_name", "default"), "model_name")
    except ValidationError as exc:
        raise p.fail("model_name", str(exc).removeprefix("model_name ")) from exc
    level = 0.95 if section.get("confidence_level") is None else section["confidence_level"]
    _check_level(level, f"{source}: model_performance.confidence_level")
    return PerformanceConfig(
        detection=detection,
        performance_window_days=p.number(section, "performance_window_days", 30, lo=0.0, open_lo=True),
        min_samples_for_trend=p.number(section, "min_samples_for_trend", 10, lo=2, integer=True),
        alert_cooldown_hours=p.number(section, "alert_cooldown_hours", 24, lo=0.0),
        metrics_to_track=tuple(dict.fromkeys(resolved)),
        alert_channels=channels,
        storage=storage,
        email=email,
        webhook=webhook,
        model_name=model_name,
        confidence_level=float(level),
        trend_tolerance=p.number(section, "trend_tolerance", 0.01, lo=0.0, hi=1.0),
        baseline_batches=p.number(section, "baseline_batches", 5, lo=1, integer=True),
        delivery_deadline_seconds=p.number(section, "delivery_deadline_seconds", 2.0, lo=0.0),
        retraining_hook=hook,
        model_task=_model_task(p, section),
        model_classes=_model_classes(p, section),
        source=source,
    )


def load_config(path: str | os.PathLike[str] | None = None) -> PerformanceConfig:
    """Load the configuration.

    Parameters
    ----------
    path : path-like, optional
        A YAML file with a ``model_performance:`` section (other top-level sections, which
        belong to the rest of a pipeline's config, are ignored - but a misspelt
        ``model_performace:`` is an error, not silently the defaults), or a file holding just
        that section. Default: ``$PERFKIT_CONFIG``, else ``config/main_config.yaml`` when it
        exists, else the built-in defaults (the seed's values).

    Raises
    ------
    ConfigError
        Unknown key (with the closest valid one suggested), wrong type or impossible value
        (a threshold that can never fire included); the message names the full key path
        (``model_performance.email.port``) and the file.
    """
    if path is None:
        env = os.environ.get("PERFKIT_CONFIG")
        if env:
            path = env
        elif DEFAULT_CONFIG_PATH.exists():
            path = DEFAULT_CONFIG_PATH
        else:
            return parse_config({}, source="<defaults>")
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"path must be a str or path-like, got {type(path).__name__}", parameter="path")
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: configuration file not found")
    try:
        doc = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc})") from exc
    except OSError as exc:  # a directory, unreadable ...
        raise ConfigError(f"{p}: cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{p}: the top level must be a mapping, got {type(doc).__name__}")
    return parse_config(_section(doc, p), source=str(p))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML
    keeps the last value, so a second ``accuracy_drop`` further down would silently win).
    Keys brought in by a ``<<`` merge may be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    again = key in seen
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if again:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found the key {key!r} twice (first on line {seen[key] + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _section(doc: Mapping, path: Path) -> Mapping:
    """The ``model_performance`` mapping of a YAML document (a misspelt section is an error).

    Other top-level sections belong to the rest of a pipeline's configuration and are
    ignored - except one whose name is close to ``model_performance`` (``model_performace``),
    which is refused with a suggestion rather than silently loading the defaults. A file
    holding just the section's keys is read as the section itself.
    """
    near = [k for k in doc if k != "model_performance"
            and difflib.get_close_matches(str(k).lower(), ["model_performance"], n=1, cutoff=0.8)]
    if near:
        raise ConfigError(
            f"{path}: unknown top-level section {near[0]!r} (did you mean 'model_performance'?)"
        )
    if "model_performance" in doc:
        return doc["model_performance"] if doc["model_performance"] is not None else {}
    keys = {str(k) for k in doc}
    known = keys & _KNOWN_KEYS
    misspelt = [k for k in keys - _KNOWN_KEYS if difflib.get_close_matches(k.lower(), _KNOWN_KEYS, n=1, cutoff=0.85)]
    if keys and (keys <= _KNOWN_KEYS or (known and misspelt)):
        return doc  # the section's keys at the top level (a misspelt one is named by parse_config)
    logger.info("%s has no model_performance section; using defaults", path)
    return {}


def save_config(config: PerformanceConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as the ``model_performance`` section of ``path``, keeping other keys.

    Keys of the existing section that perfkit does not manage (storage, email, webhook,
    hooks) are kept as they were.
    """
    p = Path(path)
    doc: dict[str, Any] = {}
    if p.exists():
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        doc = loaded
    section = dict(doc.get("model_performance") or {})
    section.update(config.to_yaml_dict())
    doc["model_performance"] = section
    write_text_atomic(p, yaml.safe_dump(doc, sort_keys=False))
    return p
