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
    Program,
    User,
    utcnow,
)
from rehab.domain.vocabulary import NotifyMode
from rehab.extensions import db
from rehab.services import accounts, clinic_policy, evaluation, notifications
from rehab.services.access import NotFound
from rehab.services.alerts import AUTO_LOGGING_RESUMED, AUTO_PROGRAM_ENDED
from rehab.services.time import clinic_time, clinic_today
from tests.integration.test_alert_follow_up import follow_up, told
from tests.integration.test_notifications_outbox import make_alert
from tests.support.clinic import Clinic, csrf_token, login
from tests.support.history import add_logs
from tests.support.pages import get_form, text, visible_text

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
DEFAULTS = load_settings(mode="testing").clinic_policy()


def admin_client(app: Flask, clinic: Clinic) -> FlaskClient:
    client = app.test_client()
    login(client, clinic.admin.email)
    return client


def save(client: FlaskClient, **values: str) -> tuple[int, str]:
    """Open the page, change `values`, save: the answer's status and the page it leads to."""
    data = get_form(client, "/admin/settings", "/admin/settings")
    data.update(values)
    response = client.post("/admin/settings", data=data)
    if response.status_code != 303:
        return response.status_code, visible_text(response)
    return 303, visible_text(client.get(response.headers["Location"]))


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


def set_policy(app: Flask, clinic: Clinic, **values: int) -> None:
    """The admin changes these settings (the service, as the page does), in a request or
    task of its own."""
    with app.app_context():
        user = db.session.get(User, clinic.admin.user_id)
        assert user is not None
        wanted = clinic_policy.current(db.session).model_copy(update=values)
        version = clinic_policy.version(db.session)
        clinic_policy.change(db.session, accounts.actor_for(user), wanted, version)


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
    assert status == 303
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
    assert status == 303 and "Nothing changed." in body
    assert len(change_rows(app)) == 2

    # Back to the default: stored as "the default", so it follows the environment again.
    status, body = save(client, missed_logs_days="3")
    assert status == 303
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
    for person, home in ((clinic.clinician, "/clinic/"), (clinic.patient_a, "/me/")):
        client = app.test_client()
        login(client, person.email)
        assert client.get("/admin/settings").status_code == 404
        token = csrf_token(client, home)  # a valid token: the 404 is about the role
        response = client.post(
            "/admin/settings", data={"missed_logs_days": "9", "version": "0", "csrf_token": token}
        )
        assert response.status_code == 404
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
                0,
            )
    assert change_rows(app) == []


def missed_logs(
    patient_id: int, on: dt.date | None = None
) -> list[tuple[int, AlertStatus, dt.date, str]]:
    """Evaluate the patient as of `on` (a worker's task), then her missed-logs alerts: id,
    status, the gap's first day, the resolution note."""
    evaluation.evaluate_and_commit(db.session, [patient_id], on or clinic_today())
    found = db.session.execute(
        sa.select(Alert.id, Alert.status, Alert.onset, Alert.resolve_note)
        .where(Alert.patient_id == patient_id, Alert.kind == "missed_logs")
        .order_by(Alert.id)
    )
    return [(i, status, onset, note) for i, status, onset, note in found]


def notification_count() -> int:
    return int(db.session.scalar(sa.select(sa.func.count(Notification.id))) or 0)


