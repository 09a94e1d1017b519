"""The kinds of state fields: how each merges, serializes and loads.

A state class declares its fields once (``state.py``: name, kind, whether the field is
label-free, whether it belongs to the score part); merging objects, merging stored dicts,
serialization and ``prediction_part`` are all derived from that declaration. Merging works
on *columns* (one field's values over all states being merged), so merging two states and
merging a year of them is one code path.
"""

from __future__ import annotations

import base64
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from perfkit.exceptions import StateError
from perfkit.metrics import _threads
from perfkit.metrics._abs_hist import MANT_BITS, AbsErrorHistogram
from perfkit.metrics._moments import Moments
from perfkit.metrics._sparse import SparseCounts, merge_stored

__all__ = [
    "AbsHist", "Counts", "CrossSum", "Exact", "Field", "First", "Kind", "Max", "MomentsField",
    "MomentsTuple", "NWeightedMean", "Same", "Sparse", "Sum",
]

Columns = dict[str, list]


class Kind:
    """How a field merges and serializes. ``None`` values (a field a state does not have,
    e.g. one stored before it existed) make the merged value None unless a kind says otherwise."""

    nullable_merge = True

    def merge(self, values: list, cols: Columns) -> Any:
        """Merged value of decoded values (``cols``: every field's values, same states)."""
        raise NotImplementedError

    def merge_stored(self, raw: list, cols: Columns) -> Any:
        """Merged (decoded) value of stored values; ``cols`` holds stored values too."""
        return self.merge([self.decode(r) for r in raw], cols)

    def encode(self, v: Any) -> Any:
        return v

    def decode(self, raw: Any) -> Any:
        return raw

    def convert(self, v: Any) -> Any:
        """Normalise a value passed to the constructor (e.g. dense -> sparse)."""
        return v


class Same(Kind):
    """Identifies the state (task, classes, ...): every merged state must agree."""

    nullable_merge = False

    def __init__(self, message: str, decode: Callable | None = None, encode: Callable | None = None):
        self.message = message
        self._decode = decode
        self._encode = encode

    def merge(self, values, cols):
        first = values[0]
        for v in values[1:]:
            if v != first:
                raise StateError(self.message.format(a=first, b=v))
        return first

    def merge_stored(self, raw, cols):
        return self.decode(self.merge(raw, cols))

    def encode(self, v):
        return v if self._encode is None else self._encode(v)

    def decode(self, raw):
        return raw if self._decode is None else self._decode(raw)


class First(Kind):
    """Kept from the first state (a reference point, e.g. a shift)."""

    nullable_merge = False

    def merge(self, values, cols):
        return values[0]

    def merge_stored(self, raw, cols):
        return self.decode(raw[0])

    def decode(self, raw):
        return float(raw)


class Sum(Kind):
    """An integer total."""

    nullable_merge = False

    def merge(self, values, cols):
        return int(sum(values))

    merge_stored = merge

    def decode(self, raw):
        return int(raw)


class Max(Kind):
    """A float kept at its maximum (e.g. the probability clip)."""

    nullable_merge = False

    def merge(self, values, cols):
        return float(max(values))

    merge_stored = merge

    def decode(self, raw):
        return float(raw)


class Counts(Kind):
    """A small dense int64 count array (confusion matrix, predicted-class counts): adds."""

    def merge(self, values, cols):
        return np.sum(np.stack(values), axis=0) if len(values) > 1 else values[0]

    def merge_stored(self, raw, cols):
        return _stored_array(raw, np.int64).sum(axis=0)

    def encode(self, v):
        return v.tolist()

    def decode(self, raw):
        return np.asarray(raw, dtype=np.int64)


class MomentsField(Kind):
    """Count, mean and central moment sums, merged with Chan / Pébay."""

    def merge(self, values, cols):
        return values[0] if len(values) == 1 else Moments.merge_all([v.to_list() for v in values])

    def merge_stored(self, raw, cols):
        a = _stored_array(raw, np.float64)
        return Moments.merge_array(a) if a.ndim == 2 and a.shape[1] == 5 else Moments.merge_all(raw)

    def encode(self, v):
        return v.to_list()

    def decode(self, raw):
        return Moments.from_list(raw)


