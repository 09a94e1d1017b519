"""The ``perfkit`` command line: main(argv) in-process, plus one real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from perfkit.cli import EXIT_CODES, main
from perfkit.store import Store


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A working directory with a config whose files all live in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PERFKIT_CONFIG", raising=False)
    monkeypatch.delenv("PERFKIT_STORE_URL", raising=False)
    cfg = {"model_performance": {
        "alert_channels": ["file"],
        "metrics_to_track": ["accuracy", "f1_macro", "roc_auc"],
        "performance_storage": {"store_url": f"sqlite:///{tmp_path / 'perf.db'}",
                                "alerts_file": str(tmp_path / "alerts.jsonl"),
                                "reports_dir": str(tmp_path / "reports")},
    }}
    (tmp_path / "perfkit.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _predictions(path: Path, n_batches: int = 24, rows: int = 120, degrade_from: int = 16) -> Path:
    rng = np.random.default_rng(0)
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=n_batches // 2 + 1)
    frames = []
    for b in range(n_batches):
        y = rng.integers(0, 2, rows)
        noise = 0.15 if b < degrade_from else 0.45
        p = np.clip(np.where(y == 1, 0.75, 0.25) + rng.normal(0, noise, rows), 0, 1)
        frames.append(pd.DataFrame({
            "batch": f"b{b:02d}", "region": "eu" if b % 2 else "us", "label": y,
            "pred": (p >= 0.5).astype(int), "score": p,
            "ts": (start + pd.Timedelta(hours=12 * b)).tz_localize(None),  # naive: taken as UTC
        }))
    pd.concat(frames).to_csv(path, index=False)
    return path


def _track(workdir: Path, csv: Path, *extra: str) -> int:
    return main(["track", str(csv), "--config", "perfkit.yaml", "--y-true", "label", "--y-pred", "pred",
                 "--proba", "score", "--batch-col", "batch", "--segment-col", "region", "--timestamp-col", "ts",
                 "--model", "churn", *extra])


def test_help_everywhere(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and all(f"  {c} " in out for c in EXIT_CODES)
    for cmd in (["track"], ["summary"], ["report"], ["review"], ["alerts"], ["alerts", "list"],
                ["alerts", "retry"], ["demo"]):
        assert main([*cmd, "--help"]) == 0, cmd
        assert "usage: perfkit" in capsys.readouterr().out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
    assert main(["alerts"]) == 2
    assert main(["frobnicate"]) == 2


def test_track_summary_report_alerts(workdir, capsys):
    csv = _predictions(workdir / "preds.csv")
    assert _track(workdir, csv) == 0
    err = capsys.readouterr().err
    assert "tracked 24 batch(es)" in err
    with Store(workdir / "perf.db") as store:
        assert store.count("churn") == 24
        assert set(store.segments("churn")) == {"eu", "us"}
        hist = store.history("churn")
    assert hist["timestamp"].dt.tz is not None and hist["batch_id"].iloc[0] == "b00"

    assert main(["summary", "--config", "perfkit.yaml", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in doc["models"]] == ["churn"]
    assert doc["models"][0]["labelled_records"] == 24

    assert main(["summary", "--config", "perfkit.yaml", "--days", "60"]) == 0
    assert "model churn: 24 labelled batches" in capsys.readouterr().out

    assert main(["report", "--config", "perfkit.yaml", "--output", "out/report.json"]) == 0
    report = json.loads((workdir / "out" / "report.json").read_text())
    assert report["model"] == "churn" and "schema_version" in report

    assert main(["alerts", "list", "--config", "perfkit.yaml", "--days", "60", "--all", "--json"]) == 0
    alerts = json.loads(capsys.readouterr().out)["alerts"]
    assert alerts, "the degraded batches should have raised alerts"
    assert {a["model"] for a in alerts} == {"churn"}
    degradations = [a for a in alerts if a["alert_type"] == "performance_degradation"]
    assert degradations
    for a in degradations:  # each alert says how big the change is
        assert a["value"] < a["baseline"] or a["metric"] in ("log_loss",)
        assert a["relative_change"] == pytest.approx(a["value"] / a["baseline"] - 1, rel=1e-9)
    assert main(["alerts", "list", "--config", "perfkit.yaml", "--days", "60"]) == 0
    out = capsys.readouterr().out
    assert "performance_degradation" in out and " vs baseline " in out
    assert main(["alerts", "retry", "--config", "perfkit.yaml"]) == 0
    assert "retried" in capsys.readouterr().out


def test_track_multiclass_proba_list_and_store_option(workdir, capsys):
    rng = np.random.default_rng(1)
    p = rng.dirichlet([1, 1, 1], 90)
    frame = pd.DataFrame(p, columns=["p0", "p1", "p2"]).assign(y=rng.integers(0, 3, 90))
    frame.to_csv(workdir / "multi.csv", index=False)
    code = main(["track", "multi.csv", "--config", "perfkit.yaml", "--store", str(workdir / "other.db"),
                 "--y-true", "y", "--proba", "p0,p1,p2", "--model", "m3"])
    assert code == 0, capsys.readouterr().err
    with Store(workdir / "other.db") as store:
        assert store.records("m3")[0].task == "multiclass"


def test_bad_inputs_are_one_line_errors(workdir, capsys):
    assert main(["track", "missing.csv", "--config", "perfkit.yaml", "--y-pred", "x"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "perfkit: error: missing.csv: no such file"
    csv = _predictions(workdir / "preds.csv", n_batches=2)
    assert main(["track", str(csv), "--config", "perfkit.yaml", "--y-pred", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'nope'" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    (workdir / "bad.yaml").write_text("model_performance:\n  alert_cooldown_hours: -1\n")
    assert main(["summary", "--config", "bad.yaml"]) == 2
    assert "alert_cooldown_hours" in capsys.readouterr().err
    assert main(["summary", "--days", "-3"]) == 2
    assert main(["report", "--config", "perfkit.yaml"]) == 2  # no store yet: nothing created
    assert "no perfkit store at" in capsys.readouterr().err
    Store(workdir / "perf.db").close()
    assert main(["report", "--config", "perfkit.yaml"]) == 2  # empty store: no model to report
    assert "no model" in capsys.readouterr().err


def test_debug_shows_the_traceback(workdir):
    from perfkit.exceptions import ValidationError

    with pytest.raises(ValidationError):
        main(["--debug", "track", "missing.csv", "--config", "perfkit.yaml", "--y-pred", "x"])


def test_engine_track_with_duckdb(workdir, capsys):
    pytest.importorskip("duckdb")
    pytest.importorskip("pyarrow")
    csv = _predictions(workdir / "preds.csv", n_batches=4)
    pd.read_csv(csv).to_parquet(workdir / "preds.parquet")
    code = main(["track", "preds.parquet", "--engine", "duckdb", "--config", "perfkit.yaml", "--y-true", "label",
                 "--y-pred", "pred", "--proba", "score", "--batch-col", "batch", "--model", "eng"])
    assert code == 0, capsys.readouterr().err
    with Store(workdir / "perf.db") as store:
        assert store.count("eng") == 4


def test_subprocess_console_entry_point(workdir):
    proc = subprocess.run([sys.executable, "-m", "perfkit.cli", "track", "nope.parquet", "--y-pred", "x",
                           "--config", "perfkit.yaml"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "perfkit: error: nope.parquet: no such file"
    proc = subprocess.run([sys.executable, "-m", "perfkit.cli", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "exit codes:" in proc.stdout


# ------------------------------------------------------------------ issue 14: read commands, review checks
@pytest.mark.parametrize("command", [["summary"], ["report"], ["alerts", "list"], ["alerts", "retry"],
                                     ["review"]])
def test_read_commands_never_create_a_store(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "typo" / "dir" / "x.db"
    assert main([*command, "--store", str(typo)]) == 2
    err = capsys.readouterr().err
    assert f"no perfkit store at {typo}" in err and len(err.strip().splitlines()) == 1
    # the default store (no config, no --store) is not created either
    assert main(command) == 2
    assert "no perfkit store at data/performance/perfkit.db" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no directory


def test_report_is_a_light_read(workdir):
    """``perfkit report`` imports neither the tracker (alert channels, decision, delivery), nor
    Alembic (a store at the schema head opens without it), nor scipy.stats / statsmodels (about a
    second of imports, most of the command): only what the report computes."""
    assert _track(workdir, _predictions(workdir / "preds.csv")) == 0
    code = ("import gc, json, sys; from perfkit.cli import main; "
            "rc = main(['report', '--config', 'perfkit.yaml', '--output', 'r.json']); "
            "heavy = ('alembic', 'statsmodels', 'scipy.stats', 'perfkit.tracker', 'perfkit.alerts.policy'); "
            "print(json.dumps([rc, sorted(m for m in sys.modules if m.startswith(heavy)), gc.isenabled(), "
            "gc.get_freeze_count()]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rc, loaded, gc_enabled, frozen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rc == 0 and loaded == []
    assert gc_enabled and frozen == 0  # main() leaves a library caller's collector alone (run() does not)
    # the program (python -m perfkit.cli, the console script's run()) writes the same report
    proc = subprocess.run([sys.executable, "-m", "perfkit.cli", "report", "--config", "perfkit.yaml", "-o", "p.json"],
                          cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    program = json.loads((workdir / "p.json").read_text())
    assert program["windows"] == json.loads((workdir / "r.json").read_text())["windows"]
    report = json.loads((workdir / "r.json").read_text())
    assert report["model"] == "churn" and report["windows"] and report["drift"]["batches"]


def test_schema_head_is_alembic_head():
    """A store recording ``SCHEMA_HEAD`` opens without Alembic: it must be the newest migration."""
    from perfkit.store._base import SCHEMA_HEAD
    from perfkit.store._common import _migration_scripts

    assert SCHEMA_HEAD == _migration_scripts().get_current_head()


def test_review_arguments_checked_before_any_kernel(workdir, capsys):
    csv = _predictions(workdir / "preds.csv", n_batches=6)
    assert _track(workdir, csv) == 0
    capsys.readouterr()
    out = workdir / "review-out"
    cases = {
        ("--as-of", "yesterday"): "--as-of 'yesterday' is not an ISO 8601 date",
        ("--model", "nope"): "model 'nope' is not in the store",
        ("--segment", "mars"): "segment 'mars' is not in the store",
        ("--store", str(workdir / "missing.db")): "no perfkit store at",
        ("--config", "missing.yaml"): "missing.yaml",
    }
    for extra, message in cases.items():
        args = ["review", "--output-dir", str(out), *extra]
        if "--config" not in extra:
            args += ["--config", "perfkit.yaml"]
        assert main(args) == 2, extra
        err = capsys.readouterr().err
        assert message in err, (extra, err)
        assert not out.exists(), "no report (so no kernel) for a bad argument"
    (workdir / "bad.yaml").write_text("model_performance:\n  alert_cooldown_hours: -1\n")
    assert main(["review", "--config", "bad.yaml", "--output-dir", str(out)]) == 2
    assert "alert_cooldown_hours" in capsys.readouterr().err and not out.exists()


def test_baseline_is_announced(workdir, capsys):
    csv = _predictions(workdir / "preds.csv", n_batches=6)
    frame = pd.read_csv(csv)
    first = frame["batch"].isin(["b00", "b01", "b02"])
    frame[first].to_csv(workdir / "first.csv", index=False)
    frame[~first].to_csv(workdir / "rest.csv", index=False)
    args = ["--config", "perfkit.yaml", "--y-true", "label", "--y-pred", "pred", "--proba", "score",
            "--batch-col", "batch", "--timestamp-col", "ts", "--model", "churn"]
    assert main(["track", "first.csv", *args]) == 0
    assert "baseline: none yet: 2 more batches needed" in capsys.readouterr().err
    assert main(["summary", "--config", "perfkit.yaml"]) == 0
    assert "baseline: none yet: 2 more batches needed" in capsys.readouterr().out
    assert main(["track", "rest.csv", *args]) == 0  # 3 more: the first 5 became the baseline
    err = capsys.readouterr().err
    assert "baseline: first 5 batches" in err, err
    assert main(["summary", "--config", "perfkit.yaml"]) == 0
    assert "baseline: first 5 batches" in capsys.readouterr().out

    from perfkit.tracker import ModelPerformanceTracker

    with ModelPerformanceTracker(workdir / "perfkit.yaml", model="other") as tracker:
        rng = np.random.default_rng(3)
        y = rng.integers(0, 2, 200)
        tracker.set_baseline(y, y, source="validation")
        tracker.track_performance(y, y)
    assert main(["summary", "--config", "perfkit.yaml", "--model", "other"]) == 0
    assert "baseline: explicit (validation, 200 rows)" in capsys.readouterr().out


def test_urls_masked_in_messages(workdir, capsys):
    from perfkit.cli import mask_urls

    url = "postgresql+psycopg://someone:Secret-123@127.0.0.1:1/nodb"
    assert main(["summary", "--store", url, "--config", "perfkit.yaml"]) == 2
    err = capsys.readouterr().err
    assert "Secret-123" not in err and "someone:***@127.0.0.1" in err
    assert mask_urls(f"a {url} b") == "a postgresql+psycopg://someone:***@127.0.0.1:1/nodb b"


@pytest.mark.postgres
@pytest.mark.slow
def test_review_against_password_protected_postgres(postgres_password_url, tmp_path):
    """The password reaches the kernel (the review sees the model) but no output file or message."""
    import psycopg
    from sqlalchemy.engine import make_url

    from perfkit.tracker import ModelPerformanceTracker

    url = make_url(postgres_password_url)
    password = url.password
    masked = postgres_password_url.replace(f":{password}@", ":***@")
    with pytest.raises(psycopg.OperationalError):  # the role really needs its password
        psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database,
                        connect_timeout=10).close()
    rng = np.random.default_rng(5)
    start = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=6)
    with ModelPerformanceTracker(store=postgres_password_url, model="secret-model") as tracker:
        for b in range(8):
            y = rng.integers(0, 2, 150)
            p = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.2, 150), 0, 1)
            tracker.track_performance(y, (p >= 0.5).astype(int), p, timestamp=start + pd.Timedelta(hours=12 * b),
                                      batch_id=f"b{b}")
    out = tmp_path / "review"
    proc = subprocess.run([sys.executable, "-m", "perfkit.cli", "review", "--store", postgres_password_url,
                           "--output-dir", str(out), "--cell-timeout", "300"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert password not in proc.stdout + proc.stderr
    assert "without encryption" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [m["model"] for m in summary["models"]] == ["secret-model"]  # the kernel connected
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"weekly_review.ipynb", "weekly_review.html", "summary.json"}
    for path in files:
        assert password.encode() not in path.read_bytes(), path
    notebook = (out / "weekly_review.ipynb").read_text()
    assert masked in notebook  # the parameter holds the masked URL

    # a failing review (wrong password) reports no password either
    wrong = postgres_password_url.replace(password, "Wrong-" + password[::-1])
    proc = subprocess.run([sys.executable, "-m", "perfkit.cli", "review", "--store", wrong,
                           "--output-dir", str(tmp_path / "r2")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Wrong-" not in proc.stderr and password[::-1] not in proc.stderr and ":***@" in proc.stderr


def test_store_count_filters_equal_the_records(tmp_path):
    """``Store.count`` (used by the baseline announcements instead of reading every record)
    counts what ``records`` returns, for every filter combination."""
    from datetime import UTC, datetime, timedelta

    from perfkit.config import parse_config
    from perfkit.tracker import ModelPerformanceTracker

    rng = np.random.default_rng(3)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    config = parse_config({"model_name": "m", "alert_channels": []})
    with ModelPerformanceTracker(config=config, store=tmp_path / "s.db") as tracker:
        for i in range(14):
            y = rng.integers(0, 2, 60)
            segment = (None, "eu", "us")[i % 3]
            if i % 5 == 4:  # prediction only: labels pending
                tracker.track_performance(None, y, timestamp=t0 + timedelta(hours=i), segment=segment,
                                          batch_id=f"b{i}")
            else:
                tracker.track_performance(y, y ^ (rng.random(60) < 0.2), timestamp=t0 + timedelta(hours=i),
                                          segment=segment, batch_id=f"b{i}")
        store = tracker.store
        from perfkit.store import ALL_SEGMENTS

        for segment in (ALL_SEGMENTS, None, "eu", "us", "nope"):
            for start, end in ((None, None), (t0 + timedelta(hours=3), None), (None, t0 + timedelta(hours=9))):
                for pending in (True, False):
                    kw = dict(segment=segment, start=start, end=end, include_pending=pending)
                    assert store.count("m", **kw) == len(store.records("m", **kw)), kw
        assert store.count() == store.count("m") == 14


def test_a_multiclass_file_is_one_models_label_set_from_its_first_batch(workdir, capsys):
    """A new model's file whose first batches show two of its three classes: every batch is
    tracked as the model's multiclass batch (before, the first batch made the model binary and
    the batch with the third class was refused after two had been written). A binary model
    given a file with a third class is refused at the first batch: nothing is written."""
    rng = np.random.default_rng(2)
    frames = []
    for b, labels in enumerate([["a", "b"], ["a", "b"], ["a", "b", "c"]]):
        y = rng.choice(labels, 90)
        frames.append(pd.DataFrame({"batch": f"b{b}", "label": y, "pred": np.where(rng.random(90) < 0.8, y, "a")}))
    csv = workdir / "three.csv"
    pd.concat(frames).to_csv(csv, index=False)
    args = ["track", str(csv), "--config", "perfkit.yaml", "--y-true", "label", "--y-pred", "pred",
            "--batch-col", "batch"]
    assert main([*args, "--model", "triage"]) == 0
    store = Store(f"sqlite:///{workdir / 'perf.db'}")
    recs = store.records("triage")
    assert [r.task for r in recs] == ["multiclass"] * 3
    assert all(tuple(store.model_identity("triage")["classes"]) == ("a", "b", "c") for _ in recs)
    # a binary model (its identity from a two-class file) and the three-class file: refused whole
    two = workdir / "two.csv"
    pd.concat(frames[:2]).to_csv(two, index=False)
    assert main([*args[:1], str(two), *args[2:], "--model", "yesno"]) == 0
    assert store.model_identity("yesno")["task"] == "binary"
    before = store.count("yesno")
    capsys.readouterr()
    assert main([*args, "--model", "yesno"]) != 0
    assert store.count("yesno") == before
    assert "before it were tracked" not in capsys.readouterr().err
