"""Per-day pain baselines: robust level and spread of the recent stable period, or a pin.

Pain ratings are integers 0–10, so every rolling statistic here is read off rolling histograms
(cumulative counts per rating, one row per calendar day): a window's counts are a difference of
two rows, and its median and quartiles come from the cumulative distribution. That makes a
patient-year of baselines a handful of array operations instead of a loop of sorts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from rehab.domain.config import DetectionConfig
from rehab.domain.series import PinnedBaseline

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PAIN_LEVELS = 11
_RATINGS = np.arange(PAIN_LEVELS, dtype=np.float64)
# IQR of a normal distribution in SDs.
_IQR_PER_SD = 1.349


@dataclass(frozen=True, slots=True)
class PainBaselines:
    """Baseline at each log of one metric, as used to judge that log.

    `level`/`spread` are NaN where there is not enough history. `window_start`/`window_end` are
    the calendar-day indexes of the period the automatic baseline was read from; `pinned` marks
    logs judged against a clinician's pin.
    """

    level: FloatArray
    spread: FloatArray
    logs_used: IntArray
    window_start: IntArray
    window_end: IntArray
    pinned: BoolArray


def cumulative_histogram(
    days: IntArray, values: FloatArray, n_days: int, excluded: BoolArray | None = None
) -> IntArray:
    """Row t = counts per rating among logs on calendar days < t (shape n_days+1 × 11)."""
    onehot = np.zeros((n_days + 1, PAIN_LEVELS), dtype=np.int64)
    keep = np.ones(days.shape[0], dtype=np.bool_) if excluded is None else ~excluded[days]
    onehot[days[keep] + 1, values[keep].astype(np.int64)] = 1
    return np.cumsum(onehot, axis=0)


def kth_smallest(cdf: IntArray, k: IntArray) -> FloatArray:
    """Rating of the k-th smallest log (1-based) per row of a cumulative count table."""
    return np.argmax(cdf >= k[:, None], axis=1).astype(np.float64)


def median_from_counts(counts: IntArray) -> tuple[FloatArray, IntArray]:
    """Median rating per row of a count table, and the number of logs per row."""
    cdf = np.cumsum(counts, axis=1)
    n = cdf[:, -1]
    lower = kth_smallest(cdf, (n + 1) // 2)
    upper = kth_smallest(cdf, n // 2 + 1)
    return (lower + upper) / 2.0, n


def pain_baselines(
    days: IntArray,
    values: FloatArray,
    n_days: int,
    config: DetectionConfig,
    excluded: BoolArray | None = None,
    pins: Sequence[PinnedBaseline] = (),
    origin: date | None = None,
) -> PainBaselines:
    """Baseline for judging each log (`days`, `values`: one metric's logs, days ascending).

    The automatic level is the median of the logs in the `baseline_window_days` ending
    `baseline_gap_days` before the log judged, lowered to the median of the last
    `baseline_recent_days` of that period when the patient has been improving. `excluded` marks
    calendar days not to learn from (open regression episodes: not a stable period). Pins
    replace the level (and the spread, when pinned) from their effective date on.
    """
    cumulative = cumulative_histogram(days, values, n_days, excluded)
    window_end = np.clip(days - config.baseline_gap_days, -1, n_days - 1)
    window_start = np.clip(window_end - config.baseline_window_days + 1, 0, n_days)
    recent_start = np.clip(window_end - config.baseline_recent_days + 1, 0, n_days)
    upper_row = window_end + 1
    counts = cumulative[upper_row] - cumulative[window_start]
    cdf = np.cumsum(counts, axis=1)
    n = cdf[:, -1]
    level = (kth_smallest(cdf, (n + 1) // 2) + kth_smallest(cdf, n // 2 + 1)) / 2.0
    q1 = kth_smallest(cdf, np.maximum(1, (n + 3) // 4))
    q3 = kth_smallest(cdf, np.maximum(1, (3 * n + 3) // 4))
    spread = np.clip((q3 - q1) / _IQR_PER_SD, config.spread_floor, config.spread_cap)

    recent_level, recent_n = median_from_counts(cumulative[upper_row] - cumulative[recent_start])
    follow_down = (recent_n >= config.baseline_recent_min_logs) & (recent_level < level)
    level = np.where(follow_down, recent_level, level)

    enough = n >= config.baseline_min_logs
    level = np.where(enough, level, np.nan)
    spread = np.where(enough, spread, np.nan)
    pinned = np.zeros(days.shape[0], dtype=np.bool_)
    if pins and origin is not None:
        for pin in pins:
            from_day = (pin.effective_from - origin).days
            applies = days >= from_day
            level = np.where(applies, pin.level, level)
            pin_spread = pin.spread if pin.spread is not None else config.spread_floor
            spread = np.where(
                applies,
                np.where(np.isnan(spread) | (pin.spread is not None), pin_spread, spread),
                spread,
            )
            pinned |= applies
    return PainBaselines(
        level=level,
        spread=spread,
        logs_used=n.astype(np.int64),
        window_start=window_start.astype(np.int64),
        window_end=window_end.astype(np.int64),
        pinned=pinned,
    )
