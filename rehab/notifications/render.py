"""Building the e-mails: `email.message.EmailMessage` with a plain-text part and an HTML
alternative (Jinja templates under `templates/email/`), optionally with small inline charts.

What goes where (design §6: nothing personal in subjects):
- Subjects are fixed phrases: "[rehab] Urgent: a patient on your caseload needs review".
- Alert bodies identify the patient only by record number and a link to the patient page
  (`<public_url>/clinic/patients/<id>`, behind the clinician's login): no name, no date of
  birth. They carry what the clinician needs to triage: the explanation, the figures against
  baseline, the related events, and the chart.
- Reminder bodies say how many days since the last log and link to the log page and to the
  one-click unsubscribe page; no clinical data.

Needs a Flask application context (for the templates).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from flask import render_template

from rehab.domain.vocabulary import ALERT_KIND_TITLES

URGENT_SUBJECT = "[rehab] Urgent: a patient on your caseload needs review"
ROUTINE_SUBJECT = "[rehab] New alert for a patient on your caseload"
DIGEST_SUBJECT = "[rehab] Daily summary: {count} new alert{s} on your caseload"
REMINDER_SUBJECT = "[rehab] A reminder to log your exercise session"
PASSWORD_RESET_SUBJECT = "[rehab] Choose a new password"
PASSWORD_CHANGED_SUBJECT = "[rehab] Your password was changed"
EMAIL_CONFIRM_SUBJECT = "[rehab] Confirm your new login address"
EMAIL_CHANGED_SUBJECT = "[rehab] Your login address was changed"
EMAIL_IN_USE_SUBJECT = "[rehab] This address already has an account"
FOLLOW_UP_SUBJECT = "[rehab] Still unacknowledged: an urgent alert on your caseload"
FOLLOW_UP_NOTICE_SUBJECT = "[rehab] An urgent alert has not been acknowledged by its care team"
PIPELINE_LATE_SUBJECT = "[rehab] Alerts may be late: the automatic checks need attention"
PIPELINE_FLOWING_SUBJECT = "[rehab] Alerts are on time again"
HANDOVER_SUBJECT = "[rehab] A patient was handed over to your care team"

METRIC_LABELS = {
    "leg_pain": "leg pain",
    "back_pain": "back pain",
    "adherence": "adherence",
    "odi": "ODI",
    "psfs": "PSFS",
}
# Metrics the change is shown for as "x/10" (the others keep their own units).
PAIN_METRICS = ("leg_pain", "back_pain")


# The header listing a message's notification ids (`OutboxMessage.notification_ids`).
NOTIFICATION_HEADER = "X-Rehab-Notification"


def number(value: float | None) -> str:
    """7.0 -> "7", 6.5 -> "6.5", 0.333 -> "0.33"."""
    if value is None:
        return "–"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def signed(value: float | None) -> str:
    if value is None:
        return "–"
    return ("+" if value >= 0 else "−") + number(abs(value))


@dataclass(frozen=True)
class Chart:
    png: bytes
    caption: str
    cid: str = ""  # set by the renderer


@dataclass(frozen=True)
class AlertItem:
    """One alert as the e-mail shows it (ids, dates, figures, the explanation; no name)."""

    alert_id: int
    patient_id: int
    kind: str
    metric: str
    severity: str
    status: str
    onset: dt.date
    detected_on: dt.date
    baseline: float | None
    current: float | None
    change: float | None
    baseline_source: str
    explanation: str
    related_events: Sequence[dict[str, Any]]
    patient_url: str
    chart: Chart | None = None

    @property
    def urgent(self) -> bool:
        return self.severity == "urgent"

    @property
    def title(self) -> str:
        kind = ALERT_KIND_TITLES.get(self.kind, self.kind.replace("_", " ").capitalize())
        metric = METRIC_LABELS.get(self.metric, self.metric.replace("_", " "))
        return f"{kind}: {metric}" if self.metric else kind

    @property
    def figures(self) -> str:
        """E.g. "baseline 1/10, now 7/10 (+6)"; "" when the alert has no figures."""
        if self.baseline is None or self.current is None:
            return ""
        unit = "/10" if self.metric in PAIN_METRICS else ""
        if self.metric == "adherence":
            return (
                f"usual {round(100 * self.baseline)}%, now {round(100 * self.current)}% "
                f"({signed(round(100 * (self.current - self.baseline)))} points)"
            )
        change = f" ({signed(self.change)})" if self.change is not None else ""
        return f"baseline {number(self.baseline)}{unit}, now {number(self.current)}{unit}{change}"


@dataclass(frozen=True)
class Envelope:
    """Who from, who to, and the identity of the message."""

    mail_from: str
    to: str
    message_id: str
    notification_ids: Sequence[int]
    date: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def new_message_id(mail_from: str) -> str:
    """`<random.id@domain-of-mail_from>`; the domain defaults to rehab.invalid."""
    address = parseaddr(mail_from)[1]
    domain = address.rpartition("@")[2] or "rehab.invalid"
    return make_msgid(idstring="rehab", domain=domain)


def _base(envelope: Envelope, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = envelope.mail_from
    message["To"] = Address(addr_spec=envelope.to)
    message["Date"] = format_datetime(envelope.date.astimezone(dt.UTC), usegmt=True)
    message["Message-ID"] = envelope.message_id
    # Machine-sent: no out-of-office replies, no auto-forward loops (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    # Lets the operator find the outbox rows of a message (ids only).
    message[NOTIFICATION_HEADER] = ",".join(str(i) for i in envelope.notification_ids)
    return message


def _bodies(template: str, **context: Any) -> tuple[str, str]:
    """The plain-text and HTML bodies of `templates/email/<template>.txt` and `.html`."""
    return (
        render_template(f"email/{template}.txt", **context),
        render_template(f"email/{template}.html", **context),
    )


def _assemble(message: EmailMessage, text: str, html: str, charts: Sequence[Chart]) -> EmailMessage:
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if charts:
        html_part = message.get_body(preferencelist=("html",))
        assert isinstance(html_part, EmailMessage)
        for index, chart in enumerate(charts):
            html_part.add_related(
                chart.png,
                "image",
                "png",
                cid=f"<{chart.cid}>",
                disposition="inline",
                filename=f"chart-{index + 1}.png",
            )
    return message


def _with_cids(items: Sequence[AlertItem], envelope: Envelope) -> list[AlertItem]:
    """Give every chart a Content-ID unique to this message."""
    domain = envelope.message_id.strip("<>").rpartition("@")[2] or "rehab.invalid"
    out = []
    for item in items:
        if item.chart is not None:
            cid = make_msgid(idstring=f"chart{item.alert_id}", domain=domain).strip("<>")
            chart = Chart(item.chart.png, item.chart.caption, cid)
            item = AlertItem(**{**item.__dict__, "chart": chart})
        out.append(item)
    return out


@dataclass(frozen=True)
class FollowUp:
    """Why an urgent alert is sent again: its care team was told at `told_at` (text, clinic
    time) and nobody acknowledged it within `minutes`."""

    told_at: str
    minutes: int

    @property
    def within(self) -> str:
        return duration_text(self.minutes)


def duration_text(minutes: int) -> str:
    """E.g. "4 hours", "1 hour", "90 minutes"."""
    hours, rest = divmod(minutes, 60)
    if rest or not hours:
        return f"{minutes} minute{'' if minutes == 1 else 's'}"
    return f"{hours} hour{'' if hours == 1 else 's'}"


def alert_message(
    envelope: Envelope,
    item: AlertItem,
    links: dict[str, str],
    follow_up: FollowUp | None = None,
) -> EmailMessage:
    """One alert, sent at once. `links`: "settings" (notification settings), "inbox".
    `follow_up`: the urgent alert again, nobody having acknowledged it in time."""
    (item,) = _with_cids([item], envelope)
    subject = URGENT_SUBJECT if item.urgent else ROUTINE_SUBJECT
    message = _base(envelope, FOLLOW_UP_SUBJECT if follow_up else subject)
    message["Importance"] = "high" if item.urgent else "normal"
    context = {
        "item": item,
        "links": links,
        "number": number,
        "signed": signed,
        "follow_up": follow_up,
    }
    return _assemble(message, *_bodies("alert", **context), [item.chart] if item.chart else [])


def digest_message(
    envelope: Envelope, items: Sequence[AlertItem], links: dict[str, str]
) -> EmailMessage:
    """Every routine alert of a clinician's daily digest, in one message."""
    items = _with_cids(items, envelope)
    count = len(items)
    message = _base(envelope, DIGEST_SUBJECT.format(count=count, s="" if count == 1 else "s"))
    context = {"items": items, "links": links, "number": number, "signed": signed}
    return _assemble(message, *_bodies("digest", **context), [i.chart for i in items if i.chart])


