"""The notification outbox (design §2 Notification, §6): writing, claiming, delivering,
re-sending, and what the pages show of it.

Life of a row:
- Written in the transaction that justifies it: `queue_for_alerts` (called by the evaluation
  with the new alerts, one row per active clinician of the patient's care team) and
  `queue_reminders`; `queue_follow_ups` (beat) for urgent alerts nobody acknowledged in time.
  After commit a delivery task is sent with the row id.
- `deliver` claims the row with a conditional UPDATE (`status pending -> sending` where it is
  pending and due; rowcount 1 means it is ours) and commits the claim, then renders and sends,
  then records `sent` (with the Message-ID) or a retry with exponential backoff and jitter, or
  `failed` (a 5xx reply, or attempts exhausted). A task run twice finds nothing to claim.
- `resend_due` (beat) sends tasks for what is due and still pending (a lost task or a broker
  restart loses nothing), hands out digests that are due, and takes back rows claimed longer
  than the claim timeout ago: their worker died between claim and send, so the recipient may
  get that message twice (logged, ids only).

Routine alerts for a clinician who chose the daily digest are written as `alert_digest` rows
due at the next digest hour (clinic time); `deliver_digest` sends all of a recipient's due
digest rows as one message (they share its Message-ID). Urgent alerts always go at once.

Nothing personal is logged; tasks get ids only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from config.settings import Settings
from rehab.db import rows_matched
from rehab.db.models import (
    Alert,
    AlertStatus,
    CareTeam,
    CareTeamMember,
    Clinician,
    EmailChange,
    Notification,
    NotificationStatus,
    Patient,
    Program,
    SessionLog,
    User,
    utcnow,
)
from rehab.domain.vocabulary import NotifyMode, Role
from rehab.notifications import render, tokens
from rehab.notifications.chart import sparkline
from rehab.notifications.outbox import OutboxEntry, OutboxMessage, list_outbox, read_outbox
from rehab.notifications.transport import (
    DeliveryError,
    TransientError,
    Transport,
    transport_for,
)
from rehab.services import accounts, audit, clinic_policy
from rehab.services.access import NotFound, can_see_patient, require_admin, visible_patient_ids
from rehab.services.actors import SYSTEM, Actor
from rehab.services.dispatch import enqueue_after_commit
from rehab.services.time import clinic_time_words

log = logging.getLogger(__name__)

CHANNEL = "email"
# Purposes: an alert mailed at once, an alert waiting for the daily digest, a reminder.
ALERT = "alert"
ALERT_DIGEST = "alert_digest"
REMINDER = "reminder"
# An urgent alert nobody acknowledged in time: again to its care team, and a notice to the
# administrators that one waits (nothing about the patient).
ALERT_FOLLOW_UP = "alert_follow_up"
FOLLOW_UP_NOTICE = "follow_up_admin"
PASSWORD_RESET = "password_reset"
# To the administrators, when alerts may be late and when they flow again
# (`rehab.services.pipeline_watch`).
PIPELINE_LATE = "pipeline_late"
PIPELINE_FLOWING = "pipeline_flowing"
PIPELINE_NOTICES = (PIPELINE_LATE, PIPELINE_FLOWING)
# A notice to an account's own address that its password was changed.
PASSWORD_CHANGED = "password_changed"
# A change of login address: the link confirming it, to the new address; then the notice
# that it was made, to the old one. The change is named by the row's dedup key.
EMAIL_CONFIRM = "email_confirm"
EMAIL_CHANGED = "email_changed"
ACCOUNT_MESSAGES = (PASSWORD_CHANGED, EMAIL_CONFIRM, EMAIL_CHANGED)
# To the clinicians of a care team a patient was handed over to, who could not see her
# before: her record is theirs now (`rehab.services.handover`). The row's dedup key names the
# hand-over: "handover:<patient id>:<team id>:<by user id>:<when, ISO>".
HANDOVER_NOTICE = "handover"

DELIVER_TASK = "rehab.deliver_notification"
FOLLOW_UP_SUFFIX = ":follow_up"
# Urgent alerts told longer ago than this are not followed up: a deployment bringing the
# follow-up to a database of old unacknowledged alerts, or a worker back after a week down,
# does not mail them all at once (the inbox lists them, urgent first).
FOLLOW_UP_WITHIN = dt.timedelta(days=7)
DIGEST_TASK = "rehab.deliver_digest"

CHART_DAYS = 28
FAILED_SHOWN_DAYS = 30
RESEND_BATCH = 1000

PENDING = NotificationStatus.PENDING
SENDING = NotificationStatus.SENDING
SENT = NotificationStatus.SENT
FAILED = NotificationStatus.FAILED
# Starts the `last_error` of a message left unsent on purpose (no longer sendable), not failed.
NOT_SENT_PREFIX = "not sent: "
NOT_SENT = "not sent"  # how the admin's page counts such a row


def _settings() -> Settings:
    settings: Settings = current_app.config["REHAB_SETTINGS"]
    return settings


def outbox_dir(settings: Settings | None = None) -> Path:
    return (settings or _settings()).resolved_instance_path() / "outbox"


def default_transport(settings: Settings | None = None) -> Transport:
    """SMTP when `smtp_url` is set, else the file transport into `<instance>/outbox/`."""
    settings = settings or _settings()
    return transport_for(settings.smtp_url, outbox_dir(settings), settings.smtp_timeout_seconds)


def next_digest_time(now: dt.datetime, hour: int, timezone: str) -> dt.datetime:
    """The next `hour`:00 in the clinic's time zone strictly after `now`, in UTC."""
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    candidate = dt.datetime.combine(local.date(), dt.time(hour), tzinfo=tz)
    if candidate <= local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(hour), tz)
    return candidate.astimezone(dt.UTC)


