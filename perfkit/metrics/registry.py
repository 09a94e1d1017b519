"""Metric registry: every metric declares its semantics and is a function of a state.

Degradation detection, trends and charts read ``higher_is_better`` and the bounds from
here; nothing else in perfkit hard-codes a metric's direction.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perfkit.exceptions import UnknownMetricError, ValidationError
from perfkit.metrics import _kernels
from perfkit.metrics._abs_hist import REL_ERROR
from perfkit.metrics._auc_cov import macro_auc_variance
from perfkit.metrics.intervals import (
    auc_score_interval,
    dirichlet_confusion,
    f1_interval,
    heavy_tail_mean_interval,
    hill_index,
    logit_auc_interval,
    macro_mover,
    macro_prf,
    normal_interval,
    order_statistic_ranks,
    skew_corrected_interval,
    wilson_interval,
    z_value,
)
from perfkit.metrics.state import ClassificationState, RegressionState

__all__ = [
    "ALIASES",
    "CLASSIFICATION",
    "METRICS",
    "REGRESSION",
    "CustomMetric",
    "MetricSpec",
    "MetricValue",
    "get_metric",
    "metric_names",
    "register_custom_metric",
    "register_metric",
    "resolve_metric_name",
    "threshold_metric",
]

CLASSIFICATION = frozenset({"binary", "multiclass"})
REGRESSION = frozenset({"regression"})
ALL_TASKS = CLASSIFICATION | REGRESSION


@dataclass(frozen=True)
class MetricValue:
    """A metric value with its confidence interval.

    Attributes
    ----------
    name : str
    value : float
        NaN when undefined; ``reason`` then says why.
    ci_lower, ci_upper : float
        Confidence bounds at ``level`` (NaN when not available).
    se : float
        Standard error (NaN when not available).
    level : float
    n : int
        Rows the value is computed from.
    reason : str or None
        Machine-readable note: why the value is NaN, or a caveat (``"zero_targets_skipped:3"``).
    method : str
        How the interval was computed.
    error_bound : float or None
        Hard bound on the approximation error (AUC from merged histograms).
    successes, trials : float or None
        Counts behind a proportion (used by the degradation tests).
    higher_is_better : bool or None
    """

    name: str
    value: float
    ci_lower: float = math.nan
    ci_upper: float = math.nan
    se: float = math.nan
    level: float = 0.95
    n: int = 0
    reason: str | None = None
    method: str = ""
    error_bound: float | None = None
    successes: float | None = None
    trials: float | None = None
    higher_is_better: bool | None = None

    @property
    def is_defined(self) -> bool:
        return math.isfinite(self.value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN and inf become ``None``)."""
        def f(x):
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "name": self.name,
            "value": f(self.value),
            "ci_lower": f(self.ci_lower),
            "ci_upper": f(self.ci_upper),
            "se": f(self.se),
            "level": self.level,
            "n": self.n,
            "reason": self.reason,
            "method": self.method,
            "error_bound": f(self.error_bound),
            "successes": f(self.successes),
            "trials": f(self.trials),
            "higher_is_better": self.higher_is_better,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricValue:
        def f(x):
            return math.nan if x is None else float(x)

        return cls(
            name=d["name"],
            value=f(d.get("value")),
            ci_lower=f(d.get("ci_lower")),
            ci_upper=f(d.get("ci_upper")),
            se=f(d.get("se")),
            level=float(d.get("level", 0.95)),
            n=int(d.get("n", 0)),
            reason=d.get("reason"),
            method=d.get("method", ""),
            error_bound=d.get("error_bound"),
            successes=d.get("successes"),
            trials=d.get("trials"),
            higher_is_better=d.get("higher_is_better"),
        )

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        if not self.is_defined:
            return f"MetricValue({self.name}=nan, reason={self.reason!r})"
        return f"MetricValue({self.name}={self.value:.6g} [{self.ci_lower:.6g}, {self.ci_upper:.6g}])"


#: :func:`perfkit.metrics.evaluate`'s default bootstrap draws and seed
DEFAULT_N_BOOT = 2000
DEFAULT_SEED = 0


@dataclass
class EvalContext:
    """Per-evaluation options and a cache shared by metrics of one state."""

    level: float = 0.95
    n_boot: int = DEFAULT_N_BOOT
    seed: int = DEFAULT_SEED
    zero_division: float = 0.0
    cache: dict = field(default_factory=dict)


#: How a metric is compared with its baseline (:func:`perfkit.analysis.decide`).
TEST_KINDS = ("proportion", "delong_z", "bootstrap_z", "welch_z", "normal_z", "none")
#: How a metric's value over a window of batches follows exactly from per-batch numbers.
WINDOW_KINDS = ("proportion", "mean", None)


