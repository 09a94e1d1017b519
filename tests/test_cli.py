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
    assert main(["alerts", "list", "--config", "perfkit.yaml", "--days", "60"]) == 0
    assert "performance_degradation" in capsys.readouterr().out
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
