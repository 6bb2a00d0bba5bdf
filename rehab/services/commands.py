"""Validated inputs of the use cases, shared by the JSON API and the web forms.

pydantic checks shapes and ranges (`strict` so "7" or 7.5 is not silently a pain score);
checks that need the database (dates against the program, known prescriptions) are made by
the services and raised as `InvalidInput` with the field named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from rehab.domain.vocabulary import (
    EventType,
    FallLocation,
    FindingKind,
    ImagingModality,
    Instrument,
    LandedOn,
    NeurodynamicTest,
    RedFlag,
    Side,
    TestResult,
)

PainScore = Annotated[int, Field(ge=0, le=10, strict=True)]
ClientId = Annotated[
    str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]
# Control characters are refused in every text (PostgreSQL cannot store NUL, and none belongs in
# a clinical note); a long text keeps its tabs and line breaks.
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
_MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
ShortText = Annotated[
    str, StringConstraints(max_length=120, strip_whitespace=True, pattern=_ONE_LINE)
]
Region = Annotated[str, StringConstraints(max_length=80, strip_whitespace=True, pattern=_ONE_LINE)]
LongText = Annotated[
    str, StringConstraints(max_length=2000, strip_whitespace=True, pattern=_MULTI_LINE)
]

# Dates a clinic records: history reaches back decades, never centuries (a year-1 date would
# also break the date arithmetic of the charts); the upper bound keeps `date + 1 day` valid.
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)


def _plausible_date(value: dt.date) -> dt.date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(
            f"must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}"
        )
    return value


ClinicDate = Annotated[dt.date, AfterValidator(_plausible_date)]


class InvalidInput(ValueError):
    """A value the service refuses; `field` is its dotted path in the submitted body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical body: two submissions are 'the same' iff equal."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class ExerciseEntryInput(Command):
    prescription_id: Annotated[int, Field(gt=0, strict=True)]
    done: Annotated[bool, Field(strict=True)]
    sets_done: Annotated[int, Field(ge=0, le=50, strict=True)] = 0
    reps_done: Annotated[int, Field(ge=0, le=500, strict=True)] = 0


class SessionLogInput(Command):
    client_id: ClientId
    log_date: ClinicDate
    back_pain: PainScore
    leg_pain: PainScore
    leg_side: Side | None = None
    pain_location: Region | None = None
    red_flags: Annotated[list[RedFlag], Field(max_length=len(RedFlag))] = []
    exercises: Annotated[list[ExerciseEntryInput], Field(max_length=50)] = []
    note: LongText = ""

    @model_validator(mode="after")
    def _consistent(self) -> SessionLogInput:
        if self.leg_pain > 0 and self.leg_side is None:
            raise ValueError("leg_side: required when leg_pain is above 0")
        if len(set(self.red_flags)) != len(self.red_flags):
            raise ValueError("red_flags: a flag is listed twice")
        ids = [e.prescription_id for e in self.exercises]
        if len(set(ids)) != len(ids):
            raise ValueError("exercises: a prescription is listed twice")
        return self

    def canonical(self) -> SessionLogInput:
        """Order-insensitive lists, so a reordered retry has the same fingerprint."""
        return self.model_copy(
            update={
                "red_flags": sorted(self.red_flags),
                "exercises": sorted(self.exercises, key=lambda e: e.prescription_id),
            }
        )


class EventInput(Command):
    client_id: ClientId | None = None
    event_date: ClinicDate
    event_type: EventType
    side: Side | None = None
    body_region: Region | None = None
    description: LongText = ""
    fall_location: FallLocation | None = None
    fall_steps: Annotated[int, Field(ge=1, le=200, strict=True)] | None = None
    fall_height_cm: Annotated[int, Field(ge=1, le=2000, strict=True)] | None = None
    fall_landed_on: LandedOn | None = None

    @model_validator(mode="after")
    def _fall_mechanism(self) -> EventInput:
        mechanism = (self.fall_location, self.fall_steps, self.fall_height_cm, self.fall_landed_on)
        if self.event_type is EventType.FALL:
            if self.fall_location is None:
                raise ValueError("fall_location: required for a fall")
            if self.fall_landed_on is None:
                raise ValueError("fall_landed_on: required for a fall")
        elif any(v is not None for v in mechanism):
            raise ValueError("event_type: fall_* fields are only for events of type fall")
        return self


class FindingInput(Command):
    finding_date: ClinicDate
    kind: FindingKind
    test_name: NeurodynamicTest | None = None
    side: Side | None = None
    result: TestResult | None = None
    modality: ImagingModality | None = None
    body_region: Region | None = None
    text: LongText = ""

    @model_validator(mode="after")
    def _complete(self) -> FindingInput:
        if self.kind is FindingKind.NEURODYNAMIC_TEST and (
            self.test_name is None or self.result is None
        ):
            raise ValueError("test_name: a neurodynamic test needs test_name and result")
        if self.kind is FindingKind.IMAGING and self.modality is None:
            raise ValueError("modality: required for an imaging finding")
        if self.kind is FindingKind.OBSERVATION and not self.text:
            raise ValueError("text: required for an observation")
        return self


