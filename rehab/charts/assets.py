"""plotly.js as shipped by the installed `plotly` package, and its stylesheet.

plotly.js inserts its few CSS rules (hover labels, the mode bar, notifier) into a `<style>`
element it creates, which a `style-src 'self'` Content-Security-Policy refuses. It skips that
when the page already has an element with id `plotly.js-style-global` and class
`no-inline-styles` (plotly.js ≥ 2.35). So the page links a stylesheet with those rules under that
id: `plotly_css` derives it from the very plotly.min.js being served (the rules are one object
literal, `{"X,X div": ..., "Y": ...}`, where X is `.js-plotly-plot .plotly` and Y
`.plotly-notifier`), so the two always match.

A bundled map library (maplibre, for map traces rehab never draws) inserts its own `<style>` at
load unless an element with its id is already there; `inline_style_ids` finds those ids in the
same file so the page can hold inert placeholders and the browser logs no refused style.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import plotly

VERSION: str = plotly.__version__
STYLE_ELEMENT_ID = "plotly.js-style-global"

_RULES_START = '{"X,X div":'
_RULES_END = "};for("
_ENTRY = re.compile(
    r"""\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_$][\w$]*))\s*:\s*"""
    r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*,?"""
)


_GUARDED_STYLE = re.compile(
    r'if\(!document\.getElementById\("([\w-]+)"\)\)\{var (\w+)=document\.createElement\("style"\)'
)


def plotly_js_path() -> Path:
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@cache
def plotly_js() -> bytes:
    return plotly_js_path().read_bytes()


def css_from_plotly_js(source: str) -> str:
    """The global CSS rules plotly.js would insert at load, as a stylesheet."""
    start = source.find(_RULES_START)
    if start < 0:
        raise ValueError("plotly.js style rules not found")
    end = source.find(_RULES_END, start)
    if end < 0:
        raise ValueError("end of the plotly.js style rules not found")
    body = source[start + 1 : end]
    rules = []
    position = 0
    while position < len(body):
        match = _ENTRY.match(body, position)
        if match is None:
            raise ValueError(f"unexpected text in the plotly.js style rules at {position}")
        position = match.end()
        selector = match.group(1) if match.group(1) is not None else match.group(2)
        declarations = match.group(3) if match.group(3) is not None else match.group(4)
        selector = (
            re.sub(r"^,", " ,", selector)
            .replace("X", ".js-plotly-plot .plotly")
            .replace("Y", ".plotly-notifier")
        )
        rules.append(f"{selector}{{{declarations}}}")
    if not rules:
        raise ValueError("no plotly.js style rules")
    return "\n".join(rules) + "\n"


def guarded_style_ids(source: str) -> list[str]:
    """Ids of the `<style>` elements plotly.js inserts only when no element has that id."""
    return sorted({match.group(1) for match in _GUARDED_STYLE.finditer(source)})


@cache
def inline_style_ids() -> tuple[str, ...]:
    return tuple(guarded_style_ids(plotly_js().decode("utf-8")))


@cache
def plotly_css() -> bytes:
    header = f"/* plotly.js style rules, from plotly {VERSION} (rehab.charts.assets) */\n"
    return (header + css_from_plotly_js(plotly_js().decode("utf-8"))).encode("utf-8")
