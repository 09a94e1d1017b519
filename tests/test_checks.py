"""Boundary checks (perfkit._checks): one rule each, the same through every public entry point.

Each refused tracker call is checked against a real SQLite store: the error names the
parameter and the store holds exactly what it held before (batches, baselines, alerts and
deliveries counted table by table).
"""

from __future__ import annotations

import math
import string
import urllib.parse
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfkit import ModelPerformanceTracker
from perfkit._checks import (
    MAX_METADATA_DEPTH,
    MAX_NAME_LENGTH,
    check_days,
    check_metadata,
    check_name,
    check_timestamp,
    mask_url,
)
from perfkit._json import json_safe
from perfkit.cli import main
from perfkit.config import parse_config
from perfkit.exceptions import (
    ConfigError,
    InputTypeError,
    LabelError,
    PerfkitError,
    ShapeError,
    ValidationError,
)
from perfkit.store import BatchRecord, Store
from perfkit.store.schema import alert_deliveries, alerts, baselines, batches

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------------------------
# a real tracker on a real SQLite file, with history, a baseline and alerts
# --------------------------------------------------------------------------------------------
def _counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for name, t in (("batches", batches), ("baselines", baselines), ("alerts", alerts),
                                ("deliveries", alert_deliveries))}


@pytest.fixture
def tracker(tmp_path):
    cfg = parse_config({"alert_channels": ["file"], "metrics_to_track": ["accuracy", "f1_macro", "roc_auc"],
                        "performance_storage": {"alerts_file": str(tmp_path / "alerts.jsonl")}})
    t = ModelPerformanceTracker(store=tmp_path / "perf.db", config=cfg, model="churn")
    rng = np.random.default_rng(0)
    for i in range(7):
        y = rng.integers(0, 2, 400)
        noise = 0.1 if i < 5 else 0.45  # the last two batches degrade: alerts
        p = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, noise, 400), 0, 1)
        t.track_performance(y, (p > 0.5).astype(int), p, timestamp=NOW - timedelta(hours=7 - i),
                            batch_id=f"b{i}")
    before = _counts(t.store)
    assert before["batches"] == 7 and before["baselines"] >= 1 and before["alerts"] >= 1
    yield t
    t.close()


def _batch(**kw):
    y = np.array([0, 1, 1, 0, 1, 0])
    return {"y_true": y, "y_pred": y, "y_pred_proba": np.where(y == 1, 0.9, 0.1), **kw}


def _refused(tracker, call, error, parameter):
    before = _counts(tracker.store)
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, PerfkitError)
    assert info.value.parameter == parameter, (info.value.parameter, str(info.value))
    assert _counts(tracker.store) == before, "a refused call wrote something"
    return info.value


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
def _name_ok(value) -> bool:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(value=st.one_of(st.text(max_size=300), st.text(alphabet=" \t\n\r\x0b\x0c\u3000", max_size=5),
                       st.integers(), st.none(), st.binary(max_size=5)))
def test_name_rule_property(value):
    if _name_ok(value):
        assert check_name(value, "model") is value  # kept verbatim: nothing stripped
    else:
        with pytest.raises(ValidationError) as info:
            check_name(value, "model")
        assert info.value.parameter == "model"


def test_name_rule_optional_and_length_boundary():
    assert check_name(None, "segment", optional=True) is None
    with pytest.raises(ValidationError):
        check_name(None, "segment")
    assert check_name("x" * MAX_NAME_LENGTH, "model") == "x" * MAX_NAME_LENGTH
    with pytest.raises(ValidationError, match="at most 255"):
        check_name("x" * (MAX_NAME_LENGTH + 1), "model")
    with pytest.raises(ValidationError, match="NUL"):
        check_name("a\x00b", "model")
    with pytest.raises(ValidationError, match="Unicode"):
        check_name("a\ud800", "model")


@pytest.mark.parametrize("bad", ["", "   ", "\t\n", "x" * 256, "a\x00b", 5])
@pytest.mark.parametrize("parameter", ["model", "segment", "batch_id", "model_version"])
def test_track_refuses_bad_names_and_writes_nothing(tracker, bad, parameter):
    if parameter == "batch_id" and bad == 5:
        bad = "  "  # batch ids are str()-converted (the seed accepts ints): take a blank one
    _refused(tracker, lambda: tracker.track_performance(**_batch(**{parameter: bad})), ValidationError, parameter)


