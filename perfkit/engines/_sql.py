"""Engine-neutral plan: validation, SQL text and assembly of perfkit states.

An engine (DuckDB, Spark) only has to run SQL over a source view and hand back small
pandas frames (one row per group, per group x label pair, or per group x histogram bucket).
Everything else - the expressions, the checks and the conversion of those frames into
:class:`~perfkit.metrics.ClassificationState` / :class:`~perfkit.metrics.RegressionState` -
lives here once, so both engines produce the same states.

Moments are two-pass per group: the first pass takes group means, the second (a join back
on the group keys) sums powers of ``x - mean`` together with ``sum(x - mean)``, which
refines the mean exactly as perfkit's compiled kernel does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from perfkit.exceptions import (
    EmptyBatchError,
    InputTypeError,
    LabelError,
    NonFiniteError,
    ProbabilityError,
    ShapeError,
    UnknownTaskError,
    ValidationError,
)
from perfkit.metrics import ClassificationState, Moments, RegressionState
from perfkit.metrics.layout import (
    ABS_MANT_BITS,
    AUC_PAIR_CELLS,
    AUC_PAIR_MAX_CLASSES,
    COARSE_BITS,
    COARSE_SPAN,
    HIST_BINS,
    HIST_HALF,
    JOINT_CELLS,
    LOW_EXP,
    MANT_BITS,
    MIN_EXP,
    AbsErrorHistogram,
    SparseCounts,
    auc_pair_bucket_cells,
    auc_pair_index,
    label_codes,
    python_label,
    sorted_labels,
)

__all__ = [
    "DUCKDB",
    "SPARK",
    "Dialect",
    "Runner",
    "Spec",
    "bin_expr",
    "auc_pair_cell_expr",
    "cell_expr",
    "compute_with_runner",
]

logger = logging.getLogger("perfkit")

TIME_UNITS = {"1h": "hour", "1d": "day", "1w": "week"}
TIME_COLUMN = "time_bucket"
TASKS = ("binary", "multiclass", "regression")
_PROBA_TOL = 1e-4
_F64_EPS = float(np.finfo(np.float64).eps)
_F32_EPS = float(np.finfo(np.float32).eps)


# ----------------------------------------------------------------------------- dialects
@dataclass(frozen=True)
class Dialect:
    """The few spellings that differ between DuckDB and Spark SQL."""

    name: str
    ident_quote: str
    backslash_escapes: bool

    def ident(self, name: str) -> str:
        q = self.ident_quote
        return q + str(name).replace(q, q + q) + q

    def literal(self, value: Any) -> str:
        """SQL literal of a label value (str, int, bool, float)."""
        if isinstance(value, (bool, np.bool_)):
            return "TRUE" if value else "FALSE"
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        if isinstance(value, (float, np.floating)):
            return flt(float(value))
        if isinstance(value, str):
            s = value.replace("\\", "\\\\") if self.backslash_escapes else value
            return "'" + s.replace("'", "''") + "'"
        raise InputTypeError(
            f"labels of type {type(value).__name__} are not supported by SQL engines "
            "(use str, int, bool or float labels)",
            parameter="y_true",
        )


DUCKDB = Dialect("duckdb", '"', backslash_escapes=False)
SPARK = Dialect("spark", "`", backslash_escapes=True)


def flt(x: float) -> str:
    """A DOUBLE literal in both dialects (exponent notation, exact round trip)."""
    r = repr(float(x))
    if "e" not in r and "E" not in r:
        r += "e0"
    return r


# ------------------------------------------------------------------------ the bucket
_TINY = flt(2.0**MIN_EXP)
_LOWEST = flt(2.0**LOW_EXP)


def _exponent_expr(q: str) -> str:
    """``floor(log2(q))`` corrected by one when ``q / 2**e`` is outside [1, 2) (log2 rounds)."""
    e0 = f"CAST(floor(log2({q})) AS BIGINT)"
    r0 = f"({q} / power(2e0, {e0}))"
    return f"({e0} + CASE WHEN {r0} >= 2e0 THEN 1 WHEN {r0} < 1e0 THEN -1 ELSE 0 END)"


def _region_expr(q: str, min_exp: int, bits: int, offset: int) -> str:
    """``offset + (e - min_exp) * 2**bits + (top ``bits`` mantissa bits)`` of ``q``."""
    e = _exponent_expr(q)
    sub = f"CAST(floor(({q} / power(2e0, {e}) - 1e0) * {flt(2.0**bits)}) AS BIGINT)"
    return f"(({e}) - ({min_exp})) * {1 << bits} + {sub} + {offset}"


def _half_bin_expr(q: str) -> str:
    """SQL bucket of ``q`` in [0, 0.5] as :func:`perfkit.metrics._kernels._half_bin`.

    ``q`` must be a column name (it is repeated). Fine buckets for q >= 2**MIN_EXP,
    coarse ones down to 2**LOW_EXP, bucket 0 below.
    """
    # both branches are evaluated on every row by vectorised engines: clamp so that log2
    # never sees 0 (a -inf exponent does not cast to BIGINT)
    fine = _region_expr(f"GREATEST({q}, {_TINY})", MIN_EXP, MANT_BITS, 1 + COARSE_SPAN)
    qc = f"GREATEST({q}, {_LOWEST})"
    coarse = _region_expr(qc, LOW_EXP, COARSE_BITS, 1)
    return (
        f"(CASE WHEN {q} < {_LOWEST} THEN 0 WHEN {q} < {_TINY} THEN {coarse} "
        f"ELSE LEAST({fine}, {HIST_HALF - 1}) END)"
    )


def bin_expr(x: str) -> str:
    """SQL expression of the histogram bucket of score column ``x`` (same as ``_kernels._bin``).

    Examples
    --------
    >>> import duckdb, numpy as np
    >>> from perfkit.metrics.layout import score_bins
    >>> sql = "SELECT " + bin_expr("p") + " AS b FROM (VALUES (0.0), (0.25), (0.5), (1.0)) t(p)"
    >>> [r[0] for r in duckdb.sql(sql).fetchall()] == score_bins(np.array([0.0, 0.25, 0.5, 1.0])).tolist()
    True
    """
    lo = _half_bin_expr(x)
    hi = _half_bin_expr(f"(1e0 - {x})")
    return f"(CASE WHEN {x} < 5e-1 THEN {lo} ELSE {HIST_BINS - 1} - {hi} END)"


def cell_expr(x: str) -> str:
    """SQL of the coarse score cell of ``x`` (same as ``_kernels._cell``)."""
    c = JOINT_CELLS
    return (
        f"(CASE WHEN {x} < 5e-1 THEN CAST(floor({x} * {flt(c)}) AS BIGINT) "
        f"ELSE {c - 1} - LEAST(CAST(floor((1e0 - {x}) * {flt(c)}) AS BIGINT), {c // 2 - 1}) END)"
    )


def auc_pair_cell_expr(bucket: str) -> str:
    """SQL of the AUC-covariance cell of histogram bucket column ``bucket``.

    The cells of :func:`perfkit.metrics.layout.auc_pair_bucket_cells` are runs of
    consecutive buckets, so a ``CASE`` on the bucket's range reproduces the in-memory map.

    Examples
    --------
    >>> import duckdb, numpy as np
    >>> from perfkit.metrics.layout import auc_pair_bucket_cells, score_bins
    >>> p = np.array([0.0, 1e-5, 0.001, 0.3, 0.5, 0.75, 0.999, 1.0])
    >>> vals = ", ".join(f"({float(v)!r})" for v in p)
    >>> sql = f"SELECT {auc_pair_cell_expr(bin_expr('p'))} FROM (VALUES {vals}) t(p)"
    >>> got = [r[0] for r in duckdb.sql(sql).fetchall()]
    >>> got == auc_pair_bucket_cells()[score_bins(p)].tolist()
    True
    """
    starts = np.nonzero(np.diff(_AUC_CELL_OF_BUCKET))[0] + 1  # first bucket of cells 1..
    whens = " ".join(f"WHEN {bucket} < {int(b)} THEN {int(_AUC_CELL_OF_BUCKET[b - 1])}" for b in starts)
    return f"(CASE {whens} ELSE {int(_AUC_CELL_OF_BUCKET[-1])} END)"


_AUC_CELL_OF_BUCKET = auc_pair_bucket_cells()


def _finite(x: str) -> str:
    """1 when ``x`` is NULL, NaN or infinite, else 0 (``x - x = 0`` only for finite x)."""
    return f"(CASE WHEN ({x}) - ({x}) = 0 THEN 0 ELSE 1 END)"


# ------------------------------------------------------------------------------ spec
@dataclass(frozen=True)
class Spec:
    """Validated arguments of :func:`perfkit.engines.compute_states`."""

    task: str
    y_true: str | None
    y_pred: str | None
    proba: str | Mapping | Sequence | None
    group_by: tuple[str, ...]
    classes: tuple | None
    positive_label: Any
    time_bucket: str | None
    timestamp_col: str

    @property
    def out_keys(self) -> list[str]:
        keys = list(self.group_by)
        if self.time_bucket is not None:
            keys.append(TIME_COLUMN)
        return keys


class Runner:
    """What an engine provides: a column schema and SQL over the source view."""

    dialect: Dialect
    #: column name -> kind ("float32", "float64", "int", "bool", "string", "timestamp", "other")
    columns: dict[str, str]

    def query(self, sql: str) -> pd.DataFrame:  # pragma: no cover - interface
        """Run ``sql`` (which reads ``{src}``) and return the (small) result."""
        raise NotImplementedError


# ------------------------------------------------------------------- shared pieces
def _check_columns(spec: Spec, runner: Runner) -> None:
    cols = runner.columns

    def need(name: str, parameter: str) -> str:
        if name not in cols:
            raise ValidationError(
                f"{parameter}={name!r} is not a column of the data; columns are {sorted(cols)}",
                parameter=parameter,
            )
        return cols[name]

    for g in spec.group_by:
        need(g, "group_by")
    if spec.time_bucket is not None:
        kind = need(spec.timestamp_col, "timestamp_col")
        if kind != "timestamp":
            raise InputTypeError(
                f"timestamp_col={spec.timestamp_col!r} must be a timestamp column, got {kind}",
                parameter="timestamp_col",
            )
    if spec.y_true is not None:
        need(spec.y_true, "y_true")
    if spec.y_pred is not None:
        need(spec.y_pred, "y_pred")
    if spec.task == "regression":
        for name, parameter in ((spec.y_true, "y_true"), (spec.y_pred, "y_pred")):
            if name is not None and cols[name] not in ("float32", "float64", "int", "bool"):
                raise InputTypeError(
                    f"{parameter}={name!r} must be numeric for regression, got {cols[name]}",
                    parameter=parameter,
                )
        return
    for name in _proba_columns(spec):
        kind = need(name, "proba")
        if kind not in ("float32", "float64", "int"):
            raise InputTypeError(f"proba column {name!r} must be numeric, got {kind}", parameter="proba")


def _proba_columns(spec: Spec) -> list[str]:
    p = spec.proba
    if p is None:
        return []
    if isinstance(p, str):
        return [p]
    if isinstance(p, Mapping):
        return list(p.values())
    return list(p)


def _key_select(spec: Spec, d: Dialect) -> tuple[list[str], list[str]]:
    """SELECT items producing the normalized keys k0.. and their names."""
    items = [f"{d.ident(g)} AS k{i}" for i, g in enumerate(spec.group_by)]
    if spec.time_bucket is not None:
        unit = TIME_UNITS[spec.time_bucket]
        items.append(f"date_trunc('{unit}', {d.ident(spec.timestamp_col)}) AS k{len(items)}")
    if not items:
        items.append("0 AS k0")  # one group over everything
    return items, [f"k{i}" for i in range(len(items))]


def _moment_sql(
    key_items: list[str], keys: list[str], base: list[str], series: list[tuple[str, str]],
    cross: bool, extra_pass1: list[str],
) -> str:
    """Two-pass moments of ``series`` (name, expression over ``base`` columns) per group.

    Returns per group: ``n``, and for each series ``x``: ``n_x``, ``a_x`` (pass-1 mean) and
    ``s1_x`` .. ``s4_x`` (sums of powers of ``x - a_x``).
    """
    klist = ", ".join(keys)
    names = [s for s, _ in series]
    src = (
        f"SELECT {', '.join(key_items)}, {', '.join(base)} FROM {{src}}"
    )
    derived = f"SELECT {klist}, " + ", ".join(f"{expr} AS {s}" for s, expr in series) + " FROM b"
    p1 = (
        f"SELECT {klist}, COUNT(*) AS n, "
        + ", ".join(f"COUNT({s}) AS n_{s}, AVG({s}) AS a_{s}" for s in names)
        + "".join(f", {x}" for x in extra_pass1)
        + f" FROM s GROUP BY {klist}"
    )
    on = " AND ".join(f"s.{k} IS NOT DISTINCT FROM m.{k}" for k in keys)
    dev = ", ".join(f"s.{s} - m.a_{s} AS d_{s}" for s in names)
    if cross:
        dev += ", s.se AS xse"
    joined = f"SELECT {', '.join('s.' + k for k in keys)}, {dev} FROM s JOIN m ON {on}"
    sums = []
    for s in names:
        dd = f"(d_{s} * d_{s})"
        sums += [
            f"SUM(d_{s}) AS s1_{s}",
            f"SUM({dd}) AS s2_{s}",
            f"SUM({dd} * d_{s}) AS s3_{s}",
            f"SUM({dd} * {dd}) AS s4_{s}",
        ]
    if cross:
        sums += ["SUM(xse * d_y) AS c1", "SUM((xse * d_y) * d_y) AS c2"]
    p2 = f"SELECT {klist}, {', '.join(sums)} FROM j GROUP BY {klist}"
    return (
        f"WITH b AS ({src}), s AS ({derived}), m AS ({p1}), j AS ({joined}), "
        f"p AS ({p2}) SELECT m.*, "
        + ", ".join(f"p.{c.split(' AS ')[-1]}" for c in sums)
        + f" FROM m JOIN p ON {' AND '.join(f'm.{k} IS NOT DISTINCT FROM p.{k}' for k in keys)}"
    )


def _moments_from(row: Mapping, s: str) -> Moments:
    """Refine the pass-1 mean with sum(x - mean) and shift the central sums accordingly."""
    n = int(row[f"n_{s}"])
    if n == 0:
        return Moments()
    a = float(row[f"a_{s}"])
    s1, s2, s3, s4 = (float(row[f"s{i}_{s}"]) for i in (1, 2, 3, 4))
    dl = s1 / n
    m2 = s2 - s1 * dl
    m3 = s3 - 3.0 * dl * s2 + 3.0 * dl * dl * s1 - n * dl**3
    m4 = s4 - 4.0 * dl * s3 + 6.0 * dl * dl * s2 - 4.0 * dl**3 * s1 + n * dl**4
    return Moments(n, a + dl, m2, m3, m4)


def _group_index(moments: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    keyframe = moments[keys].copy()
    keyframe["gid"] = np.arange(len(keyframe), dtype=np.int64)
    return keyframe


def _attach_gid(frame: pd.DataFrame, keyframe: pd.DataFrame, keys: list[str]) -> np.ndarray:
    merged = frame[keys].merge(keyframe, on=keys, how="left", sort=False)
    if merged["gid"].isna().any():  # pragma: no cover - engines return the same groups
        raise ValidationError("internal: a group of a partial result has no moments row")
    return merged["gid"].to_numpy(np.int64)


def _slices(gid: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(gid, kind="stable")
    bounds = np.searchsorted(gid[order], np.arange(n_groups + 1))
    return order, bounds


def _output(moments: pd.DataFrame, keys: list[str], spec: Spec, states: list) -> pd.DataFrame:
    out = moments[keys].copy()
    out.columns = spec.out_keys if spec.out_keys else keys
    if not spec.out_keys:
        out = out.drop(columns=keys)
    out["state"] = states
    return out.reset_index(drop=True)


def _sort_groups(moments: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if len(moments) == 0:
        raise EmptyBatchError("the data has no rows", parameter="data")
    return moments.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------ regression
_REG_SERIES = ["y", "yh", "e", "ae", "se", "ape", "sape"]
_ABS_TINY = flt(2.0**-1022)


def abs_bin_expr(x: str) -> str:
    """SQL bucket of ``x = |e| >= 0`` as :func:`perfkit.metrics._kernels.abs_error_hist`.

    The float64 bits of ``x`` shifted right by ``52 - MANT_BITS`` = (biased exponent) *
    2**MANT_BITS + the top mantissa bits; 0 below the smallest normal double. ``x`` must be
    a column name (it is repeated); the exponent from ``log2`` is corrected by one when it
    rounded across a power of two.

    Examples
    --------
    >>> import duckdb, numpy as np
    >>> from perfkit.metrics.layout import abs_error_hist
    >>> x = np.array([0.0, 1e-300, 0.1, 1.0, 3.0, 1e300])
    >>> sql = "SELECT " + abs_bin_expr("x") + " AS b FROM (VALUES " + ", ".join(
    ...     f"({float(v)!r})" for v in x) + ") t(x)"
    >>> got = sorted(r[0] for r in duckdb.sql(sql).fetchall())
    >>> got == abs_error_hist(x, np.zeros_like(x))[0].tolist()
    True
    """
    mb = ABS_MANT_BITS
    xx = f"GREATEST({x}, {_ABS_TINY})"
    e0 = f"CAST(floor(log2({xx})) AS BIGINT)"
    r0 = f"({xx} / power(2e0, {e0}))"
    e = f"({e0} + CASE WHEN {r0} >= 2e0 THEN 1 WHEN {r0} < 1e0 THEN -1 ELSE 0 END)"
    sub = f"CAST(floor(({xx} / power(2e0, {e}) - 1e0) * {flt(2.0**mb)}) AS BIGINT)"
    return f"(CASE WHEN {x} < {_ABS_TINY} THEN 0 ELSE ({e} + 1023) * {1 << mb} + {sub} END)"


def _abs_error_hist_sql(key_items: list[str], keys: list[str], base: list[str]) -> str:
    klist = ", ".join(keys)
    return (
        f"WITH b AS (SELECT {', '.join(key_items)}, {', '.join(base)} FROM {{src}}) "
        f"SELECT {klist}, bkt, COUNT(*) AS n FROM (SELECT {klist}, {abs_bin_expr('ae')} AS bkt FROM "
        f"(SELECT {klist}, abs(y - yh) AS ae FROM b) q0) q1 GROUP BY {klist}, bkt"
    )


def _regression(spec: Spec, runner: Runner) -> pd.DataFrame:
    d = runner.dialect
    key_items, keys = _key_select(spec, d)
    labelled = spec.y_true is not None
    base = [f"CAST({d.ident(spec.y_pred)} AS DOUBLE) AS yh"]
    if labelled:
        base.append(f"CAST({d.ident(spec.y_true)} AS DOUBLE) AS y")
        series = [
            ("y", "y"),
            ("yh", "yh"),
            ("e", "y - yh"),
            ("ae", "abs(y - yh)"),
            ("se", "(y - yh) * (y - yh)"),
            # |e| / |y| over y != 0; NULL (skipped by the aggregates) where y == 0
            ("ape", "abs(y - yh) / NULLIF(abs(y), 0e0)"),
            # 2|e| / (|y| + |yhat|) with 0/0 := 0 (NULLIF guards Spark's ANSI division)
            ("sape", "COALESCE(2e0 * abs(y - yh) / NULLIF(abs(y) + abs(yh), 0e0), 0e0)"),
        ]
        extra = [f"SUM({_finite('y')}) AS bad_y", f"SUM({_finite('yh')}) AS bad_yh"]
    else:
        series = [("yh", "yh")]
        extra = [f"SUM({_finite('yh')}) AS bad_yh"]
    sql = _moment_sql(key_items, keys, base, series, cross=labelled, extra_pass1=extra)
    moments = _sort_groups(runner.query(sql), keys)
    for col, parameter in (("bad_y", "y_true"), ("bad_yh", "y_pred")):
        if col in moments and int(moments[col].sum()) > 0:
            raise NonFiniteError(
                f"{parameter} contains {int(moments[col].sum())} missing, NaN or infinite value(s)",
                parameter=parameter,
            )
    hist_rows = None
    if labelled:
        hist = runner.query(_abs_error_hist_sql(key_items, keys, base))
        keyframe = _group_index(moments, keys)
        hgid = _attach_gid(hist, keyframe, keys)
        order, bounds = _slices(hgid, len(moments))
        hb = hist["bkt"].to_numpy(np.int64)
        hn = hist["n"].to_numpy(np.int64)
        hist_rows = (order, bounds, hb, hn)
    states = []
    for g, row in enumerate(moments.to_dict("records")):
        n = int(row["n"])
        yhat = _moments_from(row, "yh")
        if not labelled:
            states.append(RegressionState(n=n, labelled=False, yhat=yhat))
            continue
        y = _moments_from(row, "y")
        se = _moments_from(row, "se")
        ape = _moments_from(row, "ape")
        dl = y.mean - float(row["a_y"])  # the refinement of the shift
        sum_se = se.n * se.mean
        c1, c2 = float(row["c1"]), float(row["c2"])
        states.append(
            RegressionState(
                n=n,
                labelled=True,
                yhat=yhat,
                y=y,
                e=_moments_from(row, "e"),
                ae=_moments_from(row, "ae"),
                se=se,
                ape=ape,
                n_zero_target=n - ape.n,
                sape=_moments_from(row, "sape"),
                shift=y.mean,
                cross1=c1 - dl * sum_se,
                cross2=c2 - 2.0 * dl * c1 + dl * dl * sum_se,
                ae_hist=_group_hist(hist_rows, g),
            )
        )
    return _output(moments, keys, spec, states)


def _group_hist(hist_rows, g: int) -> AbsErrorHistogram:
    order, bounds, hb, hn = hist_rows
    sl = order[bounds[g] : bounds[g + 1]]
    return AbsErrorHistogram.from_pairs(hb[sl], hn[sl])


# -------------------------------------------------------------------- classification
def _discover_classes(spec: Spec, labels: set, has_proba_2d: bool, n_proba: int) -> tuple:
    if spec.classes is not None:
        cls = sorted_labels({python_label(c) for c in spec.classes}, "classes")
        if len(cls) != len(list(spec.classes)):
            raise LabelError("classes contains duplicates", parameter="classes")
    elif isinstance(spec.proba, Mapping):
        cls = sorted_labels({python_label(c) for c in spec.proba}, "proba")
    else:
        seen = set(labels)
        if has_proba_2d and len(seen) < n_proba and all(
            isinstance(c, int) and not isinstance(c, bool) for c in seen
        ) and (not seen or (min(seen) >= 0 and max(seen) < n_proba)):
            seen = set(range(n_proba))
        if len(seen) == 1:
            (only,) = seen
            if isinstance(only, bool):
                seen = {False, True}
            elif isinstance(only, int) and only in (0, 1):
                seen = {0, 1}
            elif spec.proba is not None:
                raise LabelError(
                    f"only one class ({only!r}) is present; pass classes=[...] so the scores can "
                    "be interpreted",
                    parameter="classes",
                )
        cls = sorted_labels(seen, "y_true")
    if len(cls) < 2:
        raise LabelError(f"classification needs at least two classes, got {list(cls)}", parameter="classes")
    if spec.task == "binary" and len(cls) != 2:
        raise LabelError(f"task='binary' needs exactly two classes, got {list(cls)}", parameter="classes")
    return cls


def _score_columns(spec: Spec, cls: tuple, pos: int, d: Dialect) -> list[str]:
    """SQL expression of each class's score (class order), or [] without proba."""
    p = spec.proba
    k = len(cls)
    if p is None:
        return []
    if isinstance(p, str):
        if k != 2:
            raise ShapeError(
                f"proba must map every class ({k}) to a column for multiclass, got one column {p!r}",
                parameter="proba",
            )
        col = f"CAST({d.ident(p)} AS DOUBLE)"
        out = ["", ""]
        out[pos] = col
        out[1 - pos] = f"1e0 - {col}"
        return out
    if isinstance(p, Mapping):
        keyed = {python_label(c): v for c, v in p.items()}
        if set(keyed) != set(cls):
            raise LabelError(
                f"proba keys {list(keyed)} do not match the classes {list(cls)}", parameter="proba"
            )
        return [f"CAST({d.ident(keyed[c])} AS DOUBLE)" for c in cls]
    cols = list(p)
    if len(cols) != k:
        raise LabelError(
            f"proba lists {len(cols)} columns but there are {k} classes {list(cls)}", parameter="proba"
        )
    return [f"CAST({d.ident(c)} AS DOUBLE)" for c in cols]


