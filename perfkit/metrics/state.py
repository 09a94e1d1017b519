"""Mergeable states: the sufficient statistics of a batch.

Every metric perfkit reports is a pure function of a state. States of batches merge into
the state of their union (``merge(state(a), state(b))`` gives the metrics of ``a + b``),
serialize to compact JSON-safe dicts and back without loss, and are what the store keeps.

Each field is declared once, with its kind (:mod:`perfkit.metrics._fields`): counts add,
moments merge with Chan / Pébay, sparse histograms add, per-batch exact values are lost on
merge, and so on. Merging states, merging stored dicts, serialization and
``prediction_part`` are derived from the declaration: one merge implementation, which merges
any number of states at once (pairwise ``a.merge(b)`` is the two-state case).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from queue import Empty, SimpleQueue
from typing import Any, ClassVar

import numpy as np

from perfkit.exceptions import StateError
from perfkit.metrics import _auc_cov, _kernels, _threads
from perfkit.metrics._abs_hist import AbsErrorHistogram
from perfkit.metrics._fields import (
    AbsHist,
    Counts,
    CrossSum,
    Exact,
    Field,
    First,
    Max,
    MomentsField,
    MomentsTuple,
    NWeightedMean,
    Same,
    Sparse,
    Sum,
    check_same,
    merge_columns,
)
from perfkit.metrics._moments import Moments
from perfkit.metrics._sparse import SparseCounts, StoredSum
from perfkit.metrics._validation import (
    PreparedClassification,
    PreparedRegression,
    check_finite_after,
    prepare,
)

__all__ = [
    "ClassificationState",
    "RegressionState",
    "SparseCounts",
    "State",
    "compute_state",
    "merge_dicts_to_state",
    "merge_state_dicts",
    "merge_dict_chunks_to_state",
    "merge_states",
    "state_dict_for_evaluation",
    "state_from_dict",
]

#: 2: sparse counts stored as cell text (layout 3), so that a perfkit of version 1, which
#: reads only per-row layouts, says the state is newer instead of calling it malformed.
#: States of version 1 are read as they were.
STATE_VERSION = 2
_EPS = float(np.finfo(np.float64).eps)


def _f(kind, default: Any = dataclasses.MISSING, *, label_free: Any = False, scores: bool = False,
       init: bool = True, estimates: bool = False):
    """A declared state field: its kind, whether ``prediction_part`` keeps it (True), resets
    it to its default (False) or derives it (a function of the state), whether it belongs
    to the score part (merged over the states that have scores), and whether only the
    label-free estimates read it (``evaluate`` never does)."""
    meta = {"kind": kind, "label_free": label_free, "scores": scores, "estimates": estimates}
    return dataclasses.field(default=default, metadata=meta, init=init)


def _no(_state) -> bool:
    return False


def _unlabelled_pos(s):
    return None if s.hist_neg is None else SparseCounts.empty(s.hist_neg.shape)


def _unlabelled_neg(s):
    if s.hist_neg is None or s.hist_pos is None:
        return s.hist_neg
    return s.hist_neg + s.hist_pos


def _pair_shape(first: dict) -> tuple[int, ...]:
    cells = _auc_cov.CELLS
    return (-1, 3, cells, cells)


def _joint_shape(first: dict) -> tuple[int, ...]:
    k = len(first["classes"])
    return (k, k, -1)


class _Declared:
    """Merging, serialization and ``prediction_part`` derived from the declared fields."""

    KIND: ClassVar[str]
    _SCORE_FIELD: ClassVar[str | None] = None

    @classmethod
    def declared(cls) -> tuple[Field, ...]:
        """The declared fields (name, kind, label-free rule, score part, default)."""
        decl = cls.__dict__.get("_DECL_CACHE")
        if decl is None:
            decl = tuple(
                Field(f.name, f.metadata["kind"], f.metadata["label_free"], f.metadata["scores"],
                      None if f.default is dataclasses.MISSING else f.default,
                      f.default is dataclasses.MISSING, f.metadata.get("estimates", False))
                for f in dataclasses.fields(cls)
            )
            cls._DECL_CACHE = decl
        return decl

    def __post_init__(self) -> None:
        for f in self.declared():
            v = getattr(self, f.name)
            if v is not None:
                c = f.kind.convert(v)
                if c is not v:
                    object.__setattr__(self, f.name, c)

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-safe form (histograms sparse and base64-packed)."""
        out: dict[str, Any] = {"kind": self.KIND, "version": STATE_VERSION}
        for f in self.declared():
            v = getattr(self, f.name)
            out[f.name] = None if v is None else f.kind.encode(v)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        kwargs: dict[str, Any] = {}
        for f in cls.declared():
            if f.name not in d:
                if f.required:  # required (no default): malformed
                    raise KeyError(f.name)
                value = f.default
            else:
                raw = d[f.name]
                if raw is None:
                    value = None
                elif isinstance(f.kind, Sparse) and f.kind.shape is not None:
                    value = f.kind.decode(raw, f.kind.shape(d))
                else:
                    value = f.kind.decode(raw)
            kwargs[f.name] = value
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: v for k, v in kwargs.items() if k in init})

    def prediction_part(self):
        """The label-free part of this state (prediction distribution only)."""
        if not self.labelled:
            return self
        init = {f.name for f in dataclasses.fields(self) if f.init}
        kwargs = {}
        for f in self.declared():
            if f.name not in init:
                continue
            rule = f.label_free
            kwargs[f.name] = getattr(self, f.name) if rule is True else f.default if rule is False else rule(self)
        return type(self)(**kwargs)

    def merge(self, other):
        """State of the union of both batches."""
        return _merge_objects([self, other])

    def equals(self, other: object) -> bool:
        """Exact equality of every field (arrays compared element-wise)."""
        return type(other) is type(self) and self.to_dict() == other.to_dict()


