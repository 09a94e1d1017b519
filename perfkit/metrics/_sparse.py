"""Sparse count arrays: the score histograms of a state, sparse in memory as on disk.

A :class:`SparseCounts` holds the non-zero cells of an int64 count array of any shape as
sorted flat indices and their counts. A batch of 1,000 rows fills about a thousand of the
79,874 bins of a score-histogram row, so a 5-class state holds kilobytes instead of the
6.4 MB of its dense arrays. Many arrays merge with one ``bincount`` (chunked, so a year of
hourly states never needs more than a few dense accumulators). The dense array is built
only when a consumer asks for it (``np.asarray(h)``, ``h.dense``, ``h[j]`` for one row).

The stored form (``to_dict`` / ``from_dict``, layout 3) is one line of text per array:
every occupied cell as its gap to the previous one and its count, in 5-bit groups of one
base64 character each (see :func:`perfkit.metrics._kernels.cells_encode`); most cells of
a score histogram take one character, and a year of stored states is decoded by a
compiled pass over the joined texts. The layouts written before (per row: the first
bin and packed (gap, count) records, base64-encoded; earlier still, plain index and count
arrays) are still read, to the same arrays.
"""

from __future__ import annotations

import base64
import operator
from collections.abc import Sequence

import numpy as np

from perfkit.metrics import _kernels

__all__ = ["SparseCounts", "StoredSum", "merge_stored"]

_COUNT_DTYPES = {"B": np.uint8, "H": np.uint16, "I": np.uint32, "Q": np.uint64}
# merging many arrays: at most this many (index, count) pairs are materialised at once
_CHUNK = 1 << 22
# merging stored rows: at most this many base64 characters are joined at once (1 MB: the
# joined text, its bytes and the decoding pass stay in cache; 32 MB chunks were 30 % slower)
_TEXT_CHUNK = 1 << 20


def _small_uint(top: int) -> type:
    return np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32 if top < 2**32 else np.int64


def _record_dtype(gcode: str, ccode: str) -> np.dtype:
    return np.dtype([("g", _COUNT_DTYPES[gcode]), ("c", _COUNT_DTYPES[ccode])])


