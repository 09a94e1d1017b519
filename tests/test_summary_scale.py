"""Long histories: daily-aggregated trends, lazily parsed states, merges for evaluation."""

from __future__ import annotations

import dataclasses
import json
import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from perfkit.analysis.trend import TREND_MAX_POINTS, analyze_trend, daily_points
from perfkit.metrics import compute_state, evaluate
from perfkit.metrics.state import (
    merge_dicts_to_state,
    merge_states,
    state_dict_for_evaluation,
    state_from_dict,
)
from perfkit.store import BatchRecord, Store

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _hourly_history(rng, days: int, slope: float, phi: float = 0.7, wobble: float = 0.003):
    """Hourly accuracy batches: a linear trend, an AR(1) daily wobble and binomial noise."""
    hours = days * 24
    t = np.arange(hours) / 24.0
    u = np.empty(hours)
    r = phi ** (1 / 24)
    u[0] = rng.normal(0, wobble)
    for i in range(1, hours):
        u[i] = r * u[i - 1] + rng.normal(0, wobble * np.sqrt(1 - r * r))
    n = rng.integers(200, 1000, hours)
    p = 0.9 + slope * t + u
    acc = rng.binomial(n, p) / n
    var = acc * (1 - acc) / n
    times = pd.DatetimeIndex([T0 + timedelta(hours=int(h)) for h in range(hours)])
    return times, acc, var, n


@pytest.mark.parametrize("slope", [-0.0005, 0.0])
def test_daily_trend_agrees_with_per_batch_trend(slope):
    rng = np.random.default_rng(11 if slope else 12)
    times, acc, var, n = _hourly_history(rng, 60, slope)
    per_batch = analyze_trend(times, acc, var, higher_is_better=True, weights=n, max_points=None)
    daily = analyze_trend(times, acc, var, higher_is_better=True, weights=n)
    assert per_batch.aggregation is None and per_batch.n_points == len(acc)
    assert daily.aggregation == "daily" and daily.n_points == 60
    assert any("daily points" in w for w in daily.warnings)
    assert daily.direction == per_batch.direction
    assert daily.direction == ("degrading" if slope else "stable")
    # each slope lies in the other's interval
    assert per_batch.slope_ci[0] <= daily.slope_per_day <= per_batch.slope_ci[1]
    assert daily.slope_ci[0] <= per_batch.slope_per_day <= daily.slope_ci[1]
    # the daily points are the row-weighted means of each day's batches
    day0 = slice(0, 24)
    fit = daily.fitted_frame()
    assert fit["time"].iloc[0].date() == T0.date()
    assert len(daily.to_dict()["fit"]["time"]) == 60
    assert np.isclose(np.sum(n[day0] * acc[day0]) / n[day0].sum(),
                      daily_points(np.arange(24) / 24, acc[day0], var[day0], n[day0].astype(float),
                                   np.zeros(24, dtype=np.int64))[1][0])


def test_short_and_dense_histories_are_fitted_as_given():
    rng = np.random.default_rng(3)
    times, acc, var, n = _hourly_history(rng, 16, -0.0005)  # 384 points: below the limit
    assert len(acc) <= TREND_MAX_POINTS
    a = analyze_trend(times, acc, var, higher_is_better=True, weights=n)
    b = analyze_trend(times, acc, var, higher_is_better=True, max_points=None)
    assert a.aggregation is None and a.to_dict() == b.to_dict()
    times, acc, var, n = _hourly_history(rng, 20, -0.0005)  # 480 points over 20 days (< 30 days)
    c = analyze_trend(times, acc, var, higher_is_better=True)
    assert c.aggregation is None and c.n_points == 480


def test_daily_points_of_float_days_and_bad_weights():
    days = np.r_[np.arange(500) / 10.0]  # 50 days, 10 points a day
    y = 0.8 + 0.001 * days
    res = analyze_trend(days + 3.0, y, np.full(500, 1e-4), higher_is_better=True)
    assert res.aggregation == "daily" and res.n_points == 50
    assert res.to_dict()["fit"]["time"][0] == pytest.approx(3.45)
    with pytest.raises(Exception, match="weights"):
        analyze_trend(days, y, None, higher_is_better=True, weights=np.zeros(500))
    with pytest.raises(Exception, match="max_points"):
        analyze_trend(days, y, None, higher_is_better=True, max_points=0)


def _states(task: str, count: int, rng) -> list:
    out = []
    for _ in range(count):
        rows = int(rng.integers(50, 120))
        if task == "regression":
            y = rng.normal(5, 2, rows)
            out.append(compute_state(y, y + rng.normal(0, 1, rows)))
            continue
        k = 2 if task == "binary" else 4
        y = rng.integers(0, k, rows)
        p = rng.dirichlet(np.ones(k), rows)
        p[np.arange(rows), y] += 0.5
        p /= p.sum(axis=1, keepdims=True)
        out.append(compute_state(y, p.argmax(axis=1), p[:, 1] if k == 2 else p, task=task))
    return out


