"""The audit trail (issue 6, item 2).

- Every request that reads or writes patient data, and every refused attempt, writes exactly
  one row: UTC time, user, role, patient id, action, outcome (allowed/denied/failed), and the
  request id the response carries in X-Request-ID. Taken route by route from the access
  matrix's table, so a new patient-data route must be given its action here.
- Logins, failures, lockouts, logouts, and changes to accounts and care teams are audited.
- Rows hold ids only: no name or e-mail in any column.
- The table is append-only: the application has no UPDATE or DELETE of it, and on PostgreSQL
  a trigger (migration ce944c465402) refuses them (and TRUNCATE) from anyone.
- Admins search it on /admin/audit.

Unauthenticated requests are refused before any access decision (401, or the login page) and
are not audited: they name no user, and anyone could fill the table with them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from rehab import create_app, migrate
from rehab.db.models import AuditEvent, Patient, User, utcnow
from rehab.extensions import db
from rehab.services.login import LOCK_AFTER_FAILURES
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_access_matrix import (
    EVERYONE,
    MISSING,
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
    ANONYMOUS,
    CLINICIAN_ON,
    PATIENT_A,
    logged_in_clients,
    person,
    token_of,
)
from tests.support.clinic import PASSWORD, Clinic, build_clinic, csrf_token, login

# The action each patient-data route audits (for one patient, the one the URL names or the
# caller's own). A caller refused by the blueprint's role check is audited with the endpoint
# as the action.
PATIENT_DATA: dict[tuple[str, str], str] = {
    ("patient.today", "GET"): "session_log.read",
    ("patient.today", "POST"): "session_log.write",
    ("patient.yesterday", "GET"): "session_log.read",
    ("patient.yesterday", "POST"): "session_log.write",
    ("patient.new_event", "POST"): "event.write",
    ("patient.history", "GET"): "history.read",
    ("patient.progress", "GET"): "progress.read",
    ("patient.access", "GET"): "access_report.read",
    ("patient.program", "GET"): "program.read",
    ("patient.activities", "GET"): "outcome.read",
    ("patient.activities", "POST"): "outcome.write",
    ("clinic.patient", "GET"): "patient.read",
    ("clinic.patient_details", "GET"): "patient.read",
    ("clinic.patient_details", "POST"): "patient.update",
    ("clinic.new_patient_invite", "POST"): "patient.invite",
    ("clinic.hand_over", "GET"): "patient.read",
    ("clinic.hand_over", "POST"): "patient.transfer",
    ("clinic.new_event", "GET"): "patient.read",
    ("clinic.new_event", "POST"): "event.write",
    ("clinic.entered_in_error", "GET"): "patient.read",
    ("patient.event_entered_in_error", "GET"): "event.read",
    ("patient.event_entered_in_error", "POST"): "event.entered_in_error",
    ("clinic.entered_in_error", "POST"): "event.entered_in_error",
    ("clinic.undo_entered_in_error", "POST"): "event.entered_in_error_undo",
    ("clinic.new_findings", "GET"): "patient.read",
    ("clinic.new_findings", "POST"): "finding.write",
    ("clinic.new_outcome", "GET"): "patient.read",
    ("clinic.new_outcome", "POST"): "outcome.write",
    ("clinic.new_program", "GET"): "patient.read",
    ("clinic.new_program", "POST"): "program.write",
    ("clinic.end_program", "GET"): "patient.read",
    ("clinic.end_program", "POST"): "program.write",
    ("clinic.pin_baseline", "GET"): "patient.read",
    ("clinic.pin_baseline", "POST"): "baseline.pin",
    ("clinic.unpin_baseline", "POST"): "baseline.unpin",
    ("summary.summary", "GET"): "patient.summary",
    ("summary.chart", "GET"): "patient.summary_chart",
    ("summary.pdf", "GET"): "patient.summary_pdf",
    ("alerts.acknowledge", "POST"): "alert.acknowledge",
    ("alerts.resolve", "POST"): "alert.resolve",
    ("api.submit_log", "POST"): "session_log.write",
    ("api.put_todays_log", "PUT"): "session_log.write",
    ("api.get_series", "GET"): "series.read",
    ("api.create_event", "POST"): "event.write",
    ("api.list_events", "GET"): "event.read",
    ("api.list_programs", "GET"): "program.read",
    ("api.export_patient", "GET"): "patient.export",
    ("clinic.export_patient", "GET"): "patient.export",
    ("patient.export_own", "GET"): "patient.export",
    ("api.export_patient_fhir", "GET"): "patient.export",
    ("clinic.export_patient_fhir", "GET"): "patient.export",
    ("patient.export_own_fhir", "GET"): "patient.export",
}
# Pages about several patients: one row per patient shown.
MANY_PATIENTS: dict[tuple[str, str], set[str]] = {
    ("clinic.caseload", "GET"): {"caseload.read"},
    ("alerts.inbox", "GET"): {"alert.list", "notification.list"},
    ("clinic.outcomes", "GET"): {"outcomes.read"},
    ("api.export_all", "GET"): {"patient.export"},
    ("api.export_all_fhir", "GET"): {"patient.export"},
}
# An e-mail in the outbox, as the admin reads it (alert explanations, event notes): one row
# per patient it is about.
OUTBOX_READS = {("outbox.outbox_message", "GET"), ("outbox.outbox_html", "GET")}
# The admin's list of accounts shows every patient's name and address: one row per patient.
ADMIN_LISTS: dict[tuple[str, str], str] = {("admin.index", "GET"): "user.list"}
# Pages with no patient data (a blank form, the caller's own account, admin pages audited
# below, public pages): no patient row.
NO_PATIENT_DATA = {
    key
    for key in ROUTES
    if key not in PATIENT_DATA
    and key not in MANY_PATIENTS
    and key not in OUTBOX_READS
    and key not in ADMIN_LISTS
}
ROW = re.compile(r"^[a-z_]+:[A-Za-z0-9._-]+$")


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        app_settings(database_url, tmp_path, secret_key="a" * 40, login_rate_limit="1000/minute")
    )
    yield app
    dispose_engines(app)


def last_id(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.max(AuditEvent.id))) or 0


def rows_since(app: Flask, after: int) -> list[AuditEvent]:
    with app.app_context():
        found = list(
            db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id)
            )
        )
        db.session.expunge_all()
        return found


def user_role(clinic: Clinic, actor: str) -> tuple[int, str]:
    who = person(clinic, actor)
    assert who is not None
    role = {"patient_a": "patient", "patient_b": "patient", "admin": "admin"}.get(
        actor, "clinician"
    )
    return who.user_id, role


def the_row(app: Flask, after: int, response: TestResponse, where: object) -> AuditEvent:
    """The one row the request wrote (rows carry the request id the response names; a form
    page read just before a POST has its own)."""
    request_id = response.headers["X-Request-ID"]
    assert request_id, where
    new = [r for r in rows_since(app, after) if r.request_id == request_id]
    assert len(new) == 1, (where, [(r.action, r.outcome.value, r.patient_id) for r in new])
    (row,) = new
    assert row.at.tzinfo is not None and row.at.utcoffset() == dt.timedelta(0), where
    assert abs((utcnow() - row.at).total_seconds()) < 60, where
    return row


@pytest.mark.slow
def test_every_patient_data_request_writes_exactly_one_row(app: Flask) -> None:
    ctx: Ctx = build_ctx(app)
    clinic = ctx.clinic
    clients = logged_in_clients(app, clinic)
    a = clinic.patient_a.patient_id
    for key, route in ROUTES.items():
        if key[1] == "POST" and route.form is not None and route.allowed != EVERYONE:
            actor = allowed_actor(route)
            form_body(ctx, route, key, actor, clients[actor], "existing")
    checked = {"allowed": 0, "denied": 0, "missing": 0, "anonymous": 0}

    # Refusals first (they change nothing), then the allowed calls.
    for key, action in PATIENT_DATA.items():
        route = ROUTES[key]
        for actor in ACTORS:
            if actor in route.allowed:
                continue
            before = last_id(app)
            response = call(ctx, app, clients, key, actor)
            if actor == ANONYMOUS:
                assert rows_since(app, before) == [], key  # see the module docstring
                checked["anonymous"] += 1
                continue
            row = the_row(app, before, response, (key, actor))
            assert row.outcome.value == "denied", (key, actor)
            assert (row.user_id, row.role) == user_role(clinic, actor), (key, actor)
            assert row.action in (action, key[0]), (key, actor, row.action)
            if "{patient}" in route.path:
                assert row.patient_id == a, (key, actor)
            elif actor == "patient_b" and key[0].startswith("patient."):
                assert row.patient_id == clinic.patient_b.patient_id
            checked["denied"] += 1
        if route.targeted:
            actor = allowed_actor(route)
            before = last_id(app)
            response = call(ctx, app, clients, key, actor, "missing")
            assert response.status_code == 404
            row = the_row(app, before, response, (key, "missing"))
            assert row.outcome.value == "denied" and row.action == action, key
            assert row.patient_id == (MISSING if "{patient}" in route.path else None), key
            checked["missing"] += 1

    ordered = sorted(PATIENT_DATA.items(), key=lambda item: item[0][1] != "GET")
    for key, action in ordered:
        route = ROUTES[key]
        actor = allowed_actor(route)
        before = last_id(app)
        response = call(ctx, app, clients, key, actor)
        assert response.status_code in route.ok, (key, response.status_code)
        row = the_row(app, before, response, (key, actor))
        assert (row.action, row.outcome.value) == (action, "allowed"), key
        assert (row.user_id, row.role) == user_role(clinic, actor), key
        assert row.patient_id == a, key
        checked["allowed"] += 1

    # Lists of patients: one row per patient shown, none of anyone else's.
    for key, actions in MANY_PATIENTS.items():
        before = last_id(app)
        response = call(ctx, app, clients, key, CLINICIAN_ON)
        assert response.status_code == 200
        new = rows_since(app, before)
        assert new and {r.request_id for r in new} == {response.headers["X-Request-ID"]}
        assert {r.action for r in new} <= actions
        assert {r.patient_id for r in new} <= {a, clinic.patient_b.patient_id}
        assert len({(r.action, r.patient_id) for r in new}) == len(new)
        assert {(r.user_id, r.outcome.value) for r in new} == {
            (clinic.clinician.user_id, "allowed")
        }

    # The outbox's alert e-mail (about patient A): one row naming A, per read.
    for key in sorted(OUTBOX_READS):
        before = last_id(app)
        response = call(ctx, app, clients, key, ADMIN)
        assert response.status_code == 200, key
        new = rows_since(app, before)
        assert [(r.action, r.patient_id, r.outcome.value) for r in new] == [
            ("outbox.read", a, "allowed")
        ], key
        assert new[0].request_id == response.headers["X-Request-ID"]

    # The admin's account list: one row per patient, each naming the admin.
    with app.app_context():
        every_patient = set(db.session.scalars(sa.select(Patient.id)))
        db.session.rollback()
    for key, action in ADMIN_LISTS.items():
        before = last_id(app)
        response = call(ctx, app, clients, key, ADMIN)
        assert response.status_code == 200, key
        new = rows_since(app, before)
        assert sorted((r.action, r.patient_id) for r in new) == sorted(
            (action, p) for p in every_patient
        ), key
        assert {(r.user_id, r.role, r.request_id) for r in new} == {
            (clinic.admin.user_id, "admin", response.headers["X-Request-ID"])
        }

    # Pages without patient data write no patient row.
    for key in sorted(NO_PATIENT_DATA):
        if key[1] != "GET":
            continue
        for actor in sorted(ROUTES[key].allowed, key=ACTORS.index)[:1]:
            before = last_id(app)
            call(ctx, app, clients, key, actor)
            assert [r.patient_id for r in rows_since(app, before)] in ([], [None]), key
    print(f"\naudit: {len(PATIENT_DATA)} patient-data routes; rows checked: {checked}")


def test_failed_attempts_are_one_failed_row(app: Flask) -> None:
    """An allowed caller's request that fails (invalid body) is on record as failed."""
    with app.app_context():
        clinic = build_clinic()
    a = clinic.patient_a.patient_id
    clients = logged_in_clients(app, clinic)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {clinic.patient_a.token}"}
    attempts = [
        (lambda: api.post(f"/api/v1/patients/{a}/logs", json={"back_pain": 99}, headers=headers),
         "session_log.write", PATIENT_A),
        (lambda: api.post(f"/api/v1/patients/{a}/events", json={}, headers=headers),
         "event.write", PATIENT_A),
        (lambda: api.get(f"/api/v1/patients/{a}/series?start=soon", headers=headers),
         "series.read", PATIENT_A),
        (lambda: clients[PATIENT_A].post("/me/", data={"csrf_token": token_of(
            clients[PATIENT_A]), "back_pain": "99"}), "session_log.write", PATIENT_A),
        (lambda: clients[CLINICIAN_ON].post(f"/clinic/patients/{a}/events/new", data={
            "csrf_token": token_of(clients[CLINICIAN_ON])}), "event.write", CLINICIAN_ON),
        (lambda: clients[CLINICIAN_ON].post(f"/clinic/patients/{a}/baselines/leg_pain", data={
            "csrf_token": token_of(clients[CLINICIAN_ON]), "leg_pain-level": "11",
            "leg_pain-effective_from": clinic_today().isoformat()}), "baseline.pin", CLINICIAN_ON),
    ]  # fmt: skip
    for send, action, actor in attempts:
        before = last_id(app)
        response = send()
        assert response.status_code == 422, action
        row = the_row(app, before, response, action)
        assert (row.action, row.outcome.value, row.patient_id) == (action, "failed", a)
        assert (row.user_id, row.role) == user_role(clinic, actor)


