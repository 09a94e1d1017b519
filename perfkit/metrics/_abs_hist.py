"""Sparse log-spaced histogram of absolute errors (mergeable by addition).

A bucket is the float64 bit pattern of ``|e|`` shifted right by ``52 - MANT_BITS``: the
exponent and the top ``MANT_BITS`` mantissa bits. Buckets are monotone in ``|e|``, cover the
whole float64 range (no clamping: any unit, any scale), and a bucket's width is at most
``2**-MANT_BITS`` of its lower edge. ``|e|`` below the smallest normal double (including 0)
shares bucket 0, whose value is 0. Values read back from a bucket (its midpoint) are within
a relative ``REL_ERROR = 2**-(MANT_BITS + 1)`` (0.39 %) of every value in it.

The histogram is kept sparse (sorted bucket ids and counts): a batch of normal errors
occupies about two thousand buckets whatever its size.
"""

from __future__ import annotations

import base64
import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MANT_BITS", "REL_ERROR", "AbsErrorHistogram"]

MANT_BITS = 7
SHIFT = 52 - MANT_BITS
#: Relative error of a value read from the histogram (bucket midpoint).
REL_ERROR = 2.0 ** -(MANT_BITS + 1)
#: |e| below this (the smallest normal double) goes to bucket 0 (value 0).
TINY = 2.0**-1022


def bucket_edges(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges of buckets (bucket 0: [0, TINY))."""
    ids = np.asarray(ids, dtype=np.int64)
    lo = np.left_shift(ids, SHIFT).view(np.float64)
    hi = np.left_shift(ids + 1, SHIFT).view(np.float64)
    zero = ids < (1 << MANT_BITS)
    return np.where(zero, 0.0, lo), np.where(zero, TINY, hi)


def bucket_values(ids: np.ndarray) -> np.ndarray:
    """Representative value of each bucket: its midpoint (0 for bucket 0)."""
    lo, hi = bucket_edges(ids)
    with np.errstate(over="ignore", invalid="ignore"):  # the non-finite top bucket: NaN, reported upstream
        mid = 0.5 * (lo + hi)
    return np.where(np.asarray(ids) < (1 << MANT_BITS), 0.0, mid)


_DTYPES = {"B": np.uint8, "H": np.uint16, "I": np.uint32, "Q": np.uint64}


def _code(top: int) -> str:
    return "B" if top < 2**8 else "H" if top < 2**16 else "I" if top < 2**32 else "Q"


@dataclass(frozen=True, eq=False)
class AbsErrorHistogram:
    """Sorted bucket ids and their counts.

    Examples
    --------
    >>> import numpy as np
    >>> from perfkit.metrics import _kernels
    >>> e = np.array([0.0, 0.5, 1.0, 1.0, 3.0])
    >>> h = AbsErrorHistogram(*_kernels.abs_error_hist(e, np.zeros(5)))
    >>> h.n, h.quantile(0.5)
    (5, 1.00390625)
    >>> h.merge(h).n
    10
    """

    ids: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def merge(self, other: AbsErrorHistogram) -> AbsErrorHistogram:
        """Histogram of the union (exact: counts add)."""
        if other.ids.size == 0:
            return self
        if self.ids.size == 0:
            return other
        ids = np.concatenate([self.ids, other.ids])
        counts = np.concatenate([self.counts, other.counts])
        u, inv = np.unique(ids, return_inverse=True)
        return AbsErrorHistogram(u, np.bincount(inv, weights=counts, minlength=u.size).astype(np.int64))

    def values(self) -> np.ndarray:
        return self._values.copy()

    @functools.cached_property
    def _values(self) -> np.ndarray:  # the histogram never changes: read once per histogram
        return bucket_values(self.ids)

    @functools.cached_property
    def _cum(self) -> np.ndarray:
        return np.cumsum(self.counts)

    def order_statistic(self, rank: np.ndarray | int) -> np.ndarray:
        """Value of the ``rank``-th smallest |e| (0-based), read from its bucket."""
        j = np.searchsorted(self._cum, np.asarray(rank) + 1, side="left")
        return self._values[np.minimum(j, self.ids.size - 1)]

    def quantile(self, q: float) -> float:
        """``np.quantile(|e|, q)`` (linear interpolation) within ``REL_ERROR``."""
        n = self.n
        if n == 0:
            return math.nan
        h = q * (n - 1)
        f = math.floor(h)
        lo, hi = self.order_statistic(np.array([f, min(f + 1, n - 1)]))
        return float(lo + (h - f) * (hi - lo))

    def to_dict(self) -> dict:
        """JSON-safe sparse form: gaps between bucket ids and counts, each in the smallest
        unsigned type that holds it, base64-packed (about 3 bytes a bucket)."""
        gaps = np.diff(self.ids, prepend=0)
        gcode = _code(int(gaps.max()) if gaps.size else 0)
        ccode = _code(int(self.counts.max()) if self.counts.size else 0)
        raw = gaps.astype(_DTYPES[gcode]).tobytes() + self.counts.astype(_DTYPES[ccode]).tobytes()
        return {"mant_bits": MANT_BITS, "n": int(self.ids.size), "g": gcode, "d": ccode,
                "z": base64.b64encode(raw).decode("ascii")}

    @classmethod
    def from_dict(cls, d: dict) -> AbsErrorHistogram:
        if int(d.get("mant_bits", MANT_BITS)) != MANT_BITS:
            raise ValueError(f"absolute-error histogram with {d['mant_bits']} mantissa bits (expected {MANT_BITS})")
        m = int(d["n"])
        raw = base64.b64decode(d["z"])
        gdt, cdt = np.dtype(_DTYPES[d["g"]]), np.dtype(_DTYPES[d["d"]])
        if len(raw) != m * (gdt.itemsize + cdt.itemsize):
            raise ValueError("absolute-error histogram: payload length does not match its size")
        ids = np.cumsum(np.frombuffer(raw, dtype=gdt, count=m), dtype=np.int64)
        counts = np.frombuffer(raw, dtype=cdt, count=m, offset=m * gdt.itemsize).astype(np.int64)
        return cls(ids, counts)

    @classmethod
    def from_pairs(cls, ids, counts) -> AbsErrorHistogram:
        """From unsorted (id, count) pairs, duplicates summed (engines' group-by rows)."""
        ids = np.asarray(ids, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        u, inv = np.unique(ids, return_inverse=True)
        return cls(u, np.bincount(inv, weights=counts, minlength=u.size).astype(np.int64))
