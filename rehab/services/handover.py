"""Handing a patient over to another care team.

Her physiotherapist leaves the clinic, she moves to another site, or she needs a team with
another skill: a clinician of her care team hands her over, and from then on the other team
sees her record (and alerts) and hers no longer does, unless she belongs to both. What was
recorded stays as it was, authored by whoever recorded it; the move itself is audited with the
team it went to. Each clinician of the new team who could not see her before is e-mailed
that she was handed over, by whom and when (alerts or not), and her open alerts do not wait in
silence for the team to look: each is notified to them as if it had just opened (routine ones
by their chosen mode, urgent ones at once), also when she comes back to a team she was with.
Notifications not yet sent to the previous team are dropped at delivery, which checks the
recipient's access (`notifications._compose`). A team without an active clinician
cannot take her: nobody would see her record.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import (
    Alert,
    AlertStatus,
    CareTeam,
    CareTeamMember,
    Clinician,
    User,
    utcnow,
)
from rehab.services import audit, evaluation, notifications
from rehab.services.access import can_see_patient, require_patient
from rehab.services.actors import Actor
from rehab.services.commands import HandOverInput, InvalidInput


@dataclass(frozen=True)
class HandedOver:
    team_name: str
    still_visible: bool  # the clinician who handed her over is on the new team too
    open_alerts: int  # her open (not yet acknowledged) alerts
    notifications: int  # messages queued for the new team's clinicians about them
    told: int  # the new team's clinicians e-mailed that she was handed over


def care_teams(session: Session) -> list[CareTeam]:
    """Every care team of the clinic, by name: a patient may go to any of them."""
    return list(session.scalars(sa.select(CareTeam).order_by(CareTeam.name, CareTeam.id)))


def hand_over(session: Session, actor: Actor, patient_id: int, data: HandOverInput) -> HandedOver:
    """Move the patient to `data.care_team_id`; tell its clinicians who could not see her
    that she is theirs now, and notify them of her open alerts."""
    # An evaluation storing an alert meanwhile would tell the team she is leaving, and this
    # would not see it; two hand-overs at once would both move her and tell her new team
    # twice: they all take turns (the evaluation's lock), which is taken before her team is
    # read, so the access check and everything after see the team the other one left her in
    # (off it, the second is refused like anyone off her care team).
    evaluation.lock_patients(session, [patient_id])
    patient = require_patient(
        session,
        actor,
        patient_id,
        "patient.transfer",
        f"care_team:{data.care_team_id}",
        clinician_only=True,
    )
    team = session.get(CareTeam, data.care_team_id)
    if team is None:
        raise InvalidInput("care_team_id", "is not a care team of the clinic")
    if team.id == patient.care_team_id:
        raise InvalidInput("care_team_id", "is her care team already")
    if not _active_clinicians(session, team.id):
        # Nobody would see her record or hear of her alerts.
        raise InvalidInput("care_team_id", "has no active clinician")
    saw_her = _active_clinicians(session, patient.care_team_id)
    patient.care_team_id = team.id
    session.flush()
    open_alerts = list(
        session.scalars(
            sa.select(Alert.id)
            .where(Alert.patient_id == patient_id, Alert.status == AlertStatus.OPEN)
            .order_by(Alert.id)
        )
    )
    moved_at = utcnow()
    queued = notifications.queue_for_alerts(
        session, open_alerts, handover=(moved_at.isoformat(), saw_her)
    )
    # Her record is theirs now, alerts or not: those who could not see her before are told
    # (whoever handed her over could: she is on the team she left).
    assert actor.user_id is not None
    told = notifications.queue_handover_notices(
        session,
        patient_id,
        team.id,
        _active_clinicians(session, team.id) - saw_her,
        actor.user_id,
        moved_at,
    )
    audit.commit(session)
    return HandedOver(
        team_name=team.name,
        still_visible=can_see_patient(session, actor, patient_id),
        open_alerts=len(open_alerts),
        notifications=len(queued),
        told=len(told),
    )


def _active_clinicians(session: Session, care_team_id: int) -> set[int]:
    """The user ids of the team's active clinicians."""
    return set(
        session.scalars(
            sa.select(User.id)
            .join(Clinician, Clinician.user_id == User.id)
            .join(CareTeamMember, CareTeamMember.clinician_id == Clinician.id)
            .where(CareTeamMember.care_team_id == care_team_id, User.is_active.is_(True))
        )
    )
