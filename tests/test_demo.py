"""``perfkit demo`` smoke tests at a small size."""

from __future__ import annotations

from perfkit.cli import main
from perfkit.demo import run_demo, simulate_batches
from perfkit.store import Store


def test_simulated_history_degrades_in_two_segments():
    _, batches, validation = simulate_batches(weeks=2, rows=(300, 300), seed=3)
    assert len(batches) == 42 and {b["segment"] for b in batches} == {"eu", "us", "apac"}

    def acc(seg, first_week):
        sel = [b for i, b in enumerate(batches) if b["segment"] == seg and ((i // 3) < 7) == first_week]
        return sum((b["y_true"] == b["y_pred"]).mean() for b in sel) / len(sel)

    assert acc("eu", True) - acc("eu", False) < 0.03
    assert acc("us", True) - acc("us", False) > 0.04
    assert acc("apac", True) - acc("apac", False) > 0.03
    assert len(validation[None]["y_true"]) == 9000


def test_run_demo_small_and_rerun(tmp_path):
    first = run_demo(tmp_path, weeks=2, rows=(100, 150), report=False)
    assert first.n_batches == 42 and first.n_alerts > 0
    with Store(tmp_path / "demo.db") as store:
        assert store.count() == 42
        assert store.get_baseline("churn-classifier", segment="us").source == "validation"
    again = run_demo(tmp_path, weeks=2, rows=(100, 150), report=False)  # fresh files, no failure
    with Store(tmp_path / "demo.db") as store:
        assert store.count() == 42
    assert again.config_path.is_file()


def test_demo_command_without_report(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path / "d"), "--weeks", "1", "--min-rows", "100",
                 "--max-rows", "120", "--no-report", "-q"]) == 0
    out = capsys.readouterr().out
    assert "tracked 21 batches" in out and str(tmp_path / "d") in out


def test_demo_and_plain_commands_share_one_store(tmp_path, monkeypatch, capsys):
    """After `perfkit demo`, plain commands and ModelPerformanceTracker() in that directory see it."""
    from perfkit.tracker import ModelPerformanceTracker

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--weeks", "1", "--min-rows", "100", "--max-rows", "120", "--no-report", "-q"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "config" / "main_config.yaml").is_file()
    assert out.splitlines()[-4:] == ["next, try:", "  perfkit summary", "  perfkit alerts list",
                                     "  perfkit review"]
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "model churn-classifier: 21 labelled batches" in out
    assert "baseline: explicit (validation, 3000 rows) for apac, eu, us" in out
    assert main(["alerts", "list", "--days", "30"]) == 0
    assert "churn-classifier segment=" in capsys.readouterr().out
    with ModelPerformanceTracker() as tracker:
        assert tracker.model == "churn-classifier"
        assert tracker.get_performance_summary(30)["labelled_records"] == 21

    # a second demo run replaces its own config, and never a user's own
    assert main(["demo", "--weeks", "1", "--min-rows", "100", "--max-rows", "120", "--no-report", "-q"]) == 0
    capsys.readouterr()
    own = "model_performance:\n  model_name: mine\n"
    (tmp_path / "config" / "main_config.yaml").write_text(own)
    assert main(["demo", "--weeks", "1", "--min-rows", "100", "--max-rows", "120", "--no-report", "-q"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "config" / "main_config.yaml").read_text() == own
    demo_cfg = (tmp_path / "data" / "performance" / "demo_config.yaml").resolve()
    assert f"  perfkit summary --config {demo_cfg}" in out
    assert main(["summary", "--config", str(demo_cfg)]) == 0
    assert "model churn-classifier: 21 labelled batches" in capsys.readouterr().out
