"""Pain baselines: robust level and noise of the recent stable period, or a clinician's pin.

Works on *packed* logs: the logs of many (patient, metric) series laid end to end, each series
on its own stretch of a virtual calendar (see `LogCalendar`), so that one set of array
operations serves a whole batch and no window can reach into another series.

Every rolling statistic is a window mean over cumulative sums: a lookup per window end, so a
patient-year of baselines costs a few dozen array operations and no sorting.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rehab.domain.config import DetectionConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class LogCalendar:
    """Counts logs before any virtual day in O(1): `before(t)` = number of logs with day < t.

    Packed series sit on one virtual calendar, each some days after the previous one ends,
    more than any lookback: no window reaches into another series. (A lookup in a cumulative
    count is several times cheaper than a binary search per log.)
    """

    def __init__(self, day: IntArray, calendar_days: int) -> None:
        marks = np.zeros(calendar_days + 1, dtype=np.int64)
        marks[day + 1] = 1
        self.count = np.cumsum(marks)

    def before(self, day: IntArray) -> IntArray:
        return self.count[np.maximum(day, 0)]

    def before_day(self, day: int) -> int:
        return int(self.count[max(day, 0)])


@dataclass(frozen=True, slots=True)
class PainBaselines:
    """Per log: the baseline read from the logs *before* it (NaN level: not enough history).

    `level` is the robust mean of the baseline period (each log capped so a benign flare does
    not move it); `noise` the robust day-to-day SD of the noise period; `logs_used` and
    `window_days` say which period `level` came from; `followed_down` marks levels taken from
    the recent days of an improving patient; `pinned` marks a clinician's pin.
    """

    level: FloatArray
    noise: FloatArray
    logs_used: IntArray
    window_days: IntArray
    followed_down: BoolArray
    pinned: BoolArray

    def shown_level(
        self, day: IntArray, value: FloatArray, calendar: LogCalendar, log: int
    ) -> float:
        """The baseline shown to clinicians for a decision anchored at `log`: the pin, or the
        median of the logs of the period the level came from (robust and easy to read)."""
        if self.pinned[log]:
            return float(self.level[log])
        start = calendar.before_day(int(day[log]) - int(self.window_days[log]))
        return float(statistics.median(value[start:log].tolist()))


def pain_baselines(
    day: IntArray, value: FloatArray, calendar: LogCalendar, config: DetectionConfig
) -> PainBaselines:
    """Baseline before each log of packed series (`day` ascending within each series).

    Each log enters the noise capped `noise_cap_points` above the plain mean of the baseline
    period before it, and the level capped `excess_cap_noise` × noise above it, so one or two
    flare days move neither. An improving patient's level follows her down: when the recent
    `baseline_recent_days` are at least `follow_down_min_drop` lower, they are the baseline.
    """
    n_logs = day.shape[0]
    upto = np.arange(n_logs)
    first_long = calendar.before(day - config.baseline_window_days)
    n = upto - first_long
    safe_n = np.maximum(n, 1)
    total = np.zeros(n_logs + 1)
    np.cumsum(value, out=total[1:])
    plain = (total[upto] - total[first_long]) / safe_n
    enough = n >= config.baseline_min_logs

    for_noise = np.where(enough, np.minimum(value, plain + config.noise_cap_points), value)
    np.cumsum(for_noise, out=total[1:])
    squares = np.zeros(n_logs + 1)
    np.cumsum(for_noise * for_noise, out=squares[1:])
    first_noise = calendar.before(day - config.noise_window_days)
    noise_n = np.maximum(upto - first_noise, 1)
    noise_mean = (total[upto] - total[first_noise]) / noise_n
    variance = (squares[upto] - squares[first_noise]) / noise_n - noise_mean * noise_mean
    noise = np.maximum(np.sqrt(np.maximum(variance, 0.0)), config.noise_floor)

    for_level = np.where(enough, np.minimum(value, plain + config.excess_cap_noise * noise), value)
    np.cumsum(for_level, out=total[1:])
    level = (total[upto] - total[first_long]) / safe_n
    first_recent = calendar.before(day - config.baseline_recent_days)
    recent_n = upto - first_recent
    recent_level = (total[upto] - total[first_recent]) / np.maximum(recent_n, 1)
    followed_down = (recent_n >= config.baseline_recent_min_logs) & (
        recent_level <= level - config.follow_down_min_drop
    )
    return PainBaselines(
        level=np.where(enough, np.where(followed_down, recent_level, level), np.nan),
        noise=noise,
        logs_used=np.where(followed_down, recent_n, n),
        window_days=np.where(
            followed_down, config.baseline_recent_days, config.baseline_window_days
        ),
        followed_down=followed_down,
        pinned=np.zeros(n_logs, dtype=np.bool_),
    )


def apply_pin(
    baselines: PainBaselines,
    applies: BoolArray,
    level: float,
    noise: float | None,
) -> PainBaselines:
    """Baselines with a clinician's pin in force where `applies` (level, and noise if given)."""
    return PainBaselines(
        level=np.where(applies, level, baselines.level),
        noise=np.where(applies, noise, baselines.noise) if noise is not None else baselines.noise,
        logs_used=np.where(applies, 0, baselines.logs_used),
        window_days=np.where(applies, 0, baselines.window_days),
        followed_down=baselines.followed_down & ~applies,
        pinned=baselines.pinned | applies,
    )
