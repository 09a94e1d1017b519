"""Mergeable central moments (count, mean, M2, M3, M4).

Batches are reduced with a two-pass formula; states merge with the parallel formulas of
Chan et al. (1979) extended to the third and fourth order by Pébay (2008), so that a merged
window equals the concatenated data to rounding, even for data with large offsets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perfkit.metrics import _kernels

__all__ = ["Moments"]


@dataclass(frozen=True)
class Moments:
    """Count, mean and central moment sums of one variable.

    Examples
    --------
    >>> import numpy as np
    >>> a = Moments.of(np.array([1.0, 2.0, 3.0]))
    >>> b = Moments.of(np.array([10.0, 20.0]))
    >>> m = a.merge(b)
    >>> round(m.variance(ddof=0), 6) == round(float(np.var([1, 2, 3, 10, 20])), 6)
    True
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """Moments of a float64 array (two-pass, compiled)."""
        if x.size == 0:
            return cls()
        n, mean, m2, m3, m4 = _kernels.moments(np.ascontiguousarray(x, dtype=np.float64))
        return cls(int(n), float(mean), float(m2), float(m3), float(m4))

    def merge(self, other: Moments) -> Moments:
        """Moments of the union of both samples (Chan / Pébay parallel formulas)."""
        na, nb = self.n, other.n
        if nb == 0:
            return self
        if na == 0:
            return other
        n = na + nb
        delta = other.mean - self.mean
        d_n = delta / n
        mean = self.mean + d_n * nb
        m2 = self.m2 + other.m2 + delta * d_n * na * nb
        m3 = (
            self.m3
            + other.m3
            + delta * d_n * d_n * na * nb * (na - nb)
            + 3.0 * d_n * (na * other.m2 - nb * self.m2)
        )
        m4 = (
            self.m4
            + other.m4
            + delta * d_n * d_n * d_n * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * d_n * d_n * (na * na * other.m2 + nb * nb * self.m2)
            + 4.0 * d_n * (na * other.m3 - nb * self.m3)
        )
        return Moments(n, mean, m2, m3, m4)

    @staticmethod
    def merge_all(rows: list[list[float]]) -> Moments:
        """Merge many ``to_list()`` rows at once (vectorized pairwise tree of the same formulas)."""
        if not rows:
            return Moments()
        return Moments.merge_array(np.asarray(rows, dtype=np.float64).reshape(-1, 5))

    @staticmethod
    def merge_array(a: np.ndarray) -> Moments:
        """:meth:`merge_all` of the rows of an (m, 5) float64 array (m >= 1)."""
        with np.errstate(over="ignore", invalid="ignore"):  # as Python floats: inf, no warning
            return Moments._merge_rows(a)

    @staticmethod
    def _merge_rows(a: np.ndarray) -> Moments:
        while a.shape[0] > 1:
            odd = a[-1:] if a.shape[0] % 2 else a[:0]
            x, y = a[0:-1:2] if a.shape[0] % 2 else a[0::2], a[1::2]
            na, nb = x[:, 0], y[:, 0]
            n = na + nb
            safe = np.where(n > 0, n, 1.0)
            delta = y[:, 1] - x[:, 1]
            d_n = delta / safe
            mean = x[:, 1] + d_n * nb
            m2 = x[:, 2] + y[:, 2] + delta * d_n * na * nb
            m3 = x[:, 3] + y[:, 3] + delta * d_n * d_n * na * nb * (na - nb) + 3.0 * d_n * (na * y[:, 2] - nb * x[:, 2])
            m4 = (x[:, 4] + y[:, 4] + delta * d_n * d_n * d_n * na * nb * (na * na - na * nb + nb * nb)
                  + 6.0 * d_n * d_n * (na * na * y[:, 2] + nb * nb * x[:, 2]) + 4.0 * d_n * (na * y[:, 3] - nb * x[:, 3]))
            merged = np.stack([n, mean, m2, m3, m4], axis=1)
            # an empty side contributes nothing: keep the other side exactly
            merged = np.where((na == 0)[:, None], y, np.where((nb == 0)[:, None], x, merged))
            a = np.concatenate([merged, odd])
        return Moments.from_list(a[0].tolist())

    def variance(self, ddof: int = 1) -> float:
        """Sample variance (NaN when undefined)."""
        if self.n - ddof <= 0:
            return math.nan
        return max(self.m2, 0.0) / (self.n - ddof)

    def mean_se(self) -> float:
        """Standard error of the mean."""
        if self.n < 2:
            return math.nan
        return math.sqrt(self.variance(1) / self.n)

    def excess_kurtosis(self) -> float:
        """Sample excess kurtosis (NaN when the variance is zero)."""
        if self.n < 2 or self.m2 <= 0:
            return math.nan
        return self.n * self.m4 / (self.m2 * self.m2) - 3.0

    def to_list(self) -> list[float]:
        return [self.n, self.mean, self.m2, self.m3, self.m4]

    @classmethod
    def from_list(cls, v: list[float]) -> Moments:
        return cls(int(v[0]), float(v[1]), float(v[2]), float(v[3]), float(v[4]))
