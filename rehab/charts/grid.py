"""Daily series on a day grid: one array entry per calendar day, so a trace needs only its
first day and a one-day step (`x0`/`dx`) instead of a date string per point."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

DAY_MS = 86_400_000
SMOOTH_DAYS = 7
SMOOTH_MIN_LOGS = 3


def on_grid(
    start: dt.date, end: dt.date, dates: Sequence[dt.date], values: Sequence[float | None]
) -> list[float | None]:
    """`values` placed on the days `start`..`end` (None on days without a value)."""
    out: list[float | None] = [None] * ((end - start).days + 1)
    origin = start.toordinal()
    for day, value in zip(dates, values, strict=True):
        i = day.toordinal() - origin
        if 0 <= i < len(out):
            out[i] = value
    return out


def rounded(values: Sequence[float | None], decimals: int = 1) -> list[float | int | None]:
    """Rounded for the payload; whole numbers as ints ("2" rather than "2.0")."""
    if not values:
        return []
    raw = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    r = np.round(raw, decimals)
    whole = r == np.floor(r)
    return [
        None if x != x else (int(x) if w else x)  # NaN is not equal to itself
        for x, w in zip(r.tolist(), whole.tolist(), strict=True)
    ]


def smoothed(
    values: Sequence[float | None], window: int = SMOOTH_DAYS, min_logs: int = SMOOTH_MIN_LOGS
) -> list[float | None]:
    """Centred rolling mean of the logged values over `window` days (None where fewer than
    `min_logs` logs fall in the window). A display aid only: detection never looks ahead."""
    n = len(values)
    if n == 0:
        return []
    raw = np.array([np.nan if v is None else float(v) for v in values])
    present = ~np.isnan(raw)
    total = np.concatenate([[0.0], np.cumsum(np.where(present, raw, 0.0))])
    count = np.concatenate([[0], np.cumsum(present)])
    half = window // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    k = count[hi] - count[lo]
    mean = (total[hi] - total[lo]) / np.maximum(k, 1)
    return [float(m) if c >= min_logs else None for m, c in zip(mean, k, strict=True)]


def iso(day: dt.date) -> str:
    return day.isoformat()


def noon(day: dt.date) -> str:
    """Half a day after `day`'s start: the edge of a range that shows whole daily points."""
    return f"{day.isoformat()} 12:00"


def range_for(start: dt.date, end: dt.date, days: int | None) -> list[str]:
    """The x range showing the last `days` days up to `end` (all of `start`..`end` for None),
    with half a day of room on each side so the first and last points and bars show whole."""
    first = start if days is None else max(start, end - dt.timedelta(days=days - 1))
    return [noon(first - dt.timedelta(days=1)), noon(end)]
