"""Boundary validation: turns user input into clean arrays or raises a named error."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from perfkit.exceptions import (
    EmptyBatchError,
    InputTypeError,
    LabelError,
    LabelTypeError,
    NonFiniteError,
    PerfkitError,
    ProbabilityError,
    ShapeError,
    UnknownTaskError,
)
from perfkit.metrics import _kernels

__all__ = ["TASKS", "PreparedClassification", "PreparedRegression", "prepare"]

TASKS = ("binary", "multiclass", "regression")


def _to_1d(x: Any, name: str) -> np.ndarray:
    if isinstance(x, pd.DataFrame):
        if x.shape[1] != 1:
            raise ShapeError(
                f"{name} must be one-dimensional, got a DataFrame with {x.shape[1]} columns",
                parameter=name,
            )
        x = x.iloc[:, 0]
    if isinstance(x, pd.Series):
        x = x.to_numpy()
    if isinstance(x, (str, bytes)) or np.isscalar(x):
        raise InputTypeError(
            f"{name} must be an array-like of values, got {type(x).__name__}", parameter=name
        )
    try:
        arr = np.asarray(x)
        if arr.dtype.kind in "US" and isinstance(x, (list, tuple)):
            # numpy turns a missing label (None/NaN) in a list of strings into "nan"/"None"
            arr = np.asarray(x, dtype=object)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} could not be converted to an array: {exc}", parameter=name) from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 0:  # a generator, a set, a dict ... (numpy wraps it as one object)
        raise InputTypeError(f"{name} must be an array-like of values (list, numpy array, pandas Series), "
                             f"got {type(x).__name__}", parameter=name)
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be one-dimensional, got shape {arr.shape}", parameter=name)
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "f":
        ok = _kernels.all_finite(arr) if arr.dtype == np.float64 and arr.flags.c_contiguous else \
            bool(np.isfinite(arr).all())
        if not ok:
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise NonFiniteError(f"{name} contains {bad} NaN or infinite value(s)", parameter=name)
    elif arr.dtype.kind == "O":
        try:
            missing = pd.isna(arr)
        except (TypeError, ValueError):
            missing = np.zeros(arr.shape, dtype=bool)
        if np.any(missing):
            raise NonFiniteError(
                f"{name} contains {int(np.count_nonzero(missing))} missing (None/NaN) label(s)",
                parameter=name,
            )
        floats = [v for v in arr[:1000] if isinstance(v, float)]
        if floats and not np.isfinite(np.asarray(floats)).all():
            raise NonFiniteError(f"{name} contains infinite values", parameter=name)


_SCALAR_KINDS = frozenset(
    {"string", "bytes", "integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"}
)


def _check_scalar_labels(values: Any, name: str) -> None:
    """Labels must be scalars: a dict, list, set, array or other unhashable label is refused.

    Raises :class:`~perfkit.exceptions.LabelTypeError` (a ``LabelError`` that is also a
    ``TypeError``) naming the parameter, instead of the bare ``TypeError: unhashable type``
    that factorizing such labels would raise deep inside pandas.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind != "O":
            return
        if pd.api.types.infer_dtype(values, skipna=True) in _SCALAR_KINDS:
            return
    for v in values:
        if v is None or isinstance(v, (str, bytes, bool, int, float, np.generic)):
            continue
        if isinstance(v, (Mapping, list, tuple, set, frozenset, np.ndarray)) or not isinstance(v, Hashable):
            text = repr(v)
            text = text if len(text) <= 60 else text[:57] + "..."
            raise LabelTypeError(
                f"{name} contains a {type(v).__name__} label ({text}); labels must be scalars "
                "(str, int, float or bool)",
                parameter=name,
            )


def _check_aligned(y_true: Any, y_pred: Any, y_proba: Any) -> None:
    """pandas inputs must share one index: perfkit pairs rows by position, never by label."""
    named = [(n, x) for n, x in (("y_true", y_true), ("y_pred", y_pred), ("y_pred_proba", y_proba))
             if isinstance(x, (pd.Series, pd.DataFrame))]
    for (first, a), (other, b) in zip(named, named[1:], strict=False):
        if not a.index.equals(b.index):
            why = ("the same labels in another order" if len(a) == len(b) and a.index.sort_values().equals(
                b.index.sort_values()) else "different labels")
            raise ShapeError(
                f"{first} and {other} are pandas objects with different indexes ({why}); perfkit pairs "
                "rows by position, so these rows would be mismatched. Align them first "
                f"(e.g. {other}.reindex({first}.index)) or pass plain arrays (.to_numpy()).",
                parameter=other,
            )


