"""A clinician corrects a patient's details on her record.

The working summary changes as the picture does (after the seed patient's MRI it is no longer
"re-herniation"); a name can be mistyped; an invitation can go to a mistyped address or
expire. The e-mail is the clinic's to correct only until the patient sets a password: after
that it is her login and where her reset links go, so a clinician moving it could take the
account over."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, Patient, User
from rehab.extensions import db
from tests.support.clinic import PASSWORD, Clinic, csrf_token, login
from tests.support.pages import form_data, text, visible_text

LINK = re.compile(r'value="https?://[^/"]+(/welcome/[^"]+)"')


def details(app: Flask, patient_id: int) -> tuple[str, str, int | None, str]:
    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        assert patient is not None
        found = (
            patient.user.display_name,
            patient.user.email,
            patient.year_of_birth,
            patient.condition_summary,
        )
        db.session.rollback()
        return found


def post_details(client: FlaskClient, patient_id: int, **changes: str) -> tuple[int, str]:
    path = f"/clinic/patients/{patient_id}/details"
    page = client.get(path)
    assert page.status_code == 200
    data = {**form_data(text(page), path), **changes}
    response = client.post(path, data=data)
    return response.status_code, visible_text(response)


def audit_actions(app: Flask, patient_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        found = [
            (action, outcome.value)
            for action, outcome in db.session.execute(
                sa.select(AuditEvent.action, AuditEvent.outcome)
                .where(AuditEvent.patient_id == patient_id)
                .order_by(AuditEvent.id)
            )
        ]
        db.session.rollback()
        return found


def add_patient(client: FlaskClient, clinic: Clinic, email: str) -> tuple[int, str]:
    """A new patient through the form: her id and the set-password link shown."""
    token = csrf_token(client, "/clinic/patients/new")
    response = client.post(
        "/clinic/patients/new",
        data={
            "csrf_token": token,
            "display_name": "Dana Example",
            "email": email,
            "care_team_id": str(clinic.team_north_id),
        },
    )
    assert response.status_code == 200, visible_text(response)[:300]
    link = LINK.search(text(response))
    record = re.search(r"/clinic/patients/(\d+)", text(response))
    assert link and record
    return int(record.group(1)), link.group(1)


def test_the_working_summary_name_and_year_are_corrected_and_audited(
    app: Flask, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    name, email, _, _ = details(app, a)
    client = app.test_client()
    login(client, clinic.clinician.email)
    record = client.get(f"/clinic/patients/{a}")
    assert f'href="/clinic/patients/{a}/details"'.encode() in record.data

    summary = "Soft-tissue lesion of the left buttock after a fall; neurodynamic tests negative"
    status, _ = post_details(
        client, a, display_name="Anna Corrected", year_of_birth="1971", condition_summary=summary
    )
    assert status == 302
    assert details(app, a) == ("Anna Corrected", email, 1971, summary)
    assert visible_text(client.get(f"/clinic/patients/{a}")).count(summary) >= 1
    assert ("patient.update", "allowed") in audit_actions(app, a)
    assert name != "Anna Corrected"


def test_an_active_patients_email_stays_and_nothing_else_is_saved_with_it(
    app: Flask, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    before = details(app, a)
    client = app.test_client()
    login(client, clinic.clinician.email)
    page = client.get(f"/clinic/patients/{a}/details")
    assert "this address is her login" in visible_text(page)
    assert b"readonly" in page.data

    status, shown = post_details(
        client, a, email="someone.else@example.test", display_name="Renamed With It"
    )
    assert status == 422
    assert "E-mail" in shown and "set a password" in shown
    assert details(app, a) == before
    # She still logs in with her own address.
    login(app.test_client(), clinic.patient_a.email, PASSWORD)


def test_bad_input_names_its_field_and_stores_nothing(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    before = details(app, a)
    client = app.test_client()
    login(client, clinic.clinician.email)
    for changes, named in (
        ({"display_name": "  "}, "Name"),
        ({"year_of_birth": "1800"}, "Year of birth"),
        ({"condition_summary": "x" * 301}, "Condition summary"),
        ({"email": clinic.patient_b.email}, "E-mail"),
    ):
        status, shown = post_details(client, a, **changes)
        assert status == 422, changes
        assert named in shown, changes
        assert details(app, a) == before, changes


def test_a_pending_invitation_follows_a_corrected_address(app: Flask, clinic: Clinic) -> None:
    client = app.test_client()
    login(client, clinic.clinician.email)
    patient_id, first_link = add_patient(client, clinic, "dana@exmaple.test")
    page = client.get(f"/clinic/patients/{patient_id}/details")
    assert b"readonly" not in page.data and b"Make a new link" in page.data

    status, _ = post_details(client, patient_id, email="Dana@Example.test")
    assert status == 302
    assert details(app, patient_id)[1] == "dana@example.test"
    # The link that went to the mistyped address no longer opens the account.
    stale = app.test_client().get(first_link)
    assert stale.status_code == 400

    path = f"/clinic/patients/{patient_id}/details"
    invite = client.post(
        f"/clinic/patients/{patient_id}/invite",
        data={"csrf_token": form_data(text(client.get(path)), path)["csrf_token"]},
    )
    assert invite.status_code == 200 and "A new link for Dana Example" in visible_text(invite)
    match = LINK.search(text(invite))
    assert match
    fresh = app.test_client()
    set_page = fresh.get(match.group(1))
    assert set_page.status_code == 200
    token = form_data(text(set_page), match.group(1))["csrf_token"]
    new_password = "a long enough pass phrase 42"
    done = fresh.post(
        match.group(1),
        data={"csrf_token": token, "password": new_password, "confirm": new_password},
    )
    assert done.status_code in (302, 303), visible_text(done)[:300]
    login(app.test_client(), "dana@example.test", new_password)
    assert [a for a, _ in audit_actions(app, patient_id)].count("patient.invite") == 1

    # Now she has a password: no more links, and the address stays.
    again = client.post(
        f"/clinic/patients/{patient_id}/invite",
        data={"csrf_token": form_data(text(client.get(path)), path)["csrf_token"]},
    )
    assert again.status_code == 303
    assert "has already set a password" in visible_text(client.get(path))
    assert details(app, patient_id)[1] == "dana@example.test"


def test_only_the_care_team_sees_or_changes_the_details(app: Flask, clinic: Clinic) -> None:
    c = clinic.patient_c.patient_id  # team South
    assert c is not None
    before = details(app, c)
    client = app.test_client()
    login(client, clinic.clinician.email)  # team North
    assert client.get(f"/clinic/patients/{c}/details").status_code == 404
    token = csrf_token(client, f"/clinic/patients/{clinic.patient_a.patient_id}/details")
    response = client.post(
        f"/clinic/patients/{c}/details",
        data={"csrf_token": token, "display_name": "Taken Over", "email": "x@example.test"},
    )
    assert response.status_code == 404
    assert client.post(f"/clinic/patients/{c}/invite", data={"csrf_token": token}).status_code == (
        404
    )
    assert details(app, c) == before
    assert ("patient.update", "denied") in audit_actions(app, c)
    with app.app_context():
        assert db.session.scalar(sa.select(User.id).where(User.email == "x@example.test")) is None
