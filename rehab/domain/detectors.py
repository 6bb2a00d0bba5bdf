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

from rehab.domain.arrays import BoolArray, FloatArray, IntArray, flat_true
from rehab.domain.baseline import LogCalendar, PainBaselines, RunningSums
from rehab.domain.clinical import clinically_important_pain_rise_array
from rehab.domain.config import DetectionConfig
from rehab.domain.noise import mean_variance_factor, trimmed_mean_moments_of

EVENT_RULE = 2  # `PainDecisions.rule` value of the after-a-fall rule (a 2-log window)
# Sums from cumulative sums carry float rounding: a window exactly at its threshold counts.
_ROUNDING = 1e-9
# The cheap filters sum over the whole batch (the decisions, each series on its own): they
# let through anything within this of the mark, so that they never decide anything.
_FILTER_SLACK = 1e-6


@dataclass(frozen=True, slots=True)
class PainDecisions:
    """Per log of packed pain series.

    `rule` is 0 where no alert would open, else the number of logs of the window that fired
    (2 for the after-a-fall rule, which takes precedence; the window's first log is its
    anchor, whose baseline the alert is judged against); `important_rise` is the clinically
    important rise from each log's baseline; `recent_median` the median of the last 3 logs.

    Each kind of window is also kept on its own, with the statistic it decided on as logged
    (what an alert reports as its current level): `window_width` and `window_level` for the
    shortest window of 3–15 logs that fired (its trimmed mean: the 2 highest logs left out),
    `event_level` and `event_day` for the after-a-fall rule (the mean of its 2 logs, and the
    virtual day of the fall or injury they follow); 0 / NaN where that kind did not fire.
    `window_shown` and `event_shown` are the baselines those alerts would show (NaN when not
    worked out).
    """

    rule: IntArray
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
    n = values.shape[0]
    one_back = np.empty(n)
    two_back = np.empty(n)
    if n:
        one_back[0] = values[0]
        one_back[1:] = values[:-1]
        two_back[: min(n, 2)] = values[0]
        two_back[2:] = values[:-2]
    low = np.minimum(values, one_back)
    high = np.maximum(values, one_back)
    median = np.maximum(low, np.minimum(high, two_back))
    index = np.arange(n)
    second = flat_true(index - 1 == series_first)
    median[second] = (low[second] + high[second]) / 2.0
    first = flat_true(index == series_first)
    median[first] = values[first]
    return median


def last_event_on_or_before(event_days: IntArray, day: IntArray) -> IntArray:
    """Day of the latest event on or before each day (a very old day if none)."""
    never = np.iinfo(np.int64).min // 2
    if event_days.shape[0] == 0:
        return np.full(day.shape[0], never, dtype=np.int64)
    position = event_days.searchsorted(day, side="right") - 1
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
        self.rho = np.empty(n_logs)
        self.rho[anchors] = b.rho_at(anchors)
        self.error = np.empty(n_logs)
        self.error[anchors] = self._baseline_error(anchors)
        # A clear rise is always enough: `clear_rise` points (`clear_rise_noise` × σ for a
        # noisier patient) over the kept logs, however uncertain the statistics.
        self.clear = np.empty(n_logs)
        self.clear[anchors] = level + np.maximum(config.clear_rise, config.clear_rise_noise * noise)
        self.important_level = np.empty(n_logs)
        self.important_level[anchors] = level + important[anchors]
        noise_logs = b.noise_logs[anchors]
        # Fewer logs a month are fewer chances of a false alert a month: a patient who logs a
        # fraction f of days is judged at z + ln(f)/z (about the same false alerts a month).
        log_density = np.log(np.clip(noise_logs / config.noise_window_days, 0.05, 1.0))
        # σ is itself estimated, from about n·(1 − ρ²)/(1 + ρ²) independent values: a
        # Student-t quantile instead of a normal one (z + (z³ + z)/(4·df), Cornish–Fisher)
        # keeps a patient with little history from alerting on an underestimated SD.
        rho2 = self.rho[anchors] ** 2
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
        error = mean_variance_factor(logs_used, self.rho[anchor] ** days_per_log)
        return np.asarray(np.where(b.pinned[anchor], 0.0, error), dtype=np.float64)

    def threshold(
        self, anchor: IntArray, z: float | FloatArray, mean: FloatArray, spread: FloatArray
    ) -> FloatArray:
        """Level a statistic with null `mean` and SD `spread` (units of σ) must reach, for a
        z or one z per anchor."""
        b = self.baselines
        if isinstance(z, float):
            z_here = self.z[z][anchor]
        else:
            z_here = np.empty(anchor.shape[0])
            for value in self.z:
                which = z == value
                z_here[which] = self.z[value][anchor[which]]
        statistical = b.level[anchor] + b.noise[anchor] * (mean + z_here * spread)
        statistical = np.minimum(statistical, self.clear[anchor])
        return np.asarray(np.maximum(self.important_level[anchor], statistical), dtype=np.float64)


