"""An urgent alert nobody acknowledges in time is followed up once: e-mailed again to every
active clinician of the patient's care team (at once, digest or not) and told to the
administrators without anything about the patient; the alert's history, the inbox and the
admin page show it. Through the service and the pages, with the file transport; through a
real worker and a real SMTP server at the end."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask

from config import ConfigError, load_settings
from rehab.db.models import Alert, AlertStatus, AuditEvent, Notification, User, utcnow
from rehab.domain.vocabulary import NotifyMode
from rehab.extensions import db
from rehab.notifications import render
from rehab.services import accounts, alerts, notifications
from rehab.services.actors import Actor
from tests.integration.test_notifications_outbox import (  # noqa: F401 (the `app` fixture)
    BOTH,
    PUBLIC_URL,
    add_clinician,
    assert_subject_is_impersonal,
    body_html,
    body_text,
    make_alert,
    outbox_app,
    outbox_messages,
    rows,
)
from tests.support.clinic import Clinic, login
from tests.support.pages import visible_text

LIMIT = dt.timedelta(minutes=240)  # config/defaults.toml: urgent_follow_up_minutes


def told(alert_id: int, at: dt.datetime) -> None:
    """Date the alert and its e-mails `at` (as if they were written, and those sent were
    sent, then)."""
    db.session.execute(sa.update(Alert).where(Alert.id == alert_id).values(created_at=at))
    db.session.execute(
        sa.update(Notification)
        .where(Notification.alert_id == alert_id)
        .values(
            created_at=at,
            sent_at=sa.case((Notification.sent_at.is_(None), None), else_=at),
        )
    )
    db.session.commit()


def follow_up(now: dt.datetime) -> notifications.FollowUps:
    followed = notifications.queue_follow_ups(db.session, now=now)
    db.session.commit()
    return followed


def cara_user(clinic: Clinic) -> User:
    """The care team North's clinician (Cara), loaded."""
    user = db.session.get(User, clinic.clinician.user_id)
    assert user is not None
    return user


def clinician_actor(clinic: Clinic) -> Actor:
    return accounts.actor_for(cara_user(clinic))


def patient_of(clinic: Clinic) -> int:
    a = clinic.patient_a.patient_id
    assert a is not None
    return a


