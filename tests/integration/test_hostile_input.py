"""Inputs found in review that used to answer 500 (or leave a page broken), each now a clear
400/422 naming the field with nothing stored; and the admin's outbox reads audited per patient.

All on PostgreSQL (the default `database_url`), which refuses NUL in text: the case that
matters."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, Event, OutcomeMeasure, SessionLog
from rehab.extensions import db
from rehab.services import notifications
from rehab.services.time import clinic_today
from tests.integration.test_audit_coverage import last_id, rows_since
from tests.integration.test_notifications_outbox import make_alert, rows
from tests.support.clinic import PASSWORD, Clinic, Person, csrf_token, login, search_caseload
from tests.support.history import add_logs
from tests.support.pages import get_form, visible_text


def auth(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"}


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        found = db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
        db.session.rollback()
    return found


def log_body(clinic: Clinic, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": uuid.uuid4().hex,
        "log_date": clinic.program_start.isoformat(),
        "back_pain": 2,
        "leg_pain": 0,
    }
    body.update(overrides)
    return body


def test_api_refuses_nul_control_characters_deep_nesting_and_ancient_dates(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    headers = auth(clinic.patient_a)
    for overrides, field in (
        ({"note": "a\u0000b"}, "note"),
        ({"pain_location": "low\u0007back"}, "pain_location"),
        ({"log_date": "0001-01-01"}, "log_date"),
        ({"\u0000": 1}, "\u0000"),
    ):
        response = client.post(url, json=log_body(clinic, **overrides), headers=headers)
        assert response.status_code == 422, (overrides, response.json)
        assert response.json is not None
        assert response.json["errors"][0]["field"] == field, response.json
    nested = client.post(
        url, data="[" * 60_000, headers={**headers, "Content-Type": "application/json"}
    )
    assert nested.status_code == 400 and nested.json == {
        "error": "malformed_json",
        "message": "the body is not valid JSON",
    }
    series = client.get(
        f"/api/v1/patients/{clinic.patient_a.patient_id}/series?metric=leg%00", headers=headers
    )
    assert series.status_code == 400
    assert series.json == {"error": "bad_request", "message": "metric: contains a NUL character"}
    event = client.post(
        f"/api/v1/patients/{clinic.patient_a.patient_id}/events",
        json={"client_id": uuid.uuid4().hex, "event_type": "fall", "event_date": "0050-01-01"},
        headers=headers,
    )
    assert event.status_code == 422
    assert count(app, SessionLog) == 0 and count(app, Event) == 0
    # A tab and line breaks are fine in a note.
    ok = client.post(url, json=log_body(clinic, note="line one\r\n\tline two"), headers=headers)
    assert ok.status_code == 201, ok.json
    assert count(app, SessionLog) == 1


def test_a_nul_in_a_form_or_query_is_a_400_naming_the_field(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": "a\x00@x.test", "password": "whatever", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "email: contains a NUL character" in visible_text(response)

    login(client, clinic.clinician.email)
    token = csrf_token(client, "/clinic/")
    response = client.post("/clinic/search", data={"q": "x\x00", "csrf_token": token})
    assert response.status_code == 400
    assert "q: contains a NUL character" in visible_text(response)
    # Nothing was kept: the caseload still opens, and a normal search still works.
    assert client.get("/clinic/").status_code == 200
    search_caseload(client, "Alice")
    assert client.get("/clinic/").status_code == 200
    assert client.get("/clinic/?sort=x%00").status_code == 400


def test_unicode_digits_and_ancient_dates_in_clinician_forms_are_422(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    login(client, clinic.clinician.email)
    odi_url = f"/clinic/patients/{a}/outcomes/new?instrument=odi"
    for change in ({"sections-0": "²"}, {"sections-0": "9" * 5000}, {"measured_on": "0050-01-01"}):
        data = get_form(client, odi_url)
        data.update({f"sections-{i}": "2" for i in range(10)})
        data.update(change)
        response = client.post(odi_url, data=data)
        assert response.status_code == 422, (change, visible_text(response)[:300])
    assert count(app, OutcomeMeasure) == 0

    program_url = f"/clinic/patients/{a}/program/new"
    data = get_form(client, program_url)
    data.update({"title": "T", "prescriptions-0-exercise_id": "²"})
    response = client.post(program_url, data=data)
    assert response.status_code == 422
    assert "Choose an exercise from the library." in visible_text(response)
    assert client.get(f"/clinic/patients/{a}").status_code == 200


def test_other_digits_as_a_row_number_in_a_field_name_are_ignored_not_a_500(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """WTForms reads a list's row numbers with `str.isdigit` then `int`: "exercises-²-done"
    raised while the form was built, before validation and before the access check."""
    a = clinic.patient_a.patient_id
    junk = {"\u00b2", "\u0663", "\uff11"}  # superscript two, Arabic-Indic three, fullwidth one
    clinic_forms = {
        f"/clinic/patients/{a}/program/new": ("prescriptions-{}-exercise_id", "phases-{}-name"),
        f"/clinic/patients/{a}/findings/new": ("tests-{}-result",),
        f"/clinic/patients/{a}/outcomes/new?instrument=odi": ("sections-{}",),
        f"/clinic/patients/{a}/outcomes/new?instrument=psfs": ("activities-{}-score",),
    }
    login(client, clinic.clinician.email)
    for url, names in clinic_forms.items():
        data = get_form(client, url)
        if "title" in data:  # the program form, filled in from the program in effect
            data["title"] = ""  # refused, so the junk rows are read but nothing is saved
        data.update({name.format(digit): "1" for name in names for digit in junk})
        response = client.post(url, data=data)
        assert response.status_code in (200, 303, 422), (url, response.status_code)
    # Off the care team it is the usual 404, not a 500 before the access check.
    login(client, clinic.other_clinician.email)
    for url, names in clinic_forms.items():
        data = {name.format(digit): "1" for name in names for digit in junk}
        data["csrf_token"] = csrf_token(client, "/clinic/")
        assert client.post(url, data=data).status_code == 404, url

    login(client, clinic.patient_a.email)
    data = get_form(client, "/me/")
    data.update({f"exercises-{digit}-done": "y" for digit in junk})
    data.update({"back_pain": "2", "leg_pain": "0"})
    response = client.post("/me/", data=data)
    assert response.status_code in (200, 303), (response.status_code, visible_text(response)[:300])
    assert count(app, SessionLog) == 1


def test_an_unknown_questionnaire_is_a_404_after_the_access_check(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    url = f"/clinic/patients/{a}/outcomes/new?instrument=sf36"
    for who, outcome in ((clinic.other_clinician, "denied"), (clinic.clinician, "failed")):
        login(client, who.email)
        before = last_id(app)
        assert client.get(url).status_code == 404
        rows = [r for r in rows_since(app, before) if r.patient_id is not None]
        assert [(r.patient_id, r.outcome.value, r.user_id) for r in rows] == [
            (a, outcome, who.user_id)
        ], who.email


def test_a_second_factor_code_in_other_digits_is_refused(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    app.config["REHAB_SETTINGS"] = app.config["REHAB_SETTINGS"].model_copy(
        update={"totp_required": True}
    )
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": clinic.clinician.email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.headers["Location"].endswith("/login/two-factor")
    token = csrf_token(client, "/login/two-factor")
    response = client.post("/login/two-factor", data={"code": "١٢٣٤٥٦", "csrf_token": token})
    assert response.status_code == 422
    assert client.get("/clinic/").status_code == 302


def test_audit_search_accepts_the_edges_of_the_calendar_as_an_error(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    login(client, clinic.admin.email)
    assert client.get("/admin/audit?date_to=9999-12-31").status_code in (400, 422)
    assert client.get("/admin/audit?date_from=0001-01-01").status_code in (400, 422)
    assert client.get("/admin/audit?date_to=2999-12-31").status_code == 200


def test_reading_an_alert_email_in_the_outbox_is_audited_against_its_patient(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        today = clinic_today()
        add_logs(a, today - dt.timedelta(days=20), [1] * 18 + [7, 7, 7])
        alert_id = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
        (row,) = rows(alert_id=alert_id)
        assert notifications.deliver(db.session, row.id).status == "sent"
        (name,) = [p.name for p in notifications.outbox_dir().glob("*.eml")]
    login(client, clinic.admin.email)
    assert client.get(f"/admin/outbox/{name}").status_code == 200
    with app.app_context():
        read = db.session.execute(
            sa.select(AuditEvent.patient_id, AuditEvent.target).where(
                AuditEvent.action == "outbox.read"
            )
        ).all()
    assert [(p, t) for p, t in read] == [(a, f"outbox:{name}"[:64])]


def test_an_outbox_file_whose_notification_header_was_edited_reads_without_error(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A hand-edited `X-Rehab-Notification` (junk, Unicode digits, a number past a row id)
    names no notification: the message still opens, audited without a patient."""
    with app.app_context():
        outbox = notifications.outbox_dir()
        outbox.mkdir(parents=True, exist_ok=True)
        name = "20260101T000000000000Z-edited.eml"
        (outbox / name).write_text(
            "From: a@b.test\r\nTo: c@d.test\r\nSubject: s\r\n"
            "X-Rehab-Notification: x, ١٢, 9999999999, -3\r\n\r\nbody\r\n"
        )
    login(client, clinic.admin.email)
    assert client.get(f"/admin/outbox/{name}").status_code == 200
    with app.app_context():
        read = db.session.execute(
            sa.select(AuditEvent.patient_id).where(AuditEvent.action == "outbox.read")
        ).all()
    assert [p for (p,) in read] == [None]
