"""Shift-share decomposition: exact (within + mix == overall change), against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    recall_score,
)

from perfkit.exceptions import ValidationError
from perfkit.metrics import compute_state
from perfkit.metrics.state import merge_states
from perfkit.report._shiftshare import SUPPORTED_METRICS, ratio_parts, shift_share


def _segment(rng, n, acc):
    y = rng.integers(0, 2, n)
    correct = rng.random(n) < acc
    pred = np.where(correct, y, 1 - y)
    proba = np.clip(np.where(pred == 1, 0.5 + rng.random(n) / 2, rng.random(n) / 2), 1e-6, 1 - 1e-6)
    return y, pred, proba


def _periods(seed, base_sizes, cur_sizes, base_acc, cur_acc):
    rng = np.random.default_rng(seed)
    base = {s: _segment(rng, n, base_acc[s]) for s, n in base_sizes.items()}
    cur = {s: _segment(rng, n, cur_acc[s]) for s, n in cur_sizes.items()}
    return base, cur


def _states(period):
    return {s: compute_state(y, p, pr) for s, (y, p, pr) in period.items()}


def _concat(period):
    return [np.concatenate([v[i] for v in period.values()]) for i in range(3)]


SK = {
    "accuracy": lambda y, p, pr: accuracy_score(y, p),
    "precision": lambda y, p, pr: precision_score(y, p),
    "recall": lambda y, p, pr: recall_score(y, p),
    "log_loss": lambda y, p, pr: log_loss(y, pr, labels=[0, 1]),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("metric", list(SK))
def test_within_plus_mix_is_the_overall_change_exactly(seed, metric):
    base, cur = _periods(seed, {"eu": 3000, "us": 1500, "apac": 800}, {"eu": 900, "us": 2500, "apac": 1700},
                         {"eu": 0.9, "us": 0.88, "apac": 0.8}, {"eu": 0.9, "us": 0.7, "apac": 0.75})
    ss = shift_share(_states(base), _states(cur), metric)
    expected = SK[metric](*_concat(cur)) - SK[metric](*_concat(base))
    assert ss.within + ss.mix == pytest.approx(expected, abs=1e-12, rel=0)
    assert ss.change == pytest.approx(expected, abs=1e-12, rel=0)
    assert ss.current_value == pytest.approx(SK[metric](*_concat(cur)), abs=1e-12, rel=0)
    # segment contributions add up to the total as well
    assert sum(s.contribution for s in ss.segments) == pytest.approx(expected, abs=1e-12, rel=0)
    # the overall value is the value of the merged state (what the headline shows)
    from perfkit.metrics import evaluate

    merged = evaluate(merge_states(list(_states(cur).values())))
    assert ss.current_value == pytest.approx(merged[metric].value, abs=1e-12, rel=0)


def test_pure_mix_and_pure_within_cases():
    # same per-segment accuracy, only the shares move: the change is all mix
    base, cur = _periods(5, {"a": 4000, "b": 4000}, {"a": 1000, "b": 7000}, {"a": 0.95, "b": 0.6},
                         {"a": 0.95, "b": 0.6})
    ss = shift_share(_states(base), _states(cur), "accuracy")
    assert abs(ss.mix) > 5 * abs(ss.within) and ss.mix < 0
    # same shares, one segment degrades: the change is (nearly) all within
    base, cur = _periods(6, {"a": 4000, "b": 4000}, {"a": 4000, "b": 4000}, {"a": 0.9, "b": 0.9},
                         {"a": 0.9, "b": 0.6})
    ss = shift_share(_states(base), _states(cur), "accuracy")
    assert ss.mix == pytest.approx(0.0, abs=1e-12) and ss.within < -0.1
    assert ss.segments[0].segment == "b"  # the largest contribution first


def test_new_and_gone_segments_keep_the_identity():
    base, cur = _periods(3, {"a": 2000, "gone": 500}, {"a": 1500, "new": 700}, {"a": 0.9, "gone": 0.5},
                         {"a": 0.85, "new": 0.6})
    ss = shift_share(_states(base), _states(cur), "accuracy")
    expected = accuracy_score(*_concat(cur)[:2]) - accuracy_score(*_concat(base)[:2])
    assert ss.within + ss.mix == pytest.approx(expected, abs=1e-12, rel=0)
    presence = {s.segment: s.presence for s in ss.segments}
    assert presence == {"a": "both", "gone": "gone", "new": "new"}
    assert all(s.within == 0 for s in ss.segments if s.presence != "both")


@pytest.mark.parametrize("metric, fn", [("mse", mean_squared_error), ("mae", mean_absolute_error)])
def test_regression_means(metric, fn):
    rng = np.random.default_rng(9)
    periods = []
    for scale in (1.0, 1.6):
        period = {}
        for s, n in (("x", 800), ("y", int(1200 * scale))):
            y = rng.normal(size=n)
            period[s] = (y, y + rng.normal(scale=scale * (2 if s == "y" else 1), size=n))
        periods.append(period)
    base, cur = ({s: compute_state(y, p, task="regression") for s, (y, p) in per.items()} for per in periods)
    ss = shift_share(base, cur, metric)
    cat = [[np.concatenate([v[i] for v in per.values()]) for i in range(2)] for per in periods]
    assert ss.within + ss.mix == pytest.approx(fn(*cat[1]) - fn(*cat[0]), abs=1e-12, rel=0)


def test_unsupported_and_bad_input():
    st = compute_state([0, 1, 1], [0, 1, 0], [0.2, 0.8, 0.4])
    with pytest.raises(ValidationError) as info:
        shift_share({"a": st}, {"a": st}, "roc_auc")
    assert info.value.parameter == "metric"
    with pytest.raises(ValidationError) as info:
        ratio_parts(compute_state([0.1, 0.2], [0.1, 0.3], task="regression"), "accuracy")
    assert info.value.parameter == "metric"
    with pytest.raises(ValidationError) as info:
        shift_share({}, {"a": st}, "accuracy")
    assert info.value.parameter == "baseline"
    with pytest.raises(ValidationError) as info:
        shift_share({"a": st}, [st], "accuracy")
    assert info.value.parameter == "current"
    assert "roc_auc" not in SUPPORTED_METRICS and "accuracy" in SUPPORTED_METRICS


def test_states_as_dicts_give_the_same_split():
    base, cur = _periods(4, {"a": 500, "b": 900}, {"a": 700, "b": 300}, {"a": 0.9, "b": 0.8}, {"a": 0.7, "b": 0.8})
    objs = shift_share(_states(base), _states(cur), "log_loss")
    dicts = shift_share({k: v.to_dict() for k, v in _states(base).items()},
                        {k: v.to_dict() for k, v in _states(cur).items()}, "log_loss")
    assert objs.to_dict() == dicts.to_dict()