def python_label(v: Any) -> Any:
    """A label as perfkit keeps it: numpy scalars unwrapped, integral floats as int."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return v


def _is_continuous(arr: np.ndarray) -> bool:
    if arr.dtype.kind != "f":
        return False
    return bool(_kernels.has_fraction(np.ascontiguousarray(arr, dtype=np.float64)))


@dataclass(frozen=True)
class PreparedClassification:
    task: str
    classes: tuple
    positive_index: int  # index into classes (binary); -1 for multiclass
    y_idx: np.ndarray | None  # int64 class index of the truth, None when unlabelled
    p_idx: np.ndarray  # int64 class index of the prediction
    proba: np.ndarray | None  # (n, k) float64 C-order, columns = classes
    eps: float  # clipping epsilon for log loss (from the input dtype, as scikit-learn)
    n: int


@dataclass(frozen=True)
class PreparedRegression:
    y: np.ndarray | None
    yhat: np.ndarray
    n: int
    #: False: the NaN / inf check is left to the moments pass (:func:`check_finite_after`)
    finite_checked: bool = True


def _deferrable(arr: np.ndarray | None) -> bool:
    return arr is None or (arr.dtype == np.float64 and arr.flags.c_contiguous)


def check_finite_after(p: PreparedRegression, moments: Sequence[Any]) -> None:
    """The NaN / inf check of a regression batch whose check was left to its moments pass.

    A NaN or infinity anywhere in ``y`` or ``yhat`` makes their moments non-finite, so finite
    ``moments`` (of y and yhat) prove the input finite without a second pass over it; when
    they are not, the input is checked as :func:`prepare` checks it (same error), and finite
    input whose moments overflowed goes on as before.
    """
    if p.finite_checked:
        return
    if all(math.isfinite(x) for m in moments for x in (m.mean, m.m2, m.m3, m.m4)):
        return
    if p.y is not None:
        _check_finite(p.y, "y_true")
    _check_finite(p.yhat, "y_pred")


def _encode(arr: np.ndarray, classes: tuple, name: str) -> np.ndarray:
    """Map labels to indices of ``classes`` (fast path for small non-negative ints)."""
    if arr.dtype.kind in "iub" and arr.dtype != np.uint64 and all(isinstance(c, (int, bool)) for c in classes):
        a = arr.astype(np.int64, copy=False)
        lo, hi = int(a.min()), int(a.max())
        cls = np.asarray([int(c) for c in classes], dtype=np.int64)
        if lo >= 0 and hi < len(cls) and np.array_equal(cls, np.arange(len(cls))):
            return a  # labels 0..k-1 are their own indices
        if lo >= min(0, int(cls.min())) and hi - lo < 10_000_000:
            base = min(lo, int(cls.min()))
            table = np.full(max(hi, int(cls.max())) - base + 1, -1, dtype=np.int64)
            table[cls - base] = np.arange(len(cls))
            idx = table[a - base]
            if (idx < 0).any():
                unknown = np.unique(a[idx < 0])[:5].tolist()
                raise LabelError(
                    f"{name} contains labels {unknown} that are not among the classes {list(classes)}",
                    parameter=name,
                )
            return idx
    return label_codes(arr, {c: i for i, c in enumerate(classes)}, name)


def label_codes(values: Any, lookup: dict, parameter: str) -> np.ndarray:
    """Index of every label in ``lookup`` (label -> index); unknown labels raise LabelError."""
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=False)
    mapping = np.empty(len(uniques), dtype=np.int64)
    for j, u in enumerate(uniques):
        key = python_label(u)
        if key not in lookup:
            raise LabelError(
                f"{parameter} contains label {key!r} that is not among the classes {list(lookup)}",
                parameter=parameter,
            )
        mapping[j] = lookup[key]
    return mapping[codes]


def sorted_labels(values: set, parameter: str = "y_true") -> tuple:
    """Labels in perfkit's (and scikit-learn's) sorted class order."""
    try:
        return tuple(sorted(values))
    except TypeError as exc:
        raise LabelError(
            f"labels of mixed types cannot be ordered: {sorted(map(repr, values))[:6]}",
            parameter=parameter,
        ) from exc


def _unique_labels(arr: np.ndarray) -> set:
    if arr.dtype.kind == "b":
        return {bool(v) for v in (arr.any(), not arr.all())} if arr.size else set()
    if arr.dtype.kind in "iu" and arr.dtype != np.uint64 and arr.size:  # uint64 above 2**63 would wrap
        from perfkit.metrics import _kernels

        a = arr if arr.dtype == np.int64 else arr.astype(np.int64)
        lo, hi, counts = _kernels.small_int_labels(a)
        if counts.size:  # counting beats sorting
            return {int(v) + int(lo) for v in np.flatnonzero(counts)}
    if arr.dtype.kind in "iub":
        return {python_label(v) for v in np.unique(arr)}
    return {python_label(v) for v in pd.unique(arr)}


def prepare(
    y_true: Any,
    y_pred: Any,
    y_proba: Any,
    *,
    task: str | None,
    classes: Sequence | None,
    positive_label: Any,
    proba_tol: float,
) -> PreparedClassification | PreparedRegression:
    """Validate one batch and return clean arrays (raises a ValidationError subclass)."""
    if task is not None and task not in TASKS:
        raise UnknownTaskError(f"task must be one of {TASKS}, got {task!r}", parameter="task")
    if y_pred is None and y_proba is None:
        raise InputTypeError("y_pred (or y_pred_proba) is required", parameter="y_pred")
    _check_aligned(y_true, y_pred, y_proba)
    yt = None if y_true is None else _to_1d(y_true, "y_true")
    yp = None if y_pred is None else _to_1d(y_pred, "y_pred")
    if yp is not None:
        n = len(yp)
    elif yt is not None:
        n = len(yt)  # y_pred_proba's rows are checked against it below
    else:
        try:
            n = len(y_proba)
        except TypeError as exc:
            raise InputTypeError(
                f"y_pred_proba must be an array-like, got {type(y_proba).__name__}",
                parameter="y_pred_proba",
            ) from exc
    if yt is not None and yp is not None and len(yt) != len(yp):
        raise ShapeError(
            f"y_true and y_pred have different lengths: {len(yt)} != {len(yp)}", parameter="y_pred"
        )
    if n == 0 or (yt is not None and len(yt) == 0):
        raise EmptyBatchError("the batch is empty: y_true / y_pred have no rows", parameter="y_true")
    # a declared regression batch of float64 arrays (nothing else to refuse below): its
    # NaN / inf check is folded into the moments pass (check_finite_after)
    defer = (task == "regression" and y_proba is None and yp is not None and _deferrable(yt)
             and _deferrable(yp))
    if yt is not None and not defer:
        _check_finite(yt, "y_true")
    if yp is not None and not defer:
        _check_finite(yp, "y_pred")

    if task is None:
        if y_proba is not None or classes is not None:
            task = "classification"
        elif (yt is not None and _is_continuous(yt)) or (yp is not None and _is_continuous(yp)):
            task = "regression"
        elif (yt is not None and yt.dtype.kind == "f") or (yp is not None and yp.dtype.kind == "f"):
            # integral floats without scores: counts are regression targets more often than labels
            task = "regression"
        else:
            task = "classification"

    if task == "regression":
        if y_proba is not None:
            raise InputTypeError("y_pred_proba is not used for regression", parameter="y_pred_proba")
        if yp is None:
            raise InputTypeError("y_pred is required for regression", parameter="y_pred")
        for arr, name in ((yt, "y_true"), (yp, "y_pred")):
            if arr is not None and arr.dtype.kind not in "fiub":
                raise InputTypeError(
                    f"{name} must be numeric for regression, got dtype {arr.dtype}", parameter=name
                )
        y = None if yt is None else np.ascontiguousarray(yt, dtype=np.float64)
        yhat = np.ascontiguousarray(yp, dtype=np.float64)
        return PreparedRegression(y=y, yhat=yhat, n=n, finite_checked=not defer)

    if classes is not None:
        if isinstance(classes, (str, bytes, Mapping)) or not isinstance(classes, Iterable):
            raise InputTypeError(f"classes must be a list of labels, got {type(classes).__name__}",
                                 parameter="classes")
        classes = list(classes)
        _check_scalar_labels(classes, "classes")
        if any(c is None or c is pd.NA or (isinstance(c, (float, np.floating)) and math.isnan(c)) for c in classes):
            # a NaN class was accepted as a class of its own; None failed as "mixed types" of y_true
            raise LabelError(f"classes contains a missing value (None/NaN): {classes!r}", parameter="classes")
    try:
        return _prepare_classification(yt, yp, y_proba, task, classes, positive_label, proba_tol, n)
    except TypeError as exc:
        if isinstance(exc, PerfkitError):
            raise
        # "unhashable type" from deep inside pandas: say which labels are not scalars (checked
        # only now, so well-formed batches do not pay for the scan)
        for arr, name in ((yt, "y_true"), (yp, "y_pred")):
            if arr is not None:
                _check_scalar_labels(arr, name)
        raise


def _pandas_numbers(x: pd.DataFrame | pd.Series, dtypes: list) -> np.ndarray:
    """Scores from pandas: nullable numeric columns (``Float64`` with ``pd.NA`` ...) as float64 with
    NaN, so a missing score is reported as missing (it was "must be numeric, got dtype object")."""
    if any(isinstance(t, pd.api.extensions.ExtensionDtype) for t in dtypes) and all(
            pd.api.types.is_numeric_dtype(t) for t in dtypes):
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    return x.to_numpy()


def _prepare_classification(yt, yp, y_proba, task, classes, positive_label, proba_tol, n):
    proba_cols = None
    proba = None
    eps = float(np.finfo(np.float64).eps)
    if y_proba is not None:
        if isinstance(y_proba, pd.DataFrame):
            proba_cols = tuple(python_label(c) for c in y_proba.columns)
            proba_arr = _pandas_numbers(y_proba, list(y_proba.dtypes))
        elif isinstance(y_proba, pd.Series):
            proba_arr = _pandas_numbers(y_proba, [y_proba.dtype])
        else:
            try:
                proba_arr = np.asarray(y_proba)
            except (TypeError, ValueError) as exc:
                raise InputTypeError(
                    f"y_pred_proba could not be converted to an array: {exc}", parameter="y_pred_proba"
                ) from exc
        if proba_arr.dtype.kind not in "fiub":
            raise InputTypeError(
                f"y_pred_proba must be numeric, got dtype {proba_arr.dtype}", parameter="y_pred_proba"
            )
        if proba_arr.ndim not in (1, 2):
            raise ShapeError(
                f"y_pred_proba must be 1-D or 2-D, got shape {proba_arr.shape}", parameter="y_pred_proba"
            )
        if proba_arr.shape[0] != n:
            raise ShapeError(
                f"y_pred_proba has {proba_arr.shape[0]} rows but the batch has {n}",
                parameter="y_pred_proba",
            )
        if proba_arr.dtype.kind == "f":
            eps = float(np.finfo(proba_arr.dtype).eps)
        proba = np.ascontiguousarray(proba_arr, dtype=np.float64)
        if proba.ndim == 2 and proba.shape[1] == 1:
            proba = proba[:, 0]
        bad, lo, hi, dev = _kernels.check_proba(proba.reshape(proba.shape[0], -1))
        if bad:
            raise NonFiniteError(
                f"y_pred_proba contains {bad} NaN or infinite value(s)", parameter="y_pred_proba"
            )
        if lo < 0.0 or hi > 1.0:
            raise ProbabilityError(
                f"y_pred_proba must lie in [0, 1], found values in [{lo:g}, {hi:g}]",
                parameter="y_pred_proba",
            )
        if proba.ndim == 2:
            if dev > proba_tol:
                raise ProbabilityError(
                    f"rows of y_pred_proba must sum to 1 (tolerance {proba_tol:g}); the worst row is "
                    f"off by {dev:.3g}",
                    parameter="y_pred_proba",
                )

    # ---- the class set
    if classes is not None:
        cls = sorted_labels({python_label(c) for c in classes})
        if len(cls) != len(list(classes)):
            raise LabelError("classes contains duplicates", parameter="classes")
    elif proba_cols is not None:
        if len(set(proba_cols)) != len(proba_cols):
            raise LabelError(f"y_pred_proba has duplicate column names {list(proba_cols)}", parameter="y_pred_proba")
        cls = sorted_labels(set(proba_cols))
    else:
        seen: set = set()
        if yt is not None:
            seen |= _unique_labels(yt)
        if yp is not None:
            seen |= _unique_labels(yp)
        if proba is not None and proba.ndim == 2 and len(seen) < proba.shape[1]:
            if all(isinstance(c, (int, bool)) and not isinstance(c, bool) for c in seen) and (
                not seen or (min(seen) >= 0 and max(seen) < proba.shape[1])
            ):
                seen = set(range(proba.shape[1]))
        if len(seen) == 1:
            (only,) = seen
            if isinstance(only, bool):
                seen = {False, True}
            elif isinstance(only, int) and only in (0, 1):
                seen = {0, 1}
            elif proba is not None:
                raise LabelError(
                    f"only one class ({only!r}) is present; pass classes=[...] so the scores can be "
                    "interpreted",
                    parameter="classes",
                )
        cls = sorted_labels(seen)
    k = len(cls)
    if k < 2:
        raise LabelError(f"classification needs at least two classes, got {list(cls)}; pass classes=[...] with "
                         "every label of the model", parameter="classes")
    if task == "binary" and k != 2:
        raise LabelError(f"task='binary' needs exactly two classes, got {list(cls)}", parameter="classes")
    if task == "multiclass" and k < 3 and classes is None:
        pass  # a multiclass model whose batch shows two classes stays multiclass
    final_task = task if task in ("binary", "multiclass") else ("binary" if k == 2 else "multiclass")

    if proba is not None and proba.ndim == 2:
        if proba.shape[1] != k:
            raise LabelError(
                f"y_pred_proba has {proba.shape[1]} columns but there are {k} classes {list(cls)}",
                parameter="y_pred_proba",
            )
        if proba_cols is not None:
            if set(proba_cols) != set(cls):
                raise LabelError(
                    f"y_pred_proba columns {list(proba_cols)} do not match the classes {list(cls)}",
                    parameter="y_pred_proba",
                )
            order = [proba_cols.index(c) for c in cls]
            proba = proba[:, order]

    pos_index = -1
    if final_task == "binary":
        if positive_label is None:
            pos_index = 1
        else:
            pl = python_label(positive_label)
            if pl not in cls:
                raise LabelError(
                    f"positive_label {pl!r} is not one of the classes {list(cls)}", parameter="positive_label"
                )
            pos_index = cls.index(pl)
        if proba is not None and proba.ndim == 1:
            p = proba
            proba = np.empty((n, 2))
            proba[:, pos_index] = p
            proba[:, 1 - pos_index] = 1.0 - p
    elif proba is not None and proba.ndim == 1:
        raise ShapeError(
            f"y_pred_proba must have one column per class ({k}) for multiclass", parameter="y_pred_proba"
        )

    try:
        y_idx = None if yt is None else _encode(yt, cls, "y_true")
        p_idx = None if yp is None else _encode(yp, cls, "y_pred")
    except LabelError as exc:
        if classes is None and proba_cols is not None:
            # the classes came from the DataFrame's columns: those are what is wrong
            raise LabelError(
                f"y_pred_proba columns {list(proba_cols)} do not cover the labels: {exc}",
                parameter="y_pred_proba",
            ) from exc
        raise
    if p_idx is None:
        p_idx = np.argmax(proba, axis=1).astype(np.int64)
    if proba is not None:
        proba = np.ascontiguousarray(proba)
    return PreparedClassification(
        task=final_task,
        classes=cls,
        positive_index=pos_index,
        y_idx=y_idx,
        p_idx=p_idx,
        proba=proba,
        eps=eps,
        n=n,
    )
