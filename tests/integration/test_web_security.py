"""Web hardening (issue 6, items 3 and 4): CSRF on every state-changing form, no state change
on GET, security headers, session cookies, generic error pages and debug off.

Routes come from `app.url_map` and are called the way the access matrix builds them
(tests/integration/test_access_matrix.py), so a new route is covered without a new line here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from rehab import create_app
from rehab.db.models import Base
from rehab.extensions import db
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_access_matrix import (
    ROUTES,
    Ctx,
    allowed_actor,
    build_ctx,
    call,
    form_body,
)
from tests.support.actors import (
    ACTORS,
    ADMIN,
    CLINICIAN_ON,
    PATIENT_A,
    bearer,
    logged_in_clients,
    token_of,
)
from tests.support.clinic import CSRF_RE, PASSWORD, build_clinic, csrf_token, login
from tests.support.pages import text

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Columns a read is meant to touch: the session's and the device key's "last seen".
READ_TOUCHES = {("user_sessions", "last_seen_at"), ("api_tokens", "last_used_at")}
SECRET_TEXT = "ZQX-internal-detail-do-not-show"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        app_settings(database_url, tmp_path, secret_key="w" * 40, login_rate_limit="1000/minute")
    )
    yield app
    dispose_engines(app)


def html_post_routes(app: Flask) -> list[tuple[str, str]]:
    return sorted(
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method in ("POST", "PUT", "PATCH", "DELETE") and not rule.endpoint.startswith("api.")
    )


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the audit trail (reads are audited, by design)."""
    with app.app_context():
        state = {}
        for table in Base.metadata.sorted_tables:
            if table.name == "audit_events":
                continue
            columns = [c for c in table.columns if (table.name, c.name) not in READ_TOUCHES]
            rows = db.session.execute(sa.select(*columns).order_by(*table.primary_key)).all()
            state[table.name] = [tuple(row) for row in rows]
        db.session.rollback()
        return state


# --- CSRF -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_html_post_refuses_a_missing_or_forged_csrf_token_and_stores_nothing(
    app: Flask,
) -> None:
    ctx = build_ctx(app)
    clients = logged_in_clients(app, ctx.clinic)
    routes = html_post_routes(app)
    assert len(routes) >= 25
    before = snapshot(app)
    for key in routes:
        route = ROUTES[key]
        actor = allowed_actor(route)
        client = clients[actor]
        body = form_body(ctx, route, key, actor, client, "existing")
        assert body.pop("csrf_token")
        url = ctx.url(route, "existing")
        for data in (body, {**body, "csrf_token": "forged"}, {**body, "csrf_token": ""}):
            response = client.post(url, data=data)
            assert response.status_code == 400, (key, actor, response.status_code)
            assert "could not be understood" in text(response), key
        # The token of another session is refused too.
        other = app.test_client()
        stolen = {**body, "csrf_token": token_of(other)}
        assert client.post(url, data=stolen).status_code == 400, key
    assert snapshot(app) == before
    # The one POST without a CSRF token by design: RFC 8058 one-click unsubscribe from a mail
    # client (no session; the signed link is the proof, and it can only turn reminders off).
    unsubscribe = ctx.url(ROUTES[("settings.unsubscribe_post", "POST")], "existing")
    one_click = app.test_client().post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 204


def test_the_api_takes_no_session_cookie(app: Flask) -> None:
    """The API is exempt from CSRF because it authenticates with bearer tokens only: a
    logged-in browser session (what a cross-site request would carry) gets 401."""
    with app.app_context():
        clinic = build_clinic()
    client = app.test_client()
    login(client, clinic.patient_a.email)
    a = clinic.patient_a.patient_id
    assert client.get("/api/v1/me").status_code == 401
    response = client.post(f"/api/v1/patients/{a}/events", json={"event_type": "other"})
    assert response.status_code == 401


# --- GET changes nothing ------------------------------------------------------------------------


