"""Show charts in notebooks without ever showing a blank or error box.

:func:`chart_mimebundle` builds one ``text/html`` output holding

* the **static SVG** of the chart, rendered in-process by vl-convert, and
* a small script that, *only if* ``window.vegaEmbed`` already exists on the page, renders
  the interactive chart and then hides the SVG.

So an untrusted notebook in JupyterLab (scripts blocked) shows the SVG, a stock nbconvert
export shows the SVG, and the offline HTML written by :func:`perfkit.report.export_html`
(which inlines the Vega bundle once in its head) shows the interactive chart. Nothing is
ever loaded from a CDN. altair's own renderers are not used.

User strings reach the page only through Vega (which escapes them as SVG text) or inside the
JSON spec, which is escaped so it cannot close the ``<script>`` element.

Examples
--------
>>> import altair as alt, pandas as pd
>>> chart = alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x")
>>> bundle = chart_mimebundle(chart)
>>> sorted(bundle)
['text/html', 'text/plain']
>>> "<svg" in bundle["text/html"] and "vegaEmbed" in bundle["text/html"]
True
"""

from __future__ import annotations

import html
import json
import logging
import re
import uuid
from typing import Any

from perfkit.report._render import _spec, chart_to_svg

__all__ = ["chart_html", "chart_mimebundle", "escape_markdown", "format_markdown", "show",
           "show_markdown"]

logger = logging.getLogger("perfkit")

_SCRIPT = """<script type="text/javascript">
(function () {
  var id = %(id)s;
  var spec = %(spec)s;
  function upgrade() {
    var root = document.getElementById(id);
    if (!root || root.getAttribute("data-perfkit-state") !== "static") { return true; }
    if (typeof window.vegaEmbed !== "function") { return false; }
    root.setAttribute("data-perfkit-state", "loading");
    var target = root.querySelector(".perfkit-chart-interactive");
    var fallback = root.querySelector(".perfkit-chart-static");
    window.vegaEmbed(target, spec, {renderer: "svg", actions: false}).then(function (result) {
      var meta = spec.usermeta || {};
      if (meta.perfkit_explorer && typeof window.perfkitExplorer === "function") {
        window.perfkitExplorer(result.view, meta.perfkit_explorer);
      }
      fallback.style.display = "none";
      target.style.display = "";
      root.setAttribute("data-perfkit-state", "interactive");
    }).catch(function (err) {
      target.style.display = "none";
      root.setAttribute("data-perfkit-state", "static");
      if (window.console) { console.warn("perfkit: interactive chart unavailable", err); }
    });
    return true;
  }
  if (!upgrade()) {
    window.addEventListener("load", upgrade);
  }
})();
</script>"""


def _whole_floats_as_ints(obj: Any) -> Any:
    """``1.0`` -> ``1`` everywhere (the same JavaScript number, two characters fewer)."""
    if isinstance(obj, float):
        return int(obj) if obj.is_integer() and abs(obj) < 2**53 else obj
    if isinstance(obj, dict):
        return {k: _whole_floats_as_ints(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_whole_floats_as_ints(v) for v in obj]
    return obj


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element."""
    text = json.dumps(_whole_floats_as_ints(obj), ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def chart_html(chart: Any, *, chart_id: str | None = None) -> str:
    """Return the HTML fragment (static SVG + upgrade script) for ``chart``.

    Parameters
    ----------
    chart : altair chart or dict
        The chart or its Vega-Lite spec.
    chart_id : str, optional
        DOM id of the container; a unique ``perfkit-chart-<uuid>`` by default.

    Returns
    -------
    str

    Examples
    --------
    >>> import altair as alt, pandas as pd
    >>> chart = alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x="x")
    >>> chart_html(chart, chart_id="c1").startswith('<div class="perfkit-chart" id="c1"')
    True
    """
    spec = _spec(chart)
    dom_id = chart_id if chart_id is not None else f"perfkit-chart-{uuid.uuid4().hex}"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*", dom_id):
        from perfkit.exceptions import ValidationError

        raise ValidationError(f"chart_id {dom_id!r} is not a valid DOM id", parameter="chart_id")
    svg = chart_to_svg(spec)
    script = _SCRIPT % {"id": _json_for_script(dom_id), "spec": _json_for_script(spec)}
    if isinstance(spec.get("usermeta"), dict) and "perfkit_explorer" in spec["usermeta"]:
        from perfkit.report._explorer_js import EXPLORER_JS

        # defines window.perfkitExplorer once per page: the tracker's decision rule in JavaScript
        script = f'<script type="text/javascript">{EXPLORER_JS}</script>' + script
    return (
        f'<div class="perfkit-chart" id="{dom_id}" data-perfkit-state="static">'
        f'<div class="perfkit-chart-static">{svg}</div>'
        '<div class="perfkit-chart-interactive" style="display:none"></div>'
        f"{script}</div>"
    )


def chart_mimebundle(chart: Any) -> dict[str, str]:
    """Return a Jupyter mime bundle (``text/html`` + ``text/plain``) for ``chart``.

    Examples
    --------
    >>> import altair as alt, pandas as pd
    >>> chart = alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x="x")
    >>> chart_mimebundle(chart)["text/plain"]
    '<perfkit chart>'
    """
    spec = _spec(chart)
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    plain = f"<perfkit chart: {title}>" if isinstance(title, str) else "<perfkit chart>"
    return {"text/html": chart_html(spec), "text/plain": plain}


def show(chart: Any) -> None:
    """Display ``chart`` in the current notebook (see the module docstring).

    Examples
    --------
    >>> import altair as alt, pandas as pd
    >>> show(alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x="x"))  # doctest: +SKIP
    """
    from IPython.display import display

    display(chart_mimebundle(chart), raw=True)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def escape_markdown(text: Any) -> str:
    """Escape ``text`` so Markdown (and HTML inside Markdown) shows it literally.

    Examples
    --------
    >>> escape_markdown("<script>alert(1)</script>")
    '&lt;script&gt;alert\\\\(1\\\\)&lt;/script&gt;'
    >>> escape_markdown("a_b*c")
    'a\\\\_b\\\\*c'
    """
    return html.escape(_MD_SPECIAL.sub(r"\\\1", str(text)), quote=False)


def format_markdown(template: str, /, **values: Any) -> str:
    """Fill ``template`` (``str.format`` syntax) with escaped ``values``.

    The template is trusted Markdown written by the report author; the values (model names,
    segment names, anything from data or parameters) are escaped with :func:`escape_markdown`.

    Examples
    --------
    >>> format_markdown("## Weekly review: {model}", model="<b>m</b>")
    '## Weekly review: &lt;b&gt;m&lt;/b&gt;'
    """
    return template.format(**{k: escape_markdown(v) for k, v in values.items()})


def show_markdown(template: str, /, **values: Any) -> None:
    """Display :func:`format_markdown` output as Markdown in the notebook.

    Examples
    --------
    >>> show_markdown("**model** {m}", m="<script>")  # doctest: +SKIP
    """
    from IPython.display import Markdown, display

    display(Markdown(format_markdown(template, **values)))
