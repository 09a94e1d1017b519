"""Mergeable states: the sufficient statistics of a batch.

Every metric perfkit reports is a pure function of a state. States of batches merge into
the state of their union (``merge(state(a), state(b))`` gives the metrics of ``a + b``),
serialize to compact JSON-safe dicts and back without loss, and are what the store keeps.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from perfkit.exceptions import StateError
from perfkit.metrics import _auc_cov, _kernels
from perfkit.metrics._abs_hist import AbsErrorHistogram
from perfkit.metrics._moments import Moments
from perfkit.metrics._validation import PreparedClassification, PreparedRegression, prepare

__all__ = [
    "ClassificationState",
    "RegressionState",
    "State",
    "compute_state",
    "merge_dicts_to_state",
    "merge_state_dicts",
    "merge_states",
    "state_from_dict",
]

STATE_VERSION = 1


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def _unb64(s: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=dtype).copy()


_COUNT_DTYPES = {"B": np.uint8, "H": np.uint16, "I": np.uint32, "Q": np.uint64}


def _record_dtype(gcode: str, ccode: str) -> np.dtype:
    return np.dtype([("g", _COUNT_DTYPES[gcode]), ("c", _COUNT_DTYPES[ccode])])


def _encode_row(r: np.ndarray) -> dict:
    """One sparse row: first bin ``f``, then records (gap to the previous bin, count).

    Records are packed ``(gap, count)`` pairs in the smallest unsigned types that hold them
    (usually uint16 + uint8: three bytes, so base64 strings of such rows can be joined and
    decoded in one call when many states are merged).
    """
    nz = _kernels.nonzero_index(np.ascontiguousarray(r, dtype=np.int64))
    counts = r[nz]
    top = int(counts.max()) if counts.size else 0
    ccode = "B" if top < 2**8 else "H" if top < 2**16 else "I" if top < 2**32 else "Q"
    first = int(nz[0]) if nz.size else 0
    gaps = np.diff(nz, prepend=first)
    gcode = "H" if gaps.size == 0 or int(gaps.max()) < 2**16 else "I"
    rec = np.empty(nz.size, dtype=_record_dtype(gcode, ccode))
    rec["g"] = gaps
    rec["c"] = counts
    return {"v": 2, "n": int(nz.size), "f": first, "g": gcode, "d": ccode,
            "z": base64.b64encode(rec.tobytes()).decode("ascii")}


def _decode_row(r: dict) -> tuple[np.ndarray, np.ndarray]:
    """(bin indices, counts) of one sparse histogram row (every stored layout)."""
    n = int(r.get("n", 0))
    if r.get("v") == 2:
        rec = np.frombuffer(base64.b64decode(r["z"]), dtype=_record_dtype(r["g"], r["d"]), count=n)
        return int(r["f"]) + np.cumsum(rec["g"], dtype=np.int64), rec["c"].astype(np.int64)
    if "z" not in r:  # first layout: plain base64 int32 indices / int64 counts
        return _unb64(r["i"], np.int32).astype(np.int64), _unb64(r["c"], np.int64)
    raw = base64.b64decode(r["z"])  # second layout: all gaps, then all counts
    gdt = _COUNT_DTYPES[r.get("g", "H")]
    idx = np.cumsum(np.frombuffer(raw, dtype=gdt, count=n), dtype=np.int64)
    off = n * np.dtype(gdt).itemsize
    counts = np.frombuffer(raw, dtype=_COUNT_DTYPES[r["d"]], offset=off, count=n).astype(np.int64)
    return idx, counts


def _decode_rows_bulk(rows: list[dict], targets: list[int], bins: int, size: int) -> np.ndarray:
    """Sum many sparse rows into a flat accumulator of ``size`` (row ``t`` -> ``t * bins``).

    Three-byte-record rows (the common case) are base64-decoded in one call and read as one
    structured array; other rows are decoded one by one.
    """
    acc = np.zeros(size, dtype=np.int64)
    fast, slow = [], []
    for r, t in zip(rows, targets, strict=True):
        (fast if r.get("v") == 2 and r["g"] == "H" and r["d"] == "B" else slow).append((r, t))
    if fast:
        lens = np.fromiter((int(r["n"]) for r, _ in fast), dtype=np.int64, count=len(fast))
        base = np.fromiter((int(r["f"]) + t * bins for r, t in fast), dtype=np.int64, count=len(fast))
        text = np.frombuffer("".join(r["z"] for r, _ in fast).encode("ascii"), dtype=np.uint8)
        raw = _kernels.b64decode_unpadded(text, _kernels._B64_TABLE)
        rec = np.frombuffer(raw, dtype=_record_dtype("H", "B"))
        cs = np.cumsum(rec["g"], dtype=np.int64)
        starts = np.cumsum(lens) - lens
        # within each row the first gap is 0, so cs - cs[start] is the offset from the first bin
        offset = base - cs[np.minimum(starts, cs.size - 1)]
        flat = cs + np.repeat(offset, lens)
        acc += np.bincount(flat, weights=rec["c"], minlength=size).astype(np.int64)
    for r, t in slow:
        idx, counts = _decode_row(r)
        np.add.at(acc, idx + t * bins, counts)
    return acc


def _encode_hist(h: np.ndarray) -> dict:
    """Sparse, compact form of a (rows, HIST_BINS) int64 histogram.

    Per row: the gaps between non-zero bins (uint16) and the counts in the smallest
    unsigned type that holds them, base64-encoded (JSON-safe, lossless, fast to decode).
    """
    return {"bins": int(h.shape[1]), "rows": [_encode_row(r) for r in h]}


def _decode_hist(d: dict) -> np.ndarray:
    bins = int(d["bins"])
    upgrade = bins == _kernels.V1_BINS
    out = np.zeros((len(d["rows"]), _kernels.HIST_BINS if upgrade else bins), dtype=np.int64)
    for j, r in enumerate(d["rows"]):
        idx, counts = _decode_row(r)
        if upgrade:  # a state stored before the coarse range existed: same buckets, shifted
            np.add.at(out[j], _kernels.upgrade_v1_bins(idx), counts)
        else:
            out[j, idx] = counts
    return out


def _upgrade_dense(h: np.ndarray | None) -> np.ndarray | None:
    """Dense (rows, V1_BINS) histograms of the first layout in the current layout."""
    if h is None or h.shape[1] != _kernels.V1_BINS:
        return h
    out = np.zeros((h.shape[0], _kernels.HIST_BINS), dtype=np.int64)
    idx = _kernels.upgrade_v1_bins(np.arange(_kernels.V1_BINS))
    for j in range(h.shape[0]):
        np.add.at(out[j], idx, h[j])
    return out


@dataclass(frozen=True, eq=False)
class ClassificationState:
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
    hist_pos, hist_neg : ndarray of shape (h, HIST_BINS) or None
        Per histogram class (binary: the positive class; multiclass: every class) the
        log-linear score histogram of rows of that class (``pos``) and of the others
        (``neg``). Unlabelled states put every row in ``hist_neg``.
    score_moments : tuple of Moments
        Moments of each class's predicted probability.
    logloss : Moments or None
    brier : Moments or None
        Per-row Brier terms: ``(p_pos - y_pos)**2`` (binary), ``sum_k (p_k - [y = k])**2``
        (multiclass), as scikit-learn's ``brier_score_loss``.
        Moments of the per-row log loss.
    auc_exact : tuple of float or None
        Exact per-class AUC of a single batch (lost on merge; histograms take over).
    auc_var_exact : tuple of float or None
        DeLong variance matching ``auc_exact``.
    auc_var_ratio : float or None
        Multiclass: the OvR macro AUC's variance (with the covariances between classes,
        from per-row influence) over ``sum(var_c) / k**2``; merged as an n-weighted mean.
    hist_pred : ndarray of shape (h, HIST_BINS) or None
        Per histogram class, the score histogram of the rows *predicted* as that class
        (binary: predicted positive). With the score histograms this is the joint count of
        predicted class x score bin, which keeps label-free estimates exact when the
        predicted label is not a threshold of the score. Labels are not needed; None for
        states stored before it existed (merging with such a state drops it).
    pred_joint : ndarray of shape (k, k, JOINT_CELLS) or None
        Multiclass: rows by (predicted class, class, coarse cell of that class's score).
        Label-free estimates use it for the covariances between classes within a row.
        None for binary states and states stored before it existed.
    auc_pair_counts : ndarray of shape (k (k - 1) / 2, 3, CELLS, CELLS) or None
        Labelled multiclass (k <= 10): rows by pair of classes, group (either class or
        another) and coarse cells of both scores; the merged macro AUC's covariance terms
        follow from it (:mod:`perfkit.metrics._auc_cov`). None otherwise and for states
        stored before it existed.
    """

    task: str
    classes: tuple
    positive_index: int
    n: int
    labelled: bool
    confusion: np.ndarray | None
    pred_counts: np.ndarray
    hist_pos: np.ndarray | None = None
    hist_neg: np.ndarray | None = None
    score_moments: tuple = ()
    logloss: Moments | None = None
    brier: Moments | None = None
    eps: float = float(np.finfo(np.float64).eps)
    auc_exact: tuple | None = None
    auc_var_exact: tuple | None = None
    n_batches: int = 1
    auc_var_ratio: float | None = None
    hist_pred: np.ndarray | None = None
    pred_joint: np.ndarray | None = None
    auc_pair_counts: np.ndarray | None = None

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
        total = self.hist_neg[0].sum() + (0 if self.hist_pos is None else self.hist_pos[0].sum())
        return int(total)

    @property
    def hist_classes(self) -> tuple[int, ...]:
        return (self.positive_index,) if self.task == "binary" else tuple(range(self.k))

    def score_histogram(self, class_index: int | None = None) -> np.ndarray:
        """Histogram of all rows' score for a class (drift works on this, labels or not)."""
        if not self.has_scores:
            raise StateError("this state has no scores (no y_pred_proba was given)")
        j = 0 if class_index is None else self.hist_classes.index(class_index)
        total = self.hist_neg[j].copy()
        if self.hist_pos is not None:
            total += self.hist_pos[j]
        return total

    def prediction_part(self) -> ClassificationState:
        """The label-free part of this state (prediction distribution only)."""
        if not self.labelled:
            return self
        hist = None if not self.has_scores else self.hist_neg + self.hist_pos
        return replace(
            self,
            labelled=False,
            confusion=None,
            hist_pos=None if hist is None else np.zeros_like(hist),
            hist_neg=hist,
            logloss=None,
            brier=None,
            auc_exact=None,
            auc_var_exact=None,
            auc_var_ratio=None,
            auc_pair_counts=None,
        )

    def merge(self, other: ClassificationState) -> ClassificationState:
        """State of the union of both batches."""
        if not isinstance(other, ClassificationState):
            raise StateError(f"cannot merge a classification state with {type(other).__name__}")
        if other.task != self.task or other.classes != self.classes:
            raise StateError(
                f"cannot merge states of different tasks/classes: {self.task} {list(self.classes)} "
                f"vs {other.task} {list(other.classes)}"
            )
        if other.positive_index != self.positive_index:
            raise StateError("cannot merge binary states with different positive labels")
        if other.labelled != self.labelled:
            raise StateError(
                "cannot merge a labelled state with a prediction-only one; use "
                "state.prediction_part() on the labelled one to merge prediction distributions"
            )
        if self.has_scores != other.has_scores:
            return _merge_mixed_scores(self, other)
        if self.has_scores and self.hist_neg.shape != other.hist_neg.shape:
            raise StateError(
                f"cannot merge score histograms of different layouts: {self.hist_neg.shape} vs "
                f"{other.hist_neg.shape} (states from another perfkit version?)"
            )
        return ClassificationState(
            task=self.task,
            classes=self.classes,
            positive_index=self.positive_index,
            n=self.n + other.n,
            labelled=self.labelled,
            confusion=None if self.confusion is None else self.confusion + other.confusion,
            pred_counts=self.pred_counts + other.pred_counts,
            hist_pos=None if self.hist_pos is None else self.hist_pos + other.hist_pos,
            hist_neg=None if self.hist_neg is None else self.hist_neg + other.hist_neg,
            score_moments=tuple(a.merge(b) for a, b in zip(self.score_moments, other.score_moments, strict=True)),
            logloss=None if self.logloss is None else self.logloss.merge(other.logloss),
            brier=None if self.brier is None or other.brier is None else self.brier.merge(other.brier),
            eps=max(self.eps, other.eps),
            auc_exact=None,
            auc_var_exact=None,
            n_batches=self.n_batches + other.n_batches,
            auc_var_ratio=_merge_ratio(self, other),
            hist_pred=None if self.hist_pred is None or other.hist_pred is None
            else self.hist_pred + other.hist_pred,
            pred_joint=None if self.pred_joint is None or other.pred_joint is None
            else self.pred_joint + other.pred_joint,
            auc_pair_counts=None if self.auc_pair_counts is None or other.auc_pair_counts is None
            else self.auc_pair_counts + other.auc_pair_counts,
        )

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-safe form (histograms sparse and base64-packed)."""
        return {
            "kind": "classification",
            "version": STATE_VERSION,
            "task": self.task,
            "classes": list(self.classes),
            "positive_index": self.positive_index,
            "n": self.n,
            "labelled": self.labelled,
            "confusion": None if self.confusion is None else self.confusion.tolist(),
            "pred_counts": self.pred_counts.tolist(),
            "hist_pos": None if self.hist_pos is None else _encode_hist(self.hist_pos),
            "hist_neg": None if self.hist_neg is None else _encode_hist(self.hist_neg),
            "score_moments": [m.to_list() for m in self.score_moments],
            "logloss": None if self.logloss is None else self.logloss.to_list(),
            "brier": None if self.brier is None else self.brier.to_list(),
            "eps": self.eps,
            "auc_exact": None if self.auc_exact is None else [_nan_to_none(a) for a in self.auc_exact],
            "auc_var_exact": None
            if self.auc_var_exact is None
            else [_nan_to_none(a) for a in self.auc_var_exact],
            "n_batches": self.n_batches,
            "auc_var_ratio": self.auc_var_ratio,
            "hist_pred": None if self.hist_pred is None else _encode_hist(self.hist_pred),
            "pred_joint": None if self.pred_joint is None
            else _encode_hist(self.pred_joint.reshape(self.k * self.k, -1)),
            "auc_pair_counts": _encode_pair_counts(self.auc_pair_counts),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassificationState:
        return cls(
            task=d["task"],
            classes=tuple(d["classes"]),
            positive_index=int(d["positive_index"]),
            n=int(d["n"]),
            labelled=bool(d["labelled"]),
            confusion=None if d["confusion"] is None else np.asarray(d["confusion"], dtype=np.int64),
            pred_counts=np.asarray(d["pred_counts"], dtype=np.int64),
            hist_pos=None if d["hist_pos"] is None else _decode_hist(d["hist_pos"]),
            hist_neg=None if d["hist_neg"] is None else _decode_hist(d["hist_neg"]),
            score_moments=tuple(Moments.from_list(m) for m in d["score_moments"]),
            logloss=None if d["logloss"] is None else Moments.from_list(d["logloss"]),
            brier=None if d.get("brier") is None else Moments.from_list(d["brier"]),
            eps=float(d["eps"]),
            auc_exact=None if d["auc_exact"] is None else tuple(_none_to_nan(a) for a in d["auc_exact"]),
            auc_var_exact=None
            if d["auc_var_exact"] is None
            else tuple(_none_to_nan(a) for a in d["auc_var_exact"]),
            n_batches=int(d.get("n_batches", 1)),
            auc_var_ratio=None if d.get("auc_var_ratio") is None else float(d["auc_var_ratio"]),
            hist_pred=None if d.get("hist_pred") is None else _decode_hist(d["hist_pred"]),
            pred_joint=None if d.get("pred_joint") is None
            else _decode_hist(d["pred_joint"]).reshape(len(d["classes"]), len(d["classes"]), -1),
            auc_pair_counts=_decode_pair_counts(d.get("auc_pair_counts")),
        )

    def equals(self, other: object) -> bool:
        """Exact equality of every field (arrays compared element-wise)."""
        return isinstance(other, ClassificationState) and self.to_dict() == other.to_dict()


@dataclass(frozen=True, eq=False)
class RegressionState:
    """Sufficient statistics of a regression batch.

    Moments (count, mean, M2, M3, M4) of the target ``y``, the prediction ``yhat``, the
    residual ``e = y - yhat``, ``|e|``, ``e**2``, the absolute percentage error over
    non-zero targets and the sMAPE terms, plus shifted cross sums of ``e**2`` with ``y``
    for the influence-function interval of R². All merge exactly (Chan / Pébay).

    ``ae_hist`` is a sparse log-spaced histogram of ``|e|`` (buckets 0.78 % wide, merged by
    adding counts): quantiles of the absolute error and the tail of ``e**2`` for heavy-tailed
    intervals come from it. ``None`` in states written before it existed.
    """

    n: int
    labelled: bool
    yhat: Moments
    y: Moments | None = None
    e: Moments | None = None
    ae: Moments | None = None
    se: Moments | None = None
    ape: Moments | None = None
    n_zero_target: int = 0
    sape: Moments | None = None
    shift: float = 0.0
    cross1: float = 0.0  # sum e^2 (y - shift)
    cross2: float = 0.0  # sum e^2 (y - shift)^2
    n_batches: int = 1
    ae_hist: AbsErrorHistogram | None = None
    task: str = field(default="regression", init=False)

    def prediction_part(self) -> RegressionState:
        """The label-free part of this state."""
        return RegressionState(n=self.n, labelled=False, yhat=self.yhat, n_batches=self.n_batches)

    def merge(self, other: RegressionState) -> RegressionState:
        if not isinstance(other, RegressionState):
            raise StateError(f"cannot merge a regression state with {type(other).__name__}")
        if other.labelled != self.labelled:
            raise StateError(
                "cannot merge a labelled state with a prediction-only one; use state.prediction_part()"
            )
        if not self.labelled:
            return RegressionState(
                n=self.n + other.n,
                labelled=False,
                yhat=self.yhat.merge(other.yhat),
                n_batches=self.n_batches + other.n_batches,
            )
        # re-express the other's cross sums around this state's shift
        delta = other.shift - self.shift  # (y - s1) = (y - s2) + delta
        se_sum_b = other.se.n * other.se.mean
        c1b = other.cross1 + delta * se_sum_b
        c2b = other.cross2 + 2.0 * delta * other.cross1 + delta * delta * se_sum_b
        return RegressionState(
            n=self.n + other.n,
            labelled=True,
            yhat=self.yhat.merge(other.yhat),
            y=self.y.merge(other.y),
            e=self.e.merge(other.e),
            ae=self.ae.merge(other.ae),
            se=self.se.merge(other.se),
            ape=self.ape.merge(other.ape),
            n_zero_target=self.n_zero_target + other.n_zero_target,
            sape=self.sape.merge(other.sape),
            shift=self.shift,
            cross1=self.cross1 + c1b,
            cross2=self.cross2 + c2b,
            n_batches=self.n_batches + other.n_batches,
            ae_hist=None if self.ae_hist is None or other.ae_hist is None else self.ae_hist.merge(other.ae_hist),
        )

    def to_dict(self) -> dict[str, Any]:
        def m(x: Moments | None):
            return None if x is None else x.to_list()

        return {
            "kind": "regression",
            "version": STATE_VERSION,
            "task": "regression",
            "n": self.n,
            "labelled": self.labelled,
            "yhat": m(self.yhat),
            "y": m(self.y),
            "e": m(self.e),
            "ae": m(self.ae),
            "se": m(self.se),
            "ape": m(self.ape),
            "n_zero_target": self.n_zero_target,
            "sape": m(self.sape),
            "shift": self.shift,
            "cross1": self.cross1,
            "cross2": self.cross2,
            "n_batches": self.n_batches,
            "ae_hist": None if self.ae_hist is None else self.ae_hist.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegressionState:
        def m(x):
            return None if x is None else Moments.from_list(x)

        return cls(
            n=int(d["n"]),
            labelled=bool(d["labelled"]),
            yhat=m(d["yhat"]),
            y=m(d["y"]),
            e=m(d["e"]),
            ae=m(d["ae"]),
            se=m(d["se"]),
            ape=m(d["ape"]),
            n_zero_target=int(d["n_zero_target"]),
            sape=m(d["sape"]),
            shift=float(d["shift"]),
            cross1=float(d["cross1"]),
            cross2=float(d["cross2"]),
            n_batches=int(d.get("n_batches", 1)),
            ae_hist=None if d.get("ae_hist") is None else AbsErrorHistogram.from_dict(d["ae_hist"]),
        )

    def equals(self, other: object) -> bool:
        return isinstance(other, RegressionState) and self.to_dict() == other.to_dict()


State = ClassificationState | RegressionState


def _merge_mixed_scores(a: ClassificationState, b: ClassificationState) -> ClassificationState:
    """Merge a state with scores and one without: counts cover every row, the score parts
    (histograms, score moments, log loss) the rows that had scores (see ``n_scored``)."""
    scored, plain = (a, b) if a.has_scores else (b, a)
    return replace(
        scored,
        n=a.n + b.n,
        confusion=None if a.confusion is None else a.confusion + b.confusion,
        pred_counts=a.pred_counts + b.pred_counts,
        logloss=scored.logloss if plain.logloss is None else plain.logloss.merge(scored.logloss),
        eps=max(a.eps, b.eps),
        auc_exact=None,
        auc_var_exact=None,
        n_batches=a.n_batches + b.n_batches,
    )


def _merge_ratio(a: ClassificationState, b: ClassificationState) -> float | None:
    if a.auc_var_ratio is None or b.auc_var_ratio is None:
        return a.auc_var_ratio if b.auc_var_ratio is None else b.auc_var_ratio
    return (a.n * a.auc_var_ratio + b.n * b.auc_var_ratio) / (a.n + b.n)


def _encode_pair_counts(a: np.ndarray | None) -> dict | None:
    """Pair counts as one sparse row (a small batch fills a few hundred of ~43,000 cells)."""
    if a is None:
        return None
    return {"pairs": int(a.shape[0]), "cells": int(a.shape[-1]), "row": _encode_row(a.ravel())}


def _decode_pair_counts(d: dict | None) -> np.ndarray | None:
    if d is None:
        return None
    pairs, cells = int(d["pairs"]), int(d["cells"])
    out = np.zeros(pairs * 3 * cells * cells, dtype=np.int64)
    idx, counts = _decode_row(d["row"])
    out[idx] = counts
    return out.reshape(pairs, 3, cells, cells)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _none_to_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _macro_auc_var_ratio(p: PreparedClassification, hist_pos, hist_neg, variances) -> float | None:
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
    tables = [_kernels.placement_tables(hist_pos[j], hist_neg[j]) for j in defined]
    inf_pos = np.stack([t[0] for t in tables])
    inf_neg = np.stack([t[1] for t in tables])
    cls = np.asarray(defined, dtype=np.int64)
    pool = _pool() if p.n >= _PARALLEL_ROWS else None
    if pool is None:
        ss = _kernels.macro_influence_ss_rows(p.proba, p.y_idx, cls, inf_pos, inf_neg, 0, p.n)
    else:
        h = p.n // 2
        job = pool.submit(_kernels.macro_influence_ss_rows, p.proba, p.y_idx, cls, inf_pos, inf_neg, 0, h)
        ss = _kernels.macro_influence_ss_rows(p.proba, p.y_idx, cls, inf_pos, inf_neg, h, p.n) + job.result()
    return float(ss * p.n / (p.n - 1) / indep) if p.n > 1 else None


_PARALLEL_ROWS = 200_000
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor | None:
    """A small shared thread pool (None on a single core)."""
    global _POOL
    cores = os.cpu_count() or 1
    if cores < 2:
        return None
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(cores, 4), thread_name_prefix="perfkit")
    return _POOL


def _exact_auc(proba: np.ndarray, y_idx: np.ndarray, c: int) -> tuple[float, float]:
    keys = _kernels.auc_keys(proba, y_idx, c)
    keys.sort()
    a, v, _, _ = _kernels.auc_from_keys(keys)
    return a, v


def _brier_terms(p: PreparedClassification) -> np.ndarray:
    """Per-row Brier terms (scikit-learn's convention: positive class only for binary)."""
    if p.task == "binary":
        j = p.positive_index
        return (p.proba[:, j] - (p.y_idx == j)) ** 2
    sq = np.einsum("ij,ij->i", p.proba, p.proba)
    return sq - 2.0 * p.proba[np.arange(p.n), p.y_idx] + 1.0


def _classification_state(p: PreparedClassification) -> ClassificationState:
    k = len(p.classes)
    labelled = p.y_idx is not None
    confusion = None
    if labelled:
        confusion = np.bincount(p.y_idx * k + p.p_idx, minlength=k * k).reshape(k, k).astype(np.int64)
    pred_counts = np.bincount(p.p_idx, minlength=k).astype(np.int64)
    hist_pos = hist_neg = hist_pred = pred_joint = logloss = brier = pair_counts = None
    score_moments: tuple = ()
    auc_exact = auc_var = var_ratio = None
    if p.proba is not None:
        hist_classes = np.array([p.positive_index] if p.task == "binary" else list(range(k)), dtype=np.int64)
        y_idx = p.y_idx if labelled else np.zeros(1, dtype=np.int64)
        # exact AUCs (a sort per class) run on worker threads while this thread builds the
        # histograms and moments: the compiled kernels and numpy's sort release the GIL
        auc_jobs: list = []
        if labelled:
            pool = _pool() if p.n >= _PARALLEL_ROWS else None
            for c in hist_classes:
                if pool is not None:
                    auc_jobs.append(pool.submit(_exact_auc, p.proba, p.y_idx, int(c)))
                else:
                    auc_jobs.append(_exact_auc(p.proba, p.y_idx, int(c)))
        shape = (hist_classes.size, _kernels.HIST_BINS)
        hist_pos, hist_neg, hist_pred, joint, mom, p_true = _kernels.class_pass(
            p.proba, y_idx, p.p_idx, hist_classes, labelled, p.eps,
            np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64),
        )
        score_moments = tuple(Moments.from_list(row) for row in mom.tolist())
        pred_joint = joint if (p.task == "multiclass" and joint.size) else None
        if labelled:
            np.log(p_true, out=p_true)  # vectorised (SIMD) log; the loss is its negative
            n_, mean, m2, m3, m4 = _kernels.moments(p_true)
            logloss = Moments(int(n_), -float(mean), float(m2), -float(m3), float(m4))
            bn, bmean, b2, b3, b4 = _kernels.moments(_brier_terms(p))
            brier = Moments(int(bn), float(bmean), float(b2), float(b3), float(b4))
            aucs, vars_ = [], []
            for a, v in (f.result() if hasattr(f, "result") else f for f in auc_jobs):
                aucs.append(float(a))
                vars_.append(float(v))
            auc_exact, auc_var = tuple(aucs), tuple(vars_)
            if p.task == "multiclass":
                var_ratio = _macro_auc_var_ratio(p, hist_pos, hist_neg, vars_)
                pair_counts = _auc_cov.pair_counts(p.proba, p.y_idx)
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


