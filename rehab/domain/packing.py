"""A batch of patient series as flat arrays, and their log columns packed for the detectors.

Detection works in integer day numbers. A batch's dates are converted once, all patients at
once (`Batch`): every log's ordinal, each patient's first log (her day 0) and the day of
`as_of`, and which logs are dated on or before it (a prefix of each patient's logs). Each log
column is then read into one array for the whole batch (a patient-year is a few hundred
Python objects per column: converting them one patient at a time costs more than the
detectors).

`pack` lays the (patient, column) series with enough logs end to end on a virtual calendar
(see `baseline.LogCalendar`), so that one set of array operations serves the whole batch.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain

import numpy as np
import numpy.typing as npt

from rehab.domain.alerts import RelatedEvent
from rehab.domain.baseline import LogCalendar
from rehab.domain.config import DetectionConfig
from rehab.domain.explain import history_sentence
from rehab.domain.series import PatientEvent, PatientSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Context = tuple[tuple[PatientEvent, ...], tuple[RelatedEvent, ...], str]


class Patient:
    """One patient of a batch: her series, day 0 (`origin`, the ordinal of her first log),
    the day of `as_of`, her logs up to it, and her events by date (as day numbers)."""

    __slots__ = (
        "_contexts",
        "_histories",
        "event_days",
        "events",
        "first",
        "has_surgery_history",
        "last_day",
        "n_logs",
        "origin",
        "position",
        "series",
    )

    def __init__(
        self, series: PatientSeries, position: int, origin: int, last_day: int, first: int
    ) -> None:
        self.series = series
        self.position = position
        self.origin = origin
        self.last_day = last_day  # day number of `as_of`
        self.first = first  # index of her first log in the batch's log arrays
        self.n_logs = 0  # logs dated on or before `as_of`
        if series.events:
            self.events = tuple(sorted(series.events, key=_event_date))
            self.event_days = [e.date.toordinal() - origin for e in self.events]
        else:
            self.events = ()
            self.event_days = []
        self.has_surgery_history = any(item.kind == "surgery" for item in series.history)
        self._contexts: dict[tuple[int, int], Context] = {}
        self._histories: dict[int, str] = {}

    def date_of(self, day: int) -> date:
        return date.fromordinal(self.origin + day)

    def known_events(self, day: int) -> tuple[PatientEvent, ...]:
        """Events dated on or before `day` (nothing logged later may appear)."""
        return self.events[: bisect_right(self.event_days, day)]

    def context(self, day: int, config: DetectionConfig) -> Context:
        """Events of the `related_event_days` up to `day`, as objects and as related events,
        and the history line, all as known on `day` (cached: many episodes share them)."""
        if not self.events:
            history = self._histories.get(0)
            if history is None:
                history = history_sentence(self.series.history, ()) if self.series.history else ""
                self._histories[0] = history
            return (), (), history
        known_until = bisect_right(self.event_days, day)
        recent_from = bisect_left(self.event_days, day - config.related_event_days)
        key = (recent_from, known_until)
        found = self._contexts.get(key)
        if found is None:
            recent = self.events[recent_from:known_until]
            related = tuple(RelatedEvent(e.date, e.event_type, e.note) for e in recent)
            history = self._histories.get(known_until)
            if history is None:
                history = history_sentence(self.series.history, self.events[:known_until])
                self._histories[known_until] = history
            found = (recent, related, history)
            self._contexts[key] = found
        return found


def _event_date(event: PatientEvent) -> date:
    return event.date


class Batch:
    """The patients of a batch with their logs dated on or before `as_of` (default: each
    patient's last log) as flat arrays, patient after patient.

    `patients[p]` is None for a patient with no log on or before `as_of` (nothing to
    replay). Logs of patient p are `first[p]` … `first[p] + n_logs[p] - 1` of `ordinal` and
    `day` (her day numbers); `owner` gives each log's patient.
    """

    def __init__(self, batch: Sequence[PatientSeries], as_of: date | None) -> None:
        self.series = batch
        lengths = [len(s.dates) for s in batch]
        total = sum(lengths)
        self.size = total
        all_ordinals = np.fromiter(
            map(date.toordinal, chain.from_iterable(s.dates for s in batch)),
            dtype=np.int64,
            count=total,
        )
        length = np.array(lengths, dtype=np.int64)
        end = np.cumsum(length)
        start = end - length
        if total > 1:
            step = all_ordinals[1:] - all_ordinals[:-1]
            bad = step <= 0
            bad[end[end < total] - 1] = False  # from one patient's last log to the next one's
            if bool(bad.any()):
                p = int(np.searchsorted(end, int(np.argmax(bad)), side="right"))
                raise ValueError(f"{batch[p].patient_id}: log dates must be strictly increasing")
        has_logs = length > 0
        origin = np.zeros(len(batch), dtype=np.int64)
        limit = np.zeros(len(batch), dtype=np.int64)
        origin[has_logs] = all_ordinals[start[has_logs]]
        if as_of is None:
            limit[has_logs] = all_ordinals[end[has_logs] - 1]
        else:
            limit[:] = as_of.toordinal()
        last_day = limit - origin
        # Logs dated on or before `as_of`: a prefix of each patient's logs.
        log_patient = np.repeat(np.arange(len(batch)), length)
        kept = all_ordinals <= limit[log_patient]
        kept_count = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(kept, out=kept_count[1:])
        n_kept = kept_count[end] - kept_count[start]
        self.all_start = start  # per patient: first log in the uncut columns
        self.kept = kept  # per uncut log: dated on or before `as_of`
        self.kept_all = bool(kept.all())
        self.ordinal = all_ordinals[kept]
        self.owner = log_patient[kept]
        self.n_logs = n_kept
        self.first = np.cumsum(n_kept) - n_kept
        self.origin = origin
        self.last_day = last_day
        self.day = self.ordinal - origin[self.owner]
        patients: list[Patient | None] = []
        for p, (series, logs, back) in enumerate(
            zip(batch, lengths, last_day.tolist(), strict=True)
        ):
            if not logs or back < 0:
                patients.append(None)
                continue
            patient = Patient(series, p, int(origin[p]), back, int(self.first[p]))
            patient.n_logs = int(n_kept[p])
            patients.append(patient)
        self.patients = patients

    def column(self, name: str) -> FloatArray:
        """A log column of every patient as floats, NaN where not logged (None) or where the
        patient has no such column; only logs dated on or before `as_of`."""
        columns = [getattr(s, name) for s in self.series]
        if all(len(c) == len(s.dates) for c, s in zip(columns, self.series, strict=True)):
            values = _floats(list(chain.from_iterable(columns)))
        else:
            values = np.full(self.size, np.nan)
            present = [c for c in columns if c]
            where = np.concatenate(
                [
                    np.arange(int(self.all_start[p]), int(self.all_start[p]) + len(c))
                    for p, c in enumerate(columns)
                    if c
                ]
                or [np.zeros(0, dtype=np.int64)]
            )
            values[where] = _floats(list(chain.from_iterable(present)))
        return values if self.kept_all else values[self.kept]


def _floats(items: list[object]) -> FloatArray:
    """The items as floats, None as NaN. The common case, small non-negative integers, is
    read as bytes: several times cheaper than converting each object to a float."""
    try:
        return np.frombuffer(bytes(items), dtype=np.uint8).astype(np.float64)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    try:
        return np.fromiter(items, dtype=np.float64, count=len(items))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.array(items, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Packed:
    """Logs of several series (patient × column) of a batch, laid end to end (`baseline.py`)."""

    owner: list[int]  # per series: position of its patient in the batch
    column: list[str]  # per series: which log column it is
    series_start: IntArray
    series_end: IntArray
    day: IntArray  # virtual day
    local_day: IntArray  # day since the patient's first log
    value: FloatArray
    series_first: IntArray  # per log: index of the first log of its series
    source_index: IntArray  # per log: index into the patient's log columns
    series_offset: IntArray  # per series: virtual day of the patient's day 0
    calendar: LogCalendar


def series_gap(config: DetectionConfig) -> int:
    """Days between packed series on the virtual calendar: more than any lookback."""
    return 2 + max(
        config.baseline_window_days,
        config.noise_window_days,
        config.rho_window_days,
        config.adherence_gap_days + config.adherence_baseline_days,
        config.event_window_days,
        int(config.window_span_per_log * max(w for w, _ in config.windows)) + 1,
        config.adherence_window_max_span_days,
    )


def pack(
    batch: Batch,
    columns: Sequence[tuple[str, FloatArray]],
    min_logs: int,
    config: DetectionConfig,
) -> Packed | None:
    """The series of the given columns (name, `Batch.column` values) with at least `min_logs`
    logged values, column after column, patient after patient within a column."""
    alive = np.array([p is not None for p in batch.patients], dtype=np.bool_)
    owners: list[int] = []
    names: list[str] = []
    values: list[FloatArray] = []
    logs: list[IntArray] = []
    counts: list[IntArray] = []
    for name, column in columns:
        present = column == column  # NaN (None) is not equal to itself
        count = np.zeros(batch.ordinal.shape[0] + 1, dtype=np.int64)
        np.cumsum(present, out=count[1:])
        per_patient = count[batch.first + batch.n_logs] - count[batch.first]
        included = alive & (per_patient >= min_logs)
        if not bool(included.any()):
            continue
        chosen = present & included[batch.owner]
        index = np.flatnonzero(chosen)
        which = np.flatnonzero(included)
        owners.extend(which.tolist())
        names.extend([name] * which.shape[0])
        values.append(column[index])
        logs.append(index)
        counts.append(per_patient[which])
    if not owners:
        return None
    log = np.concatenate(logs)
    lengths = np.concatenate(counts)
    series_end = np.cumsum(lengths)
    series_start = series_end - lengths
    owner_array = np.array(owners, dtype=np.int64)
    local_day = batch.day[log]
    gap = series_gap(config)
    spans = batch.last_day[owner_array] + 1
    series_offset = gap + np.concatenate([[0], np.cumsum(spans + gap)])
    day = local_day + np.repeat(series_offset[:-1], lengths)
    return Packed(
        owner=owners,
        column=names,
        series_start=series_start,
        series_end=series_end,
        day=day,
        local_day=local_day,
        value=np.concatenate(values),
        series_first=np.repeat(series_start, lengths),
        source_index=log - batch.first[batch.owner[log]],
        series_offset=series_offset[:-1],
        calendar=LogCalendar(day, int(series_offset[-1])),
    )


def fired_by_series(fired: BoolArray, packed: Packed) -> list[tuple[int, IntArray]]:
    """(series number, indexes of fired logs) for each series where anything fired."""
    hits = np.flatnonzero(fired)
    if hits.shape[0] == 0:
        return []
    series_of_hit = np.searchsorted(packed.series_end, hits, side="right")
    bounds = np.flatnonzero(np.diff(series_of_hit)) + 1
    starts = np.concatenate([[0], bounds])
    return [
        (int(series_of_hit[s]), group)
        for s, group in zip(starts, np.split(hits, bounds), strict=True)
    ]
