"""Anyone logged in changes her own login address (`/account/password`, "Login address").

The current password first; the new address gets a link, and the login stays as it was until
it is followed (a GET shows it; confirming asks for the account's password again); then the
old address is told, without the new one. A newer request, a confirmation, or a password
change (also one made before the link was sent) makes the link stop working. The page answers
the same for an address another account has (that address gets a note instead of a link), and
one taken between the request and the confirmation is refused. Each step is audited without
the addresses; the admin reading the outbox cannot use a link."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, EmailChange, Notification, User
from rehab.extensions import db
from rehab.notifications import render
from rehab.services import notifications
from tests.integration.test_change_password import NEW_PASSWORD
from tests.integration.test_change_password import change as change_password
from tests.integration.test_notifications_outbox import PUBLIC_URL, outbox_app  # noqa: F401
from tests.support.clinic import PASSWORD, Clinic, csrf_token, login
from tests.support.pages import visible_text

NEW = "alice.new@patient.test"


def ask(client: FlaskClient, email: str, current: str = PASSWORD) -> tuple[int, str]:
    token = csrf_token(client, "/account/password")
    response = client.post(
        "/account/email",
        data={
            "address-email": email,
            "address-current_password": current,
            "address-csrf_token": token,
        },
    )
    return response.status_code, visible_text(response)


def send(app: Flask, purpose: str) -> list[EmailMessage]:
    """Deliver the pending rows of `purpose` through the file outbox; the messages."""
    with app.app_context():
        ids = db.session.scalars(
            sa.select(Notification.id)
            .where(
                Notification.purpose == purpose,
                Notification.status == notifications.PENDING,
            )
            .order_by(Notification.id)
        ).all()
        for notification_id in ids:
            notifications.deliver(db.session, notification_id)
        paths = sorted(notifications.outbox_dir().glob("*.eml"))
    messages = []
    for path in paths:
        parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
        path.unlink()
    return messages


def link_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(
        re.escape(PUBLIC_URL) + r"(/account/email/[A-Za-z0-9_.\-]+)", body.get_content()
    )
    assert match is not None, body.get_content()
    return match.group(1)


def confirm(client: FlaskClient, link: str, password: str = PASSWORD) -> int:
    token = csrf_token(client, "/login")
    return client.post(link, data={"csrf_token": token, "password": password}).status_code


def can_log_in(app: Flask, email: str) -> bool:
    client = app.test_client()
    form = {"email": email, "password": PASSWORD, "csrf_token": csrf_token(client, "/login")}
    return client.post("/login", data=form).status_code == 302


def email_of(app: Flask, user_id: int) -> str:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        return user.email


def test_a_new_login_address_takes_effect_once_confirmed(app: Flask, clinic: Clinic) -> None:
    person = clinic.patient_a
    client = app.test_client()
    login(client, person.email)
    status, _ = ask(client, "  Alice.New@Patient.TEST ")
    assert status == 303
    page = visible_text(client.get("/account/password"))
    assert f"A message went to {NEW}" in page
    assert f"A change to {NEW} is waiting" in page
    assert email_of(app, person.user_id) == person.email  # not yet
    assert can_log_in(app, person.email)

    (message,) = send(app, notifications.EMAIL_CONFIRM)
    assert message["To"] == NEW
    assert message["Subject"] == render.EMAIL_CONFIRM_SUBJECT
    link = link_in(message)
    anonymous = app.test_client()  # opened on another device, not logged in
    shown = anonymous.get(link)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    assert NEW in visible_text(shown) and person.email not in visible_text(shown)
    assert email_of(app, person.user_id) == person.email  # a GET changes nothing
    # Whoever owns the (perhaps mistyped) new address does not know the password.
    assert confirm(anonymous, link, "not the password") == 422
    assert email_of(app, person.user_id) == person.email
    assert confirm(anonymous, link) == 302
    assert email_of(app, person.user_id) == NEW
    assert can_log_in(app, NEW) and not can_log_in(app, person.email)
    assert client.get("/me/").status_code == 200  # her session goes on
    used = anonymous.get(link)
    assert used.status_code == 400 and "already used" in visible_text(used)

    (notice,) = send(app, notifications.EMAIL_CHANGED)
    assert notice["To"] == person.email  # the old address is told
    assert notice["Subject"] == render.EMAIL_CHANGED_SUBJECT
    body = notice.get_body(preferencelist=("plain",))
    assert body is not None and "was changed on" in body.get_content()
    assert NEW not in notice.as_string()  # whoever reads the old mailbox need not learn it

    with app.app_context():
        audited = [
            (action, user_id, patient_id, outcome.value)
            for action, user_id, patient_id, outcome in db.session.execute(
                sa.select(
                    AuditEvent.action, AuditEvent.user_id, AuditEvent.patient_id, AuditEvent.outcome
                )
                .where(AuditEvent.action.like("email.%"))
                .order_by(AuditEvent.id)
            )
        ]
        stored = " ".join(
            str(value)
            for row in db.session.execute(sa.select(AuditEvent.__table__)).all()
            for value in row
        )
        (change,) = db.session.scalars(sa.select(EmailChange)).all()
        assert (change.old_email, change.new_email) == (person.email, NEW)
        assert change.confirmed_at is not None
    a = person.patient_id  # her identity is part of her record
    assert audited == [
        ("email.change_request", person.user_id, a, "allowed"),
        ("email.change", person.user_id, None, "denied"),  # the wrong password at the link
        ("email.change", person.user_id, a, "allowed"),
    ]
    assert NEW not in stored and person.email not in stored


def test_only_the_latest_link_works_and_a_password_change_ends_it(
    app: Flask, clinic: Clinic
) -> None:
    person = clinic.clinician
    client = app.test_client()
    login(client, person.email)
    assert ask(client, "first@clinic.test")[0] == 303
    (first,) = send(app, notifications.EMAIL_CONFIRM)
    assert ask(client, "second@clinic.test")[0] == 303
    (second,) = send(app, notifications.EMAIL_CONFIRM)
    anonymous = app.test_client()
    assert anonymous.get(link_in(first)).status_code == 400  # a newer change was asked for
    # A password change: whoever changed it may not have asked for the address.
    assert change_password(client, PASSWORD, NEW_PASSWORD)[0] == 303
    assert anonymous.get(link_in(second)).status_code == 400
    assert confirm(anonymous, link_in(second), NEW_PASSWORD) == 400
    assert email_of(app, person.user_id) == person.email


def test_a_password_changed_before_the_link_went_out_ends_the_change(
    app: Flask, clinic: Clinic
) -> None:
    """The owner shuts out whoever had her session (and asked for the address) by changing
    her password while the message still waits (SMTP down): it is never sent."""
    person = clinic.patient_a
    client = app.test_client()
    login(client, person.email)
    assert ask(client, "intruder@example.org")[0] == 303
    assert change_password(client, PASSWORD, NEW_PASSWORD)[0] == 303
    assert send(app, notifications.EMAIL_CONFIRM) == []  # not sent
    with app.app_context():
        (status,) = db.session.scalars(
            sa.select(Notification.status).where(
                Notification.purpose == notifications.EMAIL_CONFIRM
            )
        ).all()
    assert status == notifications.FAILED
    assert "is waiting" not in visible_text(client.get("/account/password"))
    assert email_of(app, person.user_id) == person.email


def test_an_address_with_an_account_gets_a_note_and_the_page_says_nothing(
    app: Flask, clinic: Clinic
) -> None:
    client = app.test_client()
    login(client, clinic.patient_b.email)
    taken = clinic.clinician.email
    status, _ = ask(client, taken)
    assert status == 303  # the same answer as for any address
    assert f"A message went to {taken}" in visible_text(client.get("/account/password"))
    (note,) = send(app, notifications.EMAIL_CONFIRM)
    assert note["To"] == taken
    assert note["Subject"] == render.EMAIL_IN_USE_SUBJECT
    assert "/account/email/" not in note.as_string()  # no link
    assert email_of(app, clinic.patient_b.user_id) == clinic.patient_b.email


def test_bad_requests_name_the_field_and_change_nothing(app: Flask, clinic: Clinic) -> None:
    person = clinic.patient_b
    client = app.test_client()
    login(client, person.email)
    for email, current, says in (
        (NEW, "not my password", "is not your current password"),
        (person.email.upper(), PASSWORD, "is your login address already"),
        ("no-at-sign", PASSWORD, "should match pattern"),
        ("", PASSWORD, "This field is required"),
        ("x" * 250 + "@example.org", PASSWORD, "254"),
    ):
        status, text = ask(client, email, current)
        assert status == 422, email
        assert says in text, (says, text)
    with app.app_context():
        assert db.session.scalars(sa.select(EmailChange)).all() == []
        assert (
            db.session.scalars(
                sa.select(Notification.id).where(
                    Notification.purpose == notifications.EMAIL_CONFIRM
                )
            ).all()
            == []
        )
        denied = db.session.scalars(
            sa.select(AuditEvent.outcome).where(AuditEvent.action == "email.change_request")
        ).all()
    assert [d.value for d in denied] == ["denied"]
    assert app.test_client().get("/account/password").status_code == 302  # login needed
    assert app.test_client().get("/account/email/not-a-token").status_code == 400


def test_an_address_taken_meanwhile_is_not_confirmed(app: Flask, clinic: Clinic) -> None:
    person = clinic.patient_a
    client = app.test_client()
    login(client, person.email)
    assert ask(client, NEW)[0] == 303
    (message,) = send(app, notifications.EMAIL_CONFIRM)
    with app.app_context():
        other = db.session.get(User, clinic.patient_b.user_id)
        assert other is not None
        other.email = NEW  # e.g. a clinician gave it to a new patient meanwhile
        db.session.commit()
    anonymous = app.test_client()
    assert confirm(anonymous, link_in(message)) == 409
    assert email_of(app, person.user_id) == person.email


def test_the_admin_reading_the_outbox_cannot_use_the_link(app: Flask, clinic: Clinic) -> None:
    client = app.test_client()
    login(client, clinic.patient_a.email)
    assert ask(client, NEW)[0] == 303
    with app.app_context():
        (row_id,) = db.session.scalars(
            sa.select(Notification.id).where(Notification.purpose == notifications.EMAIL_CONFIRM)
        ).all()
        assert notifications.deliver(db.session, row_id).status == "sent"
        (path,) = notifications.outbox_dir().glob("*.eml")
    admin = app.test_client()
    login(admin, clinic.admin.email)
    page = visible_text(admin.get(f"/admin/outbox/{path.name}"))
    assert notifications.EMAIL_LINK_HIDDEN in page
    assert not re.search(r"/account/email/[A-Za-z0-9_.\-]{20,}", page)