@BOTH
def test_a_gap_is_one_alert_whatever_the_missed_logs_setting(app: Flask, clinic: Clinic) -> None:
    """A change of the number of days does not alert a gap twice: an open gap's alert stays
    the same alert (nobody told again) as the gap reaches the new number, a past gap is not
    stored again, and an open alert whose gap no longer counts is resolved once she logs."""
    today = clinic_today()
    with app.app_context():
        b, c = clinic.patient_b.patient_id, clinic.patient_c.patient_id
        assert b is not None and c is not None
        # b: every day of her program but the last 4. c: a 6-day gap ending 20 days ago, and
        # nothing for the last 6 days.
        add_logs(b, clinic.program_start, [1] * 57)
        before_gap = today - dt.timedelta(days=27)
        add_logs(c, clinic.program_start, [1] * ((before_gap - clinic.program_start).days + 1))
        add_logs(c, today - dt.timedelta(days=20), [1] * 15)  # up to 6 days ago
        [(b_alert, status, b_onset, _)] = missed_logs(b)
        assert status is AlertStatus.OPEN and b_onset == today - dt.timedelta(days=3)
        c_before = missed_logs(c)
        assert [(s, onset) for _, s, onset, _ in c_before] == [
            (AlertStatus.RESOLVED, today - dt.timedelta(days=26)),
            (AlertStatus.OPEN, today - dt.timedelta(days=5)),
        ]
        told = notification_count()

    for days in (5, 2, 8, 3):
        set_policy(app, clinic, missed_logs_days=days)
        with app.app_context():
            assert missed_logs(c) == c_before, days  # the same two alerts, as they were
            assert [(i, s) for i, s, _, _ in missed_logs(b)] == [(b_alert, AlertStatus.OPEN)]
            assert notification_count() == told, days

    set_policy(app, clinic, missed_logs_days=5)
    with app.app_context():
        # Two days on, b's gap (6 days) reaches 5: still the one alert, nobody told again.
        later = today + dt.timedelta(days=2)
        assert [(i, s) for i, s, _, _ in missed_logs(b, later)] == [(b_alert, AlertStatus.OPEN)]
        assert notification_count() == told
        # She logs today instead, 4 days after her last log (under 5: a replay no longer
        # shows that gap at all): her alert is resolved, logging resumed.
        add_logs(b, today, [1])
        [(alert_id, status, _, note)] = missed_logs(b)
        assert (alert_id, status, note) == (b_alert, AlertStatus.RESOLVED, AUTO_LOGGING_RESUMED)
        assert db.session.get(Alert, b_alert).resolved_on == today  # type: ignore[union-attr]


@BOTH
def test_a_gap_too_short_for_a_raised_setting_closes_with_her_program(
    app: Flask, clinic: Clinic
) -> None:
    """An open 4-day gap, the number raised to 7, then she is discharged: the gap is over (the
    program no longer asks for logs), and its alert is resolved the day after the program."""
    today = clinic_today()
    with app.app_context():
        b = clinic.patient_b.patient_id
        assert b is not None
        add_logs(b, clinic.program_start, [1] * 57)
        [(alert_id, status, _, _)] = missed_logs(b)
        assert status is AlertStatus.OPEN
    set_policy(app, clinic, missed_logs_days=7)
    with app.app_context():
        assert [(i, s) for i, s, _, _ in missed_logs(b)] == [(alert_id, AlertStatus.OPEN)]
        (program,) = db.session.scalars(sa.select(Program).where(Program.patient_id == b))
        program.end_date = today - dt.timedelta(days=1)
        db.session.commit()
        assert missed_logs(b) == [
            (alert_id, AlertStatus.RESOLVED, today - dt.timedelta(days=3), AUTO_PROGRAM_ENDED)
        ]
        assert db.session.get(Alert, alert_id).resolved_on == today  # type: ignore[union-attr]


@BOTH
@pytest.mark.parametrize(
    ("before", "last_log", "late_log", "after"),
    [
        # A late log on the gap's first day; 3 days detects the shorter gap on the same day
        # as 4 did the longer: the database knows an alert by that day.
        (4, 8, 7, 3),
        # A late log in the middle of the gap; at 2 days its earlier, now short part (over)
        # must not take the open alert its later part names by its very day detected.
        (5, 11, 8, 2),
    ],
)
def test_a_late_log_in_a_gap_and_a_new_setting_keep_the_gaps_open_alert(
    app: Flask, clinic: Clinic, before: int, last_log: int, late_log: int, after: int
) -> None:
    """A gap alerted, a log added late inside it, then another number of days: the gap that
    goes on keeps its one open alert, nothing is dropped, and nobody is told again."""
    today = clinic_today()
    set_policy(app, clinic, missed_logs_days=before)
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        last = today - dt.timedelta(days=last_log)
        add_logs(a, clinic.program_start, [1] * ((last - clinic.program_start).days + 1))
        [(alert_id, status, onset, _)] = missed_logs(a)
        assert status is AlertStatus.OPEN and onset == last + dt.timedelta(days=1)
        told = notification_count()
        add_logs(a, today - dt.timedelta(days=late_log), [1])
    set_policy(app, clinic, missed_logs_days=after)
    with app.app_context():
        assert [(i, s) for i, s, _, _ in missed_logs(a)] == [(alert_id, AlertStatus.OPEN)]
        assert notification_count() == told


