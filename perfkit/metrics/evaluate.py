"""From a state to metric values with confidence intervals."""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from perfkit._checks import check_level
from perfkit.exceptions import StateError, ValidationError
from perfkit.metrics._moments import Moments
from perfkit.metrics.registry import (
    DEFAULT_N_BOOT,
    DEFAULT_SEED,
    METRICS,
    EvalContext,
    MetricValue,
    resolve_metric_name,
)
from perfkit.metrics.state import (
    ClassificationState,
    RegressionState,
    State,
    compute_state,
    state_from_dict,
)

__all__ = ["MetricReport", "compute_metrics", "evaluate", "performance_score", "performance_score_se"]


class _Values(dict):
    """The report's ``values`` field: a dict that can also be called like ``Mapping.values``
    (the field shadows the method; ``report.values()`` must still work)."""

    def __call__(self):
        return dict.values(self)


@dataclass(frozen=True)
class MetricReport(Mapping[str, MetricValue]):
    """Metric values of one state: a read-only mapping ``name -> MetricValue``.

    Examples
    --------
    >>> r = compute_metrics([0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.9, 0.4, 0.1])
    >>> r["accuracy"].value
    0.75
    >>> list(r.to_frame().columns)[:4]
    ['metric', 'value', 'ci_lower', 'ci_upper']
    >>> [v.name for v in r.values()][:2]
    ['accuracy', 'balanced_accuracy']
    """

    task: str
    level: float
    n: int
    values: Mapping[str, MetricValue]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _Values(self.values))

    def __getitem__(self, key: str) -> MetricValue:
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: MetricValue.to_dict()}``, JSON-safe."""
        return {k: v.to_dict() for k, v in self.values.items()}

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per metric with stable columns."""
        rows = [
            {
                "metric": v.name,
                "value": v.value,
                "ci_lower": v.ci_lower,
                "ci_upper": v.ci_upper,
                "se": v.se,
                "n": v.n,
                "level": v.level,
                "method": v.method,
                "reason": v.reason,
            }
            for v in self.values.values()
        ]
        return pd.DataFrame(
            rows, columns=["metric", "value", "ci_lower", "ci_upper", "se", "n", "level", "method", "reason"]
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(v.name)}</td><td>{v.value:.4g}</td>"
            f"<td>[{v.ci_lower:.4g}, {v.ci_upper:.4g}]</td><td>{html.escape(v.reason or '')}</td></tr>"
            for v in self.values.values()
        )
        return (
            f"<table><caption>{html.escape(self.task)} metrics, n={self.n}, "
            f"{self.level:.0%} intervals</caption><tr><th>metric</th><th>value</th>"
            f"<th>interval</th><th>note</th></tr>{rows}</table>"
        )


