"""Events, findings and outcome measures: the context that gives a regression its meaning."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db import rows_matched
from rehab.db.models import (
    CorrectionAction,
    EntryCorrection,
    Event,
    Finding,
    OutcomeMeasure,
    utcnow,
)
from rehab.domain.questionnaires import (
    QuestionnaireError,
    check_distinct_activities,
    score_odi,
    score_psfs,
)
from rehab.domain.vocabulary import AuditOutcome, Instrument
from rehab.services import audit
from rehab.services.access import NotFound, check_patient, require_patient
from rehab.services.actors import Actor
from rehab.services.commands import (
    EnteredInErrorInput,
    EventInput,
    FindingInput,
    InvalidInput,
    OutcomeInput,
    PsfsActivity,
    PsfsRatingsInput,
)
from rehab.services.dispatch import EVALUATE_PATIENT_TASK, enqueue_after_commit
from rehab.services.logs import Conflict
from rehab.services.outcome_schedule import outcome_interval_days, outcome_schedule
from rehab.services.programs import program_on
from rehab.services.time import clinic_today


def _not_future(field: str, value: object) -> None:
    today = clinic_today()
    if value > today:  # type: ignore[operator]
        raise InvalidInput(field, f"is in the future (today is {today.isoformat()})")


def record_event(
    session: Session, actor: Actor, patient_id: int, data: EventInput
) -> tuple[Event, bool]:
    """Store an event; returns (event, created). A retried client id returns the stored one."""
    require_patient(session, actor, patient_id, "event.write")
    if data.client_id is not None:
        existing = session.scalars(
            sa.select(Event).where(
                Event.patient_id == patient_id, Event.client_id == data.client_id
            )
        ).one_or_none()
        if existing is not None:
            if _event_matches(existing, data):
                return existing, False
            raise Conflict("client_id", "was already used for a different event")
    _not_future("event_date", data.event_date)
    assert actor.user_id is not None
    event = Event(
        patient_id=patient_id,
        recorded_by_user_id=actor.user_id,
        **data.model_dump(),
    )
    session.add(event)
    # An event changes how recent changes read (related events): re-evaluate.
    enqueue_after_commit(session, EVALUATE_PATIENT_TASK, patient_id)
    session.flush()
    audit.commit(session)
    return event, True


def _event_matches(event: Event, data: EventInput) -> bool:
    return all(getattr(event, key) == value for key, value in data.model_dump().items())


def list_events(session: Session, actor: Actor, patient_id: int) -> list[Event]:
    require_patient(session, actor, patient_id, "event.read")
    return list(
        session.scalars(
            sa.select(Event)
            .where(Event.patient_id == patient_id, Event.current())
            .order_by(Event.event_date.desc(), Event.id.desc())
        )
    )


def record_finding(session: Session, actor: Actor, patient_id: int, data: FindingInput) -> Finding:
    require_patient(session, actor, patient_id, "finding.write", clinician_only=True)
    _not_future("finding_date", data.finding_date)
    assert actor.user_id is not None
    finding = Finding(patient_id=patient_id, author_user_id=actor.user_id, **data.model_dump())
    session.add(finding)
    session.flush()
    audit.commit(session)
    return finding


def list_findings(session: Session, actor: Actor, patient_id: int) -> list[Finding]:
    require_patient(session, actor, patient_id, "finding.read")
    return list(
        session.scalars(
            sa.select(Finding)
            .where(Finding.patient_id == patient_id, Finding.current())
            .order_by(Finding.finding_date.desc(), Finding.id.desc())
        )
    )


def record_outcome(
    session: Session, actor: Actor, patient_id: int, data: OutcomeInput
) -> OutcomeMeasure:
    require_patient(session, actor, patient_id, "outcome.write", clinician_only=True)
    _not_future("measured_on", data.measured_on)
    score, answers = _scored(data)
    assert actor.user_id is not None
    measure = OutcomeMeasure(
        patient_id=patient_id,
        instrument=data.instrument,
        measured_on=data.measured_on,
        score=score,
        answers=answers,
        recorded_by_user_id=actor.user_id,
    )
    session.add(measure)
    return _stored(session, patient_id, measure)


def _scored(data: OutcomeInput, *, new_activities: bool = True) -> tuple[float, dict[str, object]]:
    """The score and the answers as stored, or InvalidInput naming the answers' field.
    `new_activities`: a PSFS's activities are being chosen (the clinic's form), so each must
    be another; a patient rating her clinic's list again is not asked to mend it."""
    field = "odi_sections" if data.instrument is Instrument.ODI else "psfs_activities"
    try:
        if data.instrument is Instrument.ODI:
            assert data.odi_sections is not None
            return score_odi(data.odi_sections), {"sections": data.odi_sections}
        assert data.psfs_activities is not None
        if new_activities:
            check_distinct_activities([a.activity for a in data.psfs_activities])
        return (
            score_psfs([a.rating for a in data.psfs_activities]),
            {"activities": [a.model_dump() for a in data.psfs_activities]},
        )
    except QuestionnaireError as exc:
        raise InvalidInput(field, str(exc)) from None


