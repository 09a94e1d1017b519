"""Bad input raises the documented PerfkitError subclass naming the parameter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perfkit.exceptions import (
    EmptyBatchError,
    InputTypeError,
    LabelError,
    NonFiniteError,
    PerfkitError,
    ProbabilityError,
    ShapeError,
    UnknownMetricError,
    UnknownTaskError,
    ValidationError,
)
from perfkit.metrics import compute_metrics, compute_state, evaluate, get_metric

P3 = [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]]

CASES = [
    # id, kwargs for compute_state, error, parameter
    ("lengths", dict(y_true=[0, 1, 1], y_pred=[0, 1]), ShapeError, "y_pred"),
    ("lengths_proba", dict(y_true=[0, 1, 1], y_pred=[0, 1, 1], y_pred_proba=[0.1, 0.9]), ShapeError, "y_pred_proba"),
    ("lengths_truth_vs_proba", dict(y_true=[0, 1, 1, 0], y_pred_proba=[0.1, 0.9, 0.3]), ShapeError, "y_pred_proba"),
    ("lengths_regression", dict(y_true=[1.5, 2.5], y_pred=[1.0, 2.0, 3.0]), ShapeError, "y_pred"),
    ("nan_label", dict(y_true=[0.0, 1.0, np.nan], y_pred=[0, 1, 1], y_pred_proba=[0.2, 0.8, 0.6]), NonFiniteError, "y_true"),
    ("none_label", dict(y_true=["a", None, "b"], y_pred=["a", "b", "b"]), NonFiniteError, "y_true"),
    ("nan_pred_label", dict(y_true=["a", "b"], y_pred=["a", np.nan]), NonFiniteError, "y_pred"),
    ("nan_prediction", dict(y_true=[1.5, 2.5, 3.5], y_pred=[1.0, np.nan, 3.0]), NonFiniteError, "y_pred"),
    ("inf_prediction", dict(y_true=[1.5, 2.5, 3.5], y_pred=[1.0, np.inf, 3.0]), NonFiniteError, "y_pred"),
    ("inf_target", dict(y_true=[1.5, -np.inf, 3.5], y_pred=[1.0, 2.0, 3.0]), NonFiniteError, "y_true"),
    ("nan_score", dict(y_true=[0, 1, 1], y_pred=[0, 1, 1], y_pred_proba=[0.1, np.nan, 0.7]), NonFiniteError, "y_pred_proba"),
    ("inf_score", dict(y_true=[0, 1, 1], y_pred_proba=[0.1, np.inf, 0.7]), NonFiniteError, "y_pred_proba"),
    ("proba_above_one", dict(y_true=[0, 1, 1], y_pred=[0, 1, 1], y_pred_proba=[0.1, 1.2, 0.7]), ProbabilityError, "y_pred_proba"),
    ("proba_below_zero", dict(y_true=[0, 1, 1], y_pred=[0, 1, 1], y_pred_proba=[-0.1, 0.2, 0.7]), ProbabilityError, "y_pred_proba"),
    ("rows_not_summing", dict(y_true=[0, 1, 2], y_pred_proba=[[0.2, 0.5, 0.4], *P3[1:]]), ProbabilityError, "y_pred_proba"),
    ("too_few_columns", dict(y_true=[0, 1, 2], y_pred_proba=[[0.5, 0.5]] * 3), LabelError, "y_pred_proba"),
    ("columns_vs_classes", dict(y_true=[0, 1, 2], y_pred_proba=P3, classes=[0, 1, 2, 3]), LabelError, "y_pred_proba"),
    (
        "frame_columns_vs_classes",
        dict(y_true=["a", "b", "c"], y_pred_proba=pd.DataFrame(P3, columns=["a", "b", "x"]), classes=["a", "b", "c"]),
        LabelError,
        "y_pred_proba",
    ),
    (
        "frame_columns_vs_labels",
        dict(y_true=["a", "b", "c"], y_pred_proba=pd.DataFrame(P3, columns=["a", "b", "x"])),
        LabelError,
        "y_pred_proba",
    ),
    ("multiclass_1d_scores", dict(y_true=[0, 1, 2], y_pred=[0, 1, 2], y_pred_proba=[0.1, 0.5, 0.7]), ShapeError, "y_pred_proba"),
    ("3d_scores", dict(y_true=[0, 1], y_pred_proba=np.full((2, 2, 1), 0.5)), ShapeError, "y_pred_proba"),
    ("string_scores", dict(y_true=[0, 1], y_pred_proba=["a", "b"]), InputTypeError, "y_pred_proba"),
    ("empty", dict(y_true=[], y_pred=[]), EmptyBatchError, "y_true"),
    ("empty_proba", dict(y_true=[], y_pred_proba=np.empty((0, 3))), EmptyBatchError, "y_true"),
    ("2d_y_true", dict(y_true=np.zeros((4, 2)), y_pred=[0, 1, 1, 0]), ShapeError, "y_true"),
    ("2d_y_pred", dict(y_true=[0, 1, 1, 0], y_pred=np.zeros((4, 3))), ShapeError, "y_pred"),
    ("scalar_y_true", dict(y_true="abc", y_pred=[0]), InputTypeError, "y_true"),
    ("unknown_task", dict(y_true=[0, 1], y_pred=[0, 1], task="ranking"), UnknownTaskError, "task"),
    ("no_predictions", dict(y_true=[0, 1]), InputTypeError, "y_pred"),
    ("unknown_pred_label", dict(y_true=[0, 1, 1], y_pred=[0, 1, 7], classes=[0, 1]), LabelError, "y_pred"),
    ("unknown_true_label", dict(y_true=["a", "z"], y_pred=["a", "b"], classes=["a", "b"]), LabelError, "y_true"),
    ("binary_with_three_classes", dict(y_true=[0, 1, 2], y_pred=[0, 1, 2], task="binary"), LabelError, "classes"),
    ("positive_label", dict(y_true=[0, 1], y_pred=[0, 1], positive_label=5), LabelError, "positive_label"),
    ("duplicate_classes", dict(y_true=[0, 1], y_pred=[0, 1], classes=[0, 1, 1]), LabelError, "classes"),
    ("regression_strings", dict(y_true=["a", "b"], y_pred=[1.0, 2.0], task="regression"), InputTypeError, "y_true"),
    ("regression_scores", dict(y_true=[1.5, 2.5], y_pred=[1.0, 2.0], y_pred_proba=[0.1, 0.2], task="regression"), InputTypeError, "y_pred_proba"),
]


@pytest.mark.parametrize(("kwargs", "error", "parameter"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_named_error(kwargs, error, parameter):
    with pytest.raises(error) as info:
        compute_state(**kwargs)
    exc = info.value
    assert isinstance(exc, PerfkitError)
    assert isinstance(exc, ValueError if isinstance(exc, ValidationError) else TypeError)
    assert exc.parameter == parameter, (exc.parameter, str(exc))
    assert str(exc)
    with pytest.raises(error):
        compute_metrics(**kwargs)


def test_exception_tree():
    for cls in (ShapeError, NonFiniteError, ProbabilityError, LabelError, EmptyBatchError, UnknownTaskError):
        assert issubclass(cls, ValidationError) and issubclass(cls, ValueError)
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, PerfkitError)


def test_rows_summing_to_one_within_tolerance_are_accepted():
    p = np.array(P3) + np.array([[5e-5, 0, 0], [0, -5e-5, 0], [0, 0, 0]])
    assert compute_state([0, 1, 2], None, p).n == 3
    with pytest.raises(ProbabilityError):
        compute_state([0, 1, 2], None, p, proba_tol=1e-6)


def test_unknown_metric_and_bad_evaluate_options():
    s = compute_state([0, 1, 1], [0, 1, 0])
    with pytest.raises(UnknownMetricError, match="valid names"):
        evaluate(s, metrics=["nope"])
    with pytest.raises(UnknownMetricError):
        get_metric("nope")
    with pytest.raises(ValidationError) as info:
        evaluate(s, level=1.5)
    assert info.value.parameter == "level"
    with pytest.raises(ValidationError) as info:
        evaluate(s, n_boot=1)
    assert info.value.parameter == "n_boot"


def test_errors_chain_their_cause():
    class Bad:
        def __array__(self, *a, **k):
            raise ValueError("boom")

    with pytest.raises(InputTypeError) as info:
        compute_state([0, 1], [0, 1], Bad())
    assert info.value.parameter == "y_pred_proba"
    assert isinstance(info.value.__cause__, ValueError)


# ---- labels that are not scalars, pandas inputs that do not line up -------------------------
@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        (dict(y_true=[{"a": 1}, {"b": 2}], y_pred=["a", "b"]), "y_true"),
        (dict(y_true=["a", "b"], y_pred=[{"a": 1}, {"b": 2}]), "y_pred"),
        (dict(y_true=np.array([{1}, {2}], dtype=object), y_pred=[1, 2]), "y_true"),
        (dict(y_true=np.array([[1], 2], dtype=object), y_pred=[1, 2]), "y_true"),
        (dict(y_true=pd.Series([{"a": 1}, "b"]), y_pred=["a", "b"]), "y_true"),
        (dict(y_true=["a", "b"], y_pred=["a", "b"], classes=[{"a": 1}, "b"]), "classes"),
    ],
    ids=["dict_truth", "dict_pred", "set_truth", "list_truth", "series_of_dicts", "dict_class"],
)
def test_non_scalar_labels_raise_label_type_error(kwargs, parameter):
    from perfkit.exceptions import LabelTypeError

    with pytest.raises(LabelTypeError) as info:
        compute_state(**kwargs)
    exc = info.value
    assert isinstance(exc, LabelError) and isinstance(exc, ValueError) and isinstance(exc, TypeError)
    assert exc.parameter == parameter and "scalar" in str(exc)


def test_classes_must_be_a_list():
    with pytest.raises(InputTypeError) as info:
        compute_state(["a", "b"], ["a", "b"], classes="ab")
    assert info.value.parameter == "classes"
    assert compute_state(["a", "b"], ["a", "b"], classes=("b", "a")).classes == ("a", "b")
    assert compute_state(["a", "b"], ["a", "b"], classes=iter(["a", "b"])).classes == ("a", "b")


@pytest.mark.parametrize("y", [["x", "y", "x"], [1, 0, 1], [True, False, True], np.array([1, 2.0, 1], dtype=object),
                               np.array(["x", "y", "x"], dtype=object), pd.Series(["x", "y", "x"], dtype="category")])
def test_scalar_labels_of_every_kind_still_work(y):
    assert compute_state(y, y).n == 3


@pytest.mark.parametrize(
    ("y_true", "y_pred", "proba", "parameter", "why"),
    [
        (pd.Series([0, 1, 1], index=[0, 1, 2]), pd.Series([0, 1, 1], index=[5, 6, 7]), None, "y_pred",
         "different labels"),
        (pd.Series([0, 1, 1], index=[0, 1, 2]), pd.Series([0, 1, 1], index=[2, 1, 0]), None, "y_pred",
         "another order"),
        (pd.Series([0, 1, 2]), pd.Series([0, 1, 2]), pd.DataFrame(P3, index=[7, 8, 9]), "y_pred_proba",
         "different labels"),
        (pd.Series([0, 1, 2], index=[3, 4, 5]), None, pd.DataFrame(P3), "y_pred_proba", "different labels"),
    ],
    ids=["series_vs_series", "same_labels_reordered", "frame_vs_series", "truth_vs_frame"],
)
def test_pandas_inputs_with_different_indexes_are_refused(y_true, y_pred, proba, parameter, why):
    with pytest.raises(ShapeError) as info:
        compute_state(y_true, y_pred, proba)
    assert info.value.parameter == parameter
    assert "different indexes" in str(info.value) and why in str(info.value)


def test_pandas_inputs_with_equal_indexes_and_plain_arrays_are_paired_by_position():
    idx = pd.Index(["u1", "u2", "u3", "u4"])
    y = pd.Series([0, 1, 1, 0], index=idx)
    p = pd.Series([0, 1, 0, 0], index=idx)
    a = compute_metrics(y, p)["accuracy"].value
    assert a == 0.75
    assert compute_metrics(y, p.to_numpy())["accuracy"].value == a  # one pandas object: nothing to align
    assert compute_metrics(y, p.reindex(idx[::-1]).reindex(y.index))["accuracy"].value == a


def test_f1_zero_division_reason_is_set():
    y_true = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    y_pred = np.array([0, 0, 1, 0, 0, 1, 0, 1])  # class 2 never predicted: its precision is 0/0
    rep = compute_metrics(y_true, y_pred)
    assert "precision_zero_division:2" in rep["f1_macro"].reason
    assert "precision_zero_division:2" in rep["precision_macro"].reason
    assert rep["recall_macro"].reason is None
