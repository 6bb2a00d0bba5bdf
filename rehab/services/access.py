"""Who may see which patient — the one place that decides it.

A patient sees only themselves; a clinician only the patients of care teams they belong to
(checked against the database on every request, so removing a clinician from a team takes
effect at once); an admin manages accounts and reads the audit log but no clinical data.
Everything else is "not found", the same whether or not the record exists.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import CareTeamMember, Patient
from rehab.domain.vocabulary import AuditOutcome
from rehab.services import audit
from rehab.services.actors import Actor


class NotFound(LookupError):
    """The record does not exist or the actor may not know it does."""


def require_admin(actor: Actor) -> None:
    """The admin's pages and actions: anyone else gets the 404 of a page that is not there."""
    if not actor.is_admin:
        raise NotFound("admin page")


def visible_patient_ids(actor: Actor) -> sa.Select[Any]:
    """A SELECT of the patient ids this actor may see (compose it into other queries)."""
    if actor.is_patient and actor.patient_id is not None:
        return sa.select(Patient.id).where(Patient.id == actor.patient_id)
    if actor.is_clinician and actor.clinician_id is not None:
        return (
            sa.select(Patient.id)
            .join(CareTeamMember, CareTeamMember.care_team_id == Patient.care_team_id)
            .where(CareTeamMember.clinician_id == actor.clinician_id)
        )
    if actor.is_system:
        return sa.select(Patient.id)
    return sa.select(Patient.id).where(sa.false())


def can_see_patient(session: Session, actor: Actor, patient_id: int) -> bool:
    query = visible_patient_ids(actor).where(Patient.id == patient_id)
    return session.execute(query).first() is not None


def require_patient(
    session: Session,
    actor: Actor,
    patient_id: int,
    action: str,
    target: str | None = None,
    *,
    clinician_only: bool = False,
) -> Patient:
    """Return the patient if the actor may act on them, auditing the attempt either way.

    `clinician_only` is for clinical writes (programs, findings) a patient may not make.
    """
    allowed = not clinician_only or actor.is_clinician or actor.is_system
    patient = _visible_patient(session, actor, patient_id) if allowed else None
    if patient is None:
        audit.record(session, actor, action, patient_id, AuditOutcome.DENIED, target)
        raise NotFound(f"patient {patient_id}")
    audit.record(session, actor, action, patient_id, AuditOutcome.ALLOWED, target)
    return patient


def _visible_patient(session: Session, actor: Actor, patient_id: int) -> Patient | None:
    """The patient row if `visible_patient_ids(actor)` holds `patient_id`, in one query."""
    if actor.is_patient:
        # A patient sees only themselves; `get` reads the session's identity map first.
        return session.get(Patient, patient_id) if _is_self(actor, patient_id) else None
    return session.scalars(
        sa.select(Patient).where(
            Patient.id == patient_id, Patient.id.in_(visible_patient_ids(actor))
        )
    ).first()


def check_patient(
    session: Session,
    actor: Actor,
    patient_id: int,
    action: str,
    target: str | None = None,
    *,
    clinician_only: bool = False,
    patient_only: bool = False,
) -> None:
    """`require_patient` for callers that need only the decision, not the patient row (a log
    write needs the id only): the same rule and the same audit, and no query at all for a
    patient acting for themselves.

    `patient_only` is for what only the patient reports (the daily log): a clinician who may
    read the patient still may not write it in the patient's name."""
    allowed = (
        (not clinician_only or actor.is_clinician or actor.is_system)
        and (not patient_only or actor.is_patient or actor.is_system)
    ) and (
        _is_self(actor, patient_id)
        if actor.is_patient
        else can_see_patient(session, actor, patient_id)
    )
    if not allowed:
        audit.record(session, actor, action, patient_id, AuditOutcome.DENIED, target)
        raise NotFound(f"patient {patient_id}")
    audit.record(session, actor, action, patient_id, AuditOutcome.ALLOWED, target)


def _is_self(actor: Actor, patient_id: int) -> bool:
    # The rule of `visible_patient_ids` for a patient. Its "the row exists" part is already
    # known: an Actor is built from the database in the request that uses it (the API's token
    # lookup and the web session's user loader both read the patient row).
    return actor.patient_id is not None and actor.patient_id == patient_id