def test_logins_failures_lockouts_and_logouts_are_audited(app: Flask) -> None:
    with app.app_context():
        clinic = build_clinic()
    client = app.test_client()
    user = clinic.patient_a.user_id

    def attempt(password: str) -> TestResponse:
        token = csrf_token(client, "/login")
        return client.post(
            "/login",
            data={"email": clinic.patient_a.email, "password": password, "csrf_token": token},
        )

    before = last_id(app)
    login(client, clinic.patient_a.email)
    client.post("/logout", data={"csrf_token": token_of(client)})
    for _ in range(LOCK_AFTER_FAILURES):
        attempt("not the password")
    attempt(PASSWORD)  # locked: refused although right
    unknown = app.test_client()
    unknown.post(
        "/login",
        data={
            "email": "nobody@clinic.test",
            "password": "x",
            "csrf_token": csrf_token(unknown, "/login"),
        },
    )
    rows = [(r.action, r.outcome.value, r.user_id, r.role) for r in rows_since(app, before)]
    assert rows == [
        ("login", "allowed", user, "patient"),
        ("logout", "allowed", user, "patient"),
        *[("login", "denied", user, "patient")] * (LOCK_AFTER_FAILURES - 1),
        ("login.lockout", "denied", user, "patient"),
        ("login", "denied", user, "patient"),
        ("login", "denied", user, "patient"),
        ("login", "denied", None, "system"),
    ]


