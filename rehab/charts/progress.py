"""The patient's own chart: weekly average leg and back pain against where they started.

Simple and readable on a 360 px phone: two lines (solid with circles, dashed with diamonds), a
labelled dashed reference for each starting level, no toolbar, no zoom or pan (a finger on the
chart scrolls the page)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from rehab.charts import grid, style
from rehab.charts.model import ProgressData
from rehab.charts.serialize import Spec, as_figure

CONFIG: dict[str, Any] = {"displayModeBar": False, "responsive": True, "staticPlot": False}


def progress_figure(p: ProgressData, *, height: int = 300) -> go.Figure:
    return as_figure(progress_spec(p, height=height))


def progress_spec(p: ProgressData, *, height: int = 300) -> Spec:
    """`progress_figure` as the plain dict the page embeds."""
    x = [grid.iso(d) for d in p.week_ends]
    data = []
    shapes = []
    for metric, values, start in (
        ("leg_pain", p.leg_pain, p.start_leg),
        ("back_pain", p.back_pain, p.start_back),
    ):
        s = style.METRIC_STYLE[metric]
        data.append(
            {
                "type": "scatter",
                "name": s["name"],
                "mode": "lines+markers",
                "x": x,
                "y": grid.rounded(values),
                "line": {"color": s["color"], "width": 3, "dash": s["dash"]},
                "marker": {"symbol": s["symbol"], "size": 8, "color": s["color"]},
                "connectgaps": True,
                "hovertemplate": (
                    f"Week to %{{x|%-d %b}}: {s['name'].lower()} %{{y}} out of 10 on average"
                    "<extra></extra>"
                ),
            }
        )
        if start is not None:
            shapes.append(
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "yref": "y",
                    "y0": start,
                    "y1": start,
                    "line": {"color": s["color"], "width": 1.5, "dash": "dot"},
                    "label": {
                        "text": f"{s['name']} {p.start_label}: {round(start, 1):g}",
                        "textposition": "start",
                        "yanchor": "bottom",
                        "font": {"size": 11, "color": style.INK},
                    },
                    "name": f"start:{metric}",
                }
            )
    layout = style.base_layout(height)
    layout.update(
        showlegend=True,
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "font": {"size": 13}},
        margin={"l": 36, "r": 8, "t": 36, "b": 36},
        dragmode=False,
        hovermode="closest",
        shapes=shapes,
    )
    layout["xaxis"] = style.axis(type="date", tickformat="%b '%y", nticks=5)
    layout["yaxis"] = style.axis(range=[-0.3, 10.3], tickvals=[0, 2, 4, 6, 8, 10])
    if not p.week_ends:
        layout["annotations"] = [
            {
                "text": "Your chart starts with your first log",
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "showarrow": False,
                "font": {"size": 15, "color": style.MUTED},
            }
        ]
    return {"data": data, "layout": layout}