def _stored(session: Session, patient_id: int, measure: OutcomeMeasure) -> OutcomeMeasure:
    # A new score can open or settle a function decline: evaluate after the commit.
    enqueue_after_commit(session, EVALUATE_PATIENT_TASK, patient_id)
    session.flush()
    audit.commit(session)
    return measure


def _latest_psfs(session: Session, patient_id: int) -> OutcomeMeasure | None:
    return session.scalars(
        sa.select(OutcomeMeasure)
        .where(
            OutcomeMeasure.patient_id == patient_id,
            OutcomeMeasure.instrument == Instrument.PSFS,
            OutcomeMeasure.current(),
        )
        .order_by(OutcomeMeasure.measured_on.desc(), OutcomeMeasure.id.desc())
        .limit(1)
    ).first()


def latest_psfs_activities(session: Session, patient_id: int) -> tuple[str, ...]:
    """The activities of the patient's latest PSFS, which a follow-up rates again; for a page
    whose access the caller has checked and audited."""
    return _activities_of(_latest_psfs(session, patient_id), None).activities


@dataclass(frozen=True)
class OwnActivities:
    """What a patient rates herself (PSFS): the activities of her latest PSFS, when it was
    and what she rated them then; `rated_today` when that latest one is her own of today."""

    activities: tuple[str, ...]
    last_measured: dt.date | None
    last_ratings: tuple[int, ...]
    rated_today: bool


def own_activities(session: Session, actor: Actor, patient_id: int) -> OwnActivities:
    check_patient(session, actor, patient_id, "outcome.read", patient_only=True)
    return peek_own_activities(session, actor, patient_id)


def peek_own_activities(session: Session, actor: Actor, patient_id: int) -> OwnActivities:
    """`own_activities` for a page whose access the caller has already checked and audited."""
    return _activities_of(_latest_psfs(session, patient_id), actor.user_id)


def own_activities_due(session: Session, actor: Actor, patient_id: int, today: dt.date) -> bool:
    """Whether her activities are due for rating by the clinic's outcome schedule (none
    without a program in effect); for a page whose access the caller has checked."""
    own = peek_own_activities(session, actor, patient_id)
    if not own.activities:
        return False
    program = program_on(session, patient_id, today)
    due = outcome_schedule(
        {Instrument.PSFS.value: own.last_measured},
        program.start_date if program else None,
        outcome_interval_days(session),
        due_by=today,
    )
    return any(d.instrument == Instrument.PSFS.value for d in due)


def _activities_of(latest: OutcomeMeasure | None, user_id: int | None) -> OwnActivities:
    """A PSFS's activities and ratings; `rated_today` if `user_id` recorded it today."""
    if latest is None:
        return OwnActivities((), None, (), False)
    rows = latest.answers.get("activities", [])
    return OwnActivities(
        tuple(str(row["activity"]) for row in rows),
        latest.measured_on,
        tuple(int(row["rating"]) for row in rows),
        latest.measured_on == clinic_today() and latest.recorded_by_user_id == user_id,
    )