def test_whitespace_batch_id_from_metadata_is_refused(tracker):
    _refused(tracker, lambda: tracker.track_performance(**_batch(metadata={"batch_id": "   "})),
             ValidationError, "batch_id")


def test_set_baseline_refuses_bad_names_and_writes_nothing(tracker):
    y = [0, 1, 1, 0]
    _refused(tracker, lambda: tracker.set_baseline(y, y, segment="   "), ValidationError, "segment")
    _refused(tracker, lambda: tracker.set_baseline(y, y, model="m" * 256), ValidationError, "model")


def test_store_refuses_long_names_on_sqlite_too(tmp_path):
    store = Store(tmp_path / "s.db")
    with pytest.raises(ValidationError) as info:
        BatchRecord("m" * 256, NOW, "binary", {}, {}, 1)
    assert info.value.parameter == "model"
    with pytest.raises(ValidationError) as info:
        store.set_baseline("m", {}, {}, segment=" ", source="test", sample_count=1)
    assert info.value.parameter == "segment"
    assert store.count() == 0


@pytest.mark.parametrize("name", ["x" * MAX_NAME_LENGTH, "é" * MAX_NAME_LENGTH, "🙂" * MAX_NAME_LENGTH, " a b "])
def test_one_name_rule_on_every_backend(store_url, name):
    """What SQLite stores, PostgreSQL stores too (so SQLite exports import into PostgreSQL)."""
    with Store(store_url) as store:
        store.append(BatchRecord(name, NOW, "binary", {}, {}, 1, segment=name, batch_id=name,
                                 model_version=name))
        (rec,) = store.records(name, segment=name)
        assert (rec.model, rec.segment, rec.batch_id, rec.model_version) == (name, name, name, name)
        too_long = [name + "x"] if len(name) == MAX_NAME_LENGTH else []
        for bad in ["  ", "a\x00b", *too_long]:
            with pytest.raises(ValidationError) as info:
                store.append(BatchRecord(bad, NOW, "binary", {}, {}, 1))
            assert info.value.parameter == "model"
        assert store.count() == 1


def test_names_round_trip_verbatim_through_sqlite(tmp_path):
    store = Store(tmp_path / "names.db")

    @given(name=st.text(min_size=1, max_size=MAX_NAME_LENGTH).filter(_name_ok))
    @settings(max_examples=40, deadline=None)
    def round_trip(name):
        store.append(BatchRecord(name, NOW, "binary", {}, {}, 1))
        assert name in store.models()

    round_trip()
    store.append(BatchRecord("churn ", NOW, "binary", {}, {}, 1))  # not stripped: another model
    assert "churn " in store.models() and "churn" not in store.models()


# --------------------------------------------------------------------------------------------
# timestamps: naive is refused whatever the type; aware values agree whatever the type
# --------------------------------------------------------------------------------------------
_naive = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(ts=_naive, kind=st.sampled_from(["datetime", "pandas", "numpy", "iso"]))
def test_naive_times_are_refused_whatever_their_type(ts, kind):
    value = {"datetime": ts, "pandas": pd.Timestamp(ts), "numpy": np.datetime64(ts),
             "iso": ts.isoformat()}[kind]
    with pytest.raises(ValidationError, match="timezone-aware") as info:
        check_timestamp(value, "timestamp")
    assert info.value.parameter == "timestamp"


@given(ts=_naive, tz=_offsets)
def test_aware_times_agree_whatever_their_type(ts, tz):
    aware = ts.replace(tzinfo=tz)
    expected = aware.astimezone(UTC)
    for value in (aware, pd.Timestamp(aware), aware.isoformat()):
        got = check_timestamp(value, "timestamp")
        assert got == expected and got.tzinfo is UTC and type(got) is datetime


@pytest.mark.parametrize("bad", ["not a time", pd.NaT, np.datetime64("NaT"), np.datetime64("99999-01-01")])
def test_unreadable_times_are_validation_errors(bad):
    with pytest.raises(ValidationError) as info:
        check_timestamp(bad, "end")
    assert info.value.parameter == "end"


@pytest.mark.parametrize("bad", [date(2024, 1, 1), 1717243200, object()])
def test_non_times_are_type_errors(bad):
    with pytest.raises(InputTypeError) as info:
        check_timestamp(bad, "timestamp")
    assert info.value.parameter == "timestamp"


