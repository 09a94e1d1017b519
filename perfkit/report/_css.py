"""Drop the CSS rules an exported page can never use (the ``lab`` template inlines ~200 kB).

A selector is dropped only when it names a class (``.name``, outside ``:not()`` / ``:is()``
and other functional pseudo-classes, and outside attribute selectors) that appears nowhere
else in the page: not in any element, not in any script (a script could add it). Rules
without class selectors (``:root`` variables, element rules), ``@font-face`` and
``@keyframes`` are kept whole; ``@media`` / ``@supports`` blocks are pruned inside.

Examples
--------
>>> prune_css(".a{color:red}.b,.c{color:blue}p{margin:0}", {"c"})
'.c{color:blue}p{margin:0}'
>>> prune_css("@media print{.gone{x:1}.kept{y:2}}:root{--v:1}", {"kept"})
'@media print{.kept{y:2}}:root{--v:1}'
>>> prune_css(".x :not(.gone)>ul{padding:0}", {"x"})
'.x :not(.gone)>ul{padding:0}'
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["page_tokens", "prune_css"]

_CLASS = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")
_TOKEN = re.compile(r"[\w-]+")
_FUNCTIONAL = re.compile(r":[\w-]+\((?:[^()]|\([^()]*\))*\)")
_ATTRIBUTE = re.compile(r"\[[^\]]*\]")
_NESTED_AT = re.compile(r"@(?:media|supports|layer|container)\b")
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.DOTALL | re.IGNORECASE)


def page_tokens(page: str) -> set[str]:
    """Every word (``[\\w-]+``) of ``page`` outside its ``<style>`` elements."""
    return set(_TOKEN.findall(_STYLE.sub(" ", page)))


def _scan(css: str, i: int, stops: str) -> int:
    """Index of the first of ``stops`` at or after ``i`` outside strings (``len(css)``: none)."""
    quote = None
    while i < len(css):
        c = css[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in stops:
            return i
        i += 1
    return i


def _statements(css: str) -> Iterator[tuple[str, str | None]]:
    """``(prelude, block)`` for each top-level statement (``block`` None: ``@import ...;``)."""
    i, n = 0, len(css)
    while i < n:
        j = _scan(css, i, "{;")
        prelude = css[i:j].strip()
        if j >= n or css[j] == ";":
            if prelude:
                yield prelude, None
            i = j + 1
            continue
        depth, k = 1, j + 1
        while k < n and depth:
            k = _scan(css, k, "{}")
            if k < n:
                depth += 1 if css[k] == "{" else -1
                k += 1
        yield prelude, css[j + 1:k - 1]
        i = k


def _selectors(prelude: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, c in enumerate(prelude):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(prelude[start:i])
            start = i + 1
    out.append(prelude[start:])
    return [s.strip() for s in out if s.strip()]


def _used(selector: str, known: set[str]) -> bool:
    plain = _FUNCTIONAL.sub("", _ATTRIBUTE.sub("", selector))
    return all(name in known for name in _CLASS.findall(plain))


def prune_css(css: str, known: set[str]) -> str:
    """``css`` without the selectors that name a class missing from ``known`` (see the module docstring)."""
    out = []
    for prelude, block in _statements(css):
        if block is None:
            out.append(prelude + ";")
        elif prelude.startswith("@"):
            if _NESTED_AT.match(prelude):
                inner = prune_css(block, known)
                if inner:
                    out.append(f"{prelude}{{{inner}}}")
            else:
                out.append(f"{prelude}{{{block}}}")
        else:
            kept = [s for s in _selectors(prelude) if _used(s, known)]
            if kept:
                out.append(f"{','.join(kept)}{{{block}}}")
    return "".join(out)
