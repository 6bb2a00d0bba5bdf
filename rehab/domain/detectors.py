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
    `window_shown` and `event_shown` are the baselines those alerts would show (NaN when not
    worked out).
    """

    rule: IntArray
    anchor: IntArray
    important_rise: FloatArray
    recent_median: FloatArray
    window_width: IntArray
    window_level: FloatArray
    event_level: FloatArray
    event_day: IntArray
    window_shown: FloatArray
    event_shown: FloatArray


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
    once for each anchor that some window needs (a log anchors windows of many lengths)."""

    def __init__(
        self,
        baselines: PainBaselines,
        important: FloatArray,
        config: DetectionConfig,
        anchors: IntArray,
        zs: set[float],
    ) -> None:
        b = baselines
        self.baselines = baselines
        self.config = config
        n_logs = b.level.shape[0]
        level = b.level[anchors]
        noise = b.noise[anchors]
        self.error = np.empty(n_logs)
        self.error[anchors] = self._baseline_error(anchors)
        # A clear rise is always enough: `clear_rise` points (`clear_rise_noise` × σ for a
        # noisier patient) over the kept logs, however uncertain the statistics.
        self.clear = np.empty(n_logs)
        self.clear[anchors] = level + np.maximum(
            config.clear_rise, config.clear_rise_noise * noise
        )
        self.important_level = np.empty(n_logs)
        self.important_level[anchors] = level + important[anchors]
        noise_logs = b.noise_logs[anchors]
        # Fewer logs a month are fewer chances of a false alert a month: a patient who logs a
        # fraction f of days is judged at z + ln(f)/z (about the same false alerts a month).
        log_density = np.log(np.clip(noise_logs / config.noise_window_days, 0.05, 1.0))
        # σ is itself estimated, from about n·(1 − ρ²)/(1 + ρ²) independent values: a
        # Student-t quantile instead of a normal one (z + (z³ + z)/(4·df), Cornish–Fisher)
        # keeps a patient with little history from alerting on an underestimated SD.
        rho2 = b.rho[anchors] ** 2
        df = np.maximum(noise_logs * (1.0 - rho2) / (1.0 + rho2), 2.0)
        self.z: dict[float, FloatArray] = {}
        for z in zs:
            z_here = z + config.density_adjust * log_density / z
            z_here = z_here + config.t_correction * (z_here**3 + z_here) / (4.0 * df)
            self.z[z] = np.empty(n_logs)
            self.z[z][anchors] = z_here

    def _baseline_error(self, anchor: IntArray) -> FloatArray:
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
        statistical = b.level[anchor] + b.noise[anchor] * (mean + self.z[z][anchor] * spread)
        statistical = np.minimum(statistical, self.clear[anchor])
        return np.asarray(np.maximum(self.important_level[anchor], statistical), dtype=np.float64)