def _report(state) -> dict:
    return {k: v.to_dict() for k, v in evaluate(state).items()}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_merge_for_evaluation_gives_the_same_report(task, tmp_path):
    rng = np.random.default_rng(5)
    states = _states(task, 30, rng)
    full = merge_states(states)
    dicts = [s.to_dict() for s in states]
    lean = merge_dicts_to_state(dicts, for_evaluation=True)
    assert _report(lean) == _report(full)
    if task != "regression":
        assert lean.hist_pred is None and full.hist_pred is not None
    texts = [json.dumps(d, separators=(",", ":")) for d in dicts]
    parsed = [state_dict_for_evaluation(t, json.loads) for t in texts]
    assert all("pred_joint" not in d and "hist_pred" not in d for d in parsed)
    assert _report(merge_dicts_to_state(parsed, for_evaluation=True)) == _report(full)
    # a dict in another key order is parsed whole (and still merges to the same values)
    shuffled = [json.dumps(dict(reversed(list(d.items())))) for d in dicts]
    assert _report(merge_dicts_to_state([state_dict_for_evaluation(t, json.loads) for t in shuffled],
                                        for_evaluation=True)) == _report(full)
    # through a store: records() keeps states as text, merged_state parses them
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        for i, s in enumerate(states):
            store.append(BatchRecord("m", T0 + timedelta(hours=i), s.task, s.to_dict(), {}, s.n,
                                     batch_id=f"b{i}"))
        recs = store.records("m")
        assert _report(store.merged_state(recs, for_evaluation=True)) == _report(full)
        assert store.merged_state(recs).equals(full)
        assert all("state" not in r.__dict__ for r in recs)  # nothing parsed and kept


def test_lazily_read_records_equal_eager_ones(tmp_path):
    rng = np.random.default_rng(9)
    states = _states("binary", 3, rng)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        for i, s in enumerate(states):
            store.append(BatchRecord("m", T0 + timedelta(hours=i), "binary", s.to_dict(), {"accuracy": 0.5},
                                     s.n, batch_id=f"b{i}", metadata={"x": [1, 2]}))
        recs = store.records("m")
        eager = [store.get("m", f"b{i}") for i in range(3)]
        assert recs == eager and eager == recs
        assert repr(recs[0]) == repr(eager[0]) and repr(recs[0]).startswith("BatchRecord(")
        assert state_from_dict(recs[1].state).equals(states[1])
        assert isinstance(recs[0], BatchRecord)
        again = pickle.loads(pickle.dumps(recs[2]))
        assert again == eager[2] and type(again) is BatchRecord
        moved = dataclasses.replace(recs[0], batch_id="copy")
        assert moved.state == eager[0].state and moved.batch_id == "copy"
        # a read record can be appended elsewhere (its state is parsed first)
        with Store("sqlite://") as other:
            other.append(store.records("m")[0])
            assert other.get("m", "b0").state == eager[0].state


def test_year_summary_uses_daily_trends_and_exact_window(tmp_path):
    """A long history (hourly batches over 40 days): trends of daily points, window metrics
    from the merged state of every batch."""
    from perfkit import ModelPerformanceTracker

    rng = np.random.default_rng(21)
    url = f"sqlite:///{tmp_path / 'y.db'}"
    end = datetime.now(UTC) - timedelta(minutes=5)
    templates = _states("binary", 12, rng)
    hours = 40 * 24
    states = [templates[i % len(templates)] for i in range(hours)]
    with Store(url) as store:
        for i, s in enumerate(states):
            rep = evaluate(s)
            store.append(BatchRecord("y", end - timedelta(hours=hours - 1 - i), "binary", s.to_dict(),
                                     {k: v.to_dict() for k, v in rep.items()}, s.n, batch_id=f"h{i}",
                                     performance_score=0.8))
    tracker = ModelPerformanceTracker(store=url, model="y")
    summary = tracker.get_performance_summary(days=45)
    tracker.close()
    assert summary["labelled_records"] == hours
    acc = summary["metric_trends"]["accuracy"]
    assert acc["aggregation"] == "daily" and 40 <= acc["n_points"] <= 41
    expected = _report(merge_states(states))
    assert summary["window_metrics"]["accuracy"] == expected["accuracy"]
    assert summary["window_metrics"]["roc_auc"] == expected["roc_auc"]


def test_stored_abs_error_histograms_merge_exactly():
    """Regression states' |e| histograms merged from stored dicts (one vectorized decode when
    the packings agree, one by one when they do not) equal the in-memory merge."""
    from perfkit.exceptions import StateError

    rng = np.random.default_rng(4)
    same = _states("regression", 40, rng)
    y = np.round(rng.normal(0, 1, 5000), 1)  # few distinct errors: counts above 255
    big = compute_state(y, np.zeros(5000))
    for states in (same, [*same[:5], big, *same[5:10]]):
        dicts = [s.to_dict() for s in states]
        merged = merge_dicts_to_state(dicts)
        assert merged.equals(merge_states(states))
        assert np.array_equal(merged.ae_hist.counts, merge_states(states).ae_hist.counts)
    assert len({d["ae_hist"]["d"] for d in dicts}) == 2  # the second case mixed the packings
    bad = [s.to_dict() for s in same[:3]]
    bad[1]["ae_hist"] = {**bad[1]["ae_hist"], "n": bad[1]["ae_hist"]["n"] + 1}
    with pytest.raises(StateError):
        merge_dicts_to_state(bad)
