"""run_notebook (papermill) exit codes and export_html (offline nbconvert template).

The failure runs use ``tests/data/report_smoke.ipynb`` with ``charts=False``: its failure
switches fire before any heavy import, so each real kernel run costs a couple of seconds.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from perfkit.exceptions import (
    ReportExecutionError,
    ReportExportError,
    ReportKernelError,
    ReportTimeoutError,
    ValidationError,
)
from perfkit.report import (
    ExitCode,
    RunResult,
    export_html,
    run_notebook,
    run_notebook_exit_code,
)

pytest.importorskip("papermill")

SMOKE = Path(__file__).parent / "data" / "report_smoke.ipynb"


def _external_refs(html: str) -> list[str]:
    soup = BeautifulSoup(html, "html.parser")
    refs = [tag.get("src") for tag in soup.find_all(["script", "img", "iframe"])]
    refs += [tag.get("href") for tag in soup.find_all("link")]
    return [r for r in refs if r and re.match(r"^\s*(https?:)?//", r)]


def _outputs_text(nb_path: Path) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    chunks = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            chunks.append(output.get("text", "") or "")
            chunks.append(output.get("evalue", "") or "")
    return "\n".join(chunks)


# ------------------------------------------------------------------------------ real kernel runs
def test_success_injects_parameters_and_reads_summary(tmp_path):
    result = run_notebook(
        SMOKE, tmp_path / "out",
        {"model_name": "m-0123", "n_weeks": 7, "charts": False, "n_alerts": 0},
        cell_timeout=60, cwd=tmp_path,
    )
    assert isinstance(result, RunResult)
    assert result.exit_code is ExitCode.OK and result.ok
    assert result.notebook_path == (tmp_path / "out" / "report_smoke.ipynb").resolve()
    assert result.summary_path == (tmp_path / "out" / "summary.json").resolve()
    assert result.summary == {"model_name": "m-0123", "n_weeks": 7, "baseline": 0.9,
                              "alerts": 0}
    # Python API: no -p type guessing ("0123" stays a string, 7 stays an int)
    assert "model='m-0123' type=int" in _outputs_text(result.notebook_path)
    assert result.duration_s > 0
    with pytest.raises(AttributeError):
        result.exit_code = ExitCode.CELL_ERROR  # frozen

    html = result.html_path.read_text(encoding="utf-8")
    assert result.html_path.name == "report_smoke.html"
    assert _external_refs(html) == []
    assert "m-0123" in html and "import json" not in html  # outputs kept, inputs dropped


def test_cell_error_writes_executed_notebook(tmp_path):
    with pytest.raises(ReportExecutionError, match="smoke failure requested") as info:
        run_notebook(SMOKE, tmp_path, {"fail_at": "early", "charts": False}, cell_timeout=60)
    err = info.value
    assert err.exit_code == ExitCode.CELL_ERROR == 2
    assert err.notebook_path.is_file()
    assert "smoke failure requested" in _outputs_text(err.notebook_path)
    assert err.html_path is not None and err.html_path.is_file()  # partial report for debugging
    assert type(err.__cause__).__name__ == "PapermillExecutionError"


def test_cell_timeout(tmp_path):
    with pytest.raises(ReportTimeoutError) as info:
        run_notebook(SMOKE, tmp_path, {"sleep_s": 30.0, "charts": False}, cell_timeout=3,
                     html=False)
    assert info.value.exit_code == ExitCode.TIMEOUT == 3
    assert type(info.value.__cause__).__name__ == "CellTimeoutError"
    assert info.value.html_path is None


def test_kernel_died(tmp_path):
    with pytest.raises(ReportKernelError) as info:
        run_notebook(SMOKE, tmp_path, {"die": True, "charts": False}, cell_timeout=60,
                     html=False)
    assert info.value.exit_code == ExitCode.KERNEL_DIED == 4
    assert type(info.value.__cause__).__name__ == "DeadKernelError"


# ------------------------------------------------------------------------------ no kernel
@pytest.fixture
def fake_papermill(monkeypatch):
    """Replace papermill.execute_notebook; ``raise_`` picks the exception to raise."""
    import papermill

    state = {"raise_": None, "calls": []}

    def fake(input_path, output_path, parameters=None, **kwargs):
        state["calls"].append((parameters, kwargs))
        shutil.copyfile(input_path, output_path)
        if state.get("summary") is not None:
            Path(parameters["summary_path"]).write_text(json.dumps(state["summary"]))
        if state["raise_"] is not None:
            raise state["raise_"]

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    return state


def _exceptions():
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    return [
        (PapermillExecutionError(1, 1, "x", "ValueError", "boom", []), ExitCode.CELL_ERROR),
        (CellTimeoutError("timed out"), ExitCode.TIMEOUT),
        (DeadKernelError("dead"), ExitCode.KERNEL_DIED),
    ]


@pytest.mark.parametrize("case", range(3))
def test_exit_codes_map_exception_classes(fake_papermill, tmp_path, case):
    exc, expected = _exceptions()[case]
    fake_papermill["raise_"] = exc
    assert run_notebook_exit_code(SMOKE, tmp_path, {}, html=False) == expected
    _, kwargs = fake_papermill["calls"][0]
    assert kwargs["kernel_name"] == "python3" and kwargs["execution_timeout"] == 600
    assert kwargs["log_output"] is False and kwargs["progress_bar"] is False


@pytest.mark.parametrize(
    ("summary", "fail_on_alerts", "expected"),
    [
        ({"alerts": 3}, True, ExitCode.ALERTS_PRESENT),
        ({"alerts": [{"metric": "acc"}]}, True, ExitCode.ALERTS_PRESENT),
        ({"alerts": 3}, False, ExitCode.OK),
        ({"alerts": 0}, True, ExitCode.OK),
        (None, True, ExitCode.OK),
    ],
)
def test_alerts_present_only_with_fail_on_alerts(fake_papermill, tmp_path, summary,
                                                 fail_on_alerts, expected):
    (tmp_path / "summary.json").write_text('{"alerts": 99}')  # stale: must be ignored
    fake_papermill["summary"] = summary
    result = run_notebook(SMOKE, tmp_path, {}, html=False, fail_on_alerts=fail_on_alerts)
    assert result.exit_code == expected
    assert result.summary == summary
    assert run_notebook_exit_code(SMOKE, tmp_path, {}, html=False,
                                  fail_on_alerts=fail_on_alerts) == expected


def test_summary_path_injected_when_declared(fake_papermill, tmp_path):
    run_notebook(SMOKE, tmp_path, {"model_name": "x"}, html=False)
    parameters, _ = fake_papermill["calls"][0]
    assert parameters == {"model_name": "x",
                          "summary_path": str((tmp_path / "summary.json").resolve())}


def test_export_failure(fake_papermill, tmp_path, monkeypatch):
    import perfkit.report.html as html_module

    def broken(*args, **kwargs):
        raise ReportExportError("disk full")

    monkeypatch.setattr(html_module, "export_html", broken)
    with pytest.raises(ReportExportError) as info:
        run_notebook(SMOKE, tmp_path, {})
    assert info.value.exit_code == ExitCode.EXPORT_FAILED == 5
    assert info.value.notebook_path.is_file()
    assert run_notebook_exit_code(SMOKE, tmp_path, {}) == 5


@pytest.mark.parametrize(
    ("template", "parameters", "kwargs", "parameter"),
    [
        ("missing.ipynb", {}, {}, "template"),
        (SMOKE, {"no_such_parameter": 1}, {}, "parameters"),
        (SMOKE, ["not", "a", "dict"], {}, "parameters"),
        (SMOKE, {}, {"cell_timeout": 0}, "cell_timeout"),
        (SMOKE, {}, {"summary_json_name": "../x.json"}, "summary_json_name"),
    ],
)
def test_bad_usage(fake_papermill, tmp_path, template, parameters, kwargs, parameter):
    with pytest.raises(ValidationError) as info:
        run_notebook(template, tmp_path, parameters, **kwargs)
    assert info.value.parameter == parameter
    assert info.value.exit_code == ExitCode.BAD_USAGE
    assert run_notebook_exit_code(template, tmp_path, parameters, **kwargs) == 64
    assert fake_papermill["calls"] == []


def test_exit_code_for_unknown_keyword(tmp_path):
    assert run_notebook_exit_code(SMOKE, tmp_path, {}, no_such_option=True) == 64


# ------------------------------------------------------------------------------ export_html
def test_export_html_offline_and_escaped(tmp_path):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("secret_source_code = 1")
    code.outputs = [
        nbformat.v4.new_output("display_data", data={"text/plain": "<script>alert(1)</script>"}),
        nbformat.v4.new_output("stream", text="hello stream\n"),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), code]
    nb_path = tmp_path / "r.ipynb"
    nbformat.write(nb, nb_path)

    out = export_html(nb_path, tmp_path / "sub" / "r.html", title="<b>weekly</b>")
    html = out.read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "html.parser")
    assert _external_refs(html) == []
    assert soup.title.string == "<b>weekly</b>"  # escaped in the source, shown literally
    assert "&lt;b&gt;weekly&lt;/b&gt;" in html
    assert html.count("window.vegaEmbed=") == 1  # the bundle is inlined once
    assert not re.search(r"require\.js|mathjax|mermaid|unpkg|jsdelivr", html, re.IGNORECASE)
    assert "secret_source_code" not in html and "hello stream" in html
    assert "<script>alert(1)</script>" not in html
    assert len(html.encode()) < 2_000_000

    shown = export_html(nb_path, tmp_path / "with_input.html", exclude_input=False)
    assert "secret_source_code" in shown.read_text(encoding="utf-8")


def test_export_html_errors(tmp_path):
    with pytest.raises(ReportExportError, match="cannot read"):
        export_html(tmp_path / "missing.ipynb", tmp_path / "x.html")
    (tmp_path / "bad.ipynb").write_text("{not json", encoding="utf-8")
    with pytest.raises(ReportExportError):
        export_html(tmp_path / "bad.ipynb", tmp_path / "x.html")


# ------------------------------------------------------------------------------ secrets (issue 12 item 4)
def test_password_urls_reach_the_kernel_but_no_file(tmp_path, capfd):
    """A URL parameter with a password: the notebook gets the masked URL, the kernel the real one."""
    password = "Kernel-Only-7f3a9"
    template = tmp_path / "secret.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("url = None\nsummary_path = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import json\nfrom perfkit.report.runner import secret_parameter\n"
            "real = secret_parameter('url', url)\n"
            "json.dump({'shown': url, 'real_password_length': len(real.split(':')[2].split('@')[0])},\n"
            "          open(summary_path, 'w'))\n"
            "print('connecting to', real)  # a careless cell: the runner masks it in the outputs"),
    ]
    nbformat.write(nb, template)
    url = f"postgresql+psycopg://perf:{password}@db.example:5432/perf"
    result = run_notebook(template, tmp_path / "out", {"url": url}, cell_timeout=120, cwd=tmp_path)
    assert result.summary == {"shown": "postgresql+psycopg://perf:***@db.example:5432/perf",
                              "real_password_length": len(password)}
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) == 3
    for path in files:
        assert password.encode() not in path.read_bytes(), path
    assert "perf:***@db.example" in _outputs_text(result.notebook_path)
    captured = capfd.readouterr()
    assert password not in captured.out + captured.err
    assert "without encryption" not in captured.err  # encrypted or IPC kernel transport
    assert set(result.phases) == {"execute", "export"}


def test_mask_url_and_secret_parameter(monkeypatch):
    from perfkit.report.runner import mask_url, secret_parameter

    assert mask_url("postgresql://u:p%40ss@h/db") == "postgresql://u:***@h/db"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"
    real = "postgresql://u:pw@h/db"
    monkeypatch.setenv("PERFKIT_SECRET_STORE_URL", real)
    assert secret_parameter("store_url", mask_url(real)) == real
    # another value (edited by hand in JupyterLab) is kept
    assert secret_parameter("store_url", "sqlite:///x.db") == "sqlite:///x.db"
