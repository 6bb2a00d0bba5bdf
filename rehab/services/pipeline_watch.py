"""E-mailing the administrators when alerts may be late, without the worker.

The pipeline status (`rehab.services.health`) is on the clinicians' pages, the admin page and
`/healthz/pipeline`; but a clinic whose worker stopped in the night learns of it only when
someone looks, and red flags may wait meanwhile. So whoever computes the status also acts on
it: the web app (in the background, when a page or a probe needs a fresh status) and
`rehab pipeline check` (for cron). Every active administrator is e-mailed once when alerts
become late, again every `REMIND_EVERY` while they stay late, and once when they flow again
(only those who were told they were late).

Late, here, is `PipelineStatus.alerts_late`: the scan late, data not evaluated, or an alert
e-mail not sent in time. A scan that has never run is not enough on its own (a new
installation before beat's first run): data waiting for it makes evaluation late soon enough.
Failed e-mails, late non-alert mail and care teams without a clinician are the admin page's.

The notices are outbox rows (`notifications.PIPELINE_NOTICES`), sent by the checker
itself through `notifications.deliver` (claim, send, record: the worker's own path), because
the worker may be what stopped. One that could not be sent stays pending with its back-off,
for the next check or the worker's re-sender. A notice that became untrue before it went out
is not sent (`compose`).

The incident is one `job_watermarks` row (`NOTICE_WATERMARK`, through = when it opened); the
dedup keys name it (`pipeline:<opened>:<day>`, `pipeline:<opened>:flowing`), so checkers
running at once queue each notice once. Counts and times only: nothing about patients.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from email.message import EmailMessage

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from config.settings import Settings
from rehab.db import rows_matched
from rehab.db.models import JobWatermark, Notification, NotificationStatus, User, utcnow
from rehab.domain.vocabulary import Role
from rehab.notifications import render
from rehab.notifications.transport import Transport
from rehab.services import health, notifications

log = logging.getLogger(__name__)

NOTICE_WATERMARK = "pipeline.notice"
REMIND_EVERY = dt.timedelta(hours=24)
_KEY_PREFIX = "pipeline:"
_FLOWING_SUFFIX = ":flowing"


@dataclass(frozen=True)
class Watch:
    """What one check did: the incident's state, the notices it queued, the notices it sent
    (its own or earlier checks' that had waited)."""

    late: bool
    opened_at: dt.datetime | None  # the incident's start, while one is open
    queued: list[int]
    sent: int


def watch(
    session: Session,
    status: health.PipelineStatus,
    transport: Transport | None = None,
) -> Watch:
    """Open, remind or close the incident `status` calls for, queue its notices (committed),
    then send every pipeline notice due. Needs an application context (settings, templates)."""
    now = status.checked_at
    late = status.alerts_late
    opened_at = _opened_at(session)
    queued: list[int] = []
    if late:
        if opened_at is None:
            opened_at = _open(session, now)
        queued = notifications.queue_unsent_by_task(
            session, notifications.PIPELINE_LATE, _late_key(opened_at, now), _admins(session), now
        )
    elif opened_at is not None and _close(session, opened_at, now):
        told = _told(session, opened_at)
        queued = notifications.queue_unsent_by_task(
            session, notifications.PIPELINE_FLOWING, _flowing_key(opened_at), told, now
        )
        opened_at = None
    session.commit()
    if queued:
        log.warning(
            "%s: %d administrator notice(s) queued",
            "alerts may be late" if late else "alerts on time again",
            len(queued),
        )
    sent = send_due(session, transport, now)
    return Watch(late=late, opened_at=opened_at, queued=queued, sent=sent)


def send_due(
    session: Session, transport: Transport | None = None, now: dt.datetime | None = None
) -> int:
    """Send the pipeline notices due at `now` (each claimed first: sent at most once)."""
    now = now or utcnow()
    # Left claimed by a checker that stopped mid-send (a web process restarted): the worker's
    # re-sender would take them back, but it may be what stopped.
    notifications.reclaim_stuck(session, now, notifications.PIPELINE_NOTICES)
    session.commit()
    due = list(
        session.scalars(
            sa.select(Notification.id)
            .where(
                Notification.purpose.in_(notifications.PIPELINE_NOTICES),
                Notification.status == NotificationStatus.PENDING,
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.id)
        )
    )
    session.rollback()
    sent = 0
    for notification_id in due:
        outcome = notifications.deliver(session, notification_id, transport, now)
        sent += outcome.status == "sent"
    return sent


def incident_open(session: Session) -> bool:
    """Whether the administrators were told alerts are late and not yet that they flow."""
    return _opened_at(session) is not None


def _opened_at(session: Session) -> dt.datetime | None:
    return session.scalar(
        sa.select(JobWatermark.through).where(JobWatermark.name == NOTICE_WATERMARK)
    )


def _open(session: Session, now: dt.datetime) -> dt.datetime:
    """The incident's start: `now`, unless another checker opened it first."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    while True:
        session.execute(
            insert(JobWatermark)
            .values(name=NOTICE_WATERMARK, through=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        opened_at = _opened_at(session)
        if opened_at is not None:  # inserted by this statement, or by the checker before it
            return opened_at
        # That checker's incident ended between the two statements: open one again.


def _close(session: Session, opened_at: dt.datetime, now: dt.datetime) -> bool:
    """End the incident; False if another checker ended it first. An incident opened after
    `now` (by a checker with a newer status) is not this check's to end."""
    result = session.execute(
        sa.delete(JobWatermark).where(
            JobWatermark.name == NOTICE_WATERMARK,
            JobWatermark.through == opened_at,
            JobWatermark.through <= now,
        )
    )
    return rows_matched(result) == 1


def _stamp(opened_at: dt.datetime) -> str:
    # To the microsecond, as stored: two incidents are never taken for one.
    return opened_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _late_key(opened_at: dt.datetime, now: dt.datetime) -> str:
    # One notice per started REMIND_EVERY of the incident: day 0 when it opens, then reminders.
    # A checker whose status is older than the incident (another opened it meanwhile) is in
    # day 0 too.
    return (
        f"{_KEY_PREFIX}{_stamp(opened_at)}:{max(now - opened_at, dt.timedelta()) // REMIND_EVERY}"
    )


def _flowing_key(opened_at: dt.datetime) -> str:
    return f"{_KEY_PREFIX}{_stamp(opened_at)}{_FLOWING_SUFFIX}"


def _admins(session: Session) -> list[int]:
    return list(
        session.scalars(
            sa.select(User.id)
            .where(User.role == Role.ADMIN, User.is_active.is_(True))
            .order_by(User.id)
        )
    )


def _told(session: Session, opened_at: dt.datetime) -> list[int]:
    """The active administrators who were sent a late notice of this incident (or are being
    sent one: it went out unless it fails)."""
    return list(
        session.scalars(
            sa.select(Notification.recipient_user_id)
            .join(User, User.id == Notification.recipient_user_id)
            .where(
                Notification.purpose == notifications.PIPELINE_LATE,
                Notification.status.in_([NotificationStatus.SENT, NotificationStatus.SENDING]),
                Notification.dedup_key.startswith(f"{_KEY_PREFIX}{_stamp(opened_at)}:"),
                User.role == Role.ADMIN,
                User.is_active.is_(True),
            )
            .distinct()
            .order_by(Notification.recipient_user_id)
        )
    )


# --- the messages (called by `notifications.deliver` for these purposes) --------------------


def compose(
    session: Session,
    purpose: str,
    dedup_key: str,
    envelope: render.Envelope,
    settings: Settings,
) -> EmailMessage:
    """The notice of row `dedup_key`, from the pipeline's state when it goes out: a late
    notice of an incident that has ended, or alerts no longer late, is not sent."""
    late_after = dt.timedelta(minutes=settings.pipeline_late_minutes)
    status = health.pipeline_status(session, late_after)
    admin_url = f"{settings.public_url.rstrip('/')}/admin/"
    if purpose == notifications.PIPELINE_FLOWING:
        if status.alerts_late:
            raise notifications.NotSendable("alerts were late again before it went out")
        return render.pipeline_flowing_message(envelope, admin_url=admin_url)
    opened_at = _opened_at(session)
    current = opened_at is not None and dedup_key.startswith(f"{_KEY_PREFIX}{_stamp(opened_at)}:")
    if not current or not status.alerts_late:
        raise notifications.NotSendable("alerts were flowing again before it went out")
    return render.pipeline_late_message(
        envelope,
        status=status,
        late_minutes=settings.pipeline_late_minutes,
        admin_url=admin_url,
    )
