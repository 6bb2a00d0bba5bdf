"""The clinician's main chart and the change-vs-baseline view.

Main chart, one shared time axis, top to bottom:
- a strip of labelled markers for events and findings (each with its own symbol; the full
  sentence on hover), with a dotted (events) or dash-dot (findings) line down through the
  panels;
- leg pain, then back pain: daily ratings as points, a 7-day centred average as a line, and the
  detector's baseline as a band (baseline ± the clinically important change);
- exercises done (% of the prescribed session) as bars.
Alert episodes are shaded spans with a label ("Leg pain up · urgent · open") over the panel of
their metric (all panels for kinds without one), the border telling the status.

Every daily array sits on the day grid `start`..`end` (`x0` + one-day `dx`), rounded: a patient
with two years of logs costs a few tens of kilobytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from rehab.charts import grid, style
from rehab.charts.model import PAIN_METRICS, AlertSpan, BaselineBand, Marker, Trajectory
from rehab.charts.serialize import Spec, as_figure
from rehab.domain.explain import format_number

DEFAULT_DAYS = 90
RANGE_PRESETS: tuple[tuple[str, str, int | None], ...] = (
    ("30d", "30 d", 30),
    ("90d", "90 d", 90),
    ("1y", "1 y", 365),
    ("all", "All", None),
)
PAIN_RANGE = [-0.5, 10.5]
MARKER_ROWS = 3
MARKER_SPACING_DAYS = 10
# Marker labels are shown while at most this many days are visible (charts.js hides them
# beyond, where they would overprint; the symbols, lines and hover stay).
LABEL_MAX_DAYS = 150
# Kinds drawn as spans on the main chart: pain on its panel, adherence on the bars, red flags
# and missed logs across all panels. Function decline (ODI/PSFS) is on the outcomes chart.
MAIN_CHART_ALERT_KINDS = ("pain_regression", "adherence_drop", "red_flag", "missed_logs")

# Vertical layout of the main chart (fractions of the plot area).
STRIP = [0.93, 1.0]
PANELS = {"leg_pain": [0.58, 0.9], "back_pain": [0.2, 0.52]}
ADHERENCE = [0.0, 0.14]
AXIS_OF = {"leg_pain": "y", "back_pain": "y2", "adherence": "y3"}
LINES_TOP = 0.915

# No mode bar: the page's range buttons choose the window (keyboard-usable), dragging across
# the chart zooms in, a double click goes back.
CONFIG: dict[str, Any] = {
    "displayModeBar": False,
    "responsive": True,
    "scrollZoom": False,
    "doubleClick": "reset",
}


@dataclass(frozen=True, slots=True)
class RangePreset:
    key: str
    label: str
    range: list[str]
    selected: bool


def initial_days(t: Trajectory) -> int | None:
    """The last 90 days, unless nothing was logged in them (then everything)."""
    if t.days <= DEFAULT_DAYS:
        return None
    recent = t.end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if not t.logs.dates or t.logs.dates[-1] < recent:
        return None
    return DEFAULT_DAYS


def range_presets(t: Trajectory) -> list[RangePreset]:
    """The 30 d / 90 d / 1 y / All buttons, with the x range each one shows."""
    chosen = initial_days(t)
    return [
        RangePreset(key, label, grid.range_for(t.start, t.end, days), days == chosen)
        for key, label, days in RANGE_PRESETS
    ]


# --- pieces shared by both views ---------------------------------------------------------------


def _band_traces(
    metric: str, band: BaselineBand, x0: str, yaxis: str, *, centred: bool
) -> list[dict[str, Any]]:
    """Two traces: the lower edge, then the upper edge filled down to it. `centred` draws the
    band around 0 (the change view) instead of around the level."""
    s = style.METRIC_STYLE[metric]
    lower: list[float | None] = []
    upper: list[float | None] = []
    for level, margin in zip(band.level, band.margin, strict=True):
        if level is None or margin is None:
            lower.append(None)
            upper.append(None)
        elif centred:
            lower.append(-margin)
            upper.append(margin)
        else:
            lower.append(max(0.0, level - margin))
            upper.append(min(10.0, level + margin))
    common = {
        "type": "scatter",
        "mode": "lines",
        "x0": x0,
        "dx": grid.DAY_MS,
        "yaxis": yaxis,
        "line": {"width": 0, "shape": "hv"},
        "hoverinfo": "skip",
        "showlegend": False,
    }
    name = f"{s['name']}: baseline ± clinically important change"
    return [
        {**common, "name": name + " (lower edge)", "y": grid.rounded(lower)},
        {
            **common,
            "name": name,
            "y": grid.rounded(upper),
            "fill": "tonexty",
            "fillcolor": s["band"],
        },
    ]


def alert_shapes(
    alerts: Sequence[AlertSpan], end: dt.date, yrefs: dict[str, tuple[str, float, float]]
) -> list[dict[str, Any]]:
    """Shaded spans with a label; `yrefs` maps a metric to (yref, y0, y1), "" to all panels."""
    shapes = []
    for a in alerts:
        yref, y0, y1 = yrefs.get(a.metric, yrefs[""])
        # A span still going on ends at the chart's edge, its label right-aligned there so it
        # reads inwards instead of running off the plot.
        ongoing = a.end is None or a.end >= end
        x1 = grid.noon(end)
        if a.end is not None and not ongoing:
            x1 = grid.iso(a.end + dt.timedelta(days=1))
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "x0": grid.iso(a.onset),
                "x1": x1,
                "yref": yref,
                "y0": y0,
                "y1": y1,
                "layer": "below",
                "fillcolor": style.ALERT_FILL.get(a.severity, style.ALERT_FILL["routine"]),
                "line": {
                    "color": style.ALERT_LINE.get(a.severity, style.ALERT_LINE["routine"]),
                    "width": 1,
                    "dash": style.STATUS_DASH.get(a.status, "solid"),
                },
                "label": {
                    "text": a.label,
                    "textposition": "top right" if ongoing else "top left",
                    "font": {"size": 11, "color": style.INK},
                    "padding": 3,
                },
                "name": f"alert:{a.kind}:{a.metric}",
            }
        )
    return shapes


def merged_markers(markers: Sequence[Marker]) -> list[Marker]:
    """Markers of the same kind on the same day as one ("Imaging ×2"), by date."""
    groups: dict[tuple[dt.date, str], list[Marker]] = {}
    for m in sorted(markers, key=lambda m: (m.date, m.kind)):
        groups.setdefault((m.date, m.kind), []).append(m)
    out = []
    for (day, kind), group in groups.items():
        label = group[0].label if len(group) == 1 else f"{group[0].label} ×{len(group)}"
        out.append(Marker(day, kind, label, " / ".join(m.detail for m in group)))
    return out


def _marker_rows(markers: Sequence[Marker]) -> list[int]:
    """A row (0 = top) per marker so that labels of nearby days do not overprint."""
    last: list[dt.date | None] = [None] * MARKER_ROWS
    rows = []
    for m in markers:
        free = [
            r
            for r in range(MARKER_ROWS)
            if last[r] is None or (m.date - last[r]).days >= MARKER_SPACING_DAYS  # type: ignore[operator]
        ]
        row = free[0] if free else min(range(MARKER_ROWS), key=lambda r: last[r] or dt.date.min)
        last[row] = m.date
        rows.append(row)
    return rows


def _marker_lines(markers: Sequence[Marker], y1: float) -> list[dict[str, Any]]:
    return [
        {
            "type": "line",
            "xref": "x",
            "x0": grid.iso(m.date),
            "x1": grid.iso(m.date),
            "yref": "paper",
            "y0": 0,
            "y1": y1,
            "layer": "above",
            "line": {
                "color": style.FINDING_LINE if m.kind == "findings" else style.EVENT_LINE,
                "width": 1,
                "dash": "dashdot" if m.kind == "findings" else "dot",
            },
            "name": f"marker:{m.kind}",
        }
        for m in markers
    ]


def _marker_trace(markers: Sequence[Marker], yaxis: str) -> dict[str, Any]:
    rows = _marker_rows(markers)
    return {
        "type": "scatter",
        "name": "Events and findings",
        "mode": "markers+text",
        "x": [grid.iso(m.date) for m in markers],
        "y": [MARKER_ROWS - 0.5 - r for r in rows],
        "yaxis": yaxis,
        "text": [m.label for m in markers],
        "textposition": "middle right",
        "textfont": {"size": 11, "color": style.INK},
        "cliponaxis": False,
        "marker": {
            "symbol": [style.MARKER_SYMBOLS.get(m.kind, "circle-open") for m in markers],
            "size": 10,
            "color": [
                style.FINDING_LINE if m.kind == "findings" else style.EVENT_LINE for m in markers
            ],
            "line": {"width": 1.5},
        },
        "hovertext": [f"{m.date.strftime('%a %-d %b %Y')}: {m.detail}" for m in markers],
        "hoverinfo": "text",
        "customdata": [m.kind for m in markers],
    }


def _in_grid(markers: Sequence[Marker], t: Trajectory) -> list[Marker]:
    return merged_markers([m for m in markers if t.start <= m.date <= t.end])


def _x_axis(t: Trajectory, anchor: str, days: int | None) -> dict[str, Any]:
    return style.axis(
        type="date",
        anchor=anchor,
        range=grid.range_for(t.start, t.end, days),
        fixedrange=False,
        hoverformat=style.DATE_HOVER,
        showspikes=False,
    )


def _empty_note(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "showarrow": False,
        "font": {"size": 15, "color": style.MUTED},
        "name": "empty",
    }


# --- the main chart -------------------------------------------------------------------------


def trajectory_figure(
    t: Trajectory, *, days: int | None = -1, height: int = 560, static: bool = False
) -> go.Figure:
    """The main chart. `days`: the initial window (-1: `initial_days`, None: everything);
    `static` is for a printed image (larger labels)."""
    return as_figure(trajectory_spec(t, days=days, height=height, static=static))


def trajectory_spec(
    t: Trajectory, *, days: int | None = -1, height: int = 560, static: bool = False
) -> Spec:
    """`trajectory_figure` as the plain dict the page embeds."""
    shown = initial_days(t) if days == -1 else days
    x0 = grid.iso(t.start)
    data: list[dict[str, Any]] = []
    for metric in PAIN_METRICS:
        s = style.METRIC_STYLE[metric]
        yaxis = AXIS_OF[metric]
        values = grid.on_grid(t.start, t.end, t.logs.dates, t.logs.column(metric))
        band = t.baselines.get(metric)
        if band is not None:
            data += _band_traces(metric, band, x0, yaxis, centred=False)
        data.append(
            {
                "type": "scatter",
                "name": f"{s['name']} (7-day average)",
                "mode": "lines",
                "x0": x0,
                "dx": grid.DAY_MS,
                "y": grid.rounded(grid.smoothed(values)),
                "yaxis": yaxis,
                "line": {"color": s["color"], "width": 2, "dash": s["dash"]},
                "hoverinfo": "skip",
            }
        )
        baseline = band.level if band is not None else (None,) * len(values)
        data.append(
            {
                "type": "scatter",
                "name": f"{s['name']} (daily)",
                "mode": "markers",
                "x0": x0,
                "dx": grid.DAY_MS,
                "y": values,
                "yaxis": yaxis,
                "customdata": [
                    format_number(b) if b is not None else "not set yet" for b in baseline
                ],
                "marker": {
                    "symbol": s["symbol"],
                    "size": 6,
                    "color": s["color"],
                    "line": {"width": 0.5, "color": "#ffffff"},
                },
                "hovertemplate": (
                    f"%{{x|{style.DATE_HOVER}}}: {s['name'].lower()} %{{y}} out of 10,"
                    " baseline %{customdata}<extra></extra>"
                ),
            }
        )
    adherence = grid.on_grid(t.start, t.end, t.logs.dates, t.logs.adherence)
    data.append(
        {
            "type": "bar",
            "name": "Exercises done (% of prescribed)",
            "x0": x0,
            "dx": grid.DAY_MS,
            "y": grid.rounded([None if a is None else 100 * a for a in adherence], 0),
            "yaxis": "y3",
            "width": grid.DAY_MS * 0.8,
            "marker": {"color": style.ADHERENCE_COLOR, "opacity": 0.75},
            "hovertemplate": (
                f"%{{x|{style.DATE_HOVER}}}: %{{y}} % of the prescribed exercises done"
                "<extra></extra>"
            ),
        }
    )
    markers = _in_grid(t.markers, t)
    layout = style.base_layout(height)
    if markers:
        layout["meta"] = {"labelTrace": len(data), "labelMaxDays": LABEL_MAX_DAYS}
        data.append(_marker_trace(markers, "y4"))

    layout["margin"] = {"l": 64, "r": 24, "t": 16, "b": 40}
    layout["dragmode"] = "zoom"
    if static:
        layout["font"] = {**layout["font"], "size": 15}
    layout["xaxis"] = _x_axis(t, "y3", shown)
    for metric in PAIN_METRICS:
        name = AXIS_OF[metric].replace("y", "yaxis")
        layout[name] = style.axis(
            domain=PANELS[metric],
            range=PAIN_RANGE,
            tickvals=[0, 2, 4, 6, 8, 10],
            anchor="x",
            title={"text": f"{style.METRIC_STYLE[metric]['name']} (0–10)", "font": {"size": 12}},
        )
    layout["yaxis3"] = style.axis(
        domain=ADHERENCE,
        range=[0, 100],
        tickvals=[0, 50, 100],
        ticksuffix=" %",
        anchor="x",
        title={"text": "Exercises", "font": {"size": 12}},
    )
    layout["yaxis4"] = {
        "domain": STRIP,
        "range": [0, MARKER_ROWS],
        "visible": False,
        "fixedrange": True,
        "anchor": "x",
    }
    panels = {
        "leg_pain": ("y domain", 0.0, 1.0),
        "back_pain": ("y2 domain", 0.0, 1.0),
        "adherence": ("y3 domain", 0.0, 1.0),
        "": ("paper", 0.0, LINES_TOP),
    }
    spans = [a for a in t.alerts if a.kind in MAIN_CHART_ALERT_KINDS]
    layout["shapes"] = alert_shapes(spans, t.end, panels) + _marker_lines(markers, LINES_TOP)
    if not t.logs.dates:
        layout["annotations"] = [_empty_note("No daily logs yet")]
    return {"data": data, "layout": layout}


# --- change vs baseline -------------------------------------------------------------------


CHANGE_PANELS = {"leg_pain": [0.56, 1.0], "back_pain": [0.0, 0.44]}


def change_values(t: Trajectory, metric: str) -> list[float | None]:
    """Value − baseline on each grid day (None without a log or a baseline)."""
    values = grid.on_grid(t.start, t.end, t.logs.dates, t.logs.column(metric))
    band = t.baselines.get(metric)
    if band is None:
        return [None] * len(values)
    return [
        None if v is None or b is None else v - b for v, b in zip(values, band.level, strict=True)
    ]


def change_figure(t: Trajectory, *, days: int | None = -1, height: int = 420) -> go.Figure:
    """(value − baseline) per day for leg and back pain, with the band of ± the clinically
    important change around zero, alert spans and event lines."""
    return as_figure(change_spec(t, days=days, height=height))


def change_spec(t: Trajectory, *, days: int | None = -1, height: int = 420) -> Spec:
    """`change_figure` as the plain dict the page embeds."""
    shown = initial_days(t) if days == -1 else days
    x0 = grid.iso(t.start)
    data: list[dict[str, Any]] = []
    biggest = 3.0
    for metric in PAIN_METRICS:
        s = style.METRIC_STYLE[metric]
        yaxis = "y" if metric == "leg_pain" else "y2"
        band = t.baselines.get(metric)
        if band is not None:
            data += _band_traces(metric, band, x0, yaxis, centred=True)
        change = change_values(t, metric)
        raw = grid.on_grid(t.start, t.end, t.logs.dates, t.logs.column(metric))
        known = [abs(c) for c in change if c is not None]
        biggest = max(biggest, *known) if known else biggest
        data.append(
            {
                "type": "scatter",
                "name": f"{s['name']}: change from baseline",
                "mode": "markers",
                "x0": x0,
                "dx": grid.DAY_MS,
                "y": grid.rounded(change),
                "yaxis": yaxis,
                "customdata": raw,
                "marker": {"symbol": s["symbol"], "size": 6, "color": s["color"]},
                "hovertemplate": (
                    f"%{{x|{style.DATE_HOVER}}}: {s['name'].lower()} %{{customdata}} out of 10,"
                    " %{y:+.1f} from baseline<extra></extra>"
                ),
            }
        )
    limit = min(10.5, float(int(biggest) + 1.5))
    layout = style.base_layout(height)
    layout["xaxis"] = _x_axis(t, "y2", shown)
    for metric in PAIN_METRICS:
        name = "yaxis" if metric == "leg_pain" else "yaxis2"
        layout[name] = style.axis(
            domain=CHANGE_PANELS[metric],
            range=[-limit, limit],
            zeroline=True,
            zerolinecolor=style.MUTED,
            zerolinewidth=1.5,
            anchor="x",
            title={"text": f"{style.METRIC_STYLE[metric]['name']} change", "font": {"size": 12}},
        )
    markers = _in_grid(t.markers, t)
    panels = {
        "leg_pain": ("y domain", 0.0, 1.0),
        "back_pain": ("y2 domain", 0.0, 1.0),
        "": ("paper", 0.0, 1.0),
    }
    pain_alerts = [a for a in t.alerts if a.metric in PAIN_METRICS]
    layout["shapes"] = alert_shapes(pain_alerts, t.end, panels) + _marker_lines(markers, 1.0)
    if not t.logs.dates:
        layout["annotations"] = [_empty_note("No daily logs yet")]
    return {"data": data, "layout": layout}


# --- the text alternative -------------------------------------------------------------------


def summary_sentences(t: Trajectory, window: int = 7) -> list[str]:
    """What the chart shows, in words (for screen readers, the printed summary, and anyone who
    prefers text): recent level of each pain against its baseline, adherence, alerts, events."""
    since = t.end - dt.timedelta(days=window - 1)
    out = []
    for metric in PAIN_METRICS:
        name = style.METRIC_STYLE[metric]["name"]
        recent = [
            v
            for d, v in zip(t.logs.dates, t.logs.column(metric), strict=True)
            if d >= since and v is not None
        ]
        band = t.baselines.get(metric)
        level = band.current() if band is not None else None
        if not recent:
            out.append(f"{name}: nothing logged in the last {window} days.")
            continue
        mean = sum(recent) / len(recent)
        text = f"{name}: {format_number(mean)} out of 10 on average over the last {window} days"
        if level is not None and band is not None:
            margin = band.margin[-1] or 2.0
            change = mean - level
            verdict = (
                "a clinically important rise"
                if change >= margin
                else "a clinically important fall"
                if change <= -margin
                else "within the clinically important change"
            )
            text += (
                f", against a baseline of {format_number(level)} "
                f"({'+' if change >= 0 else '−'}{format_number(abs(change))}: {verdict}"
                f" of {format_number(margin)})"
            )
        out.append(text + ".")
    done = [
        a
        for d, a in zip(t.logs.dates, t.logs.adherence, strict=True)
        if d >= since and a is not None
    ]
    if done:
        out.append(
            f"Exercises: {round(100 * sum(done) / len(done))} % of the prescribed sessions "
            f"done on the {len(done)} logged days of the last {window}."
        )
    active = [a for a in t.alerts if a.status != "resolved"]
    if active:
        out.append("Alerts not yet resolved: " + "; ".join(a.label for a in active) + ".")
    if t.markers:
        last = max(t.markers, key=lambda m: m.date)
        out.append(f"Latest event or finding: {last.date.isoformat()}, {last.detail}")
    return out
