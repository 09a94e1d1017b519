"""The notebooks run end to end with papermill (small data, fresh working directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_quickstart(tmp_path):
    nb = _run("quickstart.ipynb", tmp_path, workdir=str(tmp_path / "work"), n_days=12,
              batch_size=300)
    report = json.loads((tmp_path / "work" / "performance_report.json").read_text())
    assert report  # the JSON report was written
    assert (tmp_path / "work" / "perfkit.db").exists()
    assert "<svg" in _text(nb)  # the chart rendered as static SVG


@pytest.mark.parametrize("show_widgets", [False, True])
def test_threshold_explorer(tmp_path, show_widgets):
    nb = _run("threshold_explorer.ipynb", tmp_path, n_days=24, degrade_at=16, batch_size=300,
              show_widgets=show_widgets)
    saved = tmp_path / "explorer_thresholds.yaml"
    assert saved.exists() and "alert_cooldown_hours: 48" in saved.read_text()
    text = _text(nb)
    assert "after:" in text
    if show_widgets:
        assert "application/vnd.jupyter.widget-view+json" in json.dumps(nb)
    else:
        assert "ThresholdExplorer(model='demo'" in text
