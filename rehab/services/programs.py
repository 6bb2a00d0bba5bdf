"""Programs: the exercise library, prescribing, and which program is in effect on a day."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from rehab.db.models import Exercise, ExerciseEntry, Prescription, Program, ProgramPhase, SessionLog
from rehab.services import audit
from rehab.services.access import require_patient
from rehab.services.actors import Actor
from rehab.services.commands import EndProgramInput, InvalidInput, ProgramInput
from rehab.services.dispatch import EVALUATE_PATIENT_TASK, enqueue_after_commit

_PROGRAMS = cast(sa.Table, Program.__table__)


def program_in_effect(patient_id: Any, day: Any, *columns: Any) -> sa.Select[Any]:
    """SELECT the program in effect on `day` (values or bound parameters): the latest started
    on or before it and not yet ended. One definition for `program_on` and the log's checks.
    `columns` replace the Program entity (table columns keep the statement plain Core)."""
    return (
        sa.select(*(columns or (Program,)))
        .where(
            _PROGRAMS.c.patient_id == patient_id,
            _PROGRAMS.c.start_date <= day,
            sa.or_(_PROGRAMS.c.end_date.is_(None), _PROGRAMS.c.end_date >= day),
        )
        .order_by(_PROGRAMS.c.start_date.desc(), _PROGRAMS.c.id.desc())
        .limit(1)
    )


def program_on(session: Session, patient_id: int, day: dt.date) -> Program | None:
    """The program in effect on `day`: the latest started on or before it and not yet ended."""
    return session.scalars(
        program_in_effect(patient_id, day).options(
            selectinload(Program.prescriptions).selectinload(Prescription.exercise),
            selectinload(Program.phases),
        )
    ).first()


def phase_on(program: Program, day: dt.date) -> ProgramPhase | None:
    current = None
    for phase in program.phases:  # ordered by start_date
        if phase.start_date <= day:
            current = phase
    return current


def exercise_library(session: Session) -> list[Exercise]:
    return list(session.scalars(sa.select(Exercise).order_by(Exercise.body_region, Exercise.name)))


def list_programs(session: Session, actor: Actor, patient_id: int) -> list[Program]:
    require_patient(session, actor, patient_id, "program.read")
    return list(
        session.scalars(
            sa.select(Program)
            .where(Program.patient_id == patient_id)
            .order_by(Program.start_date.desc(), Program.id.desc())
            .options(
                selectinload(Program.prescriptions).selectinload(Prescription.exercise),
                selectinload(Program.phases),
            )
        )
    )


def create_program(session: Session, actor: Actor, patient_id: int, data: ProgramInput) -> Program:
    """Prescribe a program. A program still open when the new one starts is ended the day
    before, so exactly one program is in effect on any day."""
    require_patient(session, actor, patient_id, "program.write", clinician_only=True)
    known = set(
        session.scalars(
            sa.select(Exercise.id).where(
                Exercise.id.in_([p.exercise_id for p in data.prescriptions])
            )
        )
    )
    for index, item in enumerate(data.prescriptions):
        if item.exercise_id not in known:
            raise InvalidInput(f"prescriptions.{index}.exercise_id", "is not in the library")
    for previous in session.scalars(
        sa.select(Program).where(
            Program.patient_id == patient_id,
            sa.or_(Program.end_date.is_(None), Program.end_date >= data.start_date),
        )
    ):
        if previous.start_date >= data.start_date:
            raise InvalidInput(
                "start_date",
                f"must be after the start of the current program ({previous.start_date})",
            )
        previous.end_date = data.start_date - dt.timedelta(days=1)

    assert actor.user_id is not None
    program = Program(
        patient_id=patient_id,
        title=data.title,
        start_date=data.start_date,
        end_date=data.end_date,
        created_by_user_id=actor.user_id,
    )
    phases = data.phases or []
    program.phases = [
        ProgramPhase(name=p.name, start_date=p.start_date, goals=p.goals) for p in phases
    ]
    program.prescriptions = [
        Prescription(
            exercise_id=p.exercise_id,
            position=index,
            sets=p.sets,
            reps=p.reps,
            hold_seconds=p.hold_seconds,
            sessions_per_week=p.sessions_per_week,
            notes=p.notes,
        )
        for index, p in enumerate(data.prescriptions)
    ]
    session.add(program)
    session.flush()
    audit.commit(session)
    return program


def end_program(session: Session, actor: Actor, patient_id: int, data: EndProgramInput) -> Program:
    """End the program in effect on `data.end_date`, that day being its last: a discharge, or
    a break in care. From the next day no program asks the patient to log, so missed logging
    is no longer alerted and an open missed-logs alert closes on it (the evaluation is
    requested after the commit). The date may be ahead (a planned discharge); it may not
    leave out what is already recorded under the program: a day logged against it after the
    end, or a later program already prescribed (end that one, or prescribe anew)."""
    require_patient(session, actor, patient_id, "program.write", clinician_only=True)
    end = data.end_date
    program = session.scalars(program_in_effect(patient_id, end).with_for_update()).first()
    if program is None:
        raise InvalidInput("end_date", f"no program is in effect on {end.isoformat()}")
    later = session.scalar(
        sa.select(sa.func.min(Program.start_date)).where(
            Program.patient_id == patient_id, Program.start_date > end
        )
    )
    if later is not None:
        raise InvalidInput(
            "end_date", f"a later program starts on {later.isoformat()}: the plan goes on"
        )
    last_logged = session.scalar(
        sa.select(sa.func.max(SessionLog.log_date))
        .join(ExerciseEntry, ExerciseEntry.session_log_id == SessionLog.id)
        .join(Prescription, Prescription.id == ExerciseEntry.prescription_id)
        .where(SessionLog.patient_id == patient_id, Prescription.program_id == program.id)
    )
    if last_logged is not None and last_logged > end:
        raise InvalidInput(
            "end_date",
            f"is before {last_logged.isoformat()}, the last day logged under this program",
        )
    program.end_date = end
    enqueue_after_commit(session, EVALUATE_PATIENT_TASK, patient_id)
    audit.commit(session)
    return program