def reminder_message(
    envelope: Envelope, *, days: int, log_url: str, unsubscribe_url: str
) -> EmailMessage:
    """The patient's reminder, with RFC 8058 one-click unsubscribe headers."""
    message = _base(envelope, REMINDER_SUBJECT)
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    context = {"days": days, "log_url": log_url, "unsubscribe_url": unsubscribe_url}
    return _assemble(message, *_bodies("reminder", **context), [])


def password_reset_message(
    envelope: Envelope, *, reset_url: str, valid_minutes: int
) -> EmailMessage:
    """The one-time link someone asked for on the login page ("Forgot your password?")."""
    message = _base(envelope, PASSWORD_RESET_SUBJECT)
    context = {"reset_url": reset_url, "valid_minutes": valid_minutes}
    return _assemble(message, *_bodies("password_reset", **context), [])


def follow_up_notice_message(
    envelope: Envelope,
    *,
    alert_id: int,
    team_name: str,
    follow_up: FollowUp,
    clinicians: Sequence[str],
    admin_url: str,
) -> EmailMessage:
    """To an administrator: an urgent alert of care team `team_name` is unacknowledged;
    `clinicians`: the team's active clinicians, who got it again (none: nobody could be
    told). Nothing about the patient: an administrator cannot open her record."""
    message = _base(envelope, FOLLOW_UP_NOTICE_SUBJECT)
    message["Importance"] = "high"
    context = {
        "alert_id": alert_id,
        "team_name": team_name,
        "follow_up": follow_up,
        "clinicians": clinicians,
        "admin_url": admin_url,
    }
    return _assemble(message, *_bodies("follow_up_notice", **context), [])


