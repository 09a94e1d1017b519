"""The fast read paths of the store: ``states()``, ``window_states()``, ``window_state()``.

They must give exactly what the slow paths (``records()`` + ``merge_states``) give, on
SQLite and PostgreSQL, whatever the insertion order.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from perfkit import metrics
from perfkit.exceptions import ValidationError
from perfkit.metrics.state import merge_states, state_from_dict
from perfkit.store import ALL_SEGMENTS, BatchRecord, Store

T0 = datetime(2024, 1, 1, 5, tzinfo=UTC)  # a Monday; "7D" windows start on Thursdays


def real_state(seed: int, rows: int = 60) -> dict:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, rows)
    proba = np.clip(y_true * 0.3 + rng.random(rows) * 0.7, 0, 1)
    return metrics.compute_state(y_true, (proba > 0.5).astype(int), proba).to_dict()


def rec(i: int, *, segment: str | None = None, pending: bool = False, hours: float = 7,
        state: dict | None = None) -> BatchRecord:
    return BatchRecord(
        "churn", T0 + timedelta(hours=hours * i), "binary",
        state=real_state(i) if state is None else state, metrics={"accuracy": 0.5},
        sample_count=60, batch_id=f"b{i:04d}", segment=segment, labels_pending=pending,
    )


@pytest.fixture
def store(store_url):
    with Store(store_url) as s:
        yield s


@pytest.fixture
def filled(store):
    """60 records over ~2.5 weeks, two segments, a few pending, inserted out of order."""
    order = list(range(60))
    random.Random(3).shuffle(order)
    for i in order:
        store.append(rec(i, segment=("EU", "US", None)[i % 3], pending=i % 11 == 0))
    return store


def slow_windows(store: Store, freq: str, **kw) -> list[tuple[pd.Timestamp, dict]]:
    recs = store.records("churn", include_pending=False, **kw)
    frame = pd.DataFrame({"ts": [r.timestamp for r in recs], "i": range(len(recs))})
    buckets = frame.groupby(pd.to_datetime(frame["ts"], utc=True).dt.floor(freq))["i"]
    return [(start, merge_states(state_from_dict(recs[i].state) for i in idx).to_dict())
            for start, idx in buckets]


def assert_same_state(got: dict, want: dict) -> None:
    """Equal states; floats (moments merged in another order) equal to rounding."""
    assert got.keys() == want.keys()
    for key, value in got.items():
        if key in ("score_moments", "logloss", "brier", "eps", "auc_var_ratio"):
            assert np.allclose(np.asarray(value, dtype=float),
                               np.asarray(want[key], dtype=float), rtol=1e-12,
                               equal_nan=True), key
        else:
            assert value == want[key], key


@pytest.mark.parametrize("segment", [ALL_SEGMENTS, None, "EU"])
def test_states_match_records(filled, segment):
    got = filled.states("churn", segment=segment)
    want = [(r.timestamp, r.state)
            for r in filled.records("churn", segment=segment, include_pending=False)]
    assert got == want
    assert [ts for ts, _ in got] == sorted(ts for ts, _ in got)
    assert all(ts.tzinfo is not None and ts.utcoffset() == timedelta(0) for ts, _ in got)


def test_states_filters_and_pending(filled):
    start, end = T0 + timedelta(days=3), T0 + timedelta(days=9)
    got = filled.states("churn", start=start, end=end, include_pending=True)
    want = filled.records("churn", start=start, end=end)
    assert [(r.timestamp, r.state) for r in want] == got
    assert any(r.labels_pending for r in want)
    assert filled.states("other") == []
    assert len(filled.states()) == 60 - len(range(0, 60, 11))


def test_states_decode_tagged_values(store):
    state = {"kind": "x", "v": [1.0, float("nan"), float("-inf")],
             "at": datetime(2024, 2, 1, tzinfo=UTC)}
    store.append(rec(0, state=state))
    [(_, got)] = store.states("churn")
    assert got["v"][0] == 1.0 and math.isnan(got["v"][1]) and got["v"][2] == -math.inf
    assert got["at"] == datetime(2024, 2, 1, tzinfo=UTC)


def test_records_and_history_order_across_segments(filled):
    recs = filled.records("churn")
    keys = [(r.timestamp, r.id) for r in recs]
    assert keys == sorted(keys) and len(recs) == 60
    frame = filled.history("churn")
    assert frame["batch_id"].tolist() == [r.batch_id for r in recs]


@pytest.mark.parametrize("freq", ["7D", "1D", "12h"])
@pytest.mark.parametrize("segment", [ALL_SEGMENTS, "US"])
def test_window_states_equal_merged_records(filled, freq, segment):
    got = filled.window_states("churn", freq, segment=segment)
    want = slow_windows(filled, freq, segment=segment)
    assert [start for start, _ in got] == [start.to_pydatetime() for start, _ in want]
    for (_, state), (_, expected) in zip(got, want, strict=True):
        assert_same_state(state.to_dict(), expected)


def test_window_states_epoch_alignment_and_bounds(filled):
    windows = filled.window_states("churn", timedelta(days=7),
                                   start=T0 + timedelta(days=2),
                                   end=datetime(2024, 1, 11, tzinfo=UTC))
    assert [w for w, _ in windows] == [datetime(2023, 12, 28, tzinfo=UTC),
                                       datetime(2024, 1, 4, tzinfo=UTC)]
    assert filled.window_states("churn", "7D", segment="nowhere") == []


@pytest.mark.parametrize("freq", ["0D", "-1h", "1W", "weekly", 7, timedelta(0), None])
def test_window_states_rejects_bad_freq(filled, freq):
    with pytest.raises(ValidationError, match="freq"):
        filled.window_states("churn", freq)


def test_window_state_matches_merge_of_records(filled):
    recs = filled.records("churn", segment=None, include_pending=False)
    assert filled.window_state("churn", segment=None) == metrics.merge_state_dicts(
        [r.state for r in recs])
    assert filled.window_state("churn", segment="nowhere") is None
