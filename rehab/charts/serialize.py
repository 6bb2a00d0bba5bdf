"""Figures as plain dicts, as plotly `Figure`s, and as compact JSON safe to embed in
`<script type="application/json">`.

Every builder makes a plain dict (`*_spec`: `{"data": [...], "layout": {...}}`) and wraps it
(`*_figure`: `as_figure`). A page embeds the dict's JSON directly: plotly's `Figure` deep-copies
its data on the way in and again on the way out (`to_plotly_json`), and walks it for arrays to
encode, which costs more than the rest of a patient page; the JSON is the same (a unit test
checks). Plain `json.dumps` (the data are already rounded Python numbers, None and strings),
with `<`, `>`, `&` and the JavaScript-only line separators escaped so no text in a label can
close the script element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

Spec = dict[str, Any]


def as_figure(spec: Spec) -> go.Figure:
    """The spec as a plotly Figure, without per-property validation at run time (the unit
    tests validate every builder against the plotly schema instead)."""
    return go.Figure(spec, _validate=False)


def figure_dict(fig: go.Figure | Spec) -> Spec:
    """`{"data": [...], "layout": {...}}` exactly as built (no template is added)."""
    if isinstance(fig, go.Figure):
        spec = fig.to_plotly_json()
        return {"data": spec["data"], "layout": spec["layout"]}
    return {"data": fig["data"], "layout": fig["layout"]}


def figure_json(fig: go.Figure | Spec, config: Mapping[str, Any] | None = None) -> str:
    spec: Spec = figure_dict(fig)
    if config:
        spec = {**spec, "config": dict(config)}
    text = json.dumps(spec, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
