""" "Forgot your password?" on the login page: an e-mailed one-time link (file outbox here;
through a real worker and SMTP server in test_notifications_delivery.py).

The page answers the same for any address; an active account gets one message per few
minutes; the link works once, for a limited time, for this purpose only; using it ends every
session of the account and a lockout; each step is audited without the address."""

from __future__ import annotations

import re
import time
from email import policy
from email.parser import BytesParser

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, Notification, User, utcnow
from rehab.extensions import db
from rehab.notifications import render
from rehab.services import accounts, notifications
from tests.integration.test_notifications_outbox import (  # noqa: F401 (the `app` fixture)
    PUBLIC_URL,
    SECRET,
    outbox_app,
)
from tests.support.clinic import PASSWORD, Clinic, csrf_token, login
from tests.support.pages import visible_text

NEW_PASSWORD = "a long phrase nobody guesses 42"


def ask(client: FlaskClient, email: str) -> tuple[int, str]:
    token = csrf_token(client, "/login/forgot")
    response = client.post("/login/forgot", data={"email": email, "csrf_token": token})
    return response.status_code, visible_text(response)


def reset_rows(app: Flask) -> list[Notification]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(Notification).where(Notification.purpose == "password_reset")
        )
        return list(rows)


def audit_rows(app: Flask) -> list[tuple[str, int | None, str]]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action.like("password.%"))
            .order_by(AuditEvent.id)
        )
        return [(r.action, r.user_id, r.outcome.value) for r in rows]


def all_audit_rows(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)))
        db.session.expunge_all()
        return rows


def deliver(app: Flask, notification_id: int) -> str:
    """Send through the file outbox; the message's reset link."""
    with app.app_context():
        outcome = notifications.deliver(db.session, notification_id)
        assert outcome.status == "sent", outcome
        (path,) = notifications.outbox_dir().glob("*.eml")
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert message["Subject"] == render.PASSWORD_RESET_SUBJECT
    path.unlink()
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(re.escape(PUBLIC_URL) + r"(/reset/[A-Za-z0-9_.\-]+)", body.get_content())
    assert match is not None, body.get_content()
    return match.group(1)


def choose(client: FlaskClient, path: str, password: str, confirm: str | None = None) -> int:
    token = csrf_token(client, path)
    return client.post(
        path, data={"password": password, "confirm": confirm or password, "csrf_token": token}
    ).status_code


def test_a_forgotten_password_is_replaced_through_a_one_time_emailed_link(
    app: Flask, clinic: Clinic
) -> None:
    person = clinic.patient_a
    other_device = app.test_client()
    login(other_device, person.email)
    assert other_device.get("/me/").status_code == 200
    with app.app_context():
        user = db.session.get(User, person.user_id)
        assert user is not None
        _, device_key = accounts.issue_api_token(db.session, user, "old phone")
        db.session.commit()
    api = app.test_client()
    key = {"Authorization": f"Bearer {device_key}"}
    assert api.get("/api/v1/me", headers=key).status_code == 200

    anonymous = app.test_client()
    assert b'href="/login/forgot"' in anonymous.get("/login").data
    status, known = ask(anonymous, "  " + person.email.upper() + " ")
    assert status == 200 and "If an account uses that address" in known
    status, unknown = ask(anonymous, "nobody@example.org")
    assert (status, unknown) == (200, known)  # the page tells nobody who has an account
    assert ask(anonymous, person.email)[1] == known  # asked again at once: no second message
    (row,) = reset_rows(app)
    assert row.recipient_user_id == person.user_id

    link = deliver(app, row.id)
    page = anonymous.get(link)
    assert page.headers["Cache-Control"] == "no-store"  # it shows the account's address
    assert choose(anonymous, link, NEW_PASSWORD, "something else entirely 42") == 200
    assert choose(anonymous, link, NEW_PASSWORD) == 302

    # The new password works, the old one does not; the other device was logged out and
    # the device key made with the old password no longer works.
    assert other_device.get("/me/").status_code == 302
    assert api.get("/api/v1/me", headers=key).status_code == 401
    fresh = app.test_client()
    form = {"email": person.email, "csrf_token": csrf_token(fresh, "/login")}
    assert fresh.post("/login", data={**form, "password": PASSWORD}).status_code == 200
    assert fresh.post("/login", data={**form, "password": NEW_PASSWORD}).status_code == 302
    # Once only.
    used = anonymous.get(link)
    assert used.status_code == 400 and "already used" in visible_text(used)

    assert audit_rows(app) == [
        ("password.reset_request", person.user_id, "allowed"),
        ("password.reset_request", None, "denied"),  # the unknown address, not stored
        ("password.reset_request", person.user_id, "denied"),  # within the few minutes
        ("password.reset", person.user_id, "allowed"),
    ]
    assert ("api_token.revoke_all", person.user_id) in [
        (r.action, r.user_id) for r in all_audit_rows(app)
    ]
    with app.app_context():
        stored = " ".join(
            str(value)
            for row in db.session.execute(sa.select(AuditEvent.__table__)).all()
            for value in row
        )
    assert "nobody@example.org" not in stored and person.email not in stored