@dataclass(frozen=True, eq=False)
class ClassificationState(_Declared):
    """Sufficient statistics of a classification batch (binary or multiclass).

    Attributes
    ----------
    task : {"binary", "multiclass"}
    classes : tuple
        Sorted class labels (JSON-safe Python scalars).
    positive_index : int
        Index of the positive class in ``classes`` (binary), -1 for multiclass.
    n : int
        Rows.
    labelled : bool
        False for a prediction-only state (labels not yet arrived).
    confusion : ndarray of shape (k, k) or None
        Counts, rows = truth, columns = prediction.
    pred_counts : ndarray of shape (k,)
        Predicted-class counts (available without labels).
    hist_pos, hist_neg : SparseCounts of shape (h, HIST_BINS) or None
        Per histogram class (binary: the positive class; multiclass: every class) the
        log-linear score histogram of rows of that class (``pos``) and of the others
        (``neg``). Unlabelled states put every row in ``hist_neg``. Sparse in memory;
        ``hist_pos[j]`` is the dense row ``j``, ``np.asarray(hist_pos)`` the dense array.
    score_moments : tuple of Moments
        Moments of each class's predicted probability.
    logloss : Moments or None
        Moments of the per-row log loss.
    brier : Moments or None
        Per-row Brier terms: ``(p_pos - y_pos)**2`` (binary), ``sum_k (p_k - [y = k])**2``
        (multiclass), as scikit-learn's ``brier_score_loss``.
    auc_exact : tuple of float or None
        Exact per-class AUC of a single batch (lost on merge; histograms take over).
    auc_var_exact : tuple of float or None
        DeLong variance matching ``auc_exact``.
    auc_var_ratio : float or None
        Multiclass: the OvR macro AUC's variance (with the covariances between classes,
        from per-row influence) over ``sum(var_c) / k**2``; merged as an n-weighted mean.
    hist_pred : SparseCounts of shape (h, HIST_BINS) or None
        Per histogram class, the score histogram of the rows *predicted* as that class
        (binary: predicted positive). With the score histograms this is the joint count of
        predicted class x score bin, which keeps label-free estimates exact when the
        predicted label is not a threshold of the score. Labels are not needed; None for
        states stored before it existed (merging with such a state drops it).
    pred_joint : SparseCounts of shape (k, k, JOINT_CELLS) or None
        Multiclass: rows by (predicted class, class, coarse cell of that class's score).
        Label-free estimates use it for the covariances between classes within a row.
        None for binary states and states stored before it existed.
    auc_pair_counts : SparseCounts of shape (k (k - 1) / 2, 3, CELLS, CELLS) or None
        Labelled multiclass (k <= 10): rows by pair of classes, group (either class or
        another) and coarse cells of both scores (stored as one sparse row); the merged macro AUC's
        covariance terms follow from it (:mod:`perfkit.metrics._auc_cov`). None otherwise
        and for states stored before it existed (merging with such a state drops it).
    """

    KIND: ClassVar[str] = "classification"
    _SCORE_FIELD: ClassVar[str | None] = "hist_neg"

    task: str = _f(Same("cannot merge states of different tasks: {a} vs {b}"), label_free=True)
    classes: tuple = _f(Same("cannot merge states of different classes: {a} vs {b}", decode=tuple, encode=list),
                        label_free=True)
    positive_index: int = _f(Same("cannot merge binary states with different positive labels", decode=int),
                             label_free=True)
    n: int = _f(Sum(), label_free=True)
    labelled: bool = _f(Same("cannot merge a labelled state with a prediction-only one; use "
                             "state.prediction_part() on the labelled one to merge prediction distributions",
                             decode=bool), label_free=_no)
    confusion: np.ndarray | None = _f(Counts())
    pred_counts: np.ndarray = _f(Counts(), label_free=True)
    hist_pos: SparseCounts | None = _f(Sparse(), None, label_free=_unlabelled_pos, scores=True)
    hist_neg: SparseCounts | None = _f(Sparse(), None, label_free=_unlabelled_neg, scores=True)
    score_moments: tuple = _f(MomentsTuple(), (), label_free=True, scores=True)
    logloss: Moments | None = _f(MomentsField(), None, scores=True)
    brier: Moments | None = _f(MomentsField(), None, scores=True)
    eps: float = _f(Max(), _EPS, label_free=True)
    auc_exact: tuple | None = _f(Exact(), None)
    auc_var_exact: tuple | None = _f(Exact(), None)
    n_batches: int = _f(Sum(), 1, label_free=True)
    auc_var_ratio: float | None = _f(NWeightedMean(), None, scores=True)
    hist_pred: SparseCounts | None = _f(Sparse(), None, label_free=True, scores=True, estimates=True)
    pred_joint: SparseCounts | None = _f(Sparse(_joint_shape), None, label_free=True, scores=True, estimates=True)
    auc_pair_counts: SparseCounts | None = _f(Sparse(_pair_shape, flat=True), None, scores=True)

    @property
    def k(self) -> int:
        return len(self.classes)

    @property
    def has_scores(self) -> bool:
        return self.hist_neg is not None

    @property
    def n_scored(self) -> int:
        """Rows that had scores (``y_pred_proba``): ``n`` unless batches without scores were merged in."""
        if not self.has_scores:
            return 0
        total = self.hist_neg.row_sums()[0] + (0 if self.hist_pos is None else self.hist_pos.row_sums()[0])
        return int(total)

    @property
    def hist_classes(self) -> tuple[int, ...]:
        return (self.positive_index,) if self.task == "binary" else tuple(range(self.k))

    def score_histogram(self, class_index: int | None = None) -> np.ndarray:
        """Histogram of all rows' score for a class (drift works on this, labels or not)."""
        if not self.has_scores:
            raise StateError("this state has no scores (no y_pred_proba was given)")
        j = 0 if class_index is None else self.hist_classes.index(class_index)
        total = self.hist_neg[j]
        if self.hist_pos is not None:
            total += self.hist_pos[j]
        return total


@dataclass(frozen=True, eq=False)
class RegressionState(_Declared):
    """Sufficient statistics of a regression batch.

    Moments (count, mean, M2, M3, M4) of the target ``y``, the prediction ``yhat``, the
    residual ``e = y - yhat``, ``|e|``, ``e**2``, the absolute percentage error over
    non-zero targets and the sMAPE terms, plus shifted cross sums of ``e**2`` with ``y``
    for the influence-function interval of R². All merge exactly (Chan / Pébay).

    ``ae_hist`` is a sparse log-spaced histogram of ``|e|`` (buckets 0.78 % wide, merged by
    adding counts): quantiles of the absolute error and the tail of ``e**2`` for heavy-tailed
    intervals come from it. ``None`` in states written before it existed.
    """

    KIND: ClassVar[str] = "regression"

    n: int = _f(Sum(), label_free=True)
    labelled: bool = _f(Same("cannot merge a labelled state with a prediction-only one; use "
                             "state.prediction_part()", decode=bool), label_free=_no)
    yhat: Moments = _f(MomentsField(), label_free=True)
    y: Moments | None = _f(MomentsField(), None)
    e: Moments | None = _f(MomentsField(), None)
    ae: Moments | None = _f(MomentsField(), None)
    se: Moments | None = _f(MomentsField(), None)
    ape: Moments | None = _f(MomentsField(), None)
    n_zero_target: int = _f(Sum(), 0)
    sape: Moments | None = _f(MomentsField(), None)
    shift: float = _f(First(), 0.0)
    cross1: float = _f(CrossSum(1), 0.0)  # sum e^2 (y - shift)
    cross2: float = _f(CrossSum(2), 0.0)  # sum e^2 (y - shift)^2
    n_batches: int = _f(Sum(), 1, label_free=True)
    ae_hist: AbsErrorHistogram | None = _f(AbsHist(), None)
    task: str = _f(Same("cannot merge states of different tasks: {a} vs {b}"), "regression",
                   label_free=True, init=False)