def _powers(base: FloatArray, exponent: FloatArray) -> FloatArray:
    """base ** exponent, skipping the (exact) power where the exponent is 1."""
    out = base.copy()
    other = exponent != 1.0
    if bool(other.any()):
        out[other] = base[other] ** exponent[other]
    return out


def _candidate_windows(
    widths: list[int],
    day: IntArray,
    position: IntArray,
    capped_total: FloatArray,
    elevated_count: IntArray,
    important_level: FloatArray,
    config: DetectionConfig,
) -> tuple[list[IntArray], list[IntArray]]:
    """For each window length (ascending), the last logs of the windows that pass the cheap
    filters (enough of their logs raised, their plain mean up by the clinically important
    rise, within one series, not spread too thin) and their spans in days. A batch goes one
    length at a time over contiguous slices; a short replay (one patient) all lengths at
    once, in a few operations on a small table: the same comparisons, value for value."""
    n_logs = day.shape[0]
    ends: list[IntArray] = []
    spans: list[IntArray] = []
    needed_logs = config.elevated_logs_needed
    if n_logs * len(widths) <= _SMALL_TABLE:
        length = np.array(widths, dtype=np.int64)[:, None]
        lags = length - 1
        last = np.arange(n_logs)[None, :]
        first = np.maximum(last - lags, 0)
        ok = (
            capped_total[last + 1] - capped_total[first]
            >= length * important_level[first] - _FILTER_SLACK
        )
        ok &= elevated_count[last + 1] - elevated_count[first] >= np.minimum(length, needed_logs)
        ok &= position[last] >= lags  # within one series (and the window complete)
        span = day[last] - day[first]
        ok &= span <= config.window_span_per_log * length + 1
        for row in range(len(widths)):
            end = flat_true(ok[row])
            ends.append(end)
            spans.append(span[row, end])
        return ends, spans
    for width in widths:
        lag = width - 1
        plain_all = capped_total[lag + 1 :] - capped_total[: n_logs - lag]
        reach_all = plain_all >= width * important_level[: n_logs - lag] - _FILTER_SLACK
        reach_all &= elevated_count[lag + 1 :] - elevated_count[: n_logs - lag] >= min(
            width, needed_logs
        )
        candidate = flat_true(reach_all)
        candidate += lag  # the window's last log
        span = day[candidate] - day[candidate - lag]
        keep = (position[candidate] >= lag) & (span <= config.window_span_per_log * width + 1)
        ends.append(candidate[keep])
        spans.append(span[keep])
    return ends, spans


