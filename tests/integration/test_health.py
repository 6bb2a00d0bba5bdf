"""Health endpoints and the pipeline status (`rehab.services.health`): liveness, readiness
(database and schema), and whether alerts are flowing (scan, evaluation, e-mail delivery),
shown to monitoring, to clinicians on their caseload and inbox, and to the admin."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from rehab import create_app
from rehab.db.models import AuditEvent, JobWatermark, Notification, NotificationStatus, utcnow
from rehab.extensions import db
from rehab.services import health, scan, staff
from rehab.services.evaluation import evaluate_and_commit
from rehab.services.time import clinic_today
from rehab.web.health import forget_pipeline_status
from tests.conftest import app_settings, dispose_engines
from tests.support.clinic import Clinic, login
from tests.support.history import add_logs
from tests.support.pages import form_data, text, visible_text

LATE = dt.timedelta(minutes=15)


def audit_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(AuditEvent.id))) or 0


def status(app: Flask) -> health.PipelineStatus:
    with app.app_context():
        result = health.pipeline_status(db.session, LATE)
        db.session.rollback()
        return result


def scanned(app: Flask, ago: dt.timedelta = dt.timedelta()) -> None:
    """What the periodic scan task does to the watermark, `ago` in the past."""
    with app.app_context():
        scan.patients_to_evaluate(db.session, clinic_today())
        scan.record_run(db.session)
        db.session.get(JobWatermark, scan.LAST_RUN_WATERMARK).through = utcnow() - ago  # type: ignore[union-attr]
        db.session.commit()


def pipeline_answer(app: Flask) -> TestResponse:
    """`/healthz/pipeline` now (each process reuses its status for a while otherwise)."""
    forget_pipeline_status(app)
    return app.test_client().get("/healthz/pipeline")


def banner(client: FlaskClient, app: Flask, path: str) -> str:
    forget_pipeline_status(app)
    page = visible_text(client.get(path))
    start = page.find("Alerts may be late")
    return "" if start < 0 else page[start : start + 600]


def test_liveness_and_readiness_need_no_login_and_leave_no_trace(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    before = audit_count(app)
    live = client.get("/healthz")
    assert (live.status_code, live.json) == (200, {"status": "ok"})
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "database": "ok", "schema": "ok"}
    assert "Set-Cookie" not in live.headers and "Set-Cookie" not in ready.headers
    assert audit_count(app) == before


def set_schema_revision(app: Flask, revision: str) -> None:
    with app.app_context():
        db.session.execute(
            sa.text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision}
        )
        db.session.commit()


@contextmanager
def without_database(tmp_path: Path) -> Iterator[FlaskClient]:
    """A client of an app whose PostgreSQL cannot be reached (nothing listens on port 9)."""
    unreachable = create_app(
        app_settings("postgresql+psycopg://rehab@127.0.0.1:9/rehab", tmp_path / "down")
    )
    try:
        yield unreachable.test_client()
    finally:
        dispose_engines(unreachable)


def test_readiness_fails_on_an_old_schema_and_on_no_database(
    app: Flask, client: FlaskClient, clinic: Clinic, tmp_path: Path
) -> None:
    set_schema_revision(app, "c4e6a8b0d2f3")
    behind = client.get("/readyz")
    assert (behind.status_code, behind.json["schema"]) == (503, "behind")
    assert behind.json["database"] == "ok"

    with without_database(tmp_path) as down:
        assert down.get("/healthz").status_code == 200
        response = down.get("/readyz")
        assert response.status_code == 503
        assert response.json == {"status": "failing", "database": "failing", "schema": "failing"}
        assert "127.0.0.1" not in response.get_data(as_text=True)


def test_a_database_migrated_past_this_code_is_ready_and_the_pipeline_without_one_is_503(
    app: Flask, client: FlaskClient, clinic: Clinic, tmp_path: Path
) -> None:
    # A deploy under way: the new code migrated first; this version keeps serving meanwhile.
    set_schema_revision(app, "ffffffffffff")
    ahead = client.get("/readyz")
    assert (ahead.status_code, ahead.json["schema"]) == (200, "ahead")

    with without_database(tmp_path) as down:
        response = down.get("/healthz/pipeline")
        assert response.status_code == 503
        assert response.json == {"status": "failing", "database": "failing"}


def test_the_scan_never_run_then_on_time_then_late(app: Flask, clinic: Clinic) -> None:
    assert status(app).scan is health.Check.NEVER
    response = pipeline_answer(app)
    assert response.status_code == 503
    assert response.json["scan"] == {"status": "never", "last_run": None}

    scanned(app)
    now = status(app)
    assert (now.scan, now.evaluation, now.delivery, now.ok) == (
        health.Check.OK,
        health.Check.OK,
        health.Check.OK,
        True,
    )
    response = pipeline_answer(app)
    assert (response.status_code, response.json["status"]) == (200, "ok")

    scanned(app, ago=LATE + dt.timedelta(minutes=1))
    assert status(app).scan is health.Check.LATE
    assert pipeline_answer(app).json["scan"]["status"] == "late"


def test_data_no_evaluation_has_seen_is_late_until_evaluated(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    scanned(app)
    waiting_since = utcnow() - dt.timedelta(minutes=20)
    with app.app_context():
        add_logs(a, clinic_today() - dt.timedelta(days=3), [1, 2, 1])
        db.session.execute(sa.text("UPDATE session_logs SET updated_at = :t"), {"t": waiting_since})
        db.session.commit()
    late = status(app)
    assert late.evaluation is health.Check.LATE
    assert late.oldest_unevaluated is not None
    assert abs(late.oldest_unevaluated - waiting_since) < dt.timedelta(seconds=1)
    # A change younger than the limit is not late yet.
    with app.app_context():
        db.session.execute(
            sa.text("UPDATE session_logs SET updated_at = :t"), {"t": utcnow() - LATE / 2}
        )
        db.session.commit()
    assert status(app).evaluation is health.Check.OK
    with app.app_context():
        db.session.execute(sa.text("UPDATE session_logs SET updated_at = :t"), {"t": waiting_since})
        db.session.commit()
        evaluate_and_commit(db.session, [a], clinic_today())
    assert status(app).evaluation is health.Check.OK


def notification(
    app: Flask,
    clinic: Clinic,
    state: NotificationStatus,
    ago: dt.timedelta,
    purpose: str = "alert",
    last_error: str = "",
) -> None:
    with app.app_context():
        moment = utcnow() - ago
        db.session.add(
            Notification(
                recipient_user_id=clinic.clinician.user_id,
                purpose=purpose,
                dedup_key=f"test:{state.value}:{purpose}:{ago.total_seconds()}:{last_error}",
                urgent=purpose == "alert",
                deliver_after=moment,
                next_attempt_at=moment,
                claimed_at=moment if state is not NotificationStatus.PENDING else None,
                status=state,
                last_error=last_error,
            )
        )
        db.session.commit()


def test_e_mail_not_sent_in_time_or_failed_is_reported(app: Flask, clinic: Clinic) -> None:
    scanned(app)
    notification(app, clinic, NotificationStatus.PENDING, dt.timedelta(minutes=5))
    notification(app, clinic, NotificationStatus.SENT, dt.timedelta(hours=3))
    assert status(app).delivery is health.Check.OK
    notification(app, clinic, NotificationStatus.SENDING, dt.timedelta(minutes=40))
    late = status(app)
    assert late.delivery is health.Check.LATE and late.oldest_undelivered is not None
    notification(app, clinic, NotificationStatus.FAILED, dt.timedelta(days=2))
    # Left unsent on purpose (the recipient left the team): no fault.
    notification(
        app, clinic, NotificationStatus.FAILED, dt.timedelta(hours=1), last_error="not sent: x"
    )
    assert status(app).failed_last_day == 0
    notification(app, clinic, NotificationStatus.FAILED, dt.timedelta(hours=2))
    failing = status(app)
    assert (failing.delivery, failing.failed_last_day) == (health.Check.FAILING, 1)
    # A failed e-mail alone is told to the admin (and to its recipient, on her inbox), not to
    # every clinician; alert e-mails not sent in time are everyone's concern.
    assert failing.late
    with app.app_context():
        db.session.execute(
            sa.update(Notification)
            .where(Notification.status == NotificationStatus.SENDING)
            .values(status=NotificationStatus.SENT)
        )
        db.session.commit()
    assert not status(app).late and not status(app).ok
    clinician, admin = app.test_client(), app.test_client()
    login(clinician, clinic.other_clinician.email)
    login(admin, clinic.admin.email)
    assert banner(clinician, app, "/clinic/") == ""
    assert "1 e-mail could not be delivered in the last day" in banner(admin, app, "/admin/")
    body = pipeline_answer(app).json
    assert body["delivery"]["status"] == "failing"
    assert body["delivery"]["failed_last_day"] == 1
    assert "clinic.test" not in str(body)  # no recipient
    # A patient's reminder not sent in time is the admin's to see, not the clinicians'.
    notification(
        app, clinic, NotificationStatus.PENDING, dt.timedelta(minutes=30), purpose="reminder"
    )
    assert banner(clinician, app, "/clinic/") == ""
    assert "E-mails due since" in banner(admin, app, "/admin/")
    notification(app, clinic, NotificationStatus.PENDING, dt.timedelta(minutes=20))
    assert "Alert e-mails due since" in banner(clinician, app, "/clinic/")


def test_clinicians_and_the_admin_see_when_alerts_may_be_late(app: Flask, clinic: Clinic) -> None:
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    admin = app.test_client()
    login(admin, clinic.admin.email)
    for path in ("/clinic/", "/clinic/alerts/"):
        assert "have not run yet" in banner(clinician, app, path), path
    text = banner(admin, app, "/admin/")
    assert "have not run yet" in text and "celery -A worker beat" in text

    scanned(app)
    # Each process reuses its status for a short while: a busy caseload runs no more queries.
    assert "have not run yet" in visible_text(clinician.get("/clinic/"))
    for path in ("/clinic/", "/clinic/alerts/"):
        assert banner(clinician, app, path) == "", path
    assert banner(admin, app, "/admin/") == ""

    scanned(app, ago=dt.timedelta(hours=2))
    text = banner(clinician, app, "/clinic/")
    assert "last ran at" in text and "red flags included" in text
    assert "celery" not in text  # what to do is the admin's


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_status_works_on_sqlite(app: Flask, clinic: Clinic) -> None:
    scanned(app)
    assert status(app).ok
    assert app.test_client().get("/readyz").json["status"] == "ok"


def admin_action(admin: FlaskClient, url: str) -> str:
    """Post one of the admin page's action buttons, and return the page it leads to."""
    assert admin.post(url, data=form_data(text(admin.get("/admin/")), url)).status_code == 302
    return visible_text(admin.get("/admin/"))


