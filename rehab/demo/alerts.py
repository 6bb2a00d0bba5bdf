"""The demo's alert history: the detector replayed over every patient's whole history, and the
clinician's part of the seed case (her fall alert acknowledged after the phone call; old red
flags seen and closed).

The worker only looks back `evaluation.LOOKBACK_DAYS` when it evaluates a patient, so without
this a demo whose "today" is more than that after 2025-09-14 would never show the fall alert.
The episodes are stored by the same reconciliation the worker uses (unique per patient, kind,
metric and detection day), so the worker's later evaluations find them and add nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import Alert, AlertStatus
from rehab.services import notifications
from rehab.services.evaluation import replay_whole_history

FALL_ALERT_NOTE = (
    "Elena phoned from her holiday after falling down ten marble stairs. Advised to get "
    "evaluated, to describe exactly how she fell, and not to assume the pain comes from the "
    "operated disc. Assessment booked on her return."
)
RED_FLAG_NOTE = (
    "Phoned the same day and seen the next: neurological examination normal, symptoms gone. "
    "Told what to watch for and to call at once if it comes back."
)
# Red flags older than this (days before the demo's today) have been dealt with.
RED_FLAG_HANDLED_AFTER_DAYS = 7


def evaluate_history(session: Session, patient_ids: Sequence[int], as_of: dt.date) -> int:
    """Store every alert episode of the patients' whole history; returns how many."""
    return replay_whole_history(session, patient_ids, as_of).stored


def clinician_follow_up(
    session: Session,
    *,
    seed_patient_id: int,
    fall: dt.date,
    phone_call: dt.date,
    clinician_user_id: int,
    as_of: dt.date,
    at: Callable[[dt.date, int], dt.datetime],
) -> None:
    fall_alert = session.scalars(
        sa.select(Alert).where(
            Alert.patient_id == seed_patient_id,
            Alert.kind == "pain_regression",
            Alert.metric == "leg_pain",
            Alert.detected_on.between(fall, fall + dt.timedelta(days=7)),
        )
    ).first()
    if fall_alert is not None:
        # Her clinician's e-mail about the fall alert: the demo worker delivers it (to
        # instance/outbox/ when no SMTP server is configured).
        notifications.queue_for_alerts(session, [fall_alert.id])
    if fall_alert is not None and phone_call <= as_of:
        when = max(phone_call, fall_alert.detected_on)
        fall_alert.acknowledged_by_user_id = clinician_user_id
        fall_alert.acknowledged_at = at(when, 16)
        fall_alert.acknowledge_note = FALL_ALERT_NOTE
        if fall_alert.status is AlertStatus.OPEN:
            fall_alert.status = AlertStatus.ACKNOWLEDGED

    handled_before = as_of - dt.timedelta(days=RED_FLAG_HANDLED_AFTER_DAYS)
    for alert in session.scalars(
        sa.select(Alert).where(
            Alert.kind == "red_flag",
            Alert.status != AlertStatus.RESOLVED,
            Alert.detected_on < handled_before,
        )
    ):
        seen = alert.detected_on + dt.timedelta(days=1)
        alert.status = AlertStatus.RESOLVED
        alert.acknowledged_by_user_id = clinician_user_id
        alert.acknowledged_at = at(alert.detected_on, 15)
        alert.acknowledge_note = "Phoned the patient."
        alert.resolved_by_user_id = clinician_user_id
        alert.resolved_on = seen
        alert.resolved_at = at(seen, 12)
        alert.resolve_note = RED_FLAG_NOTE
    session.flush()