def test_none_is_now_only_when_asked():
    assert abs(check_timestamp(None, none_is_now=True) - datetime.now(UTC)) < timedelta(minutes=1)
    with pytest.raises(InputTypeError):
        check_timestamp(None)


@pytest.mark.parametrize("bad", [datetime(2024, 6, 1), np.datetime64("2024-06-01T00:00"),
                                 pd.Timestamp("2024-06-01"), "2024-06-01T00:00:00"])
def test_track_refuses_naive_times_the_same_way_and_writes_nothing(tracker, bad):
    err = _refused(tracker, lambda: tracker.track_performance(**_batch(timestamp=bad)),
                   ValidationError, "timestamp")
    assert "timezone-aware" in str(err)


def test_store_accepts_the_same_aware_representations(tmp_path):
    store = Store(tmp_path / "t.db")
    for i, ts in enumerate((NOW, pd.Timestamp(NOW), "2024-06-01T12:00:00Z")):
        assert store.append(BatchRecord("m", ts, "binary", {}, {}, 1, batch_id=f"b{i}")).timestamp == NOW
    with pytest.raises(ValidationError):
        BatchRecord("m", np.datetime64("2024-06-01T12:00"), "binary", {}, {}, 1)


# --------------------------------------------------------------------------------------------
# windows (days)
# --------------------------------------------------------------------------------------------
_BAD_DAYS = [0, -1, math.nan, math.inf, True, "7", None, 1e9]


@pytest.mark.parametrize("bad", _BAD_DAYS)
def test_days_rule(bad):
    with pytest.raises(ValidationError) as info:
        check_days(bad)
    assert info.value.parameter == "days"


def test_days_accepts_numbers_and_zero_when_asked():
    assert check_days(np.float32(1.5)) == 1.5 and check_days(np.int64(3)) == 3.0
    assert check_days(0, allow_zero=True) == 0.0


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, 1e9])
def test_every_window_entry_point_uses_the_rule(tracker, bad):
    for call in (lambda: tracker.get_history(bad), lambda: tracker.window_metrics(bad),
                 lambda: tracker.get_performance_summary(bad)):
        _refused(tracker, call, ValidationError, "days")


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True])
def test_baseline_from_history_refuses_bad_days_and_writes_nothing(tracker, bad):
    _refused(tracker, lambda: tracker.set_baseline(from_history=True, days=bad), ValidationError, "days")


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, True])
def test_retention_refuses_bad_days_and_deletes_nothing(tracker, bad):
    _refused(tracker, lambda: tracker.store.delete_older_than(bad), ValidationError, "days")


@pytest.mark.parametrize("bad", ["0", "-3", "nan", "inf", "1e9", "week"])
def test_cli_days_use_the_rule(bad, capsys):
    assert main(["summary", "--days", bad]) == 2
    assert "--days" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------
def _nested(depth: int) -> dict:
    doc: dict = {}
    cur = doc
    for _ in range(depth - 1):
        cur["a"] = {}
        cur = cur["a"]
    return doc


def test_metadata_depth_limit_is_exact():
    assert check_metadata(_nested(MAX_METADATA_DEPTH)) == _nested(MAX_METADATA_DEPTH)
    with pytest.raises(ValidationError, match="nested more than 64") as info:
        check_metadata(_nested(MAX_METADATA_DEPTH + 1))
    assert info.value.parameter == "metadata"
    with pytest.raises(ValidationError, match="nested"):  # lists count as levels too
        check_metadata({"a": _deep_list(MAX_METADATA_DEPTH)})


def _deep_list(depth: int) -> list:
    out: list = []
    for _ in range(depth):
        out = [out]
    return out


def test_metadata_is_converted_to_plain_json():
    when = datetime(2024, 1, 1, tzinfo=UTC)
    got = check_metadata({"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True), "tags": ("a", "b"),
                          "none": None, "when": when, "nested": {"l": [1, {"k": 2}]}})
    assert got == {"n": 3, "x": 0.5, "ok": True, "tags": ["a", "b"], "none": None, "when": when,
                   "nested": {"l": [1, {"k": 2}]}}
    assert type(got["n"]) is int and type(got["ok"]) is bool