State = ClassificationState | RegressionState
_CLASSES = {"classification": ClassificationState, "regression": RegressionState}


def _merge_objects(states: list[State]) -> State:
    """The one merge: every declared field merged over all ``states`` at once."""
    cls = type(states[0])
    for s in states[1:]:
        if type(s) is not cls:
            raise StateError(f"cannot merge a {cls.KIND} state with {type(s).__name__}")
    if len(states) == 1:
        return states[0]
    decl = cls.declared()
    cols = {f.name: [getattr(s, f.name) for s in states] for f in decl}
    check_same(decl, cols)
    return _build(cls, decl, cols, stored=False)


def _build(cls, decl, cols, stored: bool, premerged: dict[str, Any] | None = None) -> State:
    scored = None
    if cls._SCORE_FIELD is not None:
        has = cols[cls._SCORE_FIELD]
        if any(v is None for v in has):
            scored = [i for i, v in enumerate(has) if v is not None]
    if scored is not None:
        premerged = None  # computed over every state: not the score fields' merge then
    merged = merge_columns(decl, cols, stored, scored, premerged)
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in merged.items() if k in init})


def _merge_stored(dicts: list[dict[str, Any]], for_evaluation: bool = False,
                  premerged: dict[str, Any] | None = None) -> State:
    """The same merge on stored dicts: columns of stored values, histograms never densified.

    ``for_evaluation``: fields only the label-free estimates read are left at their default.
    ``premerged``: merged values of sparse fields already added from these dicts."""
    kinds = {d.get("kind") for d in dicts}
    if len(kinds) > 1:
        raise StateError(f"cannot merge states of different kinds: {sorted(map(str, kinds))}")
    cls = _CLASSES.get(dicts[0].get("kind"))
    if cls is None:
        raise StateError(f"unknown state kind {dicts[0].get('kind')!r}")
    if any(d.get("version", 1) > STATE_VERSION for d in dicts):
        raise StateError(f"a state version is newer than this perfkit ({STATE_VERSION})")
    decl = cls.declared()
    if for_evaluation:
        decl = tuple(f for f in decl if not f.estimates)
    names = [f.name for f in decl]
    try:  # every dict has every field (as this version writes them): columns by one C-level pass
        cols = dict(zip(names, map(list, zip(*map(operator.itemgetter(*names), dicts), strict=True)), strict=True))
    except KeyError:
        cols = {}
        for f in decl:
            if f.required:
                cols[f.name] = [d[f.name] for d in dicts]
            else:
                cols[f.name] = [d.get(f.name, f.default) for d in dicts]
    check_same(decl, cols)
    return _build(cls, decl, cols, stored=True, premerged=premerged)


def _macro_influence_ss_sparse(keys: np.ndarray, y_idx: np.ndarray, hist_pos: SparseCounts,
                               hist_neg: SparseCounts, defined: list[int]) -> float:
    """:func:`_kernels.macro_influence_ss_rows` from sparse histograms and every row's flat
    key (``keys``: (n, h)): the placement values are read at the rows' own buckets only, so
    the cost follows the rows, not the bins."""
    psi = _kernels.sparse_influence(keys, y_idx, hist_pos.keys.astype(np.int64), hist_pos.counts.astype(np.int64),
                                    hist_neg.keys.astype(np.int64), hist_neg.counts.astype(np.int64),
                                    np.asarray(defined, dtype=np.int64), _kernels.HIST_BINS)
    return float(psi @ psi)


def _macro_auc_var_ratio(p: PreparedClassification, hist_pos, hist_neg, variances, keys=None) -> float | None:
    """Influence-function variance of the OvR macro AUC over the independence sum.

    The per-class AUCs of one batch are correlated (every row is a positive of one class
    and a negative of the others), so ``sum(var_c) / k**2`` understates the macro AUC's
    variance. The per-row influence (binned placement values) gives the full variance;
    the ratio is stored so that merged windows, which only keep marginal histograms, can
    scale their independence sum by it.
    """
    defined = [j for j, v in enumerate(variances) if math.isfinite(v)]
    indep = sum(variances[j] for j in defined)
    if len(defined) < 2 or indep <= 0:
        return None
    if keys is not None:
        return _var_ratio(_macro_influence_ss_sparse(keys, p.y_idx, hist_pos, hist_neg, defined), p.n, indep)
    inf_pos, inf_neg = _influence_tables(hist_pos, hist_neg, defined)
    cls = np.asarray(defined, dtype=np.int64)
    pool = _threads.pool() if p.n >= _PARALLEL_ROWS else None
    if pool is None:
        ss = _kernels.macro_influence_ss_rows(p.proba, p.y_idx, cls, inf_pos, inf_neg, 0, p.n)
    else:
        h = p.n // 2
        job = pool.submit(_kernels.macro_influence_ss_rows, p.proba, p.y_idx, cls, inf_pos, inf_neg, 0, h)
        ss = _kernels.macro_influence_ss_rows(p.proba, p.y_idx, cls, inf_pos, inf_neg, h, p.n) + job.result()
    return _var_ratio(ss, p.n, indep)


def _influence_tables(hist_pos: SparseCounts, hist_neg: SparseCounts, defined: list[int]) -> tuple:
    """(inf_pos, inf_neg) (len(defined), HIST_BINS) placement tables of the classes ``defined``,
    from the sparse histograms (:func:`_kernels.placement_tables_sparse`: set where
    :func:`_kernels.macro_influence_ss_rows` reads them)."""
    inf_pos, inf_neg = np.zeros((len(defined), _kernels.HIST_BINS)), np.zeros((len(defined), _kernels.HIST_BINS))
    _kernels.placement_tables_sparse(hist_pos.keys.astype(np.int64), hist_pos.counts.astype(np.int64),
                                     hist_neg.keys.astype(np.int64), hist_neg.counts.astype(np.int64),
                                     np.asarray(defined, dtype=np.int64), inf_pos, inf_neg)
    return inf_pos, inf_neg


def _var_ratio(ss: float, n: int, indep: float) -> float | None:
    """The macro AUC's influence variance (``ss``: sum of squared row influences) over the
    independence sum ``indep`` (stored with the state, see :func:`_macro_auc_var_ratio`)."""
    return float(ss * n / (n - 1) / indep) if n > 1 else None


_PARALLEL_ROWS = 200_000
#: rows from which a multiclass state's exact AUCs and pair counts run on worker threads
_PARALLEL_ROWS_MULTICLASS = 2_000


_HOOK = threading.local()


@contextlib.contextmanager
def confusion_hook(fn: Callable[[np.ndarray], None]) -> Iterator[None]:
    """While active (on this thread), ``fn(confusion)`` is called with the confusion matrix of
    every labelled classification state computed, as soon as it is counted (before the score
    histograms): the tracker starts the evaluation's bootstrap draws there."""
    previous = getattr(_HOOK, "fn", None)
    _HOOK.fn = fn
    try:
        yield
    finally:
        _HOOK.fn = previous