def test_account_role_and_care_team_changes_are_audited(app: Flask) -> None:
    """Accounts get their role when created (there is no role change afterwards): creating,
    inviting, disabling and enabling users, creating care teams and changing their members,
    a clinician adding a patient to a care team, and device keys are all on record, each as
    one row naming what changed by id."""
    with app.app_context():
        clinic = build_clinic()
    clients = logged_in_clients(app, clinic)
    admin, cara, patient = clients[ADMIN], clients[CLINICIAN_ON], clients[PATIENT_A]

    def one(client: FlaskClient, url: str, action: str, **data: str) -> AuditEvent:
        before = last_id(app)
        response = client.post(url, data={"csrf_token": token_of(client), **data})
        assert response.status_code in (200, 302, 303), (url, response.status_code)
        row = the_row(app, before, response, action)
        assert (row.action, row.outcome.value) == (action, "allowed")
        assert row.target is None or ROW.match(row.target), row.target
        return row

    created = one(
        admin, "/admin/users", "user.create", display_name="Gil New", email="gil@clinic.test",
        role="clinician",
    )  # fmt: skip
    assert created.target is not None
    gil = int(created.target.split(":")[1])
    one(admin, f"/admin/users/{gil}/invite", "user.invite")
    one(admin, f"/admin/users/{gil}/disable", "user.disable")
    one(admin, f"/admin/users/{gil}/enable", "user.enable")
    team = one(admin, "/admin/teams", "care_team.create", name="Team East")
    assert team.target is not None
    team_id = int(team.target.split(":")[1])
    dan = clinic.other_clinician.clinician_id
    added = one(
        admin, f"/admin/teams/{team_id}/members", "care_team.member_add",
        **{f"team{team_id}-clinician_id": str(dan)},
    )  # fmt: skip
    assert added.target == f"clinician:{dan}"
    removed = one(admin, f"/admin/teams/{team_id}/members/{dan}/remove", "care_team.member_remove")
    assert removed.target == f"clinician:{dan}" and removed.user_id == clinic.admin.user_id

    form = {
        "display_name": "Hal Patient",
        "email": "hal@patient.test",
        "care_team_id": str(clinic.team_north_id),
    }
    page = cara.get("/clinic/patients/new")
    assert page.status_code == 200
    new_patient = one(cara, "/clinic/patients/new", "patient.create", **form)
    assert new_patient.patient_id is not None and new_patient.role == "clinician"

    one(patient, "/me/account/tokens", "api_token.create", device_name="Tablet")
    one(patient, "/me/account/reminders", "account.reminders", reminder_opt_in="y")
    one(cara, "/settings/notifications", "account.notify_mode", notify_mode="digest")


