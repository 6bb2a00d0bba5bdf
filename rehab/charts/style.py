"""Colours, symbols and words shared by the figures.

Colours are the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies),
and colour is never the only signal: leg pain is drawn with circles and a solid line, back pain
with diamonds and a dashed line, every event has its own symbol and a text label, and every
alert span carries its label.
"""

from __future__ import annotations

from typing import Any

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
INK = "#1b1f24"
MUTED = "#4a5561"
GRID = "#e2e6ea"

METRIC_STYLE: dict[str, dict[str, str]] = {
    "leg_pain": {
        "name": "Leg pain",
        "color": "#0072B2",
        "band": "rgba(0,114,178,0.14)",
        "symbol": "circle",
        "dash": "solid",
    },
    "back_pain": {
        "name": "Back pain",
        "color": "#D55E00",
        "band": "rgba(213,94,0,0.14)",
        "symbol": "diamond",
        "dash": "dash",
    },
}
ADHERENCE_COLOR = "#009E73"
ODI_COLOR = "#CC79A7"
PSFS_COLOR = "#0072B2"

ALERT_FILL = {"urgent": "rgba(213,94,0,0.13)", "routine": "rgba(230,159,0,0.13)"}
ALERT_LINE = {"urgent": "#B34700", "routine": "#8A5F00"}
# Status is told by the border as well as the label: solid open, dashed acknowledged, dotted
# resolved.
STATUS_DASH = {"open": "solid", "acknowledged": "dash", "resolved": "dot"}

EVENT_LINE = "#4a5561"
FINDING_LINE = "#7B3294"

MARKER_SYMBOLS: dict[str, str] = {
    "fall": "triangle-down",
    "surgery": "cross",
    "imaging": "square",
    "injury": "x",
    "diagnosis": "star",
    "symptom_return": "triangle-up",
    "medication_change": "pentagon",
    "travel": "hexagon",
    "other": "circle-open",
    "findings": "diamond-open",
}
MARKER_LABELS: dict[str, str] = {
    "fall": "Fall",
    "surgery": "Surgery",
    "imaging": "Imaging",
    "injury": "Injury",
    "diagnosis": "Diagnosis",
    "symptom_return": "Symptoms back",
    "medication_change": "Medication",
    "travel": "Travel",
    "other": "Event",
    "findings": "Findings",
}

ALERT_KIND_LABELS: dict[str, str] = {
    "pain_regression": "pain up",
    "adherence_drop": "adherence down",
    "red_flag": "red flag",
    "missed_logs": "missed logs",
    "function_decline": "function down",
}

DATE_HOVER = "%a %-d %b %Y"


def base_layout(height: int) -> dict[str, Any]:
    """The layout every figure starts from: no plotly template (the page's look, and a few
    hundred bytes instead of a few kilobytes), readable fonts, room for axis titles."""
    return {
        "template": {},
        "height": height,
        "autosize": True,
        "font": {"family": FONT, "size": 13, "color": INK},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "margin": {"l": 64, "r": 16, "t": 28, "b": 40},
        "showlegend": False,
        "hovermode": "closest",
        "hoverlabel": {"font": {"family": FONT, "size": 13}, "align": "left"},
        "dragmode": "pan",
    }


def axis(**extra: Any) -> dict[str, Any]:
    return {
        "showgrid": True,
        "gridcolor": GRID,
        "zeroline": False,
        "linecolor": MUTED,
        "ticks": "outside",
        "tickcolor": MUTED,
        "fixedrange": True,
        **extra,
    }