def reschedule_digests(session: Session, hour: int, now: dt.datetime | None = None) -> int:
    """The clinic's digest hour changed: the routine alerts waiting for a digest, not tried
    yet, go out at the new hour (otherwise those queued before the change would make a second
    digest at the old one): one digest, however much earlier or later, within a day, as a
    digest always is. Those due already go now; those being retried keep their backoff. The
    caller commits."""
    now = now or utcnow()
    due = next_digest_time(now, hour, _settings().clinic_timezone)
    moved = session.execute(
        sa.update(Notification)
        .where(
            Notification.purpose == ALERT_DIGEST,
            Notification.status == PENDING,
            Notification.attempts == 0,
            Notification.next_attempt_at > now,
        )
        .values(deliver_after=due, next_attempt_at=due)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


def backoff_seconds(attempts: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random, so workers
    retrying after the same outage spread out."""
    step = min(
        settings.notify_backoff_max_seconds,
        settings.notify_backoff_seconds * 2 ** max(0, attempts - 1),
    )
    return step / 2 + (rng or random).uniform(0, step / 2)


# --- writing the outbox -------------------------------------------------------------------


def _insert_ignoring_duplicates(
    session: Session, rows: list[dict[str, Any]]
) -> list[tuple[int, str, int]]:
    """Insert rows; one already there (same recipient, channel and dedup key) is skipped."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Notification)
        .on_conflict_do_nothing(index_elements=["recipient_user_id", "channel", "dedup_key"])
        .returning(Notification.id, Notification.purpose, Notification.recipient_user_id)
    )
    return [(r[0], r[1], r[2]) for r in session.execute(statement, rows)]


def _row(
    *,
    recipient: int,
    purpose: str,
    dedup_key: str,
    due: dt.datetime,
    now: dt.datetime,
    alert_id: int | None = None,
    urgent: bool = False,
) -> dict[str, Any]:
    return {
        "recipient_user_id": recipient,
        "channel": CHANNEL,
        "purpose": purpose,
        "alert_id": alert_id,
        "dedup_key": dedup_key,
        "urgent": urgent,
        "deliver_after": due,
        "next_attempt_at": due,
        "status": PENDING,
        "attempts": 0,
        "last_error": "",
        "created_at": now,
    }


def queue_unsent_by_task(
    session: Session, purpose: str, dedup_key: str, recipients: Sequence[int], now: dt.datetime
) -> list[int]:
    """Outbox rows (urgent, due `now`) for `recipients`, which the caller sends itself (the
    pipeline notices: the worker may be what stopped), so no delivery task is sent; the
    re-sender still finds a row left pending. A row already there is skipped; the caller
    commits."""
    rows = [
        _row(recipient=user_id, purpose=purpose, dedup_key=dedup_key, urgent=True, due=now, now=now)
        for user_id in recipients
    ]
    return [i for i, _, _ in _insert_ignoring_duplicates(session, rows)]


def _enqueue(session: Session, inserted: list[tuple[int, str, int]]) -> None:
    for notification_id, purpose, _ in inserted:
        if purpose != ALERT_DIGEST:
            enqueue_after_commit(session, DELIVER_TASK, notification_id)


def queue_for_alerts(
    session: Session,
    alert_ids: Sequence[int],
    *,
    escalation: bool = False,
    handover: tuple[str, Collection[int]] | None = None,
    follow_up: bool = False,
    now: dt.datetime | None = None,
) -> list[int]:
    """Write the outbox rows for newly opened alerts: one per active clinician of the
    patient's care team, in the caller's transaction (the caller commits; delivery tasks are
    sent after the commit). An alert queued twice gets its rows once.

    `escalation`: the alert became urgent after it opened; its rows are new (dedup key
    `alert:<id>:escalated`) and go out at once.
    `handover`: (a key naming the hand-over, the users who saw the patient before it): her
    open alerts, told to the new team's clinicians who did not; the rows are new (dedup key
    `alert:<id>:handover:<key>`), so a patient handed back is told again.
    `follow_up`: the urgent alert is still unacknowledged (`queue_follow_ups`); its rows are
    new (dedup key `alert:<id>:follow_up`) and go out at once, whatever the digest choice.
    """
    if not alert_ids:
        return []
    settings = _settings()
    now = now or utcnow()
    digest_at = next_digest_time(
        now, clinic_policy.current(session).digest_hour, settings.clinic_timezone
    )
    query = (
        sa.select(Alert.id, Alert.severity, User.id, User.notify_mode)
        .join(Patient, Patient.id == Alert.patient_id)
        .join(CareTeamMember, CareTeamMember.care_team_id == Patient.care_team_id)
        .join(Clinician, Clinician.id == CareTeamMember.clinician_id)
        .join(User, User.id == Clinician.user_id)
        .where(Alert.id.in_(alert_ids), User.is_active.is_(True))
        .order_by(Alert.id, User.id)
    )
    suffix = ":escalated" if escalation else ""
    if follow_up:
        suffix += FOLLOW_UP_SUFFIX
    if handover is not None:
        key, saw_her = handover
        suffix += f":handover:{key}"
        if saw_her:
            query = query.where(User.id.not_in(list(saw_her)))
    rows = []
    for alert_id, severity, user_id, mode in session.execute(query):
        urgent = severity == "urgent" or escalation or follow_up
        digest = not urgent and mode is NotifyMode.DIGEST
        purpose = ALERT_FOLLOW_UP if follow_up else ALERT_DIGEST if digest else ALERT
        rows.append(
            _row(
                recipient=user_id,
                purpose=purpose,
                alert_id=alert_id,
                dedup_key=f"alert:{alert_id}{suffix}",
                urgent=urgent,
                due=digest_at if digest else now,
                now=now,
            )
        )
    inserted = _insert_ignoring_duplicates(session, rows)
    _enqueue(session, inserted)
    return [i for i, _, _ in inserted]


_URGENT_ALERT_EMAIL = (Notification.purpose == ALERT, Notification.urgent.is_(True))
# When an urgent alert e-mail went out (was written, if not sent yet).
_EMAILED_AT = sa.func.coalesce(Notification.sent_at, Notification.created_at)


def urgent_since() -> sa.ColumnElement[dt.datetime]:
    """When an alert's care team was first told it is urgent: its earliest urgent alert
    e-mail (raised urgent, or become urgent later), when it was sent (when it was written, if
    not sent yet); else when the alert was stored (a team without an active clinician had
    nobody to tell: followed up, the administrators learn of it). A correlated subquery, for
    a few alerts; `first_urgent_emails` is the same for many."""
    first_told = (
        sa.select(sa.func.min(_EMAILED_AT))
        .where(Notification.alert_id == Alert.id, *_URGENT_ALERT_EMAIL)
        .scalar_subquery()
    )
    return sa.func.coalesce(first_told, Alert.created_at)


def first_urgent_emails() -> sa.Subquery:
    """(alert_id, at): each alert's first urgent e-mail, as in `urgent_since`."""
    return (
        sa.select(Notification.alert_id, sa.func.min(_EMAILED_AT).label("at"))
        .where(*_URGENT_ALERT_EMAIL)
        .group_by(Notification.alert_id)
        .subquery()
    )


def awaiting_acknowledgement() -> list[sa.ColumnElement[bool]]:
    """The conditions of an urgent alert nobody has acknowledged or resolved yet. (An
    alert acknowledged while routine that becomes urgent later is not followed up: someone
    is on it.)"""
    return [Alert.status == AlertStatus.OPEN, Alert.severity == "urgent"]


@dataclass(frozen=True)
class FollowUps:
    alert_ids: list[int]
    notification_ids: list[int]


def queue_follow_ups(session: Session, now: dt.datetime | None = None) -> FollowUps:
    """Follow up the urgent alerts still unacknowledged `urgent_follow_up_minutes` after their
    care team was told (`urgent_since`), once per alert:

    - the alert is e-mailed again to every active clinician of the patient's care team, at
      once whatever their digest choice (`queue_for_alerts(follow_up=True)`);
    - every active administrator is told that an urgent alert of that team waits, with
      nothing about the patient (they cannot open her record), so that someone reaches a
      clinician of the team, or gives a team without one a clinician.

    `followed_up_at` is set by a conditional UPDATE, so two runs at once follow an alert up
    once. The caller commits; the delivery tasks are sent after the commit."""
    limit = clinic_policy.current(session).urgent_follow_up_minutes
    now = now or utcnow()
    since = urgent_since()
    due = list(
        session.scalars(
            sa.select(Alert.id)
            .where(
                *awaiting_acknowledgement(),
                Alert.followed_up_at.is_(None),
                since <= now - dt.timedelta(minutes=limit),
                since > now - FOLLOW_UP_WITHIN,
            )
            .order_by(Alert.id)
        )
    )
    if not due:
        return FollowUps([], [])
    claimed = session.execute(
        sa.update(Alert)
        .where(Alert.id.in_(due), Alert.followed_up_at.is_(None), *awaiting_acknowledgement())
        .values(followed_up_at=now)
        .returning(Alert.id, Alert.patient_id)
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:  # acknowledged meanwhile, or another run took them
        return FollowUps([], [])
    alert_ids = sorted(alert_id for alert_id, _ in claimed)
    queued = queue_for_alerts(session, alert_ids, follow_up=True, now=now)
    admins = list(
        session.scalars(sa.select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True)))
    )
    notices = [
        _row(
            recipient=admin,
            purpose=FOLLOW_UP_NOTICE,
            alert_id=alert_id,
            dedup_key=f"alert:{alert_id}{FOLLOW_UP_SUFFIX}",
            urgent=True,
            due=now,
            now=now,
        )
        for alert_id in alert_ids
        for admin in admins
    ]
    inserted = _insert_ignoring_duplicates(session, notices)
    _enqueue(session, inserted)
    # Deciding to follow up read each patient's alert; the e-mails are about it.
    audit.record_per_patient(
        session, SYSTEM, "alert.follow_up", (patient_id for _, patient_id in claimed)
    )
    return FollowUps(alert_ids, sorted([*queued, *(i for i, _, _ in inserted)]))