def test_rows_hold_ids_only(app: Flask) -> None:
    """After a run of the whole matrix's kind of traffic, no column of any row holds a name,
    an e-mail address or free text."""
    ctx = build_ctx(app)
    clients = logged_in_clients(app, ctx.clinic)
    for key in PATIENT_DATA:
        route = ROUTES[key]
        for actor in ACTORS:
            if key[1] == "POST" and actor in route.allowed:
                continue  # writes are covered above; reads and refusals suffice here
            call(ctx, app, clients, key, actor)
    # A request id made of something else than a plain token is replaced, not stored.
    clients[PATIENT_A].get("/me/history", headers={"X-Request-ID": "alice@patient.test x"})
    with app.app_context():
        people = db.session.execute(sa.select(User.display_name, User.email)).all()
        rows = list(db.session.scalars(sa.select(AuditEvent)))
    words = {w for name, email in people for w in (*name.split(), email)}
    assert len(rows) > 50
    for row in rows:
        for column in ("role", "action", "request_id", "target"):
            value = getattr(row, column)
            if value is None:
                continue
            assert "@" not in value and " " not in value, (column, value)
            assert not any(word in value for word in words if len(word) > 3), (column, value)
        assert row.target is None or ROW.match(row.target), row.target
        assert row.request_id is None or re.fullmatch(r"[A-Za-z0-9]{8,64}", row.request_id)