@dataclass(frozen=True)
class MetricSpec:
    """Everything perfkit knows about a metric: the one metric table.

    Attributes
    ----------
    name : str
    tasks : frozenset of str
    higher_is_better : bool or None
        ``None`` for descriptive statistics without a good direction (sample count).
    lower, upper : float
        Bounds of the value (charts clip their axes to them; config refuses thresholds
        that could never fire).
    needs_scores : bool
        Needs ``y_pred_proba`` / scores (computed over the rows that had them).
    description : str
    compute : callable (state, EvalContext) -> MetricValue
    needs_labels : bool
    binary_only : bool
    test : str
        The comparison with the baseline, one of :data:`TEST_KINDS`: ``"proportion"``
        (score test of two proportions from ``successes`` / ``trials``), or a z test from
        the standard errors named after how they are computed (``"delong_z"``,
        ``"bootstrap_z"``, ``"welch_z"``); ``"none"`` for descriptive statistics.
    window : str or None
        ``"proportion"`` (window value = summed successes / summed trials) or ``"mean"``
        (window value from counts, means and standard errors) when the value of a window
        of batches follows exactly from the per-batch numbers; ``None`` otherwise.
    score_weight : float
        Weight in the one-number performance score (0: not part of it).
    aliases : tuple of str
        Other names that resolve to this metric (``auc`` -> ``roc_auc``).
    threshold_keys : tuple of str
        Extra stems accepted for the config key ``<stem>_drop`` / ``<stem>_increase``.
    """

    name: str
    tasks: frozenset
    higher_is_better: bool | None
    lower: float
    upper: float
    needs_scores: bool
    description: str
    compute: Callable[[Any, EvalContext], MetricValue]
    needs_labels: bool = True
    binary_only: bool = False
    test: str = "welch_z"
    window: str | None = None
    score_weight: float = 0.0
    aliases: tuple[str, ...] = ()
    threshold_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.test not in TEST_KINDS:
            raise ValidationError(f"test must be one of {TEST_KINDS}, got {self.test!r}", parameter="test")
        if self.window not in WINDOW_KINDS:
            raise ValidationError(f"window must be one of {WINDOW_KINDS}, got {self.window!r}",
                                  parameter="window")


METRICS: dict[str, MetricSpec] = {}

#: Alias -> canonical name, filled from the metric table (:attr:`MetricSpec.aliases`).
ALIASES: dict[str, str] = {}


def register_metric(spec: MetricSpec, *, overwrite: bool = False) -> MetricSpec:
    """Add a state-based metric to the registry."""
    if spec.name in METRICS and not overwrite:
        raise ValidationError(f"metric {spec.name!r} is already registered", parameter="spec")
    METRICS[spec.name] = spec
    for alias in spec.aliases:
        ALIASES[alias] = spec.name
    return spec


def metric_names(task: str | None = None) -> list[str]:
    """Registered metric names (for a task)."""
    return [n for n, s in METRICS.items() if task is None or task in s.tasks]


def resolve_metric_name(name: str) -> str:
    """Canonical metric name for a name or alias (``auc`` -> ``roc_auc``)."""
    if name in METRICS or name in CUSTOM_METRICS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    valid = sorted(set(METRICS) | set(CUSTOM_METRICS))
    raise UnknownMetricError(f"unknown metric {name!r}; valid names: {', '.join(valid)}")


def threshold_metric(stem: str) -> str:
    """Canonical metric named by a config threshold key stem (``f1`` in ``f1_drop``).

    Examples
    --------
    >>> threshold_metric("f1"), threshold_metric("auc"), threshold_metric("log_loss")
    ('f1_macro', 'roc_auc', 'log_loss')
    """
    for spec in METRICS.values():
        if stem in spec.threshold_keys:
            return spec.name
    return resolve_metric_name(stem)


def get_metric(name: str) -> MetricSpec:
    """The spec of a registered metric (raises UnknownMetricError listing valid names).

    Examples
    --------
    >>> get_metric("log_loss").higher_is_better
    False
    >>> get_metric("auc").name
    'roc_auc'
    """
    canonical = resolve_metric_name(name)
    if canonical in METRICS:
        return METRICS[canonical]
    raise UnknownMetricError(f"{name!r} is a custom metric, not a state-based one")


# --------------------------------------------------------------------------- custom metrics
@dataclass(frozen=True)
class CustomMetric:
    """A metric computed from the raw batch (not mergeable: windows cannot re-aggregate it).

    ``func(y_true, y_pred, y_pred_proba) -> float``.
    """

    name: str
    func: Callable[..., float]
    higher_is_better: bool
    tasks: frozenset = ALL_TASKS
    description: str = ""


CUSTOM_METRICS: dict[str, CustomMetric] = {}