@pytest.mark.parametrize(("bad", "error"), [
    ({"x": math.nan}, ValidationError), ({"x": [1, math.inf]}, ValidationError), ({"x": {1, 2}}, ValidationError),
    ({("a", "b"): 1}, ValidationError), ({1: "int key"}, ValidationError), ({"x": {None: 1}}, ValidationError),
    ({"x": object()}, ValidationError), (["a"], InputTypeError),
    ("text", InputTypeError),
])
def test_bad_metadata_is_named(bad, error):
    with pytest.raises(error) as info:
        check_metadata(bad)
    assert info.value.parameter == "metadata"


def test_cyclic_metadata_is_a_clean_error():
    doc: dict = {}
    doc["self"] = doc
    with pytest.raises(ValidationError, match="nested"):
        check_metadata(doc)


@pytest.mark.parametrize("bad", [_nested(5000), {"x": math.nan}, {"x": {1}}, {("k",): 1}])
def test_track_refuses_bad_metadata_and_writes_nothing(tracker, bad):
    _refused(tracker, lambda: tracker.track_performance(**_batch(metadata=bad)), ValidationError, "metadata")


def test_store_records_use_the_same_metadata_rule(tmp_path):
    store = Store(tmp_path / "m.db")
    with pytest.raises(ValidationError) as info:
        store.append(BatchRecord("m", NOW, "binary", {}, {}, 1, metadata=_nested(5000)))
    assert info.value.parameter == "metadata" and store.count() == 0


def test_track_stores_metadata_as_checked(tracker):
    r = tracker.track_performance(**_batch(metadata={"n": np.int64(2), "tags": ("a",)}, batch_id="meta"))
    assert tracker.store.get("churn", r.batch_id).metadata == {"n": 2, "tags": ["a"]}


# --------------------------------------------------------------------------------------------
# labels and pandas alignment, through the tracker
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("y_true", "parameter"), [
    ([{"a": 1}, {"b": 2}, {"a": 1}], "y_true"),
    (np.array([{1}, {2}, {1}], dtype=object), "y_true"),
    (np.array(["a", ["b"], "a"], dtype=object), "y_true"),
])
def test_track_refuses_non_scalar_labels_and_writes_nothing(tracker, y_true, parameter):
    err = _refused(tracker, lambda: tracker.track_performance(y_true, ["a", "b", "a"]), LabelError, parameter)
    assert isinstance(err, TypeError) and isinstance(err, ValueError)


def test_track_refuses_misaligned_series_and_writes_nothing(tracker):
    y = pd.Series([0, 1, 1, 0], index=[10, 11, 12, 13])
    p = pd.Series([0, 1, 1, 0], index=[13, 12, 11, 10])
    err = _refused(tracker, lambda: tracker.track_performance(y, p), ShapeError, "y_pred")
    assert "different indexes" in str(err) and "another order" in str(err)
    tracker.track_performance(y, p.sort_index())  # aligned: accepted


# --------------------------------------------------------------------------------------------
# URLs: passwords and webhook tokens never shown
# --------------------------------------------------------------------------------------------
_secret = st.text(alphabet=string.ascii_letters + string.digits + "!$%&()*+,;=:/@?#[]~ ", min_size=1,
                  max_size=20).map(lambda s: "Zq7" + s)


@given(pw=_secret, user=st.sampled_from(["perf", "a.b", ""]),
       driver=st.sampled_from(["postgresql", "postgresql+psycopg", "sqlite", "mysql"]),
       query=st.sampled_from(["", "?sslmode=require", "?password=Zq7x&sslmode=disable"]))
def test_store_url_password_never_shown(pw, user, driver, query):
    for raw in (urllib.parse.quote(pw, safe=""), pw):  # encoded, and as a careless user types it
        url = f"{driver}://{user}:{raw}@db.example.org:5432/perf{query}"
        shown = mask_url(url)
        assert pw not in shown and raw not in shown and "Zq7" not in shown, shown
        assert ":***@" in shown


@given(token=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=6, max_size=30)
       .map(lambda s: "Zq7" + s))
def test_webhook_url_tokens_never_shown(token):
    urls = [
        f"https://hooks.example.org/services/{token}",
        f"https://hooks.example.org:8443/x?token={token}",
        f"https://hooks.example.org:notaport/{token}",
        f"https://user:{token}@hooks.example.org/x",
        f"https://hooks.example.org/{token} with space",
        f"https://[::1/{token}",
        f"https://hooks.example.org#{token}",
        f"hooks.example.org/{token}",
        f"://hooks.example.org/{token}",
    ]
    for url in urls:
        assert "Zq7" not in mask_url(url, keep_path=False), url