def _argmax_sql(scores: list[str], labels: list[str]) -> str:
    """First-maximum arg-max (numpy semantics) returning the label literal."""
    k = len(scores)
    whens = []
    for j in range(k - 1):
        cond = " AND ".join(f"s{j} >= s{m}" for m in range(j + 1, k))
        whens.append(f"WHEN {cond} THEN {labels[j]}")
    return f"CASE {' '.join(whens)} ELSE {labels[k - 1]} END"


def _classification(spec: Spec, runner: Runner) -> pd.DataFrame:
    d = runner.dialect
    key_items, keys = _key_select(spec, d)
    klist = ", ".join(keys)
    labelled = spec.y_true is not None
    proba_cols = _proba_columns(spec)
    has_proba = bool(proba_cols)
    two_d = has_proba and not isinstance(spec.proba, str)
    if spec.y_pred is None and not has_proba:
        raise InputTypeError("y_pred (or proba) is required", parameter="y_pred")
    if spec.task == "multiclass" and isinstance(spec.proba, str):
        raise ShapeError(
            "proba must be a dict class -> column or a list of columns in class order for "
            "multiclass", parameter="proba",
        )
    raw = [d.ident(c) for c in proba_cols]

    # ---- pass 0: label pairs per group, with the input checks folded in
    lab = []
    if labelled:
        lab.append(f"{d.ident(spec.y_true)} AS yt")
    if spec.y_pred is not None:
        lab.append(f"{d.ident(spec.y_pred)} AS yp")
    lab_names = [x.split(" AS ")[-1] for x in lab]
    rr = [f"r{i}" for i in range(len(raw))]
    checks = []
    if has_proba:
        checks.append("SUM(" + " + ".join(_finite(c) for c in rr) + ") AS bad_p")
        checks.append(f"MIN(LEAST({', '.join(rr)}, 1e0)) AS lo_p")
        checks.append(f"MAX(GREATEST({', '.join(rr)}, 0e0)) AS hi_p")
        if two_d:
            checks.append(f"MAX(abs(({' + '.join(rr)}) - 1e0)) AS dev_p")
    group_cols = keys + lab_names
    sql0 = (
        f"WITH b AS (SELECT {', '.join(key_items + lab + [f'{r} AS r{i}' for i, r in enumerate(raw)])}"
        f" FROM {{src}}) SELECT {', '.join(group_cols)}, COUNT(*) AS n"
        + "".join(", " + c for c in checks)
        + f" FROM b GROUP BY {', '.join(group_cols)}"
    )
    pairs = runner.query(sql0)
    if len(pairs) == 0:
        raise EmptyBatchError("the data has no rows", parameter="data")
    for name, parameter in (("yt", "y_true"), ("yp", "y_pred")):
        if name in pairs and pairs[name].isna().any():
            bad = int(pairs.loc[pairs[name].isna(), "n"].sum())
            raise NonFiniteError(f"{parameter} contains {bad} missing (NULL/NaN) label(s)", parameter=parameter)
    eps = _F64_EPS
    if has_proba:
        if int(pairs["bad_p"].sum()) > 0:
            raise NonFiniteError(
                f"proba contains {int(pairs['bad_p'].sum())} missing, NaN or infinite value(s)",
                parameter="proba",
            )
        lo, hi = float(pairs["lo_p"].min()), float(pairs["hi_p"].max())
        if lo < 0.0 or hi > 1.0:
            raise ProbabilityError(
                f"proba must lie in [0, 1], found values in [{lo:g}, {hi:g}]", parameter="proba"
            )
        if two_d and float(pairs["dev_p"].max()) > _PROBA_TOL:
            raise ProbabilityError(
                f"proba columns must sum to 1 per row (tolerance {_PROBA_TOL:g}); the worst row is "
                f"off by {float(pairs['dev_p'].max()):.3g}",
                parameter="proba",
            )
        if all(runner.columns[c] == "float32" for c in proba_cols):
            eps = _F32_EPS
    labels: set = set()
    for name in lab_names:
        labels |= {python_label(v) for v in pd.unique(pairs[name])}
    cls = _discover_classes(spec, labels, two_d, len(proba_cols))
    for name, parameter in (("yt", "y_true"), ("yp", "y_pred")):
        if name in pairs:
            unknown = {python_label(v) for v in pd.unique(pairs[name])} - set(cls)
            if unknown:
                raise LabelError(
                    f"{parameter} contains labels {sorted(map(repr, unknown))[:5]} that are not "
                    f"among the classes {list(cls)}",
                    parameter=parameter,
                )
    k = len(cls)
    task = spec.task
    pos = -1
    if task == "binary":
        if spec.positive_label is None:
            pos = 1
        else:
            pl = python_label(spec.positive_label)
            if pl not in cls:
                raise LabelError(
                    f"positive_label {pl!r} is not one of the classes {list(cls)}",
                    parameter="positive_label",
                )
            pos = cls.index(pl)
    lookup = {c: i for i, c in enumerate(cls)}
    scores = _score_columns(spec, cls, pos, d)
    lits = [d.literal(c) for c in cls]
    hist_classes = ([pos] if task == "binary" else list(range(k))) if has_proba else []

    # ---- confusion and predicted counts from the label pairs
    keyed_pairs = pairs
    if spec.y_pred is None:
        # arg-max predictions need the scores: one more (cheap) aggregate
        sq = ", ".join(f"{s} AS s{j}" for j, s in enumerate(scores))
        yt_item = f", {d.ident(spec.y_true)} AS yt" if labelled else ""
        cols = keys + (["yt"] if labelled else []) + ["yp"]
        keyed_pairs = runner.query(
            f"WITH b AS (SELECT {', '.join(key_items)}{yt_item}, {sq} FROM {{src}}), "
            f"c AS (SELECT *, {_argmax_sql([f's{j}' for j in range(k)], lits)} AS yp FROM b) "
            f"SELECT {', '.join(cols)}, COUNT(*) AS n FROM c GROUP BY {', '.join(cols)}"
        )

    # ---- moments (log loss and per-class scores), two passes
    base = [f"{s} AS s{j}" for j, s in enumerate(scores)]
    series = [(f"s{j}", f"s{j}") for j in range(len(scores))]
    if labelled and has_proba:
        base.append(f"{d.ident(spec.y_true)} AS yt")
        py = "CASE " + " ".join(f"WHEN yt = {lits[j]} THEN s{j}" for j in range(k)) + " END"
        clip = f"GREATEST(LEAST({py}, {flt(1.0 - eps)}), {flt(eps)})"
        series.insert(0, ("ll", f"-ln({clip})"))
        if task == "binary":
            brier = f"POWER(s{pos} - CASE WHEN yt = {lits[pos]} THEN 1.0 ELSE 0.0 END, 2)"
        else:
            brier = " + ".join(f"POWER(s{j} - CASE WHEN yt = {lits[j]} THEN 1.0 ELSE 0.0 END, 2)"
                               for j in range(k))
        series.insert(1, ("br", brier))
    if not base:
        base = ["0 AS z"]
        series = [("z", "z")]
    moments = _sort_groups(
        runner.query(_moment_sql(key_items, keys, base, series, cross=False, extra_pass1=[])), keys
    )
    keyframe = _group_index(moments, keys)
    G = len(moments)

    # ---- histograms of each histogram class's score, split by the true label
    # and by whether the row is predicted as that class (pf: the joint predicted class x
    # score bin that label-free estimation needs)
    hist = None
    if has_proba:
        yt_sel = f", {d.ident(spec.y_true)} AS yt" if labelled else ""
        if spec.y_pred is not None:
            yp_sel = f", {d.ident(spec.y_pred)} AS yp"
        else:
            all_scores = ", ".join(f"{s} AS s{m}" for m, s in enumerate(scores))
            yp_sel = f", {_argmax_sql([f's{m}' for m in range(k)], lits)} AS yp"
        parts = []
        for j, c in enumerate(hist_classes):
            g = ", ".join(keys + (["yt"] if labelled else []) + ["pf", "bkt"])
            inner = (
                f"SELECT {', '.join(key_items)}{yt_sel}{yp_sel}, {scores[c]} AS x FROM {{src}}"
                if spec.y_pred is not None
                else f"SELECT *, s{c} AS x{yp_sel} FROM (SELECT {', '.join(key_items)}{yt_sel}, "
                f"{all_scores} FROM {{src}}) q00"
            )
            parts.append(
                f"SELECT {g}, {j} AS hj, COUNT(*) AS n FROM (SELECT {klist}"
                f"{', yt' if labelled else ''}, CASE WHEN yp = {lits[c]} THEN 1 ELSE 0 END AS pf, "
                f"{bin_expr('x')} AS bkt FROM ({inner}) q0) q1 GROUP BY {g}"
            )
        hist = runner.query(" UNION ALL ".join(parts))

    # ---- multiclass: rows by (predicted class, class, coarse cell of that class's score)
    joint = None
    if has_proba and task == "multiclass":
        all_scores = ", ".join(f"{s} AS s{m}" for m, s in enumerate(scores))
        yp_item = f", {d.ident(spec.y_pred)} AS yp" if spec.y_pred is not None else ""
        yp_outer = "" if spec.y_pred is not None else f", {_argmax_sql([f's{m}' for m in range(k)], lits)} AS yp"
        base_sel = (
            f"SELECT *{yp_outer} FROM (SELECT {', '.join(key_items)}{yp_item}, {all_scores} FROM {{src}}) q00"
        )
        parts = [
            f"SELECT {klist}, yp, {c} AS hc, {cell_expr(f's{c}')} AS cl, COUNT(*) AS n FROM jb "
            f"GROUP BY {klist}, yp, {cell_expr(f's{c}')}"
            for c in range(k)
        ]
        joint = runner.query(f"WITH jb AS ({base_sel}) " + " UNION ALL ".join(parts))

    # ---- labelled multiclass: rows by pair of classes, group and the two classes' AUC cells
    # (the exactly mergeable counts behind the macro AUC's covariance, as ``_auc_cov``)
    pair_rows = None
    if has_proba and labelled and task == "multiclass" and 2 < k <= AUC_PAIR_MAX_CLASSES:
        all_scores = ", ".join(f"{s} AS s{m}" for m, s in enumerate(scores))
        inner = f"SELECT {', '.join(key_items)}, {d.ident(spec.y_true)} AS yt, {all_scores} FROM {{src}}"
        bk = ", ".join(f"{bin_expr(f's{m}')} AS b{m}" for m in range(k))
        cl = ", ".join(f"{auc_pair_cell_expr(f'b{m}')} AS c{m}" for m in range(k))
        parts = []
        for c in range(k):
            for e in range(c + 1, k):
                grp = f"CASE WHEN yt = {lits[c]} THEN 0 WHEN yt = {lits[e]} THEN 1 ELSE 2 END"
                parts.append(
                    f"SELECT {klist}, {auc_pair_index(c, e, k)} AS pr, {grp} AS pg, c{c} AS ca, "
                    f"c{e} AS cb, COUNT(*) AS n FROM pc GROUP BY {klist}, {grp}, c{c}, c{e}"
                )
        pair_rows = runner.query(
            f"WITH pc AS (SELECT {klist}, yt, {cl} FROM (SELECT {klist}, yt, {bk} FROM ({inner}) q0) q1) "
            + " UNION ALL ".join(parts)
        )

    # ---- assemble
    conf_gid = _attach_gid(keyed_pairs, keyframe, keys)
    p_idx = label_codes(keyed_pairs["yp"], lookup, "y_pred")
    counts = keyed_pairs["n"].to_numpy(np.int64)
    pred_counts = np.zeros((G, k), dtype=np.int64)
    np.add.at(pred_counts, (conf_gid, p_idx), counts)
    confusion = None
    if labelled:
        y_idx = label_codes(keyed_pairs["yt"], lookup, "y_true")
        confusion = np.zeros((G, k, k), dtype=np.int64)
        np.add.at(confusion, (conf_gid, y_idx, p_idx), counts)
    h = len(hist_classes)
    if hist is not None:
        hgid = _attach_gid(hist, keyframe, keys)
        hj = hist["hj"].to_numpy(np.int64)
        hb = hist["bkt"].to_numpy(np.int64)
        hn = hist["n"].to_numpy(np.int64)
        if labelled:
            hy = label_codes(hist["yt"], lookup, "y_true")
            is_pos = hy == np.asarray(hist_classes, dtype=np.int64)[hj]
        else:
            is_pos = np.zeros(len(hist), dtype=bool)
        is_pred = hist["pf"].to_numpy(np.int64) == 1
        order, bounds = _slices(hgid, G)

    pred_joint = None
    if joint is not None:
        jgid = _attach_gid(joint, keyframe, keys)
        pred_joint = np.zeros((G, k, k, JOINT_CELLS), dtype=np.int64)
        np.add.at(
            pred_joint,
            (jgid, label_codes(joint["yp"], lookup, "y_pred"), joint["hc"].to_numpy(np.int64),
             joint["cl"].to_numpy(np.int64)),
            joint["n"].to_numpy(np.int64),
        )

    if pair_rows is not None:
        pgid = _attach_gid(pair_rows, keyframe, keys)
        pflat = ((pair_rows["pr"].to_numpy(np.int64) * 3 + pair_rows["pg"].to_numpy(np.int64))
                 * AUC_PAIR_CELLS + pair_rows["ca"].to_numpy(np.int64)) * AUC_PAIR_CELLS \
            + pair_rows["cb"].to_numpy(np.int64)
        pn = pair_rows["n"].to_numpy(np.int64)
        porder, pbounds = _slices(pgid, G)
        pshape = (k * (k - 1) // 2, 3, AUC_PAIR_CELLS, AUC_PAIR_CELLS)

    states = []
    for g, row in enumerate(moments.to_dict("records")):
        hist_pos = hist_neg = hist_pred = pair_counts = None
        if pair_rows is not None:
            sl = porder[pbounds[g] : pbounds[g + 1]]
            pair_counts = SparseCounts.from_flat_sum(pshape, pflat[sl], pn[sl])
        if hist is not None:
            sl = order[bounds[g] : bounds[g + 1]]
            # sparse, as the in-memory states: (class row, bucket) -> count, repeats summed
            hist_pos, hist_neg, hist_pred = (
                SparseCounts.from_flat_sum((h, HIST_BINS), hj[s] * HIST_BINS + hb[s], hn[s])
                for s in (sl[is_pos[sl]], sl[~is_pos[sl]], sl[is_pred[sl]])
            )
        states.append(
            ClassificationState(
                task=task,
                classes=cls,
                positive_index=pos,
                n=int(row["n"]),
                labelled=labelled,
                confusion=None if confusion is None else confusion[g],
                pred_counts=pred_counts[g],
                hist_pos=hist_pos,
                hist_neg=hist_neg,
                score_moments=tuple(_moments_from(row, f"s{j}") for j in range(len(scores))),
                logloss=_moments_from(row, "ll") if (labelled and has_proba) else None,
                brier=_moments_from(row, "br") if (labelled and has_proba) else None,
                eps=eps,
                auc_exact=None,
                auc_var_exact=None,
                hist_pred=hist_pred,
                pred_joint=None if pred_joint is None else pred_joint[g],
                auc_pair_counts=pair_counts,
            )
        )
    return _output(moments, keys, spec, states)


def compute_with_runner(spec: Spec, runner: Runner) -> pd.DataFrame:
    """Group-by states of ``spec`` computed by ``runner`` (the engine-neutral driver)."""
    if spec.task not in TASKS:
        raise UnknownTaskError(f"task must be one of {TASKS}, got {spec.task!r}", parameter="task")
    _check_columns(spec, runner)
    fn: Callable = _regression if spec.task == "regression" else _classification
    out = fn(spec, runner)
    logger.debug("computed %d %s state(s) on %s", len(out), spec.task, runner.dialect.name)
    return out

