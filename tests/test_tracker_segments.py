"""``track_performance(segments=...)``: one pass, one write transaction, one testing family.

Real SQLite stores; references: scikit-learn for the metric values, separate
``compute_metrics`` calls for the per-segment states, ``assess`` for the decision and
``replay`` for the history.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from perfkit import ModelPerformanceTracker
from perfkit.analysis import assess, replay
from perfkit.config import load_config
from perfkit.exceptions import StoreError, ValidationError
from perfkit.metrics import compute_metrics

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _tracker(tmp_path, name="seg.db", **cfg):
    config = load_config(None)
    if cfg:
        import dataclasses

        config = dataclasses.replace(config, **cfg)
    return ModelPerformanceTracker(store=tmp_path / name, model="m", config=config, channels=[])


def _binary(rng, n, acc):
    y = (rng.random(n) < 0.4).astype(int)
    yp = np.where(rng.random(n) < acc, y, 1 - y)
    conf = rng.beta(4, 2, n)
    return y, yp, np.where(yp == 1, 0.5 + 0.5 * conf, 0.5 - 0.5 * conf)


def _multiclass(rng, n, acc, k=4):
    y = rng.integers(0, k, n)
    yp = np.where(rng.random(n) < acc, y, (y + rng.integers(1, k, n)) % k)
    p = np.full((n, k), 0.1 / (k - 1))
    p[np.arange(n), yp] = 0.9
    return y, yp, p


def test_per_segment_metrics_equal_separate_calls_and_scikit_learn(tmp_path):
    rng = np.random.default_rng(0)
    y, yp, p = _multiclass(rng, 900, 0.8)
    seg = rng.choice(["north", "south", "east"], 900)
    t = _tracker(tmp_path)
    r = t.track_performance(y, yp, p, segments=seg, timestamp=T0, batch_id="b1")
    assert set(r.segment_metrics) == {"north", "south", "east"}
    assert r.metrics["accuracy"].value == pytest.approx(skm.accuracy_score(y, yp), abs=1e-12)
    for s in ("north", "south", "east"):
        rows = seg == s
        got = r.segment_metrics[s]
        assert got["accuracy"].value == pytest.approx(skm.accuracy_score(y[rows], yp[rows]), abs=1e-12)
        assert got["f1_macro"].value == pytest.approx(
            skm.f1_score(y[rows], yp[rows], average="macro", labels=[0, 1, 2, 3]), abs=1e-12)
        assert got["roc_auc"].value == pytest.approx(
            skm.roc_auc_score(y[rows], p[rows], multi_class="ovr", labels=[0, 1, 2, 3]), abs=1e-9)
        alone = compute_metrics(y[rows], yp[rows], p[rows], classes=[0, 1, 2, 3])
        for name, v in alone.items():
            a, b = v.value, got[name].value
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12), name
    # stored: the whole batch and one record per segment, one batch id, linked by call_id
    recs = t.store.records("m")
    assert sorted((x.segment or "") for x in recs) == ["", "east", "north", "south"]
    assert {x.batch_id for x in recs} == {"b1"}
    assert {x.metadata["call_id"] for x in recs} == {"b1"}
    assert {x.segment: x.sample_count for x in recs} == {None: 900, **{s: int((seg == s).sum()) for s in
                                                                         ("north", "south", "east")}}
    assert set(r.segment_record_ids) == {"north", "south", "east"}
    assert r.to_dict()["segment_metrics"]["north"]["accuracy"]["value"] == r.segment_metrics["north"]["accuracy"].value


def test_a_pandas_series_of_labels_and_a_dataframe_of_scores(tmp_path):
    rng = np.random.default_rng(1)
    y, yp, p = _binary(rng, 300, 0.85)
    seg = pd.Series(rng.choice([1, 2], 300), index=np.arange(300) + 1000)
    proba = pd.DataFrame({1: p, 0: 1 - p}, index=seg.index)
    t = _tracker(tmp_path)
    r = t.track_performance(pd.Series(y, index=seg.index), yp, proba, segments=seg, timestamp=T0)
    assert set(r.segment_metrics) == {"1", "2"}
    rows = seg.to_numpy() == 2
    assert r.segment_metrics["2"]["roc_auc"].value == pytest.approx(skm.roc_auc_score(y[rows], p[rows]), abs=1e-9)


@pytest.mark.parametrize(("segments", "message"), [
    (["a"] * 99, "labels but the batch has 100 rows"),
    (["a"] * 99 + [None], "missing label"),
    (np.r_[np.zeros(99), np.nan], "missing label"),
    (["a"] * 99 + [" "], "non-blank"),
    ("abc", "one label per row"),
    (["a"] * 99 + [1.5], "str or int"),
])
def test_bad_segments_are_refused_before_anything_is_written(tmp_path, segments, message):
    rng = np.random.default_rng(2)
    t = _tracker(tmp_path)
    y, yp, p = _binary(rng, 100, 0.9)
    with pytest.raises(ValidationError, match=message) as err:
        t.track_performance(y, yp, p, segments=segments)
    assert err.value.parameter == "segments"
    assert t.store.records("m") == []


def test_segments_with_segment_or_without_labels_are_refused(tmp_path):
    t = _tracker(tmp_path)
    with pytest.raises(ValidationError) as err:
        t.track_performance([0, 1], [0, 1], segment="x", segments=["a", "b"])
    assert err.value.parameter == "segments"
    with pytest.raises(ValidationError) as err:
        t.track_performance(None, [0, 1], [0.2, 0.8], segments=["a", "b"])
    assert err.value.parameter == "segments"
    assert t.store.records("m") == []


def test_a_failing_write_leaves_nothing(tmp_path):
    rng = np.random.default_rng(3)
    t = _tracker(tmp_path)
    y, yp, p = _binary(rng, 200, 0.9)
    t.track_performance(y[:50], yp[:50], p[:50], segment="b", batch_id="x", timestamp=T0)
    before = len(t.store.records("m"))
    seg = np.where(np.arange(200) < 100, "a", "b")
    with pytest.raises(StoreError):  # segment b already has batch x: the whole call rolls back
        t.track_performance(y, yp, p, segments=seg, batch_id="x", timestamp=T0 + timedelta(hours=1))
    recs = t.store.records("m")
    assert len(recs) == before == 1
    assert t.store.records("m", segment=None) == [] and t.store.records("m", segment="a") == []


def _history(t, rng, calls, bad_segment=None, bad_from=None, k=4, n=200):
    results = []
    for i in range(calls):
        parts = []
        for j in range(k):
            acc = 0.6 if (bad_segment == j and bad_from is not None and i >= bad_from) else 0.9
            parts.append(_binary(rng, n, acc))
        y, yp, p = (np.concatenate([q[c] for q in parts]) for c in range(3))
        seg = np.repeat([f"s{j}" for j in range(k)], n)
        results.append(t.track_performance(y, yp, p, segments=seg, timestamp=T0 + timedelta(hours=6 * i),
                                           batch_id=f"b{i}"))
    return results


def test_one_family_equals_assess_over_the_same_states(tmp_path):
    rng = np.random.default_rng(4)
    t = _tracker(tmp_path)
    base_data = _binary(rng, 20_000, 0.9)
    t.set_baseline(*base_data)
    results = _history(t, rng, 3, bad_segment=2, bad_from=2)
    last = results[-1]
    da = last.degradation_analysis
    segs = {f.segment for f in da.findings}
    assert segs == {None, "s0", "s1", "s2", "s3"}
    assert any(f.degraded and f.segment == "s2" for f in da.findings)
    assert not any(f.degraded and f.segment not in ("s2", None) for f in (*da.findings, *da.window_findings))
    # the same decision from the stored metrics, by assess, as one family
    cfg = t.config
    base = t.get_baseline()
    names = [m for m in cfg.metrics_to_track if m in last.metrics]
    prev = {r.segment: r.metrics for r in t.store.records("m") if r.batch_id == "b1"}
    now = {r.segment: r.metrics for r in t.store.records("m") if r.batch_id == "b2"}
    ref = assess(last.metrics, base, cfg.detection, model="m", timestamp=last.timestamp,
                 performance_score=last.performance_score, metrics=names,
                 window_entries=[prev[None], now[None]],
                 segments=[(s, last.segment_metrics[s], base, [prev[s], now[s]]) for s in ("s0", "s1", "s2", "s3")])
    key = lambda f: (f.segment or "", f.scope, f.metric)  # noqa: E731
    got = sorted((*da.findings, *da.window_findings), key=key)
    want = sorted((*ref.findings, *ref.window_findings), key=key)
    assert [key(f) for f in got] == [key(f) for f in want]
    np.testing.assert_allclose([f.adjusted_p_value for f in got], [f.adjusted_p_value for f in want], rtol=1e-9)
    assert [f.degraded for f in got] == [f.degraded for f in want]
    assert sorted((a.segment or "", a.metric or "", a.alert_type) for a in last.alerts) == \
        sorted((a.segment or "", a.metric or "", a.alert_type) for a in ref.alerts)
    # one family: the segments' p-values are adjusted with the whole call's, not alone
    alone = assess(last.segment_metrics["s2"], base, cfg.detection, model="m", timestamp=last.timestamp,
                   metrics=names, window_entries=[prev["s2"], now["s2"]])
    a2 = {f.metric: f.adjusted_p_value for f in da.findings if f.segment == "s2"}
    b2 = {f.metric: f.adjusted_p_value for f in alone.findings}
    assert all(a2[m] >= b2[m] for m in b2) and any(a2[m] > 1.5 * b2[m] for m in b2)


def test_tracker_equals_replay_on_a_segmented_history(tmp_path):
    rng = np.random.default_rng(5)
    t = _tracker(tmp_path)
    t.set_baseline(*_binary(rng, 20_000, 0.9))
    results = _history(t, rng, 6, bad_segment=1, bad_from=3)
    tracked = sorted((a.batch_id, a.segment or "", a.metric or "", a.alert_type)
                     for r in results for a in r.alerts)
    assert any(x[1] == "s1" for x in tracked)
    out = replay(t.store.records("m"), t.get_baseline(), t.config.detection,
                 metrics=[m for m in t.config.metrics_to_track if m in results[0].metrics],
                 cooldown_hours=t.config.alert_cooldown_hours)
    txt = lambda x: x if isinstance(x, str) else ""  # noqa: E731
    replayed = sorted((b, txt(s), txt(m), a) for b, s, m, a in
                      zip(out["batch_id"], out["segment"], out["metric"], out["alert_type"], strict=True))
    assert replayed == tracked


def test_a_segment_with_its_own_baseline_uses_it_the_others_the_models(tmp_path):
    rng = np.random.default_rng(6)
    t = _tracker(tmp_path)
    t.set_baseline(*_binary(rng, 5000, 0.9))
    t.set_baseline(*_binary(rng, 5000, 0.7), segment="s3")
    last = _history(t, rng, 1)[-1]
    by = {f.segment: f for f in last.degradation_analysis.findings if f.metric == "accuracy"}
    model_base = t.get_baseline()["accuracy"].value
    own = t.get_baseline(segment="s3")["accuracy"].value
    assert by[None].baseline == pytest.approx(model_base)
    assert by["s0"].baseline == pytest.approx(model_base)
    assert by["s3"].baseline == pytest.approx(own)
    assert abs(own - model_base) > 0.1


def test_first_batches_become_the_models_baseline_for_every_segment(tmp_path):
    rng = np.random.default_rng(7)
    t = _tracker(tmp_path, baseline_batches=2)
    res = _history(t, rng, 3, k=2)
    assert res[0].degradation_analysis.findings == ()
    assert res[1].degradation_analysis.findings == ()  # this call completes the baseline
    assert {f.segment for f in res[2].degradation_analysis.findings} == {None, "s0", "s1"}
    assert t.store.get_baseline("m", segment="s0").segment is None  # the model's, no own one
    assert t.store.get_baseline("m", segment=None) is not None