def _powers(base: FloatArray, exponent: FloatArray) -> FloatArray:
    """base ** exponent, skipping the (exact) power where the exponent is 1."""
    out = base.copy()
    other = exponent != 1.0
    if bool(other.any()):
        out[other] = base[other] ** exponent[other]
    return out


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
    # The clinically important level above each log's baseline (NaN where there is none).
    important_level = level + important
    kept = config.trimmed_logs

    # Cheap filters first, on every window of every length at once (enough of its logs
    # raised, and its plain mean, never below the trimmed mean, up by the clinically
    # important rise, the least the threshold asks), so that the rest is worked out for a few
    # windows only: (length, z, last logs, their spans in days).
    candidates: list[tuple[int, float, IntArray, IntArray]] = []
    for width, z in sorted(config.windows, reverse=True):
        lag = width - 1
        if n_logs <= lag:
            continue
        plain_all = capped_total[lag + 1 :] - capped_total[: n_logs - lag]
        reach_all = plain_all >= width * important_level[: n_logs - lag] - _ROUNDING
        reach_all &= (
            elevated_count[lag + 1 :] - elevated_count[: n_logs - lag]
            >= min(width, config.elevated_logs_needed)
        )
        candidate = np.flatnonzero(reach_all)
        candidate += lag  # the window's last log
        # Within one series, and not spread too thin.
        span = day[candidate] - day[candidate - lag]
        keep = (position[candidate] >= lag) & (span <= config.window_span_per_log * width + 1)
        if bool(keep.any()):
            candidates.append((width, z, candidate[keep], span[keep]))
    anchors_used = np.zeros(n_logs, dtype=np.bool_)
    for width, _, candidate, _ in candidates:
        anchors_used[candidate - (width - 1)] = True
    terms = _AnchorTerms(
        baselines,
        important,
        config,
        np.flatnonzero(anchors_used),
        {z for _, z, _, _ in candidates},
    )

    # Windows that fire on the capped logs, longest first (shorter, more specific windows
    # overwrite them): (last logs, their trimmed means as logged, window length).
    window_fired: list[tuple[IntArray, FloatArray, int]] = []
    for width, z, candidate, span in candidates:
        lag = width - 1
        anchor = candidate - lag  # judged against the baseline before the window's first log
        plain = capped_total[candidate + 1] - capped_total[anchor]
        days_per_log = np.maximum(span / lag, 1.0)
        mean, sd = trimmed_mean_moments(width, _powers(baselines.rho[anchor], days_per_log))
        needed = terms.threshold(anchor, z, mean, np.sqrt(sd * sd + terms.error[anchor]))
        reach = plain >= width * needed - _ROUNDING
        possible, needed = candidate[reach], needed[reach]
        if possible.shape[0] == 0:
            continue
        members = possible[:, None] - np.arange(lag, -1, -1)[None, :]
        lowest = np.partition(capped[members], width - kept - 1, axis=1)[:, : width - kept]
        fires = lowest.sum(axis=1) / (width - kept) >= needed - _ROUNDING
        if not bool(fires.any()):
            continue
        # What the alert reports: the same trimmed mean of the logs as logged (never less than
        # the capped one).
        raw = np.partition(value[members[fires]], width - kept - 1, axis=1)[:, : width - kept]
        window_fired.append((possible[fires], raw.mean(axis=1), width))

    # After a fall or injury: the two latest logs, both on or after the event and both raised,
    # their mean up by the clinically important rise and by `event_z` SDs of a 2-log mean.
    event_fired = np.zeros(0, dtype=np.int64)
    event_raw = np.zeros(0)
    event_of_pair = np.zeros(0, dtype=np.int64)
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
            event_terms = _AnchorTerms(baselines, important, config, anchor, {config.event_z})
            pair_rho = baselines.rho[anchor] ** np.maximum(day[pair] - day[anchor], 1)
            spread = np.sqrt((1.0 + pair_rho) / 2.0 + event_terms.error[anchor])
            needed = event_terms.threshold(
                anchor, config.event_z, np.zeros(pair.shape[0]), spread
            )
            fires = (capped[pair] + capped[anchor]) / 2.0 >= needed - _ROUNDING
            event_fired = pair[fires]
            event_raw = (value[event_fired] + value[event_fired - 1]) / 2.0
            event_of_pair = event_day_of_pair[fires]

    rule = np.zeros(n_logs, dtype=np.int64)
    window_width = np.zeros(n_logs, dtype=np.int64)
    window_level = np.full(n_logs, np.nan)
    event_level = np.full(n_logs, np.nan)
    event_day = np.zeros(n_logs, dtype=np.int64)
    window_shown = np.full(n_logs, np.nan)
    event_shown = np.full(n_logs, np.nan)

    # The statistic as logged must also be the clinically important rise over the baseline
    # the alert shows (the median of the baseline period, which may sit above its robust
    # mean), so an alert never reports less of a rise than it cites. Each log keeps its
    # shortest window that passes: the baselines shown are worked out for the shortest first,
    # and for a longer one only where a shorter one failed.
    if window_fired:
        logs = np.concatenate([fired for fired, _, _ in window_fired])
        levels = np.concatenate([raw for _, raw, _ in window_fired])
        widths = np.concatenate([np.full(f.shape[0], w) for f, _, w in window_fired])
        order = np.lexsort((widths, logs))  # by log, then shortest window first
        logs, levels, widths = logs[order], levels[order], widths[order]
        entry = np.arange(logs.shape[0])
        new_log = np.ones(logs.shape[0], dtype=np.bool_)
        new_log[1:] = logs[1:] != logs[:-1]
        rank = entry - np.maximum.accumulate(np.where(new_log, entry, 0))
        settled = np.zeros(n_logs, dtype=np.bool_)
        for r in range(int(rank.max()) + 1):
            trial = np.flatnonzero((rank == r) & ~settled[logs])
            if trial.shape[0] == 0:
                break
            anchor = logs[trial] - widths[trial] + 1
            if shown is None:
                baseline = np.full(trial.shape[0], np.nan)
                rises = np.ones(trial.shape[0], dtype=np.bool_)
            else:
                baseline = shown(anchor)
                rises = levels[trial] - baseline >= important[anchor] - _ROUNDING
            passed = trial[rises]
            log = logs[passed]
            settled[log] = True
            rule[log] = widths[passed]
            window_width[log] = widths[passed]
            window_level[log] = levels[passed]
            window_shown[log] = baseline[rises]
    if event_fired.shape[0]:
        if shown is not None:
            baseline = shown(event_fired - 1)
            rises = event_raw - baseline >= important[event_fired - 1] - _ROUNDING
            event_fired, event_raw = event_fired[rises], event_raw[rises]
            event_of_pair, baseline = event_of_pair[rises], baseline[rises]
            event_shown[event_fired] = baseline
        rule[event_fired] = EVENT_RULE
        event_level[event_fired] = event_raw
        event_day[event_fired] = event_of_pair

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
        window_shown=window_shown,
        event_shown=event_shown,
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
