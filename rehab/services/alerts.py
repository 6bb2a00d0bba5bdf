"""The clinician's side of alerts: the inbox, acknowledging and resolving, each audited."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import Alert, AlertStatus, Patient, User, utcnow
from rehab.domain.vocabulary import AuditOutcome
from rehab.services import audit
from rehab.services.access import NotFound, require_patient, visible_patient_ids
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput

MAX_NOTE = 2000
STATUS_ORDER = sa.case(
    (Alert.status == AlertStatus.OPEN, 0),
    (Alert.status == AlertStatus.ACKNOWLEDGED, 1),
    else_=2,
)
URGENT_FIRST = sa.case((Alert.severity == "urgent", 0), else_=1)


@dataclass(frozen=True)
class InboxRow:
    alert: Alert
    patient_id: int
    patient_name: str


def inbox(
    session: Session, actor: Actor, *, include_resolved: bool = False, limit: int = 200
) -> list[InboxRow]:
    """Alerts of the actor's patients: open first, urgent on top, newest first."""
    query = (
        sa.select(Alert, User.display_name)
        .join(Patient, Patient.id == Alert.patient_id)
        .join(User, User.id == Patient.user_id)
        .where(Alert.patient_id.in_(visible_patient_ids(actor)))
        .order_by(STATUS_ORDER, URGENT_FIRST, Alert.detected_on.desc(), Alert.id.desc())
        .limit(limit)
    )
    if not include_resolved:
        query = query.where(Alert.status != AlertStatus.RESOLVED)
    rows = [InboxRow(alert, alert.patient_id, name) for alert, name in session.execute(query)]
    for patient_id in sorted({r.patient_id for r in rows}):
        audit.record(session, actor, "alert.list", patient_id)
    return rows


def patient_alerts(session: Session, actor: Actor, patient_id: int) -> list[Alert]:
    require_patient(session, actor, patient_id, "alert.read")
    return list(
        session.scalars(
            sa.select(Alert)
            .where(Alert.patient_id == patient_id)
            .order_by(STATUS_ORDER, URGENT_FIRST, Alert.detected_on.desc())
        )
    )


def _alert_for(session: Session, actor: Actor, alert_id: int, action: str) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        # Audited like a refusal: a missing alert and another team's answer alike.
        audit.record(session, actor, action, None, AuditOutcome.DENIED, f"alert:{alert_id}")
        raise NotFound(f"alert {alert_id}")
    require_patient(
        session, actor, alert.patient_id, action, f"alert:{alert_id}", clinician_only=True
    )
    return alert


def _note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput("note", f"must be at most {MAX_NOTE} characters")
    return note


def acknowledge(session: Session, actor: Actor, alert_id: int, note: str) -> Alert:
    alert = _alert_for(session, actor, alert_id, "alert.acknowledge")
    if alert.status is not AlertStatus.OPEN:
        raise InvalidInput("status", f"the alert is already {alert.status.value}")
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_by_user_id = actor.user_id
    alert.acknowledged_at = utcnow()
    alert.acknowledge_note = _note(note)
    audit.commit(session)
    return alert


def resolve(session: Session, actor: Actor, alert_id: int, note: str) -> Alert:
    alert = _alert_for(session, actor, alert_id, "alert.resolve")
    if alert.status is AlertStatus.RESOLVED:
        raise InvalidInput("status", "the alert is already resolved")
    alert.status = AlertStatus.RESOLVED
    alert.resolved_by_user_id = actor.user_id
    alert.resolved_at = utcnow()
    alert.resolve_note = _note(note)
    audit.commit(session)
    return alert
