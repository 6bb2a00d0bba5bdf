"""The demo clinic as plain data, before it is written to the database.

The generators (`seed_case`, `cohort`) build these objects; `loader` turns them into rows.
Prescriptions are referred to by their position in their program and exercises by library
slug, so a plan needs no database ids.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

from rehab.domain.session_adherence import (
    DAILY,
    DAYS_BEFORE,
    DoneEntry,
    PrescribedDose,
    performed,
    session_adherence,
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

# Who records an event, finding or measure: the patient or the demo clinician.
PATIENT = "patient"
CLINICIAN = "clinician"


@dataclass(frozen=True)
class PrescriptionPlan:
    slug: str
    sets: int
    reps: int
    hold_seconds: int = 0
    sessions_per_week: int = 7
    notes: str = ""


@dataclass(frozen=True)
class PhasePlan:
    name: str
    start: dt.date
    goals: str = ""


@dataclass
class ProgramPlan:
    title: str
    start: dt.date
    end: dt.date | None
    phases: list[PhasePlan]
    prescriptions: list[PrescriptionPlan]

    def in_effect(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class EntryPlan:
    """One exercise of the day's log: `position` is the prescription's place in its program."""

    position: int
    done: bool
    sets_done: int = 0
    reps_done: int = 0


@dataclass
class LogPlan:
    day: dt.date
    program: int  # index into PatientPlan.programs
    back_pain: int
    leg_pain: int
    leg_side: Side | None
    entries: list[EntryPlan]
    pain_location: str | None = None
    red_flags: tuple[RedFlag, ...] = ()
    note: str = ""
    adherence: float | None = None


@dataclass(frozen=True)
class EventPlan:
    day: dt.date
    event_type: EventType
    by: str
    description: str
    side: Side | None = None
    body_region: str | None = None
    fall_location: FallLocation | None = None
    fall_steps: int | None = None
    fall_height_cm: int | None = None
    fall_landed_on: LandedOn | None = None


@dataclass(frozen=True)
class FindingPlan:
    day: dt.date
    kind: FindingKind
    text: str = ""
    test_name: NeurodynamicTest | None = None
    side: Side | None = None
    result: TestResult | None = None
    modality: ImagingModality | None = None
    body_region: str | None = None


@dataclass(frozen=True)
class OutcomePlan:
    day: dt.date
    instrument: Instrument
    score: float
    answers: dict[str, Any]


@dataclass
class PatientPlan:
    key: str  # short, unique, used in client ids ("elena", "p07")
    display_name: str
    email: str
    year_of_birth: int
    condition_summary: str
    team: int  # index into the demo care teams
    registered_on: dt.date
    password: str | None = None
    trajectory: str = ""
    programs: list[ProgramPlan] = field(default_factory=list)
    logs: list[LogPlan] = field(default_factory=list)
    events: list[EventPlan] = field(default_factory=list)
    findings: list[FindingPlan] = field(default_factory=list)
    outcomes: list[OutcomePlan] = field(default_factory=list)

    def program_index_on(self, day: dt.date) -> int | None:
        """Like `services.programs.program_on`: the latest program started and not ended."""
        found = None
        for index, program in enumerate(self.programs):
            if program.in_effect(day) and (
                found is None or program.start >= self.programs[found].start
            ):
                found = index
        return found

    def truncate(self, as_of: dt.date) -> None:
        """Drop everything after `as_of` (the demo's "today")."""
        self.programs = [p for p in self.programs if p.start <= as_of]
        self.logs = [log for log in self.logs if log.day <= as_of]
        self.events = [e for e in self.events if e.day <= as_of]
        self.findings = [f for f in self.findings if f.day <= as_of]
        self.outcomes = [o for o in self.outcomes if o.day <= as_of]


def chain_programs(programs: list[ProgramPlan]) -> None:
    """End each program the day before the next starts (as `create_program` does)."""
    programs.sort(key=lambda p: p.start)
    for current, following in itertools.pairwise(programs):
        current.end = following.start - dt.timedelta(days=1)


def adherence_of(plan: PatientPlan, log: LogPlan) -> float | None:
    """The stored adherence of a log, computed exactly as the log service computes it: from
    its entries and, for exercises prescribed less than daily, the plan's logs of the same
    program in the days before (as stored so far, like the service's context query)."""
    program = plan.programs[log.program]
    performed_before = dict.fromkeys(range(len(program.prescriptions)), 0)
    if any(p.sessions_per_week < DAILY for p in program.prescriptions):
        first = log.day - dt.timedelta(days=DAYS_BEFORE)
        for earlier in plan.logs:
            if earlier.program == log.program and first <= earlier.day < log.day:
                for e in earlier.entries:
                    if performed(DoneEntry(e.position, e.done, e.sets_done)):
                        performed_before[e.position] += 1
    in_effect_before = min(DAYS_BEFORE, (log.day - program.start).days)
    return session_adherence(
        [
            PrescribedDose(
                index,
                p.sets,
                p.sessions_per_week,
                performed_before=performed_before[index],
                days_in_effect_before=in_effect_before,
            )
            for index, p in enumerate(program.prescriptions)
        ],
        {e.position: DoneEntry(e.position, e.done, e.sets_done) for e in log.entries},
    )