def test_a_team_left_without_an_active_clinician_is_said_at_once(
    app: Flask, clinic: Clinic
) -> None:
    scanned(app)
    admin = app.test_client()
    login(admin, clinic.admin.email)
    cara = app.test_client()
    login(cara, clinic.clinician.email)
    assert "without an active clinician" not in visible_text(admin.get("/admin/"))
    assert pipeline_answer(app).status_code == 200

    # Dan leaves: disabling him is not refused, and what it leaves behind is said.
    page = admin_action(admin, f"/admin/users/{clinic.other_clinician.user_id}/disable")
    assert "is disabled and logged out everywhere" in page
    assert "“Team South” has 1 patient and no active clinician" in page
    assert "Care teams without an active clinician Team South — 1 patient" in page
    response = pipeline_answer(app)
    assert response.status_code == 503
    assert response.json["status"] == "attention"
    assert response.json["recipients"] == {"status": "missing", "teams_without_clinician": 1}
    # Cara's own alerts flow: her banner is about the pipeline, not other teams.
    assert banner(cara, app, "/clinic/") == ""

    # Taking Cara off Team North leaves it alone too.
    north = clinic.team_north_id
    cara_id = clinic.clinician.clinician_id
    page = admin_action(admin, f"/admin/teams/{north}/members/{cara_id}/remove")
    assert "“Team North” has 2 patients and no active clinician" in page
    assert "“Team South” has" not in page  # told once, when Dan left; listed below still
    with app.app_context():
        teams = [(t.name, t.patient_count) for t in staff.unattended_teams(db.session)]
    assert teams == [("Team North", 2), ("Team South", 1)]

    # Someone joins each team: nothing is left unattended.
    for team in (north, clinic.team_south_id):
        url = f"/admin/teams/{team}/members"
        data = form_data(text(admin.get("/admin/")), url)
        data[f"team{team}-clinician_id"] = str(clinic.clinician.clinician_id)
        assert admin.post(url, data=data).status_code == 302
    assert "without an active clinician" not in visible_text(admin.get("/admin/"))
    assert pipeline_answer(app).status_code == 200
