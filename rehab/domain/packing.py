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
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from rehab.domain.alerts import RelatedEvent
from rehab.domain.arrays import FloatArray, IntArray, flat_true
from rehab.domain.baseline import LogCalendar
from rehab.domain.config import DetectionConfig
from rehab.domain.explain import (
    also_logged_sentence,
    event_mention,
    history_sentence,
    join_sentences,
)
from rehab.domain.series import (
    HISTORY_EVENT_TYPES,
    PROVOKING_EVENT_TYPES,
    AnySeries,
    ArraySeries,
    PatientEvent,
    PatientSeries,
)

Context = tuple[tuple[PatientEvent, ...], tuple[RelatedEvent, ...], str]


class Patient:
    """One patient of a batch: her series, day 0 (`origin`, the ordinal of her first log),
    the day of `as_of`, her logs up to it, and her events by date (as day numbers)."""

    __slots__ = (
        "_described",
        "_histories",
        "_history_at",
        "_history_events",
        "_related",
        "_tails",
        "event_days",
        "events",
        "first",
        "first_surgery_day",
        "has_surgery_history",
        "last_day",
        "n_logs",
        "origin",
        "position",
        "provoking",
        "provoking_days",
        "series",
    )

    def __init__(
        self, series: AnySeries, position: int, origin: int, last_day: int, first: int
    ) -> None:
        self.series = series
        self.position = position
        self.origin = origin
        self.last_day = last_day  # day number of `as_of`
        self.first = first  # index of her first log in the batch's log arrays
        self.n_logs = 0  # logs dated on or before `as_of`
        # Events by date and their day numbers; falls and injuries (with their days); the day
        # of the first surgery logged; surgeries and diagnoses (the events a history line
        # names) with their indexes.
        provoking: list[PatientEvent] = []
        provoking_days: list[int] = []
        history_events: list[PatientEvent] = []
        history_at: list[int] = []
        first_surgery_day: int | None = None
        if series.events:
            events = tuple(sorted(series.events, key=_event_date))
            event_days = [e.date.toordinal() - origin for e in events]
            for at, (event, event_day) in enumerate(zip(events, event_days, strict=True)):
                kind = event.event_type
                if kind in PROVOKING_EVENT_TYPES:
                    provoking.append(event)
                    provoking_days.append(event_day)
                elif kind in HISTORY_EVENT_TYPES:
                    history_events.append(event)
                    history_at.append(at)
                    if kind == "surgery" and first_surgery_day is None:
                        first_surgery_day = event_day
            self.events: tuple[PatientEvent, ...] = events
            self.event_days: list[int] = event_days
        else:
            self.events = ()
            self.event_days = []
        self.provoking = provoking
        self.provoking_days = provoking_days
        self.first_surgery_day = first_surgery_day
        self._history_events = history_events
        self._history_at = history_at
        self.has_surgery_history = (
            any(item.kind == "surgery" for item in series.history) if series.history else False
        )
        self._related: tuple[RelatedEvent, ...] | None = None
        self._histories: dict[int, str] = {}  # by the number of history events known
        self._described: list[str] | None = None
        self._tails: dict[int, tuple[tuple[RelatedEvent, ...], str]] = {}

    def date_of(self, day: int) -> date:
        return date.fromordinal(self.origin + day)

    def known_events(self, day: int) -> tuple[PatientEvent, ...]:
        """Events dated on or before `day` (nothing logged later may appear)."""
        return self.events[: bisect_right(self.event_days, day)]

    def surgery_known(self, day: int) -> bool:
        """Spine surgery in her history, or a surgery logged on or before `day`."""
        return self.has_surgery_history or (
            self.first_surgery_day is not None and self.first_surgery_day <= day
        )

    def latest_provoking(self, day: int, since: int) -> PatientEvent | None:
        """The latest fall or injury dated from `since` to `day` (the last logged of a day)."""
        at = bisect_right(self.provoking_days, day) - 1
        if at >= 0 and self.provoking_days[at] >= since:
            return self.provoking[at]
        return None

    def context(self, day: int, config: DetectionConfig) -> Context:
        """Events of the `related_event_days` up to `day`, as objects and as related events,
        and the history line, all as known on `day` (each made once per patient)."""
        if not self.events:
            history = self._histories.get(0)
            if history is None:
                history = history_sentence(self.series.history, ()) if self.series.history else ""
                self._histories[0] = history
            return (), (), history
        known_until = bisect_right(self.event_days, day)
        recent_from = bisect_left(self.event_days, day - config.related_event_days)
        if self._related is None:
            self._related = tuple(RelatedEvent(e.date, e.event_type, e.note) for e in self.events)
        return (
            self.events[recent_from:known_until],
            self._related[recent_from:known_until],
            self._history(known_until),
        )

    def _history(self, known_until: int) -> str:
        """`history_sentence` of the history items and the first `known_until` events."""
        known = bisect_left(self._history_at, known_until)
        history = self._histories.get(known)
        if history is None:
            history = history_sentence(self.series.history, self._history_events[:known])
            self._histories[known] = history
        return history

    def also_logged(self, first: int, until: int, leave_out: PatientEvent | None = None) -> str:
        """`also_logged_sentence` of events `first` … `until` − 1 (but `leave_out`)."""
        if self._described is None:
            self._described = [event_mention(e) for e in self.events]
        described = self._described[first:until]
        if leave_out is not None:
            described = [
                text
                for text, event in zip(described, self.events[first:until], strict=True)
                if event is not leave_out
            ]
        return also_logged_sentence(described)

    def context_tail(
        self, day: int, config: DetectionConfig
    ) -> tuple[tuple[RelatedEvent, ...], str]:
        """The related events of `context(day)` and what an explanation says after its head:
        "Also logged: …" for them, then the history line (`explain.with_context`)."""
        if not self.events:
            return (), self._history(0)
        known_until = bisect_right(self.event_days, day)
        recent_from = bisect_left(self.event_days, day - config.related_event_days)
        key = recent_from * 65536 + known_until
        found = self._tails.get(key)
        if found is None:
            if self._related is None:
                self._related = tuple(
                    RelatedEvent(e.date, e.event_type, e.note) for e in self.events
                )
            found = (
                self._related[recent_from:known_until],
                join_sentences(
                    self.also_logged(recent_from, known_until), self._history(known_until)
                ),
            )
            self._tails[key] = found
        return found

    def context_tail_without(
        self, day: int, config: DetectionConfig, leave_out: PatientEvent
    ) -> tuple[tuple[RelatedEvent, ...], str]:
        """`context_tail` whose "Also logged" leaves one event out (the one an alert names as
        how it began). The related events reach back to that event, if it is older than the
        `related_event_days` (an alert that began 14 days after a fall lists the fall)."""
        known_until = bisect_right(self.event_days, day)
        linked_day = leave_out.date.toordinal() - self.origin
        recent_from = bisect_left(self.event_days, min(day - config.related_event_days, linked_day))
        if self._related is None:
            self._related = tuple(RelatedEvent(e.date, e.event_type, e.note) for e in self.events)
        related = self._related[recent_from:known_until]
        return related, join_sentences(
            self.also_logged(recent_from, known_until, leave_out), self._history(known_until)
        )