def evaluate(
    state: State | dict,
    *,
    metrics: Iterable[str] | None = None,
    level: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    zero_division: float = 0.0,
) -> MetricReport:
    """Every metric (or the chosen ones) of a state, with confidence intervals.

    Parameters
    ----------
    state : ClassificationState, RegressionState or dict
        A state from :func:`compute_state` / :func:`merge_states` (or its ``to_dict()``).
    metrics : iterable of str, optional
        Names (or aliases such as ``"auc"``); default: every metric of the task.
    level : float, default 0.95
        Confidence level of the intervals.
    n_boot : int, default 2000
        Smoothed (Dirichlet) bootstrap draws for macro precision / recall / F1.
    seed : int, default 0
        Seed of the bootstrap (results are reproducible).
    zero_division : float, default 0.0
        Value of a per-class precision / recall whose denominator is zero (scikit-learn's
        default); the affected classes are named in ``reason``.

    Examples
    --------
    >>> s = compute_state([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.7])
    >>> round(evaluate(s)["mse"].value, 4)
    0.0375
    """
    if isinstance(state, dict):
        state = state_from_dict(state)
    if not isinstance(state, (ClassificationState, RegressionState)):
        raise StateError(f"evaluate needs a state (compute_state / merge_states), got {type(state).__name__}")
    check_level(level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 10:
        raise ValidationError(f"n_boot must be at least 10, got {n_boot!r}", parameter="n_boot")
    task = state.task
    if metrics is None:
        names = [
            n for n, s in METRICS.items() if task in s.tasks and (state.labelled or not s.needs_labels)
        ]
    else:
        names = [resolve_metric_name(m) for m in metrics]
    ctx = EvalContext(level=level, n_boot=n_boot, seed=seed, zero_division=zero_division)
    out: dict[str, MetricValue] = {}
    for name in names:
        spec = METRICS.get(name)
        if spec is None:
            continue  # custom metrics are computed from raw data by the tracker
        if task not in spec.tasks:
            out[name] = MetricValue(name, math.nan, n=state.n, level=level, reason=f"not_defined_for_{task}")
            continue
        if spec.needs_scores and isinstance(state, ClassificationState) and not state.has_scores:
            out[name] = MetricValue(name, math.nan, n=state.n, level=level, reason="no_scores")
            continue
        mv = spec.compute(state, ctx)
        if mv.higher_is_better is None and spec.higher_is_better is not None:
            mv = MetricValue(**{**mv.__dict__, "higher_is_better": spec.higher_is_better})
        if mv.reason is None and not math.isfinite(mv.value) and _overflowed(state):
            mv = MetricValue(**{**mv.__dict__, "value": math.nan, "ci_lower": math.nan, "ci_upper": math.nan,
                                "se": math.nan, "reason": "overflow"})
        out[name] = mv
    return MetricReport(task=task, level=level, n=state.n, values=out)


def _overflowed(state: State) -> bool:
    """A regression state whose moments left the float range (values near 1e308)."""
    if not isinstance(state, RegressionState):
        return False
    for m in vars(state).values():
        if isinstance(m, Moments) and not all(math.isfinite(x) for x in (m.mean, m.m2, m.m3, m.m4)):
            return True
    return False


def compute_metrics(
    y_true: Any,
    y_pred: Any = None,
    y_pred_proba: Any = None,
    *,
    task: str | None = None,
    classes: Any = None,
    positive_label: Any = None,
    metrics: Iterable[str] | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    zero_division: float = 0.0,
) -> MetricReport:
    """Validate a batch, compute its state and evaluate it (see :func:`evaluate`).

    Examples
    --------
    >>> r = compute_metrics(["cat", "dog", "dog"], ["cat", "dog", "cat"])
    >>> round(r["accuracy"].value, 4), r.task
    (0.6667, 'binary')
    """
    state = compute_state(
        y_true, y_pred, y_pred_proba, task=task, classes=classes, positive_label=positive_label
    )
    return evaluate(
        state, metrics=metrics, level=level, n_boot=n_boot, seed=seed, zero_division=zero_division
    )


def _score_parts(report: Mapping[str, MetricValue], task: str | None) -> list[tuple[float, MetricValue]]:
    from perfkit.metrics.registry import METRICS

    task = task or getattr(report, "task", None)
    return [
        (spec.score_weight, report[name])
        for name, spec in METRICS.items()
        if spec.score_weight > 0 and name in report and (task is None or task in spec.tasks)
        and math.isfinite(report[name].value)
    ]


def performance_score(report: Mapping[str, MetricValue], task: str | None = None) -> float:
    """One number in [0, 1] summarising a batch (higher is better).

    The weighted mean of the metrics with a ``score_weight`` in the metric table, each
    clipped to [0, 1]: classification accuracy, macro F1 and ROC AUC (those defined),
    regression R². NaN when none of them is defined (labels pending).

    Examples
    --------
    >>> r = compute_metrics([0, 1, 1, 0], [0, 1, 1, 0], [0.1, 0.8, 0.9, 0.3])
    >>> performance_score(r)
    1.0
    """
    parts = _score_parts(report, task)
    if not parts:
        return math.nan
    total = sum(w for w, _ in parts)
    return sum(w * min(1.0, max(0.0, v.value)) for w, v in parts) / total


def performance_score_se(report: Mapping[str, MetricValue], task: str | None = None) -> float:
    """A conservative standard error of :func:`performance_score`.

    The weighted mean of the components' standard errors: the standard error of a weighted
    mean of correlated estimates is at most that (equality under perfect correlation), so a
    "credibly below the floor" decision made with it keeps its level whatever the correlation.
    Components without a finite standard error are left out; NaN when none has one.

    Examples
    --------
    >>> r = compute_metrics([0, 1] * 50, [0, 1] * 45 + [1, 0] * 5)
    >>> 0 < performance_score_se(r) < 0.1
    True
    """
    parts = [(w, v) for w, v in _score_parts(report, task) if math.isfinite(v.se)]
    if not parts:
        return math.nan
    total = sum(w for w, _ in parts)
    return sum(w * v.se for w, v in parts) / total
