"""A declared regression batch checks NaN / inf inside its moments pass: the same documented
error as the up-front check, wherever the bad value is, and the tracker writes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perfkit import ModelPerformanceTracker
from perfkit.exceptions import NonFiniteError
from perfkit.metrics import compute_state, evaluate
from perfkit.metrics._validation import prepare


def _error(**kw) -> NonFiniteError:
    with pytest.raises(NonFiniteError) as info:
        compute_state(**kw)
    return info.value


@pytest.mark.parametrize("n", [1, 7, 5000, 300_000])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["first", "middle", "last", "both"])
@pytest.mark.parametrize("column", ["y_true", "y_pred", "both"])
def test_nonfinite_anywhere_raises_the_documented_error(n, bad, where, column):
    rng = np.random.default_rng(n)
    y = rng.normal(size=n) * 3 + 10
    yhat = y + rng.normal(size=n)
    idx = {"first": [0], "middle": [n // 2], "last": [n - 1], "both": [0, n - 1]}[where]
    if column in ("y_true", "both"):
        y[idx] = bad
    if column in ("y_pred", "both"):
        yhat[idx] = bad
    assert not prepare(y, yhat, None, task="regression", classes=None, positive_label=None,
                       proba_tol=1e-4).finite_checked  # the folded check is the one under test
    folded = _error(y_true=y, y_pred=yhat, task="regression")
    upfront = _error(y_true=y, y_pred=yhat)  # task inferred: checked before the pass
    assert type(folded) is type(upfront)
    assert str(folded) == str(upfront) and folded.parameter == upfront.parameter
    assert folded.parameter == ("y_pred" if column == "y_pred" else "y_true")


def test_pending_regression_batch_checks_its_predictions():
    yhat = np.arange(10.0)
    yhat[4] = math.nan
    err = _error(y_true=None, y_pred=yhat, task="regression")
    assert err.parameter == "y_pred" and "1 NaN" in str(err)


def test_other_inputs_are_checked_up_front():
    y = np.array([1.0, math.nan, 3.0])
    for yhat in (np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])[::-1].copy()[::-1]):
        p = prepare(y, yhat, None, task="regression", classes=None, positive_label=None, proba_tol=1e-4) \
            if yhat.dtype == np.float64 and yhat.flags.c_contiguous else None
        assert p is None or not p.finite_checked
        assert _error(y_true=y, y_pred=yhat, task="regression").parameter == "y_true"
    # an integer column has no NaN; a strided float view is checked before the pass
    strided = np.linspace(0.0, 1.0, 20)[::2]
    assert prepare(strided, strided, None, task="regression", classes=None, positive_label=None,
                   proba_tol=1e-4).finite_checked


def test_finite_values_whose_moments_overflow_are_not_refused():
    y = np.array([1e308, -1e308, 1e308, 5.0])
    yhat = np.array([-1e308, 1e308, 0.0, 4.0])
    report = evaluate(compute_state(y, yhat, task="regression"))
    assert report["mse"].reason == "overflow"


def test_tracker_writes_nothing_for_a_nonfinite_regression_batch(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "p.db", model="reg")
    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    t.track_performance(y, y + rng.normal(size=2000), task="regression")
    before = t.store.count()
    yhat = y + 1.0
    yhat[1234] = math.inf
    with pytest.raises(NonFiniteError, match="y_pred contains 1 NaN or infinite"):
        t.track_performance(y, yhat, task="regression")
    assert t.store.count() == before
    t.close()