def _regression_part(y: np.ndarray, yhat: np.ndarray) -> RegressionState:
    mom, shift, c1, c2 = _kernels.regression_moments(y, yhat)
    ym, yhm, e, ae, se, ape, sape = (Moments.from_list(row) for row in mom.tolist())
    hist = AbsErrorHistogram(*_kernels.abs_error_hist(y, yhat))
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
    if p.y is None:
        return RegressionState(n=p.n, labelled=False, yhat=Moments.of(p.yhat))
    pool = _pool() if p.n >= 2 * _PARALLEL_ROWS else None
    if pool is None:
        return _regression_part(p.y, p.yhat)
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

    def grow(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
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
        joint = np.zeros((k, k, *state.pred_joint.shape[2:]), dtype=state.pred_joint.dtype)
        joint[np.ix_(pos, pos)] = state.pred_joint
    return replace(
        state, classes=classes, confusion=confusion, pred_counts=grow(state.pred_counts),
        hist_pos=grow(state.hist_pos), hist_neg=grow(state.hist_neg), score_moments=tuple(moments),
        auc_exact=None, auc_var_exact=None, hist_pred=grow(state.hist_pred), pred_joint=joint,
        auc_pair_counts=_auc_cov.align_pair_counts(state.auc_pair_counts, pos, k),
    )


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
    if len({getattr(s, "classes", None) for s in states}) > 1 and all(
            getattr(s, "task", None) == "multiclass" for s in states):
        from perfkit.metrics._validation import sorted_labels

        union = sorted_labels({c for s in states for c in s.classes})
        states = [align_classes(s, union) for s in states]
    it = iter(states)
    try:
        acc = next(it)
    except StopIteration:
        raise StateError("merge_states needs at least one state") from None
    for s in it:
        acc = acc.merge(s)
    return acc


def state_from_dict(d: dict[str, Any]) -> State:
    """Decode a state from :meth:`to_dict` output (raises StateError when malformed)."""
    try:
        kind = d["kind"]
        if d.get("version", 1) > STATE_VERSION:
            raise StateError(f"state version {d['version']} is newer than this perfkit ({STATE_VERSION})")
        if kind == "classification":
            return ClassificationState.from_dict(d)
        if kind == "regression":
            return RegressionState.from_dict(d)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateError(f"malformed state dict: {exc}") from exc
    raise StateError(f"unknown state kind {kind!r}")


def merge_dicts_to_state(dicts: Sequence[dict[str, Any]]) -> State:
    """Merge states given as dicts straight into one state (fast path for long histories).

    Sparse histogram rows are added into one accumulator without materialising a dense
    state per batch; the result equals ``merge_states(state_from_dict(d) for d in dicts)``.
    """
    dicts = list(dicts)
    if not dicts:
        raise StateError("merge needs at least one state")
    dicts = _aligned_dicts(dicts)
    first = dicts[0]
    if len(dicts) == 1 or first.get("kind") != "classification":
        return merge_states(state_from_dict(d) for d in dicts)
    head = ClassificationState.from_dict(
        {**first, "hist_pos": None, "hist_neg": None, "hist_pred": None, "pred_joint": None,
         "auc_pair_counts": None}
    )
    pair_counts = None
    if all(d.get("auc_pair_counts") is not None for d in dicts):
        try:
            pair_counts = sum(_decode_pair_counts(d["auc_pair_counts"]) for d in dicts)
        except ValueError:  # different layouts: the slow path raises the precise error
            return merge_states(state_from_dict(x) for x in dicts)
    joint = None
    if all(d.get("pred_joint") is not None for d in dicts):
        try:
            joint = sum(_decode_hist(d["pred_joint"]) for d in dicts).reshape(len(first["classes"]), len(first["classes"]), -1)
        except ValueError:  # different layouts: the slow path raises the precise error
            return merge_states(state_from_dict(x) for x in dicts)
    has_hist = first.get("hist_neg") is not None
    has_pred = has_hist and all(d.get("hist_pred") is not None for d in dicts)
    bins = int(first["hist_neg"]["bins"]) if has_hist else 0
    h = len(first["hist_neg"]["rows"]) if has_hist else 0
    k = len(first["classes"])
    conf = np.zeros((k, k), dtype=np.int64) if first["labelled"] else None
    n = n_batches = 0
    eps = 0.0
    n_score = len(first["score_moments"])
    score_rows: list[list[list[float]]] = [[] for _ in range(n_score)]
    loss_rows: list[list[float]] = []
    use_loss = bool(first["labelled"]) and first.get("logloss") is not None
    use_brier = use_loss and all(d.get("brier") is not None for d in dicts)
    brier_rows: list[list[float]] = []
    preds, confs = [], []
    rows: list[dict] = []
    targets: list[int] = []
    ratio_num = ratio_den = 0.0
    for d in dicts:
        if (d.get("kind") != "classification" or d["task"] != first["task"] or d["classes"] != first["classes"]
                or d["labelled"] != first["labelled"] or (d.get("hist_neg") is not None) != has_hist
                or d["positive_index"] != first["positive_index"]
                or (has_hist and (int(d["hist_neg"]["bins"]) != bins or len(d["hist_neg"]["rows"]) != h))):
            return merge_states(state_from_dict(x) for x in dicts)  # the slow path raises the precise error
        n += int(d["n"])
        n_batches += int(d.get("n_batches", 1))
        eps = max(eps, float(d["eps"]))
        if d.get("auc_var_ratio") is not None:  # n-weighted mean, as ClassificationState.merge
            ratio_num += int(d["n"]) * float(d["auc_var_ratio"])
            ratio_den += int(d["n"])
        preds.append(d["pred_counts"])
        if conf is not None:
            confs.append(d["confusion"])
        if has_hist:
            sides = ((0, "hist_pos"), (1, "hist_neg"), (2, "hist_pred")) if has_pred else ((0, "hist_pos"), (1, "hist_neg"))
            if has_pred and (int(d["hist_pred"]["bins"]) != bins or len(d["hist_pred"]["rows"]) != h):
                return merge_states(state_from_dict(x) for x in dicts)
            for side, key in sides:
                for j, row in enumerate(d[key]["rows"]):
                    if row.get("n", 1):
                        rows.append(row)
                        targets.append(side * h + j)
        for j, mom in enumerate(d["score_moments"]):
            score_rows[j].append(mom)
        if use_loss:
            loss_rows.append(d["logloss"])
        if use_brier:
            brier_rows.append(d["brier"])
    pred = np.asarray(preds, dtype=np.int64).sum(axis=0)
    if conf is not None:
        conf = np.asarray(confs, dtype=np.int64).sum(axis=0)
    pos = neg = hpred = None
    if has_hist:
        acc = _decode_rows_bulk(rows, targets, bins, (3 if has_pred else 2) * h * bins)
        pos = _upgrade_dense(acc[: h * bins].reshape(h, bins))
        neg = _upgrade_dense(acc[h * bins: 2 * h * bins].reshape(h, bins))
        if has_pred:
            hpred = _upgrade_dense(acc[2 * h * bins:].reshape(h, bins))
    return replace(
        head, n=n, confusion=conf, pred_counts=pred, hist_pos=pos, hist_neg=neg,
        score_moments=tuple(Moments.merge_all(r) for r in score_rows),
        logloss=Moments.merge_all(loss_rows) if use_loss else None, eps=eps,
        brier=Moments.merge_all(brier_rows) if use_brier else None,
        auc_exact=None, auc_var_exact=None, n_batches=n_batches,
        auc_var_ratio=ratio_num / ratio_den if ratio_den else None, hist_pred=hpred, pred_joint=joint,
        auc_pair_counts=pair_counts,
    )


def merge_state_dicts(dicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge states given as dicts and return the merged state as a dict."""
    return merge_dicts_to_state(dicts).to_dict()
