"""A figure as compact JSON, safe to embed in `<script type="application/json">`.

Plain `json.dumps` of the figure's dict (the data are already rounded Python numbers, None and
strings; plotly's own encoder round-trips the whole document to look for NaN, several times
slower), with `<`, `>`, `&` and the JavaScript-only line separators escaped so no text in a label
can close the script element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def figure_dict(fig: go.Figure) -> dict[str, Any]:
    """`{"data": [...], "layout": {...}}` exactly as built (no template is added)."""
    spec = fig.to_plotly_json()
    return {"data": spec["data"], "layout": spec["layout"]}


def figure_json(fig: go.Figure, config: Mapping[str, Any] | None = None) -> str:
    spec: dict[str, Any] = figure_dict(fig)
    if config:
        spec["config"] = dict(config)
    text = json.dumps(spec, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.translate(_ESCAPES)