@pytest.mark.slow
def test_no_get_changes_state(app: Flask) -> None:
    ctx: Ctx = build_ctx(app)
    clients = logged_in_clients(app, ctx.clinic)
    before = snapshot(app)
    calls = 0
    for key, route in ROUTES.items():
        if key[1] != "GET":
            continue
        for actor in ACTORS:
            if key[0] in ("summary.chart", "summary.pdf") and actor in route.allowed:
                continue  # slow renders; read-only like the summary page (audited, below)
            for target in ("existing", "missing") if route.targeted else ("existing",):
                call(ctx, app, clients, key, actor, target)
                calls += 1
    after = snapshot(app)
    changed = {name for name in before if before[name] != after[name]}
    assert not changed, changed
    assert calls > 150
    print(f"\n{calls} GET calls, no table changed")


# --- headers and cookies -----------------------------------------------------------------------


def assert_security_headers(response: TestResponse, where: str) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == CSP, where
    assert headers["X-Content-Type-Options"] == "nosniff", where
    assert headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin"), where
    assert headers["X-Frame-Options"] == "DENY", where
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], where


def test_security_headers_and_no_store_on_private_answers(app: Flask) -> None:
    with app.app_context():
        clinic = build_clinic()
    clients = logged_in_clients(app, clinic)
    a = clinic.patient_a.patient_id
    private = [
        (PATIENT_A, "/me/"),
        (PATIENT_A, "/me/history"),
        (PATIENT_A, "/me/account"),
        (CLINICIAN_ON, "/clinic/"),
        (CLINICIAN_ON, f"/clinic/patients/{a}"),
        (CLINICIAN_ON, f"/clinic/patients/{a}/summary"),
        (CLINICIAN_ON, "/clinic/alerts/"),
        (CLINICIAN_ON, "/settings/notifications"),
        (ADMIN, "/admin/"),
        (ADMIN, "/admin/audit"),
        (PATIENT_A, f"/clinic/patients/{a}"),  # a 404 about a patient is private too
    ]
    for actor, url in private:
        response = clients[actor].get(url)
        assert response.status_code in (200, 404), url
        assert_security_headers(response, url)
        assert response.headers["Cache-Control"] == "no-store", url
        assert "Strict-Transport-Security" not in response.headers  # not in testing mode
    api = app.test_client()
    for url in ("/api/v1/me", f"/api/v1/patients/{a}/series", "/api/v1/patients/1/nothing"):
        response = api.get(url, headers=bearer(clinic, PATIENT_A))
        assert_security_headers(response, url)
        assert response.headers["Cache-Control"] == "no-store", url
    unauthorized = api.get("/api/v1/me")
    assert unauthorized.status_code == 401
    assert unauthorized.headers["Cache-Control"] == "no-store"
    for url in ("/login", "/static/css/app.css"):
        response = api.get(url)
        assert_security_headers(response, url)
        response.close()


def session_cookie_of(response: TestResponse) -> str:
    cookies = [v for v in response.headers.getlist("Set-Cookie") if v.startswith("session=")]
    assert cookies, response.headers
    return cookies[-1]