def test_a_link_works_only_for_its_purpose_and_its_time(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        user = db.session.get(User, clinic.patient_b.user_id)
        assert user is not None
        invite = accounts.make_link_token(user, SECRET, accounts.INVITE)
        reset = accounts.make_link_token(user, SECRET, accounts.PASSWORD_RESET)
        real_time = time.time
        try:
            # Signed 61 minutes ago: older than password_reset_valid_minutes (60).
            time.time = lambda: real_time() - 61 * 60  # type: ignore[assignment]
            stale = accounts.make_link_token(user, SECRET, accounts.PASSWORD_RESET)
        finally:
            time.time = real_time  # type: ignore[assignment]
    client = app.test_client()
    assert client.get(f"/reset/{invite}").status_code == 400  # an invitation is not a reset
    assert client.get(f"/welcome/{reset}").status_code == 400  # nor the other way round
    expired = client.get(f"/reset/{stale}")
    assert expired.status_code == 400 and "expired" in visible_text(expired)
    assert b'href="/login/forgot"' in expired.data  # where to get a new one
    assert client.get(f"/reset/{reset}").status_code == 200


def test_a_locked_or_disabled_account(app: Flask, clinic: Clinic) -> None:
    """A lockout from failed guesses ends with a new password (the link proved the
    address); a disabled account gets no message."""
    locked, disabled = clinic.patient_a, clinic.patient_b
    with app.app_context():
        for person, active in ((locked, True), (disabled, False)):
            user = db.session.get(User, person.user_id)
            assert user is not None
            user.is_active = active
            if active:
                user.locked_until = utcnow().replace(year=utcnow().year + 1)
        db.session.commit()
    client = app.test_client()
    ask(client, disabled.email)
    ask(client, locked.email)
    (row,) = reset_rows(app)
    assert row.recipient_user_id == locked.user_id
    assert choose(client, deliver(app, row.id), NEW_PASSWORD) == 302
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": locked.email, "password": NEW_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302


def test_asking_is_rate_limited_and_validated(app: Flask, clinic: Clinic) -> None:
    client = app.test_client()
    token = csrf_token(client, "/login/forgot")
    empty = client.post("/login/forgot", data={"email": "", "csrf_token": token})
    assert empty.status_code == 422 and "This field is required" in visible_text(empty)
    codes = [ask(client, f"someone{i}@example.org")[0] for i in range(11)]
    assert codes == [200] * 9 + [429, 429]  # 10 a minute, the empty one included
    assert reset_rows(app) == []


def test_the_admin_reading_the_outbox_cannot_use_the_link(app: Flask, clinic: Clinic) -> None:
    """Without SMTP the message waits in the file outbox, which admins read: the link there
    would open the patient's account, so the page hides it."""
    ask(app.test_client(), clinic.patient_a.email)
    (row,) = reset_rows(app)
    with app.app_context():
        assert notifications.deliver(db.session, row.id).status == "sent"
        (path,) = notifications.outbox_dir().glob("*.eml")
    assert "/reset/" in path.read_text(encoding="utf-8")  # the file itself has it
    admin = app.test_client()
    login(admin, clinic.admin.email)
    for url in (f"/admin/outbox/{path.name}", f"/admin/outbox/{path.name}/html"):
        page = admin.get(url).get_data(as_text=True)
        assert notifications.RESET_LINK_HIDDEN in page, url
        assert not re.search(r"/reset/[A-Za-z0-9_-]{20,}", page), url