def test_mask_url_keeps_what_is_safe():
    assert mask_url("postgresql+psycopg://perf:pw@db:5432/perf?sslmode=require") == \
        "postgresql+psycopg://perf:***@db:5432/perf?sslmode=require"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert mask_url("data/perf.db") == "data/perf.db"
    assert mask_url("https://hooks.example.org:8443/T/ok", keep_path=False) == "https://hooks.example.org:8443"


@pytest.mark.parametrize("url", [
    "postgresql://perf:Zq7secret@db.example.org:notaport/perf",
    "oracle://perf:Zq7secret@db.example.org/perf",
    "://perf:Zq7secret@db.example.org/perf",
])
def test_store_errors_never_show_the_password(url):
    with pytest.raises(ConfigError) as info:
        Store(url)
    assert "Zq7secret" not in str(info.value)
    assert info.value.__cause__ is None or "Zq7secret" not in str(info.value.__cause__)
    assert info.value.__suppress_context__ or info.value.__context__ is None \
        or "Zq7secret" not in str(info.value.__context__)


@pytest.mark.filterwarnings("ignore:Query string argument")  # pysqlite ignores the parameter: fine here
def test_store_repr_masks_the_password(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'x.db'}?password=Zq7secret")
    assert "Zq7secret" not in repr(store) and "Zq7secret" not in store.url


# --------------------------------------------------------------------------------------------
# JSON-safe conversion (one implementation)
# --------------------------------------------------------------------------------------------
def test_json_safe_covers_numpy_pandas_and_containers():
    got = json_safe({"nan": np.float64("nan"), "inf": math.inf, "i": np.int32(2), "b": np.bool_(False),
                     "arr": np.array([[1, 2], [3, 4]]), "set": {"b", "a"}, "t": pd.Timestamp(NOW),
                     "nat": pd.NaT, "dt64": np.datetime64("NaT"), "d": date(2024, 1, 2), 3: (1,)})
    assert got == {"nan": None, "inf": None, "i": 2, "b": False, "arr": [[1, 2], [3, 4]], "set": ["a", "b"],
                   "t": NOW.isoformat(), "nat": None, "dt64": None, "d": "2024-01-02", "3": [1]}
    import json

    json.dumps(got, allow_nan=False)  # strictly valid JSON


# --------------------------------------------------------------------------------------------
# the same rules through the CLI
# --------------------------------------------------------------------------------------------
def _cli_setup(tmp_path, section_name="model_performance"):
    import yaml

    db = tmp_path / "cli.db"
    cfg = tmp_path / "perfkit.yaml"
    cfg.write_text(yaml.safe_dump({section_name: {
        "alert_channels": ["file"], "performance_storage": {"store_url": f"sqlite:///{db}",
                                                            "alerts_file": str(tmp_path / "alerts.jsonl")}}}))
    csv = tmp_path / "batch.csv"
    pd.DataFrame({"label": [0, 1, 1, 0], "pred": [0, 1, 0, 0]}).to_csv(csv, index=False)
    return db, cfg, csv


@pytest.mark.parametrize("model", ["   ", "m" * 256])
def test_cli_track_refuses_bad_model_names_and_writes_nothing(tmp_path, capsys, model):
    db, cfg, csv = _cli_setup(tmp_path)
    assert main(["track", str(csv), "--config", str(cfg), "--y-true", "label", "--y-pred", "pred",
                 "--model", model]) == 2
    assert "model" in capsys.readouterr().err
    assert not db.exists() or Store(db, create=False).count() == 0
    assert main(["track", str(csv), "--config", str(cfg), "--y-true", "label", "--y-pred", "pred",
                 "--model", "churn"]) == 0
    assert Store(db, create=False).count("churn") == 1


def test_cli_refuses_a_misspelt_config_section(tmp_path, capsys):
    db, cfg, csv = _cli_setup(tmp_path, "model_performace")
    assert main(["track", str(csv), "--config", str(cfg), "--y-true", "label", "--y-pred", "pred"]) == 2
    err = capsys.readouterr().err
    assert "model_performace" in err and "did you mean 'model_performance'" in err
    assert not db.exists()
