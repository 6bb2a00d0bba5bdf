"""Second factor, lockout and server-side sessions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab import create_app
from rehab.db.models import AuditEvent, User, UserSession
from rehab.extensions import db
from rehab.services import sessions
from rehab.services.login import LOCK_AFTER_FAILURES
from tests.conftest import app_settings, dispose_engines
from tests.support.clinic import PASSWORD, Clinic, csrf_token, login

SECRET_RE = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        app_settings(database_url, tmp_path, totp_required=True, login_rate_limit="1000/minute")
    )
    yield app
    dispose_engines(app)


def password_step(client: FlaskClient, email: str, password: str = PASSWORD) -> str:
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    return response.headers.get("Location", "")


def submit_code(client: FlaskClient, code: str) -> int:
    token = csrf_token(client, "/login/two-factor")
    response = client.post("/login/two-factor", data={"code": code, "csrf_token": token})
    return response.status_code


def actions(app: Flask, user_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.outcome)
            .where(AuditEvent.user_id == user_id)
            .order_by(AuditEvent.id)
        ).all()
    return [(a, o.value) for a, o in rows]


def test_clinician_enrols_then_logs_in_with_a_code_and_replay_is_refused(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    assert password_step(client, clinic.clinician.email).endswith("/login/two-factor")
    # Not logged in yet: the caseload still asks for a login.
    assert client.get("/clinic/").status_code == 302
    page = client.get("/login/two-factor").get_data(as_text=True)
    secret = SECRET_RE.search(page)
    assert secret and 'src="data:image/svg+xml;base64,' in page
    totp = pyotp.TOTP(secret.group(1))
    assert submit_code(client, "000000" if totp.now() != "000000" else "111111") == 422
    code = totp.now()
    assert submit_code(client, code) == 302
    assert client.get("/clinic/").status_code == 200

    # Same code again in a new login: refused (replay), even though it is still current.
    other = app.test_client()
    password_step(other, clinic.clinician.email)
    assert "secret" not in other.get("/login/two-factor").get_data(as_text=True)
    assert submit_code(other, code) == 422
    assert other.get("/clinic/").status_code == 302
    assert ("login.second_factor", "denied") in actions(app, clinic.clinician.user_id)
    assert ("two_factor.enrol", "allowed") in actions(app, clinic.clinician.user_id)


def test_patients_log_in_with_the_password_alone(client: FlaskClient, clinic: Clinic) -> None:
    assert password_step(client, clinic.patient_a.email).endswith("/me/")
    assert client.get("/me/").status_code == 200


def test_wrong_password_unknown_user_and_lockout_answer_alike(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    def attempt(email: str, password: str) -> str:
        token = csrf_token(client, "/login")
        response = client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}
        )
        assert response.status_code == 200
        html = response.get_data(as_text=True).replace(email, "<email>")
        return re.sub(r'name="csrf_token"[^>]*>', "", html)

    wrong = attempt(clinic.patient_a.email, "not the password at all")
    unknown = attempt("nobody@nowhere.test", "not the password at all")
    assert wrong == unknown
    for _ in range(LOCK_AFTER_FAILURES - 1):
        attempt(clinic.patient_a.email, "still not the password")
    # Locked now: even the right password gets the same answer.
    assert attempt(clinic.patient_a.email, PASSWORD) == wrong
    assert ("login.lockout", "denied") in actions(app, clinic.patient_a.user_id)
    with app.app_context():
        user = db.session.get(User, clinic.patient_a.user_id)
        assert user is not None and user.locked_until is not None


def test_logout_ends_the_session_on_the_server(app: Flask, clinic: Clinic) -> None:
    client = app.test_client()
    login(client, clinic.patient_a.email)
    stolen = client.get_cookie("session")
    assert stolen is not None
    token = csrf_token(client, "/me/")
    client.post("/logout", data={"csrf_token": token})
    replay = app.test_client()
    replay.set_cookie("session", stolen.value)
    assert replay.get("/me/").status_code == 302  # the old cookie no longer logs in


def test_disabling_an_account_ends_its_sessions(app: Flask, clinic: Clinic) -> None:
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    assert patient.get("/me/").status_code == 200
    with app.app_context():
        user = db.session.get(User, clinic.patient_a.user_id)
        assert user is not None
        user.is_active = False
        db.session.commit()
    assert patient.get("/me/").status_code == 302


def test_idle_and_absolute_limits(app: Flask, clinic: Clinic) -> None:
    idle, absolute = dt.timedelta(minutes=30), dt.timedelta(hours=12)
    with app.app_context():
        user_id = clinic.patient_a.user_id
        token = sessions.start(db.session, user_id)
        db.session.commit()
        start = db.session.scalars(sa.select(UserSession.created_at)).one()
        ok = sessions.is_valid
        assert ok(db.session, user_id, token, idle=idle, absolute=absolute, now=start)
        assert not ok(db.session, user_id + 1, token, idle=idle, absolute=absolute, now=start)
        # Active every 20 minutes for 11 hours: still valid; at 12 h 20 min: expired.
        moment = start
        for _ in range(33):
            moment += dt.timedelta(minutes=20)
            assert ok(db.session, user_id, token, idle=idle, absolute=absolute, now=moment)
        moment += dt.timedelta(hours=1, minutes=10)
        assert not ok(db.session, user_id, token, idle=idle, absolute=absolute, now=moment)

        idle_token = sessions.start(db.session, user_id)
        db.session.commit()
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=31)
        assert not ok(db.session, user_id, idle_token, idle=idle, absolute=absolute, now=later)