def _exact_auc(proba: np.ndarray, y_idx: np.ndarray, c: int) -> tuple[float, float]:
    keys = np.empty(proba.shape[0], dtype=np.int64)
    _kernels.auc_keys_into(proba, y_idx, c, keys)
    keys.sort()
    a, v, _, _ = _kernels.auc_from_keys(keys)
    return a, v


def _exact_aucs(proba: np.ndarray, y_idx: np.ndarray, classes: list[int]) -> list[tuple[float, float]]:
    return [_exact_auc(proba, y_idx, c) for c in classes]


class _Lane:
    """Tasks shared by one worker of ``pool`` and the calling thread: both take the next task
    from one queue (:meth:`put`) until it is empty, so the calling thread, once its own work
    is done, runs what the worker has not started instead of waiting for it. Two threads on
    two cores, however the tasks' lengths fall. Results by key (:meth:`finish`).

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(1) as pool:
    ...     lane = _Lane(pool)
    ...     lane.put("a", sum, [1, 2])
    ...     sorted(lane.finish().items())
    [('a', 3)]
    """

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._queue: SimpleQueue = SimpleQueue()
        self._results: dict[Any, Any] = {}
        self._closed = False
        self._job = pool.submit(self._work)

    def put(self, key: Any, fn: Callable, *args: Any) -> None:
        self._queue.put((key, fn, args))

    def pending(self) -> int:
        """Tasks queued and not yet taken (approximate: the worker may be taking one)."""
        return self._queue.qsize()

    def _run(self, item) -> None:
        key, fn, args = item
        self._results[key] = fn(*args)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            self._run(item)

    def close(self) -> None:
        """No more tasks: the worker stops once the queue is empty (call on every exit)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    def finish(self) -> dict[Any, Any]:
        """Run the tasks left in the queue here, wait for the worker's, return every result."""
        self.close()
        while True:
            try:
                item = self._queue.get_nowait()
            except Empty:
                break
            if item is None:  # the end mark: the worker must see it too
                self._queue.put(None)
                break
            self._run(item)
        if not self._job.cancel():  # a worker that never started has nothing left to do
            self._job.result()
        return self._results


#: the most (row, class) buckets a large multiclass state keeps for its influence sum (int32)
_KEPT_BUCKETS = 2**25


def _moments_and_logloss(proba: np.ndarray, y_idx: np.ndarray, eps: float):
    """Every column's moments and the log loss's (of the log clipped true-class probability)."""
    mom, p_true = _kernels.class_moments_true(proba, y_idx, eps)
    np.log(p_true, out=p_true)  # vectorised (SIMD) log; the loss is its negative
    return mom, _kernels.moments(p_true)