@BOTH
def test_an_urgent_alert_unacknowledged_past_the_limit_is_followed_up_once(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        a = patient_of(clinic)
        cara = cara_user(clinic)
        cara.notify_mode = NotifyMode.DIGEST  # urgent: at once all the same
        db.session.commit()
        nina = add_clinician("nina@clinic.test", "Nina Clinician", clinic.team_north_id)
        add_clinician("ola@clinic.test", "Ola Gone", clinic.team_north_id, active=False)
        t0 = utcnow() - dt.timedelta(hours=1)
        urgent = make_alert(a)
        told(urgent, t0)
        # Not followed up: routine; acknowledged; resolved; told more than a week ago.
        routine = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        told(routine, t0)
        acknowledged = make_alert(a, detected_on=t0.date() - dt.timedelta(days=1))
        told(acknowledged, t0)
        alerts.acknowledge(db.session, clinician_actor(clinic), acknowledged, "phoned her")
        resolved = make_alert(a, detected_on=t0.date() - dt.timedelta(days=2))
        told(resolved, t0)
        alerts.resolve(db.session, clinician_actor(clinic), resolved, "seen in clinic")
        old = make_alert(a, detected_on=t0.date() - dt.timedelta(days=9))
        told(old, t0 - dt.timedelta(days=8))

        assert follow_up(t0 + LIMIT - dt.timedelta(minutes=1)).alert_ids == []
        at = t0 + LIMIT + dt.timedelta(minutes=1)
        followed = follow_up(at)
        assert followed.alert_ids == [urgent]

        again = rows(alert_id=urgent, purpose=notifications.ALERT_FOLLOW_UP)
        assert sorted(r.recipient_user_id for r in again) == sorted([cara.id, nina])
        assert all(r.urgent and r.deliver_after == at for r in again)
        assert all(r.dedup_key == f"alert:{urgent}:follow_up" for r in again)
        (notice,) = rows(alert_id=urgent, purpose=notifications.FOLLOW_UP_NOTICE)
        assert notice.recipient_user_id == clinic.admin.user_id and notice.urgent
        assert sorted(followed.notification_ids) == sorted([*(r.id for r in again), notice.id])
        alert = db.session.get(Alert, urgent)
        assert alert is not None and alert.followed_up_at == at
        audited = db.session.execute(
            sa.select(AuditEvent.user_id, AuditEvent.role, AuditEvent.patient_id).where(
                AuditEvent.action == "alert.follow_up"
            )
        ).all()
        assert audited == [(None, "system", a)]
        db.session.rollback()

        # Once: a later run writes nothing more (`followed_up_at` is set by a conditional
        # UPDATE, so a run racing this one would claim nothing either).
        assert follow_up(at + dt.timedelta(hours=5)).alert_ids == []
        assert len(rows(alert_id=urgent)) == 2 + 2 + 1  # first e-mails, follow-ups, notice
        for other in (routine, acknowledged, resolved, old):
            assert rows(alert_id=other, purpose=notifications.ALERT_FOLLOW_UP) == []


@BOTH
def test_the_limit_counts_from_when_the_alert_became_urgent(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        a = patient_of(clinic)
        t0 = utcnow() - dt.timedelta(hours=2)
        alert_id = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        told(alert_id, t0 - dt.timedelta(days=2))  # open for two days as a routine alert
        db.session.execute(sa.update(Alert).where(Alert.id == alert_id).values(severity="urgent"))
        notifications.queue_for_alerts(db.session, [alert_id], escalation=True, now=t0)
        db.session.commit()
        assert follow_up(t0 + LIMIT - dt.timedelta(minutes=1)).alert_ids == []
        assert follow_up(t0 + LIMIT).alert_ids == [alert_id]


def test_the_emails_say_why_and_the_administrators_learn_nothing_of_the_patient(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        a = patient_of(clinic)
        t0 = utcnow() - LIMIT - dt.timedelta(minutes=5)
        alert_id = make_alert(a)
        for row in rows(alert_id=alert_id):  # the first e-mail went out ...
            notifications.deliver(db.session, row.id)
        told(alert_id, t0)  # ... at t0
        follow_up(utcnow())
        sent = [
            (row.purpose, notifications.deliver(db.session, row.id).status)
            for row in rows(alert_id=alert_id)
            if row.purpose != notifications.ALERT
        ]
        assert sorted(sent) == [
            (notifications.ALERT_FOLLOW_UP, "sent"),
            (notifications.FOLLOW_UP_NOTICE, "sent"),
        ]
    first, to_cara, to_ada = outbox_messages(app)
    told_text = f"on {t0.strftime('%Y-%m-%d at %H:%M')} UTC"  # the clinic's zone is UTC here

    assert (to_cara["To"], to_cara["Subject"]) == (clinic.clinician.email, render.FOLLOW_UP_SUBJECT)
    assert to_cara["Importance"] == "high"
    assert_subject_is_impersonal(to_cara["Subject"], a)
    for body in (body_text(to_cara), body_html(to_cara)):
        assert "Still unacknowledged" in body
        assert told_text in body and "within 4 hours" in body
        assert f"{PUBLIC_URL}/clinic/patients/{a}" in body  # the alert itself, as the first time
        assert "slipped on marble stairs" in body
    assert first["Subject"] == render.URGENT_SUBJECT

    assert (to_ada["To"], to_ada["Subject"]) == (
        clinic.admin.email,
        render.FOLLOW_UP_NOTICE_SUBJECT,
    )
    assert_subject_is_impersonal(to_ada["Subject"], a)
    for body in (body_text(to_ada), body_html(to_ada)):
        assert "Team North" in body and told_text in body and "within 4 hours" in body
        assert "Cara Clinician" in body  # who got it again
        assert f"Alert #{alert_id}" in body and f"{PUBLIC_URL}/admin/" in body
        for personal in ("Alice", "alice@patient.test", "/clinic/patients", "marble", "Red flag"):
            assert personal not in body


NOT_SENT = "not sent: acknowledged, resolved or no longer urgent before it went out"


@pytest.mark.parametrize("meanwhile", ["acknowledged", "no longer urgent"])
def test_a_follow_up_whose_alert_was_settled_meanwhile_is_not_sent(
    app: Flask, clinic: Clinic, meanwhile: str
) -> None:
    """Acknowledged by a colleague, or made routine again (the fall it rested on was entered
    in error), between the follow-up's writing and its sending: neither e-mail goes, and
    nobody is told her e-mail failed."""
    with app.app_context():
        a = patient_of(clinic)
        nina = add_clinician("nina@clinic.test", "Nina Clinician", clinic.team_north_id)
        alert_id = make_alert(a)
        told(alert_id, utcnow() - LIMIT - dt.timedelta(minutes=1))
        follow_up(utcnow())
        if meanwhile == "acknowledged":
            alerts.acknowledge(db.session, clinician_actor(clinic), alert_id, "phoned her")
        else:
            db.session.execute(
                sa.update(Alert).where(Alert.id == alert_id).values(severity="routine")
            )
            db.session.commit()
        waiting = [r for r in rows(alert_id=alert_id) if r.purpose != notifications.ALERT]
        assert len(waiting) == 3  # Cara, Nina, Ada
        for row in waiting:
            assert notifications.deliver(db.session, row.id).status == "failed"
        settled = [r for r in rows(alert_id=alert_id) if r.purpose != notifications.ALERT]
        assert {r.last_error for r in settled} == {NOT_SENT}
        nina_user = db.session.get(User, nina)
        assert nina_user is not None
        assert notifications.failed_for_clinician(db.session, accounts.actor_for(nina_user)) == []
        db.session.rollback()
    assert outbox_messages(app) == []
    client = app.test_client()
    login(client, "nina@clinic.test")
    assert "could not be delivered" not in visible_text(client.get("/clinic/alerts/"))
    # Nothing for the admin to mend or send again either.
    admin = app.test_client()
    login(admin, clinic.admin.email)
    delivery = visible_text(admin.get("/admin/notifications"))
    assert "failed: 0" in delivery and "not sent: 3" in delivery
    assert "No failed notifications." in delivery


def test_a_team_without_an_active_clinician_is_told_to_the_administrators(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        a = patient_of(clinic)
        cara = cara_user(clinic)
        cara.is_active = False
        db.session.commit()
        alert_id = make_alert(a)  # nobody to e-mail: no row
        assert rows(alert_id=alert_id) == []
        told(alert_id, utcnow() - LIMIT - dt.timedelta(minutes=1))
        assert follow_up(utcnow()).alert_ids == [alert_id]
        (notice,) = rows(alert_id=alert_id)
        assert notifications.deliver(db.session, notice.id).status == "sent"
    (message,) = outbox_messages(app)
    assert "The team has no active clinician: nobody could be told." in body_text(message)
    assert "give the team a clinician" in body_text(message)


def test_the_inbox_and_the_admin_page_show_the_follow_up(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        a = patient_of(clinic)
        alert_id = make_alert(a)
        told(alert_id, utcnow() - LIMIT - dt.timedelta(minutes=1))
        follow_up(utcnow())
    clinician, admin = app.test_client(), app.test_client()
    login(clinician, clinic.clinician.email)
    login(admin, clinic.admin.email)

    inbox = visible_text(clinician.get("/clinic/alerts/"))
    assert "Followed up on " in inbox
    assert "(not acknowledged in time: e-mailed again to the care team" in inbox
    page = visible_text(admin.get("/admin/"))
    start = page.index("Urgent alerts not acknowledged")
    waiting = page[start : page.index("Users", start)]
    assert "Team North — 1 urgent alert, the oldest told to the team on" in waiting
    assert "within 4 hours" in waiting and "Alice" not in waiting

    with app.app_context():
        alerts.acknowledge(db.session, clinician_actor(clinic), alert_id, "phoned her")
    page = visible_text(admin.get("/admin/"))
    assert "Urgent alerts not acknowledged" not in page
    inbox = visible_text(clinician.get("/clinic/alerts/"))
    assert "Followed up on " in inbox and "Acknowledged by Cara Clinician" in inbox


@pytest.mark.parametrize("minutes", ["14", "1441"])
def test_the_limit_must_be_between_a_quarter_hour_and_a_day(
    monkeypatch: pytest.MonkeyPatch, minutes: str
) -> None:
    monkeypatch.setenv("REHAB_URGENT_FOLLOW_UP_MINUTES", minutes)
    with pytest.raises(ConfigError, match="REHAB_URGENT_FOLLOW_UP_MINUTES"):
        load_settings()


def test_an_open_alert_stays_open_when_followed_up(app: Flask, clinic: Clinic) -> None:
    """The follow-up changes who is told, never the alert's state."""
    with app.app_context():
        alert_id = make_alert(patient_of(clinic))
        told(alert_id, utcnow() - LIMIT - dt.timedelta(minutes=1))
        follow_up(utcnow())
        alert = db.session.get(Alert, alert_id)
        assert alert is not None and alert.status is AlertStatus.OPEN
        assert alert.acknowledged_at is None
