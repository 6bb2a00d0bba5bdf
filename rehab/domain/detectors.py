"""Detectors: vectorised decision rules over packed logs (see `baseline.py` for packing).

Each function answers, for every log at once, "would an alert open here if none were open?",
using only that log and earlier logs of the same series (causality, design §4). `episodes.py`
walks those answers in time order, keeps at most one open episode per (kind, metric) and
decides when each resolves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rehab.domain.baseline import LogCalendar, PainBaselines
from rehab.domain.clinical import clinically_important_pain_rise_array
from rehab.domain.config import DetectionConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

EVENT_RULE = 2  # `PainDecisions.rule` value of the after-a-fall rule (a 2-log window)
# Sums from cumulative sums carry float rounding: a window exactly at its threshold counts.
_ROUNDING = 1e-9


@dataclass(frozen=True, slots=True)
class PainDecisions:
    """Per log of packed pain series.

    `rule` is 0 where no alert would open, else the number of logs of the window that fired
    (2 for the after-a-fall rule); `anchor` is the first log of that window (its baseline is
    the one the alert is judged against); `important_rise` is the clinically important rise
    from each log's baseline; `recent_median` the median of the last 3 logs.
    """

    rule: IntArray
    anchor: IntArray
    important_rise: FloatArray
    recent_median: FloatArray


def recent_median(values: FloatArray, series_first: IntArray) -> FloatArray:
    """Median of the last 3 logs of the same series at each log (fewer at its start)."""
    index = np.arange(values.shape[0])
    one_back = values[np.maximum(index - 1, 0)]
    two_back = values[np.maximum(index - 2, 0)]
    low = np.minimum(values, one_back)
    high = np.maximum(values, one_back)
    median = np.maximum(low, np.minimum(high, two_back))
    second = index - 1 == series_first
    median[second] = (low[second] + high[second]) / 2.0
    first = index == series_first
    median[first] = values[first]
    return median


def last_event_on_or_before(event_days: IntArray, day: IntArray) -> IntArray:
    """Day of the latest event on or before each day (a very old day if none)."""
    never = np.iinfo(np.int64).min // 2
    if event_days.shape[0] == 0:
        return np.full(day.shape[0], never, dtype=np.int64)
    position = np.searchsorted(event_days, day, side="right") - 1
    latest = event_days[np.maximum(position, 0)]
    return np.where(position >= 0, latest, never)


class _Lagged:
    """values[i - lag] at every i for lags 0..max_lag, as views of one padded copy."""

    def __init__(self, values: npt.NDArray[Any], max_lag: int, fill: Any) -> None:
        self.n = values.shape[0]
        self.max_lag = max_lag
        self.padded = np.empty(self.n + max_lag, dtype=values.dtype)
        self.padded[:max_lag] = fill
        self.padded[max_lag:] = values

    def __getitem__(self, lag: int) -> npt.NDArray[Any]:
        start = self.max_lag - lag
        return self.padded[start : start + self.n]


def pain_decisions(
    day: IntArray,
    value: FloatArray,
    series_first: IntArray,
    baselines: PainBaselines,
    provoking_days: IntArray,
    config: DetectionConfig,
) -> PainDecisions:
    """Where a pain-regression alert would open (see `DetectionConfig` for the rules).

    `series_first[i]` is the index of the first log of log i's series; `provoking_days` are
    the (virtual, sorted) days of falls and injuries. A window's baseline is the one before its
    first log (its `anchor`), so the rise being judged is never part of its own baseline.
    """
    n_logs = day.shape[0]
    index = np.arange(n_logs)
    position = index - series_first  # logs before this one in its series
    level = baselines.level
    noise = baselines.noise
    important = clinically_important_pain_rise_array(np.fmax(level, 0.0))  # fmax: NaN → 0
    capped = np.fmin(value, level + config.excess_cap_noise * noise)  # fmin: NaN → value
    elevated = value - level >= config.elevated_margin  # False where no baseline (NaN)
    widest = max(width for width, _ in config.windows)
    lagged_value = _Lagged(capped, 1, np.nan)
    lagged_day = _Lagged(day, widest - 1, 0)
    elevated_count = np.zeros(n_logs + 1, dtype=np.int64)
    np.cumsum(elevated, out=elevated_count[1:])
    capped_total = np.zeros(n_logs + 1)
    np.cumsum(capped, out=capped_total[1:])

    rule = np.zeros(n_logs, dtype=np.int64)
    kept = config.trimmed_logs
    # Longest window first, so that shorter (earlier, more specific) windows overwrite.
    for width, multiplier in sorted(config.windows, reverse=True):
        lag = width - 1
        # Judged against the baseline before the window's first log (lag logs back).
        needed = _Lagged(level + np.maximum(important, multiplier * noise), lag, np.inf)[lag]
        start = np.maximum(index - lag, 0)
        # The trimmed mean is at most the plain mean: only windows whose plain mean reaches
        # the threshold need their two highest logs found (a handful of rows, not all).
        possible = np.flatnonzero(
            (position >= lag)
            & (capped_total[index + 1] - capped_total[start] >= width * needed - _ROUNDING)
            & (day - lagged_day[lag] <= config.window_span_per_log * width + 1)
            & (
                elevated_count[index + 1] - elevated_count[start]
                >= min(width, config.elevated_logs_needed)
            )
        )
        if possible.shape[0] == 0:
            continue
        windows = capped[possible[:, None] - np.arange(lag, -1, -1)[None, :]]
        lowest = np.partition(windows, width - kept - 1, axis=1)[:, : width - kept]
        fired = possible[lowest.sum(axis=1) >= (width - kept) * needed[possible] - _ROUNDING]
        rule[fired] = width

    # After a fall or injury: the two latest logs, both on or after the event.
    if provoking_days.shape[0]:
        event_day = last_event_on_or_before(provoking_days, day)
        needed = level + np.maximum(important, config.event_noise_multiplier * noise)
        by_event = (
            (position >= 1)
            & (day - event_day <= config.event_window_days)
            & (lagged_day[1] >= event_day)
            & elevated
            & _Lagged(elevated, 1, False)[1]
            & ((capped + lagged_value[1]) / 2.0 >= _Lagged(needed, 1, np.inf)[1] - _ROUNDING)
        )
        rule[by_event] = EVENT_RULE

    anchor = np.maximum(index - np.maximum(rule, 1) + 1, 0)
    return PainDecisions(
        rule=rule,
        anchor=anchor,
        important_rise=important,
        recent_median=recent_median(value, series_first),
    )


@dataclass(frozen=True, slots=True)
class AdherenceDecisions:
    """Per log of packed adherence series: would an adherence_drop open here, and its terms."""

    fired: BoolArray
    usual: FloatArray
    usual_logs: IntArray
    current: FloatArray
    threshold: FloatArray
    low: BoolArray


def adherence_decisions(
    day: IntArray,
    value: FloatArray,
    series_first: IntArray,
    calendar: LogCalendar,
    config: DetectionConfig,
) -> AdherenceDecisions:
    """A sustained fall of done-vs-prescribed below the patient's usual level."""
    n_logs = day.shape[0]
    index = np.arange(n_logs)
    total = np.concatenate([[0.0], np.cumsum(value)])
    upto = calendar.before(day - config.adherence_gap_days + 1)
    since = calendar.before(day - config.adherence_gap_days - config.adherence_baseline_days + 1)
    usual_logs = (upto - since).astype(np.int64)
    usual = (total[upto] - total[since]) / np.maximum(usual_logs, 1)
    width = config.adherence_window_logs
    start = np.maximum(index - width + 1, 0)
    current = (total[index + 1] - total[start]) / (index - start + 1)
    threshold = np.maximum(config.adherence_min_drop, config.adherence_min_relative_drop * usual)
    low = value <= usual - config.adherence_min_drop
    low_before = np.concatenate([[0], np.cumsum(low)])
    fired = (
        (index - width + 1 >= series_first)
        & (day - day[start] <= config.adherence_window_max_span_days)
        & (usual_logs >= config.adherence_min_baseline_logs)
        & (usual - current >= threshold)
        & (low_before[index + 1] - low_before[start] >= config.adherence_low_logs_needed)
        & low
    )
    return AdherenceDecisions(fired, usual, usual_logs, current, threshold, low)