def handover_notice_message(
    envelope: Envelope,
    *,
    team_name: str,
    by_name: str,
    moved_at: str,
    patient_id: int,
    patient_url: str,
    open_alerts: int,
) -> EmailMessage:
    """To a clinician of care team `team_name`: a patient (by record number only, as in the
    alert e-mails) was handed over to it by `by_name` at `moved_at`; `open_alerts` of hers
    are unacknowledged."""
    message = _base(envelope, HANDOVER_SUBJECT)
    context = {
        "team_name": team_name,
        "by_name": by_name,
        "moved_at": moved_at,
        "patient_id": patient_id,
        "patient_url": patient_url,
        "open_alerts": open_alerts,
    }
    return _assemble(message, *_bodies("handover_notice", **context), [])


def pipeline_late_message(
    envelope: Envelope, *, status: Any, late_minutes: int, settle_minutes: int, admin_url: str
) -> EmailMessage:
    """To an administrator: alerts, red flags included, may not have been raised or sent for
    more than `late_minutes`; what is late, since when, in the words of the clinicians' banner
    (`status`: a `rehab.services.health.PipelineStatus`); she hears again once they have been
    on time for `settle_minutes`. Counts and times only."""
    message = _base(envelope, PIPELINE_LATE_SUBJECT)
    message["Importance"] = "high"
    context = {
        "pipeline": status,
        "late_minutes": late_minutes,
        "settle_minutes": settle_minutes,
        "admin_url": admin_url,
    }
    return _assemble(message, *_bodies("pipeline_late", **context), [])


def pipeline_flowing_message(
    envelope: Envelope, *, on_time_since: dt.datetime, admin_url: str
) -> EmailMessage:
    """To an administrator who was told alerts were late: they are on time again, and have
    been since `on_time_since`."""
    message = _base(envelope, PIPELINE_FLOWING_SUBJECT)
    context = {"on_time_since": on_time_since, "admin_url": admin_url}
    return _assemble(message, *_bodies("pipeline_flowing", **context), [])


def _utc_text(when: dt.datetime) -> str:
    when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def password_changed_message(
    envelope: Envelope, *, forgot_url: str, changed_at: dt.datetime | None
) -> EmailMessage:
    """The notice that the account's password was changed by someone logged in to it."""
    message = _base(envelope, PASSWORD_CHANGED_SUBJECT)
    context = {"forgot_url": forgot_url, "changed_at": _utc_text(changed_at or envelope.date)}
    return _assemble(message, *_bodies("password_changed", **context), [])


def email_confirm_message(
    envelope: Envelope, *, confirm_url: str, valid_hours: int
) -> EmailMessage:
    """The link that makes this (new) address the account's login."""
    message = _base(envelope, EMAIL_CONFIRM_SUBJECT)
    context = {"confirm_url": confirm_url, "valid_hours": valid_hours}
    return _assemble(message, *_bodies("email_confirm", **context), [])


def email_changed_message(envelope: Envelope, *, changed_at: dt.datetime | None) -> EmailMessage:
    """The notice to the old address that the login moved to another address."""
    message = _base(envelope, EMAIL_CHANGED_SUBJECT)
    context = {"changed_at": _utc_text(changed_at or envelope.date)}
    return _assemble(message, *_bodies("email_changed", **context), [])


def email_in_use_message(envelope: Envelope) -> EmailMessage:
    """To an address someone asked to make the login of their account, which is already the
    login of an account: nothing was changed."""
    message = _base(envelope, EMAIL_IN_USE_SUBJECT)
    return _assemble(message, *_bodies("email_in_use"), [])
