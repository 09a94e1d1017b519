"""Messy real-world inputs at the public entry points, as a demanding data scientist feeds them.

Every case either gives the right value (compared with scikit-learn) or a ``PerfkitError``
subclass naming the parameter - and a failed call leaves the real SQLite store exactly as it
was (every table's row count compared before / after).
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from perfkit import (
    ModelPerformanceTracker,
    PerfkitError,
    compute_metrics,
    compute_state,
    load_config,
)
from perfkit.analysis import replay
from perfkit.cli import main as cli_main
from perfkit.exceptions import (
    ConfigError,
    InputTypeError,
    LabelError,
    ModelIdentityError,
    NonFiniteError,
    StateError,
    ValidationError,
)
from perfkit.metrics import evaluate
from perfkit.metrics.estimate import calibrate, estimate
from perfkit.widgets.explorer import explore_thresholds

T0 = datetime(2026, 5, 4, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PERFKIT_CONFIG", raising=False)
    monkeypatch.delenv("PERFKIT_STORE_URL", raising=False)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "perf.db"


@pytest.fixture
def tracker(db):
    t = ModelPerformanceTracker(store=db, model="churn")
    yield t
    t.close()


def rows(db: Path) -> dict[str, int]:
    """Row count of every table of the SQLite file (the store is written by another connection)."""
    con = sqlite3.connect(db)
    try:
        names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


def binary_batch(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.2, n), 0, 1)
    return y, (p >= 0.5).astype(int), p


def refused(db: Path, exc: type[PerfkitError], parameter: str | None, fn, *args, **kwargs) -> PerfkitError:
    """``fn`` raises ``exc`` naming ``parameter`` and the store is untouched."""
    before = rows(db)
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    if parameter is not None:
        assert getattr(info.value, "parameter", None) == parameter, info.value
    assert rows(db) == before
    return info.value


# --------------------------------------------------------------------------------------------
# Integer labels at the edges of their dtype
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [
    np.array([2**63 + 5, 2**63 + 6, 2**63 + 5, 2**63 + 6], dtype=np.uint64),  # above int64: used to wrap
    np.array([0, 2**64 - 1, 0, 2**64 - 1], dtype=np.uint64),
    np.array([-(2**63), 2**63 - 1, 5, 5], dtype=np.int64),  # range overflows int64: used to crash the process
])
def test_extreme_integer_labels_keep_their_values(labels):
    pred = labels[[0, 1, 1, 3]]
    state = compute_state(labels, pred)
    assert state.classes == tuple(sorted({int(v) for v in labels}))
    report = compute_metrics(labels, pred)
    as_text = [str(v) for v in labels.tolist()], [str(v) for v in pred.tolist()]  # scikit-learn: floats above 2**63
    assert report["accuracy"].value == pytest.approx(skm.accuracy_score(*as_text))
    assert report["f1_macro"].value == pytest.approx(skm.f1_score(*as_text, average="macro"))


def test_extreme_uint64_labels_tracked_with_their_values(tracker, db):
    labels = np.array([2**63 + 5, 2**63 + 6] * 50, dtype=np.uint64)
    tracker.track_performance(labels, labels[::-1].copy(), timestamp=T0)
    (record,) = tracker.store.records("churn")
    assert record.state["classes"] == [2**63 + 5, 2**63 + 6]


# --------------------------------------------------------------------------------------------
# Read methods and exports: bad arguments are named, nothing half-written is left behind
# --------------------------------------------------------------------------------------------
@pytest.fixture
def history(tracker):
    for i in range(4):
        y, yhat, p = binary_batch(seed=i)
        tracker.track_performance(y, yhat, p, timestamp=T0 + timedelta(days=i))
    return tracker


@pytest.mark.parametrize("method", ["get_history", "window_metrics", "get_performance_summary", "alerts",
                                    "get_baseline", "generate_performance_report"])
def test_blank_model_name_is_refused_not_read_as_the_default(history, db, method):
    # "" used to fall back to the tracker's own model silently (``model or self.model``)
    kwargs = {"end": T0 + timedelta(days=5)} if method in ("get_history", "window_metrics",
                                                          "get_performance_summary") else {}
    refused(db, ValidationError, "model", getattr(history, method), model="", **kwargs)
    refused(db, ValidationError, "model", getattr(history, method), model="   ", **kwargs)


@pytest.mark.parametrize("n_batches", ["2", 1.5, True, -1])
def test_set_baseline_n_batches_must_be_a_whole_number(history, db, n_batches):
    err = refused(db, ValidationError, "n_batches", history.set_baseline, from_history=True, n_batches=n_batches)
    assert repr(n_batches) in str(err)


def test_set_baseline_n_batches_numpy_integer_is_fine(history, db):
    assert history.set_baseline(from_history=True, n_batches=np.int64(2)) >= 1
    assert history.get_baseline().n == 400


def test_export_history_to_a_directory_is_refused_and_leaves_no_temporary_file(history, db, tmp_path):
    target = tmp_path / "exports"
    target.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    refused(db, ValidationError, "path", history.export_history, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no exports.tmp


def test_export_history_under_a_file_is_refused(history, db, tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    refused(db, ValidationError, "path", history.export_history, tmp_path / "plain.txt" / "h.jsonl")


def test_export_history_path_of_the_wrong_type(history, db):
    refused(db, InputTypeError, "path", history.export_history, 5)


def test_export_history_still_writes_every_row(history, tmp_path):
    p = history.export_history(tmp_path / "out" / "h.jsonl")
    header, *body = (json.loads(line) for line in p.read_text().splitlines())
    assert header["counts"]["perfkit_batches"] == rows(tmp_path / "perf.db")["perfkit_batches"] == 4
    assert len(body) == sum(header["counts"].values())
    assert not (tmp_path / "out" / "h.jsonl.tmp").exists()


def test_report_to_a_directory_is_refused_and_leaves_no_temporary_file(history, db, tmp_path):
    target = tmp_path / "report_dir"
    target.mkdir()
    refused(db, ValidationError, "output_path", history.generate_performance_report, target,
            end=T0 + timedelta(days=5))
    assert list(tmp_path.glob("*.tmp")) == []


# --------------------------------------------------------------------------------------------
# Odd YAML
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["[]", "false", "0", "''"])
@pytest.mark.parametrize("key", ["degradation_thresholds", "severity_bands", "email", "performance_storage"])
def test_config_mapping_of_the_wrong_type_is_an_error_not_the_defaults(tmp_path, key, value):
    # ``degradation_thresholds: []`` used to load as "no thresholds": alerting silently off
    p = tmp_path / "c.yaml"
    p.write_text(f"model_performance:\n  {key}: {value}\n")
    with pytest.raises(ConfigError, match=rf"model_performance\.{key}: must be a mapping"):
        load_config(p)


def test_config_null_thresholds_still_mean_none(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model_performance:\n  degradation_thresholds:\n")
    assert dict(load_config(p).detection.thresholds) == {}


@pytest.mark.parametrize("text, key", [
    ("alert_cooldown_hours: -1", "alert_cooldown_hours"),
    ("degradation_thresholds: {accuracy_drop: -0.05}", "degradation_thresholds.accuracy_drop"),
    ("alert_cooldown_hours: 'three'", "alert_cooldown_hours"),
    ("baseline_batches: " + "9" * 400, "baseline_batches"),  # used to raise a raw OverflowError
    ("alert_cooldwn_hours: 3", "alert_cooldwn_hours"),
])
def test_config_bad_values_name_the_key(tmp_path, text, key):
    p = tmp_path / "c.yaml"
    p.write_text(f"model_performance:\n  {text}\n")
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(p)


def test_config_file_not_utf8_is_a_config_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"model_performance:\n  model_name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)


def test_config_path_that_is_a_directory_or_no_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)
    with pytest.raises(InputTypeError) as info:
        load_config(5)
    assert info.value.parameter == "path"


# --------------------------------------------------------------------------------------------
# The command line on messy files: a file is tracked whole or not at all
# --------------------------------------------------------------------------------------------
def _csv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "preds.csv"
    p.write_text(text)
    return p


def _cli_track(csv: Path, db: Path, *extra: str) -> int:
    return cli_main(["track", str(csv), "--store", str(db), "--model", "churn", "--y-pred", "y_pred", *extra])


GOOD_THEN_BAD = """batch,y_true,y_pred,p1,ts
b1,0,0,0.2,2026-05-04T00:00:00Z
b1,1,1,0.9,2026-05-04T00:00:00Z
b1,1,0,0.4,2026-05-04T00:00:00Z
b2,1,1,0.8,2026-05-05T00:00:00Z
b2,{label},1,{score},{ts}
b2,0,0,0.1,2026-05-05T00:00:00Z
"""


@pytest.mark.parametrize("label, score, ts, problem", [
    ("", "0.7", "2026-05-05T00:00:00Z", "y_true contains 1 NaN"),  # a missing label in the 2nd batch
    ("1", "1.7", "2026-05-05T00:00:00Z", "y_pred_proba must lie in [0, 1]"),
    ("1", "", "2026-05-05T00:00:00Z", "y_pred_proba contains 1 NaN"),
    ("1", "0.7", "yesterday", "column 'ts' has 1 value(s) that are not times"),  # used to be dropped silently
])
def test_cli_track_bad_row_in_a_later_batch_writes_nothing(tmp_path, db, capsys, label, score, ts, problem):
    csv = _csv(tmp_path, GOOD_THEN_BAD.format(label=label, score=score, ts=ts))
    ModelPerformanceTracker(store=db).close()  # the store file exists, with its schema
    before = rows(db)
    capsys.readouterr()
    code = _cli_track(csv, db, "--proba", "p1", "--batch-col", "batch", "--timestamp-col", "ts")
    err = capsys.readouterr().err
    assert code == 2
    assert problem in err and "nothing was tracked" in err
    assert rows(db) == before  # batch b1 used to be written before b2 failed


def test_cli_track_good_file_still_tracks_every_batch(tmp_path, db):
    csv = _csv(tmp_path, GOOD_THEN_BAD.format(label="1", score="0.7", ts="2026-05-05T00:00:00Z"))
    assert _cli_track(csv, db, "--proba", "p1", "--batch-col", "batch", "--timestamp-col", "ts") == 0
    with ModelPerformanceTracker(store=db, model="churn") as t:
        h = t.get_history(end=T0 + timedelta(days=2))
        assert [r.sample_count for r in t.store.records("churn")] == [3, 3]
    assert list(h["batch_id"]) == ["b1", "b2"]
    assert h["accuracy"].tolist() == pytest.approx([2 / 3, 1.0])


def test_cli_track_store_under_a_plain_file_is_a_usage_error(tmp_path, capsys):
    csv = _csv(tmp_path, GOOD_THEN_BAD.format(label="1", score="0.7", ts="2026-05-05T00:00:00Z"))
    assert _cli_track(csv, csv / "perf.db") == 2  # was exit 1, "internal error: FileExistsError"
    assert "cannot create the directory of store" in capsys.readouterr().err


def test_cli_report_output_directory_is_a_usage_error(tmp_path, db, capsys):
    csv = _csv(tmp_path, GOOD_THEN_BAD.format(label="1", score="0.7", ts="2026-05-05T00:00:00Z"))
    assert _cli_track(csv, db, "--proba", "p1") == 0
    out = tmp_path / "out"
    out.mkdir()
    assert cli_main(["report", "--store", str(db), "--output", str(out)]) == 2  # was exit 1, IsADirectoryError
    assert "is a directory" in capsys.readouterr().err
    assert list(tmp_path.glob("*.tmp")) == []


@pytest.mark.parametrize("content", [b"model_performance:\n  model_name: \xff\n", None])
def test_cli_unreadable_config_is_a_usage_error(tmp_path, db, capsys, content):
    csv = _csv(tmp_path, GOOD_THEN_BAD.format(label="1", score="0.7", ts="2026-05-05T00:00:00Z"))
    cfg = tmp_path / "cfg"
    if content is None:
        cfg.mkdir()  # a directory
    else:
        cfg.write_bytes(content)
    assert _cli_track(csv, db, "--config", str(cfg)) == 2  # was exit 1 (UnicodeDecodeError / IsADirectoryError)
    assert not db.exists()


# --------------------------------------------------------------------------------------------
# Metrics functions: odd argument types are named errors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["0.9", None, True, float("nan"), 1.5])
def test_level_that_is_not_a_number_in_0_1(level):
    base = compute_state([0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.8, 0.4, 0.3])
    for fn in (lambda: compute_metrics([0, 1, 1, 0], [0, 1, 0, 0], level=level),
               lambda: evaluate(base, level=level),
               lambda: estimate(compute_state(None, [0, 1], [0.3, 0.6]), base, level=level)):
        with pytest.raises(ValidationError) as info:  # "x" used to raise a raw TypeError ('<' between float and str)
            fn()
        assert info.value.parameter == "level"


def test_level_numpy_float_is_fine():
    assert compute_metrics([0, 1, 1, 0], [0, 1, 0, 0], level=np.float32(0.9))["accuracy"].level == pytest.approx(0.9)


def test_evaluate_without_a_state_is_a_state_error():
    with pytest.raises(StateError, match="evaluate needs a state"):  # was AttributeError: 'NoneType' ... 'task'
        evaluate(None)
    with pytest.raises(StateError):
        evaluate([0, 1])


@pytest.mark.parametrize("value", [-1, "3", float("inf"), True])
def test_calibrate_min_end_rows(value):
    base = compute_state([0, 0, 1, 1], [0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9])
    with pytest.raises(ValidationError) as info:
        calibrate(base, min_end_rows=value)
    assert info.value.parameter == "min_end_rows"


@pytest.mark.parametrize("y_true", [(i % 2 for i in range(4)), {0, 1, 2, 3}, {"a": 1}])
def test_y_true_that_is_no_array(y_true):
    with pytest.raises(InputTypeError, match="y_true must be an array-like") as info:  # was "got shape ()"
        compute_metrics(y_true, [0, 1, 0, 1])
    assert info.value.parameter == "y_true"


def test_nullable_float_scores_with_a_missing_value_are_reported_as_missing(tracker, db):
    proba = pd.DataFrame({0: pd.array([0.5, None, 0.3], dtype="Float64"), 1: pd.array([0.5, 0.5, 0.7], dtype="Float64")})
    err = refused(db, NonFiniteError, "y_pred_proba", tracker.track_performance, [0, 1, 1], [0, 1, 1], proba,
                  timestamp=T0)
    assert "1 NaN" in str(err)  # was InputTypeError "must be numeric, got dtype object"
    err = refused(db, NonFiniteError, "y_pred_proba", tracker.track_performance, [0, 1, 1], [0, 1, 1],
                  pd.Series([0.5, pd.NA, 0.7], dtype="Float64"), timestamp=T0)


def test_nullable_float_scores_without_missing_values_match_sklearn():
    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0.2, 0.9, 0.6, 0.4, 0.3, 0.1])
    proba = pd.DataFrame({1: pd.array(p, dtype="Float64"), 0: pd.array(1 - p, dtype="Float64")})  # other order
    r = compute_metrics(pd.Series(y, dtype="Int64"), pd.Series((p >= 0.5).astype(int), dtype="Int64"), proba)
    assert r["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, p))
    assert r["log_loss"].value == pytest.approx(skm.log_loss(y, p))


# --------------------------------------------------------------------------------------------
# The explorer
# --------------------------------------------------------------------------------------------
def test_explore_thresholds_metrics_as_one_string(history, db):
    history.set_baseline(from_history=True, n_batches=2)
    err = refused(db, InputTypeError, "metrics", explore_thresholds, history, metrics="accuracy")
    assert "'accuracy'" in str(err)  # was "none of the metrics ['a', 'c', 'c', 'u', ...]"
    assert list(explore_thresholds(history, metrics=["accuracy"]).columns)


def test_explore_thresholds_baseline_of_plain_numbers(history, db):
    history.set_baseline(from_history=True, n_batches=2)
    # {"accuracy": 0.9} used to raise a raw TypeError "'float' object is not a mapping"
    refused(db, InputTypeError, "baseline", explore_thresholds, history, baseline={"accuracy": 0.9})


# --------------------------------------------------------------------------------------------
# Model identity messages
# --------------------------------------------------------------------------------------------
def test_identity_error_hints_fit_the_batch(tracker, db):
    y, yhat, p = binary_batch()
    tracker.track_performance(y, yhat, p, timestamp=T0)
    err = refused(db, ModelIdentityError, "y_true", tracker.track_performance, np.linspace(0, 1, 50),
                  np.linspace(0.1, 0.9, 50), timestamp=T0)
    assert "regression batch" in str(err) and "third class" not in str(err)
    # declared: its state is computed while the identity is read, and refused the same way
    err = refused(db, ModelIdentityError, "y_true", tracker.track_performance, np.linspace(0, 1, 50),
                  np.linspace(0.1, 0.9, 50), timestamp=T0, task="regression")
    assert "regression batch" in str(err) and "binary model" in str(err)
    err = refused(db, ModelIdentityError, "y_true", tracker.track_performance, y, yhat, p, positive_label=0,
                  timestamp=T0)
    assert "positive label is 1" in str(err) and "third class" not in str(err)
    err = refused(db, ModelIdentityError, "y_true", tracker.track_performance, np.r_[y[:-1], 2],
                  np.r_[yhat[:-1], 2], timestamp=T0)
    assert "third class" in str(err)


# --------------------------------------------------------------------------------------------
# replay: the boundary of the what-if analysis
# --------------------------------------------------------------------------------------------
@pytest.fixture
def replay_inputs(history):
    history.set_baseline(from_history=True, n_batches=2)
    return history.get_history(end=T0 + timedelta(days=5)), history.get_baseline(), history.config.detection


@pytest.mark.parametrize("change, exc, parameter", [
    ({"history": None}, InputTypeError, "history"),
    ({"history": [{"timestamp": T0}]}, InputTypeError, "history"),
    ({"history": pd.DataFrame()}, ValidationError, "history"),  # raw KeyError 'timestamp' before
    ({"baseline": None}, InputTypeError, "baseline"),
    ({"baseline": {"accuracy": 0.9}}, InputTypeError, "baseline"),
    ({"settings": {"thresholds": {"accuracy": 0.05}}}, InputTypeError, "settings"),
    ({"metrics": "accuracy"}, InputTypeError, "metrics"),
    ({"metrics": ["acuracy"]}, ValidationError, "metrics"),  # silently no alerts before
    ({"cooldown_hours": -1}, ValidationError, "cooldown_hours"),  # accepted before
    ({"cooldown_hours": "24"}, ValidationError, "cooldown_hours"),
])
def test_replay_refuses_bad_arguments_by_name(replay_inputs, db, change, exc, parameter):
    h, b, s = replay_inputs
    args = {"history": h, "baseline": b, "settings": s, **change}
    refused(db, exc, parameter, replay, args.pop("history"), args.pop("baseline"), args.pop("settings"), **args)


def test_replay_of_good_arguments_still_runs(replay_inputs):
    h, b, s = replay_inputs
    out = replay(h, b, s, metrics=["accuracy", "roc_auc"], cooldown_hours=np.float64(12))
    assert list(out.columns[:4]) == ["timestamp", "batch_id", "segment", "metric"]
    assert replay(h.iloc[:0], b, s).empty


# --------------------------------------------------------------------------------------------
# What already held: messy batches into track_performance - refused by name, nothing written
# --------------------------------------------------------------------------------------------
Y, YHAT, P = binary_batch(50)

MESSY_BATCHES = {
    "Int64 label with pd.NA": (dict(y_true=pd.Series(Y, dtype="Int64").mask(pd.Series(range(50)) == 3),
                                    y_pred=YHAT), NonFiniteError, "y_true"),
    "boolean label with pd.NA": (dict(y_true=pd.Series(Y.astype(bool), dtype="boolean").mask(pd.Series(range(50)) == 0),
                                      y_pred=YHAT.astype(bool)), NonFiniteError, "y_true"),
    "string label with None": (dict(y_true=pd.Series(np.where(Y == 1, "yes", "no"), dtype="string").mask(
        pd.Series(range(50)) == 7), y_pred=np.where(YHAT == 1, "yes", "no")), NonFiniteError, "y_true"),
    "category label with NaN": (dict(y_true=pd.Series(np.where(Y == 1, "yes", None), dtype="category"),
                                     y_pred=np.where(YHAT == 1, "yes", "no")), NonFiniteError, "y_true"),
    "None in a list of predictions": (dict(y_true=Y.tolist(), y_pred=[None, *YHAT[1:].tolist()]),
                                      NonFiniteError, "y_pred"),
    "scores not summing to 1": (dict(y_true=Y, y_pred=YHAT, y_pred_proba=np.c_[P, P]), Exception, "y_pred_proba"),
    "scores above 1": (dict(y_true=Y, y_pred=YHAT, y_pred_proba=P * 1.5), Exception, "y_pred_proba"),
    "negative scores": (dict(y_true=Y, y_pred=YHAT, y_pred_proba=P - 0.5), Exception, "y_pred_proba"),
    "2-D y_true": (dict(y_true=np.c_[Y, Y], y_pred=YHAT), ValidationError, "y_true"),
    "mismatched lengths": (dict(y_true=Y, y_pred=YHAT[:-1]), ValidationError, "y_pred"),
    "scores of another length": (dict(y_true=Y, y_pred=YHAT, y_pred_proba=P[:-1]), ValidationError, "y_pred_proba"),
    "empty batch": (dict(y_true=[], y_pred=[]), ValidationError, "y_true"),
    "misaligned pandas indexes": (dict(y_true=pd.Series(Y), y_pred=pd.Series(YHAT, index=range(1, 51))),
                                  ValidationError, "y_pred"),
    "string scores": (dict(y_true=Y, y_pred=YHAT, y_pred_proba=P.astype(str)), InputTypeError, "y_pred_proba"),
    "naive timestamp": (dict(y_true=Y, y_pred=YHAT, timestamp=datetime(2026, 5, 4)), ValidationError, "timestamp"),
    "naive ISO string": (dict(y_true=Y, y_pred=YHAT, timestamp="2026-05-04 01:00"), ValidationError, "timestamp"),
    "unix seconds": (dict(y_true=Y, y_pred=YHAT, timestamp=1714780800), InputTypeError, "timestamp"),
    "NaT": (dict(y_true=Y, y_pred=YHAT, timestamp=pd.NaT), ValidationError, "timestamp"),
    "model name of 300 characters": (dict(y_true=Y, y_pred=YHAT, model="m" * 300), ValidationError, "model"),
    "model name with NUL": (dict(y_true=Y, y_pred=YHAT, model="a\x00b"), ValidationError, "model"),
    "model name with a lone surrogate": (dict(y_true=Y, y_pred=YHAT, model="a\ud800"), ValidationError, "model"),
    "NaN in metadata": (dict(y_true=Y, y_pred=YHAT, metadata={"x": float("nan")}), ValidationError, "metadata"),
    "segments with a missing label": (dict(y_true=Y, y_pred=YHAT, segments=["eu"] * 49 + [None]),
                                      ValidationError, "segments"),
    "segments of another length": (dict(y_true=Y, y_pred=YHAT, segments=["eu"] * 10), ValidationError, "segments"),
    "unknown task": (dict(y_true=Y, y_pred=YHAT, task="bin"), ValidationError, "task"),
    "positive label not a class": (dict(y_true=Y, y_pred=YHAT, positive_label=5), ValidationError, "positive_label"),
}


@pytest.mark.parametrize("name", list(MESSY_BATCHES))
def test_messy_batch_is_refused_by_name_and_writes_nothing(tracker, db, name):
    y, yhat, p = binary_batch(seed=9)
    tracker.track_performance(y, yhat, p, timestamp=T0)  # a model with history: the refusal must not touch it
    kwargs, exc, parameter = MESSY_BATCHES[name]
    kwargs = {"timestamp": T0 + timedelta(hours=1), **kwargs}
    err = refused(db, exc, parameter, tracker.track_performance, **kwargs)
    assert isinstance(err, PerfkitError)
    assert parameter in str(err) or parameter.split("_")[0] in str(err)


@pytest.mark.parametrize("kind", ["Int64", "boolean", "string", "category", "string[pyarrow]", "int8", "uint64"])
def test_label_dtypes_give_scikit_learn_values(tracker, kind):
    if kind == "string[pyarrow]":
        pytest.importorskip("pyarrow")
    y, yhat, p = binary_batch(seed=3)
    if kind in ("boolean",):
        yt, yp = pd.Series(y.astype(bool), dtype=kind), pd.Series(yhat.astype(bool), dtype=kind)
    elif kind.startswith("string") or kind == "category":
        yt = pd.Series(np.where(y == 1, "yes", "no"), dtype=kind)
        yp = pd.Series(np.where(yhat == 1, "yes", "no"), dtype=kind)
    elif kind in ("int8", "uint64"):
        yt, yp = y.astype(kind), yhat.astype(kind)
    else:
        yt, yp = pd.Series(y, dtype=kind), pd.Series(yhat, dtype=kind)
    result = tracker.track_performance(yt, yp, p, timestamp=T0, model=f"m-{kind}")
    pos = {"boolean": True}.get(kind, "yes" if kind.startswith("string") or kind == "category" else 1)
    yt_l, yp_l = list(np.asarray(yt, dtype=object)), list(np.asarray(yp, dtype=object))
    assert result.metrics["accuracy"].value == pytest.approx(skm.accuracy_score(yt_l, yp_l))
    assert result.metrics["f1"].value == pytest.approx(skm.f1_score(yt_l, yp_l, pos_label=pos))
    assert result.metrics["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, p))  # p: the score of the 2nd sorted class (1 / "yes")


def test_scores_as_a_frame_with_class_columns_in_another_order(tracker):
    rng = np.random.default_rng(4)
    classes = ["cat", "dog", "eel"]
    proba = rng.dirichlet(np.ones(3), 300)
    y = np.array(classes)[rng.integers(0, 3, 300)]
    frame = pd.DataFrame(proba, columns=classes)[["eel", "cat", "dog"]]
    result = tracker.track_performance(y, np.array(classes)[proba.argmax(1)], frame, timestamp=T0)
    assert result.metrics["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert result.metrics["log_loss"].value == pytest.approx(skm.log_loss(y, proba))


def test_class_missing_from_a_batch_and_a_new_class(tracker, db):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    tracker.track_performance(y, y, timestamp=T0)
    missing = tracker.track_performance(np.where(y == 2, 0, y), y, timestamp=T0 + timedelta(hours=1))
    assert missing.metrics["accuracy"].value == pytest.approx(skm.accuracy_score(np.where(y == 2, 0, y), y))
    grown = tracker.track_performance(np.r_[y, 3], np.r_[y, 3], timestamp=T0 + timedelta(hours=2))
    assert grown.metrics["accuracy"].value == 1.0
    assert [r.state["classes"] for r in tracker.store.records("churn")] == [[0, 1, 2], [0, 1, 2], [0, 1, 2, 3]]


def test_string_labels_after_integer_labels_are_refused(tracker, db):
    y, yhat, p = binary_batch()
    tracker.track_performance(y, yhat, p, timestamp=T0)
    refused(db, ModelIdentityError, "y_true", tracker.track_performance, np.where(y == 1, "1", "0"),
            np.where(yhat == 1, "1", "0"), p, timestamp=T0)


def test_single_class_batch_auc_is_nan_with_a_reason(tracker):
    result = tracker.track_performance([1, 1, 1, 1], [1, 0, 1, 1], [0.9, 0.2, 0.8, 0.7], timestamp=T0)
    auc = result.metrics["roc_auc"]
    assert np.isnan(auc.value) and auc.reason == "single_class_in_y_true"
    assert result.metrics["accuracy"].value == 0.75


def test_one_row_batch(tracker):
    result = tracker.track_performance([1], [1], [0.7], timestamp=T0)
    assert result.metrics["accuracy"].value == 1.0
    assert result.metrics["log_loss"].value == pytest.approx(skm.log_loss([1], [0.7], labels=[0, 1]))


def test_regression_extremes(tracker):
    huge = compute_metrics([1e308, -1e308, 1.5], [1e308, 1e308, 0.5])
    assert np.isnan(huge["mse"].value) and huge["mse"].reason == "overflow"  # not inf, not a silent 0
    zeros = compute_metrics([-0.0, 0.0, 1.5], [0.0, -0.0, 1.5])
    assert zeros["mse"].value == 0.0 and zeros["r2"].value == 1.0
    assert zeros["mape"].reason == "zero_targets_skipped:2"
    f16 = compute_metrics(np.array([1.5, 2.5, 3.25], np.float16), np.array([1.0, 2.0, 3.5], np.float16))
    assert f16["mae"].value == pytest.approx(skm.mean_absolute_error([1.5, 2.5, 3.25], [1.0, 2.0, 3.5]))
    assert f16["r2"].value == pytest.approx(skm.r2_score([1.5, 2.5, 3.25], [1.0, 2.0, 3.5]))


def test_timestamps_with_an_offset_and_unicode_names_round_trip(tracker):
    y, yhat, p = binary_batch()
    name = "模型-🚀-é" * 20  # 160 characters
    tracker.track_performance(y, yhat, p, model=name, timestamp="2026-05-04T02:00:00+02:00")
    tracker.track_performance(y, yhat, p, model=name, timestamp=pd.Timestamp("2026-05-04 03:00", tz="Europe/Berlin"))
    assert [r.timestamp for r in tracker.store.records(name)] == [T0, T0 + timedelta(hours=1)]


@pytest.mark.parametrize("missing", [float("nan"), None, pd.NA, np.float32("nan")])
def test_classes_with_a_missing_value(tracker, db, missing):
    # NaN used to become a class of its own; None failed as "labels of mixed types" of y_true
    refused(db, LabelError, "classes", tracker.track_performance, [0, 1, 1], [0, 1, 0], classes=[0, 1, missing],
            timestamp=T0)


def test_score_frame_with_duplicate_columns(tracker, db):
    frame = pd.DataFrame([[0.5, 0.5], [0.4, 0.6], [0.3, 0.7]], columns=[0, 0])
    err = refused(db, LabelError, "y_pred_proba", tracker.track_performance, [0, 1, 1], [0, 1, 1], frame,
                  timestamp=T0)
    assert "duplicate column" in str(err)  # was "classification needs at least two classes, got [0]"


def test_single_class_batch_of_a_new_model_says_how_to_fix_it(tracker, db):
    err = refused(db, LabelError, "classes", tracker.track_performance, [5] * 10, [5] * 10, timestamp=T0)
    assert "classes=[...]" in str(err)
    result = tracker.track_performance([5] * 10, [5] * 9 + [7], classes=[5, 7], timestamp=T0)
    assert result.metrics["accuracy"].value == pytest.approx(0.9)