def _event_date(event: PatientEvent) -> date:
    return event.date


class Batch:
    """The patients of a batch with their logs dated on or before `as_of` (default: each
    patient's last log) as flat arrays, patient after patient.

    `patients[p]` is None for a patient with no log on or before `as_of` (no log to replay:
    only her missed logging and her ODI/PSFS scores are, by `rehab.domain.episodes`).
    Logs of patient p are `first[p]` … `first[p] + n_logs[p] - 1` of `ordinal` and
    `day` (her day numbers); `owner` gives each log's patient.
    """

    def __init__(self, batch: Sequence[AnySeries], as_of: date | None) -> None:
        # PatientSeries carry Python objects, ArraySeries arrays: a batch of PatientSeries only
        # is read from its objects; any other is read as arrays throughout (a PatientSeries in
        # a mixed batch, rare, is converted once here).
        self.tuples_only = all(isinstance(s, PatientSeries) for s in batch)
        if not self.tuples_only:
            batch = [s if isinstance(s, ArraySeries) else ArraySeries.from_series(s) for s in batch]
        self.series = batch
        lengths = [_log_count(s) for s in batch]
        total = sum(lengths)
        self.size = total
        all_ordinals = _ordinals(batch, total, self.tuples_only)
        length = np.array(lengths, dtype=np.int64)
        end = np.cumsum(length)
        start = end - length
        if total > 1:
            step = all_ordinals[1:] - all_ordinals[:-1]
            bad = step <= 0
            bad[end[end < total] - 1] = False  # from one patient's last log to the next one's
            if bool(bad.any()):
                p = int(end.searchsorted(int(np.argmax(bad)), side="right"))
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
        kept.cumsum(out=kept_count[1:])
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
        if not self.tuples_only:
            values: FloatArray = _concatenated([getattr(s, name) for s in self.series])
            return values if self.kept_all else values[self.kept]
        series = cast(Sequence[PatientSeries], self.series)
        columns = [getattr(s, name) for s in series]
        if all(len(c) == len(s.dates) for c, s in zip(columns, series, strict=True)):
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


def _log_count(series: AnySeries) -> int:
    return series.ordinal.shape[0] if isinstance(series, ArraySeries) else len(series.dates)


def _ordinals(batch: Sequence[AnySeries], total: int, tuples_only: bool) -> IntArray:
    """Every log's date ordinal, patient after patient."""
    if tuples_only:
        return np.fromiter(
            map(date.toordinal, chain.from_iterable(cast(PatientSeries, s).dates for s in batch)),
            dtype=np.int64,
            count=total,
        )
    ordinals: IntArray = _concatenated([cast(ArraySeries, s).ordinal for s in batch], np.int64)
    return ordinals


def _concatenated(parts: list[npt.NDArray[Any]], dtype: Any = np.float64) -> npt.NDArray[Any]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _floats(items: list[object]) -> FloatArray:
    """The items as floats, None as NaN. The common case, small non-negative integers, is
    read as bytes: several times cheaper than converting each object to a float."""
    try:
        return np.frombuffer(bytes(items), dtype=np.uint8).astype(np.float64)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    try:
        return np.fromiter(items, dtype=np.float64, count=len(items))
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
        present.cumsum(out=count[1:])
        per_patient = count[batch.first + batch.n_logs] - count[batch.first]
        included = alive & (per_patient >= min_logs)
        if not bool(included.any()):
            continue
        chosen = present & included[batch.owner]
        index = flat_true(chosen)
        which = flat_true(included)
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
