"""The detector's pain baseline as a per-day band: an adapter over `rehab.domain.baseline`.

The domain computes, for every log, the baseline read from the logs *before* it
(`pain_baselines`, on series packed end to end on a virtual calendar) and lays a clinician's
pin over it (`apply_pin`); the clinically important change at a level is
`clinically_important_pain_rise`. It has no "baseline on each calendar day" function, which a
chart needs, so this module calls those same building blocks with the detector's own settings
(`DEFAULT_CONFIG`) and reads the result day by day:

- on a day with a log: the baseline that log is judged against;
- on a day without one: the baseline the next log will be judged against (the logs before it
  are the same), and after the last log the baseline a log on the day after the grid would get
  (a probe appended to the series: a log's own value never enters its own baseline, so the
  probe changes nothing else);
- while a pain alert is open (or over the span of a stored episode) the level the alert was
  opened against, because the detector freezes it (`rehab.domain.episodes`).

The band is level ± the clinically important change at that level (design §3: MCID, never below
the minimal detectable change of 2 points), clipped to the 0–10 scale by the figure.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rehab.charts.model import BaselineBand
from rehab.domain.baseline import LogCalendar, apply_pin, pain_baselines, pin_applies, pin_periods
from rehab.domain.clinical import clinically_important_pain_rise_array
from rehab.domain.config import DEFAULT_CONFIG, DetectionConfig

LEVEL_DECIMALS = 1


@dataclass(frozen=True, slots=True)
class Pin:
    """A clinician's pinned level for one metric, in force from `effective_from` until the
    next pin (None: the automatic baseline again from that day)."""

    level: float | None
    effective_from: dt.date
    spread: float | None = None


@dataclass(frozen=True, slots=True)
class Frozen:
    """A level held fixed over a span (an alert episode's baseline), `end` None: to the end."""

    start: dt.date
    end: dt.date | None
    level: float | None


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """One metric's answered logs (ascending dates) and the day of the probe read after them."""

    dates: Sequence[dt.date]
    values: Sequence[float]
    probe: dt.date
    pins: Sequence[Pin] = ()


def _gap(config: DetectionConfig) -> int:
    """Days between packed series: more than any lookback of the baseline."""
    return 2 + max(
        config.baseline_window_days,
        config.noise_window_days,
        config.baseline_recent_days,
        int(getattr(config, "rho_window_days", 0)),
    )


def levels_before(
    queries: Sequence[SeriesQuery], config: DetectionConfig = DEFAULT_CONFIG
) -> list[list[float | None]]:
    """For each query: the detector's baseline level before each of its logs, then at the probe
    (n + 1 values; None where the history is too short). One packed computation for the whole
    batch, as the detector does it."""
    if not queries:
        return []
    gap = _gap(config)
    days_parts: list[np.ndarray] = []
    value_parts: list[np.ndarray] = []
    local_parts: list[np.ndarray] = []
    bounds: list[tuple[int, int, int]] = []  # (first index, end index, origin ordinal)
    offset = gap
    position = 0
    for query in queries:
        if query.dates and query.probe <= query.dates[-1]:
            raise ValueError("the probe must come after the series' last log")
        origin = (query.dates[0] if query.dates else query.probe).toordinal()
        local = np.fromiter(
            (d.toordinal() - origin for d in query.dates), dtype=np.int64, count=len(query.dates)
        )
        local = np.append(local, query.probe.toordinal() - origin)
        values = np.append(np.asarray(query.values, dtype=np.float64), 0.0)
        days_parts.append(local + offset)
        value_parts.append(values)
        local_parts.append(local)
        n = local.shape[0]
        bounds.append((position, position + n, origin))
        position += n
        offset += int(local[-1]) + 1 + gap
    day = np.concatenate(days_parts)
    value = np.concatenate(value_parts)
    local_day = np.concatenate(local_parts)
    calendar = LogCalendar(day, offset + 1)
    # `local_day` (days since each series' first log) as the detector passes it: the noise is
    # measured around each series' trend.
    baselines = pain_baselines(day, value, calendar, config, local_day)
    for query, (lo, hi, origin) in zip(queries, bounds, strict=True):
        periods = pin_periods(
            [(p.effective_from.toordinal() - origin, p.level, p.spread) for p in query.pins]
        )
        for period in periods:
            applies = np.zeros(day.shape[0], dtype=np.bool_)
            applies[lo:hi] = pin_applies(period, local_day[lo:hi])
            baselines = apply_pin(baselines, applies, period.level, period.spread)
    level = baselines.level
    out: list[list[float | None]] = []
    for lo, hi, _ in bounds:
        part = level[lo:hi]
        out.append([None if np.isnan(v) else float(v) for v in part.tolist()])
    return out


def probe_levels(
    series: npt.NDArray[np.int64],
    day: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    probe_day: npt.NDArray[np.int64],
    pins: Mapping[int, Sequence[tuple[int, float | None, float | None]]] | None = None,
    config: DetectionConfig = DEFAULT_CONFIG,
) -> npt.NDArray[np.float64]:
    """The detector's baseline at one probe day for each of many series, all in arrays (the
    caseload's "against baseline" for hundreds of patients in a few milliseconds).

    Logs are (`series`, `day`, `value`) triples in any order, `day` a non-negative day number
    shared by all series; `probe_day[s]` is the day series `s` is read on (only its logs
    before that day count, as for a log on that day); `pins[s]` holds (first day, level,
    spread; level None: automatic again) of clinicians' pins, in the order given. Returns
    one level per series (NaN: history too short)."""
    n_series = probe_day.shape[0]
    if n_series == 0:
        return np.zeros(0)
    before = day < probe_day[series]
    series, day, value = series[before], day[before], value[before]
    stride = int(max(int(day.max(initial=0)), int(probe_day.max())) + 1 + _gap(config))
    all_series = np.concatenate([series, np.arange(n_series)])
    local = np.concatenate([day, probe_day]).astype(np.int64)
    values = np.concatenate([value, np.zeros(n_series)])
    virtual = _gap(config) + all_series * stride + local
    order = np.argsort(virtual, kind="stable")
    virtual, local, values, all_series = (
        virtual[order],
        local[order],
        values[order],
        all_series[order],
    )
    calendar = LogCalendar(virtual, int(virtual[-1]) + 2)
    baselines = pain_baselines(virtual, values, calendar, config, local)
    for s_index, items in (pins or {}).items():
        for period in pin_periods(items):
            applies = (all_series == s_index) & pin_applies(period, local)
            baselines = apply_pin(baselines, applies, period.level, period.spread)
    # Each series' probe is its last entry (probes come after every log they read).
    last = np.searchsorted(all_series, np.arange(n_series), side="right") - 1
    return np.asarray(baselines.level[last], dtype=np.float64)


def daily_band(
    start: dt.date,
    end: dt.date,
    dates: Sequence[dt.date],
    values: Sequence[int | None],
    *,
    pins: Sequence[Pin] = (),
    frozen: Sequence[Frozen] = (),
    config: DetectionConfig = DEFAULT_CONFIG,
) -> BaselineBand:
    """The baseline band on every day from `start` to `end` for one pain metric."""
    if end < start:
        raise ValueError("end before start")
    answered = [(d, v) for d, v in zip(dates, values, strict=True) if v is not None and d <= end]
    log_dates = [d for d, _ in answered]
    probe = end + dt.timedelta(days=1)
    [levels] = levels_before(
        [SeriesQuery(log_dates, [float(v) for _, v in answered], probe, pins)], config
    )
    n_days = (end - start).days + 1
    level: list[float | None] = []
    for i in range(n_days):
        day = start + dt.timedelta(days=i)
        level.append(levels[bisect_left(log_dates, day)])
    for span in frozen:
        first = max(0, (span.start - start).days)
        last = n_days - 1 if span.end is None else min(n_days - 1, (span.end - start).days)
        for i in range(first, last + 1):
            level[i] = span.level
    return BaselineBand(
        level=tuple(None if v is None else round(v, LEVEL_DECIMALS) for v in level),
        margin=tuple(margins(level)),
        source=describe(pins, config),
    )


def margins(level: Sequence[float | None]) -> list[float | None]:
    """The clinically important change at each level (None where the level is unknown)."""
    known = np.array([np.nan if v is None else v for v in level], dtype=np.float64)
    rise = clinically_important_pain_rise_array(np.nan_to_num(known, nan=0.0))
    return [None if np.isnan(k) else float(r) for k, r in zip(known, rise, strict=True)]


def describe(pins: Sequence[Pin], config: DetectionConfig = DEFAULT_CONFIG) -> str:
    """How the band was obtained, in words (design §2: a baseline is shown with its method)."""
    text = (
        f"Detector baseline: robust mean of the logs of the previous "
        f"{config.baseline_window_days} days (the last {config.baseline_recent_days} days when "
        f"pain has fallen by {config.follow_down_min_drop:g} point or more), shown once "
        f"{config.baseline_min_logs} logs are available; held at the alert's baseline while a "
        f"pain alert is open. Band: ± the clinically important change (at least 2 points)."
    )
    periods = pin_periods([(p.effective_from.toordinal(), p.level, p.spread) for p in pins])
    for period in periods:
        start = dt.date.fromordinal(period.start).isoformat()
        until = (
            ""
            if period.until is None
            else f" until {dt.date.fromordinal(period.until).isoformat()}"
        )
        text += f" Pinned by a clinician at {period.level:g} from {start}{until}."
    return text