# Up to this many (log, window length) pairs, the candidate windows come from one table.
_SMALL_TABLE = 40_000


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
    elevated.cumsum(out=elevated_count[1:])
    # Over the whole batch for the cheap filters; each series on its own for the decisions.
    capped_total = np.zeros(n_logs + 1)
    capped.cumsum(out=capped_total[1:])
    sums = RunningSums(n_logs, series_first)
    capped_totals = sums.totals(capped)
    # The clinically important level above each log's baseline (NaN where there is none).
    important_level = level + important
    kept = config.trimmed_logs

    # Cheap filters first, on every window of every length at once (enough of its logs
    # raised, and its plain mean, never below the trimmed mean, up by the clinically
    # important rise, the least the threshold asks), so that the rest is worked out for a few
    # windows only.
    blocks = [(w, z) for w, z in sorted(config.windows) if n_logs > w - 1]
    ends, spans = _candidate_windows(
        [w for w, _ in blocks],
        day,
        position,
        capped_total,
        elevated_count,
        important_level,
        config,
    )
    counts = [e.shape[0] for e in ends]
    bounds: list[int] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64).tolist()
    end = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
    width_of = np.repeat(np.array([w for w, _ in blocks], dtype=np.int64), counts)
    anchor = end - width_of + 1  # each window is judged against the baseline before it
    anchors_used = np.zeros(n_logs, dtype=np.bool_)
    anchors_used[anchor] = True
    terms = _AnchorTerms(
        baselines, important, config, flat_true(anchors_used), {z for _, z in blocks}
    )
    # The statistical threshold of every candidate window at once (the threshold is at least
    # the clinically important rise, so only windows whose plain mean reaches it are kept).
    z_of = np.repeat(np.array([z for _, z in blocks], dtype=np.float64), counts)
    plain = sums.between(capped_totals, anchor, end + 1)
    span_of = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
    days_per_log = np.maximum(span_of / (width_of - 1), 1.0)
    mean, sd = trimmed_mean_moments_of(width_of, _powers(terms.rho[anchor], days_per_log))
    needed = terms.threshold(anchor, z_of, mean, np.sqrt(sd * sd + terms.error[anchor]))
    reach = plain >= width_of * needed - _ROUNDING

    def fire(block: int, chosen: IntArray) -> tuple[IntArray, FloatArray]:
        """The windows of a block (entries `chosen` of the candidates) that fire on the capped
        logs, and their trimmed means as logged (what an alert reports, never less than the
        capped one)."""
        width = blocks[block][0]
        lag = width - 1
        possible = end[chosen]
        members = possible[:, None] - np.arange(lag, -1, -1)[None, :]
        lowest = capped[members]
        lowest.partition(width - kept - 1, axis=1)
        fires = lowest[:, : width - kept].sum(axis=1) / (width - kept) >= needed[chosen] - _ROUNDING
        raw = value[members[fires]]
        raw.partition(width - kept - 1, axis=1)
        # (The mean, as np.mean takes it: the sum over the count.)
        return possible[fires], raw[:, : width - kept].sum(axis=1) / (width - kept)

    rule = np.zeros(n_logs, dtype=np.int64)
    window_width = np.zeros(n_logs, dtype=np.int64)
    window_level = np.full(n_logs, np.nan)
    window_shown = np.full(n_logs, np.nan)
    # Each log keeps the shortest window that fires there and whose statistic as logged is
    # also the clinically important rise over the baseline the alert shows (the median of the
    # baseline period, which may sit above its robust mean), so an alert never reports less of
    # a rise than it cites. Shortest first; a log settled by a shorter window is not judged
    # by the longer ones; the baselines shown are worked out at once for the shortest window
    # of each log, and the few logs where it falls short try their longer windows again.
    looking = np.ones(n_logs, dtype=np.bool_)
    trying = reach  # the candidate windows still worth judging
    while True:
        tried_logs: list[IntArray] = []
        tried_levels: list[FloatArray] = []
        tried_widths: list[int] = []
        entries = flat_true(trying)
        block_of = entries.searchsorted(bounds).tolist()
        for block, (width, _) in enumerate(blocks):
            chosen = entries[block_of[block] : block_of[block + 1]]
            chosen = chosen[looking[end[chosen]]]
            if chosen.shape[0] == 0:
                continue
            fired, raw_level = fire(block, chosen)
            if fired.shape[0]:
                looking[fired] = False
                tried_logs.append(fired)
                tried_levels.append(raw_level)
                tried_widths.append(width)
        if not tried_logs:
            break
        logs = np.concatenate(tried_logs)
        levels = np.concatenate(tried_levels)
        widths = np.repeat(np.array(tried_widths, dtype=np.int64), [f.shape[0] for f in tried_logs])
        tried_anchor = logs - widths + 1
        if shown is None:
            baseline = np.full(logs.shape[0], np.nan)
            rises = np.ones(logs.shape[0], dtype=np.bool_)
        else:
            baseline = shown(tried_anchor)
            rises = levels - baseline >= important[tried_anchor] - _ROUNDING
        passed = logs[rises]
        rule[passed] = widths[rises]
        window_width[passed] = widths[rises]
        window_level[passed] = levels[rises]
        window_shown[passed] = baseline[rises]
        if bool(rises.all()):
            break
        # Only the logs whose shortest window fell short look again, at longer windows.
        failed = ~rises
        looking[:] = False
        looking[logs[failed]] = True
        longer_than = np.zeros(n_logs, dtype=np.int64)
        longer_than[logs[failed]] = widths[failed]
        trying = reach & looking[end] & (longer_than[end] < width_of)

    # After a fall or injury: the two latest logs, both on or after the event and both raised,
    # their mean up by the clinically important rise and by `event_z` SDs of a 2-log mean.
    event_fired = np.zeros(0, dtype=np.int64)
    event_raw = np.zeros(0)
    event_of_pair = np.zeros(0, dtype=np.int64)
    if provoking_days.shape[0] and n_logs > 1:
        pair = flat_true(elevated[1:] & elevated[:-1]) + 1
        pair = pair[position[pair] >= 1]
        event_day_of_pair = last_event_on_or_before(provoking_days, day[pair])
        recent = (day[pair] - event_day_of_pair <= config.event_window_days) & (
            day[pair - 1] >= event_day_of_pair
        )
        pair, event_day_of_pair = pair[recent], event_day_of_pair[recent]
        if pair.shape[0]:
            anchor = pair - 1
            event_terms = _AnchorTerms(baselines, important, config, anchor, {config.event_z})
            pair_rho = event_terms.rho[anchor] ** np.maximum(day[pair] - day[anchor], 1)
            spread = np.sqrt((1.0 + pair_rho) / 2.0 + event_terms.error[anchor])
            event_needed = event_terms.threshold(
                anchor, config.event_z, np.zeros(pair.shape[0]), spread
            )
            fires = (capped[pair] + capped[anchor]) / 2.0 >= event_needed - _ROUNDING
            event_fired = pair[fires]
            event_raw = (value[event_fired] + value[event_fired - 1]) / 2.0
            event_of_pair = event_day_of_pair[fires]

    event_level = np.full(n_logs, np.nan)
    event_day = np.zeros(n_logs, dtype=np.int64)
    event_shown = np.full(n_logs, np.nan)
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

    return PainDecisions(
        rule=rule,
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
    # Each series' own running sums: the same rounding whatever else is in the batch, so the
    # periodic scan and the evaluation of one patient agree to the last bit (their
    # comparisons have no slack).
    sums = RunningSums(n_logs, series_first)
    total = sums.totals(value)
    upto = calendar.before(day - config.adherence_gap_days + 1)
    since = calendar.before(day - config.adherence_gap_days - config.adherence_baseline_days + 1)
    usual_logs = (upto - since).astype(np.int64)
    usual = sums.between(total, since, upto) / np.maximum(usual_logs, 1)
    width = config.adherence_window_logs
    start = np.maximum(index - width + 1, series_first)
    current = sums.between(total, start, index + 1) / (index - start + 1)
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