@BOTH
def test_a_page_opened_before_another_admins_change_saves_nothing(
    app: Flask, clinic: Clinic
) -> None:
    first = admin_client(app, clinic)
    stale = get_form(first, "/admin/settings", "/admin/settings")
    second = admin_client(app, clinic)
    status, _ = save(second, missed_logs_days="7")
    assert status == 303
    stale.update(digest_hour="9")  # she changes only the digest hour, on the older page
    response = first.post("/admin/settings", data=stale)
    assert response.status_code == 409
    body = visible_text(response)
    assert "Another administrator changed the settings" in body
    fresh = get_form(first, "/admin/settings", "/admin/settings")
    assert fresh["missed_logs_days"] == "7" and fresh["digest_hour"] == str(DEFAULTS.digest_hour)
    assert change_rows(app) == [("missed_logs_days", 7, 3)]
    assert policy(app).missed_logs_days == 7
    # Made again on the page as it is now, it saves.
    status, _ = save(first, digest_hour="9")
    assert status == 303
    assert policy(app).model_dump() == {
        **DEFAULTS.model_dump(),
        "missed_logs_days": 7,
        "digest_hour": 9,
    }


@BOTH
def test_the_follow_up_the_schedule_and_the_digest_hour_follow_the_settings(
    app: Flask, clinic: Clinic
) -> None:
    def digest_due(alert_id: int, user_id: int) -> tuple[int, int]:
        (row,) = db.session.scalars(
            sa.select(Notification).where(
                Notification.alert_id == alert_id, Notification.recipient_user_id == user_id
            )
        )
        assert row.deliver_after == row.next_attempt_at
        due = clinic_time(row.deliver_after)
        return due.hour, due.minute

    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        alert_id = make_alert(a)
        told(alert_id, utcnow() - dt.timedelta(minutes=45))
        # Within the default 240 minutes: not yet.
        assert follow_up(utcnow()).alert_ids == []
        # A routine alert for a clinician on the daily digest waits for 7:00, clinic time.
        cara = db.session.get(User, clinic.clinician.user_id)
        assert cara is not None
        cara.notify_mode = NotifyMode.DIGEST
        db.session.commit()
        waiting = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        assert digest_due(waiting, cara.id) == (DEFAULTS.digest_hour, 0)

    client = admin_client(app, clinic)
    status, _ = save(
        client, urgent_follow_up_minutes="30", outcome_interval_days="60", digest_hour="9"
    )
    assert status == 303

    with app.app_context():
        assert follow_up(utcnow()).alert_ids == [alert_id]
        # The one waiting moved to 9:00 (one digest, not one at 7 and one at 9), and a new
        # one waits for 9:00 too.
        assert digest_due(waiting, clinic.clinician.user_id) == (9, 0)
        later = make_alert(a, severity="routine", kind="adherence_drop", metric="adherence")
        assert digest_due(later, clinic.clinician.user_id) == (9, 0)

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
    set_policy(app, clinic, reminder_after_days=5)
    with app.app_context():
        assert notifications.queue_reminders(db.session, today) == []  # 4 days < 5
        db.session.commit()
    set_policy(app, clinic, reminder_after_days=4)
    with app.app_context():
        assert len(notifications.queue_reminders(db.session, today)) == 1
        db.session.commit()