class OutcomeInput(Command):
    instrument: Instrument
    measured_on: ClinicDate
    # ODI: the 10 section scores 0–5 (null = unanswered). PSFS: 3–5 activities.
    odi_sections: list[int | None] | None = None
    psfs_activities: Annotated[list[PsfsActivity], Field(max_length=5)] | None = None

    @model_validator(mode="after")
    def _answers_match(self) -> OutcomeInput:
        if self.instrument is Instrument.ODI and self.odi_sections is None:
            raise ValueError("odi_sections: required for ODI")
        if self.instrument is Instrument.PSFS and self.psfs_activities is None:
            raise ValueError("psfs_activities: required for PSFS")
        return self


class PsfsActivity(Command):
    activity: Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)]
    rating: Annotated[int, Field(ge=0, le=10, strict=True)]


OutcomeInput.model_rebuild()


class PsfsRatingsInput(Command):
    """A patient's own PSFS: a rating 0–10 for each activity of her latest PSFS, in order."""

    ratings: Annotated[
        list[Annotated[int, Field(ge=0, le=10, strict=True)]], Field(min_length=1, max_length=5)
    ]


class PrescriptionInput(Command):
    exercise_id: Annotated[int, Field(gt=0, strict=True)]
    sets: Annotated[int, Field(ge=1, le=20, strict=True)]
    reps: Annotated[int, Field(ge=1, le=200, strict=True)]
    hold_seconds: Annotated[int, Field(ge=0, le=600, strict=True)] = 0
    sessions_per_week: Annotated[int, Field(ge=1, le=14, strict=True)] = 7
    notes: LongText = ""


class PhaseInput(Command):
    name: Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)]
    start_date: ClinicDate
    goals: LongText = ""


class ProgramInput(Command):
    title: Annotated[str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True)]
    start_date: ClinicDate
    end_date: ClinicDate | None = None
    phases: Annotated[list[PhaseInput], Field(max_length=12)] = []
    prescriptions: Annotated[list[PrescriptionInput], Field(min_length=1, max_length=40)]

    @model_validator(mode="after")
    def _dates(self) -> ProgramInput:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date: before start_date")
        for phase in self.phases:
            if phase.start_date < self.start_date or (
                self.end_date is not None and phase.start_date > self.end_date
            ):
                raise ValueError(f"phases: phase {phase.name!r} starts outside the program")
        return self


class EnteredInErrorInput(Command):
    """Why an event, finding or score is marked entered in error (it stays in the record)."""

    reason: Annotated[
        str,
        StringConstraints(min_length=1, max_length=300, strip_whitespace=True, pattern=_ONE_LINE),
    ]


class EndProgramInput(Command):
    """The last day of the program in effect on it (a discharge, or a break in care)."""

    end_date: ClinicDate


# An e-mail address as a login: trimmed, lower-cased, one "@" with something on each side
# (deliverability is the confirmation link's job, not a regular expression's).
EmailAddress = Annotated[
    str,
    StringConstraints(
        max_length=254, strip_whitespace=True, to_lower=True, pattern=r"^[^@\s]+@[^@\s]+$"
    ),
]


class PatientDetailsInput(Command):
    """What identifies a patient and her working summary: set when she is added, corrected
    later on her record (`accounts.update_patient_details`)."""

    display_name: Annotated[
        str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True)
    ]
    email: EmailAddress
    year_of_birth: Annotated[int, Field(ge=1900, le=2100, strict=True)] | None = None
    condition_summary: Annotated[str, StringConstraints(max_length=300)] = ""


class PatientInput(PatientDetailsInput):
    care_team_id: Annotated[int, Field(gt=0, strict=True)]


class EmailChangeInput(Command):
    """The new login address someone asks for (`account_settings.request_email_change`)."""

    email: EmailAddress


class HandOverInput(Command):
    """The care team a patient is handed over to (`handover.hand_over`)."""

    care_team_id: Annotated[int, Field(gt=0, strict=True)]


def error_list(exc: Any) -> list[dict[str, str]]:
    """pydantic's ValidationError as [{"field": "exercises.0.sets_done", "message": ...}]."""
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"])
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
            # Cross-field checks name their field as "field: message".
            named, sep, rest = message.partition(": ")
            if sep and not field and named.replace("_", "").isalnum():
                field, message = named, rest
        out.append({"field": field or "body", "message": message})
    return out