@dataclass(frozen=True)
class WaitingTeam:
    """A care team with urgent alerts followed up and still unacknowledged (the admin page):
    the team, how many, and when the oldest was first told. No patient."""

    team_id: int
    name: str
    alerts: int
    oldest_told_at: dt.datetime


def follow_ups_waiting(session: Session) -> list[WaitingTeam]:
    since = urgent_since()
    rows = session.execute(
        sa.select(CareTeam.id, CareTeam.name, sa.func.count(Alert.id), sa.func.min(since))
        .select_from(Alert)
        .join(Patient, Patient.id == Alert.patient_id)
        .join(CareTeam, CareTeam.id == Patient.care_team_id)
        .where(*awaiting_acknowledgement(), Alert.followed_up_at.is_not(None))
        .group_by(CareTeam.id, CareTeam.name)
        .order_by(sa.func.min(since), CareTeam.id)
    )
    return [WaitingTeam(*row) for row in rows]


def queue_reminders(session: Session, today: dt.date, now: dt.datetime | None = None) -> list[int]:
    """Reminder rows for patients who opted in, have a program in effect, and have not logged
    for `reminder_after_days` days (counted from the program start if they never logged); at
    most one reminder per patient per `reminder_after_days` days. The caller commits."""
    now = now or utcnow()
    days = clinic_policy.current(session).reminder_after_days
    last_log = (
        sa.select(SessionLog.patient_id, sa.func.max(SessionLog.log_date).label("last"))
        .group_by(SessionLog.patient_id)
        .subquery()
    )
    started = (
        sa.select(Program.patient_id, sa.func.min(Program.start_date).label("start"))
        .where(
            Program.start_date <= today,
            sa.or_(Program.end_date.is_(None), Program.end_date >= today),
        )
        .group_by(Program.patient_id)
        .subquery()
    )
    reminded = sa.select(Notification.recipient_user_id).where(
        Notification.purpose == REMINDER,
        Notification.created_at > now - dt.timedelta(days=days),
    )
    since = sa.func.coalesce(last_log.c.last, started.c.start)
    candidates = session.execute(
        sa.select(User.id, Patient.id, since)
        .join(Patient, Patient.user_id == User.id)
        .join(started, started.c.patient_id == Patient.id)
        .outerjoin(last_log, last_log.c.patient_id == Patient.id)
        .where(
            User.role == Role.PATIENT,
            User.is_active.is_(True),
            User.reminder_opt_in.is_(True),
            User.id.not_in(reminded),
        )
        .order_by(User.id)
    )
    patient_of = {
        user_id: patient_id
        for user_id, patient_id, last in candidates
        if last is not None and (today - last).days >= days
    }
    rows = [
        _row(recipient=user_id, purpose=REMINDER, dedup_key=f"reminder:{today}", due=now, now=now)
        for user_id in patient_of
    ]
    inserted = _insert_ignoring_duplicates(session, rows)
    # Deciding who is due read each patient's logs; the reminder row is written for her.
    for notification_id, _, user_id in inserted:
        target = f"notification:{notification_id}"
        audit.record(session, SYSTEM, "reminder.queue", patient_of[user_id], target=target)
    _enqueue(session, inserted)
    return [i for i, _, _ in inserted]