class MomentsTuple(Kind):
    """One Moments per column (class scores), merged column by column."""

    nullable_merge = False

    def merge(self, values, cols):
        if len(values) == 1:
            return values[0]
        return tuple(Moments.merge_all([m.to_list() for m in col]) for col in zip(*values, strict=True))

    def merge_stored(self, raw, cols):
        try:  # every state's columns as one (states, columns, 5) array: one conversion
            a = _stored_array(raw, np.float64)
        except (TypeError, ValueError):  # ragged: column by column (raises as there)
            a = None
        if a is not None and a.ndim == 3 and a.shape[2] == 5:
            return tuple(Moments.merge_array(a[:, j]) for j in range(a.shape[1]))
        return tuple(Moments.merge_all(list(col)) for col in zip(*raw, strict=True))

    def encode(self, v):
        return [m.to_list() for m in v]

    def decode(self, raw):
        return tuple(Moments.from_list(m) for m in raw)


class Sparse(Kind):
    """A sparse count array (score histograms): adds; stored as sparse rows.

    ``shape(d)`` gives the in-memory shape from the stored dict's identifying fields
    (None: the stored (rows, bins)); ``flat``: stored as one row."""

    def __init__(self, shape: Callable[[dict], tuple] | None = None, flat: bool = False):
        self.shape = shape
        self.flat = flat  # stored as one sparse row (many short rows would bloat the JSON)
        self._layout = "cannot merge score histograms of different layouts: {a} vs {b} (states from another perfkit version?)"

    def _check(self, values):
        shapes = {v.shape for v in values}
        if len(shapes) > 1:
            a, b = sorted(shapes)[:2]
            raise StateError(self._layout.format(a=a, b=b))

    def merge(self, values, cols):
        self._check(values)
        return SparseCounts.merge_all(values)

    def merge_stored(self, raw, cols):
        try:
            return merge_stored(raw, self.stored_shape(cols), _threads.pool())
        except ValueError as exc:
            raise StateError(f"{exc}") from exc

    def stored_shape(self, cols: Columns) -> tuple | None:
        """The merged array's shape from the stored columns (None: the stored (rows, bins))."""
        return None if self.shape is None else self.shape({k: v[0] for k, v in cols.items()})

    def encode(self, v):
        try:
            return (v.reshape(-1) if self.flat else v).to_dict()
        except ValueError as exc:
            raise StateError(f"{exc}") from exc

    def decode(self, raw, shape=None):
        return SparseCounts.from_dict(raw, shape)

    def convert(self, v):
        return SparseCounts.of(v)


class Exact(Kind):
    """A per-batch exact value (e.g. the exact AUC of one batch): lost on merge."""

    nullable_merge = False

    def merge(self, values, cols):
        return values[0] if len(values) == 1 else None

    def merge_stored(self, raw, cols):
        return self.decode(raw[0]) if len(raw) == 1 else None

    def encode(self, v):
        return None if v is None else [_nan_to_none(a) for a in v]

    def decode(self, raw):
        return None if raw is None else tuple(math.nan if a is None else float(a) for a in raw)


class NWeightedMean(Kind):
    """A ratio merged as the mean weighted by ``n`` over the states that have it."""

    nullable_merge = False

    def merge(self, values, cols):
        if None in values:
            pairs = [(int(n), float(v)) for n, v in zip(cols["n"], values, strict=True) if v is not None]
            ns, vs = [n for n, _ in pairs], [v for _, v in pairs]
        else:  # the same sums by C-level passes
            if len(values) != len(cols["n"]):
                raise ValueError("n and the ratios have different lengths")
            ns, vs = list(map(int, cols["n"])), list(map(float, values))
        den = sum(ns)
        return sum(map(operator.mul, ns, vs)) / den if den else (vs[0] if vs else None)

    merge_stored = merge

    def decode(self, raw):
        return None if raw is None else float(raw)


