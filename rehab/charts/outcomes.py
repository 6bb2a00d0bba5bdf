"""ODI and PSFS over time: two small panels (ODI 0–100, lower is better; PSFS 0–10, higher is
better), each measure a point with its own symbol, labelled with its score."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from rehab.charts import grid, style
from rehab.charts.model import AlertSpan, OutcomePoint
from rehab.charts.serialize import Spec, as_figure
from rehab.charts.trajectory import alert_shapes

INSTRUMENTS: dict[str, dict[str, Any]] = {
    "odi": {
        "title": "ODI (0–100, lower is better)",
        "range": [-5, 105],
        "color": style.ODI_COLOR,
        "symbol": "square",
        "axis": "y",
        "domain": [0.56, 1.0],
        "name": "ODI",
        "of": 100,
    },
    "psfs": {
        "title": "PSFS (0–10, higher is better)",
        "range": [-0.5, 10.5],
        "color": style.PSFS_COLOR,
        "symbol": "circle",
        "axis": "y2",
        "domain": [0.0, 0.44],
        "name": "PSFS",
        "of": 10,
    },
}

CONFIG: dict[str, Any] = {"displayModeBar": False, "responsive": True}


def outcomes_figure(
    points: Sequence[OutcomePoint],
    alerts: Sequence[AlertSpan] = (),
    *,
    today: dt.date | None = None,
    height: int = 360,
) -> go.Figure:
    """The measures, with function-decline alert episodes shaded on their instrument's panel
    (an episode still open runs to `today`, or to the last measure)."""
    return as_figure(outcomes_spec(points, alerts, today=today, height=height))


def outcomes_spec(
    points: Sequence[OutcomePoint],
    alerts: Sequence[AlertSpan] = (),
    *,
    today: dt.date | None = None,
    height: int = 360,
) -> Spec:
    """`outcomes_figure` as the plain dict the page embeds."""
    ordered = sorted(points, key=lambda p: p.date)
    data = []
    for key, spec in INSTRUMENTS.items():
        mine = [p for p in ordered if p.instrument == key]
        data.append(
            {
                "type": "scatter",
                "name": spec["name"],
                "mode": "lines+markers+text",
                "x": [grid.iso(p.date) for p in mine],
                "y": grid.rounded([p.score for p in mine]),
                "yaxis": spec["axis"],
                "text": [f"{p.score:g}" for p in mine],
                "textposition": "top center",
                "cliponaxis": False,
                "line": {"color": spec["color"], "width": 2},
                "marker": {"symbol": spec["symbol"], "size": 9, "color": spec["color"]},
                "hovertemplate": (
                    f"%{{x|{style.DATE_HOVER}}}: {spec['name']} %{{y}} out of {spec['of']}"
                    "<extra></extra>"
                ),
            }
        )
    layout = style.base_layout(height)
    layout["xaxis"] = style.axis(type="date", anchor="y2", hoverformat=style.DATE_HOVER)
    if ordered:
        first, last = ordered[0].date, ordered[-1].date
        if today is not None:
            last = max(last, today)
        pad = dt.timedelta(days=max(7, (last - first).days // 20))
        layout["xaxis"]["range"] = [grid.iso(first - pad), grid.iso(last + pad)]
        declines = [a for a in alerts if a.kind == "function_decline" and a.metric in INSTRUMENTS]
        layout["shapes"] = alert_shapes(
            declines,
            last,
            {"odi": ("y domain", 0.0, 1.0), "psfs": ("y2 domain", 0.0, 1.0), "": ("paper", 0, 1)},
        )
    for spec in INSTRUMENTS.values():
        layout[spec["axis"].replace("y", "yaxis")] = style.axis(
            domain=spec["domain"],
            range=spec["range"],
            anchor="x",
            title={"text": spec["title"], "font": {"size": 12}},
        )
    if not ordered:
        layout["annotations"] = [
            {
                "text": "No questionnaires yet",
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "showarrow": False,
                "font": {"size": 15, "color": style.MUTED},
            }
        ]
    return {"data": data, "layout": layout}
