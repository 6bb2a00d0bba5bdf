"""Plain input types for detection: one patient's daily logs, events, outcomes and context.

The logs are column-oriented (one tuple per field, one entry per logged day) because the
detectors work on numpy arrays and a patient-year of row objects would cost more to build than
the whole replay. `PatientSeries.from_logs` builds one from row objects when that is handier.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import numpy as np

from rehab.domain.arrays import FloatArray, IntArray
from rehab.domain.missed_logs import Period

PainMetric = Literal["back_pain", "leg_pain"]
PAIN_METRICS: tuple[PainMetric, ...] = ("back_pain", "leg_pain")
OutcomeInstrument = Literal["odi", "psfs"]

# Event types whose mechanism can injure (design §2 Event): they lower the evidence needed for
# a pain regression that begins soon after, and the alert names them as its likely context.
PROVOKING_EVENT_TYPES: frozenset[str] = frozenset({"fall", "injury"})
# Event types that make up a patient's history line ("History: left L4-L5 decompression 2024-06").
HISTORY_EVENT_TYPES: frozenset[str] = frozenset({"surgery", "diagnosis"})
# A red flag whose kind the source does not say (the CSV contract only has 0/1).
UNSPECIFIED_RED_FLAG = "unspecified"


@dataclass(frozen=True, slots=True)
class PatientEvent:
    """Something that happened to the patient (design §2 Event).

    `mechanism` is the app's plain rendering of a fall's structured mechanism, e.g.
    "on stairs (10 steps, landed on buttocks)"; `note` is free text.
    """

    date: date
    event_type: str
    note: str = ""
    side: str | None = None
    body_region: str | None = None
    mechanism: str | None = None


@dataclass(frozen=True, slots=True)
class OutcomeScore:
    """A scored questionnaire (ODI 0–100, higher is worse; PSFS 0–10, higher is better).

    `ratings`: a PSFS's own activities and their ratings, each activity by its
    `questionnaires.activity_key`, so that two PSFS are compared on the activities rated in
    both (`questionnaires.comparable_psfs`); empty for ODI, or where the activities are not
    known (the score is then compared as it is).
    """

    date: date
    instrument: OutcomeInstrument
    score: float
    ratings: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class PinnedBaseline:
    """A clinician-pinned baseline for one metric, in force from `effective_from` until the
    metric's next pin (`baseline.pin_periods`); `level` None returns the metric to the
    automatic baseline from `effective_from`.

    `spread` is the day-to-day noise the clinician expects (None: keep estimating it from the
    data). Metrics: "back_pain", "leg_pain", "adherence", "odi", "psfs".
    """

    metric: str
    level: float | None
    effective_from: date
    spread: float | None = None
    pinned_by: str = ""


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """A line of history shown on every alert, e.g. ("left L4-L5 decompression", "2024-06",
    "surgery"). `kind` is an event type ("surgery", "diagnosis", ...) or empty."""

    description: str
    when: str = ""
    kind: str = ""


@dataclass(frozen=True, slots=True)
class DailyLog:
    """One day's log as a row object (see `PatientSeries.from_logs`)."""

    date: date
    back_pain: int | None = None
    leg_pain: int | None = None
    adherence: float | None = None
    red_flags: tuple[str, ...] = ()
    leg_side: str | None = None


@dataclass(frozen=True, slots=True)
class PatientSeries:
    """Everything detection needs about one patient, as plain data.

    Log columns are parallel tuples, one entry per logged day, dates strictly increasing:
    - `back_pain`, `leg_pain`: integers 0–10 or None (not logged that day);
    - `adherence`: fraction 0–1 of the prescribed session done, or None (unknown);
    - `red_flags`: the red flags reported that day (empty tuple: none);
    - `leg_side`: "left"/"right"/"both" or None; empty tuple when not known at all.
    Events, outcomes, pinned baselines and history need no order.

    `logs_from`: None when the series holds every log of the patient; a date when it holds
    only the logs from that day on and earlier ones exist (a window of a longer history,
    `detection.trim_series`). Detection then returns no pain or adherence episode detected
    within `DetectionConfig.decision_lookback_days` after it: those decisions would read the
    logs left out, and judged against baselines of a few logs they open episodes the whole
    history never has.

    `logging_asked`: the patient's programs (first and last day; None: no end set), when
    known. Missed logging then counts only while they ask for logs, from their start
    (`rehab.domain.missed_logs`); None (the CSV contract): from the first log on, for good.
    """

    patient_id: str
    dates: tuple[date, ...]
    back_pain: tuple[int | None, ...]
    leg_pain: tuple[int | None, ...]
    adherence: tuple[float | None, ...] = ()
    red_flags: tuple[tuple[str, ...], ...] = ()
    leg_side: tuple[str | None, ...] = ()
    events: tuple[PatientEvent, ...] = ()
    outcomes: tuple[OutcomeScore, ...] = ()
    pinned_baselines: tuple[PinnedBaseline, ...] = ()
    history: tuple[HistoryItem, ...] = field(default=())
    logs_from: date | None = None
    logging_asked: tuple[Period, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.dates)
        for name in ("back_pain", "leg_pain"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} dates")
        for name in ("adherence", "red_flags", "leg_side"):
            column = getattr(self, name)
            if column and len(column) != n:
                raise ValueError(f"{name} has {len(column)} entries for {n} dates")

    @classmethod
    def from_logs(
        cls,
        patient_id: str,
        logs: Iterable[DailyLog],
        *,
        events: Sequence[PatientEvent] = (),
        outcomes: Sequence[OutcomeScore] = (),
        pinned_baselines: Sequence[PinnedBaseline] = (),
        history: Sequence[HistoryItem] = (),
    ) -> PatientSeries:
        """Build a series from row objects (sorted here; one log per day)."""
        rows = sorted(logs, key=lambda log: log.date)
        return cls(
            patient_id=patient_id,
            dates=tuple(r.date for r in rows),
            back_pain=tuple(r.back_pain for r in rows),
            leg_pain=tuple(r.leg_pain for r in rows),
            adherence=tuple(r.adherence for r in rows),
            red_flags=tuple(r.red_flags for r in rows),
            leg_side=tuple(r.leg_side for r in rows),
            events=tuple(events),
            outcomes=tuple(outcomes),
            pinned_baselines=tuple(pinned_baselines),
            history=tuple(history),
        )

    def pinned_for(self, metric: str) -> tuple[PinnedBaseline, ...]:
        """Pins for `metric`, oldest first."""
        return _pinned_for(self.pinned_baselines, metric)