def register_custom_metric(
    name: str,
    func: Callable[..., float],
    *,
    higher_is_better: bool,
    tasks: frozenset | set | tuple = ALL_TASKS,
    description: str = "",
    overwrite: bool = False,
) -> CustomMetric:
    """Register a metric computed from raw ``(y_true, y_pred, y_pred_proba)``.

    Custom metrics are stored and reported like built-ins, but they are not mergeable:
    weekly windows show the sample-weighted mean of batch values, and no interval.

    Examples
    --------
    >>> import numpy as np
    >>> m = register_custom_metric(
    ...     "false_positive_count",
    ...     lambda y, p, proba: float(np.sum((np.asarray(p) == 1) & (np.asarray(y) == 0))),
    ...     higher_is_better=False, tasks={"binary"}, overwrite=True)
    >>> m.name
    'false_positive_count'
    """
    if not callable(func):
        raise ValidationError("func must be callable", parameter="func")
    if (name in CUSTOM_METRICS and not overwrite) or name in METRICS:
        raise ValidationError(f"metric {name!r} is already registered", parameter="name")
    cm = CustomMetric(name, func, bool(higher_is_better), frozenset(tasks), description)
    CUSTOM_METRICS[name] = cm
    return cm


# --------------------------------------------------------------------------- built-ins
def _undefined(name: str, reason: str, n: int = 0, level: float = 0.95) -> MetricValue:
    return MetricValue(name, math.nan, n=n, reason=reason, level=level, method="none")


def _present(state: ClassificationState) -> np.ndarray:
    cm = state.confusion
    return (cm.sum(axis=0) + cm.sum(axis=1)) > 0


def _accuracy(state: ClassificationState, ctx: EvalContext) -> MetricValue:
    cm = state.confusion
    correct = float(np.trace(cm))
    n = float(cm.sum())
    lo, hi = wilson_interval(correct, n, ctx.level)
    p = correct / n
    return MetricValue(
        "accuracy", p, lo, hi, math.sqrt(p * (1 - p) / n), ctx.level, int(n),
        method="wilson", successes=correct, trials=n,
    )


def _balanced_accuracy(state: ClassificationState, ctx: EvalContext) -> MetricValue:
    """Mean recall over the classes present in the labels (scikit-learn's ``balanced_accuracy_score``).

    Interval: the per-class recalls are independent binomial proportions given the class
    counts; the standard error uses add-one smoothed recalls (never zero, so an all-correct
    class does not collapse the interval), normal interval clipped to [0, 1].
    """
    cm = state.confusion.astype(float)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return _undefined("balanced_accuracy", "no_labels", int(cm.sum()), ctx.level)
    k = int(present.sum())
    hits = np.diag(cm)[present]
    n_i = support[present]
    value = float(np.mean(hits / n_i))
    smooth = (hits + 1.0) / (n_i + 2.0)
    se = math.sqrt(float(np.sum(smooth * (1 - smooth) / (n_i + 2.0)))) / k
    lo, hi = normal_interval(value, se, ctx.level)
    return MetricValue("balanced_accuracy", value, max(0.0, lo), min(1.0, hi), se, ctx.level, int(cm.sum()),
                       method="normal_smoothed")


#: Dirichlet draws started ahead of their evaluation (:func:`prefetch_dirichlet`), by
#: (confusion matrix, n_boot, seed): a pure function's pending results, taken once.
_DRAWS: dict[tuple, Any] = {}
_DRAWS_LOCK = threading.Lock()
_DRAWS_KEPT = 4


def _forget_draws() -> None:  # draws pending on the parent's threads never finish in a child
    global _DRAWS_LOCK
    _DRAWS.clear()
    _DRAWS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_draws)


def _draws_key(confusion: np.ndarray, n_boot: int, seed: int) -> tuple:
    return (confusion.dtype.str, confusion.shape, confusion.tobytes(), int(n_boot), int(seed))


