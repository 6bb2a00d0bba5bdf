"""What came of an alert (the resolving clinician's optional judgement) and the admin's alert
response report: how soon each care team responded, by month; what came of the alerts
clinicians resolved, by kind. Counts and times only."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask

from rehab.db.models import (
    Alert,
    AlertJudgement,
    AlertStatus,
    AuditEvent,
    Notification,
    User,
    utcnow,
)
from rehab.extensions import db
from rehab.services import accounts, alert_report, alerts
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.services.time import clinic_today
from tests.integration.test_notifications_outbox import (  # noqa: F401 (the `app` fixture)
    BOTH,
    make_alert,
    outbox_app,
)
from tests.support.clinic import Clinic, csrf_token, login
from tests.support.pages import visible_text

LIMIT = 240


def actor(user_id: int) -> Actor:
    user = db.session.get(User, user_id)
    assert user is not None
    return accounts.actor_for(user)


def dated(alert_id: int, **values: object) -> None:
    """Set the alert's times; its e-mails written when it was (`created_at`)."""
    db.session.execute(sa.update(Alert).where(Alert.id == alert_id).values(**values))
    if "created_at" in values:
        db.session.execute(
            sa.update(Notification)
            .where(Notification.alert_id == alert_id)
            .values(created_at=values["created_at"])
        )
    db.session.commit()


@BOTH
def test_the_report_counts_responses_by_month_and_team_and_what_came_of_them(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        a, c = clinic.patient_a.patient_id, clinic.patient_c.patient_id
        assert a is not None and c is not None
        cara = actor(clinic.clinician.user_id)
        today = clinic_today()
        t = utcnow() - dt.timedelta(hours=30)
        day = today - dt.timedelta(days=1)

        quick = make_alert(a, detected_on=day)  # urgent, acknowledged within the hour
        alerts.acknowledge(db.session, cara, quick, "phoned her")
        dated(quick, created_at=t, acknowledged_at=t + dt.timedelta(minutes=50))
        slow = make_alert(a, detected_on=day - dt.timedelta(days=1))  # after 5 h, followed up
        alerts.acknowledge(db.session, cara, slow, "")
        dated(
            slow,
            created_at=t,
            acknowledged_at=t + dt.timedelta(hours=5),
            followed_up_at=t + dt.timedelta(hours=4),
        )
        waiting = make_alert(a, detected_on=day - dt.timedelta(days=2))  # nobody yet
        dated(waiting, created_at=t)
        gone = make_alert(a, severity="routine", kind="pain_regression", metric="back_pain")
        dated(gone, created_at=t, status=AlertStatus.RESOLVED, resolved_at=t)  # on its own
        one_off = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        alerts.resolve(db.session, cara, one_off, "a bad night", "not_a_change")
        dated(one_off, created_at=t, resolved_at=t + dt.timedelta(days=2))
        acted = make_alert(
            a, severity="routine", kind="pain_regression", metric="leg_pain", detected_on=day
        )
        alerts.resolve(db.session, cara, acted, "", "acted_on")
        dated(acted, created_at=t, resolved_at=t + dt.timedelta(hours=3))
        unsaid = make_alert(a, severity="routine", kind="adherence_drop", metric="adherence")
        alerts.resolve(db.session, cara, unsaid, "")
        dated(unsaid, created_at=t, resolved_at=t + dt.timedelta(hours=1))
        south = make_alert(c, detected_on=day)  # the other team
        dated(south, created_at=t)
        ancient = make_alert(a, detected_on=day - dt.timedelta(days=500))
        dated(ancient, created_at=t - dt.timedelta(days=500))  # before the 12 months
        # Found already over when her history was first replayed: told to no one.
        over = make_alert(
            a, severity="routine", kind="adherence_drop", metric="adherence", detected_on=day
        )
        dated(
            over,
            created_at=t,
            status=AlertStatus.RESOLVED,
            resolved_at=t,
            resolve_note=alerts.AUTO_ALREADY_RESOLVED,
        )
        # Stored a day before it became urgent; acknowledged 2 h after its urgent e-mail.
        escalated = make_alert(a, detected_on=day - dt.timedelta(days=3))
        alerts.acknowledge(db.session, cara, escalated, "")
        dated(escalated, created_at=t, acknowledged_at=t + dt.timedelta(hours=26))
        db.session.execute(
            sa.update(Notification)
            .where(Notification.alert_id == escalated)
            .values(created_at=t + dt.timedelta(hours=24))
        )
        db.session.commit()

        admin = actor(clinic.admin.user_id)
        report = alert_report.alert_report(db.session, admin, today, LIMIT)
        month = t.date().replace(day=1)  # the clinic's zone is UTC here
        urgent = {(x.month, x.team): x for x in report.urgent}
        north = urgent[(month, "Team North")]
        assert (north.raised, north.responded, north.within_limit) == (4, 3, 2)
        assert (north.followed_up, north.waiting, north.resolved_unanswered) == (1, 1, 0)
        assert north.median_response == "2 h 00 min"  # 50 min, 2 h and 5 h
        assert urgent[(month, "Team South")].waiting == 1
        (routine,) = report.routine
        assert (routine.raised, routine.responded, routine.resolved_unanswered) == (4, 3, 1)
        assert routine.median_response == "3 h 00 min"  # 1 h, 3 h, 2 d
        judged = {x.kind: x for x in report.judgements}
        pain = judged["pain_regression"]
        assert pain.resolved_by_clinician == 2 and pain.not_said == 0
        assert pain.judged[AlertJudgement.NOT_A_CHANGE] == 1
        assert pain.judged[AlertJudgement.ACTED_ON] == 1
        assert pain.not_a_change_share == 0.5
        assert judged["adherence_drop"].not_said == 1
        assert judged["adherence_drop"].not_a_change_share is None
        assert "red_flag" not in judged  # acknowledged, not resolved by anyone
        assert {x.month for x in [*report.urgent, *report.routine]} == {month}

        with pytest.raises(NotFound):  # the admin's only
            alert_report.alert_report(db.session, cara, today, LIMIT)


def test_the_admin_page_shows_the_report_and_nobody_else_can(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        alert_id = make_alert(a)
        alerts.resolve(db.session, actor(clinic.clinician.user_id), alert_id, "", "no_action")
    admin, clinician = app.test_client(), app.test_client()
    login(admin, clinic.admin.email)
    login(clinician, clinic.clinician.email)
    page = visible_text(admin.get("/admin/alerts"))
    assert "Alert response" in page and "Team North" in page
    assert "Red flag 1 0 1 0 0 0 %" in page  # resolved once: no real change needed
    assert "Alice" not in page and "Patient" not in page.replace("patient's", "")
    assert clinician.get("/admin/alerts").status_code == 404
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.user_id, AuditEvent.patient_id).where(
                AuditEvent.action == "alert.report"
            )
        ).all()
    assert rows == [(clinic.admin.user_id, None)]