class AbsHist(Kind):
    """The sparse absolute-error histogram of a regression state: counts add."""

    def merge(self, values, cols):
        if len(values) == 1:
            return values[0]
        return _sum_pairs(np.concatenate([v.ids for v in values]), np.concatenate([v.counts for v in values]))

    def merge_stored(self, raw, cols):
        """All stored histograms decoded at once when they share one packing (else one by one)."""
        if len(raw) == 1:
            return self.decode(raw[0])
        try:
            mant, m, g, d, z = zip(*map(_ABS_FIELDS, raw), strict=True)
        except (KeyError, TypeError):
            return self.merge([self.decode(r) for r in raw], cols)
        if len(set(g)) != 1 or len(set(d)) != 1 or set(mant) != {MANT_BITS}:
            return self.merge([self.decode(r) for r in raw], cols)
        ids, counts = _decode_packed(z, np.asarray(m, dtype=np.int64), g[0], d[0])
        return _sum_pairs(ids, counts)

    def encode(self, v):
        return v.to_dict()

    def decode(self, raw):
        return AbsErrorHistogram.from_dict(raw)


class CrossSum(Kind):
    """Shifted cross sums of ``e**2`` with ``y``: ``sum e^2 (y - shift)^order``.

    Every state's sums are re-expressed around the first state's shift (``y - s1 =
    (y - s_i) + delta``), then added; needs the ``shift``, ``se`` and ``cross1`` columns.
    """

    nullable_merge = False

    def __init__(self, order: int):
        self.order = order

    def merge(self, values, cols):
        return self._merge([float(v) for v in values], cols, stored=False)

    def merge_stored(self, raw, cols):
        return self._merge([float(v) for v in raw], cols, stored=True)

    def _merge(self, values, cols, stored):
        if len(values) == 1:
            return values[0]
        shift = np.asarray(cols["shift"], dtype=np.float64)
        se = cols["se"]
        if any(m is None for m in se):
            return 0.0
        rows = np.asarray(se if stored else [m.to_list() for m in se], dtype=np.float64)
        se_sum = rows[:, 0] * rows[:, 1]
        delta = shift - shift[0]
        c1 = np.asarray(cols["cross1"], dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # as Python floats: inf, no warning
            if self.order == 1:
                parts = c1 + delta * se_sum
            else:
                parts = np.asarray(values) + 2.0 * delta * c1 + delta * delta * se_sum
        # the first state's own sums need no re-expression (delta = 0): keep them exactly
        return float(values[0] + parts[1:].sum())

    def decode(self, raw):
        return float(raw)


def _stored_array(raw: list, dtype: type) -> np.ndarray:
    """``np.asarray(raw, dtype)`` of many states' stored values (numbers, or lists of them one
    or two levels deep): equal-length lists of numbers are read by one ``fromiter`` pass
    (twice as fast); anything else by ``np.asarray`` (which raises for ragged lists)."""
    first = raw[0] if raw else None
    if type(first) is list and all(type(r) is list for r in raw) and len(set(map(len, raw))) == 1:
        if first and type(first[0]) is list:
            rows = list(chain.from_iterable(raw))
            if all(type(r) is list for r in rows) and len(set(map(len, rows))) == 1:
                items, shape = chain.from_iterable(rows), (len(raw), len(first), len(first[0]))
            else:
                items = shape = None
        else:
            items, shape = chain.from_iterable(raw), (len(raw), len(first))
        if items is not None:
            try:
                return np.fromiter(items, dtype, count=math.prod(shape)).reshape(shape)
            except (TypeError, ValueError):  # e.g. None among floats, deeper lists
                pass
    return np.asarray(raw, dtype=dtype)


_ABS_FIELDS = operator.itemgetter("mant_bits", "n", "g", "d", "z")
_UINT = {"B": np.uint8, "H": np.uint16, "I": np.uint32, "Q": np.uint64}


def _decode_packed(z: Sequence[str], m: np.ndarray, gcode: str, ccode: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, counts) of many packed histograms (each: ``m_i`` gaps, then ``m_i`` counts) at once."""
    gdt, cdt = np.dtype(_UINT[gcode]), np.dtype(_UINT[ccode])
    size = m * (gdt.itemsize + cdt.itemsize)
    text_len = np.fromiter(map(len, z), np.int64, len(z))
    if not np.any(size % 3) and np.array_equal(text_len, size // 3 * 4):
        data = base64.b64decode("".join(z))  # no padding inside: one decode of the joined text
    else:
        blobs = [base64.b64decode(t) for t in z]
        if not np.array_equal(np.fromiter(map(len, blobs), np.int64, len(blobs)), size):
            raise ValueError("absolute-error histogram: payload length does not match its size")
        data = b"".join(blobs)
    if len(data) != int(size.sum()):
        raise ValueError("absolute-error histogram: payload length does not match its size")
    buf = np.frombuffer(data, dtype=np.uint8)
    start = np.cumsum(size) - size  # byte offset of each histogram
    # 1 on the bytes of gaps, 0 on the bytes of counts: +1 where a histogram starts, -1
    # where its counts start, summed along the buffer
    mark = np.zeros(buf.size + 1, dtype=np.int8)
    np.add.at(mark, start, 1)
    np.add.at(mark, start + m * gdt.itemsize, -1)
    is_gap = np.cumsum(mark[:-1], dtype=np.int8).view(bool)
    gaps = buf[is_gap].view(gdt)
    counts = buf[~is_gap].view(cdt)
    first = np.cumsum(m) - m  # index of each histogram's first bucket among all
    run = np.cumsum(gaps, dtype=np.int64)  # ids: the gaps summed within each histogram
    before = np.r_[0, run][first]
    return run - np.repeat(before, m), counts.astype(np.int64)


def _sum_pairs(ids: np.ndarray, counts: np.ndarray) -> AbsErrorHistogram:
    """Histogram of (id, count) pairs, duplicate ids summed (a dense pass when the ids are
    close together, as the buckets of one metric's errors are; else a sort)."""
    if ids.size and int(ids.max()) - int(ids.min()) <= 4 * ids.size + 1024:
        lo = int(ids.min())
        present = np.bincount(ids - lo) > 0
        acc = np.bincount(ids - lo, weights=counts, minlength=present.size)
        nz = np.flatnonzero(present)
        return AbsErrorHistogram(nz + lo, acc[nz].astype(np.int64))
    return AbsErrorHistogram.from_pairs(ids, counts)


@dataclass(frozen=True)
class Field:
    """One declared state field.

    ``label_free``: True keeps the value in ``prediction_part``; False resets it to
    ``default``; a callable computes the label-free value from the state. ``scores``: part of
    the score data, merged over the states that have scores only. ``default``: the value when
    a stored dict lacks the field (written before it existed); ``required``: no default (a
    stored dict without it is malformed). ``estimates``: read only by the label-free
    estimates, never by ``evaluate`` (a merge for evaluation may leave it out)."""

    name: str
    kind: Kind
    label_free: bool | Callable = False
    scores: bool = False
    default: Any = None
    required: bool = False
    estimates: bool = False


def check_same(fields: Sequence[Field], cols: Columns) -> None:
    for f in fields:
        if isinstance(f.kind, Same):
            f.kind.merge(cols[f.name], cols)


def merge_columns(fields: Sequence[Field], cols: Columns, stored: bool, scored: list[int] | None,
                  premerged: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merged value of every field from the columns of the states being merged.

    ``scored``: positions of the states that have scores (None: all); score fields merge
    over those only. ``premerged``: merged values of some fields, computed already from
    the same columns (see :func:`perfkit.metrics.state.merge_dict_chunks_to_state`).
    """
    sub = cols
    if scored is not None:
        sub = {k: [v[i] for i in scored] for k, v in cols.items()}
    out: dict[str, Any] = {}
    for f in fields:
        c = sub if f.scores else cols
        values = c[f.name]
        if not values:  # no state has scores: score fields keep their defaults
            out[f.name] = f.default
            continue
        if f.kind.nullable_merge and any(v is None for v in values):
            out[f.name] = None
            continue
        if premerged is not None and f.name in premerged:
            out[f.name] = premerged[f.name]
            continue
        out[f.name] = f.kind.merge_stored(values, c) if stored else f.kind.merge(values, c)
    return out


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