def rate_own_activities(
    session: Session, actor: Actor, patient_id: int, data: PsfsRatingsInput
) -> OutcomeMeasure:
    """The patient rates the activities of her latest PSFS (her clinic chose them with her)
    for today: a PSFS recorded by her, which the detector reads like any other. Rating again
    the same day changes today's (a second tap, a second thought) instead of adding one."""
    check_patient(session, actor, patient_id, "outcome.write", patient_only=True)
    latest = _latest_psfs(session, patient_id)
    own = _activities_of(latest, actor.user_id)
    if not own.activities:
        raise InvalidInput("ratings", "your clinic has not set your activities yet")
    if len(data.ratings) != len(own.activities):
        raise InvalidInput("ratings", f"rate each of your {len(own.activities)} activities")
    measure_data = OutcomeInput(
        instrument=Instrument.PSFS,
        measured_on=clinic_today(),
        psfs_activities=[
            PsfsActivity(activity=name, rating=rating)
            for name, rating in zip(own.activities, data.ratings, strict=True)
        ],
    )
    score, answers = _scored(measure_data, new_activities=False)
    assert actor.user_id is not None
    measure = latest if own.rated_today else None
    if measure is None:
        measure = OutcomeMeasure(
            patient_id=patient_id,
            instrument=Instrument.PSFS,
            measured_on=measure_data.measured_on,
            recorded_by_user_id=actor.user_id,
        )
        session.add(measure)
    measure.score = score
    measure.answers = answers
    return _stored(session, patient_id, measure)


def list_outcomes(session: Session, actor: Actor, patient_id: int) -> list[OutcomeMeasure]:
    require_patient(session, actor, patient_id, "outcome.read")
    return list(
        session.scalars(
            sa.select(OutcomeMeasure)
            .where(
                OutcomeMeasure.patient_id == patient_id,
                OutcomeMeasure.current(),
            )
            .order_by(OutcomeMeasure.measured_on, OutcomeMeasure.id)
        )
    )


# --- entered in error ----------------------------------------------------------------------

# The record kinds a clinician can mark entered in error (a patient: the events she recorded),
# as the pages name them; the audit log's action and target use the singular.
CORRECTABLE: dict[str, tuple[type[Event] | type[Finding] | type[OutcomeMeasure], str]] = {
    "events": (Event, "event"),
    "findings": (Finding, "finding"),
    "outcomes": (OutcomeMeasure, "outcome"),
}

Correctable = Event | Finding | OutcomeMeasure


def correctable_record(
    session: Session,
    actor: Actor,
    patient_id: int,
    kind: str,
    record_id: int,
    action: str | None = None,
    *,
    clinician_only: bool = False,
) -> Correctable:
    """One event, finding or score of the patient, for a clinician of her care team; or an
    event the patient recorded herself, for her (a fall logged by mistake: what her clinic
    recorded is her clinic's to correct), unless `clinician_only`. Access checked and
    audited, once, as `action` (default: marking it, "event.entered_in_error"); `NotFound`
    for anything else."""
    _, singular = _correctable(kind, record_id)
    action = action or f"{singular}.entered_in_error"
    target = f"{singular}:{record_id}"
    if actor.is_patient and clinician_only:
        audit.record(session, actor, action, patient_id, AuditOutcome.DENIED, target)
        raise NotFound(f"{singular} {record_id}")
    if actor.is_patient:
        event = session.get(Event, record_id) if kind == "events" else None
        own = event is not None and (event.patient_id, event.recorded_by_user_id) == (
            patient_id,
            actor.user_id,
        )
        if not own:
            # On her record, as every refusal on her own pages (none: no such event at all).
            about = patient_id if event is not None else None
            audit.record(session, actor, action, about, AuditOutcome.DENIED, target)
            raise NotFound(f"{singular} {record_id}")
    require_patient(session, actor, patient_id, action, target, clinician_only=not actor.is_patient)
    model, _ = _correctable(kind, record_id)
    row = cast(Correctable | None, session.get(model, record_id))
    if row is None or row.patient_id != patient_id:
        raise NotFound(f"{singular} {record_id}")
    return row


