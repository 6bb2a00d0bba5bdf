"""The notification outbox through its service and pages, without a worker: rows written with
the alert, claims, retries and failures, the re-sender, digests, reminders and unsubscribe,
the file transport and the admin and clinician pages.

Delivery through a real worker to a real SMTP server: test_notifications_delivery.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import cast

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab import create_app
from rehab.db.models import (
    Alert,
    AuditEvent,
    CareTeamMember,
    Clinician,
    Notification,
    NotificationStatus,
    User,
    utcnow,
)
from rehab.domain.vocabulary import NotifyMode, Role
from rehab.extensions import db
from rehab.notifications import render
from rehab.notifications.transport import PermanentError, TransientError
from rehab.services import evaluation, notifications
from rehab.services.dispatch import pending_tasks
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.support.clinic import PASSWORD, Clinic, csrf_token, login, password_hash
from tests.support.history import add_logs
from tests.support.pages import text, visible_text

PUBLIC_URL = "https://rehab.example"
SECRET = "s" * 40
EXPLANATION = (
    "Left leg pain 7/10 (3-day median) vs baseline 1/10 (+6; clinically important ≥ 2). "
    "Began 1 day after a fall (slipped on marble stairs) logged {fall}."
)


@pytest.fixture(name="app")
def outbox_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app with links to PUBLIC_URL (also the `app` of the account and reset tests, which
    import this fixture)."""
    app = create_app(app_settings(database_url, tmp_path, public_url=PUBLIC_URL, secret_key=SECRET))
    yield app
    dispose_engines(app)


# --- helpers (also used by test_notifications_delivery) -----------------------------------


def add_clinician(
    email: str,
    name: str,
    team_id: int,
    *,
    active: bool = True,
    mode: NotifyMode = NotifyMode.IMMEDIATE,
) -> int:
    user = User(
        email=email,
        display_name=name,
        role=Role.CLINICIAN,
        password_hash=password_hash(),
        is_active=active,
        notify_mode=mode,
    )
    user.clinician = Clinician()
    db.session.add(user)
    db.session.flush()
    db.session.add(CareTeamMember(care_team_id=team_id, clinician_id=user.clinician.id))
    db.session.commit()
    return user.id


def make_alert(
    patient_id: int,
    *,
    severity: str = "urgent",
    kind: str = "red_flag",
    metric: str = "",
    detected_on: dt.date | None = None,
    queue: bool = True,
) -> int:
    """An open alert with its notifications, committed together (as the evaluation does)."""
    day = detected_on or clinic_today()
    fall = day - dt.timedelta(days=2)
    alert = Alert(
        patient_id=patient_id,
        kind=kind,
        metric=metric,
        severity=severity,
        onset=day - dt.timedelta(days=1),
        detected_on=day,
        baseline=1.0,
        current=7.0,
        change=6.0,
        baseline_source="median of the 45 stable days before",
        related_events=[
            {"date": fall.isoformat(), "event": "fall", "note": "slipped on marble stairs"}
        ],
        explanation=EXPLANATION.format(fall=fall.isoformat()),
    )
    db.session.add(alert)
    db.session.flush()
    if queue:
        notifications.queue_for_alerts(db.session, [alert.id])
    db.session.commit()
    return alert.id


def rows(**where: object) -> list[Notification]:
    query = sa.select(Notification).order_by(Notification.id)
    for key, value in where.items():
        query = query.where(getattr(Notification, key) == value)
    found = list(db.session.scalars(query))
    db.session.rollback()
    return found


def outbox_messages(app: Flask) -> list[EmailMessage]:
    directory = notifications.outbox_dir(app.config["REHAB_SETTINGS"])
    if not directory.is_dir():
        return []
    return [
        cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(p.read_bytes()))
        for p in sorted(directory.glob("*.eml"))
    ]


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def body_html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


# The demo runs on SQLite: the statements that differ by dialect run on both.
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

PERSONAL = ("Alice", "alice@patient.test", "Patient")


def assert_subject_is_impersonal(subject: str, patient_id: int) -> None:
    for word in PERSONAL:
        assert word not in subject
    assert str(patient_id) not in subject
    assert subject.startswith("[rehab] ")


