"""The plain data the figure builders take (built by `rehab.services.trajectory` and
`rehab.services.records`; nothing here knows where it came from)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

PAIN_METRICS: tuple[str, ...] = ("leg_pain", "back_pain")


@dataclass(frozen=True, slots=True)
class DailyLogs:
    """One entry per logged day, dates strictly increasing (None: not answered)."""

    dates: tuple[dt.date, ...] = ()
    leg_pain: tuple[int | None, ...] = ()
    back_pain: tuple[int | None, ...] = ()
    # Fraction 0–1 of the prescribed session done (None: nothing prescribed / unknown).
    adherence: tuple[float | None, ...] = ()

    def column(self, metric: str) -> tuple[int | None, ...]:
        if metric == "leg_pain":
            return self.leg_pain
        if metric == "back_pain":
            return self.back_pain
        raise KeyError(metric)


@dataclass(frozen=True, slots=True)
class BaselineBand:
    """The detector's baseline on each day of a grid (index 0 = the grid's first day).

    `level[i]` is the baseline a log on that day is judged against (None: not enough history
    yet); `margin[i]` the clinically important change at that level, so the band is
    level ± margin. `source` says in words how it was obtained.
    """

    level: tuple[float | None, ...]
    margin: tuple[float | None, ...]
    source: str = ""

    def current(self) -> float | None:
        return self.level[-1] if self.level else None


@dataclass(frozen=True, slots=True)
class AlertSpan:
    """An alert episode drawn as a shaded span from `onset` to `end` (None: still open)."""

    kind: str
    metric: str  # "" for kinds without a metric
    severity: str  # "routine" | "urgent"
    status: str  # "open" | "acknowledged" | "resolved"
    onset: dt.date
    end: dt.date | None
    label: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A dated event or clinical finding shown as a labelled vertical line.

    `kind` is an event type ("fall", "surgery", ...) or "findings"; `label` is the short text on
    the chart ("Fall"); `detail` the sentence shown on hover and in the text alternative.
    """

    date: dt.date
    kind: str
    label: str
    detail: str


@dataclass(frozen=True, slots=True)
class OutcomePoint:
    date: dt.date
    instrument: str  # "odi" | "psfs"
    score: float


@dataclass(frozen=True, slots=True)
class Trajectory:
    """Everything the clinician's main chart shows, on the day grid `start`..`end`."""

    start: dt.date
    end: dt.date
    logs: DailyLogs
    baselines: Mapping[str, BaselineBand] = field(default_factory=dict)
    alerts: tuple[AlertSpan, ...] = ()
    markers: tuple[Marker, ...] = ()

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True, slots=True)
class ProgressData:
    """The patient's own progress: weekly averages against where they started."""

    week_ends: tuple[dt.date, ...]
    leg_pain: tuple[float | None, ...]
    back_pain: tuple[float | None, ...]
    start_leg: float | None
    start_back: float | None
    # "when you started", or "a year ago" when the chart begins after the first log.
    start_label: str = "when you started"
