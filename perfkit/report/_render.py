"""Rendering of Vega-Lite specs (the leaf the chart, display and HTML modules share)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import altair as alt

from perfkit.exceptions import ValidationError

__all__ = ["chart_to_svg"]


@cache
def _vl_version() -> str | None:
    import vl_convert as vlc

    wanted = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # "v6.4.1" -> "v6_4"
    supported = {"v" + v.replace(".", "_") for v in vlc.get_vegalite_versions()}
    return wanted if wanted in supported else None


def _spec(chart: Any) -> dict[str, Any]:
    if isinstance(chart, dict):
        return chart
    to_dict = getattr(chart, "to_dict", None)
    if to_dict is None:
        raise ValidationError(
            f"chart must be an altair chart or a Vega-Lite dict, got {type(chart).__name__}",
            parameter="chart",
        )
    if not isinstance(chart, alt.TopLevelMixin):
        return to_dict()
    # Large plain-JSON usermeta (the explorer's decision inputs: thousands of numbers) is put back
    # after altair's to_dict, which would otherwise walk and deep-copy every number of it.
    meta = getattr(chart, "usermeta", alt.Undefined)
    if not isinstance(meta, dict):
        return to_dict(validate=False)
    chart.usermeta = alt.Undefined
    try:
        spec = to_dict(validate=False)
    finally:
        chart.usermeta = meta
    spec["usermeta"] = meta
    return spec


def chart_to_svg(chart: Any) -> str:
    """Render ``chart`` to an SVG string in-process with vl-convert (no browser).

    External data URLs are refused: perfkit charts carry their data inline.

    Examples
    --------
    >>> import altair as alt, pandas as pd
    >>> svg = chart_to_svg(alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x"))
    >>> svg.startswith("<svg")
    True
    """
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(_spec(chart), vl_version=_vl_version(), allowed_base_urls=[])
    return _GEOMETRY.sub(lambda m: m.group(1) + _DECIMALS.sub(r"\1", m.group(2)) + '"', svg)


# Coordinates in the static SVG to 1/10 px (vl-convert writes up to 15 decimals): geometry
# attributes only, never text.
_GEOMETRY = re.compile(r'(\s(?:d|transform|x|y|x1|x2|y1|y2|width|height|points)=")([^"]*)"')
_DECIMALS = re.compile(r"(\d\.\d)\d+")
