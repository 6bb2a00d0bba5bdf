"""Who has opened a patient's record: what she sees of the audit trail about her.

A patient may ask who read or changed her record (GDPR art. 15; several national health
portals show it unasked). The audit trail already holds the answer, one row per access with
ids only; this turns one month of it into lines a patient can read: a day, a person, what
they did, how many times.

Listed: every row about her written by another person's account (allowed or refused) and by a
command someone ran on the clinic's server (`request_id` "cli:…"). Left out: her own use, and
the automatic work of the worker (detection, e-mail delivery), which reads everyone's logs
and acts for no one. The name of another patient's account that was refused is never shown:
that would tell her who else is a patient.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import AuditEvent, User
from rehab.domain.vocabulary import AuditOutcome, Role
from rehab.services.access import require_patient
from rehab.services.actors import Actor
from rehab.services.time import clinic_day_start, clinic_time, clinic_today

ACTION = "access_report.read"

# What each audited action on a patient's record means to her. An action missing here reads
# by its verb (`_fallback_phrase`), so a new action is never left out of the report.
ACTION_PHRASES: dict[str, str] = {
    "patient.read": "opened your record",
    "patient.create": "created your record",
    "patient.update": "corrected your details",
    "patient.invite": "made you a link to set your password",
    "patient.transfer": "moved you to another care team",
    "patient.export": "exported your record",
    "patient.summary": "printed a summary of your record",
    "patient.summary_pdf": "printed a summary of your record",
    "patient.summary_chart": "printed a summary of your record",
    "caseload.read": "saw you on the list of their patients",
    "outcomes.read": "saw your ODI or PSFS scores in their outcome figures",
    "series.read": "read your daily logs",
    "session_log.read": "read your daily logs",
    "session_log.write": "recorded a daily log",
    "event.read": "read your events",
    "event.write": "recorded an event",
    "event.entered_in_error": "marked an entry as entered in error",
    "event.entered_in_error_undo": "took back a mark of entered in error",
    "finding.entered_in_error_undo": "took back a mark of entered in error",
    "outcome.entered_in_error_undo": "took back a mark of entered in error",
    "finding.read": "read the findings of your examinations",
    "finding.write": "recorded a finding",
    "outcome.read": "read your questionnaire scores",
    "outcome.write": "recorded a questionnaire score",
    "program.read": "read your exercise program",
    "program.write": "prescribed or changed your exercise program",
    "baseline.pin": "set your usual pain level by hand",
    "baseline.unpin": "returned your usual pain level to automatic",
    "alert.read": "read an alert about you",
    "alert.list": "read the alerts about you",
    "alerts.inbox": "read the alerts about you",
    "alert.acknowledge": "acknowledged an alert about you",
    "alert.resolve": "closed an alert about you",
    "alert.update": "handled an alert about you",
    "alert.reopen": "reopened an alert about you",
    "notification.list": "read the e-mails sent about you",
    "notification.admin_list": "saw the list of e-mails sent about you",
    "notification.retry": "sent an e-mail about you again",
    "outbox.list": "saw the list of e-mails sent about you",
    "outbox.read": "read an e-mail sent about you",
    "user.list": "saw your name on the list of accounts",
}

_READ_VERBS = frozenset({"read", "list", "inbox"})
_ROLE_NAMES = {Role.CLINICIAN.value: "clinician", Role.ADMIN.value: "administrator"}
SERVER_COMMAND = "A command run on the clinic's server"
OTHER_PATIENT = "Another patient's account"


def action_phrase(action: str) -> str:
    return ACTION_PHRASES.get(action) or _fallback_phrase(action)


def _fallback_phrase(action: str) -> str:
    verb = action.rpartition(".")[2]
    return "looked at your record" if verb in _READ_VERBS else "changed your record"


@dataclass(frozen=True)
class AccessLine:
    """Who did what to her record on one day, and how many times."""

    day: dt.date
    who: str
    what: str  # empty for a refused attempt: the page says so, whatever was tried
    times: int
    first: dt.time  # the clinic's clock
    last: dt.time
    refused: bool


@dataclass(frozen=True)
class AccessReport:
    month: dt.date  # its first day
    lines: list[AccessLine]  # newest day first, then latest first
    earlier: dt.date | None  # the month before, while her record existed
    later: dt.date | None  # the month after, up to this one


def first_of_month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1)


def _previous_month(month: dt.date) -> dt.date:
    return (month - dt.timedelta(days=1)).replace(day=1)


def access_report(
    session: Session, actor: Actor, patient_id: int, month: dt.date | None = None
) -> AccessReport:
    """One month (clinic time) of the accesses to her record by anyone else; a month outside
    her record's life shows the nearest one, as a page number out of range does."""
    patient = require_patient(session, actor, patient_id, ACTION)
    opened = first_of_month(clinic_time(patient.created_at).date())
    current = first_of_month(clinic_today())
    shown = min(max(first_of_month(month or current), opened), current)
    own_user_id = patient.user_id
    start, end = clinic_day_start(shown), clinic_day_start(_next_month(shown))
    by_person = sa.and_(AuditEvent.user_id.is_not(None), AuditEvent.user_id != own_user_id)
    by_command = sa.and_(AuditEvent.user_id.is_(None), AuditEvent.request_id.like("cli:%"))
    rows = session.execute(
        sa.select(
            AuditEvent.at,
            AuditEvent.action,
            AuditEvent.outcome,
            AuditEvent.user_id,
            AuditEvent.role,  # as it was at the time
            User.display_name,
        )
        .outerjoin(User, User.id == AuditEvent.user_id)
        .where(
            AuditEvent.patient_id == patient_id,
            AuditEvent.at >= start,
            AuditEvent.at < end,
            sa.or_(by_person, by_command),
        )
        .order_by(AuditEvent.at, AuditEvent.id)
    ).all()
    lines: dict[tuple[dt.date, int | None, str, str, bool], list[dt.datetime]] = {}
    for row in rows:
        moment = clinic_time(row.at)
        refused = row.outcome is AuditOutcome.DENIED
        # A refused attempt names the page it tried (an endpoint, at the role check): one
        # line per person and day says enough, and the admin's trail has the rest.
        what = "" if refused else action_phrase(row.action)
        if row.outcome is AuditOutcome.FAILED:  # allowed, then undone by an error
            what = f"{what} (not completed)"
        who = _who(row.user_id, row.display_name, row.role)
        # By account, not by name: two colleagues of one name are two lines.
        key = (moment.date(), row.user_id, who, what, refused)
        lines.setdefault(key, []).append(moment)
    report = [
        AccessLine(
            day=day,
            who=who,
            what=what,
            times=len(moments),
            first=moments[0].time().replace(second=0, microsecond=0),
            last=moments[-1].time().replace(second=0, microsecond=0),
            refused=refused,
        )
        for (day, _, who, what, refused), moments in lines.items()
    ]
    report.sort(key=lambda line: (line.day, line.last), reverse=True)
    return AccessReport(
        month=shown,
        lines=report,
        earlier=_previous_month(shown) if shown > opened else None,
        later=_next_month(shown) if shown < current else None,
    )


def _who(user_id: int | None, display_name: str | None, role: str | None) -> str:
    if user_id is None:
        return SERVER_COMMAND
    if role == Role.PATIENT.value:
        return OTHER_PATIENT
    name = display_name or f"Account {user_id}"
    return f"{name} ({_ROLE_NAMES.get(role or '', 'staff')})"