class FailingTransport:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def send(self, message: EmailMessage, name: str) -> None:
        self.calls += 1
        raise self.error


# --- writing the outbox -------------------------------------------------------------------


@BOTH
def test_alert_rows_are_written_with_the_alert_for_each_active_care_team_clinician(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        nina = add_clinician("nina@clinic.test", "Nina Clinician", clinic.team_north_id)
        add_clinician("ola@clinic.test", "Ola Gone", clinic.team_north_id, active=False)
        a = clinic.patient_a.patient_id
        assert a is not None

        # Rolled back with the alert: no alert, no notification.
        today = clinic_today()
        alert = Alert(
            patient_id=a, kind="red_flag", severity="urgent", onset=today, detected_on=today,
            explanation="x",
        )  # fmt: skip
        db.session.add(alert)
        db.session.flush()
        notifications.queue_for_alerts(db.session, [alert.id])
        assert [t for t, _ in pending_tasks(db.session)] == [notifications.DELIVER_TASK] * 2
        db.session.rollback()
        assert rows() == []

        alert_id = make_alert(a)
        written = rows(alert_id=alert_id)
        assert sorted(r.recipient_user_id for r in written) == sorted(
            [clinic.clinician.user_id, nina]
        )
        assert all(r.purpose == "alert" and r.urgent for r in written)
        assert all(r.dedup_key == f"alert:{alert_id}" for r in written)
        assert all(r.status is NotificationStatus.PENDING and r.attempts == 0 for r in written)
        # Queued again (a redelivered evaluation): nothing new.
        assert notifications.queue_for_alerts(db.session, [alert_id]) == []
        db.session.commit()
        assert len(rows(alert_id=alert_id)) == 2


def test_the_evaluation_writes_notifications_in_its_transaction(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        b = clinic.patient_b.patient_id
        assert b is not None
        today = clinic_today()
        add_logs(b, today - dt.timedelta(days=9), [1] * 10, red_flag_days=[9])
        result = evaluation.evaluate_and_commit(db.session, [b], today)
        assert result.opened
        written = rows()
        assert {r.alert_id for r in written} == set(result.opened)
        assert {r.recipient_user_id for r in written} == {clinic.clinician.user_id}
        assert all(r.urgent and r.purpose == "alert" for r in written)


def test_next_digest_time_is_the_next_digest_hour_in_clinic_time() -> None:
    utc = dt.UTC
    paris = "Europe/Paris"
    at = notifications.next_digest_time
    # 06:00 in Paris (winter, UTC+1): today at 07:00 Paris = 06:00 UTC.
    assert at(dt.datetime(2026, 1, 15, 5, 0, tzinfo=utc), 7, paris) == dt.datetime(
        2026, 1, 15, 6, 0, tzinfo=utc
    )
    # 07:00 exactly and later: tomorrow.
    assert at(dt.datetime(2026, 1, 15, 6, 0, tzinfo=utc), 7, paris) == dt.datetime(
        2026, 1, 16, 6, 0, tzinfo=utc
    )
    # Across the spring change of time: 07:00 Paris is 05:00 UTC in summer.
    assert at(dt.datetime(2026, 3, 28, 22, 0, tzinfo=utc), 7, paris) == dt.datetime(
        2026, 3, 29, 5, 0, tzinfo=utc
    )


def test_routine_alerts_wait_for_the_digest_urgent_ones_never_do(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        settings = app.config["REHAB_SETTINGS"]
        cara = db.session.get(User, clinic.clinician.user_id)
        assert cara is not None
        cara.notify_mode = NotifyMode.DIGEST
        db.session.commit()
        a = clinic.patient_a.patient_id
        assert a is not None
        before = utcnow()
        routine = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        urgent = make_alert(a)
        (waiting,) = rows(alert_id=routine)
        (at_once,) = rows(alert_id=urgent)
        expected = notifications.next_digest_time(
            before, settings.digest_hour, settings.clinic_timezone
        )
        assert waiting.purpose == "alert_digest" and not waiting.urgent
        assert waiting.deliver_after == expected == waiting.next_attempt_at
        assert at_once.purpose == "alert" and at_once.deliver_after <= utcnow()


def test_an_escalated_alert_goes_out_again_at_once(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        cara = db.session.get(User, clinic.clinician.user_id)
        assert cara is not None
        cara.notify_mode = NotifyMode.DIGEST
        db.session.commit()
        a = clinic.patient_a.patient_id
        assert a is not None
        alert_id = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        notifications.queue_for_alerts(db.session, [alert_id], escalation=True)
        db.session.commit()
        digest, escalated = rows(alert_id=alert_id)
        assert (digest.purpose, digest.dedup_key) == ("alert_digest", f"alert:{alert_id}")
        assert (escalated.purpose, escalated.urgent) == ("alert", True)
        assert escalated.dedup_key == f"alert:{alert_id}:escalated"
        assert escalated.deliver_after <= utcnow()


# --- delivering ---------------------------------------------------------------------------


def test_an_alert_email_is_written_to_the_outbox_once_with_no_personal_subject(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        today = clinic_today()
        add_logs(a, today - dt.timedelta(days=20), [1] * 18 + [7, 7, 7])
        alert_id = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        (row,) = rows(alert_id=alert_id)
        assert notifications.deliver(db.session, row.id).status == "sent"
        assert notifications.deliver(db.session, row.id).status == "skipped"  # task ran twice
        (sent,) = rows(alert_id=alert_id)
        assert sent.status is NotificationStatus.SENT and sent.attempts == 1
        assert sent.message_id and sent.sent_at is not None

        (message,) = outbox_messages(app)
        assert message["Message-ID"] == sent.message_id
        assert message["To"] == clinic.clinician.email
        assert message["Subject"] == render.ROUTINE_SUBJECT
        assert_subject_is_impersonal(message["Subject"], a)
        assert message["X-Rehab-Notification"] == str(row.id)
        plain, html = body_text(message), body_html(message)
        link = f"{PUBLIC_URL}/clinic/patients/{a}"
        for body in (plain, html):
            assert link in body
            assert "baseline 1/10, now 7/10 (+6)" in body
            assert "slipped on marble stairs" in body
            assert "Alice" not in body and "alice@patient.test" not in body
        assert "Left leg pain 7/10" in plain
        assert f"{PUBLIC_URL}/settings/notifications" in plain
        # The chart is an inline PNG the HTML part refers to.
        images = [p for p in message.walk() if p.get_content_type() == "image/png"]
        assert len(images) == 1
        cid = str(images[0]["Content-ID"]).strip("<>")
        assert f"cid:{cid}" in html
        sends = db.session.scalars(
            sa.select(AuditEvent.patient_id).where(AuditEvent.action == "notification.send")
        ).all()
        assert sends == [a]


def test_urgent_subject_and_a_clinician_off_the_team_gets_nothing(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        alert_id = make_alert(a)
        (row,) = rows(alert_id=alert_id)
        # Removed from the team between the alert and the delivery: no patient data for them.
        db.session.execute(sa.delete(CareTeamMember))
        db.session.commit()
        assert notifications.deliver(db.session, row.id).status == "failed"
        (failed,) = rows(alert_id=alert_id)
        assert failed.last_error.startswith("not sent: recipient no longer")
        assert outbox_messages(app) == []

        b = clinic.patient_b.patient_id
        assert b is not None
        db.session.add(
            CareTeamMember(
                care_team_id=clinic.team_north_id, clinician_id=clinic.clinician.clinician_id
            )
        )
        db.session.commit()
        urgent = make_alert(b)
        (row,) = rows(alert_id=urgent)
        notifications.deliver(db.session, row.id)
        (message,) = outbox_messages(app)
        assert message["Subject"] == render.URGENT_SUBJECT
        assert message["Importance"] == "high"


def test_transient_failures_back_off_then_give_up_and_permanent_ones_fail_at_once(
    app: Flask, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context():
        settings = app.config["REHAB_SETTINGS"]
        monkeypatch.setattr(settings, "notify_max_attempts", 2)
        a = clinic.patient_a.patient_id
        assert a is not None
        (row,) = rows(alert_id=make_alert(a))
        busy = FailingTransport(TransientError("451 4.3.0 Try again later"))
        start = utcnow()
        outcome = notifications.deliver(db.session, row.id, busy)
        assert outcome.status == "retry" and outcome.retry_in is not None
        base = settings.notify_backoff_seconds
        assert base / 2 <= outcome.retry_in <= base
        (waiting,) = rows(id=row.id)
        assert waiting.status is NotificationStatus.PENDING and waiting.attempts == 1
        assert waiting.last_error == "451 4.3.0 Try again later"
        assert waiting.next_attempt_at >= start + dt.timedelta(seconds=base / 2)
        # Not due yet: a task arriving early does nothing.
        assert notifications.deliver(db.session, row.id, busy).status == "skipped"
        assert busy.calls == 1
        # Due: the second attempt is the last one allowed.
        later = utcnow() + dt.timedelta(seconds=base + 1)
        assert notifications.deliver(db.session, row.id, busy, now=later).status == "failed"
        (failed,) = rows(id=row.id)
        assert failed.status is NotificationStatus.FAILED and failed.attempts == 2
        assert failed.last_error == "gave up after 2 attempts: 451 4.3.0 Try again later"

        (row,) = rows(alert_id=make_alert(a, detected_on=clinic_today() - dt.timedelta(days=1)))
        refused = FailingTransport(PermanentError("550 5.1.1 <address> mailbox unavailable"))
        assert notifications.deliver(db.session, row.id, refused).status == "failed"
        (failed,) = rows(id=row.id)
        assert failed.attempts == 1 and failed.last_error.startswith("550 5.1.1")


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(app: Flask) -> None:
    import random

    settings = app.config["REHAB_SETTINGS"]
    rng = random.Random(4)
    base, cap = settings.notify_backoff_seconds, settings.notify_backoff_max_seconds
    for attempt in range(1, 12):
        step = min(cap, base * 2 ** (attempt - 1))
        delays = {notifications.backoff_seconds(attempt, settings, rng) for _ in range(20)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jittered


@BOTH
def test_the_resender_takes_back_stuck_claims_and_resends_lost_tasks(
    app: Flask, clinic: Clinic, caplog: pytest.LogCaptureFixture
) -> None:
    with app.app_context():
        settings = app.config["REHAB_SETTINGS"]
        a = clinic.patient_a.patient_id
        assert a is not None
        days = [clinic_today() - dt.timedelta(days=n) for n in range(3)]
        stuck, lost, fresh = (rows(alert_id=make_alert(a, detected_on=d))[0].id for d in days)
        # A worker claimed `stuck` and died before sending.
        claimed = notifications.claim(db.session, stuck)
        assert claimed is not None and claimed.attempts == 1
        assert notifications.claim(db.session, stuck) is None  # nobody else can take it
        now = utcnow()
        db.session.execute(
            sa.update(Notification)
            .where(Notification.id == lost)
            .values(next_attempt_at=now - dt.timedelta(minutes=5))
        )
        db.session.commit()

        # Within the claim timeout the claim stands; `lost` is overdue, `fresh` is not yet.
        plan = notifications.resend_due(db.session)
        assert plan.notification_ids == [lost] and plan.reclaimed == []

        later = now + dt.timedelta(seconds=settings.notify_claim_timeout_seconds + 1)
        with caplog.at_level(logging.WARNING, logger="rehab.services.notifications"):
            plan = notifications.resend_due(db.session, now=later)
        assert plan.reclaimed == [stuck]
        assert plan.notification_ids == sorted([stuck, lost, fresh])
        (row,) = rows(id=stuck)
        assert row.status is NotificationStatus.PENDING
        (record,) = [r for r in caplog.records if "may duplicate" in r.getMessage()]
        assert f"notification {stuck} " in record.getMessage()
        assert "@" not in record.getMessage() and "Alice" not in record.getMessage()

        assert notifications.deliver(db.session, stuck, now=later).status == "sent"
        (row,) = rows(id=stuck)
        assert row.attempts == 2 and row.message_id == claimed.message_id


@BOTH
def test_a_digest_sends_all_due_routine_alerts_in_one_message(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        cara = db.session.get(User, clinic.clinician.user_id)
        assert cara is not None
        cara.notify_mode = NotifyMode.DIGEST
        db.session.commit()
        a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
        assert a is not None and b is not None
        first = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        second = make_alert(b, severity="routine", kind="adherence_drop", metric="adherence")
        user_id = clinic.clinician.user_id
        # Before the digest hour nothing is due.
        assert notifications.resend_due(db.session).digest_recipients == []
        assert notifications.deliver_digest(db.session, user_id).status == "skipped"

        digest_time = rows(alert_id=first)[0].deliver_after
        after = digest_time + dt.timedelta(seconds=1)
        assert notifications.resend_due(db.session, now=after).digest_recipients == [user_id]
        assert notifications.deliver_digest(db.session, user_id, now=after).status == "sent"
        assert notifications.deliver_digest(db.session, user_id, now=after).status == "skipped"
        sent = rows(recipient_user_id=user_id)
        assert {r.alert_id for r in sent} == {first, second}
        assert {r.status for r in sent} == {NotificationStatus.SENT}
        assert len({r.message_id for r in sent}) == 1

        (message,) = outbox_messages(app)
        assert message["Subject"] == "[rehab] Daily summary: 2 new alerts on your caseload"
        assert message["Message-ID"] == sent[0].message_id
        plain = body_text(message)
        assert f"/clinic/patients/{a}" in plain and f"/clinic/patients/{b}" in plain
        assert "Pain regression: leg pain" in plain and "Drop in adherence" in plain


def test_switching_to_immediate_sends_what_waits_for_the_digest(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
    login(client, clinic.clinician.email)
    page = client.get("/settings/notifications")
    assert page.status_code == 200
    assert 'value="immediate" checked' in text(page) or "checked" in text(page)
    token = csrf_token(client, "/settings/notifications")
    response = client.post(
        "/settings/notifications", data={"csrf_token": token, "notify_mode": "digest"}
    )
    assert response.status_code == 303
    with app.app_context():
        user = db.session.get(User, clinic.clinician.user_id)
        assert user is not None and user.notify_mode is NotifyMode.DIGEST
        alert_id = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        (row,) = rows(alert_id=alert_id)
        assert row.purpose == "alert_digest" and row.deliver_after > utcnow()
    response = client.post(
        "/settings/notifications", data={"csrf_token": token, "notify_mode": "immediate"}
    )
    assert response.status_code == 303
    with app.app_context():
        (row,) = rows(alert_id=alert_id)
        assert row.deliver_after <= utcnow()
        plan = notifications.resend_due(db.session)
        assert plan.digest_recipients == [clinic.clinician.user_id]
        actions = db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.action == "account.notify_mode")
        ).all()
        assert len(actions) == 2
    bad = client.post("/settings/notifications", data={"csrf_token": token, "notify_mode": "x"})
    assert bad.status_code == 422


def test_the_settings_page_is_for_clinicians_only(client: FlaskClient, clinic: Clinic) -> None:
    anonymous = client.get("/settings/notifications")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    login(client, clinic.patient_a.email)
    assert client.get("/settings/notifications").status_code == 404


# --- reminders and unsubscribe ------------------------------------------------------------


def set_opt_in(user_id: int, value: bool) -> None:
    user = db.session.get(User, user_id)
    assert user is not None
    user.reminder_opt_in = value
    db.session.commit()


def reminder_audit(notification_id: int) -> list[tuple[str, int | None]]:
    found = db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.patient_id)
        .where(AuditEvent.target == f"notification:{notification_id}")
        .order_by(AuditEvent.id)
    )
    return [(action, patient_id) for action, patient_id in found]


@BOTH
def test_reminders_honour_opt_in_the_gap_and_unsubscribe(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        days = app.config["REHAB_SETTINGS"].reminder_after_days
        today = clinic_today()
        a, b, c = (p.patient_id for p in (clinic.patient_a, clinic.patient_b, clinic.patient_c))
        assert a is not None and b is not None and c is not None
        add_logs(a, today - dt.timedelta(days=20), [1] * (21 - days))  # last log `days` ago
        add_logs(c, today - dt.timedelta(days=20), [1] * 20)  # logged yesterday
        set_opt_in(clinic.patient_a.user_id, True)
        set_opt_in(clinic.patient_c.user_id, True)
        # b never logged but did not opt in; c logged yesterday.
        queued = notifications.queue_reminders(db.session, today)
        db.session.commit()
        (row,) = rows(purpose="reminder")
        assert queued == [row.id] and row.recipient_user_id == clinic.patient_a.user_id
        assert row.dedup_key == f"reminder:{today.isoformat()}"
        # Reading her logs to decide, and writing her reminder, is audited against her.
        assert reminder_audit(row.id) == [("reminder.queue", a)]
        # Once per gap: the next days' runs add nothing.
        for later in (today, today + dt.timedelta(days=1)):
            assert notifications.queue_reminders(db.session, later) == []
            db.session.commit()

        assert notifications.deliver(db.session, row.id).status == "sent"
        assert reminder_audit(row.id) == [("reminder.queue", a), ("notification.send", a)]
        (message,) = outbox_messages(app)
        assert message["Subject"] == render.REMINDER_SUBJECT
        assert message["To"] == clinic.patient_a.email
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        match = re.fullmatch(r"<(.+)>", str(message["List-Unsubscribe"]))
        assert match is not None
        url = match.group(1)
        assert url.startswith(f"{PUBLIC_URL}/unsubscribe/") and url in body_text(message)
        assert f"{days} days ago" in body_text(message)

    # The admin's pages show her address as the reminder's recipient: audited against her.
    login(client, clinic.admin.email)
    for page, action in (("/admin/notifications", "notification.admin_list"),
                         ("/admin/outbox", "outbox.list")):  # fmt: skip
        response = client.get(page)
        assert response.status_code == 200 and clinic.patient_a.email in visible_text(response)
        with app.app_context():
            (row,) = db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.action == action)
            ).all()
            assert (row.patient_id, row.user_id) == (a, clinic.admin.user_id), page
    client.post("/logout", data={"csrf_token": csrf_token(client, "/admin/")})

    path = url.removeprefix(PUBLIC_URL)
    # A mail client's one-click POST (no session, no CSRF token).
    response = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 204
    with app.app_context():
        user = db.session.get(User, clinic.patient_a.user_id)
        assert user is not None and not user.reminder_opt_in
        # Days later: c (still opted in, no log since) gets one; a, unsubscribed, does not.
        far = today + dt.timedelta(days=3 * days)
        queued = notifications.queue_reminders(db.session, far, now=utcnow() + (far - today))
        db.session.commit()
        assert [r.recipient_user_id for r in rows(purpose="reminder") if r.id in queued] == [
            clinic.patient_c.user_id
        ]


def test_unsubscribe_asks_first_and_needs_a_valid_token(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    from rehab.notifications.tokens import make_token

    with app.app_context():
        set_opt_in(clinic.patient_b.user_id, True)
        today = clinic_today()
        notifications.queue_reminders(db.session, today)
        db.session.commit()
        assert len(rows(purpose="reminder")) == 1
    token = make_token(SECRET, clinic.patient_b.user_id)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "Stop reminder e-mails?" in visible_text(page)
    with app.app_context():
        user = db.session.get(User, clinic.patient_b.user_id)
        assert user is not None and user.reminder_opt_in  # GET changed nothing
    assert client.post(f"/unsubscribe/{token}", data={}).status_code == 400  # no CSRF token
    forged = make_token("another secret" * 3, clinic.patient_b.user_id)
    assert client.get(f"/unsubscribe/{forged}").status_code == 404
    assert client.get("/unsubscribe/nonsense").status_code == 404

    done = client.post(
        f"/unsubscribe/{token}", data={"csrf_token": csrf_token(client, f"/unsubscribe/{token}")}
    )
    assert done.status_code == 200 and "Reminders stopped" in visible_text(done)
    with app.app_context():
        user = db.session.get(User, clinic.patient_b.user_id)
        assert user is not None and not user.reminder_opt_in
        assert rows(purpose="reminder") == []  # the pending reminder is dropped
        audit = db.session.scalars(
            sa.select(AuditEvent.user_id).where(
                AuditEvent.action == "account.reminders.unsubscribe"
            )
        ).all()
        assert audit == [clinic.patient_b.user_id]


# --- failures on the pages, and the outbox viewer -------------------------------------------


def test_a_failed_alert_email_shows_on_the_inbox_and_the_admin_page(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        alert_id = make_alert(a)
        (row,) = rows(alert_id=alert_id)
        row_id = row.id
        refused = FailingTransport(PermanentError("550 5.1.1 <address> mailbox unavailable"))
        notifications.deliver(db.session, row_id, refused)

    login(client, clinic.clinician.email)
    inbox = visible_text(client.get("/clinic/alerts/"))
    assert "E-mails that could not be delivered to you" in inbox
    assert "550 5.1.1 <address> mailbox unavailable" in inbox
    assert f"patient record #{a}" in inbox
    client.post("/logout", data={"csrf_token": csrf_token(client, "/clinic/alerts/")})

    login(client, clinic.other_clinician.email)
    assert "could not be delivered" not in visible_text(client.get("/clinic/alerts/"))
    client.post("/logout", data={"csrf_token": csrf_token(client, "/clinic/alerts/")})

    login(client, clinic.admin.email)
    page = client.get("/admin/notifications")
    assert page.status_code == 200
    html = visible_text(page)
    assert "failed: 1" in html and "550 5.1.1" in html and clinic.clinician.email in html
    token = csrf_token(client, "/admin/notifications")
    retried = client.post(f"/admin/notifications/{row_id}/retry", data={"csrf_token": token})
    assert retried.status_code == 303
    with app.app_context():
        (again,) = rows(id=row_id)
        assert again.status is NotificationStatus.PENDING and again.attempts == 0
    assert (
        client.post(f"/admin/notifications/{row_id}/retry", data={"csrf_token": token}).status_code
        == 404
    )  # no longer failed


def test_the_admin_outbox_lists_and_shows_the_written_messages(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        add_logs(a, clinic_today() - dt.timedelta(days=10), [1] * 8 + [7, 7, 7])
        (row,) = rows(alert_id=make_alert(a))
        notifications.deliver(db.session, row.id)
        (name,) = (p.name for p in notifications.outbox_dir().glob("*.eml"))

    login(client, clinic.clinician.email)
    assert client.get("/admin/outbox").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_token(client, "/clinic/alerts/")})

    login(client, clinic.admin.email, PASSWORD)
    listing = client.get("/admin/outbox")
    assert listing.status_code == 200
    assert render.URGENT_SUBJECT in visible_text(listing) and name in text(listing)
    message = client.get(f"/admin/outbox/{name}")
    assert message.status_code == 200
    assert f"{PUBLIC_URL}/clinic/patients/{a}" in visible_text(message)
    html = client.get(f"/admin/outbox/{name}/html")
    assert html.status_code == 200
    assert html.headers["Content-Security-Policy"].startswith("sandbox;")
    assert 'src="data:image/png;base64,' in text(html)
    assert client.get("/admin/outbox/..%2Fsecret_key").status_code == 404
    assert client.get("/admin/outbox/20260101T000000000000Z-x.eml").status_code == 404


def test_the_pages_render_in_the_layout_without_inline_script_or_style(
    app: Flask, clinic: Clinic
) -> None:
    from rehab.notifications.tokens import make_token
    from tests.integration.test_auth import INLINE_SCRIPT, INLINE_STYLE

    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        (row,) = rows(alert_id=make_alert(a))
        notifications.deliver(db.session, row.id)
        (name,) = (p.name for p in notifications.outbox_dir().glob("*.eml"))
        (row,) = rows(alert_id=make_alert(a, detected_on=clinic_today() - dt.timedelta(days=1)))
        notifications.deliver(db.session, row.id, FailingTransport(PermanentError("550 no")))
    pages = {
        clinic.clinician.email: ["/settings/notifications", "/clinic/alerts/"],
        clinic.admin.email: ["/admin/notifications", "/admin/outbox", f"/admin/outbox/{name}"],
        None: [f"/unsubscribe/{make_token(SECRET, clinic.patient_a.user_id)}"],
    }
    for email, urls in pages.items():
        client = app.test_client()
        if email is not None:
            login(client, email)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            html = text(response)
            assert '<meta name="viewport"' in html and 'href="#main"' in html, url
            assert not INLINE_SCRIPT.search(html) and not INLINE_STYLE.search(html), url
