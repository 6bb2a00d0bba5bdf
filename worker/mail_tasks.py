"""E-mail tasks: thin wrappers over `rehab.services.notifications`, ids only in arguments.

- `rehab.deliver_notification(id)`: claim and send one notification; on a transient failure
  the row is rescheduled (backoff with jitter) and the task sends itself again for that time.
- `rehab.deliver_digest(user_id)`: one message with all of a clinician's due digest rows.
- `rehab.resend_notifications` (beat, every `notify_resend_interval_seconds`): sends tasks for
  whatever is due and not sent, and takes back rows whose worker died after claiming them.
- `rehab.queue_reminders` (beat, hourly): reminder rows once a day, from `reminder_hour`.
- `rehab.follow_up_alerts` (beat, every few minutes): urgent alerts nobody acknowledged within
  `urgent_follow_up_minutes`, again to their care team and told to the administrators.

Delivery is safe to run twice: the claim is a conditional UPDATE, so one run sends.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from sqlalchemy.exc import OperationalError

from rehab.extensions import db
from rehab.services import clinic_policy, notifications
from rehab.services.time import clinic_timezone

log = logging.getLogger(__name__)

RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "max_retries": 8}


def _schedule_retry(task: object, argument: int, retry_in: float | None) -> None:
    """Send the task again for when the row is due. If this fails the row is still pending
    and the re-sender sends it."""
    if retry_in is None:
        return
    try:
        task.apply_async((argument,), countdown=retry_in)  # type: ignore[attr-defined]
    except Exception as exc:
        log.warning("could not schedule a retry (%s); the re-sender will", type(exc).__name__)


@shared_task(name="rehab.deliver_notification", **RETRY)
def deliver_notification(notification_id: int) -> str:
    outcome = notifications.deliver(db.session, notification_id)
    _schedule_retry(deliver_notification, notification_id, outcome.retry_in)
    return outcome.status


@shared_task(name="rehab.deliver_digest", **RETRY)
def deliver_digest(recipient_user_id: int) -> str:
    outcome = notifications.deliver_digest(db.session, recipient_user_id)
    _schedule_retry(deliver_digest, recipient_user_id, outcome.retry_in)
    return outcome.status


@shared_task(name="rehab.resend_notifications", **RETRY)
def resend_notifications() -> None:
    plan = notifications.resend_due(db.session)
    for notification_id in plan.notification_ids:
        deliver_notification.delay(notification_id)
    for user_id in plan.digest_recipients:
        deliver_digest.delay(user_id)
    if plan.notification_ids or plan.digest_recipients:
        log.info(
            "re-sender: %d notifications, %d digests sent to the queue (%d taken back)",
            len(plan.notification_ids),
            len(plan.digest_recipients),
            len(plan.reclaimed),
        )


@shared_task(name="rehab.queue_reminders", **RETRY)
def queue_reminders() -> None:
    local = dt.datetime.now(clinic_timezone())
    if local.hour < clinic_policy.current(db.session).reminder_hour:
        return
    queued = notifications.queue_reminders(db.session, local.date())
    db.session.commit()
    log.info("reminders queued: %d", len(queued))


@shared_task(name="rehab.follow_up_alerts", **RETRY)
def follow_up_alerts() -> None:
    followed = notifications.queue_follow_ups(db.session)
    db.session.commit()
    if followed.alert_ids:
        log.info(
            "follow-ups: %d urgent alerts unacknowledged, %d e-mails queued",
            len(followed.alert_ids),
            len(followed.notification_ids),
        )
