"""Export an executed notebook to ONE self-contained HTML file that works offline.

The export uses nbconvert's ``HTMLExporter`` with the ``perfkit_offline`` template shipped in
``perfkit/report/_nbconvert_template``: it extends nbconvert's ``lab`` template, drops the
require.js / MathJax / mermaid / widget-manager loaders (all fetched from CDNs) and inlines
the Vega bundle of vl-convert once in the ``<head>``. Chart outputs made by
:mod:`perfkit.report.display` then become interactive with no network at all; everything else
(CSS, images) is already inline.

Examples
--------
>>> import tempfile, nbformat
>>> from pathlib import Path
>>> nb = nbformat.v4.new_notebook()
>>> nb.cells.append(nbformat.v4.new_markdown_cell("# Hello"))
>>> with tempfile.TemporaryDirectory() as tmp:
...     nbformat.write(nb, f"{tmp}/r.ipynb")
...     out = export_html(f"{tmp}/r.ipynb", f"{tmp}/r.html", title="Weekly review")
...     text = out.read_text(encoding="utf-8")
>>> "<title>Weekly review</title>" in text and "window.vegaEmbed" in text
True
"""

from __future__ import annotations

import logging
import os
import re
from functools import cache
from pathlib import Path

from perfkit._files import write_text_atomic
from perfkit.exceptions import ReportExportError

__all__ = ["TEMPLATE_DIR", "TEMPLATE_NAME", "export_html", "vega_bundle"]

logger = logging.getLogger("perfkit")

#: Directory holding perfkit's nbconvert template(s).
TEMPLATE_DIR = Path(__file__).parent / "_nbconvert_template"
#: Name of the offline HTML template.
TEMPLATE_NAME = "perfkit_offline"

_EXTERNAL_REF = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//",
    re.IGNORECASE,
)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "perfkit"


def _bundle_cache_file() -> Path:
    """One file per vl-convert and altair version (altair's Vega-Lite version picks the bundle);
    found without importing altair (seconds), which only a rebuild needs."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("vl-convert-python", "altair"):
        try:
            parts.append(version(dist))
        except PackageNotFoundError:  # pragma: no cover - imported without metadata: no cache
            return Path(os.devnull)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts))
    return _cache_dir() / f"vega-bundle-{safe}.js"


@cache
def vega_bundle() -> str:
    """Return vl-convert's Vega / Vega-Lite / vega-embed bundle, safe inside ``<script>``.

    The bundle defines ``window.vegaEmbed``, ``window.vega`` and ``window.vegaLite``. Building
    it takes seconds of CPU, so it is cached for the process and on disk
    (``$XDG_CACHE_HOME/perfkit`` or ``~/.cache/perfkit``, one file per vl-convert and
    Vega-Lite version; an unwritable cache only costs the rebuild).

    Examples
    --------
    >>> "window.vegaEmbed" in vega_bundle()
    True
    """
    cached = _bundle_cache_file()
    try:
        text = cached.read_text(encoding="utf-8")
        if "window.vegaEmbed" in text and len(text) > 100_000:
            return text
    except (OSError, UnicodeDecodeError):
        pass
    import vl_convert as vlc

    from perfkit.report._render import _vl_version

    bundle = vlc.javascript_bundle(vl_version=_vl_version())
    # an HTML parser ends the <script> element at "</script" whatever the JS context
    bundle = re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)
    bundle = bundle.replace("<!--", "<\\!--")
    try:
        write_text_atomic(cached, bundle)
    except OSError as exc:
        logger.debug("cannot cache the Vega bundle in %s: %s", cached.parent, exc)
    return bundle


_STYLE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.DOTALL | re.IGNORECASE)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_CSS_NOTICE = "/* JupyterLab styles: Copyright (c) Jupyter Development Team, Modified BSD License */ "


def _compact_styles(body: str) -> str:
    """The page's CSS without comments, whitespace runs and rules the page cannot use.

    Only ``<style>`` contents change: comments go, runs of whitespace become one space, and
    the selectors naming a class that appears nowhere else in the page are dropped
    (:func:`perfkit.report._css.prune_css`; the lab template inlines ~240 kB of JupyterLab
    CSS, mostly for its own widgets). Every rule that can match stays as it was.

    Examples
    --------
    >>> _compact_styles("<style>/* c */ a  {\\n  color: red; } .gone { x: 1 }</style><p>  x  </p>")
    '<style>a{ color: red; }</style><p>  x  </p>'
    """
    from perfkit.report._css import page_tokens, prune_css

    known = page_tokens(body)
    noticed: list[bool] = []

    def compact(match: re.Match[str]) -> str:
        css = prune_css(re.sub(r"\s+", " ", _CSS_COMMENT.sub(" ", match.group(2))).strip(), known)
        notice = ""
        if not noticed and "Jupyter Development Team" in match.group(2):  # the licence notice, once
            notice = _CSS_NOTICE
            noticed.append(True)
        return f"{match.group(1)}{notice}{css}{match.group(3)}"

    return _STYLE.sub(compact, body)


def export_html(
    notebook_path: str | os.PathLike[str],
    html_path: str | os.PathLike[str],
    *,
    title: str | None = None,
    exclude_input: bool = True,
) -> Path:
    """Write ``notebook_path`` as one offline HTML file at ``html_path``.

    Parameters
    ----------
    notebook_path : path-like
        An (executed) ``.ipynb`` file.
    html_path : path-like
        Output file; parent directories are created. Written atomically.
    title : str, optional
        Page title (escaped); defaults to the notebook's ``metadata.title`` or file name.
    exclude_input : bool, default True
        Hide code cells' inputs and prompts; outputs and Markdown cells are kept. Cells
        tagged ``remove_cell`` are always dropped, inputs of cells tagged ``remove_input``
        are always hidden.

    Returns
    -------
    pathlib.Path
        ``html_path``.

    Raises
    ------
    ReportExportError
        If the notebook cannot be read or converted, or the file cannot be written.
    """
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    source = Path(notebook_path)
    target = Path(html_path)
    try:
        nb = nbformat.read(source, as_version=4)
    except (OSError, ValueError) as exc:  # nbformat's read errors are ValueError subclasses
        raise ReportExportError(f"cannot read notebook {str(source)!r}: {exc}") from exc
    if title is not None:
        nb.metadata["title"] = str(title)

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = ("remove_cell",)
    config.TagRemovePreprocessor.remove_input_tags = ("remove_input",)
    exporter = HTMLExporter(
        config=config,
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATE_DIR)],
        exclude_input=exclude_input,
        exclude_input_prompt=exclude_input,
        exclude_output_prompt=exclude_input,
    )
    resources = {
        "perfkit_vega_bundle": vega_bundle(),
        "metadata": {"name": source.stem},
    }
    try:
        body, _ = exporter.from_notebook_node(nb, resources=resources)
    except Exception as exc:
        raise ReportExportError(f"cannot convert {str(source)!r} to HTML: {exc}") from exc

    body = _compact_styles(body)
    external = _EXTERNAL_REF.findall(body)
    if external:
        logger.warning(
            "%s references %d external resource(s); the report will not be fully offline",
            target, len(external),
        )
    try:
        write_text_atomic(target, body)
    except OSError as exc:
        raise ReportExportError(f"cannot write {str(target)!r}: {exc}") from exc
    logger.info("exported %s -> %s (%.0f kB)", source, target, len(body.encode()) / 1024)
    return target
