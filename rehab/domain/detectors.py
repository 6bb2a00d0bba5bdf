"""Detectors: vectorised decision rules over packed logs (see `baseline.py` for packing).

Each function answers, for every log at once, "would an alert open here if none were open?",
using only that log and earlier logs of the same series (causality, design §4). `episodes.py`
walks those answers in time order, keeps at most one open episode per (kind, metric) and
decides when each resolves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rehab.domain.baseline import LogCalendar, PainBaselines
from rehab.domain.clinical import clinically_important_pain_rise_array
from rehab.domain.config import DetectionConfig
from rehab.domain.noise import mean_variance_factor, trimmed_mean_moments

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
    (2 for the after-a-fall rule, which takes precedence); `anchor` is the first log of that
    window (its baseline is the one the alert is judged against); `important_rise` is the
    clinically important rise from each log's baseline; `recent_median` the median of the
    last 3 logs.

    Each kind of window is also kept on its own, with the statistic it decided on as logged
    (what an alert reports as its current level): `window_width` and `window_level` for the
    shortest window of 3–15 logs that fired (its trimmed mean: the 2 highest logs left out),
    `event_level` and `event_day` for the after-a-fall rule (the mean of its 2 logs, and the
    virtual day of the fall or injury they follow); 0 / NaN where that kind did not fire.
    """

    rule: IntArray
    anchor: IntArray
    important_rise: FloatArray
    recent_median: FloatArray
    window_width: IntArray
    window_level: FloatArray
    event_level: FloatArray
    event_day: IntArray


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


class _AnchorTerms:
    """The parts of a window's threshold that depend only on its anchor's baseline, worked out
    for the few anchors that need them."""

    def __init__(
        self, baselines: PainBaselines, important: FloatArray, config: DetectionConfig
    ) -> None:
        self.baselines = baselines
        self.important = important
        self.config = config

    def baseline_error(self, anchor: IntArray) -> FloatArray:
        """The baseline level's own error: variance of the mean of its logs (autocorrelated,
        ρ^(days per log)), in units of σ²; none for a clinician's pin."""
        b = self.baselines
        logs_used = b.logs_used[anchor].astype(np.float64)
        days_per_log = np.maximum(b.window_days[anchor] / np.maximum(logs_used, 1.0), 1.0)
        error = mean_variance_factor(logs_used, b.rho[anchor] ** days_per_log)
        return np.asarray(np.where(b.pinned[anchor], 0.0, error), dtype=np.float64)

    def threshold(
        self, anchor: IntArray, z: float, mean: FloatArray, spread: FloatArray
    ) -> FloatArray:
        """Level a statistic with null `mean` and SD `spread` (units of σ) must reach."""
        b = self.baselines
        config = self.config
        noise_logs = b.noise_logs[anchor]
        # Fewer logs a month are fewer chances of a false alert a month: a patient who logs a
        # fraction f of days is judged at z + ln(f)/z (about the same false alerts a month).
        density = np.clip(noise_logs / config.noise_window_days, 0.05, 1.0)
        z_here = z + config.density_adjust * np.log(density) / z
        # σ is itself estimated, from about n·(1 − ρ²)/(1 + ρ²) independent values: a
        # Student-t quantile instead of a normal one (z + (z³ + z)/(4·df), Cornish–Fisher)
        # keeps a patient with little history from alerting on an underestimated SD.
        rho2 = b.rho[anchor] ** 2
        df = np.maximum(noise_logs * (1.0 - rho2) / (1.0 + rho2), 2.0)
        z_here = z_here + config.t_correction * (z_here**3 + z_here) / (4.0 * df)
        level = b.level[anchor]
        noise = b.noise[anchor]
        statistical = level + noise * (mean + z_here * spread)
        # A clear rise is always enough: `clear_rise` points (`clear_rise_noise` × σ for a
        # noisier patient) over the kept logs, however uncertain the statistics.
        clear = level + np.maximum(config.clear_rise, config.clear_rise_noise * noise)
        statistical = np.minimum(statistical, clear)
        return np.asarray(np.maximum(level + self.important[anchor], statistical), dtype=np.float64)


