"""The layout of the metric states, for code that builds states elsewhere (the SQL engines).

A state computed inside DuckDB or Spark must bucket scores and absolute errors exactly as the
in-memory kernels do, encode labels the same way and hold histograms as the same sparse
counts (:class:`SparseCounts`). This module is the one public place
those constants and helpers are read from; the kernels themselves stay private.
"""

from __future__ import annotations

from perfkit.metrics._abs_hist import MANT_BITS as ABS_MANT_BITS
from perfkit.metrics._abs_hist import AbsErrorHistogram
from perfkit.metrics._auc_cov import CELLS as AUC_PAIR_CELLS
from perfkit.metrics._auc_cov import MAX_CLASSES as AUC_PAIR_MAX_CLASSES
from perfkit.metrics._auc_cov import bucket_cells as auc_pair_bucket_cells
from perfkit.metrics._auc_cov import pair_index as auc_pair_index
from perfkit.metrics._kernels import (
    COARSE_BITS,
    COARSE_SPAN,
    HIST_BINS,
    HIST_HALF,
    JOINT_CELLS,
    LOW_EXP,
    MANT_BITS,
    MIN_EXP,
    abs_error_hist,
    score_bins,
)
from perfkit.metrics._sparse import SparseCounts
from perfkit.metrics._validation import label_codes, python_label, sorted_labels

__all__ = [
    "ABS_MANT_BITS",
    "AUC_PAIR_CELLS",
    "AUC_PAIR_MAX_CLASSES",
    "COARSE_BITS",
    "COARSE_SPAN",
    "HIST_BINS",
    "HIST_HALF",
    "JOINT_CELLS",
    "LOW_EXP",
    "MANT_BITS",
    "MIN_EXP",
    "AbsErrorHistogram",
    "SparseCounts",
    "abs_error_hist",
    "auc_pair_bucket_cells",
    "auc_pair_index",
    "label_codes",
    "python_label",
    "score_bins",
    "sorted_labels",
]