# --- append-only ------------------------------------------------------------------------------

SOURCES = Path(__file__).resolve().parents[2] / "rehab"


def test_the_application_has_no_update_or_delete_of_the_audit_table() -> None:
    pattern = re.compile(
        r"(update|delete)\(\s*(AuditEvent|_AUDIT|audit_events)|"
        r"(UPDATE|DELETE FROM|TRUNCATE)\s+audit_events|session\.delete\(\s*(row|event|audit)",
        re.I,
    )
    offenders = [
        f"{path.relative_to(SOURCES)}:{number}"
        for path in SOURCES.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


@pytest.mark.postgres
def test_postgres_refuses_update_delete_and_truncate_of_audit_rows(app: Flask) -> None:
    with app.app_context():
        clinic = build_clinic()
    client = app.test_client()
    login(client, clinic.patient_a.email)
    client.get("/me/history")
    with app.app_context():
        engine = db.engine
        assert engine.dialect.name == "postgresql"
        count = db.session.scalar(sa.select(sa.func.count(AuditEvent.id)))
        db.session.rollback()
        assert count and count >= 2
        for statement in (
            sa.update(AuditEvent).values(outcome="denied"),
            sa.update(AuditEvent).where(AuditEvent.action == "login").values(user_id=None),
            sa.delete(AuditEvent),
            sa.text("TRUNCATE audit_events"),
        ):
            with pytest.raises(sa.exc.ProgrammingError, match="append-only"), engine.begin() as c:
                c.execute(statement)
        # Through the ORM session too.
        row = db.session.scalars(sa.select(AuditEvent).limit(1)).one()
        row.action = "rewritten"
        with pytest.raises(sa.exc.ProgrammingError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.scalars(sa.select(AuditEvent).limit(1)).one())
        with pytest.raises(sa.exc.ProgrammingError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count(AuditEvent.id))) == count
        # Appending still works.
        client.get("/me/progress")
        assert db.session.scalar(sa.select(sa.func.count(AuditEvent.id))) == count + 1
        db.session.rollback()