def prefetch_dirichlet(confusion: np.ndarray, n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> None:
    """Start the macro metrics' Dirichlet draws of ``confusion`` on a worker thread (numpy
    draws gamma variates without the GIL). :func:`evaluate` of a state with this confusion
    matrix and these ``n_boot`` / ``seed`` takes them instead of drawing: the same function of
    the same arguments, so the same draws. At most a few are kept; nothing on one core."""
    from perfkit.metrics import _threads

    pool = _threads.pool()
    if pool is None:
        return
    confusion = np.array(confusion, copy=True)
    key = _draws_key(confusion, n_boot, seed)
    with _DRAWS_LOCK:
        if key in _DRAWS:
            return
        while len(_DRAWS) >= _DRAWS_KEPT:
            _DRAWS.pop(next(iter(_DRAWS)))
        _DRAWS[key] = pool.submit(dirichlet_confusion, confusion, n_boot, seed)


def _take_draws(confusion: np.ndarray, n_boot: int, seed: int) -> np.ndarray | None:
    with _DRAWS_LOCK:
        started = _DRAWS.pop(_draws_key(confusion, n_boot, seed), None)
    return None if started is None else started.result()


def _boot_prf(state: ClassificationState, ctx: EvalContext) -> np.ndarray:
    """Posterior draws (Dirichlet-smoothed bootstrap) of macro P / R / F1 over every class."""
    key = ("dirichlet_prf", ctx.n_boot, ctx.seed)
    if key not in ctx.cache:
        draws = _take_draws(state.confusion, ctx.n_boot, ctx.seed)
        if draws is None:
            draws = dirichlet_confusion(state.confusion, ctx.n_boot, ctx.seed)
        if _prf_kernel_exact(state.k) and draws.dtype == np.float64 and draws.flags.c_contiguous:
            ctx.cache[key] = _kernels.macro_prf_draws(draws, float(ctx.zero_division))
        else:
            ctx.cache[key] = macro_prf(draws, np.ones(state.k, dtype=bool), ctx.zero_division)
    return ctx.cache[key]


@functools.cache
def _prf_kernel_exact(k: int) -> bool:
    """Whether :func:`_kernels.macro_prf_draws` gives :func:`macro_prf`'s bits for ``k``
    classes on this machine (numpy's reductions add in the order of its build): checked once
    per ``k`` on 256 draws with an empty class, with zero_division 0 and 1."""
    if not 2 < k < 8:
        return False
    rng = np.random.default_rng(k)
    draws = rng.standard_gamma(rng.uniform(0.1, 40.0, k * k), size=(256, k * k)).reshape(256, k, k)
    draws[:8, :, 0] = 0.0  # class 0 never predicted in some draws
    draws[8:16, 0, :] = 0.0  # and absent in others
    every = np.ones(k, dtype=bool)
    return all(np.array_equal(_kernels.macro_prf_draws(draws, zd).view(np.int64),
                              macro_prf(draws, every, zd).view(np.int64)) for zd in (0.0, 1.0))


def _macro_parts(state: ClassificationState, ctx: EvalContext) -> tuple:
    """(values, bootstrap bounds (2, 3), standard errors, MOVER bounds or None) of macro
    P / R / F1: computed once per evaluation for the three metrics (column-wise quantiles
    equal the per-column ones)."""
    key = ("macro_parts", ctx.n_boot, ctx.seed, ctx.level, ctx.zero_division)
    if key not in ctx.cache:
        values = macro_prf(state.confusion, _present(state), ctx.zero_division)
        boot = _boot_prf(state, ctx)
        alpha = 1.0 - ctx.level
        bounds = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
        mover = macro_mover(state.confusion, ctx.level) if state.k > 2 else None
        ctx.cache[key] = (values, bounds, [float(boot[:, i].std(ddof=1)) for i in range(3)], mover)
    return ctx.cache[key]


def _macro(idx: int, name: str):
    def compute(state: ClassificationState, ctx: EvalContext) -> MetricValue:
        present = _present(state)
        values, bounds, std, mover = _macro_parts(state, ctx)
        value = float(values[idx])
        lo, hi = bounds[0, idx], bounds[1, idx]
        cm = state.confusion
        method = "dirichlet_bootstrap"
        if mover is not None:
            # few rows per class: the smoothed bootstrap centres on biased ratio estimates;
            # the union with per-class Wilson bounds combined by MOVER keeps the coverage
            m_lo, m_hi = mover[idx]
            lo, hi = min(lo, m_lo), max(hi, m_hi)
            method = "dirichlet_bootstrap|mover"
        reasons = []
        pred = cm.sum(axis=0)
        true = cm.sum(axis=1)
        for j, c in enumerate(state.classes):
            if not present[j]:
                continue
            if idx in (0, 2) and pred[j] == 0:  # F1 too: it involves that undefined precision
                reasons.append(f"precision_zero_division:{c}")
            if idx == 1 and true[j] == 0:
                reasons.append(f"recall_zero_division:{c}")
        return MetricValue(
            name, value, float(min(lo, value)), float(max(hi, value)), float(std[idx]),
            ctx.level, state.n, reason=";".join(reasons) or None, method=method,
        )

    return compute


def _positive(kind: str):
    def compute(state: ClassificationState, ctx: EvalContext) -> MetricValue:
        cm = state.confusion
        j = state.positive_index
        tp = float(cm[j, j])
        pred = float(cm[:, j].sum())
        true = float(cm[j, :].sum())
        if kind == "precision":
            num, den = tp, pred
        elif kind == "recall":
            num, den = tp, true
        else:
            num, den = 2 * tp, pred + true
        if den == 0:
            # nothing observed about the positive class: the population value may be anything
            return MetricValue(
                kind, ctx.zero_division, 0.0, 1.0, n=state.n, level=ctx.level,
                reason=f"{kind}_zero_division", method="no_information",
            )
        value = num / den
        if kind == "f1":
            errors = pred + true - 2 * tp  # fp + fn
            lo, hi = f1_interval(tp, errors, ctx.level)
            jac = tp / (tp + errors)
            se = 2 * math.sqrt(jac * (1 - jac) / (tp + errors)) / (1 + jac) ** 2
            return MetricValue(
                "f1", value, min(lo, value), max(hi, value), se, ctx.level, state.n, method="wilson_jaccard",
            )
        lo, hi = wilson_interval(num, den, ctx.level)
        return MetricValue(
            kind, value, lo, hi, math.sqrt(value * (1 - value) / den), ctx.level, state.n,
            method="wilson", successes=num, trials=den,
        )

    return compute


def _auc_parts(state: ClassificationState) -> list[tuple[float, float, float | None, int, int]]:
    """Per histogram class: (auc, var, error_bound, n_pos, n_neg)."""
    out = []
    pos_total, neg_total = state.hist_pos.row_sums(), state.hist_neg.row_sums()
    for j, c in enumerate(state.hist_classes):
        P = int(pos_total[j])
        N = int(neg_total[j])
        if state.auc_exact is not None:
            out.append((state.auc_exact[j], state.auc_var_exact[j], 0.0, P, N))
            continue
        # on the occupied buckets only: the same result as the dense rows
        a, v, b = _kernels.delong_from_histograms(*state.hist_pos.aligned_rows(state.hist_neg, j))
        out.append((float(a), float(v), float(b), P, N))
        del c
    return out


def _roc_auc(state: ClassificationState, ctx: EvalContext) -> MetricValue:
    parts = _auc_parts(state)
    if state.task == "binary":
        a, v, bound, P, N = parts[0]
        if not math.isfinite(a):
            return _undefined("roc_auc", "single_class_in_y_true", state.n, ctx.level)
        se = math.sqrt(max(v, 0.0))
        lo, hi = auc_score_interval(a, v, P, N, ctx.level)
        method = "score_delong"
        if bound:
            lo, hi = max(0.0, lo - bound), min(1.0, hi + bound)
        return MetricValue(
            "roc_auc", a, lo, hi, se, ctx.level, state.n_scored, method=method,
            error_bound=bound, reason=None if state.auc_exact is not None else "from_histograms",
        )
    defined = [(p, state.classes[c]) for p, c in zip(parts, state.hist_classes, strict=True) if math.isfinite(p[0])]
    if not defined:
        return _undefined("roc_auc", "no_class_with_positives_and_negatives", state.n, ctx.level)
    skipped = [state.classes[c] for p, c in zip(parts, state.hist_classes, strict=True) if not math.isfinite(p[0])]
    k = len(defined)
    a = sum(p[0] for p, _ in defined) / k
    # the per-class AUCs are correlated. One batch: its exact influence-function ratio to
    # the independence sum. A merged window: the pair covariances from its merged pair
    # counts (states stored before those existed: the n-weighted mean of the batch ratios)
    if state.auc_exact is None and state.auc_pair_counts is not None:
        var = macro_auc_variance(state.hist_pos, state.hist_neg, [p[1] for p in parts],
                                 state.auc_pair_counts)
    else:
        ratio = state.auc_var_ratio if state.auc_var_ratio is not None else 1.0
        var = ratio * sum(p[1] for p, _ in defined) / (k * k)
    bound = sum(p[2] for p, _ in defined) / k
    se = math.sqrt(max(var, 0.0))
    lo, hi = logit_auc_interval(a, se, ctx.level)
    if not math.isfinite(lo):
        lo, hi = normal_interval(a, se, ctx.level)
        lo, hi = max(0.0, lo), min(1.0, hi)
    if bound:
        lo, hi = max(0.0, lo - bound), min(1.0, hi + bound)
    reasons = [f"class_without_positives:{c}" for c in skipped]
    if state.auc_exact is None:
        reasons.append("from_histograms")
    return MetricValue(
        "roc_auc", a, lo, hi, se, ctx.level, state.n_scored, method="delong_ovr_macro",
        error_bound=bound, reason=";".join(reasons) or None,
    )


def _log_loss(state: ClassificationState, ctx: EvalContext) -> MetricValue:
    m = state.logloss
    lo, hi, se = skew_corrected_interval(m.n, m.mean, m.m2, m.m3, ctx.level, m4=m.m4)
    return MetricValue(
        "log_loss", m.mean, max(0.0, min(lo, m.mean)) if math.isfinite(lo) else lo,
        max(hi, m.mean) if math.isfinite(hi) else hi, se, ctx.level, m.n, method="skew_corrected_t",
    )


def _brier_score(state: ClassificationState, ctx: EvalContext) -> MetricValue:
    """Mean Brier term (scikit-learn's ``brier_score_loss``), t interval on the row terms."""
    m = state.brier
    if m is None or m.n == 0:
        return _undefined("brier_score", "no_scores" if not state.has_scores else "not_tracked", state.n,
                          ctx.level)
    se = m.mean_se() if m.n > 1 else math.nan
    lo, hi = normal_interval(m.mean, se, ctx.level, df=m.n - 1)
    return MetricValue("brier_score", m.mean, max(0.0, lo) if math.isfinite(lo) else lo, hi, se, ctx.level, m.n,
                       method="t_mean")


def _sample_count(state: Any, ctx: EvalContext) -> MetricValue:
    n = float(state.n)
    return MetricValue("sample_count", n, n, n, 0.0, ctx.level, state.n, method="exact")


def _var_of_moments(m, ctx: EvalContext) -> tuple[float, float]:
    if m.n == 0:  # a class with no scored rows yet (the model's label set grew)
        return math.nan, math.nan
    var = m.m2 / m.n
    if m.n < 2:
        return var, math.nan
    mu4 = m.m4 / m.n
    return var, math.sqrt(max(mu4 - var * var, 0.0) / m.n)


def _prediction_variance(state: Any, ctx: EvalContext) -> MetricValue:
    if isinstance(state, RegressionState):
        var, se = _var_of_moments(state.yhat, ctx)
        method = "moments"
    elif state.score_moments:
        cols = state.hist_classes
        pairs = [_var_of_moments(state.score_moments[c], ctx) for c in cols]
        var = sum(p[0] for p in pairs) / len(pairs)
        se = sum(p[1] for p in pairs) / len(pairs)
        method = "moments_of_scores"
    else:
        q = state.pred_counts / state.n
        cols = state.hist_classes
        var = float(np.mean([q[c] * (1 - q[c]) for c in cols]))
        se = math.nan
        method = "predicted_class_indicator"
    lo, hi = normal_interval(var, se, ctx.level)
    if math.isfinite(lo):
        lo = max(0.0, lo)
    return MetricValue("prediction_variance", var, lo, hi, se, ctx.level, state.n, method=method)


def _mean_metric(name: str, attr: str):
    """Mean of a per-row quantity: Hall's skewness-corrected t interval from the moments."""

    def compute(state: RegressionState, ctx: EvalContext) -> MetricValue:
        m = getattr(state, attr)
        lo, hi, se = skew_corrected_interval(m.n, m.mean, m.m2, m.m3, ctx.level, m4=m.m4)
        if math.isfinite(lo):
            lo, hi = max(0.0, min(lo, m.mean)), max(hi, m.mean)
        return MetricValue(name, m.mean, lo, hi, se, ctx.level, m.n, method="skew_corrected_t")

    return compute


def _t_metric(name: str, attr: str):
    """Compute function of a mean-type regression metric (the MSE has its own, tail-aware)."""
    return _mse if name == "mse" else _mean_metric(name, attr)


#: the tail index of e**2 below which the MSE has no finite variance (alpha < 2)
_HEAVY_GAMMA = 0.5
#: fewest rows on which a tail is estimated at all
_MIN_TAIL_ROWS = 100
#: rows from which the tail estimator alone gives the MSE interval (k = 2 sqrt(n) >= 50)
_TAIL_ROWS = 625


def _squared_error_tail(state: RegressionState, ctx: EvalContext):
    """(values of e**2 per bucket, counts, Hill gamma of e**2) or None without a histogram."""
    key = ("se_tail",)
    if key not in ctx.cache:
        h = state.ae_hist
        if h is None or state.n < _MIN_TAIL_ROWS:
            ctx.cache[key] = None
        else:
            v = h.values() ** 2
            g = hill_index(v, h.counts, max(int(math.sqrt(state.n)), 5))
            ctx.cache[key] = (v, h.counts, g)
    return ctx.cache[key]


def _mse_interval(state: RegressionState, ctx: EvalContext) -> tuple[float, float, float, str | None, str]:
    """(lower, upper, se, reason, method) of the MSE (computed once per evaluation: the MSE,
    RMSE and R² read it)."""
    key = ("mse_interval",)
    if key not in ctx.cache:
        ctx.cache[key] = _mse_interval_of(state, ctx)
    return ctx.cache[key]


def _mse_interval_of(state: RegressionState, ctx: EvalContext) -> tuple[float, float, float, str | None, str]:
    m = state.se
    lo, hi, se = skew_corrected_interval(m.n, m.mean, m.m2, m.m3, ctx.level, m4=m.m4)
    tail = _squared_error_tail(state, ctx)
    # heavy: the tail index of e**2 (Hill) is below 2 AND the errors' kurtosis is high (Hill
    # alone over-reads light tails on few rows: its bias is about 1 / log(sqrt(n)))
    kurt = state.e.excess_kurtosis()
    if (tail is None or not math.isfinite(tail[2]) or tail[2] <= _HEAVY_GAMMA
            or not (math.isfinite(kurt) and kurt > 3.0)):
        return lo, hi, se, None, "skew_corrected_t"
    values, counts, g = tail
    reason = f"heavy_tailed:tail_index={1.0 / g:.2f}"
    _, tse, tlo, thi = heavy_tail_mean_interval(values, counts, ctx.level)
    if not math.isfinite(tlo):
        return lo, hi, se, reason, "skew_corrected_t"
    # ``se`` stays the moments' standard error (windows rebuild exact sums from it)
    del tse
    if state.n >= _TAIL_ROWS:
        return tlo, thi, se, reason, "hill_tail_mean"
    # few rows: neither interval is reliable alone; report their union
    return min(lo, tlo), max(hi, thi), se, reason, "hill_tail_mean|skew_corrected_t"


def _mse(state: RegressionState, ctx: EvalContext) -> MetricValue:
    value = state.se.mean
    lo, hi, se, reason, method = _mse_interval(state, ctx)
    if math.isfinite(lo):
        lo, hi = max(0.0, min(lo, value)), max(hi, value)
    return MetricValue("mse", value, lo, hi, se, ctx.level, state.n, reason=reason, method=method)


def _rmse(state: RegressionState, ctx: EvalContext) -> MetricValue:
    mse = _mse(state, ctx)
    value = math.sqrt(mse.value)
    se = mse.se / (2 * value) if value > 0 else math.nan
    lo = math.sqrt(max(mse.ci_lower, 0.0)) if math.isfinite(mse.ci_lower) else math.nan
    hi = math.sqrt(mse.ci_upper) if not math.isnan(mse.ci_upper) else math.nan
    return MetricValue("rmse", value, lo, hi, se, ctx.level, state.n, reason=mse.reason, method="sqrt_of_mse")


def _r2(state: RegressionState, ctx: EvalContext) -> MetricValue:
    n = state.n
    if n < 2:
        return _undefined("r2", "fewer_than_two_samples", n, ctx.level)
    sst = state.y.m2
    mse = state.se.mean
    sse = mse * n
    if sst <= 0:
        # scikit-learn's force_finite convention for a constant target
        value = 1.0 if sse == 0 else 0.0
        return MetricValue("r2", value, n=n, level=ctx.level, reason="constant_target", method="none")
    value = 1.0 - sse / sst
    A = mse
    B = sst / n
    var_s = state.se.m2 / n
    var_d2 = state.y.m4 / n - B * B
    dbar = state.y.mean - state.shift
    sum_s = state.se.mean * n
    e_sd2 = (state.cross2 - 2 * dbar * state.cross1 + dbar * dbar * sum_s) / n
    cov = e_sd2 - A * B
    v = (var_s / B**2 + A * A * var_d2 / B**4 - 2 * A * cov / B**3) / n
    se = math.sqrt(max(v, 0.0))
    a_lo, a_hi, _, reason, _ = _mse_interval(state, ctx)
    if reason is None:
        lo, hi = normal_interval(value, se, ctx.level, df=n - 1)
        return MetricValue("r2", value, lo, min(hi, 1.0), se, ctx.level, n, method="influence_function")
    # heavy-tailed errors: R2 = D / (A + D) with A = MSE (tail-aware interval) and
    # D = Var(y) - MSE, whose influence (y - ybar)**2 - e**2 has a finite variance when the
    # predictions are light-tailed; the two intervals are combined by MOVER (Zou & Donner)
    D = B - A
    se_d = math.sqrt(max(var_d2 + var_s - 2 * cov, 0.0) / n)
    z = z_value(ctx.level)
    d_lo, d_hi = D - z * se_d, D + z * se_d

    def r2(a: float, d: float) -> float:
        return d / (a + d) if a + d > 0 else -math.inf

    da = value - r2(a_hi, D)
    dd = value - r2(A, d_lo)
    ua = r2(max(a_lo, 0.0), D) - value
    ud = r2(A, d_hi) - value
    lo = value - math.sqrt(da * da + dd * dd) if math.isfinite(da + dd) else -math.inf
    hi = value + math.sqrt(ua * ua + ud * ud)
    return MetricValue(
        "r2", value, lo, min(hi, 1.0), se, ctx.level, n, reason=reason, method="mover_tail_mse",
    )


def _abs_error_quantile(name: str, q: float):
    """A quantile of |e| read from the state's log-spaced histogram (relative error <= 0.39 %)."""

    def compute(state: RegressionState, ctx: EvalContext) -> MetricValue:
        h = state.ae_hist
        if h is None:
            return _undefined(name, "no_error_histogram", state.n, ctx.level)
        value = h.quantile(q)
        # distribution-free bounds: order statistics read from their buckets (within REL_ERROR)
        r_lo, r_hi = order_statistic_ranks(h.n, q, ctx.level)
        ranks = np.array([math.floor(r_lo), math.ceil(r_lo), math.floor(r_hi), math.ceil(r_hi)])
        v = h.order_statistic(ranks)
        lo = float(v[0] + (r_lo - ranks[0]) * (v[1] - v[0]))
        hi = float(v[2] + (r_hi - ranks[2]) * (v[3] - v[2]))
        lo, hi = min(lo, value), max(hi, value)
        se = (hi - lo) / (2 * z_value(ctx.level))  # for z tests: the interval's half width
        return MetricValue(
            name, value, lo, hi, se, ctx.level, state.n, method="order_statistics",
            error_bound=REL_ERROR * value,
        )

    return compute


def _mape(state: RegressionState, ctx: EvalContext) -> MetricValue:
    m = state.ape
    if m.n == 0:
        return _undefined("mape", "all_targets_zero", state.n, ctx.level)
    lo, hi, se = skew_corrected_interval(m.n, m.mean, m.m2, m.m3, ctx.level, m4=m.m4)
    if math.isfinite(lo):
        lo, hi = max(0.0, min(lo, m.mean)), max(hi, m.mean)
    reason = f"zero_targets_skipped:{state.n_zero_target}" if state.n_zero_target else None
    return MetricValue("mape", m.mean, lo, hi, se, ctx.level, m.n, reason=reason, method="skew_corrected_t")


def _guard_labels(fn):
    def compute(state, ctx):
        if not state.labelled:
            return _undefined(fn_name[fn], "labels_pending", state.n, ctx.level)
        return fn(state, ctx)

    return compute


fn_name: dict = {}


def _builtin(name, tasks, hib, lo, hi, needs_scores, desc, fn, *, needs_labels=True, binary_only=False,
             **table: Any):
    fn_name[fn] = name
    register_metric(
        MetricSpec(
            name, tasks, hib, lo, hi, needs_scores, desc,
            _guard_labels(fn) if needs_labels else fn,
            needs_labels=needs_labels, binary_only=binary_only, **table,
        )
    )


# ---- the built-in metrics, in one visible block: the metric table
C, B, R, A = CLASSIFICATION, frozenset({"binary"}), REGRESSION, ALL_TASKS
_builtin("accuracy", C, True, 0, 1, False, "Share of correct predictions (Wilson interval).", _accuracy,
         test="proportion", window="proportion", score_weight=1.0)
_builtin("balanced_accuracy", C, True, 0, 1, False, "Mean per-class recall over the classes present.",
         _balanced_accuracy, test="normal_z")
_builtin("precision_macro", C, True, 0, 1, False, "Unweighted mean of per-class precision.",
         _macro(0, "precision_macro"), test="bootstrap_z", threshold_keys=("precision",))
_builtin("recall_macro", C, True, 0, 1, False, "Unweighted mean of per-class recall.",
         _macro(1, "recall_macro"), test="bootstrap_z", threshold_keys=("recall",))
_builtin("f1_macro", C, True, 0, 1, False, "Unweighted mean of per-class F1.", _macro(2, "f1_macro"),
         test="bootstrap_z", score_weight=1.0, threshold_keys=("f1",))
_builtin("precision", B, True, 0, 1, False, "Precision of the positive class.", _positive("precision"),
         binary_only=True, test="proportion", window="proportion")
_builtin("recall", B, True, 0, 1, False, "Recall of the positive class.", _positive("recall"),
         binary_only=True, test="proportion", window="proportion")
_builtin("f1", B, True, 0, 1, False, "F1 of the positive class.", _positive("f1"), binary_only=True,
         test="bootstrap_z")
_builtin("roc_auc", C, True, 0, 1, True, "ROC AUC (binary; multiclass one-vs-rest macro).", _roc_auc,
         test="delong_z", score_weight=1.0, aliases=("auc",), threshold_keys=("auc",))
_builtin("log_loss", C, False, 0, math.inf, True, "Mean cross-entropy (scikit-learn clipping).", _log_loss,
         window="mean", aliases=("logloss",))
_builtin("brier_score", C, False, 0, 2, True,
         "Mean squared error of the probabilities (binary: positive class; multiclass: all classes).",
         _brier_score, window="mean", aliases=("brier",))
_builtin("mse", R, False, 0, math.inf, False, "Mean squared error.", _t_metric("mse", "se"), window="mean")
_builtin("rmse", R, False, 0, math.inf, False, "Root mean squared error.", _rmse)
_builtin("mae", R, False, 0, math.inf, False, "Mean absolute error.", _t_metric("mae", "ae"), window="mean")
_builtin("r2", R, True, -math.inf, 1, False, "Coefficient of determination.", _r2, score_weight=1.0)
_builtin("mape", R, False, 0, math.inf, False,
         "Mean absolute percentage error over non-zero targets (a fraction).", _mape, window="mean")
_builtin("smape", R, False, 0, 2, False,
         "Symmetric MAPE, 2|e|/(|y|+|yhat|), 0/0 counted as 0 (a fraction in [0, 2]).",
         _t_metric("smape", "sape"), window="mean")
_builtin("sample_count", A, None, 0, math.inf, False, "Rows in the batch or window.", _sample_count,
         needs_labels=False, test="none", aliases=("n",))
_builtin("prediction_variance", A, None, 0, math.inf, False,
         "Variance of the predictions (scores when given).", _prediction_variance, needs_labels=False,
         test="none")
_builtin("median_absolute_error", R, False, 0, math.inf, False,
         "Median of |y - yhat| (from a log-spaced histogram; relative error <= 0.39 %).",
         _abs_error_quantile("median_absolute_error", 0.5), test="welch_z")
_builtin("p90_absolute_error", R, False, 0, math.inf, False,
         "90th percentile of |y - yhat| (log-spaced histogram; relative error <= 0.39 %).",
         _abs_error_quantile("p90_absolute_error", 0.9), test="welch_z")
