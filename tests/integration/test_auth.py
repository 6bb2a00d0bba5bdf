"""Logging in and out, one-time set-password links, CSRF, and every HTML page rendering."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, Event, SessionLog, User
from rehab.domain.vocabulary import Role
from rehab.extensions import db
from rehab.notifications.tokens import make_token
from rehab.services import accounts
from tests.support.clinic import PASSWORD, Clinic, csrf_token, login
from tests.support.history import add_fall
from tests.support.pages import form_data, get_form, text, visible_text

NEW_PASSWORD = "a long and new pass phrase"


def test_login_redirects_each_role_home(app: Flask, clinic: Clinic) -> None:
    for person, home in (
        (clinic.patient_a, "/me/"),
        (clinic.clinician, "/clinic/"),
        (clinic.admin, "/admin/"),
    ):
        client = app.test_client()
        login(client, person.email)
        response = client.get("/")
        assert response.status_code == 302
        assert response.headers["Location"] == home
        assert client.get(home).status_code == 200


def test_logout_is_a_post_with_csrf_and_ends_the_session(
    client: FlaskClient, clinic: Clinic
) -> None:
    login(client, clinic.patient_a.email)
    page = client.get("/me/")
    data = form_data(text(page), "/logout")
    assert "csrf_token" in data

    # Without the token: refused, still logged in.
    assert client.post("/logout", data={}).status_code == 400
    assert client.get("/me/").status_code == 200
    # GET never logs out (no state change on GET).
    assert client.get("/logout").status_code == 405

    response = client.post("/logout", data=data)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")
    after = client.get("/me/")
    assert after.status_code == 302
    assert "/login" in after.headers["Location"]


def test_wrong_password_and_unknown_email_get_the_same_page(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    token = csrf_token(client, "/login")
    wrong = client.post(
        "/login",
        data={"email": clinic.patient_a.email, "password": "not the password", "csrf_token": token},
    )
    unknown = client.post(
        "/login",
        data={"email": "nobody@clinic.test", "password": "not the password", "csrf_token": token},
    )
    assert wrong.status_code == unknown.status_code == 200
    assert "E-mail or password is not right." in visible_text(wrong)
    assert visible_text(wrong) == visible_text(unknown)
    # Still not logged in.
    assert client.get("/me/").status_code == 302
    with app.app_context():
        denied = db.session.scalar(
            sa.select(sa.func.count(AuditEvent.id)).where(
                AuditEvent.action == "login", AuditEvent.outcome == "denied"
            )
        )
    assert denied == 2


def test_disabled_account_cannot_log_in(app: Flask, client: FlaskClient, clinic: Clinic) -> None:
    with app.app_context():
        user = db.session.get(User, clinic.patient_b.user_id)
        assert user is not None
        user.is_active = False
        db.session.commit()
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": clinic.patient_b.email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 200
    assert "E-mail or password is not right." in visible_text(response)


def _invite(app: Flask, email: str = "newbie@clinic.test") -> str:
    with app.app_context():
        user = accounts.create_staff_user(db.session, email, "New Clinician", Role.CLINICIAN, None)
        db.session.commit()
        return accounts.make_invite_token(user, app.config["SECRET_KEY"])


def _event_of(app: Flask, clinic: Clinic) -> int:
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        add_fall(a, clinic.patient_a.user_id, clinic.program_start)
        event_id = db.session.scalar(sa.select(sa.func.max(Event.id)).where(Event.patient_id == a))
        assert event_id is not None
        return event_id


def _reset_link(app: Flask, user_id: int) -> str:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        secret = app.config["SECRET_KEY"]
        return f"/reset/{accounts.make_link_token(user, secret, accounts.PASSWORD_RESET)}"


def test_invite_link_sets_the_password_once(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    url = f"/welcome/{_invite(app)}"
    page = client.get(url)
    assert page.status_code == 200
    assert "Welcome, New Clinician" in visible_text(page)
    data = form_data(text(page), url)
    data.update(password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    response = client.post(url, data=data)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")

    login(client, "newbie@clinic.test", NEW_PASSWORD)
    assert client.get("/clinic/").status_code == 200

    # The same link again: refused, on GET and on POST.
    other = app.test_client()
    again = other.get(url)
    assert again.status_code == 400
    assert "already used" in visible_text(again)
    reuse = other.post(url, data={**data, "password": "x" * 20, "confirm": "x" * 20})
    assert reuse.status_code == 400
    login(other, "newbie@clinic.test", NEW_PASSWORD)


def test_invite_refuses_mismatch_and_short_passwords(app: Flask, client: FlaskClient) -> None:
    url = f"/welcome/{_invite(app)}"
    data = get_form(client, url)
    mismatch = client.post(url, data={**data, "password": NEW_PASSWORD, "confirm": "different!!!!"})
    assert mismatch.status_code == 200
    assert "The two passwords differ." in visible_text(mismatch)
    short = client.post(url, data={**data, "password": "short", "confirm": "short"})
    assert "at least 12 characters" in visible_text(short)
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == "newbie@clinic.test")).one()
        assert user.password_hash is None
    # The link still works after refused attempts.
    assert client.get(url).status_code == 200


def test_tampered_invite_link_is_refused(client: FlaskClient) -> None:
    response = client.get("/welcome/not-a-real-token")
    assert response.status_code == 400
    assert "not valid" in visible_text(response)


def test_post_without_csrf_token_is_rejected_and_stores_nothing(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    login(client, clinic.patient_a.email)
    data = get_form(client, "/me/")
    data.update({"back_pain": "2", "leg_pain": "0"})
    missing = {k: v for k, v in data.items() if k != "csrf_token"}
    assert client.post("/me/", data=missing).status_code == 400
    forged = {**data, "csrf_token": "forged"}
    assert client.post("/me/", data=forged).status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(SessionLog.id))) == 0
    # The same form with its token is accepted: the token was the only problem.
    assert client.post("/me/", data=data).status_code == 200


def test_anonymous_visitors_are_sent_to_login(client: FlaskClient, clinic: Clinic) -> None:
    for path in (
        "/me/",
        "/me/history",
        "/clinic/",
        "/clinic/patients/1",
        "/admin/",
        "/admin/audit",
    ):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"]
    assert client.post("/me/", data={}).status_code in (302, 400)


def test_private_pages_are_not_cached_and_carry_a_csp(client: FlaskClient, clinic: Clinic) -> None:
    login(client, clinic.patient_a.email)
    response = client.get("/me/")
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


# --- every page -------------------------------------------------------------------------------

# Executable inline scripts; JSON data blocks (type="application/json", how charts receive
# their figures) are not executed and are allowed by the CSP.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>", re.I)
INLINE_STYLE = re.compile(r"""\sstyle\s*=|<style""", re.I)


def test_every_get_page_renders(app: Flask, clinic: Clinic) -> None:
    """Each GET page of the HTML blueprints renders for its role: 200, the shared layout, and
    nothing the CSP would block (no inline script or style). A new page without URL
    parameters is covered automatically; one with parameters must be added below."""
    clients = {}
    for role, person in (
        ("patient", clinic.patient_a),
        ("clinic", clinic.clinician),
        ("admin", clinic.admin),
    ):
        clients[role] = app.test_client()
        login(clients[role], person.email)
    clients["alerts"] = clients["settings"] = clients["clinic"]
    clients["outbox"] = clients["admin"]
    clients["auth"] = clients["api"] = app.test_client()
    a = clinic.patient_a.patient_id
    with_params = {
        "/clinic/patients/<int:patient_id>": f"/clinic/patients/{a}",
        "/clinic/patients/<int:patient_id>/program/new": f"/clinic/patients/{a}/program/new",
        "/clinic/patients/<int:patient_id>/program/end": f"/clinic/patients/{a}/program/end",
        "/clinic/patients/<int:patient_id>/details": f"/clinic/patients/{a}/details",
        "/clinic/patients/<int:patient_id>/invite": f"/clinic/patients/{a}/invite",
        "/clinic/patients/<int:patient_id>/care-team": f"/clinic/patients/{a}/care-team",
        "/clinic/patients/<int:patient_id>/events/new": f"/clinic/patients/{a}/events/new",
        "/clinic/patients/<int:patient_id>/findings/new": f"/clinic/patients/{a}/findings/new",
        "/clinic/patients/<int:patient_id>/outcomes/new": f"/clinic/patients/{a}/outcomes/new",
        "/clinic/patients/<int:patient_id>/baselines/<any(leg_pain, back_pain):metric>": (
            f"/clinic/patients/{a}/baselines/leg_pain"
        ),
        "/clinic/patients/<int:patient_id>/<any(events, findings, outcomes):kind>/<int:record_id>"
        "/entered-in-error": (
            f"/clinic/patients/{a}/events/{_event_of(app, clinic)}/entered-in-error"
        ),
        "/me/events/<int:event_id>/entered-in-error": (
            f"/me/events/{_event_of(app, clinic)}/entered-in-error"
        ),
        "/welcome/<token>": f"/welcome/{_invite(app)}",
        "/reset/<token>": _reset_link(app, clinic.patient_b.user_id),
        "/unsubscribe/<token>": "/unsubscribe/"
        + make_token(app.config["SECRET_KEY"], clinic.patient_a.user_id),
    }
    extra = [
        ("clinic", f"/clinic/patients/{a}/outcomes/new?instrument=psfs"),
        ("clinic", "/clinic/?q=alice&sort=leg_pain"),
        ("admin", "/admin/audit?action=login&page=2"),
        # Every role's own password page.
        ("patient", "/account/password"),
        ("clinic", "/account/password"),
        ("admin", "/account/password"),
    ]
    visits = list(extra)
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.partition(".")[0]
        if "GET" not in (rule.methods or ()) or blueprint not in clients:
            continue
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.docs":
            continue  # JSON, tested with the API
        if rule.endpoint in ("auth.index", "auth.second_factor"):
            continue  # redirects without a login under way; tested above and in test_two_factor
        if rule.endpoint == "auth.change_password":
            continue  # every role's, in `extra`
        if rule.endpoint == "auth.confirm_email":
            continue  # needs a change asked for: tests/integration/test_change_email.py
        if rule.endpoint.startswith("outbox.outbox_"):
            continue  # need a stored message; tests/integration/test_notifications_outbox.py
        if rule.rule.endswith((".csv", ".fhir.json")):
            continue  # a download, not a page: tests/integration/test_export*.py
        if rule.arguments:
            assert rule.rule in with_params, f"add a URL for {rule.rule} to this test"
            visits.append((blueprint, with_params[rule.rule]))
        else:
            visits.append((blueprint, rule.rule))
    assert len(visits) >= 18
    for role, url in visits:
        response = clients[role].get(url)
        assert response.status_code == 200, (url, response.status_code)
        html = text(response)
        assert '<meta name="viewport"' in html, url
        assert 'href="#main"' in html, url
        assert not INLINE_SCRIPT.search(html), url
        assert not INLINE_STYLE.search(html), url
        assert "Traceback" not in html, url
        # Each label points at its own input: no id twice on a page (two forms on one page
        # sharing a field name did this once). The forms' hidden CSRF fields have no label.
        ids = [i for i in re.findall(r'\sid="([^"]+)"', html) if not i.endswith("csrf_token")]
        assert len(ids) == len(set(ids)), (url, sorted({i for i in ids if ids.count(i) > 1}))


def test_error_page_is_generic(client: FlaskClient, clinic: Clinic) -> None:
    login(client, clinic.patient_a.email)
    response = client.get("/me/no-such-page")
    assert response.status_code == 404
    assert "does not exist, or you do not have access" in visible_text(response)
