"""Handing a patient over to another care team.

Her physiotherapist leaves the clinic, she moves to another site, or she needs a team with
another skill: a clinician of her care team hands her over, and from then on the other team
sees her record (and alerts) and hers no longer does, unless she belongs to both. What was
recorded stays as it was, authored by whoever recorded it; the move itself is audited with the
team it went to. Open alerts do not wait in silence for the new team to look: each of its
clinicians is notified of them as if they had just opened (routine ones by their chosen mode,
urgent ones at once). Notifications not yet sent to the previous team are dropped at delivery,
which checks the recipient's access (`notifications._compose`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import Alert, AlertStatus, CareTeam
from rehab.services import audit, notifications
from rehab.services.access import can_see_patient, require_patient
from rehab.services.actors import Actor
from rehab.services.commands import HandOverInput, InvalidInput


@dataclass(frozen=True)
class HandedOver:
    team_name: str
    still_visible: bool  # the clinician who handed her over is on the new team too
    open_alerts: int  # her open (not yet acknowledged) alerts
    notifications: int  # messages queued for the new team's clinicians about them


def care_teams(session: Session) -> list[CareTeam]:
    """Every care team of the clinic, by name: a patient may go to any of them."""
    return list(session.scalars(sa.select(CareTeam).order_by(CareTeam.name, CareTeam.id)))


def hand_over(session: Session, actor: Actor, patient_id: int, data: HandOverInput) -> HandedOver:
    """Move the patient to `data.care_team_id` and notify its clinicians of her open alerts."""
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
    patient.care_team_id = team.id
    session.flush()
    open_alerts = list(
        session.scalars(
            sa.select(Alert.id)
            .where(Alert.patient_id == patient_id, Alert.status == AlertStatus.OPEN)
            .order_by(Alert.id)
        )
    )
    queued = notifications.queue_for_alerts(session, open_alerts)
    audit.commit(session)
    return HandedOver(
        team_name=team.name,
        still_visible=can_see_patient(session, actor, patient_id),
        open_alerts=len(open_alerts),
        notifications=len(queued),
    )
