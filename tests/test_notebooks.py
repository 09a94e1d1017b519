"""The notebooks run end to end with papermill (small data, fresh working directory)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from perfkit.store import Store

papermill = pytest.importorskip("papermill")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, tmp_path: Path, **parameters) -> dict:
    out = tmp_path / f"out-{name}"
    papermill.execute_notebook(
        str(NOTEBOOKS / name), str(out), parameters=parameters, kernel_name="python3",
        execution_timeout=300, cwd=str(tmp_path), progress_bar=False,
    )
    return json.loads(out.read_text())


def _text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            for value in output.get("data", {}).values():
                parts.append(value if isinstance(value, str) else "".join(map(str, value)))
    return "\n".join(parts)


def _cell_value(nb: dict, tag: str):
    """The value a tagged cell displayed (its ``text/plain`` repr, a Python literal)."""
    (cell,) = [c for c in nb["cells"] if tag in c.get("metadata", {}).get("tags", [])]
    (result,) = [o for o in cell["outputs"] if o.get("output_type") == "execute_result"]
    return ast.literal_eval("".join(result["data"]["text/plain"]))


def _tree(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime for p in path.rglob("*")}


def test_quickstart(tmp_path):
    before = _tree(NOTEBOOKS)
    n_days, batch_size = 24, 300
    nb = _run("quickstart.ipynb", tmp_path, workdir=str(tmp_path / "work"), n_days=n_days,
              batch_size=batch_size)
    assert _tree(NOTEBOOKS) == before  # nothing written next to the notebooks
    report = json.loads((tmp_path / "work" / "performance_report.json").read_text())
    assert report["model"] == "churn"
    assert "<svg" in _text(nb)  # the chart rendered as static SVG

    # the Summary cell shows the real summary's headline, checked against the stored batches
    shown = _cell_value(nb, "summary")
    with Store(tmp_path / "work" / "perfkit.db") as store:
        records = store.records("churn")
        alerts = store.alerts("churn")
        baseline = store.get_baseline("churn")
    rows = sum(r.sample_count for r in records)
    pooled = sum(r.metrics["accuracy"]["value"] * r.sample_count for r in records) / rows
    assert shown["labelled batches"] == len(records) == n_days
    assert shown["rows"] == rows == n_days * batch_size
    assert shown["accuracy"] == pytest.approx(pooled, abs=1e-4)
    lo, hi = shown["accuracy 95% CI"]
    assert lo < shown["accuracy"] < hi
    assert shown["alerts"] == int((alerts["status"] != "suppressed").sum()) > 0
    assert shown["baseline"] == baseline.source and baseline.sample_count == 1000  # the explicit one
    # from a third of the way through the inputs drift more every day: a declining trend
    first = [r.metrics["accuracy"]["value"] for r in records[: n_days // 3]]
    last = [r.metrics["accuracy"]["value"] for r in records[2 * n_days // 3:]]
    assert sum(last) / len(last) < sum(first) / len(first) - 0.05
    assert shown["accuracy trend"] == "degrading"
    assert shown["performance trend"] == "degrading"


@pytest.mark.parametrize("show_widgets", [False, True])
def test_threshold_explorer(tmp_path, show_widgets):
    before = _tree(NOTEBOOKS)
    nb = _run("threshold_explorer.ipynb", tmp_path, n_days=24, degrade_at=16, batch_size=300,
              show_widgets=show_widgets)
    assert _tree(NOTEBOOKS) == before  # no explorer_thresholds.yaml in the repository
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-threshold_explorer.ipynb"]  # nor in cwd
    text = _text(nb)
    (saved,) = [Path(line) for line in text.splitlines() if line.endswith("explorer_thresholds.yaml")]
    config = yaml.safe_load(saved.read_text())["model_performance"]
    assert config["model_name"] == "demo"  # the explored model, not "default"
    assert config["alert_cooldown_hours"] == 48
    assert "after:" in text
    if show_widgets:
        assert "application/vnd.jupyter.widget-view+json" in json.dumps(nb)
    else:
        assert "ThresholdExplorer(model='demo'" in text