def test_a_clinician_says_what_came_of_an_alert_when_resolving_it(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        first, second = make_alert(a), make_alert(a, detected_on=clinic_today() - dt.timedelta(1))
    client = app.test_client()
    login(client, clinic.clinician.email)
    token = csrf_token(client, "/clinic/alerts/")
    inbox = visible_text(client.get("/clinic/alerts/"))
    assert "What came of it? (optional)" in inbox
    assert "Not a real change (a one-off day, a logging mistake)" in inbox

    refused = client.post(
        f"/clinic/alerts/{first}/resolve",
        data={"csrf_token": token, "judgement": "maybe", "note": ""},
        follow_redirects=True,
    )
    assert "what came of it must be one of acted_on, no_action, not_a_change" in visible_text(
        refused
    )
    response = client.post(
        f"/clinic/alerts/{first}/resolve",
        data={"csrf_token": token, "judgement": "not_a_change", "note": "slept badly"},
    )
    assert response.status_code == 303
    client.post(f"/clinic/alerts/{second}/resolve", data={"csrf_token": token, "note": ""})
    with app.app_context():
        stored = dict(
            db.session.execute(
                sa.select(Alert.id, Alert.resolve_judgement).where(Alert.id.in_([first, second]))
            ).all()
        )
    assert stored == {first: AlertJudgement.NOT_A_CHANGE, second: None}
    history = visible_text(client.get("/clinic/alerts/?show=all"))
    assert "(not a real change) — slept badly" in history


@BOTH
def test_months_are_the_clinics_calendar_months(app: Flask, clinic: Clinic) -> None:
    """In Auckland (UTC+13 in summer), 11:30 UTC on 31 January is 00:30 on 1 February."""
    app.config["REHAB_CLINIC_TIMEZONE"] = "Pacific/Auckland"
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        for metric, at in (
            ("leg_pain", dt.datetime(2026, 1, 31, 10, 30, tzinfo=dt.UTC)),
            ("back_pain", dt.datetime(2026, 1, 31, 11, 30, tzinfo=dt.UTC)),
        ):
            alert_id = make_alert(a, severity="routine", kind="pain_regression", metric=metric)
            dated(alert_id, created_at=at)
        late = make_alert(a, severity="routine", kind="adherence_drop", metric="adherence")
        dated(late, created_at=dt.datetime(2026, 2, 28, 11, 0, tzinfo=dt.UTC))  # 1 March there
        report = alert_report.alert_report(
            db.session, actor(clinic.admin.user_id), dt.date(2026, 2, 15), LIMIT
        )
    assert [(x.month, x.raised) for x in report.routine] == [
        (dt.date(2026, 2, 1), 1),
        (dt.date(2026, 1, 1), 1),
    ]
    assert report.first_month == dt.date(2025, 3, 1)


def test_a_response_before_the_team_was_told_counts_without_a_time(
    app: Flask, clinic: Clinic
) -> None:
    """Acknowledged while still routine, then escalated: responded to, but no time (a
    negative one would pull the median down and count as 'within the limit')."""
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        t = utcnow() - dt.timedelta(hours=10)
        alert_id = make_alert(a)
        alerts.acknowledge(db.session, actor(clinic.clinician.user_id), alert_id, "")
        dated(alert_id, created_at=t, acknowledged_at=t - dt.timedelta(hours=1))
        report = alert_report.alert_report(
            db.session, actor(clinic.admin.user_id), clinic_today(), LIMIT
        )
    (line,) = report.urgent
    assert (line.raised, line.responded, line.timed, line.within_limit) == (1, 1, 0, 0)
    assert line.median_response == "—"
