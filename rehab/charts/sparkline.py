"""The caseload's 30-day trend lines as small inline SVG paths (no plotly: 500 of them must cost
a few milliseconds, and an SVG path needs no script).

Leg pain is a solid line, back pain a dashed one (the page's CSS styles them by class); days
without a log break the line, a lone logged day is a dot. The description says the same in
words for screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 120
HEIGHT = 32
PAD = 3


@dataclass(frozen=True, slots=True)
class Sparkline:
    leg_path: str
    back_path: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT


def path(values: Sequence[float | None], width: int = WIDTH, height: int = HEIGHT) -> str:
    """An SVG path through the values (0–10, one per day; None or NaN breaks the line)."""
    n = len(values)
    if n == 0:
        return ""
    step = (width - 2 * PAD) / max(n - 1, 1)
    scale = (height - 2 * PAD) / 10
    present = [v is not None and v == v for v in values]  # NaN is not equal to itself
    parts: list[str] = []
    pen_down = False
    for i, v in enumerate(values):
        if not present[i] or v is None:
            pen_down = False
            continue
        x = round(PAD + i * step)
        y = round(height - PAD - v * scale)
        alone = (i == 0 or not present[i - 1]) and (i == n - 1 or not present[i + 1])
        if alone:
            parts.append(f"M{x} {y}h0")
        elif pen_down:
            parts.append(f"L{x} {y}")
        else:
            parts.append(f"M{x} {y}")
        pen_down = True
    return "".join(parts)


def _phrase(name: str, values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None and v == v]
    if not known:
        return f"{name}: no logs"
    if len(known) == 1:
        return f"{name}: one log, {known[0]:g}"
    return f"{name} from {known[0]:g} to {known[-1]:g} (range {min(known):g}–{max(known):g})"


def sparkline(
    leg: Sequence[float | None], back: Sequence[float | None], days: int | None = None
) -> Sparkline:
    days = days if days is not None else len(leg)
    description = f"Last {days} days: {_phrase('leg pain', leg)}; {_phrase('back pain', back)}."
    return Sparkline(path(leg), path(back), description)
