"""Is rehab up, and are its alerts flowing?

Clinicians rely on alerts, red flags included, to reach them without looking. If beat or the
worker stops, or mail stops going out, nothing fails where anyone sees it: alerts simply stop.
So the web app, which keeps running, checks the pipeline's own traces and says when they are
late (`pipeline_status`), to monitoring (`/healthz/pipeline`), to clinicians (a banner on
their caseload and alert inbox) and to the admin (her page, and an e-mail:
`rehab.services.pipeline_watch`):

- **scan**: the periodic scan (beat → worker) records each run (`scan.LAST_RUN_WATERMARK`);
  none for `pipeline_late_minutes` means missed-log alerts and the catching up of lost
  evaluations have stopped;
- **evaluation**: a log, event, score, correction or pinned baseline older than that which no
  evaluation has seen since (what the scan would queue: `scan.changed_since_evaluation`);
- **delivery**: an e-mail due that long ago and not sent (SMTP down, retries under way), or
  one that failed in the last day;
- **recipients**: a care team with patients and no active clinician, whose alerts reach no
  one (`staff.unattended_teams`; the admin's page names them, clinicians are not told).

Readiness (`/readyz`) is the web app's own: the database answers and is migrated to this
code's head. It does not depend on the worker: logs are stored without it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab import migrate
from rehab.db.models import JobWatermark, Notification, NotificationStatus, utcnow
from rehab.services import notifications, scan, staff

FAILED_WITHIN = dt.timedelta(days=1)
ALERT_PURPOSES = (notifications.ALERT, notifications.ALERT_DIGEST, notifications.ALERT_FOLLOW_UP)
NOT_SENT_PREFIX = notifications.NOT_SENT_PREFIX


class Check(StrEnum):
    OK = "ok"
    LATE = "late"
    NEVER = "never"  # the scan has never run (a new installation, or no worker yet)
    FAILING = "failing"
    BEHIND = "behind"  # the database is not migrated to this code's head
    AHEAD = "ahead"  # migrated past this code (a deploy under way: the new code migrated first)
    MISSING = "missing"  # alerts of some patients have no one to go to


@dataclass(frozen=True)
class PipelineStatus:
    checked_at: dt.datetime
    late_after: dt.timedelta
    scan: Check
    scan_last_run: dt.datetime | None
    evaluation: Check
    oldest_unevaluated: dt.datetime | None  # the oldest change not evaluated, when late
    delivery: Check
    oldest_undelivered: dt.datetime | None  # when the oldest unsent e-mail was due, when late
    oldest_undelivered_alert: dt.datetime | None  # the same, of the alert e-mails
    failed_last_day: int
    unattended_teams: int = 0

    @property
    def alerts_late(self) -> bool:
        """The scan late, data not evaluated, or alert e-mails unsent, for longer than
        `late_after`: alerts, red flags included, may not have been raised or sent (what the
        administrators are e-mailed about: `pipeline_watch`)."""
        return (
            self.scan is Check.LATE
            or self.evaluation is Check.LATE
            or self.oldest_undelivered_alert is not None
        )

    @property
    def late(self) -> bool:
        """Alerts late, or a scan that has never run (the clinicians' banner; a failed e-mail
        is told to its recipient and the admin, other e-mails late to the admin). A new
        installation's first scan is minutes away: its data waiting for it soon makes
        evaluation late, which is what e-mails the administrators."""
        return self.alerts_late or self.scan is Check.NEVER

    @property
    def alerts_at_risk(self) -> bool:
        """Late, or some care team's alerts reach no one (`rehab pipeline check` exits 1)."""
        return self.late or self.recipients is Check.MISSING

    @property
    def ok(self) -> bool:
        """Scan, evaluation and delivery on time, and no e-mail failed in the last day."""
        return all(c is Check.OK for c in (self.scan, self.evaluation, self.delivery))

    @property
    def recipients(self) -> Check:
        return Check.MISSING if self.unattended_teams else Check.OK

    @property
    def all_ok(self) -> bool:
        return self.ok and self.recipients is Check.OK

    def as_json(self) -> dict[str, object]:
        def moment(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "status": "ok" if self.all_ok else "attention",
            "checked_at": self.checked_at.isoformat(),
            "late_after_minutes": int(self.late_after.total_seconds() // 60),
            "scan": {"status": self.scan.value, "last_run": moment(self.scan_last_run)},
            "evaluation": {
                "status": self.evaluation.value,
                "oldest_waiting": moment(self.oldest_unevaluated),
            },
            "delivery": {
                "status": self.delivery.value,
                "oldest_waiting": moment(self.oldest_undelivered),
                "failed_last_day": self.failed_last_day,
            },
            "recipients": {
                "status": self.recipients.value,
                "teams_without_clinician": self.unattended_teams,
            },
        }


def pipeline_status(
    session: Session, late_after: dt.timedelta, now: dt.datetime | None = None
) -> PipelineStatus:
    """What the scan, evaluation and delivery have left undone for longer than `late_after`
    (counts and times only: no patient or recipient)."""
    now = now or utcnow()
    cutoff = now - late_after
    watermark = session.get(JobWatermark, scan.LAST_RUN_WATERMARK)
    last_run = watermark.through if watermark is not None else None
    if last_run is None:
        scan_check = Check.NEVER
    elif last_run < cutoff:
        scan_check = Check.LATE
    else:
        scan_check = Check.OK

    changed = scan.changed_since_evaluation(now)
    oldest_change = session.scalar(
        sa.select(sa.func.min(changed.c.changed_at)).where(changed.c.changed_at < cutoff)
    )
    is_alert = Notification.purpose.in_(ALERT_PURPOSES)
    undelivered, undelivered_alert = session.execute(
        sa.select(
            sa.func.min(Notification.deliver_after),
            sa.func.min(sa.case((is_alert, Notification.deliver_after))),
        ).where(
            Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]),
            Notification.deliver_after < cutoff,
        )
    ).one()
    # Dated by the attempt (its claim), not by when it was scheduled; a message left unsent
    # on purpose ("not sent: …", e.g. its recipient left the care team) is no fault.
    failed = (
        session.scalar(
            sa.select(sa.func.count(Notification.id)).where(
                Notification.status == NotificationStatus.FAILED,
                Notification.claimed_at >= now - FAILED_WITHIN,
                Notification.last_error.not_like(f"{NOT_SENT_PREFIX}%"),
            )
        )
        or 0
    )
    if failed:
        delivery = Check.FAILING
    elif undelivered is not None:
        delivery = Check.LATE
    else:
        delivery = Check.OK
    return PipelineStatus(
        checked_at=now,
        late_after=late_after,
        scan=scan_check,
        scan_last_run=last_run,
        evaluation=Check.LATE if oldest_change is not None else Check.OK,
        oldest_unevaluated=oldest_change,
        delivery=delivery,
        oldest_undelivered=undelivered,
        oldest_undelivered_alert=undelivered_alert,
        failed_last_day=failed,
        unattended_teams=len(staff.unattended_teams(session)),
    )


@dataclass(frozen=True)
class Readiness:
    database: Check
    schema: Check

    @property
    def ok(self) -> bool:
        # Ahead is ready: in a deploy the database is migrated first, and the processes of
        # the version before keep serving until the new ones are up (migrations add before
        # they take away).
        return self.database is Check.OK and self.schema in (Check.OK, Check.AHEAD)

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "failing",
            "database": self.database.value,
            "schema": self.schema.value,
        }


def readiness(session: Session) -> Readiness:
    """Whether this process can serve: its database answers and has this code's schema. A
    failure is reported, never raised (the error itself may name hosts: it is not shown)."""
    try:
        state = migrate.schema_state(session.connection())
    except sa.exc.SQLAlchemyError:
        session.rollback()
        return Readiness(database=Check.FAILING, schema=Check.FAILING)
    session.rollback()
    return Readiness(database=Check.OK, schema=_SCHEMA_CHECKS[state])


_SCHEMA_CHECKS = {"current": Check.OK, "behind": Check.BEHIND, "ahead": Check.AHEAD}
