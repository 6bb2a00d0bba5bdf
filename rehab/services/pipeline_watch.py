"""E-mailing the administrators when alerts may be late, without the worker.

The pipeline status (`rehab.services.health`) is on the clinicians' pages, the admin page and
`/healthz/pipeline`; but a clinic whose worker stopped in the night learns of it only when
someone looks, and red flags may wait meanwhile. So whoever computes the status also acts on
it: the web app (in the background, when a page or a probe needs a fresh status) and
`rehab pipeline check` (for cron). Every active administrator is e-mailed once when alerts
become late (an incident opens), again every `REMIND_EVERY` of the incident while they are
late, and once when the incident closes (only those who were told it opened), with since when
alerts are on time. An admin whose first notice was held back (the mail server's back-off, a
sender that died mid-send) until alerts were on time for a moment is not left out: that notice
was refused as untrue then, and goes when alerts are late again while the incident goes on.

The incident closes only after alerts have stayed on time for `pipeline_settle_minutes`
(meanwhile it settles). Late again while it settles, it simply goes on: no new notice, and the
reminders keep their cadence from its opening. A pipeline flapping around the late limit (a
worker that keeps restarting, a scan sometimes 14 and sometimes 16 minutes behind) thus sends
one notice, not a pair at every flap, which an administrator on call would soon stop reading.
The clinicians' banner and `/healthz/pipeline` show the status of the moment all along.

Late, here, is `PipelineStatus.alerts_late`: the scan late, data not evaluated, or an alert
e-mail not sent in time. A scan that has never run is not enough on its own (a new
installation before beat's first run): data waiting for it makes evaluation late soon enough.
Failed e-mails, late non-alert mail and care teams without a clinician are the admin page's.

The notices are outbox rows (`notifications.PIPELINE_NOTICES`), sent by the checker
itself through `notifications.deliver` (claim, send, record: the worker's own path), because
the worker may be what stopped. One that could not be sent stays pending with its back-off,
for the next check or the worker's re-sender. A notice that became untrue before it went out
is not sent (`compose`); a late notice so refused is put back to pending by the next late check
of the same incident and day (`REFUSED_AS_FLOWING`).

The state is three `job_watermarks` rows:

- `NOTICE_WATERMARK`: the open incident, through = when it opened. The dedup keys name it
  (`pipeline:<opened>:<day>`, `pipeline:<opened>:flowing`).
- `ON_TIME_WATERMARK`: since when alerts are on time, while the incident settles and after it
  closed (the "on time again" notice says it); gone while alerts are late. One older than the
  open incident (left by a version that did not clear it on opening) counts as absent.
- `AS_OF_WATERMARK`: the time of the newest status acted on: every late one, and each on-time
  one that started the settling or closed the incident.

Several checkers run at once (web processes, cron), on PostgreSQL and SQLite, each with a
status computed a moment before. A transition depends on the three rows together, which a
conditional write on one row cannot guard (on PostgreSQL it does not see another checker's
write to another row until that commits), so each checker changes them holding the incident's
row (`_hold`): checkers take turns, each reading what the one before committed. Opening and
closing are still conditional writes (insert if none is open, delete that incident), and only
the checker whose write opened or closed the incident queues its notice. A status older than
`AS_OF_WATERMARK` decides nothing: a checker that found alerts on time before another found
them late neither starts the settling nor closes the incident, and one that found them late
before another closed it does not open it again. The watermark trusts the checkers' clocks
only so far: one more than `CLOCK_TOLERANCE` ahead of a checker's time is taken as a wrong
clock's and replaced (logged). On PostgreSQL a checker waits `HOLD_TIMEOUT` at most for the
hold (one stuck mid-transaction would stop every watch thread), then skips its check (logged).
Counts and times only: nothing about patients.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from email.message import EmailMessage

import sqlalchemy as sa
from flask import current_app
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
ON_TIME_WATERMARK = "pipeline.notice.on_time_since"
AS_OF_WATERMARK = "pipeline.notice.as_of"
REMIND_EVERY = dt.timedelta(hours=24)
# A stored AS_OF_WATERMARK further ahead of a checker's own time than this came from a clock
# that is wrong (it would make every check decide nothing until real time passed it).
CLOCK_TOLERANCE = dt.timedelta(minutes=5)
# How long a checker waits for the incident's row on PostgreSQL before skipping its check (one
# stuck mid-transaction would otherwise stop every web process's watch thread).
HOLD_TIMEOUT = dt.timedelta(seconds=30)
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for lock_timeout
# Why `compose` refuses a late notice once alerts are on time; the row's last_error then.
_FLOWING_AGAIN = "alerts were flowing again before it went out"
REFUSED_AS_FLOWING = f"{notifications.NOT_SENT_PREFIX}{_FLOWING_AGAIN}"
_KEY_PREFIX = "pipeline:"
_FLOWING_SUFFIX = ":flowing"


@dataclass(frozen=True)
class Watch:
    """What one check did: the incident's state after it, the notices it queued, the notices
    it sent (its own or earlier checks' that had waited)."""

    late: bool  # what the status it acted on said
    opened_at: dt.datetime | None  # the incident's start, while one is open
    on_time_since: dt.datetime | None  # while the open incident settles: alerts on time since
    queued: list[int]
    sent: int

    @property
    def settling(self) -> bool:
        """An incident is open and alerts are on time: it closes once they stay so for
        `pipeline_settle_minutes`."""
        return self.on_time_since is not None


def watch(
    session: Session,
    status: health.PipelineStatus,
    transport: Transport | None = None,
) -> Watch:
    """Open, remind, settle or close the incident `status` calls for, queue its notices
    (committed), then send every pipeline notice due. Needs an application context (settings,
    templates)."""
    settle = dt.timedelta(minutes=current_app.config["REHAB_SETTINGS"].pipeline_settle_minutes)
    if status.alerts_late or _opened_at(session) is not None:
        try:
            opened_at, on_time_since, queued = _follow(session, status, settle)
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            session.rollback()
            log.warning(
                "pipeline incident held by another checker for over %s: this check skipped",
                HOLD_TIMEOUT,
            )
            return Watch(
                late=status.alerts_late,
                opened_at=_opened_at(session),
                on_time_since=_watermark(session, ON_TIME_WATERMARK),
                queued=[],
                sent=0,
            )
    else:
        # On time and no incident: nothing to change, so no write (cron checks every few
        # minutes, and a write would wait for SQLite's lock).
        opened_at, on_time_since, queued = None, None, []
    session.commit()
    if queued:
        log.warning(
            "%s: %d administrator notice(s) queued",
            "alerts may be late" if status.alerts_late else "alerts on time again",
            len(queued),
        )
    sent = send_due(session, transport, status.checked_at)
    return Watch(
        late=status.alerts_late,
        opened_at=opened_at,
        on_time_since=on_time_since,
        queued=queued,
        sent=sent,
    )


def _follow(
    session: Session, status: health.PipelineStatus, settle: dt.timedelta
) -> tuple[dt.datetime | None, dt.datetime | None, list[int]]:
    """Act on `status`, holding the incident: the incident's start and, while it settles,
    since when alerts are on time (as this check leaves them), and the notices it queued.
    The caller commits."""
    now = status.checked_at
    opened_here = False
    if session.get_bind().dialect.name == "postgresql":
        # For this transaction only: a checker stuck holding the incident is waited for so long.
        timeout_ms = HOLD_TIMEOUT // dt.timedelta(milliseconds=1)
        session.execute(sa.text(f"SET LOCAL lock_timeout = {timeout_ms}"))
    if status.alerts_late:
        opened_at, opened_here = _hold_or_open(session, now)
    elif (held := _hold(session)) is not None:
        opened_at = held
    else:  # closed by another checker since the caller looked
        return None, None, []
    as_of = _watermark(session, AS_OF_WATERMARK)
    on_time_since = _watermark(session, ON_TIME_WATERMARK)
    if on_time_since is not None and on_time_since < opened_at:
        # Left by an earlier incident (one opened by a version that did not clear it).
        on_time_since = None
    if as_of is not None and as_of > now + CLOCK_TOLERANCE:
        # From a checker whose clock is ahead: trusted, it would make every check decide
        # nothing until real time passed it.
        log.warning(
            "pipeline notices: last status acted on is dated %s, %s ahead of this check's "
            "clock; taken as a wrong clock and replaced",
            as_of.isoformat(),
            as_of - now,
        )
        _set(session, AS_OF_WATERMARK, now)
        as_of = None
    if as_of is not None and now < as_of:
        # A newer status was acted on: this one decides nothing (an incident it opened just
        # now is undone: a newer check had closed it).
        session.rollback()
        log.info(
            "pipeline status of %s discarded: one of %s was acted on already",
            now.isoformat(),
            as_of.isoformat(),
        )
        return (None, None, []) if opened_here else (opened_at, on_time_since, [])
    if status.alerts_late:
        _set(session, AS_OF_WATERMARK, now)
        late_key = _late_key(opened_at, now)
        # A first notice held back (refused by the mail server, or its sender died mid-send)
        # that came due while alerts were briefly on time was refused as untrue: late again,
        # it is true again and goes (else its admin would hear nothing of this incident).
        session.execute(
            sa.update(Notification)
            .where(
                Notification.purpose == notifications.PIPELINE_LATE,
                Notification.dedup_key == late_key,
                Notification.status == NotificationStatus.FAILED,
                Notification.last_error == REFUSED_AS_FLOWING,
            )
            .values(status=NotificationStatus.PENDING, next_attempt_at=now, last_error="")
            .execution_options(synchronize_session=False)
        )
        if on_time_since is not None:
            # Late again while the incident settles: it goes on, with the notices and
            # reminders it had. (Opening one: the last incident's on-time mark goes.)
            _clear(session, ON_TIME_WATERMARK)
        queued = notifications.queue_unsent_by_task(
            session, notifications.PIPELINE_LATE, late_key, _admins(session), now
        )
        return opened_at, None, queued
    if on_time_since is None:  # the settling starts
        on_time_since = now
        _set(session, ON_TIME_WATERMARK, now)
        _set(session, AS_OF_WATERMARK, now)
    if now - on_time_since < settle or not _close(session, opened_at):
        return opened_at, on_time_since, []
    _set(session, AS_OF_WATERMARK, now)
    queued = notifications.queue_unsent_by_task(
        session,
        notifications.PIPELINE_FLOWING,
        _flowing_key(opened_at),
        _told(session, opened_at),
        now,
    )
    return None, None, queued


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
    """Whether the administrators were told alerts are late and not yet that they are on time
    again (the incident may be settling)."""
    return _opened_at(session) is not None


def _opened_at(session: Session) -> dt.datetime | None:
    return _watermark(session, NOTICE_WATERMARK)


def _watermark(session: Session, name: str) -> dt.datetime | None:
    return session.scalar(sa.select(JobWatermark.through).where(JobWatermark.name == name))


def _hold(session: Session) -> dt.datetime | None:
    """The open incident's start, its row held until this transaction ends; None if none is
    open. Checkers take turns: the next waits for PostgreSQL's lock on the row, or for SQLite's
    write lock (which any write takes, whether it matches a row or not), then reads what the
    one before committed."""
    return session.scalar(
        sa.update(JobWatermark)
        .where(JobWatermark.name == NOTICE_WATERMARK)
        .values(through=JobWatermark.through)  # changes nothing: only the hold is wanted
        .returning(JobWatermark.through)
        .execution_options(synchronize_session=False)
    )


def _hold_or_open(session: Session, now: dt.datetime) -> tuple[dt.datetime, bool]:
    """The incident's start, held (`_hold`), and whether this check opened it: at `now`,
    unless another checker opened it first."""
    while True:
        opened_at = _hold(session)
        if opened_at is not None:
            return opened_at, False
        inserted = session.scalar(
            _insert(session)
            .values(name=NOTICE_WATERMARK, through=now)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(JobWatermark.through)
        )
        if inserted is not None:  # held too, until this transaction ends
            return inserted, True
        # Another checker opened it between the two statements: hold that one.


def _close(session: Session, opened_at: dt.datetime) -> bool:
    """End the incident; False if it is no longer the one that opened at `opened_at`."""
    result = session.execute(
        sa.delete(JobWatermark).where(
            JobWatermark.name == NOTICE_WATERMARK, JobWatermark.through == opened_at
        )
    )
    return rows_matched(result) == 1


def _set(session: Session, name: str, through: dt.datetime) -> None:
    statement = _insert(session).values(name=name, through=through)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"], set_={"through": statement.excluded.through}
        )
    )