def test_session_cookie_is_httponly_and_samesite_lax(app: Flask) -> None:
    with app.app_context():
        clinic = build_clinic()
    client = app.test_client()
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": clinic.patient_a.email, "password": PASSWORD, "csrf_token": token}
    )
    cookie = session_cookie_of(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # testing mode is plain http


@pytest.fixture
def production_app(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # Even with Flask's debug switch on in the environment, production runs without debug.
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app(
        app_settings(
            sqlite_url, tmp_path, mode="production", secret_key="x" * 40,
            login_rate_limit="1000/minute",
        )
    )  # fmt: skip
    yield app
    dispose_engines(app)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_production_sends_hsts_and_secure_cookies_and_never_debugs(
    production_app: Flask, database_url: str
) -> None:
    app = production_app
    assert app.debug is False and app.testing is False
    assert app.config["PROPAGATE_EXCEPTIONS"] in (None, False)
    with app.app_context():
        clinic = build_clinic()
    client = app.test_client()
    page = client.get("/login", base_url="https://rehab.example")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert_security_headers(page, "/login")
    found = CSRF_RE.search(text(page))
    assert found
    response = client.post(
        "/login",
        data={"email": clinic.patient_a.email, "password": PASSWORD, "csrf_token": found[1]},
        base_url="https://rehab.example",
        # Over HTTPS the CSRF check also wants a same-origin Referer (flask-wtf's SSL strict).
        headers={"Referer": "https://rehab.example/login"},
    )
    assert response.status_code == 302
    cookie = session_cookie_of(response)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    api = client.get("/api/v1/openapi.json", base_url="https://rehab.example")
    assert "Strict-Transport-Security" in api.headers


@pytest.mark.parametrize("mode", ["testing", "production"])
def test_debug_is_off_outside_development(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app(app_settings(sqlite_url, tmp_path, mode=mode, secret_key="d" * 40))
    try:
        assert app.debug is False
        assert app.jinja_env.auto_reload is False
    finally:
        dispose_engines(app)


# --- error pages ------------------------------------------------------------------------------


def broken_app(database_url: str, tmp_path: Path, mode: str) -> Flask:
    app = create_app(app_settings(database_url, tmp_path, mode=mode, secret_key="e" * 40))

    def explode() -> str:
        raise RuntimeError(f"{SECRET_TEXT} /etc/secret password=hunter2")

    app.add_url_rule("/test-only/explode", "test_only_explode", explode)
    app.add_url_rule("/api/v1/test-only/explode", "test_only_api_explode", explode)
    return app


@pytest.mark.parametrize("mode", ["testing", "production"])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unexpected_error_gives_a_generic_answer(
    database_url: str, tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = broken_app(database_url, tmp_path, mode)
    try:
        client = app.test_client()
        page = client.get("/test-only/explode")
        assert page.status_code == 500
        body = text(page)
        assert "Something went wrong" in body
        for leak in (SECRET_TEXT, "hunter2", "RuntimeError", "Traceback", 'File "', "explode"):
            assert leak not in body, leak
        assert_security_headers(page, "500 page")

        api = client.get("/api/v1/test-only/explode")
        assert api.status_code == 500
        assert api.json == {"error": "internal_error", "request_id": api.headers["X-Request-ID"]}
        assert SECRET_TEXT not in api.get_data(as_text=True)
        # The log has the exception for the operators (with the request id to find it).
        assert any(api.headers["X-Request-ID"] in r.getMessage() for r in caplog.records)
    finally:
        dispose_engines(app)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_error_is_logged_without_the_values_postgresql_puts_in_it(
    database_url: str, tmp_path: Path
) -> None:
    """PostgreSQL names the values in its error's DETAIL ("Key (email)=(…) already exists"):
    the log keeps the traceback, the class, the SQLSTATE and the constraint, not that text.
    Any handler prints it so: the app redacts the records themselves."""
    import io
    import logging

    from rehab.db.models import User

    marker = "marker-7f3c@patient.test"
    # Whatever earlier tests left: this app must install the redaction itself.
    before = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    app = create_app(app_settings(database_url, tmp_path, secret_key="e" * 40))

    def duplicate() -> str:
        for _ in range(2):
            db.session.add(User(email=marker, display_name="M", role="patient", password_hash=""))
            db.session.flush()
        return "unreachable"

    app.add_url_rule("/test-only/duplicate", "test_only_duplicate", duplicate)
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    app.logger.addHandler(handler)
    try:
        response = app.test_client().get("/test-only/duplicate")
        assert response.status_code == 500
        log = written.getvalue()
        assert marker not in log and "Key (email)" not in log
        assert response.headers["X-Request-ID"] in log
        assert "IntegrityError sqlstate=23505 constraint=uq_users_email" in log
        assert 'File "' in log and "in duplicate" in log  # the frames are kept
    finally:
        app.logger.removeHandler(handler)
        logging.setLogRecordFactory(before)
        dispose_engines(app)


def test_http_errors_are_generic_pages_and_json(app: Flask) -> None:
    client = app.test_client()
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Traceback" not in text(missing)
    method = client.get("/logout")
    assert method.status_code == 405 and "Method Not Allowed" in text(method)
    api = client.get("/api/v1/no/such/thing", headers={"Authorization": "Bearer x"})
    assert api.status_code in (401, 404)
    assert set(json.loads(api.get_data(as_text=True))) <= {"error", "message"}