def _large_multiclass_scores(p: PreparedClassification, lane: _Lane) -> dict[str, Any]:
    """The score fields of a large labelled multiclass batch (at most ``_auc_cov.MAX_CLASSES``
    classes), the same numbers as the general path of :func:`_classification_state`.

    ``lane`` (a :class:`_Lane`: one worker thread and this one) already holds the moments
    (the longest task after the counting pass, first so that it does not come last) and the
    exact AUCs (a sort per class, one task each); the Brier terms join them while this
    thread counts the histograms, joint counts and pair counts in one pass
    (:func:`_kernels.class_pass3_pairs`, which keeps every row's buckets), then the macro AUC's
    influence sum from those buckets (its two halves added as :func:`_macro_auc_var_ratio`
    adds them). Whichever thread is free first takes the next task, so neither waits while
    the other has work queued.
    """
    k = p.proba.shape[1]
    proba = np.ascontiguousarray(p.proba, dtype=np.float64)
    y_idx = np.asarray(p.y_idx, dtype=np.int64)
    try:
        if _brier_kernel_exact(k):  # the terms in two halves (the last tasks: shorter)
            terms = np.empty(p.n)
            lane.put("brier_head", _kernels.brier_rows_into, proba, y_idx, terms, 0, p.n // 2)
            lane.put("brier_tail", _kernels.brier_rows_into, proba, y_idx, terms, p.n // 2, p.n)
        else:
            lane.put("brier", lambda: _kernels.moments(_brier_terms(p)))
        counts3 = np.zeros((k, _kernels.HIST_BINS, 3), dtype=np.int32)
        pairs = np.zeros((k * (k - 1) // 2, 3, _auc_cov.CELLS, _auc_cov.CELLS), dtype=np.int64)
        # every row's buckets for the influence sum, unless they would take much memory
        bins = np.empty((p.n if p.n * k <= _KEPT_BUCKETS else 0, k), dtype=np.int32)
        joint = _kernels.class_pass3_pairs(proba, y_idx, p.p_idx, counts3, _auc_cov._CELL_OF_BUCKET_8, pairs, bins)
        shape = (k, _kernels.HIST_BINS)
        (pk, pc), (nk, nc), (dk, dc) = _kernels.split_counts3(counts3)
        del counts3
        hist_pos, hist_neg, hist_pred = SparseCounts(shape, pk, pc), SparseCounts(shape, nk, nc), SparseCounts(shape, dk, dc)
        # the classes whose AUC is defined (positives and negatives): those of finite variance
        n_pos = hist_pos.row_sums()
        defined = [j for j in range(k) if 0 < n_pos[j] < p.n]
        h = p.n // 2
        ss_head = None
        if len(defined) >= 2:
            cls = np.asarray(defined, dtype=np.int64)
            inf_pos, inf_neg = _influence_tables(hist_pos, hist_neg, defined)
            if bins.shape[0]:
                ss_rows, rows = _kernels.macro_influence_ss_bins, bins
            else:  # the same sums from the scores
                ss_rows, rows = _kernels.macro_influence_ss_rows, proba
            if lane.pending() > 1:  # the worker has other tasks queued: both halves here
                ss_head = ss_rows(rows, y_idx, cls, inf_pos, inf_neg, 0, h)
            else:
                lane.put("ss_head", ss_rows, rows, y_idx, cls, inf_pos, inf_neg, 0, h)
            ss_tail = ss_rows(rows, y_idx, cls, inf_pos, inf_neg, h, p.n)
        done = lane.finish()
    finally:
        lane.close()
    mom, lp = done["moments"]
    aucs = [done[("auc", c)] for c in range(k)]
    vars_ = [float(v) for _, v in aucs]
    var_ratio = None
    finite = [j for j, v in enumerate(vars_) if math.isfinite(v)]
    indep = sum(vars_[j] for j in finite)
    if finite != defined:  # not expected (a variance is NaN exactly when a class is one-sided)
        var_ratio = _macro_auc_var_ratio(p, hist_pos, hist_neg, vars_)
    elif len(defined) >= 2 and indep > 0:
        var_ratio = _var_ratio(ss_tail + (done["ss_head"] if ss_head is None else ss_head), p.n, indep)
    bn, bmean, b2, b3, b4 = done["brier"] if "brier" in done else _kernels.moments(terms)
    return {
        "hist_pos": hist_pos, "hist_neg": hist_neg, "hist_pred": hist_pred, "pred_joint": joint,
        "score_moments": tuple(Moments.from_list(row) for row in mom.tolist()),
        "logloss": Moments(int(lp[0]), -float(lp[1]), float(lp[2]), -float(lp[3]), float(lp[4])),
        "brier": Moments(int(bn), float(bmean), float(b2), float(b3), float(b4)),
        "auc_exact": tuple(float(a) for a, _ in aucs), "auc_var_exact": tuple(vars_),
        "auc_var_ratio": var_ratio, "auc_pair_counts": SparseCounts.from_dense(pairs),
    }


def _brier_terms(p: PreparedClassification) -> np.ndarray:
    """Per-row Brier terms (scikit-learn's convention: positive class only for binary)."""
    if p.task == "binary":
        j = p.positive_index
        return (p.proba[:, j] - (p.y_idx == j)) ** 2
    if _brier_kernel_exact(p.proba.shape[1]):
        return _kernels.brier_rows(p.proba, p.y_idx)
    sq = np.einsum("ij,ij->i", p.proba, p.proba)
    return sq - 2.0 * p.proba[np.arange(p.n), p.y_idx] + 1.0


@functools.cache
def _brier_kernel_exact(k: int) -> bool:
    """Whether :func:`_kernels.brier_rows` gives numpy's terms bit for bit for ``k`` columns on
    this machine (numpy's einsum sums in the order of its SIMD build): checked once per ``k``
    on 4096 random rows, of which an order mismatch changes about half."""
    if not 2 < k < 8:
        return False
    rng = np.random.default_rng(k)
    proba = rng.dirichlet(np.full(k, 0.3), 4096)
    y_idx = rng.integers(0, k, 4096)
    want = np.einsum("ij,ij->i", proba, proba) - 2.0 * proba[np.arange(4096), y_idx] + 1.0
    return bool(np.array_equal(_kernels.brier_rows(proba, y_idx).view(np.int64), want.view(np.int64)))


def _score_pass(p: PreparedClassification, hist_classes: np.ndarray, y_idx: np.ndarray, labelled: bool):
    """Histograms (sparse), joint counts, moments and the true class's clipped probability.

    Large batches count into dense histograms in one compiled pass; small ones (fewer rows
    than a quarter of the bins) get every row's bucket and sort them into sparse counts, so
    their cost does not depend on the number of bins.
    """
    h = hist_classes.size
    shape = (h, _kernels.HIST_BINS)
    if p.n * 4 >= _kernels.HIST_BINS and h == p.proba.shape[1] > 2 and p.n < 2**31:
        # multiclass: the three histograms' counts side by side (int32: fewer than 2**31 rows)
        counts3 = np.zeros((h, _kernels.HIST_BINS, 3), dtype=np.int32)
        joint, mom, p_true = _kernels.class_pass3(p.proba, y_idx, p.p_idx, labelled, p.eps, counts3)
        pos, neg, pred = (SparseCounts(shape, k, c) for k, c in _kernels.split_counts3(counts3))
        return pos, neg, pred, joint, mom, p_true, None
    if p.n * 4 >= _kernels.HIST_BINS:
        pos, neg, pred, joint, mom, p_true = _kernels.class_pass(
            p.proba, y_idx, p.p_idx, hist_classes, labelled, p.eps,
            np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64),
            np.zeros((0, 0), dtype=np.int64),
        )
        return (SparseCounts.from_dense(pos), SparseCounts.from_dense(neg), SparseCounts.from_dense(pred),
                joint, mom, p_true, None)
    empty = np.zeros((0, 0), dtype=np.int64)
    keys = np.empty((p.n, h), dtype=np.int64)
    _, _, _, joint, mom, p_true = _kernels.class_pass(
        p.proba, y_idx, p.p_idx, hist_classes, labelled, p.eps, empty, empty, empty, keys)
    keys += np.arange(h, dtype=np.int64) * _kernels.HIST_BINS  # flat (class row, bucket) keys
    # one compiled pass: select, radix-sort (HIST_BINS < 2**18) and count per histogram row
    parts = _kernels.sparse_score_hists(keys, y_idx, p.p_idx, hist_classes, labelled, _kernels.HIST_BINS)
    pos, neg, pred = (SparseCounts(shape, k, c) for k, c in parts)
    return pos, neg, pred, joint, mom, p_true, keys


def _classification_state(p: PreparedClassification) -> ClassificationState:
    k = len(p.classes)
    labelled = p.y_idx is not None
    large = (labelled and p.proba is not None and p.task == "multiclass" and p.n >= _PARALLEL_ROWS
             and 2 < k <= _auc_cov.MAX_CLASSES and p.n < 2**31)
    pool = _threads.pool() if large else None
    lane = None
    if pool is not None:  # a large multiclass batch: its moments and exact AUCs start now, on a worker
        lane = _Lane(pool)
        lane.put("moments", _moments_and_logloss, np.ascontiguousarray(p.proba, dtype=np.float64),
                 np.asarray(p.y_idx, dtype=np.int64), p.eps)
        for c in range(k):
            lane.put(("auc", c), _exact_auc, p.proba, p.y_idx, c)
    try:
        confusion = None
        if p.y_idx is None or p.y_idx.dtype != np.int64 or p.p_idx.dtype != np.int64:
            if labelled:
                confusion = np.bincount(p.y_idx * k + p.p_idx, minlength=k * k).reshape(k, k).astype(np.int64)
            pred_counts = np.bincount(p.p_idx, minlength=k).astype(np.int64)
        else:  # the same counts in one compiled pass
            confusion, pred_counts = _kernels.confusion_counts(p.y_idx, p.p_idx, k)
        hook = getattr(_HOOK, "fn", None)
        if hook is not None and labelled:
            hook(confusion)
        if lane is not None:
            scores = _large_multiclass_scores(p, lane)
            return ClassificationState(
                task=p.task, classes=p.classes, positive_index=p.positive_index, n=p.n, labelled=labelled,
                confusion=confusion, pred_counts=pred_counts, eps=p.eps, **scores)
    finally:
        if lane is not None:
            lane.close()
    hist_pos = hist_neg = hist_pred = pred_joint = logloss = brier = pair_counts = None
    score_moments: tuple = ()
    auc_exact = auc_var = var_ratio = None
    if p.proba is not None:
        hist_classes = np.array([p.positive_index] if p.task == "binary" else list(range(k)), dtype=np.int64)
        y_idx = p.y_idx if labelled else np.zeros(1, dtype=np.int64)
        # exact AUCs (a sort per class) run on worker threads while this thread builds the
        # histograms and moments: the compiled kernels and numpy's sort release the GIL
        auc_jobs: list = []
        pairs_job = None
        if labelled:
            pool = _threads.pool() if p.n >= _PARALLEL_ROWS else None
            if pool is None and p.task == "multiclass" and p.n >= _PARALLEL_ROWS_MULTICLASS:
                # a mid-sized multiclass batch: the sorts and the pair counts as two jobs on the
                # worker threads (their per-job hand-off is small next to them), the
                # histograms here; the same computations, so the same numbers
                pool = _threads.pool()
                if pool is not None:
                    auc_jobs.append(pool.submit(_exact_aucs, p.proba, p.y_idx, hist_classes.tolist()))
                    pairs_job = pool.submit(_auc_cov.pair_counts, p.proba, p.y_idx)
            if not auc_jobs:
                for c in hist_classes:
                    if pool is not None:
                        auc_jobs.append(pool.submit(_exact_auc, p.proba, p.y_idx, int(c)))
                    else:
                        auc_jobs.append(_exact_auc(p.proba, p.y_idx, int(c)))
        hist_pos, hist_neg, hist_pred, joint, mom, p_true, keys = _score_pass(p, hist_classes, y_idx, labelled)
        score_moments = tuple(Moments.from_list(row) for row in mom.tolist())
        pred_joint = joint if (p.task == "multiclass" and joint.size) else None
        if labelled:
            np.log(p_true, out=p_true)  # vectorised (SIMD) log; the loss is its negative
            n_, mean, m2, m3, m4 = _kernels.moments(p_true)
            logloss = Moments(int(n_), -float(mean), float(m2), -float(m3), float(m4))
            bn, bmean, b2, b3, b4 = _kernels.moments(_brier_terms(p))
            brier = Moments(int(bn), float(bmean), float(b2), float(b3), float(b4))
            aucs, vars_ = [], []
            done = [f.result() if hasattr(f, "result") else f for f in auc_jobs]
            if pairs_job is not None:
                done = done[0]  # one job: every class's (auc, variance)
            for a, v in done:
                aucs.append(float(a))
                vars_.append(float(v))
            auc_exact, auc_var = tuple(aucs), tuple(vars_)
            if p.task == "multiclass":
                var_ratio = _macro_auc_var_ratio(p, hist_pos, hist_neg, vars_, keys)
                counts = pairs_job.result() if pairs_job is not None else _auc_cov.pair_counts(p.proba, p.y_idx)
                pair_counts = None if counts is None else SparseCounts.from_dense(counts)
    return ClassificationState(
        task=p.task,
        classes=p.classes,
        positive_index=p.positive_index,
        n=p.n,
        labelled=labelled,
        confusion=confusion,
        pred_counts=pred_counts,
        hist_pos=hist_pos,
        hist_neg=hist_neg,
        score_moments=score_moments,
        logloss=logloss,
        brier=brier,
        eps=p.eps,
        auc_exact=auc_exact,
        auc_var_exact=auc_var,
        auc_var_ratio=var_ratio,
        hist_pred=hist_pred,
        pred_joint=pred_joint,
        auc_pair_counts=pair_counts,
    )


def _hist_and_error_sums(y: np.ndarray, yhat: np.ndarray, shifts: np.ndarray) -> tuple:
    return _kernels.abs_error_hist(y, yhat), _kernels.regression_sums_errors(y, yhat, shifts)


def _regression_part(y: np.ndarray, yhat: np.ndarray, pool: ThreadPoolExecutor | None = None) -> RegressionState:
    # the moments' passes (the same kernels in any case, so the same sums) share two threads
    # with the |e| histogram (a scatter, not vectorisable): histogram and error sums on a
    # worker, the value and relative sums here (the kernels release the GIL)
    shifts = _kernels.regression_shifts(y, yhat)
    job = pool.submit(_hist_and_error_sums, y, yhat, shifts) if pool is not None else None
    values = _kernels.regression_sums_values(y, yhat, shifts)
    relative = _kernels.regression_sums_relative(y, yhat, shifts)
    hist, errors = job.result() if job is not None else _hist_and_error_sums(y, yhat, shifts)
    mom, shift, c1, c2 = _kernels.regression_moments_from_sums(y.shape[0], shifts, values, errors, relative)
    ym, yhm, e, ae, se, ape, sape = (Moments.from_list(row) for row in mom.tolist())
    hist = AbsErrorHistogram(*hist)
    return RegressionState(
        n=int(y.shape[0]),
        labelled=True,
        yhat=yhm,
        y=ym,
        e=e,
        ae=ae,
        se=se,
        ape=ape,
        n_zero_target=int(y.shape[0] - ape.n),
        sape=sape,
        shift=float(shift),
        cross1=float(c1),
        cross2=float(c2),
        ae_hist=hist,
    )


def _regression_state(p: PreparedRegression) -> RegressionState:
    st = _regression_moments_state(p)
    check_finite_after(p, (st.yhat,) if p.y is None else (st.y, st.yhat))  # raises NonFiniteError
    return st


def _regression_moments_state(p: PreparedRegression) -> RegressionState:
    if p.y is None:
        return RegressionState(n=p.n, labelled=False, yhat=Moments.of(p.yhat))
    # the vectorised moments take ~2 ms per 1e6 rows: below 4e6 rows, the histogram on a second
    # thread beside them; above, two halves (merged exactly)
    pool = _threads.pool() if p.n >= _PARALLEL_ROWS else None
    if pool is None or p.n < 20 * _PARALLEL_ROWS:
        return _regression_part(p.y, p.yhat, pool)
    # two halves on two threads (the kernel releases the GIL), merged exactly (Chan / Pebay)
    h = p.n // 2
    a = pool.submit(_regression_part, p.y[:h], p.yhat[:h])
    b = _regression_part(p.y[h:], p.yhat[h:])
    return replace(a.result().merge(b), n_batches=1)


def compute_state(
    y_true: Any,
    y_pred: Any = None,
    y_pred_proba: Any = None,
    *,
    task: str | None = None,
    classes: Sequence | None = None,
    positive_label: Any = None,
    proba_tol: float = 1e-4,
) -> State:
    """Sufficient statistics of one batch.

    Parameters
    ----------
    y_true : array-like of shape (n,) or None
        True labels or values. ``None`` for a batch whose labels have not arrived: only
        the prediction distribution is kept and no performance metric is claimed.
    y_pred : array-like of shape (n,), optional
        Predicted labels or values. For classification it may be omitted when
        ``y_pred_proba`` is given (the arg-max is used).
    y_pred_proba : array-like of shape (n,) or (n, k), or DataFrame, optional
        Predicted probabilities. 1-D: probability of the positive class (binary). 2-D:
        one column per class in sorted class order, or a DataFrame whose columns are the
        class labels (any order).
    task : {"binary", "multiclass", "regression"}, optional
        Inferred when omitted: regression for float targets, classification otherwise.
    classes : sequence, optional
        The full class set (useful when a batch does not show every class).
    positive_label : optional
        Positive class of a binary task (default: the larger label, as scikit-learn).
    proba_tol : float, default 1e-4
        Tolerance for probability rows summing to one.

    Returns
    -------
    ClassificationState or RegressionState

    Raises
    ------
    ValidationError
        A subclass naming the parameter: mismatched lengths, NaN / inf, probabilities out
        of range, an empty batch, unknown classes or task.

    Examples
    --------
    >>> s = compute_state([0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.9, 0.4, 0.1])
    >>> s.task, s.n, s.confusion.tolist()
    ('binary', 4, [[2, 0], [1, 1]])
    >>> r = compute_state([1.0, 2.5, 3.0], [1.5, 2.0, 3.0])
    >>> r.task, r.n
    ('regression', 3)
    """
    prepared = prepare(
        y_true,
        y_pred,
        y_pred_proba,
        task=task,
        classes=classes,
        positive_label=positive_label,
        proba_tol=proba_tol,
    )
    if isinstance(prepared, PreparedRegression):
        return _regression_state(prepared)
    return _classification_state(prepared)


def align_classes(state: ClassificationState, classes: Sequence) -> ClassificationState:
    """Re-encode a multiclass state in a larger class set (a model's label set grew).

    Counts move to the new class positions; a class the state never saw gets zero counts,
    an empty score histogram and empty score moments (its scores cover the batches since it
    appeared). Per-batch exact AUCs are dropped (the histograms take over, as on any merge).

    Examples
    --------
    >>> s = compute_state(["a", "b", "c", "a"], ["a", "b", "b", "a"])
    >>> t = align_classes(s, ["a", "b", "c", "d"])
    >>> t.classes, t.confusion.sum(), t.pred_counts.tolist()
    (('a', 'b', 'c', 'd'), np.int64(4), [2, 2, 0, 0])
    """
    classes = tuple(classes)
    if classes == state.classes:
        return state
    if state.task != "multiclass" or not set(state.classes) <= set(classes):
        raise StateError(
            f"cannot re-encode a {state.task} state with classes {list(state.classes)} in {list(classes)}"
        )
    k = len(classes)
    pos = np.array([classes.index(c) for c in state.classes], dtype=np.int64)

    def grow(a):
        if a is None:
            return None
        if isinstance(a, SparseCounts):
            return a.take_rows(pos, k)
        out = np.zeros((k, *a.shape[1:]), dtype=a.dtype)
        out[pos] = a
        return out

    confusion = None
    if state.confusion is not None:
        confusion = np.zeros((k, k), dtype=state.confusion.dtype)
        confusion[np.ix_(pos, pos)] = state.confusion
    moments = list(state.score_moments)
    if len(moments) == state.k:
        new = [Moments()] * k
        for i, j in enumerate(pos):
            new[j] = moments[i]
        moments = new
    joint = None
    if state.pred_joint is not None:
        joint = np.zeros((k, k, *state.pred_joint.shape[2:]), dtype=np.int64)
        joint[np.ix_(pos, pos)] = np.asarray(state.pred_joint)
    return replace(
        state, classes=classes, confusion=confusion, pred_counts=grow(state.pred_counts),
        hist_pos=grow(state.hist_pos), hist_neg=grow(state.hist_neg), score_moments=tuple(moments),
        auc_exact=None, auc_var_exact=None, hist_pred=grow(state.hist_pred), pred_joint=joint,
        auc_pair_counts=_aligned_pair_counts(state.auc_pair_counts, pos, k),
    )


def _aligned_pair_counts(counts: SparseCounts | None, pos: np.ndarray, k: int) -> SparseCounts | None:
    if counts is None:
        return None
    grown = _auc_cov.align_pair_counts(np.asarray(counts), pos, k)
    return None if grown is None else SparseCounts.from_dense(grown)


def _aligned_dicts(dicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Multiclass state dicts of one growing label set, all re-encoded in the union of classes."""
    first = dicts[0]
    if first.get("kind") != "classification" or all(d.get("classes") == first["classes"] for d in dicts):
        return dicts
    if any(d.get("kind") != "classification" or d.get("task") != "multiclass" for d in dicts):
        return dicts  # not one growing multiclass label set: the merge raises the precise error
    from perfkit.metrics._validation import sorted_labels

    union = list(sorted_labels({c for d in dicts for c in d["classes"]}))
    return [d if d["classes"] == union else align_classes(state_from_dict(d), union).to_dict() for d in dicts]


def merge_states(states: Iterable[State]) -> State:
    """Merge any number of states (of the same task and classes) into one.

    Examples
    --------
    >>> a = compute_state([0, 1], [0, 1])
    >>> b = compute_state([1, 1], [0, 1])
    >>> merge_states([a, b]).confusion.tolist()
    [[1, 0], [1, 2]]
    """
    states = list(states)
    if not states:
        raise StateError("merge_states needs at least one state")
    if len({getattr(s, "classes", None) for s in states}) > 1 and all(
            getattr(s, "task", None) == "multiclass" for s in states):
        from perfkit.metrics._validation import sorted_labels

        union = sorted_labels({c for s in states for c in s.classes})
        states = [align_classes(s, union) for s in states]
    return _merge_objects(states)


def state_from_dict(d: dict[str, Any]) -> State:
    """Decode a state from :meth:`to_dict` output (raises StateError when malformed)."""
    try:
        kind = d["kind"]
        if d.get("version", 1) > STATE_VERSION:
            raise StateError(f"state version {d['version']} is newer than this perfkit ({STATE_VERSION})")
        cls = _CLASSES.get(kind)
        if cls is not None:
            return cls.from_dict(d)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateError(f"malformed state dict: {exc}") from exc
    raise StateError(f"unknown state kind {kind!r}")


def merge_dicts_to_state(dicts: Sequence[dict[str, Any]], *, for_evaluation: bool = False) -> State:
    """Merge states given as dicts straight into one state (fast path for long histories).

    The same declared merge as :func:`merge_states`, on columns of stored values: sparse
    histogram rows of all dicts are decoded together and added with one bincount, never a
    dense state per batch. The result equals ``merge_states(state_from_dict(d) for d in dicts)``.

    ``for_evaluation=True`` leaves out the fields that only label-free estimates read
    (``hist_pred`` and ``pred_joint`` of classification states: None in the result, as in
    states stored before they existed); :func:`perfkit.metrics.evaluate` gives the same
    report, at about a third of the cost for multiclass states.
    """
    dicts = list(dicts)
    if not dicts:
        raise StateError("merge needs at least one state")
    dicts = _aligned_dicts(dicts)
    if len(dicts) == 1:
        return state_from_dict(dicts[0])
    try:
        return _merge_stored(dicts, for_evaluation)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateError(f"malformed state dict: {exc}") from exc


def merge_dict_chunks_to_state(chunks: Iterable[Sequence[dict[str, Any]]], *, for_evaluation: bool = False) -> State:
    """:func:`merge_dicts_to_state` of the concatenated ``chunks``: the sparse fields of each
    chunk are added on a pool thread while the next chunk is produced, and the chunks left
    when the last one is produced are shared between that thread and this one.

    ``chunks`` is typically a generator parsing stored text, so that parsing (which holds
    the GIL) and adding histogram cells (compiled, without the GIL) overlap. The sparse
    fields are integer sums, so adding them chunk by chunk and on two threads changes
    nothing; every other field is merged over all states at once as in
    :func:`merge_dicts_to_state`, and the result is the same state. States the chunked path
    does not cover (several kinds, tasks or classes, states without scores or stored
    before a field existed, any malformed value) leave the whole merge to
    :func:`merge_dicts_to_state`, which raises the same errors.

    Raises
    ------
    StateError
        If there is no state or the states do not merge.

    Examples
    --------
    >>> a = compute_state([0, 1, 1], [0, 1, 0], [0.2, 0.9, 0.4]).to_dict()
    >>> merge_dict_chunks_to_state(iter([[a, a], [a]])).to_dict() == merge_dicts_to_state([a, a, a]).to_dict()
    True
    """
    pool = _threads.pool()
    dicts: list[dict[str, Any]] = []
    queue: SimpleQueue = SimpleQueue()
    mine = theirs = None  # running sums of this thread and of the pool thread
    job = None
    try:
        for chunk in chunks:
            chunk = list(chunk)
            if not chunk:
                continue
            if not dicts and pool is not None:
                mine, theirs = _chunk_sums(chunk[0], for_evaluation), _chunk_sums(chunk[0], for_evaluation)
                if theirs is not None:
                    job = pool.submit(_add_queued, theirs, queue, chunk[0])
            dicts.extend(chunk)
            if job is not None:
                queue.put(chunk)
        ok = job is not None
        while ok:  # the chunks the pool thread has not taken yet: shared with it
            try:
                chunk = queue.get_nowait()
            except Empty:
                break
            ok = _add_chunk(mine, chunk, dicts[0])
    finally:
        queue.put(None)
    if job is not None and not job.result():
        ok = False
    if not dicts:
        raise StateError("merge needs at least one state")
    if not ok or len(dicts) == 1:
        return merge_dicts_to_state(dicts, for_evaluation=for_evaluation)
    first = {k: [v] for k, v in dicts[0].items()}
    premerged = {}
    for name, (kind, total) in theirs.items():
        total.absorb(mine[name][1])
        premerged[name] = total.result(kind.stored_shape(first))
    try:
        return _merge_stored(dicts, for_evaluation, premerged)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateError(f"malformed state dict: {exc}") from exc


def _add_queued(sums: dict[str, Any], queue: SimpleQueue, first: dict[str, Any]) -> bool:
    """Add the chunks put on ``queue`` (until None) to ``sums``; False when one is not
    covered (the rest are taken off the queue and dropped)."""
    ok = True
    while (chunk := queue.get()) is not None:
        ok = ok and _add_chunk(sums, chunk, first)
    return ok


def _chunk_sums(first: dict[str, Any], for_evaluation: bool) -> dict[str, Any] | None:
    """Running sums of the sparse fields of states like ``first`` (None: not a state the
    chunked path covers)."""
    cls = _CLASSES.get(first.get("kind")) if isinstance(first, dict) else None
    if cls is None or first.get("version", 1) > STATE_VERSION:
        return None
    sums = {}
    try:
        for f in cls.declared():
            if isinstance(f.kind, Sparse) and not (for_evaluation and f.estimates):
                if not isinstance(first.get(f.name), dict):
                    return None
                sums[f.name] = (f.kind, StoredSum(first[f.name]))
    except (KeyError, TypeError, ValueError):
        return None
    return sums


_SAME_STATE = operator.itemgetter("kind", "task", "classes")


def _add_chunk(sums: dict[str, Any], chunk: list[dict[str, Any]], first: dict[str, Any]) -> bool:
    """Add the sparse fields of ``chunk`` to ``sums`` (on a pool thread); False when a state
    is not one the chunked path covers (another kind, task or classes, a missing field)."""
    try:
        want = _SAME_STATE(first)
        if not all(type(d) is dict and _SAME_STATE(d) == want for d in chunk):
            return False
        for name, (_, total) in sums.items():
            values = [d.get(name) for d in chunk]
            if not all(type(v) is dict for v in values):
                return False
            total.add(values)
    except (KeyError, TypeError, ValueError, IndexError):
        return False
    return True


@functools.cache
def _evaluation_cut() -> tuple[str, str, str, tuple[str, ...]]:
    """(text prefix, first key to cut, key after the cut, keys left) of a classification
    state written by ``to_dict`` (fields in declared order, estimate-only ones contiguous)."""
    decl = ClassificationState.declared()
    names = [f.name for f in decl]
    cut = [i for i, f in enumerate(decl) if f.estimates]
    assert cut == list(range(cut[0], cut[-1] + 1)) and cut[-1] + 1 < len(names)
    kept = ("kind", "version", *(n for i, n in enumerate(names) if i not in cut))
    return (f'{{"kind":"{ClassificationState.KIND}",', f',"{names[cut[0]]}":', f',"{names[cut[-1] + 1]}":',
            kept)


def state_dict_for_evaluation(text: str, loads: Callable[[str], Any]) -> dict[str, Any]:
    """Parse a stored state's JSON ``text`` without the fields only estimates read.

    A classification state written by :meth:`to_dict` keeps its fields in declared order,
    so the estimate-only fields (the bulk of a multiclass state's sparse rows) are one
    stretch of the text and are cut out before parsing; the parsed keys are then checked
    to be exactly the declared ones in order (otherwise, e.g. for older or hand-made
    dicts, the whole text is parsed). ``loads`` parses JSON text (the store's decoder).
    Use the result with ``merge_dicts_to_state(..., for_evaluation=True)``.

    Examples
    --------
    >>> import json
    >>> s = compute_state([0, 1, 2, 1], [0, 1, 1, 1], np.eye(3)[[0, 1, 1, 1]] * 0.8 + 0.2 / 3)
    >>> d = state_dict_for_evaluation(json.dumps(s.to_dict(), separators=(",", ":")), json.loads)
    >>> "pred_joint" in d, merge_dicts_to_state([d, d]).n
    (False, 8)
    """
    prefix, first, after, kept = _evaluation_cut()
    if text.startswith(prefix):
        q = text.rfind(after)  # the cut stretch sits near the end of the text
        p = text.rfind(first, 0, q)
        if 0 < p < q:
            d = loads(text[:p] + text[q:])
            if tuple(d) == kept:
                return d
    d = loads(text)
    if isinstance(d, dict) and d.get("kind") == ClassificationState.KIND:
        for f in ClassificationState.declared():
            if f.estimates:
                d.pop(f.name, None)
    return d


def merge_state_dicts(dicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge states given as dicts and return the merged state as a dict."""
    return merge_dicts_to_state(dicts).to_dict()