def pain_decisions(
    day: IntArray,
    value: FloatArray,
    series_first: IntArray,
    baselines: PainBaselines,
    provoking_days: IntArray,
    config: DetectionConfig,
    shown: Callable[[IntArray], FloatArray] | None = None,
) -> PainDecisions:
    """Where a pain-regression alert would open (see `DetectionConfig` for the rules).

    `series_first[i]` is the index of the first log of log i's series; `provoking_days` are
    the (virtual, sorted) days of falls and injuries. A window's baseline is the one before its
    first log (its `anchor`), so the rise being judged is never part of its own baseline.
    `shown` gives the baseline an alert anchored at a log would show (`ShownBaselines`): the
    window's statistic as logged must also be the clinically important rise above it, so an
    alert never reports less of a rise than it cites.

    A window of k logs fires when its trimmed mean (2 highest logs dropped, each log capped at
    `excess_cap_noise` × noise above the baseline) is up by the clinically important rise and
    by mean + z·SD of that statistic under the patient's own noise: SD σ, log-to-log
    autocorrelation ρ^(days per log) (`rehab.domain.noise` has the trimmed mean's moments), plus
    the error of the baseline level itself (the mean of its n logs, also autocorrelated).
    """
    n_logs = day.shape[0]
    index = np.arange(n_logs)
    position = index - series_first  # logs before this one in its series
    level = baselines.level
    noise = baselines.noise
    important = clinically_important_pain_rise_array(np.fmax(level, 0.0))  # fmax: NaN → 0
    capped = np.fmin(value, level + config.excess_cap_noise * noise)  # fmin: NaN → value
    elevated = value - level >= config.elevated_margin  # False where no baseline (NaN)
    elevated_count = np.zeros(n_logs + 1, dtype=np.int64)
    np.cumsum(elevated, out=elevated_count[1:])
    capped_total = np.zeros(n_logs + 1)
    np.cumsum(capped, out=capped_total[1:])
    terms = _AnchorTerms(baselines, important, config)

    def shown_rise(anchor: IntArray, statistic: FloatArray) -> BoolArray:
        if shown is None:
            return np.ones(anchor.shape[0], dtype=np.bool_)
        rise = statistic - shown(anchor) >= important[anchor] - _ROUNDING
        return np.asarray(rise, dtype=np.bool_)

    rule = np.zeros(n_logs, dtype=np.int64)
    window_width = np.zeros(n_logs, dtype=np.int64)
    window_level = np.full(n_logs, np.nan)
    event_level = np.full(n_logs, np.nan)
    event_day = np.zeros(n_logs, dtype=np.int64)
    kept = config.trimmed_logs
    # Longest window first, so that shorter (earlier, more specific) windows overwrite.
    for width, z in sorted(config.windows, reverse=True):
        lag = width - 1
        if n_logs <= lag:
            continue
        # Cheap filters first (enough logs, enough of them raised, not spread too thin), so
        # that the thresholds are worked out for a small fraction of the logs only.
        candidate = np.flatnonzero(
            elevated_count[lag + 1 :] - elevated_count[: n_logs - lag]
            >= min(width, config.elevated_logs_needed)
        )
        candidate += lag  # the window's last log
        span = day[candidate] - day[candidate - lag]
        keep = (position[candidate] >= lag) & (span <= config.window_span_per_log * width + 1)
        # The trimmed mean is at most the plain mean, and the threshold at least the
        # clinically important rise: only windows whose plain mean reaches that need the
        # statistical threshold, and only those reaching it their two highest logs found.
        candidate, span = candidate[keep], span[keep]
        anchor = candidate - lag  # judged against the baseline before the window's first log
        plain = capped_total[candidate + 1] - capped_total[anchor]
        reach = plain >= width * (level[anchor] + important[anchor]) - _ROUNDING
        candidate, anchor, span, plain = candidate[reach], anchor[reach], span[reach], plain[reach]
        if candidate.shape[0] == 0:
            continue
        days_per_log = np.maximum(span / lag, 1.0)
        mean, sd = trimmed_mean_moments(width, baselines.rho[anchor] ** days_per_log)
        needed = terms.threshold(anchor, z, mean, np.sqrt(sd * sd + terms.baseline_error(anchor)))
        reach = plain >= width * needed - _ROUNDING
        possible, needed = candidate[reach], needed[reach]
        if possible.shape[0] == 0:
            continue
        members = possible[:, None] - np.arange(lag, -1, -1)[None, :]
        lowest = np.partition(capped[members], width - kept - 1, axis=1)[:, : width - kept]
        fires = lowest.sum(axis=1) / (width - kept) >= needed - _ROUNDING
        # What the alert reports: the same trimmed mean of the logs as logged (never less than
        # the capped one), which must also be the clinically important rise over the baseline
        # shown (the median of the baseline period, which may sit above its robust mean).
        raw = np.partition(value[members[fires]], width - kept - 1, axis=1)[:, : width - kept]
        raw_level = raw.mean(axis=1)
        fired = possible[fires]
        rises = shown_rise(fired - lag, raw_level)
        fired = fired[rises]
        rule[fired] = width
        window_width[fired] = width
        window_level[fired] = raw_level[rises]

    # After a fall or injury: the two latest logs, both on or after the event and both raised,
    # their mean up by the clinically important rise and by `event_z` SDs of a 2-log mean.
    if provoking_days.shape[0] and n_logs > 1:
        pair = np.flatnonzero(elevated[1:] & elevated[:-1]) + 1
        pair = pair[position[pair] >= 1]
        event_day_of_pair = last_event_on_or_before(provoking_days, day[pair])
        recent = (day[pair] - event_day_of_pair <= config.event_window_days) & (
            day[pair - 1] >= event_day_of_pair
        )
        pair, event_day_of_pair = pair[recent], event_day_of_pair[recent]
        if pair.shape[0]:
            anchor = pair - 1
            pair_rho = baselines.rho[anchor] ** np.maximum(day[pair] - day[anchor], 1)
            spread = np.sqrt((1.0 + pair_rho) / 2.0 + terms.baseline_error(anchor))
            needed = terms.threshold(anchor, config.event_z, np.zeros(pair.shape[0]), spread)
            fires = (capped[pair] + capped[anchor]) / 2.0 >= needed - _ROUNDING
            raw_level = (value[pair] + value[anchor]) / 2.0
            fires &= shown_rise(anchor, raw_level)
            rule[pair[fires]] = EVENT_RULE
            event_level[pair[fires]] = raw_level[fires]
            event_day[pair[fires]] = event_day_of_pair[fires]

    anchor = np.maximum(index - np.maximum(rule, 1) + 1, 0)
    return PainDecisions(
        rule=rule,
        anchor=anchor,
        important_rise=important,
        recent_median=recent_median(value, series_first),
        window_width=window_width,
        window_level=window_level,
        event_level=event_level,
        event_day=event_day,
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
