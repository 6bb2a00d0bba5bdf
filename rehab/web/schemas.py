"""Response bodies of the JSON API (the request bodies are `rehab.services.commands`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from rehab.db.models import Program, SessionLog
from rehab.domain.advice import Advice
from rehab.services.series import DayPoint


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MeOut(Out):
    user_id: int
    role: str
    patient_id: int | None


class ExerciseEntryOut(Out):
    prescription_id: int
    done: bool
    sets_done: int
    reps_done: int


class AdviceOut(Out):
    urgent: bool
    messages: list[str]


class SessionLogOut(Out):
    id: int
    client_id: str
    patient_id: int
    log_date: dt.date
    back_pain: int
    leg_pain: int
    leg_side: str | None
    pain_location: str | None
    red_flags: list[str]
    exercises: list[ExerciseEntryOut]
    note: str
    adherence: float | None
    advice: AdviceOut | None


def session_log_out(log: SessionLog, advice: Advice | None) -> SessionLogOut:
    return SessionLogOut(
        id=log.id,
        client_id=log.client_id,
        patient_id=log.patient_id,
        log_date=log.log_date,
        back_pain=log.back_pain,
        leg_pain=log.leg_pain,
        leg_side=log.leg_side.value if log.leg_side else None,
        pain_location=log.pain_location,
        red_flags=log.red_flags,
        exercises=[
            ExerciseEntryOut.model_validate(e)
            for e in sorted(log.entries, key=lambda e: e.prescription_id)
        ],
        note=log.note,
        adherence=log.adherence,
        advice=AdviceOut(urgent=advice.urgent, messages=list(advice.messages)) if advice else None,
    )


class SeriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: dt.date | None = None
    end: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SeriesQuery:
        if self.start and self.end and self.end < self.start:
            raise ValueError("end: is before start")
        return self


class DayOut(Out):
    date: dt.date
    back_pain: int
    leg_pain: int
    leg_side: str | None
    pain_location: str | None
    adherence: float | None
    red_flags: list[str]


class SeriesOut(Out):
    patient_id: int
    days: list[DayOut]

    @classmethod
    def from_days(cls, patient_id: int, days: Sequence[DayPoint]) -> SeriesOut:
        return cls(
            patient_id=patient_id,
            days=[DayOut(**{**d.__dict__, "red_flags": list(d.red_flags)}) for d in days],
        )


class EventOut(Out):
    id: int
    patient_id: int
    client_id: str | None
    event_date: dt.date
    event_type: str
    side: str | None
    body_region: str | None
    description: str
    fall_location: str | None
    fall_steps: int | None
    fall_height_cm: int | None
    fall_landed_on: str | None


class EventList(Out):
    items: list[EventOut]


class PrescriptionOut(Out):
    id: int
    exercise_id: int
    exercise_name: str
    sets: int
    reps: int
    hold_seconds: int
    sessions_per_week: int
    notes: str
    active: bool


class PhaseOut(Out):
    name: str
    start_date: dt.date
    goals: str


class ProgramOut(Out):
    id: int
    title: str
    start_date: dt.date
    end_date: dt.date | None
    phases: list[PhaseOut]
    prescriptions: list[PrescriptionOut]


def program_out(program: Program) -> ProgramOut:
    return ProgramOut(
        id=program.id,
        title=program.title,
        start_date=program.start_date,
        end_date=program.end_date,
        phases=[PhaseOut.model_validate(p) for p in program.phases],
        prescriptions=[
            PrescriptionOut(
                id=p.id,
                exercise_id=p.exercise_id,
                exercise_name=p.exercise.name,
                sets=p.sets,
                reps=p.reps,
                hold_seconds=p.hold_seconds,
                sessions_per_week=p.sessions_per_week,
                notes=p.notes,
                active=p.active,
            )
            for p in program.prescriptions
        ],
    )


class ProgramList(Out):
    items: list[ProgramOut]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    error: str
    message: str | None = None
    errors: list[FieldError] | None = None


def json_schema_of(model: type[BaseModel], mode: Any = "validation") -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
