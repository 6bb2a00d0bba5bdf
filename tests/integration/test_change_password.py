"""Anyone logged in changes her own password (`/account/password`, the name in the header).

She must give the current one; the new one follows the password policy. Every other session
and every device and API key of the account ends, and this browser stays logged in; a notice
goes to her address (no patient data in it); each attempt is audited, a wrong current
password as denied and as a failed login (ten end every session and lock the account).
Bad input is a 422 naming the field, with the password unchanged."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, Notification, User
from rehab.extensions import db
from rehab.notifications import render
from rehab.services import accounts, notifications
from tests.integration.test_notifications_outbox import PUBLIC_URL, outbox_app  # noqa: F401
from tests.support.clinic import PASSWORD, Clinic, Person, csrf_token, login
from tests.support.pages import visible_text

NEW_PASSWORD = "a long phrase nobody guesses 42"


def change(
    client: FlaskClient, current: str, new: str, confirm: str | None = None
) -> tuple[int, str]:
    token = csrf_token(client, "/account/password")
    response = client.post(
        "/account/password",
        data={
            "current_password": current,
            "password": new,
            "confirm": new if confirm is None else confirm,
            "csrf_token": token,
        },
    )
    return response.status_code, visible_text(response)


def can_log_in(app: Flask, email: str, password: str) -> bool:
    client = app.test_client()
    form = {"email": email, "password": password, "csrf_token": csrf_token(client, "/login")}
    return client.post("/login", data=form).status_code == 302


def password_audit(app: Flask, user_id: int | None) -> list[str]:
    with app.app_context():
        return [
            outcome.value
            for outcome in db.session.scalars(
                sa.select(AuditEvent.outcome)
                .where(AuditEvent.action == "password.change", AuditEvent.user_id == user_id)
                .order_by(AuditEvent.id)
            )
        ]


@pytest.mark.parametrize("who", ["patient_a", "clinician"])
def test_changing_ones_password(app: Flask, clinic: Clinic, who: str) -> None:
    person: Person = getattr(clinic, who)
    here, elsewhere = app.test_client(), app.test_client()
    login(here, person.email)
    login(elsewhere, person.email)
    home = "/me/" if who == "patient_a" else "/clinic/"
    assert elsewhere.get(home).status_code == 200
    with app.app_context():
        user = db.session.get(User, person.user_id)
        assert user is not None
        _, device_key = accounts.issue_api_token(db.session, user, "phone")
        db.session.commit()
    assert 'href="/account/password"' in here.get(home).get_data(as_text=True)

    status, _ = change(here, PASSWORD, NEW_PASSWORD)
    assert status == 303
    assert "Your password is changed" in visible_text(here.get("/account/password"))
    assert here.get(home).status_code == 200  # this browser stays logged in
    assert elsewhere.get(home).status_code == 302  # every other one was logged out
    key = {"Authorization": f"Bearer {device_key}"}
    # A key made by whoever had the session stops too (the owner makes a new one).
    assert app.test_client().get("/api/v1/me", headers=key).status_code == 401
    assert not can_log_in(app, person.email, PASSWORD)
    assert can_log_in(app, person.email, NEW_PASSWORD)
    assert password_audit(app, person.user_id) == ["allowed"]
    with app.app_context():
        revoked = db.session.scalars(
            sa.select(AuditEvent.action).where(
                AuditEvent.user_id == person.user_id, AuditEvent.action == "api_token.revoke_all"
            )
        ).all()
    assert revoked == ["api_token.revoke_all"]

    # The notice, to her own address, with nothing about her health.
    with app.app_context():
        (row_id,) = db.session.scalars(
            sa.select(Notification.id).where(
                Notification.recipient_user_id == person.user_id,
                Notification.purpose == notifications.PASSWORD_CHANGED,
            )
        ).all()
        assert notifications.deliver(db.session, row_id).status == "sent"
        (path,) = notifications.outbox_dir().glob("*.eml")
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert message["Subject"] == render.PASSWORD_CHANGED_SUBJECT
    assert message["To"] == person.email
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "was changed on" in text and f"{PUBLIC_URL}/login/forgot" in text
    assert "pain" not in text.lower() and "Low back" not in text


def test_bad_changes_name_the_field_and_keep_the_password(app: Flask, clinic: Clinic) -> None:
    person = clinic.patient_b
    client = app.test_client()
    login(client, person.email)
    for current, new, confirm, says in (
        ("not my password at all", NEW_PASSWORD, None, "is not your current password"),
        (PASSWORD, NEW_PASSWORD, "a different phrase entirely 42", "The two passwords differ"),
        (PASSWORD, "short", None, "must be at least 12 characters"),
        (PASSWORD, "password1234", None, "is too common"),
        (PASSWORD, PASSWORD, None, "is your current password"),
        ("", NEW_PASSWORD, None, "This field is required"),
    ):
        status, text = change(client, current, new, confirm)
        assert status == 422, (current, new)
        assert says in text, (says, text)
    assert client.get("/me/").status_code == 200  # still logged in
    assert can_log_in(app, person.email, PASSWORD)
    assert password_audit(app, person.user_id) == ["denied"]
    with app.app_context():
        assert not db.session.scalars(
            sa.select(Notification.id).where(Notification.purpose == notifications.PASSWORD_CHANGED)
        ).all()


def test_the_page_needs_a_login_and_a_csrf_token(app: Flask, clinic: Clinic) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/account/password").status_code == 302
    client = app.test_client()
    login(client, clinic.patient_a.email)
    response = client.post(
        "/account/password",
        data={"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code in (400, 422)
    assert can_log_in(app, clinic.patient_a.email, PASSWORD)


def test_ten_wrong_current_passwords_end_the_session_and_lock_the_account(
    app: Flask, clinic: Clinic
) -> None:
    """A stolen session guessing the password gets no more tries than the login form."""
    person = clinic.patient_a
    client = app.test_client()
    login(client, person.email)
    for attempt in range(1, 10):
        assert change(client, f"guess number {attempt}", NEW_PASSWORD)[0] == 422
    assert client.get("/me/").status_code == 200  # nine: still hers
    assert change(client, "guess number 10", NEW_PASSWORD)[0] == 422
    assert client.get("/me/").status_code == 302  # the tenth ended every session
    assert not can_log_in(app, person.email, PASSWORD)  # and locked the account
    assert password_audit(app, person.user_id) == ["denied"] * 10
    with app.app_context():
        user = db.session.get(User, person.user_id)
        assert user is not None and user.locked_until is not None
        lockouts = db.session.scalars(
            sa.select(AuditEvent.action).where(
                AuditEvent.user_id == person.user_id, AuditEvent.action == "login.lockout"
            )
        ).all()
    assert lockouts == ["login.lockout"]


def test_the_password_and_address_pages_share_one_rate_limit(app: Flask, clinic: Clinic) -> None:
    client = app.test_client()
    login(client, clinic.patient_b.email)
    for _ in range(10):  # refused by the form before the password is checked
        assert change(client, PASSWORD, NEW_PASSWORD, "a different phrase entirely 42")[0] == 422
    token = csrf_token(client, "/account/password")
    response = client.post(
        "/account/email",
        data={
            "address-email": "b.new@patient.test",
            "address-current_password": PASSWORD,
            "address-csrf_token": token,
        },
    )
    assert response.status_code == 429
    assert can_log_in(app, clinic.patient_b.email, PASSWORD)
