"""Detectors: vectorised decision rules over one patient's arrays.

Each function looks at every candidate day at once and answers "would an alert open here if
none were open?"; `episodes.py` walks those answers in time order, keeps at most one open
episode per (kind, metric), and decides when each resolves. Every decision at a log uses only
that log and earlier ones (causality, design §4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from rehab.domain.baseline import PainBaselines
from rehab.domain.clinical import clinically_important_pain_rise_array
from rehab.domain.config import DetectionConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class PainTriggers:
    """Per log of one metric: would a regression alert open here, and by which rule."""

    fired: BoolArray
    by_event_rule: BoolArray
    important_rise: FloatArray


def _window_ending_at(values: FloatArray, width: int, fill: float) -> FloatArray:
    """Row i holds values[i-width+1 .. i] (left-padded with `fill`)."""
    padded = np.concatenate([np.full(width - 1, fill), values])
    return sliding_window_view(padded, width)


def days_since_last(event_days: IntArray, days: IntArray) -> IntArray:
    """For each day, days since the most recent event on or before it (large if none)."""
    if event_days.shape[0] == 0:
        return np.full(days.shape[0], 1 << 30, dtype=np.int64)
    ordered = np.sort(event_days)
    idx = np.searchsorted(ordered, days, side="right") - 1
    since = days - ordered[np.clip(idx, 0, None)]
    return np.where(idx >= 0, since, 1 << 30).astype(np.int64)


def pain_triggers(
    days: IntArray,
    values: FloatArray,
    baselines: PainBaselines,
    provoking_days: IntArray,
    config: DetectionConfig,
) -> PainTriggers:
    """Where a pain-regression alert would open, judged against each log's own baseline."""
    level = baselines.level
    spread = baselines.spread
    important = clinically_important_pain_rise_array(np.nan_to_num(level, nan=0.0))
    day_threshold = np.maximum(important, config.day_noise_multiplier * spread)
    mean_threshold = np.maximum(important, config.mean_noise_multiplier * spread)

    width = config.window_logs
    window_values = _window_ending_at(values, width, np.nan)
    window_days = _window_ending_at(days.astype(np.float64), width, -1e9)
    excess = window_values - level[:, None]
    elevated = excess >= day_threshold[:, None]
    recent_enough = (days[:, None] - window_days) <= config.window_max_span_days
    elevated &= recent_enough
    n_elevated = elevated.sum(axis=1)
    capped = np.where(recent_enough, np.minimum(excess, config.excess_cap), 0.0)
    mean_excess = capped.sum(axis=1) / np.maximum(1, recent_enough.sum(axis=1))
    ordinary = (
        elevated[:, -1]
        & (n_elevated >= config.elevated_logs_needed)
        & (mean_excess >= mean_threshold)
    )

    # After a fall or injury: fewer consecutive elevated logs, on or after the event.
    needed = config.event_elevated_logs_needed
    event_threshold = np.maximum(important, config.event_noise_multiplier * spread)
    since_event = days_since_last(provoking_days, days)
    event_values = _window_ending_at(values, needed, np.nan)
    event_days = _window_ending_at(days.astype(np.float64), needed, -1e9)
    first_after_event = event_days[:, 0] >= (days - since_event)
    event_elevated = np.all(event_values - level[:, None] >= event_threshold[:, None], axis=1)
    by_event = (
        (since_event <= config.event_window_days)
        & first_after_event
        & event_elevated
        & ((days - event_days[:, 0]) <= config.window_max_span_days)
    )
    valid = ~np.isnan(level)
    fired = (ordinary | by_event) & valid
    return PainTriggers(
        fired=fired, by_event_rule=by_event & valid & ~ordinary, important_rise=important
    )


def median_of_last(values: FloatArray, width: int) -> FloatArray:
    """Median of the last `width` values at each index (fewer at the start)."""
    window = _window_ending_at(values, width, np.nan)
    sorted_window = np.sort(window, axis=1)  # NaN (padding) sorts last
    n = np.sum(~np.isnan(window), axis=1)
    lower = np.take_along_axis(sorted_window, ((n - 1) // 2)[:, None], axis=1)[:, 0]
    upper = np.take_along_axis(sorted_window, (n // 2)[:, None], axis=1)[:, 0]
    return (lower + upper) / 2.0


def first_sustained(condition: BoolArray, run: int) -> int | None:
    """Index at which `condition` has first held for `run` consecutive entries, or None."""
    if condition.shape[0] < run:
        return None
    ok = np.convolve(condition.astype(np.int64), np.ones(run, dtype=np.int64), "valid") >= run
    hits = np.flatnonzero(ok)
    return int(hits[0]) + run - 1 if hits.shape[0] else None
