"""The clinic's policy settings, changed by an administrator in the app (`/admin/settings`):
kept with their history and audited; a bad value refused with the setting named and nothing
stored; and every part of the platform that reads one follows the change (detection, the
urgent follow-up, the ODI/PSFS schedule, the digest hour, the patients' reminders)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from config import load_settings
from rehab.db.models import (
    Alert,
    AlertStatus,
    AuditEvent,
    ClinicSettingChange,
    Notification,
    User,
    utcnow,
)
from rehab.domain.vocabulary import NotifyMode
from rehab.extensions import db
from rehab.services import accounts, clinic_policy, evaluation, notifications
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.services.time import clinic_time, clinic_today
from tests.integration.test_alert_follow_up import follow_up, told
from tests.integration.test_notifications_outbox import make_alert
from tests.support.clinic import Clinic, login
from tests.support.history import add_logs
from tests.support.pages import get_form, text, visible_text

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
DEFAULTS = load_settings(mode="testing").clinic_policy()


def admin_client(app: Flask, clinic: Clinic) -> FlaskClient:
    client = app.test_client()
    login(client, clinic.admin.email)
    return client


def save(client: FlaskClient, **values: str) -> tuple[int, str]:
    data = get_form(client, "/admin/settings", "/admin/settings")
    data.update(values)
    response = client.post("/admin/settings", data=data, follow_redirects=True)
    return response.status_code, visible_text(response)


def change_rows(app: Flask) -> list[tuple[str, int | None, int]]:
    with app.app_context():
        found = db.session.execute(
            sa.select(
                ClinicSettingChange.name,
                ClinicSettingChange.value,
                ClinicSettingChange.previous_value,
            ).order_by(ClinicSettingChange.id)
        )
        return [tuple(row) for row in found]  # type: ignore[misc]


def policy(app: Flask) -> clinic_policy.ClinicPolicy:
    with app.app_context():
        return clinic_policy.current(db.session)


def as_admin(clinic: Clinic) -> Actor:
    user = db.session.get(User, clinic.admin.user_id)
    assert user is not None
    return accounts.actor_for(user)


@BOTH
def test_a_change_is_kept_with_its_history_and_audited_and_the_default_can_come_back(
    app: Flask, clinic: Clinic
) -> None:
    client = admin_client(app, clinic)
    page = client.get("/admin/settings")
    assert page.status_code == 200
    body = visible_text(page)
    assert "Missed logs" in body and "2–60 days; default 3." in body
    assert "No changes yet" in body
    shown = get_form(client, "/admin/settings", "/admin/settings")
    for name, value in DEFAULTS.model_dump().items():
        assert shown[name] == str(value), name

    status, body = save(client, missed_logs_days="5", urgent_follow_up_minutes="60")
    assert status == 200
    assert "Saved: Missed logs, Urgent alert follow-up." in body
    assert policy(app) == DEFAULTS.model_copy(
        update={"missed_logs_days": 5, "urgent_follow_up_minutes": 60}
    )
    assert change_rows(app) == [("missed_logs_days", 5, 3), ("urgent_follow_up_minutes", 60, 240)]
    with app.app_context():
        audited = db.session.execute(
            sa.select(AuditEvent.user_id, AuditEvent.target, AuditEvent.patient_id)
            .where(AuditEvent.action == "clinic_settings.change")
            .order_by(AuditEvent.id)
        ).all()
    assert [tuple(row) for row in audited] == [
        (clinic.admin.user_id, "setting:missed_logs_days", None),
        (clinic.admin.user_id, "setting:urgent_follow_up_minutes", None),
    ]
    assert "Set by Ada Admin on" in body
    history = re.sub(r"\s+", " ", body.split("Changes", 1)[1])
    assert "Ada Admin Missed logs 3 5" in history

    # Saving the same values again changes nothing.
    status, body = save(client)
    assert status == 200 and "Nothing changed." in body
    assert len(change_rows(app)) == 2

    # Back to the default: stored as "the default", so it follows the environment again.
    status, body = save(client, missed_logs_days="3")
    assert status == 200
    assert change_rows(app)[-1] == ("missed_logs_days", None, 5)
    assert policy(app).missed_logs_days == 3
    assert "5 3 (the default)" in re.sub(r"\s+", " ", body.split("Changes", 1)[1])
    form_part = body.split("Changes", 1)[0]
    assert form_part.count("Set by Ada Admin") == 1  # the follow-up only


@BOTH
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("missed_logs_days", "1", "greater than or equal to 2"),
        ("urgent_follow_up_minutes", "1441", "less than or equal to 1440"),
        ("reminder_hour", "24", "less than or equal to 23"),
        ("digest_hour", "seven", "Not a valid integer value"),
        ("outcome_interval_days", "", "This field is required"),
        ("reminder_after_days", "3.5", "Not a valid integer value"),
    ],
)
def test_a_bad_value_is_refused_with_the_setting_named_and_nothing_is_stored(
    app: Flask, clinic: Clinic, name: str, value: str, message: str
) -> None:
    client = admin_client(app, clinic)
    data = get_form(client, "/admin/settings", "/admin/settings")
    # A valid change beside the bad one is not stored either.
    data.update({"missed_logs_days": "7", name: value})
    response = client.post("/admin/settings", data=data)
    assert response.status_code == 422
    html = text(response)
    error = re.search(rf'<p class="error" id="{name}-error">([^<]*)</p>', html)
    assert error is not None and message in error.group(1), html
    assert re.search(rf'id="{name}"[^>]*aria-invalid="true"', html) or re.search(
        rf'aria-invalid="true"[^>]*id="{name}"', html
    )
    assert change_rows(app) == []
    assert policy(app) == DEFAULTS


def test_only_an_admin_may_read_or_change_the_settings(app: Flask, clinic: Clinic) -> None:
    for person in (clinic.clinician, clinic.patient_a):
        client = app.test_client()
        login(client, person.email)
        assert client.get("/admin/settings").status_code == 404
        with client.session_transaction() as flask_session:
            token = flask_session.get("csrf_token")
        response = client.post(
            "/admin/settings", data={"missed_logs_days": "9", "csrf_token": token or ""}
        )
        assert response.status_code in (400, 404)
    anonymous = app.test_client()
    assert anonymous.get("/admin/settings").status_code == 302
    with app.app_context():
        user = db.session.get(User, clinic.clinician.user_id)
        assert user is not None
        with pytest.raises(NotFound):
            clinic_policy.change(
                db.session,
                accounts.actor_for(user),
                DEFAULTS.model_copy(update={"missed_logs_days": 9}),
            )
    assert change_rows(app) == []


@BOTH
def test_detection_follows_the_missed_logs_setting(app: Flask, clinic: Clinic) -> None:
    """No log for 4 days: a missed-logs alert with the default of 3, none once the admin sets
    5, and one again when she sets 3 back. An alert raised under the old number stays open
    (she still has not logged) until the patient logs or a clinician resolves it."""

    def missed_logs(patient_id: int) -> list[AlertStatus]:
        evaluation.evaluate_and_commit(db.session, [patient_id], clinic_today())
        return list(
            db.session.scalars(
                sa.select(Alert.status)
                .where(Alert.patient_id == patient_id, Alert.kind == "missed_logs")
                .order_by(Alert.id)
            )
        )

    def set_days(days: int) -> None:
        with app.app_context():
            clinic_policy.change(
                db.session,
                as_admin(clinic),
                DEFAULTS.model_copy(update={"missed_logs_days": days}),
            )

    with app.app_context():
        b, c = clinic.patient_b.patient_id, clinic.patient_c.patient_id
        assert b is not None and c is not None
        for patient_id in (b, c):  # every day of the program but the last 4
            add_logs(patient_id, clinic.program_start, [1] * 57)
        assert missed_logs(b) == [AlertStatus.OPEN]

    set_days(5)
    with app.app_context():  # a new task: the policy is read again
        assert missed_logs(c) == []
        assert missed_logs(b) == [AlertStatus.OPEN]

    set_days(3)
    with app.app_context():
        assert missed_logs(c) == [AlertStatus.OPEN]


@BOTH
def test_the_follow_up_the_schedule_and_the_digest_hour_follow_the_settings(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        alert_id = make_alert(a)
        told(alert_id, utcnow() - dt.timedelta(minutes=45))
        # Within the default 240 minutes: not yet.
        assert follow_up(utcnow()).alert_ids == []

    client = admin_client(app, clinic)
    status, _ = save(
        client, urgent_follow_up_minutes="30", outcome_interval_days="60", digest_hour="9"
    )
    assert status == 200

    with app.app_context():
        assert follow_up(utcnow()).alert_ids == [alert_id]
        # A routine alert for a clinician on the daily digest waits for 9:00, clinic time.
        cara = db.session.get(User, clinic.clinician.user_id)
        assert cara is not None
        cara.notify_mode = NotifyMode.DIGEST
        db.session.commit()
        routine = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        (row,) = db.session.scalars(
            sa.select(Notification).where(
                Notification.alert_id == routine, Notification.recipient_user_id == cara.id
            )
        )
        due = clinic_time(row.deliver_after)
        assert (due.hour, due.minute) == (9, 0)

    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    caseload = visible_text(clinician.get("/clinic/"))
    assert "then 60 days after the last score" in caseload
    settings_page = visible_text(clinician.get("/settings/notifications"))
    assert "The daily summary is sent at 9:00" in settings_page

    # The admin's own pages say the new limit too.
    assert "30 minutes" in visible_text(client.get("/admin/alerts"))


@BOTH
def test_reminders_follow_the_settings(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        today = clinic_today()
        a = clinic.patient_a.patient_id
        assert a is not None
        add_logs(a, today - dt.timedelta(days=20), [1] * 17)  # last log 4 days ago
        user = db.session.get(User, clinic.patient_a.user_id)
        assert user is not None
        user.reminder_opt_in = True
        db.session.commit()
        clinic_policy.change(
            db.session, as_admin(clinic), DEFAULTS.model_copy(update={"reminder_after_days": 5})
        )
    with app.app_context():
        assert notifications.queue_reminders(db.session, today) == []  # 4 days < 5
        db.session.commit()
    with app.app_context():
        clinic_policy.change(
            db.session, as_admin(clinic), DEFAULTS.model_copy(update={"reminder_after_days": 4})
        )
    with app.app_context():
        assert len(notifications.queue_reminders(db.session, today)) == 1
        db.session.commit()