def queue_password_reset(
    session: Session, user_id: int, now: dt.datetime | None = None
) -> int | None:
    """The "choose a new password" message for an account, at most one per
    `password_reset_every_minutes` (a second request in that time writes nothing: None). The
    link itself is made when the message is composed, so its validity starts at sending and
    no usable token is ever stored. The caller commits."""
    settings = _settings()
    now = now or utcnow()
    every = settings.password_reset_every_minutes * 60
    recent = session.scalar(
        sa.select(sa.func.count(Notification.id)).where(
            Notification.recipient_user_id == user_id,
            Notification.purpose == PASSWORD_RESET,
            Notification.created_at > now - dt.timedelta(seconds=every),
        )
    )
    if recent:
        return None
    # Two requests at the same moment: the unique key of the window keeps one.
    window = dt.datetime.fromtimestamp(now.timestamp() // every * every, dt.UTC)
    key = f"password_reset:{window.isoformat(timespec='minutes')}"
    return _queue_one(session, user_id, PASSWORD_RESET, key, now)


def queue_account_message(
    session: Session, user_id: int, purpose: str, key: str, now: dt.datetime | None = None
) -> int | None:
    """One message about the account itself, sent at once: a notice to its address that the
    password was changed (`PASSWORD_CHANGED`), or a change of login address (`EMAIL_CONFIRM`,
    `EMAIL_CHANGED`: `key` is the change's id). Written once per (purpose, key); the caller
    commits."""
    if purpose not in ACCOUNT_MESSAGES:
        raise ValueError(f"not an account message: {purpose}")
    now = now or utcnow()
    return _queue_one(session, user_id, purpose, f"{purpose}:{key}", now)


def queue_handover_notices(
    session: Session,
    patient_id: int,
    care_team_id: int,
    recipients: Collection[int],
    by_user_id: int,
    moved_at: dt.datetime,
) -> list[int]:
    """A notice to each of `recipients` (clinicians of `care_team_id`, the team the patient
    was handed over to, who could not see her before) that her record is now theirs, sent at
    once. The caller commits."""
    key = f"{HANDOVER_NOTICE}:{patient_id}:{care_team_id}:{by_user_id}:{moved_at.isoformat()}"
    return [
        row_id
        for user_id in sorted(recipients)
        if (row_id := _queue_one(session, user_id, HANDOVER_NOTICE, key, moved_at)) is not None
    ]


def _queue_one(
    session: Session, user_id: int, purpose: str, dedup_key: str, now: dt.datetime
) -> int | None:
    """One immediate row (None if its dedup key was written already), delivered after the
    commit."""
    row = _row(recipient=user_id, purpose=purpose, dedup_key=dedup_key, due=now, now=now)
    inserted = _insert_ignoring_duplicates(session, [row])
    _enqueue(session, inserted)
    return inserted[0][0] if inserted else None


# --- delivering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str  # "sent", "retry", "failed", or "skipped" (nothing to claim)
    retry_in: float | None = None
    message_id: str | None = None


class NotSendable(Exception):
    """The row can no longer be sent (recipient disabled, opted out, off the care team)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claim:
    """What a claim holds: the rows, and the value that proves the claim is still ours."""

    ids: list[int]
    attempts: int  # the highest attempt number among the rows (this attempt)
    message_id: str
    recipient_user_id: int
    purpose: str
    alert_ids: list[int] = field(default_factory=list)


def claim(session: Session, notification_id: int, now: dt.datetime | None = None) -> Claim | None:
    """Take one due pending row for sending (committed), or None if it is not ours to send:
    already sent or claimed, not due yet, or a digest row (those go with `deliver_digest`)."""
    now = now or utcnow()
    result = session.execute(
        sa.update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.status == PENDING,
            Notification.next_attempt_at <= now,
            Notification.purpose != ALERT_DIGEST,
        )
        .values(status=SENDING, claimed_at=now, attempts=Notification.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if rows_matched(result) != 1:
        session.rollback()
        return None
    # One Message-ID per notification, kept across attempts: a duplicate sent after a crash
    # carries the same Message-ID, so mail clients can tell it is the same message.
    session.execute(
        sa.update(Notification)
        .where(Notification.id == notification_id, Notification.message_id.is_(None))
        .values(message_id=render.new_message_id(_settings().mail_from))
        .execution_options(synchronize_session=False)
    )
    row = session.execute(
        sa.select(
            Notification.attempts,
            Notification.message_id,
            Notification.recipient_user_id,
            Notification.purpose,
            Notification.alert_id,
        ).where(Notification.id == notification_id)
    ).one()
    session.commit()
    return Claim(
        ids=[notification_id],
        attempts=row.attempts,
        message_id=row.message_id,
        recipient_user_id=row.recipient_user_id,
        purpose=row.purpose,
        alert_ids=[row.alert_id] if row.alert_id is not None else [],
    )


def claim_digest(
    session: Session, recipient_user_id: int, now: dt.datetime | None = None
) -> Claim | None:
    """Take all of a recipient's due digest rows at once (committed); they get one new
    Message-ID, which also marks the claim as ours."""
    now = now or utcnow()
    message_id = render.new_message_id(_settings().mail_from)
    rows = session.execute(
        sa.update(Notification)
        .where(
            Notification.recipient_user_id == recipient_user_id,
            Notification.purpose == ALERT_DIGEST,
            Notification.status == PENDING,
            Notification.next_attempt_at <= now,
        )
        .values(
            status=SENDING,
            claimed_at=now,
            attempts=Notification.attempts + 1,
            message_id=message_id,
        )
        .returning(Notification.id, Notification.attempts, Notification.alert_id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r[0])
    return Claim(
        ids=[r[0] for r in rows],
        attempts=max(r[1] for r in rows),
        message_id=message_id,
        recipient_user_id=recipient_user_id,
        purpose=ALERT_DIGEST,
        alert_ids=[r[2] for r in rows if r[2] is not None],
    )


def _ours(claim: Claim) -> Any:
    """The WHERE clause matching rows still held by this claim (the re-sender may have taken
    them back, and another worker claimed them since)."""
    condition = sa.and_(Notification.id.in_(claim.ids), Notification.status == SENDING)
    if claim.purpose == ALERT_DIGEST:
        return sa.and_(condition, Notification.message_id == claim.message_id)
    return sa.and_(condition, Notification.attempts == claim.attempts)


def _finish(session: Session, claim: Claim, **values: Any) -> int:
    result = session.execute(
        sa.update(Notification)
        .where(_ours(claim))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


def deliver(
    session: Session,
    notification_id: int,
    transport: Transport | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """Claim, render, send and record one notification; safe to call twice."""
    held = claim(session, notification_id, now)
    if held is None:
        return Outcome("skipped")
    return _send(session, held, transport)


def deliver_digest(
    session: Session,
    recipient_user_id: int,
    transport: Transport | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """Send all of a recipient's due digest rows as one message."""
    held = claim_digest(session, recipient_user_id, now)
    if held is None:
        return Outcome("skipped")
    return _send(session, held, transport)


def _send(session: Session, held: Claim, transport: Transport | None) -> Outcome:
    settings = _settings()
    try:
        message, sendable = _compose(session, held, settings)
    except NotSendable as exc:
        session.rollback()
        _finish(session, held, status=FAILED, last_error=f"{NOT_SENT_PREFIX}{exc.reason}")
        session.commit()
        log.info("notifications %s not sent: %s", held.ids, exc.reason)
        return Outcome("failed")
    except Exception as exc:
        session.rollback()
        log.error("composing notifications %s failed (%s)", held.ids, type(exc).__name__)
        return _after_failure(
            session, held, TransientError(f"could not compose ({type(exc).__name__})")
        )
    if len(sendable.ids) < len(held.ids):
        dropped = [i for i in held.ids if i not in sendable.ids]
        _finish(
            session,
            Claim(dropped, held.attempts, held.message_id, held.recipient_user_id, held.purpose),
            status=FAILED,
            last_error=f"{NOT_SENT_PREFIX}recipient no longer on the patient's care team",
        )
        held = sendable
    # The patients the message is about: its alerts' patients, or the reminded patient.
    patient_ids = _patients_in_message(session, held.ids)
    # End the read transaction: no database connection sits idle in a transaction while
    # the SMTP server takes its time.
    session.commit()
    try:
        (transport or default_transport(settings)).send(message, _file_label(held))
    except DeliveryError as exc:
        return _after_failure(session, held, exc)
    now = utcnow()
    if _finish(session, held, status=SENT, sent_at=now, last_error="") != len(held.ids):
        log.warning(
            "notifications %s were sent but taken back meanwhile (claim timeout too short?);"
            " the recipient may get them twice",
            held.ids,
        )
    for patient_id in patient_ids:
        audit.record(
            session, SYSTEM, "notification.send", patient_id, target=f"notification:{held.ids[0]}"
        )
    session.commit()
    log.info("notifications %s sent (attempt %d)", held.ids, held.attempts)
    return Outcome("sent", message_id=held.message_id)


def _file_label(held: Claim) -> str:
    if held.purpose == ALERT_DIGEST:
        return f"digest-n{held.ids[0]}"
    return f"{held.purpose}-n{held.ids[0]}"


def _after_failure(session: Session, held: Claim, error: DeliveryError) -> Outcome:
    settings = _settings()
    exhausted = held.attempts >= settings.notify_max_attempts
    if error.permanent or exhausted:
        reason = (
            error.reason
            if error.permanent
            else (f"gave up after {held.attempts} attempts: {error.reason}")
        )
        _finish(session, held, status=FAILED, last_error=reason[:300])
        session.commit()
        log.warning("notifications %s failed: %s", held.ids, reason)
        return Outcome("failed")
    delay = backoff_seconds(held.attempts, settings)
    _finish(
        session,
        held,
        status=PENDING,
        next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
        last_error=error.reason,
    )
    session.commit()
    log.info(
        "notifications %s: attempt %d failed (%s); next in %.1f s",
        held.ids,
        held.attempts,
        error.reason,
        delay,
    )
    return Outcome("retry", retry_in=delay)


# --- composing ----------------------------------------------------------------------------


def _links(settings: Settings) -> dict[str, str]:
    base = settings.public_url.rstrip("/")
    return {
        "settings": f"{base}/settings/notifications",
        "inbox": f"{base}/clinic/alerts/",
        "base": base,
    }


def _recipient(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotSendable("recipient account disabled")
    return user


def _compose(session: Session, held: Claim, settings: Settings) -> tuple[EmailMessage, Claim]:
    """The message for the claimed rows, and the claim narrowed to the rows it covers."""
    user = _recipient(session, held.recipient_user_id)
    envelope = render.Envelope(settings.mail_from, user.email, held.message_id, held.ids)
    if held.purpose == REMINDER:
        if not user.reminder_opt_in:
            raise NotSendable("the patient turned reminders off")
        return _reminder(session, user, envelope, settings), held
    if held.purpose == PASSWORD_RESET:
        token = accounts.make_link_token(user, settings.secret_key, accounts.PASSWORD_RESET)
        reset_url = f"{settings.public_url.rstrip('/')}/reset/{token}"
        message = render.password_reset_message(
            envelope, reset_url=reset_url, valid_minutes=settings.password_reset_valid_minutes
        )
        return message, held
    if held.purpose == PASSWORD_CHANGED:
        base = settings.public_url.rstrip("/")
        message = render.password_changed_message(
            envelope, forgot_url=f"{base}/login/forgot", changed_at=user.password_changed_at
        )
        return message, held
    if held.purpose in (EMAIL_CONFIRM, EMAIL_CHANGED):
        return _email_change_message(session, user, held, envelope, settings), held
    if held.purpose == FOLLOW_UP_NOTICE:
        return _follow_up_notice(session, user, held, envelope, settings), held
    if held.purpose == HANDOVER_NOTICE:
        return _handover_notice(session, user, held, envelope, settings), held
    if held.purpose in PIPELINE_NOTICES:
        # Imported here: the pipeline watch sends its notices through this module.
        from rehab.services import pipeline_watch

        if user.role is not Role.ADMIN:
            raise NotSendable("recipient is no longer an administrator")
        key = session.scalar(
            sa.select(Notification.dedup_key).where(Notification.id == held.ids[0])
        )
        return pipeline_watch.compose(session, held.purpose, key or "", envelope, settings), held
    actor = _clinician_actor(user)
    rows = session.execute(
        sa.select(Notification.id, Alert)
        .join(Alert, Alert.id == Notification.alert_id)
        .where(Notification.id.in_(held.ids))
        .order_by(Alert.severity.desc(), Alert.detected_on, Alert.id)
    ).all()
    visible = [
        (nid, alert) for nid, alert in rows if can_see_patient(session, actor, alert.patient_id)
    ]
    if not visible:
        raise NotSendable("recipient no longer on the patient's care team")
    if held.purpose == ALERT_FOLLOW_UP:
        waiting = set(
            session.scalars(
                sa.select(Alert.id).where(
                    Alert.id.in_([alert.id for _, alert in visible]), *awaiting_acknowledgement()
                )
            )
        )
        visible = [(nid, alert) for nid, alert in visible if alert.id in waiting]
        if not visible:
            raise NotSendable("acknowledged, resolved or no longer urgent before it went out")
    narrowed = Claim(
        ids=sorted(nid for nid, _ in visible),
        attempts=held.attempts,
        message_id=held.message_id,
        recipient_user_id=held.recipient_user_id,
        purpose=held.purpose,
        alert_ids=[alert.id for _, alert in visible],
    )
    envelope = render.Envelope(settings.mail_from, user.email, held.message_id, narrowed.ids)
    items = [alert_item(session, alert, settings) for _, alert in visible]
    if held.purpose == ALERT_DIGEST:
        return render.digest_message(envelope, items, _links(settings)), narrowed
    follow_up = None
    if held.purpose == ALERT_FOLLOW_UP:
        follow_up = _follow_up_facts(session, visible[0][1].id)
    return render.alert_message(envelope, items[0], _links(settings), follow_up), narrowed


def _follow_up_facts(session: Session, alert_id: int) -> render.FollowUp:
    told_at = session.scalar(sa.select(urgent_since()).where(Alert.id == alert_id))
    assert told_at is not None  # the alert exists (its notification row points at it)
    return render.FollowUp(
        told_at=clinic_time_words(told_at),
        minutes=clinic_policy.current(session).urgent_follow_up_minutes,
    )


def _follow_up_notice(
    session: Session, user: User, held: Claim, envelope: render.Envelope, settings: Settings
) -> EmailMessage:
    """The administrator's notice of an unacknowledged urgent alert: the care team and who
    is on it, nothing about the patient."""
    if user.role is not Role.ADMIN:
        raise NotSendable("recipient is no longer an administrator")
    alert_id = session.scalar(
        sa.select(Notification.alert_id).where(Notification.id == held.ids[0])
    )
    found = session.execute(
        sa.select(CareTeam.id, CareTeam.name)
        .select_from(Alert)
        .join(Patient, Patient.id == Alert.patient_id)
        .join(CareTeam, CareTeam.id == Patient.care_team_id)
        .where(Alert.id == alert_id, *awaiting_acknowledgement())
    ).one_or_none()
    if alert_id is None or found is None:
        raise NotSendable("acknowledged, resolved or no longer urgent before it went out")
    team_id, team_name = found
    clinicians = list(
        session.scalars(
            sa.select(User.display_name)
            .join(Clinician, Clinician.user_id == User.id)
            .join(CareTeamMember, CareTeamMember.clinician_id == Clinician.id)
            .where(CareTeamMember.care_team_id == team_id, User.is_active.is_(True))
            .order_by(User.display_name)
        )
    )
    return render.follow_up_notice_message(
        envelope,
        alert_id=alert_id,
        team_name=team_name,
        follow_up=_follow_up_facts(session, alert_id),
        clinicians=clinicians,
        admin_url=f"{settings.public_url.rstrip('/')}/admin/",
    )


def _handover_notice(
    session: Session, user: User, held: Claim, envelope: render.Envelope, settings: Settings
) -> EmailMessage:
    """To a clinician of the team a patient was handed over to: by whom, when, her record's
    number and link, and how many of her alerts wait (each comes as its own e-mail or in the
    digest). Not sent once she is no longer with that team (handed on again), nor once the
    recipient may no longer see her."""
    key = session.scalar(sa.select(Notification.dedup_key).where(Notification.id == held.ids[0]))
    _, patient_id, team_id, by_user_id, moved_at = (key or "").split(":", 4)
    actor = _clinician_actor(user)
    found = session.execute(
        sa.select(CareTeam.name, User.display_name)
        .select_from(Patient)
        .join(CareTeam, CareTeam.id == Patient.care_team_id)
        .join(User, User.id == int(by_user_id))
        .where(Patient.id == int(patient_id), Patient.care_team_id == int(team_id))
    ).one_or_none()
    if found is None:
        raise NotSendable("the patient was handed on to another care team")
    if not can_see_patient(session, actor, int(patient_id)):
        raise NotSendable("recipient no longer on the patient's care team")
    team_name, by_name = found
    waiting = session.scalar(
        sa.select(sa.func.count(Alert.id)).where(
            Alert.patient_id == int(patient_id), Alert.status == AlertStatus.OPEN
        )
    )
    return render.handover_notice_message(
        envelope,
        team_name=team_name,
        by_name=by_name,
        moved_at=clinic_time_words(dt.datetime.fromisoformat(moved_at)),
        patient_id=int(patient_id),
        patient_url=f"{settings.public_url.rstrip('/')}/clinic/patients/{patient_id}",
        open_alerts=int(waiting or 0),
    )


def _email_change_message(
    session: Session, user: User, held: Claim, envelope: render.Envelope, settings: Settings
) -> EmailMessage:
    """To the new address, while the change waits: the link confirming it, or, if that
    address already logs in to an account, a note saying so (the page that took the request
    told nobody). To the old address, once confirmed: the notice (without the new address:
    whoever reads the old mailbox now need not learn it)."""
    key = session.scalar(sa.select(Notification.dedup_key).where(Notification.id == held.ids[0]))
    change_id = (key or "").rpartition(":")[2]
    change = session.get(EmailChange, int(change_id)) if change_id.isdigit() else None
    if change is None or change.user_id != user.id:
        raise NotSendable("no such change of address")
    if held.purpose == EMAIL_CHANGED:
        return render.email_changed_message(
            dataclasses.replace(envelope, to=change.old_email), changed_at=change.confirmed_at
        )
    latest = accounts.latest_email_change(session, user.id)
    if change is not latest or not accounts.email_change_usable(user, change):
        raise NotSendable("the change was confirmed, replaced or ended by a new password")
    to_new = dataclasses.replace(envelope, to=change.new_email)
    if accounts.email_taken(session, change.new_email):
        return render.email_in_use_message(to_new)
    token = accounts.make_email_change_token(user, change, settings.secret_key)
    base = settings.public_url.rstrip("/")
    return render.email_confirm_message(
        to_new,
        confirm_url=f"{base}/account/email/{token}",
        valid_hours=accounts.EMAIL_CHANGE_VALID_HOURS,
    )


def _clinician_actor(user: User) -> Actor:
    if user.role is not Role.CLINICIAN or user.clinician is None:
        raise NotSendable("recipient is not a clinician")
    return Actor(user_id=user.id, role=Role.CLINICIAN, clinician_id=user.clinician.id)


def alert_item(session: Session, alert: Alert, settings: Settings) -> render.AlertItem:
    base = settings.public_url.rstrip("/")
    return render.AlertItem(
        alert_id=alert.id,
        patient_id=alert.patient_id,
        kind=alert.kind,
        metric=alert.metric,
        severity=alert.severity,
        status=alert.status.value,
        onset=alert.onset,
        detected_on=alert.detected_on,
        baseline=alert.baseline,
        current=alert.current,
        change=alert.change,
        baseline_source=alert.baseline_source,
        explanation=alert.explanation,
        related_events=list(alert.related_events or []),
        patient_url=f"{base}/clinic/patients/{alert.patient_id}",
        chart=_chart(session, alert),
    )


_CHART_COLUMNS = {"leg_pain": SessionLog.leg_pain, "back_pain": SessionLog.back_pain}


def _chart(session: Session, alert: Alert) -> render.Chart | None:
    """The alert's metric over the 4 weeks up to detection (pain metrics and adherence)."""
    metric = alert.metric or ("leg_pain" if alert.kind == "red_flag" else "")
    column: Any = _CHART_COLUMNS.get(metric)
    if metric == "adherence":
        column = SessionLog.adherence
    if column is None:
        return None
    first = alert.detected_on - dt.timedelta(days=CHART_DAYS - 1)
    values: dict[dt.date, float] = {
        day: float(value)
        for day, value in session.execute(
            sa.select(SessionLog.log_date, column).where(
                SessionLog.patient_id == alert.patient_id,
                SessionLog.log_date.between(first, alert.detected_on),
            )
        )
        if value is not None
    }
    if len(values) < 2:
        return None
    days = [first + dt.timedelta(days=i) for i in range(CHART_DAYS)]
    series = [values.get(day) for day in days]
    label = render.METRIC_LABELS[metric].capitalize()
    scale = "0–100 %" if metric == "adherence" else "0–10"
    baseline = alert.baseline if metric == alert.metric else None
    png = sparkline(series, baseline=baseline, low=0.0, high=1.0 if metric == "adherence" else 10.0)
    caption = (
        f"{label} ({scale}), daily logs {first.isoformat()} to {alert.detected_on.isoformat()}"
        + ("; dashed line: baseline" if baseline is not None else "")
        + ("; red dot: the day of detection" if series[-1] is not None else "")
        + "."
    )
    return render.Chart(png, caption)


def _reminder(
    session: Session, user: User, envelope: render.Envelope, settings: Settings
) -> EmailMessage:
    patient = user.patient
    last = (
        session.scalar(
            sa.select(sa.func.max(SessionLog.log_date)).where(SessionLog.patient_id == patient.id)
        )
        if patient is not None
        else None
    )
    today = dt.datetime.now(ZoneInfo(settings.clinic_timezone)).date()
    days = (
        (today - last).days
        if last is not None
        else clinic_policy.current(session).reminder_after_days
    )
    base = settings.public_url.rstrip("/")
    token = tokens.make_token(settings.secret_key, user.id)
    return render.reminder_message(
        envelope,
        days=max(days, 1),
        log_url=f"{base}/me/",
        unsubscribe_url=f"{base}/unsubscribe/{token}",
    )


# --- the re-sender ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResendPlan:
    notification_ids: list[int]
    digest_recipients: list[int]
    reclaimed: list[int]


def reclaim_stuck(
    session: Session, now: dt.datetime, purposes: Sequence[str] | None = None
) -> list[tuple[int, str, int]]:
    """Rows (of `purposes`, or all) claimed more than the claim timeout ago and never finished
    go back to pending, due now: their sender died between claim and send, so the message may
    go out twice (logged). (id, purpose, attempts) of each; the caller commits."""
    timeout = _settings().notify_claim_timeout_seconds
    stuck = [
        Notification.status == SENDING,
        Notification.claimed_at < now - dt.timedelta(seconds=timeout),
    ]
    if purposes is not None:
        stuck.append(Notification.purpose.in_(purposes))
    reclaimed = session.execute(
        sa.update(Notification)
        .where(*stuck)
        .values(status=PENDING, next_attempt_at=now)
        .returning(Notification.id, Notification.purpose, Notification.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    for notification_id, _, attempts in reclaimed:
        log.warning(
            "notification %d was claimed more than %.0f s ago and never finished (its sender "
            "stopped between claim and send?); sending it again: attempt %d may duplicate it",
            notification_id,
            timeout,
            attempts + 1,
        )
    return [(r[0], r[1], r[2]) for r in reclaimed]


def resend_due(session: Session, now: dt.datetime | None = None) -> ResendPlan:
    """What the re-sender must send now (committed):
    - rows claimed more than the claim timeout ago and never finished go back to pending
      (their worker died between claim and send: the message may go out twice, logged);
    - pending rows due for longer than one resend interval (their task was lost);
    - recipients with due digest rows."""
    settings = _settings()
    now = now or utcnow()
    reclaimed = reclaim_stuck(session, now)
    lost_before = now - dt.timedelta(seconds=settings.notify_resend_interval_seconds)
    due = list(
        session.scalars(
            sa.select(Notification.id)
            .where(
                Notification.status == PENDING,
                Notification.purpose != ALERT_DIGEST,
                Notification.next_attempt_at <= lost_before,
            )
            .order_by(Notification.next_attempt_at)
            .limit(RESEND_BATCH)
        )
    )
    ids = sorted(set(due) | {r[0] for r in reclaimed if r[1] != ALERT_DIGEST})
    recipients = sorted(
        session.scalars(
            sa.select(Notification.recipient_user_id)
            .where(
                Notification.status == PENDING,
                Notification.purpose == ALERT_DIGEST,
                Notification.next_attempt_at <= now,
            )
            .distinct()
        )
    )
    session.commit()
    return ResendPlan(ids, recipients, [r[0] for r in reclaimed])


# --- settings, unsubscribe, and what the pages show ---------------------------------------


def _own_user(session: Session, actor: Actor) -> User:
    user = session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None:
        raise NotFound("user")
    return user


def notify_mode(session: Session, actor: Actor) -> NotifyMode:
    return _own_user(session, actor).notify_mode


def set_notify_mode(session: Session, actor: Actor, mode: NotifyMode) -> None:
    """A clinician's choice: routine alerts at once, or in one daily digest. Switching to
    "at once" sends what waits for the digest now, as one message."""
    user = _own_user(session, actor)
    if user.role is not Role.CLINICIAN:
        raise NotFound("clinician")
    user.notify_mode = mode
    if mode is NotifyMode.IMMEDIATE:
        now = utcnow()
        moved = session.execute(
            sa.update(Notification)
            .where(
                Notification.recipient_user_id == user.id,
                Notification.purpose == ALERT_DIGEST,
                Notification.status == PENDING,
                Notification.deliver_after > now,
            )
            .values(deliver_after=now, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        if rows_matched(moved):
            enqueue_after_commit(session, DIGEST_TASK, user.id)
    audit.record(session, actor, "account.notify_mode", None, target=f"user:{user.id}")
    audit.commit(session)


def unsubscribe(session: Session, request: tokens.Unsubscribe) -> bool:
    """Turn reminders off for the token's user (no login: the signed token is the proof);
    pending reminders are dropped. False if the user does not exist."""
    user = session.get(User, request.user_id)
    if user is None:
        return False
    user.reminder_opt_in = False
    session.execute(
        sa.delete(Notification).where(
            Notification.recipient_user_id == user.id,
            Notification.purpose == REMINDER,
            Notification.status == PENDING,
        )
    )
    actor = Actor(user_id=user.id, role=user.role)
    audit.record(session, actor, "account.reminders.unsubscribe", None, target=f"user:{user.id}")
    audit.commit(session)
    return True


@dataclass(frozen=True)
class FailedAlertMail:
    """A clinician's own alert e-mail that could not be delivered (ids and dates only)."""

    notification_id: int
    alert_id: int
    patient_id: int
    urgent: bool
    detected_on: dt.date
    attempts: int
    last_error: str
    at: dt.datetime


def failed_for_clinician(
    session: Session, actor: Actor, days: int = FAILED_SHOWN_DAYS, limit: int = 20
) -> list[FailedAlertMail]:
    """The actor's alert e-mails that failed in the last `days` days, for patients they
    still see; audited like the inbox (a read per patient)."""
    if not actor.is_clinician:
        return []
    since = utcnow() - dt.timedelta(days=days)
    rows = session.execute(
        sa.select(
            Notification.id,
            Alert.id,
            Alert.patient_id,
            Alert.severity,
            Alert.detected_on,
            Notification.attempts,
            Notification.last_error,
            sa.func.coalesce(Notification.claimed_at, Notification.created_at),
        )
        .join(Alert, Alert.id == Notification.alert_id)
        .where(
            Notification.recipient_user_id == actor.user_id,
            Notification.status == FAILED,
            # Left unsent on purpose (e.g. a follow-up of an alert acknowledged meanwhile):
            # nothing wrong with her address.
            Notification.last_error.not_like(f"{NOT_SENT_PREFIX}%"),
            Notification.created_at >= since,
            Alert.patient_id.in_(visible_patient_ids(actor)),
        )
        .order_by(Notification.id.desc())
        .limit(limit)
    ).all()
    items = [
        FailedAlertMail(r[0], r[1], r[2], r[3] == "urgent", r[4], r[5], r[6], r[7]) for r in rows
    ]
    audit.record_per_patient(
        session,
        actor,
        "notification.list",
        (i.patient_id for i in items),
        none_shown_row=False,
    )
    return items


@dataclass(frozen=True)
class AdminRow:
    """A notification as the admin page shows it: recipient account, purpose, ids, outcome;
    no clinical content."""

    notification_id: int
    recipient_user_id: int
    recipient_email: str
    purpose: str
    alert_id: int | None
    urgent: bool
    status: str
    attempts: int
    last_error: str
    created_at: dt.datetime
    sent_at: dt.datetime | None
    message_id: str | None


def admin_overview(
    session: Session, actor: Actor, limit: int = 100
) -> tuple[dict[str, int], list[AdminRow], list[AdminRow]]:
    """Counts by status, failed rows, and the most recent rows (newest first). A row left
    unsent on purpose ("not sent: …", e.g. a follow-up of an alert acknowledged meanwhile)
    counts as "not sent", not as failed: there is nothing to mend or send again."""
    require_admin(actor)
    counts = {status.value: 0 for status in NotificationStatus}
    counts[NOT_SENT] = 0
    not_sent = Notification.last_error.like(f"{NOT_SENT_PREFIX}%")
    shown_status = sa.case(
        (sa.and_(Notification.status == FAILED, not_sent), NOT_SENT),
        else_=sa.cast(Notification.status, sa.String),
    )
    for status, count in session.execute(
        sa.select(shown_status, sa.func.count()).group_by(shown_status)
    ):
        counts[str(status)] = count

    def rows(where: Any) -> list[AdminRow]:
        found = session.execute(
            sa.select(Notification, User.email, Patient.id)
            .join(User, User.id == Notification.recipient_user_id)
            .outerjoin(Patient, Patient.user_id == User.id)
            .where(where)
            .order_by(Notification.id.desc())
            .limit(limit)
        ).all()
        shown_patients.update(patient_id for _, _, patient_id in found if patient_id is not None)
        return [
            AdminRow(
                n.id,
                n.recipient_user_id,
                email,
                n.purpose,
                n.alert_id,
                n.urgent,
                NOT_SENT if n.last_error.startswith(NOT_SENT_PREFIX) else n.status.value,
                n.attempts,
                n.last_error,
                n.created_at,
                n.sent_at,
                n.message_id,
            )
            for n, email, _ in found
        ]

    # A notification to a patient (a reminder) shows her address: audited against her.
    shown_patients: set[int] = set()
    failed = rows(sa.and_(Notification.status == FAILED, sa.not_(not_sent)))
    recent = rows(sa.true())
    audit.record_per_patient(session, actor, "notification.admin_list", shown_patients)
    return counts, failed, recent


def retry_failed(session: Session, actor: Actor, notification_id: int) -> None:
    """An admin sends a failed notification again (e.g. after fixing an address)."""
    require_admin(actor)
    row = session.get(Notification, notification_id)
    if row is None or row.status is not FAILED:
        raise NotFound(f"failed notification {notification_id}")
    now = utcnow()
    row.status = PENDING
    row.attempts = 0
    row.next_attempt_at = now
    row.last_error = ""
    if row.purpose == ALERT_DIGEST:
        row.deliver_after = min(row.deliver_after, now)
        enqueue_after_commit(session, DIGEST_TASK, row.recipient_user_id)
    else:
        enqueue_after_commit(session, DELIVER_TASK, row.id)
    audit.record(session, actor, "notification.retry", None, target=f"notification:{row.id}")
    audit.commit(session)


def list_outbox_messages(session: Session, actor: Actor) -> list[OutboxEntry]:
    """The file outbox's newest messages (headers only). A message to a patient (a reminder)
    shows her address in "To": the list's read is audited against each such patient, or once
    without one."""
    require_admin(actor)
    entries = list_outbox(outbox_dir())
    ids = [i for entry in entries for i in entry.notification_ids]
    audit.record_per_patient(session, actor, "outbox.list", _patient_recipients(session, ids))
    return entries


def read_outbox_message(session: Session, actor: Actor, name: str) -> OutboxMessage | None:
    """One message of the file outbox, its read audited: it shows alert explanations and
    event notes, so there is one audit row per patient it is about ("who read this patient's
    data" finds the admin's read too), or one without a patient."""
    message = read_outbox(outbox_dir(), name)
    if message is None:
        return None
    patients = _patients_in_message(session, message.notification_ids)
    audit.record_per_patient(session, actor, "outbox.read", patients, f"outbox:{name}"[:64])
    return _without_reset_links(message)


# A password-reset link opens the account it was sent to, and a confirmation link moves its
# login: the admin reading the file outbox must not be able to use them (their recipient has
# them in the file, or asks again once SMTP works).
_ONE_TIME_LINK = re.compile(r"/(reset|account/email)/[A-Za-z0-9_.\-]+")
RESET_LINK_HIDDEN = "/reset/(one-time link hidden from the outbox)"
EMAIL_LINK_HIDDEN = "/account/email/(one-time link hidden from the outbox)"


def _hidden(match: re.Match[str]) -> str:
    return RESET_LINK_HIDDEN if match.group(1) == "reset" else EMAIL_LINK_HIDDEN


def _without_reset_links(message: OutboxMessage) -> OutboxMessage:
    return dataclasses.replace(
        message,
        text=_ONE_TIME_LINK.sub(_hidden, message.text),
        html=_ONE_TIME_LINK.sub(_hidden, message.html) if message.html else message.html,
    )


def _patients_in_message(session: Session, notification_ids: Sequence[int]) -> list[int]:
    """The patients an outbox message is about: its alerts' patients, or the patient a
    reminder went to."""
    if not notification_ids:
        return []
    ids = list(notification_ids)
    about_alerts = (
        sa.select(Alert.patient_id)
        .join(Notification, Notification.alert_id == Alert.id)
        .where(Notification.id.in_(ids))
    )
    rows = session.scalars(sa.union(about_alerts, _patient_recipients_statement(ids))).all()
    return sorted(set(rows))


def _patient_recipients(session: Session, notification_ids: Sequence[int]) -> list[int]:
    """The patients these notifications went to (reminders: alerts go to clinicians)."""
    if not notification_ids:
        return []
    return sorted(set(session.scalars(_patient_recipients_statement(list(notification_ids)))))


def _patient_recipients_statement(ids: list[int]) -> sa.Select[Any]:
    return (
        sa.select(Patient.id)
        .join(Notification, Notification.recipient_user_id == Patient.user_id)
        .where(Notification.id.in_(ids))
    )