@dataclass(frozen=True, slots=True, eq=False)
class ArraySeries:
    """A `PatientSeries` whose numeric log columns are arrays: what a reader that decodes logs
    in bulk (`rehab.services.series_copy`) has without making a Python object per number or
    date. `detect_episodes_many` takes either; the result is the same to the last bit
    (`to_series` gives the PatientSeries).

    - `ordinal`: each log's `date.toordinal()`, strictly increasing;
    - `back_pain`, `leg_pain`, `adherence`: floats, NaN where a PatientSeries has None;
    - `red_flags`, `leg_side`: as in a PatientSeries, one entry per log (read per log only
      on the days that need them).
    """

    patient_id: str
    ordinal: IntArray
    back_pain: FloatArray
    leg_pain: FloatArray
    adherence: FloatArray
    red_flags: Sequence[tuple[str, ...]]
    leg_side: Sequence[str | None]
    events: tuple[PatientEvent, ...] = ()
    outcomes: tuple[OutcomeScore, ...] = ()
    pinned_baselines: tuple[PinnedBaseline, ...] = ()
    history: tuple[HistoryItem, ...] = ()
    logs_from: date | None = None  # as in PatientSeries
    logging_asked: tuple[Period, ...] | None = None  # as in PatientSeries

    def __post_init__(self) -> None:
        n = self.ordinal.shape[0]
        for name in ("back_pain", "leg_pain", "adherence", "red_flags", "leg_side"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} dates")

    def pinned_for(self, metric: str) -> tuple[PinnedBaseline, ...]:
        """Pins for `metric`, oldest first."""
        return _pinned_for(self.pinned_baselines, metric)

    def to_series(self) -> PatientSeries:
        def ratings(values: FloatArray) -> tuple[int | None, ...]:
            return tuple(None if v != v else int(v) for v in values.tolist())

        return PatientSeries(
            patient_id=self.patient_id,
            dates=tuple(date.fromordinal(o) for o in self.ordinal.tolist()),
            back_pain=ratings(self.back_pain),
            leg_pain=ratings(self.leg_pain),
            adherence=tuple(None if v != v else v for v in self.adherence.tolist()),
            red_flags=tuple(self.red_flags),
            leg_side=tuple(self.leg_side),
            events=self.events,
            outcomes=self.outcomes,
            pinned_baselines=self.pinned_baselines,
            history=self.history,
            logs_from=self.logs_from,
            logging_asked=self.logging_asked,
        )

    @classmethod
    def from_series(cls, series: PatientSeries) -> ArraySeries:
        n = len(series.dates)

        def floats(column: tuple[float | None, ...]) -> FloatArray:
            if len(column) != n:
                return np.full(n, np.nan)
            return np.array([np.nan if v is None else v for v in column], dtype=np.float64)

        return cls(
            patient_id=series.patient_id,
            ordinal=np.array([d.toordinal() for d in series.dates], dtype=np.int64),
            back_pain=floats(series.back_pain),
            leg_pain=floats(series.leg_pain),
            adherence=floats(series.adherence),
            red_flags=series.red_flags or ((),) * n,
            leg_side=series.leg_side or (None,) * n,
            events=series.events,
            outcomes=series.outcomes,
            pinned_baselines=series.pinned_baselines,
            history=series.history,
            logs_from=series.logs_from,
            logging_asked=series.logging_asked,
        )


# What detection takes: either form of a patient's series.
AnySeries = PatientSeries | ArraySeries


def _pinned_for(pins: tuple[PinnedBaseline, ...], metric: str) -> tuple[PinnedBaseline, ...]:
    return tuple(sorted((p for p in pins if p.metric == metric), key=lambda p: p.effective_from))