class SparseCounts:
    """An immutable int64 count array of ``shape`` kept as (sorted flat index, count) pairs.

    Reads like the dense array where perfkit's consumers need it: ``h[j]`` is the dense
    row ``j`` (a fresh array), ``np.asarray(h)`` / ``h.dense`` the whole array (built once
    and cached read-only), ``h.shape``, ``h.sum()``, ``h + other``.

    Examples
    --------
    >>> import numpy as np
    >>> h = SparseCounts.from_dense(np.array([[0, 2, 0], [1, 0, 0]]))
    >>> h.nnz, h[0].tolist(), h.sum()
    (2, [0, 2, 0], 3)
    >>> SparseCounts.merge_all([h, h]).dense.tolist()
    [[0, 4, 0], [2, 0, 0]]
    """

    __slots__ = ("_dense", "_row_sums", "counts", "keys", "shape")

    def __init__(self, shape: tuple[int, ...], keys: np.ndarray, counts: np.ndarray) -> None:
        self.shape = tuple(int(s) for s in shape)
        size = int(np.prod(self.shape))
        self.keys = keys.astype(np.int32 if size < 2**31 else np.int64, copy=False)
        top = int(counts.max()) if counts.size else 0
        self.counts = counts.astype(_small_uint(top), copy=False)
        self._dense: np.ndarray | None = None
        self._row_sums: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dense(cls, a: np.ndarray) -> SparseCounts:
        """Non-zero cells of a dense count array."""
        a = np.asarray(a)
        flat = a.reshape(-1)
        keys = np.flatnonzero(flat)
        out = cls(a.shape, keys, flat[keys])
        return out

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> SparseCounts:
        return cls(shape, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))

    @classmethod
    def of(cls, a: SparseCounts | np.ndarray | None) -> SparseCounts | None:
        """``a`` as SparseCounts (dense arrays converted; None stays None)."""
        if a is None or isinstance(a, SparseCounts):
            return a
        return cls.from_dense(a)

    @classmethod
    def from_flat_sum(cls, shape: tuple[int, ...], keys: np.ndarray, counts: np.ndarray) -> SparseCounts:
        """From unsorted flat indices with repeats (their counts are summed)."""
        size = int(np.prod(shape))
        if keys.size == 0:
            return cls.empty(shape)
        if keys.size * 4 >= size:
            acc = np.bincount(keys, weights=counts, minlength=size)
            nz = np.flatnonzero(acc)
            return cls(shape, nz, acc[nz].astype(np.int64))
        u, inv = np.unique(keys, return_inverse=True)
        return cls(shape, u, np.bincount(inv, weights=counts, minlength=u.size).astype(np.int64))

    @classmethod
    def from_keys(cls, shape: tuple[int, ...], keys: np.ndarray) -> SparseCounts:
        """From flat indices of single counts (unsorted, with repeats): sort and count runs."""
        if keys.size == 0:
            return cls.empty(shape)
        k = np.sort(keys)
        starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
        counts = np.diff(np.append(starts, k.size))
        return cls(shape, k[starts], counts)

    @classmethod
    def merge_all(cls, items: Sequence[SparseCounts]) -> SparseCounts:
        """Cell-wise sum of arrays of one shape (one bincount per chunk of ~4 M cells)."""
        if len(items) == 1:
            return items[0]
        shape = items[0].shape
        size = int(np.prod(shape))
        total = sum(it.keys.size for it in items)
        if total * 4 < size:  # few cells: sort them (no dense accumulator)
            keys = np.concatenate([it.keys for it in items]).astype(np.int64, copy=False)
            counts = np.concatenate([it.counts.astype(np.int64, copy=False) for it in items])
            return cls.from_flat_sum(shape, keys, counts)
        acc = np.zeros(size, dtype=np.int64)
        chunk: list[SparseCounts] = []
        filled = 0
        for it in [*items, None]:
            if it is not None:
                chunk.append(it)
                filled += it.keys.size
            if chunk and (it is None or filled >= _CHUNK):
                keys = np.concatenate([c.keys for c in chunk])
                counts = np.concatenate([c.counts for c in chunk])
                _kernels.scatter_add(acc, keys, counts)
                chunk, filled = [], 0
        nz = np.flatnonzero(acc)
        return cls(shape, nz, acc[nz])

    # ------------------------------------------------------------------ dense views
    @property
    def nnz(self) -> int:
        return int(self.keys.size)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.int64)

    @property
    def dense(self) -> np.ndarray:
        """The dense int64 array (built on first use, cached, read-only)."""
        if self._dense is None:
            out = np.zeros(int(np.prod(self.shape)), dtype=np.int64)
            out[self.keys] = self.counts
            out = out.reshape(self.shape)
            out.setflags(write=False)
            self._dense = out
        return self._dense

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        d = self.dense
        if dtype is not None and np.dtype(dtype) != d.dtype:
            return d.astype(dtype)
        return d.copy() if copy else d

    def __len__(self) -> int:
        return self.shape[0]

    def _row_span(self, j: int) -> tuple[int, int, int]:
        stride = int(np.prod(self.shape[1:]))
        lo, hi = np.searchsorted(self.keys, [j * stride, (j + 1) * stride])
        return int(lo), int(hi), stride

    def __getitem__(self, j):
        if not isinstance(j, (int, np.integer)):
            return self.dense[j]
        j = int(j)
        if j < 0:
            j += self.shape[0]
        if not 0 <= j < self.shape[0]:
            raise IndexError(f"index {j} out of range for {self.shape[0]} rows")
        if self._dense is not None:
            return self._dense[j].copy()
        lo, hi, stride = self._row_span(j)
        out = np.zeros(stride, dtype=np.int64)
        out[self.keys[lo:hi] - j * stride] = self.counts[lo:hi]
        return out.reshape(self.shape[1:])

    def __iter__(self):
        return (self[j] for j in range(self.shape[0]))

    def row(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted bin indices, counts) of row ``j`` (int64)."""
        lo, hi, stride = self._row_span(j)
        return self.keys[lo:hi].astype(np.int64) - j * stride, self.counts[lo:hi].astype(np.int64)

    def row_sums(self) -> np.ndarray:
        """Total count of every row (first axis), cached."""
        if self._row_sums is None:
            stride = int(np.prod(self.shape[1:]))
            bounds = np.searchsorted(self.keys, np.arange(self.shape[0] + 1, dtype=np.int64) * stride)
            csum = np.concatenate(([0], np.cumsum(self.counts, dtype=np.int64)))
            self._row_sums = np.diff(csum[bounds])
        return self._row_sums

    def aligned_rows(self, other: SparseCounts, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``j`` of this array and of ``other`` on the union of their occupied cells
        (compact int64 count arrays in cell order; empty cells left out)."""
        pi, pc = self.row(j)
        ni, nc = other.row(j)
        _, a, b = _kernels.aligned_counts(pi, pc, ni, nc)
        return a, b

    def sum(self, axis=None, **kwargs):
        if axis is None and not kwargs:
            return int(self.counts.sum(dtype=np.int64))
        return self.dense.sum(axis=axis, **kwargs)

    def any(self, axis=None, **kwargs):
        if axis is None and not kwargs:
            return bool(self.keys.size)
        return self.dense.any(axis=axis, **kwargs)

    def reshape(self, *shape) -> SparseCounts:
        """The same cells in another shape of the same size (one -1 is inferred)."""
        shape = list(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
        if -1 in shape:
            known = int(np.prod([s for s in shape if s != -1]))
            shape[shape.index(-1)] = int(np.prod(self.shape)) // max(known, 1)
        if int(np.prod(shape)) != int(np.prod(self.shape)):
            raise ValueError(f"cannot reshape {self.shape} into {tuple(shape)}")
        return SparseCounts(tuple(shape), self.keys, self.counts)

    def take_rows(self, positions: np.ndarray, rows: int) -> SparseCounts:
        """Row ``i`` moved to row ``positions[i]`` of an array of ``rows`` rows."""
        stride = int(np.prod(self.shape[1:]))
        r, c = np.divmod(self.keys.astype(np.int64), stride)
        keys = np.asarray(positions, dtype=np.int64)[r] * stride + c
        order = np.argsort(keys, kind="stable")
        return SparseCounts((rows, *self.shape[1:]), keys[order], self.counts[order])

    def __add__(self, other):
        if isinstance(other, SparseCounts):
            if other.shape != self.shape:
                raise ValueError(f"shapes {self.shape} and {other.shape} differ")
            return SparseCounts.merge_all([self, other])
        return self.dense + other

    __radd__ = __add__

    def equals(self, other: SparseCounts) -> bool:
        return (self.shape == other.shape and np.array_equal(self.keys, other.keys)
                and np.array_equal(self.counts.astype(np.int64), other.counts.astype(np.int64)))

    def __repr__(self) -> str:
        return f"SparseCounts(shape={self.shape}, nnz={self.nnz})"

    # ------------------------------------------------------------------ stored form
    def to_dict(self) -> dict:
        """The stored form: ``{"v": 3, "bins": last axis, "rows": the other axes' size,
        "nnz": occupied cells, "q": count bits, "z": cell text}`` (JSON-safe; see
        :func:`perfkit.metrics._kernels.cells_encode`).

        Raises
        ------
        ValueError
            If a count is negative or not below 2**60 (nothing stored holds such counts).
        """
        bins = self.shape[-1]
        rows = int(np.prod(self.shape[:-1]))
        text, q, ok = _kernels.cells_encode(self.keys.astype(np.int64, copy=False),
                                            self.counts.astype(np.int64, copy=False), _kernels.CELL_ALPHABET)
        if not ok:
            raise ValueError("sparse counts: a count is negative or too large to store")
        return {"v": CELLS_LAYOUT, "bins": int(bins), "rows": rows, "nnz": self.nnz, "q": q,
                "z": text.tobytes().decode("ascii")}

    @classmethod
    def from_dict(cls, d: dict, shape: tuple[int, ...] | None = None) -> SparseCounts:
        """Decode :meth:`to_dict` output (every stored layout; first-layout score bins are
        mapped into the current one). ``shape`` reshapes the (rows, bins) result.

        Raises
        ------
        ValueError
            If the dict is malformed (bad characters, cells outside the array, another
            number of cells than declared, a payload that does not match its sizes).
        """
        if d.get("v") != CELLS_LAYOUT:
            out = _from_rows(cls, d)
            return out if shape is None else out.reshape(shape)
        bins, rows, nnz, q, z = _cells_header(d)
        text = np.frombuffer(z.encode("ascii"), dtype=np.uint8)
        keys, counts, ok = _kernels.cells_decode(text, nnz, rows * bins, q, _kernels._B64_TABLE)
        if not ok:
            raise ValueError(f"sparse counts: malformed cell text (declared {nnz} cells of {rows} x {bins})")
        if bins == _kernels.V1_BINS:
            r, b = np.divmod(keys, bins)
            out = cls.from_flat_sum((rows, _kernels.HIST_BINS), r * _kernels.HIST_BINS + _kernels.upgrade_v1_bins(b),
                                    counts)
        else:
            out = cls((rows, bins), keys, counts)
        return out if shape is None else out.reshape(shape)


CELLS_LAYOUT = 3


def _cells_header(d: dict) -> tuple[int, int, int, int, str]:
    """(bins, rows, nnz, count bits, text) of a layout-3 dict, checked (ValueError when malformed)."""
    bins, rows, nnz, q, z = d["bins"], d["rows"], d["nnz"], d["q"], d["z"]
    if not all(type(v) is int for v in (bins, rows, nnz, q)) or not isinstance(z, str):
        raise ValueError("sparse counts: bins, rows, nnz and q must be integers and z a string")
    if bins < 1 or rows < 0 or nnz < 0 or nnz > len(z) or not 1 <= q <= _kernels.CELL_BITS:
        raise ValueError(f"sparse counts: bad sizes (bins {bins}, rows {rows}, {nnz} cells in {len(z)} characters, "
                         f"{q} count bits)")
    return bins, rows, nnz, q, z


def _from_rows(cls, d: dict) -> SparseCounts:
    """Decode the per-row layouts (written before layout 3)."""
    bins = int(d["bins"])
    upgrade = bins == _kernels.V1_BINS
    width = _kernels.HIST_BINS if upgrade else bins
    keys, counts = [], []
    for j, r in enumerate(d["rows"]):
        idx, c = _decode_row(r)
        if idx.size and (int(idx[0]) < 0 or int(idx[-1]) >= bins):
            raise ValueError(f"histogram row {j} has bins outside 0..{bins - 1}")
        if upgrade:
            idx = _kernels.upgrade_v1_bins(idx)
        keys.append(idx + j * width)
        counts.append(c)
    nrows = len(d["rows"])
    k = np.concatenate(keys) if keys else np.empty(0, dtype=np.int64)
    c = np.concatenate(counts) if counts else np.empty(0, dtype=np.int64)
    return cls.from_flat_sum((nrows, width), k, c) if upgrade else cls((nrows, width), k, c)


def _decode_row(r: dict) -> tuple[np.ndarray, np.ndarray]:
    """(bin indices, counts) of one sparse histogram row (every stored layout)."""
    n = int(r.get("n", 0))
    if r.get("v") == 2:
        rec = np.frombuffer(base64.b64decode(r["z"]), dtype=_record_dtype(r["g"], r["d"]), count=n)
        return int(r["f"]) + np.cumsum(rec["g"], dtype=np.int64), rec["c"].astype(np.int64)
    if "z" not in r:  # first layout: plain base64 int32 indices / int64 counts
        idx = np.frombuffer(base64.b64decode(r["i"]), dtype=np.int32).astype(np.int64)
        return idx, np.frombuffer(base64.b64decode(r["c"]), dtype=np.int64).copy()
    raw = base64.b64decode(r["z"])  # second layout: all gaps, then all counts
    gdt = _COUNT_DTYPES[r.get("g", "H")]
    idx = np.cumsum(np.frombuffer(raw, dtype=gdt, count=n), dtype=np.int64)
    off = n * np.dtype(gdt).itemsize
    counts = np.frombuffer(raw, dtype=_COUNT_DTYPES[r["d"]], offset=off, count=n).astype(np.int64)
    return idx, counts


_SIZES = {"B": 1, "H": 2, "I": 4, "Q": 8}
_GET = {k: operator.itemgetter(k) for k in "vznfgd"}


_CELL_FIELDS = operator.itemgetter("bins", "rows", "nnz", "q", "z")


def _stored_shape(d: dict) -> tuple[int, int]:
    """(rows, bins) of a stored array once decoded (first-layout bins upgraded)."""
    rows = d["rows"] if d.get("v") == CELLS_LAYOUT else len(d["rows"])
    bins = int(d["bins"])
    return int(rows), _kernels.HIST_BINS if bins == _kernels.V1_BINS else bins


def merge_stored(stored: Sequence[dict], shape: tuple[int, ...] | None = None, pool=None) -> SparseCounts:
    """Sum of many stored arrays (``to_dict`` output) without decoding them one by one
    (see :class:`StoredSum`; ``pool``: a thread pool for the second decoding thread).

    Raises ValueError when the arrays' shapes differ or one is malformed.
    """
    total = StoredSum(stored[0])
    total.add(stored, pool)
    return total.result(shape)


class StoredSum:
    """A running sum of stored arrays of one shape (``to_dict`` output), added part by part.

    Cell texts (layout 3) are joined in chunks of about 1 MB and added into one int64
    accumulator by a compiled pass (two threads, each with its own accumulator, when a pool
    is given and the texts are long); rows of the per-row layouts are added by
    :func:`_merge_rows`; first-layout score bins are decoded and merged. Integer sums: the
    result does not depend on how the arrays are split into parts.
    """

    def __init__(self, first: dict) -> None:
        self.nrows, self.bins = _stored_shape(first)
        self.acc = np.zeros(self.nrows * self.bins, dtype=np.int64)
        self._slow: list[SparseCounts] = []

    def add(self, stored: Sequence[dict], pool=None) -> None:
        """Add stored arrays (ValueError when one has another shape or is malformed)."""
        nrows, bins, acc = self.nrows, self.bins, self.acc
        cells = [d for d in stored if d.get("v") == CELLS_LAYOUT]
        older = [d for d in stored if d.get("v") != CELLS_LAYOUT] if len(cells) < len(stored) else []
        if cells:
            b, r, m, q, z = zip(*map(_CELL_FIELDS, cells), strict=True)
            if set(b) != {bins} or set(r) != {nrows}:  # another shape, or first-layout bins
                keep = []
                for d in cells:
                    if _stored_shape(d) != (nrows, bins):
                        raise ValueError(f"histograms of different layouts: {(nrows, bins)} vs {_stored_shape(d)}")
                    if d["bins"] == bins:
                        keep.append(d)
                    else:
                        self._slow.append(SparseCounts.from_dict(d))
                b, r, m, q, z = zip(*map(_CELL_FIELDS, keep), strict=True) if keep else ((), (), (), (), ())
            _add_cells(acc, m, q, z, pool)
        if older:
            rows_of = []
            for d in older:
                if _stored_shape(d) != (nrows, bins):
                    raise ValueError(f"histograms of different layouts: {(nrows, bins)} vs {_stored_shape(d)}")
                if int(d["bins"]) != bins:
                    self._slow.append(SparseCounts.from_dict(d))
                else:
                    rows_of.append(d["rows"])
            _merge_rows(acc, [row for rows in rows_of for row in rows], nrows, bins)

    def absorb(self, other: StoredSum) -> None:
        """Add another running sum of arrays of this shape into this one."""
        self.acc += other.acc
        self._slow.extend(other._slow)

    def result(self, shape: tuple[int, ...] | None = None) -> SparseCounts:
        """The sum (as (rows, bins), or reshaped to ``shape``)."""
        nz = np.flatnonzero(self.acc)
        out = SparseCounts((self.nrows, self.bins), nz, self.acc[nz])
        if self._slow:
            out = SparseCounts.merge_all([out, *self._slow])
        return out if shape is None else out.reshape(shape)


# texts shorter than this are added on one thread (a second accumulator costs more)
_THREAD_TEXT = 4 * _TEXT_CHUNK


def _add_cells(acc: np.ndarray, nnz: Sequence[int], bits: Sequence[int], texts: Sequence[str], pool=None) -> None:
    """Add layout-3 cell texts (``nnz[i]`` cells of ``bits[i]`` count bits in ``texts[i]``)
    into ``acc``; with ``pool`` and long texts, the first half of them on a pool thread into
    a second accumulator."""
    if not texts:
        return
    if (not all(type(t) is str for t in texts) or not all(type(k) is int and k >= 0 for k in nnz)
            or not all(type(b) is int and 1 <= b <= _kernels.CELL_BITS for b in bits)):
        raise ValueError("sparse counts: nnz must be non-negative integers, q count bits and z strings")
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.cumsum(lens) - lens
    counts = np.asarray(nnz, dtype=np.int64)
    qs = np.asarray(bits, dtype=np.int64)
    total = int(starts[-1] + lens[-1])
    if pool is None or total < _THREAD_TEXT:
        _add_cell_range(acc, texts, starts, lens, counts, qs, 0, len(texts))
        return
    half = int(np.searchsorted(starts, total // 2))
    other = np.zeros_like(acc)
    job = pool.submit(_add_cell_range, other, texts, starts, lens, counts, qs, 0, half)
    try:
        _add_cell_range(acc, texts, starts, lens, counts, qs, half, len(texts))
    finally:
        job.result()  # waits even when this half failed; raises the first half's error
    acc += other


def _add_cell_range(acc, texts, starts, lens, counts, qs, first: int, stop: int) -> None:
    """Add texts ``first:stop``, joined in chunks of about :data:`_TEXT_CHUNK` characters."""
    lo = first
    while lo < stop:
        hi = int(np.searchsorted(starts, starts[lo] + _TEXT_CHUNK, side="left"))
        hi = min(max(hi, lo + 1), stop)
        text = np.frombuffer("".join(texts[lo:hi]).encode("ascii"), dtype=np.uint8)
        bad = _kernels.scatter_cells(text, starts[lo:hi] - starts[lo], lens[lo:hi], counts[lo:hi], qs[lo:hi],
                                     acc.size, acc, _kernels._B64_TABLE)
        if bad >= 0:
            raise ValueError(f"sparse counts: malformed cell text (declared {counts[lo + bad]} cells)")
        lo = hi


def _merge_rows(acc: np.ndarray, rows: list[dict], nrows: int, bins: int) -> None:
    """Add the rows of per-row stored arrays (row ``i`` is row ``i % nrows`` of its array)
    into ``acc``: second-layout rows joined into one text and added by a compiled pass over
    the base64 characters, rows of older layouts decoded one by one."""
    if not rows:
        return
    try:  # every row's fields by C-level passes, when all rows have the current layout
        v = list(map(_GET["v"], rows))
        current_only = v.count(2) == len(v)
        if current_only:
            z, n, f, g, dd = (list(map(_GET[k], rows)) for k in "znfgd")
    except (KeyError, TypeError):
        current_only = False
    if current_only:
        pick = range(len(rows))
    else:  # rows of older layouts among them: those one by one
        pick = [i for i, r in enumerate(rows) if r.get("v") == 2]
        picked = set(pick)
        for i, r in enumerate(rows):
            if i not in picked:
                j = i % nrows
                idx, c = _decode_row(r)
                if idx.size and (int(idx[0]) < 0 or int(idx[-1]) >= bins):
                    raise ValueError(f"histogram row {j} has bins outside 0..{bins - 1}")
                np.add.at(acc, idx + j * bins, c)
        rows = [rows[i] for i in pick]
        z, n, f, g, dd = (list(map(_GET[k], rows)) for k in "znfgd")
    if rows:
        lens = np.fromiter(map(len, z), dtype=np.int64, count=len(z))
        starts = np.cumsum(lens) - lens
        gsize = np.fromiter(map(_SIZES.__getitem__, g), dtype=np.int64, count=len(g))
        csize = np.fromiter(map(_SIZES.__getitem__, dd), dtype=np.int64, count=len(dd))
        nrec = np.asarray(n, dtype=np.int64)
        if not np.array_equal((nrec * (gsize + csize) + 2) // 3 * 4, lens):
            raise ValueError("histogram rows: payload length does not match their sizes")
        base = (np.asarray(pick, dtype=np.int64) % nrows) * bins
        first_bin = np.asarray(f, dtype=np.int64)
        # rows joined in chunks of ~1 MB of text: the peak stays small for any history
        ends = np.searchsorted(starts + lens, np.arange(1, int(starts[-1] + lens[-1]) // _TEXT_CHUNK + 2) * _TEXT_CHUNK)
        lo = 0
        for hi in [*ends.tolist(), len(z)]:
            hi = min(max(hi, lo), len(z))
            if hi == lo:
                continue
            text = np.frombuffer("".join(z[lo:hi]).encode("ascii"), dtype=np.uint8)
            ok = _kernels.scatter_b64_rows(text, starts[lo:hi] - starts[lo], lens[lo:hi], gsize[lo:hi], csize[lo:hi],
                                           first_bin[lo:hi], base[lo:hi], bins, acc, _kernels._B64_TABLE)
            if not ok:
                raise ValueError(f"histogram rows: bad characters or bins outside 0..{bins - 1}")
            lo = hi