def _clear(session: Session, name: str) -> None:
    session.execute(sa.delete(JobWatermark).where(JobWatermark.name == name))


def _insert(session: Session) -> postgresql.Insert | sqlite.Insert:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(JobWatermark)


def _stamp(opened_at: dt.datetime) -> str:
    # To the microsecond, as stored: two incidents are never taken for one.
    return opened_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _late_key(opened_at: dt.datetime, now: dt.datetime) -> str:
    # One notice per started REMIND_EVERY of the incident: day 0 when it opens, then reminders
    # (late again while it settles: the day it is in). A status older than the incident is not
    # acted on (AS_OF_WATERMARK), but one opened by a version before that row is: day 0 too.
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
    notice of an incident that has ended, or alerts no longer late, is not sent; nor one that
    they are on time again once they are late again (or another incident opened since)."""
    late_after = dt.timedelta(minutes=settings.pipeline_late_minutes)
    status = health.pipeline_status(session, late_after)
    admin_url = f"{settings.public_url.rstrip('/')}/admin/"
    opened_at = _opened_at(session)
    if purpose == notifications.PIPELINE_FLOWING:
        if status.alerts_late or opened_at is not None:
            raise notifications.NotSendable("alerts were late again before it went out")
        # None only if the incident was closed by a version before settling: on time now.
        on_time_since = _watermark(session, ON_TIME_WATERMARK) or status.checked_at
        return render.pipeline_flowing_message(
            envelope, on_time_since=on_time_since, admin_url=admin_url
        )
    current = opened_at is not None and dedup_key.startswith(f"{_KEY_PREFIX}{_stamp(opened_at)}:")
    if not current or not status.alerts_late:
        raise notifications.NotSendable(_FLOWING_AGAIN)
    return render.pipeline_late_message(
        envelope,
        status=status,
        late_minutes=settings.pipeline_late_minutes,
        settle_minutes=settings.pipeline_settle_minutes,
        admin_url=admin_url,
    )