def mark_entered_in_error(
    session: Session, actor: Actor, row: Correctable, data: EnteredInErrorInput
) -> None:
    """Mark a clinician's or patient's entry as a mistake: it stays in the record with who,
    when and why, and leaves every page, detection and CSV (the FHIR export retracts it).
    Detection runs again for the patient (after the commit): an alert that rested on a
    wrongly recorded fall or score is settled by what is left.

    `row` comes from `correctable_record(...)` with its default action: that checked and
    audited the actor's access (so a form refused before this call is on record too)."""
    if row.in_error:
        raise InvalidInput("record", "is already marked entered in error")
    assert actor.user_id is not None
    model = type(row)
    # Of two marks at once, one is made and the other told (the history keeps one mark).
    marked = session.execute(
        sa.update(model)
        .where(model.id == row.id, model.current())
        .values(
            entered_in_error_at=utcnow(),
            entered_in_error_by_user_id=actor.user_id,
            entered_in_error_reason=data.reason,
        )
        .execution_options(synchronize_session="fetch")
    )
    if rows_matched(marked) != 1:
        raise InvalidInput("record", "was marked entered in error meanwhile")
    _record_correction(session, row, CorrectionAction.MARKED, actor.user_id, data.reason)
    if not isinstance(row, Finding):  # findings give context to pages, not to detection
        enqueue_after_commit(session, EVALUATE_PATIENT_TASK, row.patient_id)
    session.flush()
    audit.commit(session)


def undo_entered_in_error(
    session: Session, actor: Actor, row: Correctable, seen: dt.datetime | None
) -> None:
    """Take back a mark of entered in error that was itself the mistake (the wrong entry
    marked): the entry returns to the pages, detection and exports as it was recorded, and
    detection runs again for the patient (after the commit). The mark (who, when, why) and
    its taking back (who, when) stay in the record's history (`EntryCorrection`), and the
    audit row is `<kind>.entered_in_error_undo`.
    `seen`: the mark as the clinician's page showed it (its time; None: not given): a mark
    made since is not hers to take back unseen.

    `row` comes from `correctable_record(..., undo_action(kind, id), clinician_only=True)`:
    a clinician of the care team's (a patient records a fall anew instead), access checked and
    audited."""
    if not row.in_error:
        raise InvalidInput("record", "is not marked entered in error")
    if seen != row.entered_in_error_at:
        raise InvalidInput("mark", "changed since the page was opened")
    model = type(row)
    # Only the mark the clinician saw: of two clinicians taking it back at once (or one
    # taking back, one marking anew), one wins and the other is told.
    taken_back = session.execute(
        sa.update(model)
        .where(model.id == row.id, model.entered_in_error_at == row.entered_in_error_at)
        .values(
            entered_in_error_at=None,
            entered_in_error_by_user_id=None,
            entered_in_error_reason=None,
        )
        .execution_options(synchronize_session="fetch")
    )
    if rows_matched(taken_back) != 1:
        raise InvalidInput("mark", "changed meanwhile")
    assert actor.user_id is not None
    _record_correction(session, row, CorrectionAction.TAKEN_BACK, actor.user_id, None)
    if not isinstance(row, Finding):  # as for marking: findings do not feed detection
        enqueue_after_commit(session, EVALUATE_PATIENT_TASK, row.patient_id)
    audit.commit(session)


def _record_correction(
    session: Session,
    row: Correctable,
    action: CorrectionAction,
    by_user_id: int,
    reason: str | None,
) -> None:
    """Keep the mark or its taking back in the record's history (`EntryCorrection`), which
    outlives the entry's own columns and tells the periodic scan her record changed."""
    session.add(
        EntryCorrection(
            patient_id=row.patient_id,
            entry_kind=CORRECTABLE[kind_of(row)][1],
            entry_id=row.id,
            action=action,
            reason=reason,
            by_user_id=by_user_id,
            at=row.entered_in_error_at if action is CorrectionAction.MARKED else utcnow(),
        )
    )


def kind_of(row: Correctable) -> str:
    """The entry's kind as the pages name it ("events", "findings", "outcomes")."""
    return next(kind for kind, (model, _) in CORRECTABLE.items() if isinstance(row, model))


def undo_action(kind: str, record_id: int) -> str:
    """The audit action of taking back a mark on an entry of `kind`."""
    return f"{_correctable(kind, record_id)[1]}.entered_in_error_undo"


def _correctable(
    kind: str, record_id: int
) -> tuple[type[Event] | type[Finding] | type[OutcomeMeasure], str]:
    if kind not in CORRECTABLE:
        raise NotFound(f"{kind} {record_id}")
    return CORRECTABLE[kind]
