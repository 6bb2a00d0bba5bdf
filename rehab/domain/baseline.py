"""Pain baselines: robust level and noise of the recent stable period, or a clinician's pin.

Works on *packed* logs: the logs of many (patient, metric) series laid end to end, each series
on its own stretch of a virtual calendar (see `LogCalendar`), so that one set of array
operations serves a whole batch and no window can reach into another series.

Every rolling statistic is a window mean over cumulative sums: a lookup per window end, so a
patient-year of baselines costs a few dozen array operations and no sorting.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from rehab.domain.arrays import BoolArray, FloatArray, IntArray
from rehab.domain.config import DetectionConfig


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


class Autocorrelation:
    """The day-to-day autocorrelation ρ of the noise before each log, worked out where asked
    (the detectors need it only at the first logs of the windows they judge).

    E[(x_t − x_{t−1})²] = 2σ²(1 − ρ) for logs on consecutive days: from the window sums of the
    squared steps and of the number of such pairs, over the noise variance; shrunk towards a
    prior when there are few pairs.
    """

    __slots__ = ("_full", "config", "first", "pairs", "steps", "sums", "variance")

    def __init__(
        self,
        variance: FloatArray,
        sums: RunningSums,
        pairs: Totals,
        steps: Totals,
        first: IntArray,
        config: DetectionConfig,
    ) -> None:
        self.variance = variance
        self.sums = sums
        self.pairs = pairs  # running totals of the consecutive-day pairs
        self.steps = steps  # running totals of the squared steps
        self.first = first
        self.config = config
        self._full: FloatArray | None = None

    def at(self, log: IntArray) -> FloatArray:
        config = self.config
        first = self.first[log]
        pairs = self.sums.between(self.pairs, first, log)
        squared_steps = self.sums.between(self.steps, first, log)
        variance = self.variance[log]
        # Lag-1 autocovariance var − E[step²]/2, over the variance used (the floor's extra is
        # white): a perfectly steady patient has ρ = 0, not an undefined 0/0.
        covariance = variance - squared_steps / np.maximum(pairs, 1.0) / 2.0
        raw_rho = covariance / np.maximum(variance, config.noise_floor**2)
        raw_rho = np.where(pairs > 0, np.clip(raw_rho, 0.0, config.rho_max), config.rho_prior)
        return np.asarray(
            (pairs * raw_rho + config.rho_prior_pairs * config.rho_prior)
            / (pairs + config.rho_prior_pairs),
            dtype=np.float64,
        )

    def full(self) -> FloatArray:
        if self._full is None:
            self._full = self.at(np.arange(self.variance.shape[0]))
        return self._full


@dataclass(frozen=True, slots=True)
class PainBaselines:
    """Per log: the baseline read from the logs *before* it (NaN level: not enough history).

    `level` is the robust mean of the baseline period (each log capped so a benign flare does
    not move it); `noise` the robust day-to-day SD of the noise period (around its linear
    trend, so a recovering patient's fall is not counted as noise); `rho` the day-to-day
    autocorrelation of that noise (`rho_at` for a few logs); `logs_used` and `window_days` say
    which period `level` came from; `followed_down` marks levels taken from the recent days
    of an improving patient; `pinned` marks a clinician's pin.
    """

    level: FloatArray
    noise: FloatArray
    autocorrelation: Autocorrelation
    noise_logs: FloatArray
    logs_used: IntArray
    window_days: IntArray
    followed_down: BoolArray
    pinned: BoolArray

    @property
    def rho(self) -> FloatArray:
        return self.autocorrelation.full()

    def rho_at(self, log: IntArray) -> FloatArray:
        return self.autocorrelation.at(log)

    def shown_level(
        self, day: IntArray, value: FloatArray, calendar: LogCalendar, log: int
    ) -> float:
        """The baseline shown to clinicians for a decision anchored at `log`: the pin, or the
        median of the logs of the period the level came from (robust and easy to read)."""
        if self.pinned[log]:
            return float(self.level[log])
        start = calendar.before_day(int(day[log]) - int(self.window_days[log]))
        return float(statistics.median(value[start:log].tolist()))


class ShownBaselines:
    """`PainBaselines.shown_level` for many anchors at once (the detectors need it for every
    window that would fire, to check the rise over the baseline an alert shows).

    For ratings 0–10 (`ratings`), the median of any run of logs comes from cumulative counts
    of each rating, packed 8 to a 64-bit word (a count per byte: a run holds fewer than 256
    logs), so two cumulative sums serve every run; otherwise each run is sorted.
    """

    _BYTE_PREFIX = np.int64(0x0101010101010101)  # × packed counts: running totals per byte

    def __init__(
        self,
        day: IntArray,
        value: FloatArray,
        calendar: LogCalendar,
        baselines: PainBaselines,
        *,
        ratings: bool = False,
    ) -> None:
        self.day = day
        self.value = value
        self.calendar = calendar
        self.baselines = baselines
        self.ratings = ratings
        self._packed: tuple[IntArray, IntArray] | None = None

    def __call__(self, anchor: IntArray) -> FloatArray:
        b = self.baselines
        shown = b.level[anchor]
        automatic = ~b.pinned[anchor]
        if not bool(automatic.any()):
            return shown
        which = anchor[automatic]
        start = self.calendar.before(self.day[which] - b.window_days[which])
        count = which - start
        if self.ratings and int(count.max()) < 256:
            median = self._median_of_ratings(start, which, count)
        else:
            median = self._median_by_sorting(start, count)
        shown[automatic] = np.where(count > 0, median, np.nan)
        return shown

    def _median_of_ratings(self, start: IntArray, end: IntArray, count: IntArray) -> FloatArray:
        if self._packed is None:
            rating = self.value.astype(np.intp)
            low_word = np.zeros(self.value.shape[0] + 1, dtype=np.int64)
            high_word = np.zeros(self.value.shape[0] + 1, dtype=np.int64)
            _LOW_RATINGS[rating].cumsum(out=low_word[1:])
            _HIGH_RATINGS[rating].cumsum(out=high_word[1:])
            self._packed = (low_word, high_word)
        low_word, high_word = self._packed
        # Counts of each rating in [start, end) (exact: the words wrap around, the counts
        # fit their bytes), then running totals: logs rated ≤ r, for r = 0…10.
        shift = 8 * np.arange(8, dtype=np.int64)
        low_totals = ((low_word[end] - low_word[start]) * self._BYTE_PREFIX)[:, None] >> shift
        high_totals = ((high_word[end] - high_word[start]) * self._BYTE_PREFIX)[:, None] >> shift
        at_most = np.empty((end.shape[0], 11), dtype=np.int64)
        at_most[:, :8] = low_totals & 255
        at_most[:, 8:] = (high_totals[:, :3] & 255) + at_most[:, 7:8]
        # The rating at sorted position p is the number of ratings with ≤ p logs at or below.
        low = np.sum(at_most <= ((count - 1) // 2)[:, None], axis=1)
        high = np.sum(at_most <= (count // 2)[:, None], axis=1)
        return np.asarray((low + high) / 2.0, dtype=np.float64)

    def _median_by_sorting(self, start: IntArray, count: IntArray) -> FloatArray:
        slot = start[:, None] + np.arange(max(int(count.max()), 1))[None, :]
        inside = slot < (start + count)[:, None]
        table = np.where(inside, self.value[np.where(inside, slot, 0)], np.inf)
        table.sort(axis=1)
        rows = np.arange(start.shape[0])
        low = table[rows, np.maximum(count - 1, 0) // 2]
        high = table[rows, count // 2]
        return np.asarray((low + high) / 2.0, dtype=np.float64)


# A log rated r adds 1 to byte r of the low word (r < 8) or byte r − 8 of the high word.
_LOW_RATINGS = np.array([1 << (8 * r) if r < 8 else 0 for r in range(11)], dtype=np.int64)
_HIGH_RATINGS = np.array([1 << (8 * (r - 8)) if r >= 8 else 0 for r in range(11)], dtype=np.int64)


class RunningSums:
    """Sums of a per-log quantity over runs of logs of one series: each series summed on its
    own, exactly as if it were replayed alone (one cumulative sum over a whole batch would
    round a series' sums differently depending on what precedes it, and the periodic scan
    and the evaluation of one patient must agree to the last bit: some comparisons have no
    slack). Without `series_first`, one series (or a caller that accepts that rounding).

    `totals(values)` makes the running totals of one quantity; `before(totals, first)` the
    sums over the logs [first[i], i) before each log i; `between(totals, first, end)` over
    [first, end) within the series of log `end` − 1. Integer quantities are summed in
    integers (`exact=True`): exact whatever the order, so over the whole batch, cheaper.
    """

    def __init__(self, n_logs: int, series_first: IntArray | None = None) -> None:
        self.n_logs = n_logs
        self.index = np.arange(n_logs)
        self.series_first = series_first
        if series_first is None or n_logs == 0:
            self.split = False
            return
        self.split = True
        starts = _flat_starts(series_first, self.index)
        lengths = np.diff(np.append(starts, n_logs))
        # The table: a row per series, its running totals along it (column 0: nothing yet).
        self.columns = int(lengths.max()) + 1
        self.shape = (starts.shape[0], self.columns)
        row = np.repeat(np.arange(starts.shape[0]), lengths)
        # Position in the flattened table of log i's own column, less i: + a log index of
        # the same series gives that log's column.
        self.base = row * self.columns - series_first
        self.own = self.base + self.index

    def totals(self, values: npt.NDArray[Any], *, exact: bool = False) -> Totals:
        if exact or not self.split:
            total = np.empty(values.shape[0] + 1, dtype=values.dtype)
            total[0] = 0
            values.cumsum(out=total[1:])
            return Totals(total, False)
        table = np.zeros(self.shape, dtype=values.dtype)
        table.ravel()[self.own + 1] = values
        table.cumsum(axis=1, out=table)  # row s, column c: the first c logs of series s
        return Totals(table.ravel(), True)

    def before(self, totals: Totals, first: IntArray) -> FloatArray:
        total = totals.values
        if totals.by_series:
            sums = total[self.own] - total[self.base + first]
        else:
            sums = total[:-1] - total[first]
        return np.asarray(sums, dtype=np.float64)

    def between(self, totals: Totals, first: IntArray, end: IntArray) -> FloatArray:
        total = totals.values
        if totals.by_series:
            base = self.base[np.maximum(end - 1, first)]
            sums = total[base + end] - total[base + first]
        else:
            sums = total[end] - total[first]
        return np.asarray(sums, dtype=np.float64)


class Totals(NamedTuple):
    """Running totals of one quantity (`RunningSums.totals`): over the whole batch, or a
    table of each series' own (`by_series`)."""

    values: npt.NDArray[Any]
    by_series: bool


def _flat_starts(series_first: IntArray, index: IntArray) -> IntArray:
    starts: IntArray = np.flatnonzero(series_first == index)
    return starts


def pain_baselines(
    day: IntArray,
    value: FloatArray,
    calendar: LogCalendar,
    config: DetectionConfig,
    local_day: IntArray | None = None,
    *,
    integer_values: bool = False,
    series_first: IntArray | None = None,
) -> PainBaselines:
    """Baseline before each log of packed series (`day` ascending within each series).

    Each log enters the noise capped `noise_cap_points` above the plain mean of the baseline
    period before it, and the level capped `excess_cap_noise` × noise above it, so one or two
    flare days move neither. An improving patient's level follows her down: when the recent
    `baseline_recent_days` are at least `follow_down_min_drop` lower, they are the baseline.
    The noise is the SD around the period's least-squares line (`local_day`, the day within
    each series, keeps those sums small; without it, around the mean); its autocorrelation
    comes from the squared differences of logs on consecutive days, shrunk towards a prior
    when there are few such pairs. `integer_values` says the values are whole numbers (pain
    ratings), whose sums are then taken in integers (the same sums, cheaper); `series_first`
    (each log's series' first log) has each series summed on its own (`RunningSums`).
    """
    n_logs = day.shape[0]
    upto = np.arange(n_logs)
    sums = RunningSums(n_logs, series_first)
    first_long = calendar.before(day - config.baseline_window_days)
    n = upto - first_long
    safe_n = np.maximum(n, 1)
    if integer_values:
        plain = sums.before(sums.totals(value.astype(np.int64), exact=True), first_long) / safe_n
    else:
        plain = sums.before(sums.totals(value), first_long) / safe_n
    enough = n >= config.baseline_min_logs

    for_noise = np.where(enough, np.minimum(value, plain + config.noise_cap_points), value)
    first_noise = calendar.before(day - config.noise_window_days)
    noise_n = np.maximum(upto - first_noise, 1).astype(np.float64)
    sum_x = sums.before(sums.totals(for_noise), first_noise)
    centred_xx = (
        sums.before(sums.totals(for_noise * for_noise), first_noise) - sum_x * sum_x / noise_n
    )
    if local_day is not None and config.noise_detrend:
        t = local_day.astype(np.float64)
        whole_t = local_day.astype(np.int64)
        sum_t = sums.before(sums.totals(whole_t, exact=True), first_noise)
        centred_tt = (
            sums.before(sums.totals(whole_t * whole_t, exact=True), first_noise)
            - sum_t * sum_t / noise_n
        )
        centred_tx = sums.before(sums.totals(t * for_noise), first_noise) - sum_t * sum_x / noise_n
        trend = np.where(
            centred_tt > 1.0, centred_tx * centred_tx / np.maximum(centred_tt, 1.0), 0.0
        )
        variance = (centred_xx - trend) / np.maximum(noise_n - 1.0, 1.0)
    else:
        variance = centred_xx / noise_n
    variance = np.maximum(variance, 0.0)
    if config.noise_recent_days:
        # The recent period's own SD (around its mean) when it is lower: an earlier flare or
        # regression weeks ago is not this patient's day-to-day noise any more.
        first_short = calendar.before(day - config.noise_recent_days)
        short_n = (upto - first_short).astype(np.float64)
        short_x = sums.before(sums.totals(for_noise), first_short)
        short_xx = sums.before(
            sums.totals(for_noise * for_noise), first_short
        ) - short_x * short_x / np.maximum(short_n, 1.0)
        short_variance = np.maximum(short_xx / np.maximum(short_n - 1.0, 1.0), 0.0)
        usable = short_n >= config.noise_recent_min_logs
        variance = np.where(usable, np.minimum(variance, short_variance), variance)
    noise = np.maximum(np.sqrt(variance), config.noise_floor)

    # Autocorrelation: E[(x_t − x_{t−1})²] = 2σ²(1 − ρ) for logs on consecutive days.
    if config.rho_window_days == config.noise_window_days:
        first_rho = first_noise
        rho_variance = variance
    else:
        first_rho = calendar.before(day - config.rho_window_days)
        rho_n = np.maximum(upto - first_rho, 1).astype(np.float64)
        rho_x = sums.before(sums.totals(for_noise), first_rho)
        rho_variance = np.maximum(
            (sums.before(sums.totals(for_noise * for_noise), first_rho) - rho_x * rho_x / rho_n)
            / rho_n,
            0.0,
        )
    step = np.zeros(n_logs)
    pair = np.zeros(n_logs, dtype=np.int64)
    if n_logs > 1:
        consecutive = day[1:] - day[:-1] == 1  # never across series (they sit apart)
        step[1:] = np.where(consecutive, (for_noise[1:] - for_noise[:-1]) ** 2, 0.0)
        pair[1:] = consecutive
    autocorrelation = Autocorrelation(
        rho_variance,
        sums,
        sums.totals(pair, exact=True),
        sums.totals(step),
        first_rho,
        config,
    )

    for_level = np.where(enough, np.minimum(value, plain + config.excess_cap_noise * noise), value)
    level_total = sums.totals(for_level)
    level = sums.before(level_total, first_long) / safe_n
    first_recent = calendar.before(day - config.baseline_recent_days)
    recent_n = upto - first_recent
    recent_level = sums.before(level_total, first_recent) / np.maximum(recent_n, 1)
    followed_down = (recent_n >= config.baseline_recent_min_logs) & (
        recent_level <= level - config.follow_down_min_drop
    )
    return PainBaselines(
        level=np.where(enough, np.where(followed_down, recent_level, level), np.nan),
        noise=noise,
        autocorrelation=autocorrelation,
        noise_logs=noise_n,
        logs_used=np.where(followed_down, recent_n, n),
        window_days=np.where(
            followed_down, config.baseline_recent_days, config.baseline_window_days
        ),
        followed_down=followed_down,
        pinned=np.zeros(n_logs, dtype=np.bool_),
    )


class PinPeriod(NamedTuple):
    """Days `start` … `until` − 1 (`until` None: on) of a pin's level and spread; `position`:
    the pin's position in the pins given."""

    start: int
    until: int | None
    level: float
    spread: float | None
    position: int


def pin_periods(pins: Sequence[tuple[int, float | None, float | None]]) -> list[PinPeriod]:
    """When each of a metric's pins (first day, level, spread) is in force: from its day until
    the next one's (of one day, the one given last); a level of None is a return to the
    automatic baseline, in force until the next pin."""
    # Stable: of one day, the last given wins.
    order = sorted(range(len(pins)), key=lambda k: pins[k][0])
    periods: list[PinPeriod] = []
    for i, k in enumerate(order):
        start, level, spread = pins[k]
        until = pins[order[i + 1]][0] if i + 1 < len(order) else None
        if level is not None and (until is None or until > start):
            periods.append(PinPeriod(start, until, level, spread, k))
    return periods


def pin_in_force(periods: Sequence[PinPeriod], day: int) -> PinPeriod | None:
    """The pin in force on `day`, if any."""
    return next((p for p in periods if p.start <= day and (p.until is None or day < p.until)), None)


def pin_applies(period: PinPeriod, day: IntArray) -> BoolArray:
    """Which of the days the pin is in force on."""
    applies = day >= period.start
    if period.until is not None:
        applies &= day < period.until
    return applies


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
        autocorrelation=baselines.autocorrelation,
        noise_logs=np.where(applies, np.inf, baselines.noise_logs)
        if noise is not None
        else baselines.noise_logs,
        logs_used=np.where(applies, 0, baselines.logs_used),
        window_days=np.where(applies, 0, baselines.window_days),
        followed_down=baselines.followed_down & ~applies,
        pinned=baselines.pinned | applies,
    )


def apply_pin_in_place(
    baselines: PainBaselines, logs: slice, applies: BoolArray, level: float, noise: float | None
) -> None:
    """`apply_pin` on the logs `logs[applies]` of baselines this caller owns (in place: a
    pin concerns one series of a batch, not worth copying every array)."""
    where = np.arange(logs.start, logs.stop)[applies]
    baselines.level[where] = level
    if noise is not None:
        baselines.noise[where] = noise
        baselines.noise_logs[where] = np.inf
    baselines.logs_used[where] = 0
    baselines.window_days[where] = 0
    baselines.followed_down[where] = False
    baselines.pinned[where] = True
