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
    """A scored questionnaire (ODI 0–100, higher is worse; PSFS 0–10, higher is better)."""

    date: date
    instrument: OutcomeInstrument
    score: float


@dataclass(frozen=True, slots=True)
class PinnedBaseline:
    """A clinician-pinned baseline for one metric, in force from `effective_from` on.

    `spread` is the day-to-day noise the clinician expects (None: keep estimating it from the
    data). Metrics: "back_pain", "leg_pain", "adherence", "odi", "psfs".
    """

    metric: str
    level: float
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
        return tuple(
            sorted(
                (p for p in self.pinned_baselines if p.metric == metric),
                key=lambda p: p.effective_from,
            )
        )
