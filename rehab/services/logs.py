"""Recording the daily session log: validated, idempotent by client id, audited, and followed
by detection once committed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from rehab.db.models import Event, ExerciseEntry, Prescription, Program, SessionLog, utcnow
from rehab.domain.advice import Advice, advice_for
from rehab.domain.session_adherence import DoneEntry, PrescribedDose, session_adherence
from rehab.domain.vocabulary import EventType, RedFlag
from rehab.services import audit
from rehab.services.access import require_patient
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput, SessionLogInput
from rehab.services.dispatch import enqueue_after_commit
from rehab.services.programs import program_on
from rehab.services.time import clinic_today

EVALUATE_PATIENT_TASK = "rehab.evaluate_patient"


class LogOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    REPLAYED = "replayed"


class Conflict(Exception):
    """The submission contradicts what is stored (a reused client id, a second log a day)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class LogResult:
    log: SessionLog
    outcome: LogOutcome
    advice: Advice | None


def record_session_log(
    session: Session,
    actor: Actor,
    patient_id: int,
    data: SessionLogInput,
    *,
    source: str = "api",
    allow_same_day_edit: bool = False,
) -> LogResult:
    """Store one daily log (or replay the stored one for a retried client id).

    `allow_same_day_edit`: the web form edits today's log in place; the API answers 409 for a
    second log on one date, because a phone retrying must never overwrite a newer edit.
    """
    require_patient(session, actor, patient_id, "session_log.write")
    data = data.canonical()
    body_hash = data.fingerprint()

    existing = _by_client_id(session, patient_id, data.client_id)
    if existing is not None:
        return _replay(session, existing, body_hash)

    today = clinic_today()
    if data.log_date > today:
        raise InvalidInput("log_date", f"is in the future (today is {today.isoformat()})")
    program = program_on(session, patient_id, data.log_date)
    first_start = _first_program_start(session, patient_id)
    if first_start is not None and data.log_date < first_start:
        raise InvalidInput(
            "log_date", f"is before the patient's first program ({first_start.isoformat()})"
        )
    prescriptions = {p.id: p for p in program.prescriptions if p.active} if program else {}
    for index, entry in enumerate(data.exercises):
        if entry.prescription_id not in prescriptions:
            raise InvalidInput(
                f"exercises.{index}.prescription_id",
                "is not an exercise of the patient's program on that date",
            )
    adherence = session_adherence(
        [PrescribedDose(p.id, p.sets) for p in prescriptions.values()],
        {
            e.prescription_id: DoneEntry(e.prescription_id, e.done, e.sets_done)
            for e in data.exercises
        },
    )

    same_day = session.scalars(
        sa.select(SessionLog)
        .where(SessionLog.patient_id == patient_id, SessionLog.log_date == data.log_date)
        .options(selectinload(SessionLog.entries))
    ).one_or_none()
    if same_day is not None:
        if not (allow_same_day_edit and data.log_date == today):
            raise Conflict(
                "log_date",
                "a log for this date already exists; only today's log can be edited",
            )
        log, outcome = same_day, LogOutcome.UPDATED
        log.entries.clear()
        session.flush()
    else:
        log = SessionLog(patient_id=patient_id, log_date=data.log_date, client_id=data.client_id)
        session.add(log)
        outcome = LogOutcome.CREATED

    log.body_hash = body_hash
    log.back_pain = data.back_pain
    log.leg_pain = data.leg_pain
    log.leg_side = data.leg_side
    log.pain_location = data.pain_location or None
    for flag in RedFlag:
        setattr(log, f"red_flag_{flag.value}", flag in data.red_flags)
    log.note = data.note
    log.adherence = adherence
    log.source = source
    log.updated_at = utcnow()
    log.entries.extend(
        ExerciseEntry(
            prescription_id=e.prescription_id,
            done=e.done,
            sets_done=e.sets_done,
            reps_done=e.reps_done,
        )
        for e in data.exercises
    )
    enqueue_after_commit(session, EVALUATE_PATIENT_TASK, patient_id)
    try:
        audit.commit(session)
    except IntegrityError:
        # A concurrent identical submission won the race: answer as its replay. The rollback
        # dropped this request's audit row with the rest; record the attempt again.
        session.rollback()
        audit.record(session, actor, "session_log.write", patient_id)
        existing = _by_client_id(session, patient_id, data.client_id)
        if existing is None:
            raise Conflict("log_date", "a log for this date already exists") from None
        return _replay(session, existing, body_hash)
    return LogResult(log, outcome, advice_after_log(session, log))


def _by_client_id(session: Session, patient_id: int, client_id: str) -> SessionLog | None:
    return session.scalars(
        sa.select(SessionLog)
        .where(SessionLog.patient_id == patient_id, SessionLog.client_id == client_id)
        .options(selectinload(SessionLog.entries))
    ).one_or_none()


def _replay(session: Session, log: SessionLog, body_hash: str) -> LogResult:
    if log.body_hash != body_hash:
        raise Conflict(
            "client_id", "was already used for a different log; generate a new id per log"
        )
    return LogResult(log, LogOutcome.REPLAYED, advice_after_log(session, log))


def _first_program_start(session: Session, patient_id: int) -> dt.date | None:
    return session.scalar(
        sa.select(sa.func.min(Program.start_date)).where(Program.patient_id == patient_id)
    )


def has_spine_surgery_history(session: Session, patient_id: int) -> bool:
    return (
        session.scalar(
            sa.select(sa.func.count(Event.id)).where(
                Event.patient_id == patient_id, Event.event_type == EventType.SURGERY
            )
        )
        or 0
    ) > 0


def advice_after_log(session: Session, log: SessionLog) -> Advice | None:
    """Red flags in the log, or a fall logged in the last 7 days, earn care guidance."""
    recent_fall = session.scalar(
        sa.select(sa.func.count(Event.id)).where(
            Event.patient_id == log.patient_id,
            Event.event_type == EventType.FALL,
            Event.event_date.between(log.log_date - dt.timedelta(days=7), log.log_date),
        )
    )
    return advice_for(
        [RedFlag(f) for f in log.red_flags],
        had_fall=bool(recent_fall),
        has_spine_surgery_history=has_spine_surgery_history(session, log.patient_id),
    )


def get_log(
    session: Session, actor: Actor, patient_id: int, log_date: dt.date
) -> SessionLog | None:
    require_patient(session, actor, patient_id, "session_log.read")
    return session.scalars(
        sa.select(SessionLog)
        .where(SessionLog.patient_id == patient_id, SessionLog.log_date == log_date)
        .options(selectinload(SessionLog.entries))
    ).one_or_none()


def prescriptions_for_day(session: Session, patient_id: int, day: dt.date) -> list[Prescription]:
    program = program_on(session, patient_id, day)
    return [p for p in program.prescriptions if p.active] if program else []