@pytest.mark.postgres
def test_the_trigger_migration_goes_down_and_up_and_leaves_no_drift(pg_url: str) -> None:
    def triggers() -> set[str]:
        engine = sa.create_engine(pg_url)
        try:
            with engine.connect() as conn:
                return set(
                    conn.scalars(
                        sa.text(
                            "SELECT tgname FROM pg_trigger "
                            "WHERE tgrelid = 'audit_events'::regclass AND NOT tgisinternal"
                        )
                    )
                )
        finally:
            engine.dispose()

    names = {"audit_events_no_update_or_delete", "audit_events_no_truncate"}
    assert triggers() == names
    migrate.check(pg_url)
    migrate.downgrade(pg_url, "47fa5e9d3cd6")
    assert triggers() == set()
    migrate.upgrade(pg_url)
    assert triggers() == names
    migrate.check(pg_url)


# --- the admin's search -------------------------------------------------------------------------


def test_admin_searches_the_audit_log(app: Flask) -> None:
    with app.app_context():
        clinic = build_clinic()
    clients = logged_in_clients(app, clinic)
    a = clinic.patient_a.patient_id
    clients[CLINICIAN_ON].get(f"/clinic/patients/{a}")
    clients["clinician_off"].get(f"/clinic/patients/{a}")
    admin = clients[ADMIN]
    page = admin.get(f"/admin/audit?patient_id={a}&action=patient.")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "patient.read" in html and "denied" in html and "allowed" in html
    assert clients[CLINICIAN_ON].get("/admin/audit").status_code == 404
    bad = admin.get("/admin/audit?date_from=2026-02-01&date_to=2026-01-01")
    assert bad.status_code == 422
    # An id beyond the id columns' range is a form error, not a database error.
    assert admin.get(f"/admin/audit?patient_id={2**31}").status_code == 422
    assert admin.get(f"/admin/audit?user_id={2**40}").status_code == 422
