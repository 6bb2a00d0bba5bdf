"""Output types of detection: alert episodes (design §2 Alert, §4 output fields)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

AlertKind = Literal[
    "pain_regression", "red_flag", "adherence_drop", "missed_logs", "function_decline"
]
Severity = Literal["routine", "urgent"]
JsonValue = str | float | int | None | list["JsonValue"] | dict[str, "JsonValue"]
_set_field = object.__setattr__  # how a frozen dataclass sets its fields


@dataclass(frozen=True, slots=True)
class RelatedEvent:
    """An event shown with an alert: its date, type and note (design §4 `related_events`)."""

    date: date
    event: str
    note: str

    def to_json_dict(self) -> dict[str, JsonValue]:
        return {"date": self.date.isoformat(), "event": self.event, "note": self.note}


@dataclass(frozen=True, slots=True)
class AlertEpisode:
    """One alert episode: opened on `detected_on`, closed on `resolved_on` (None: still open).

    `baseline`, `current` and `change` are in the metric's units (pain points 0–10, adherence
    fraction 0–1, ODI points, PSFS points; for missed_logs `current` is the number of days
    without a log). `baseline_source` says how the baseline was obtained (design §2: "always
    shown with how it was computed"). `linked_event` is the fall or injury the regression began
    after, if any. `superseded`: it was closed (on `resolved_on`) because a further rise of the
    same metric opened the next episode, not because the metric settled. `program_ended`: a
    missed-logs episode closed because the programs asking for logs ended, not by a log.
    `activities_replaced`: a PSFS decline closed because the activities it was raised on are
    no longer rated (it can no longer be followed), not because the score came back.
    """

    patient_id: str
    kind: AlertKind
    metric: str | None
    onset: date
    detected_on: date
    resolved_on: date | None
    severity: Severity
    baseline: float | None
    current: float | None
    change: float | None
    related_events: tuple[RelatedEvent, ...]
    explanation: str
    baseline_source: str = ""
    linked_event: RelatedEvent | None = None
    superseded: bool = False
    program_ended: bool = False
    activities_replaced: bool = False

    def __init__(
        self,
        patient_id: str,
        kind: AlertKind,
        metric: str | None,
        onset: date,
        detected_on: date,
        resolved_on: date | None,
        severity: Severity,
        baseline: float | None,
        current: float | None,
        change: float | None,
        related_events: tuple[RelatedEvent, ...],
        explanation: str,
        baseline_source: str = "",
        linked_event: RelatedEvent | None = None,
        superseded: bool = False,
        program_ended: bool = False,
        activities_replaced: bool = False,
    ) -> None:
        # The dataclass's own __init__, written out: a replay makes a dozen episodes per
        # patient-year, and this one sets the frozen fields a third faster.
        set_field = _set_field
        set_field(self, "patient_id", patient_id)
        set_field(self, "kind", kind)
        set_field(self, "metric", metric)
        set_field(self, "onset", onset)
        set_field(self, "detected_on", detected_on)
        set_field(self, "resolved_on", resolved_on)
        set_field(self, "severity", severity)
        set_field(self, "baseline", baseline)
        set_field(self, "current", current)
        set_field(self, "change", change)
        set_field(self, "related_events", related_events)
        set_field(self, "explanation", explanation)
        set_field(self, "baseline_source", baseline_source)
        set_field(self, "linked_event", linked_event)
        set_field(self, "superseded", superseded)
        set_field(self, "program_ended", program_ended)
        set_field(self, "activities_replaced", activities_replaced)

    @property
    def dedup_key(self) -> tuple[str, str | None, date | None]:
        """Key under which at most one alert may be open at a time (design §2 dedup rule).

        Statistical kinds: (kind, metric, None). A red flag is an instant event, alerted every
        time (design §3), so each red-flag day is its own key: (kind, None, detected_on).
        """
        if self.kind == "red_flag":
            return (self.kind, self.metric, self.detected_on)
        return (self.kind, self.metric, None)

    def to_json_dict(self) -> dict[str, JsonValue]:
        """The §4 output object, fields in contract order."""
        return {
            "patient_id": self.patient_id,
            "kind": self.kind,
            "metric": self.metric,
            "onset": self.onset.isoformat(),
            "detected_on": self.detected_on.isoformat(),
            "severity": self.severity,
            "baseline": self.baseline,
            "current": self.current,
            "change": self.change,
            "related_events": [e.to_json_dict() for e in self.related_events],
            "explanation": self.explanation,
        }
