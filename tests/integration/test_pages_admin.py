"""Admin pages: users (no clinical data), staff invitations, disabling accounts, care-team
membership, the audit log; and 404 for everyone who is not an admin."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, CareTeam, CareTeamMember, User
from rehab.domain.vocabulary import AuditOutcome, Role
from rehab.extensions import db
from rehab.services import accounts
from tests.support.clinic import PASSWORD, Clinic, csrf_token, login
from tests.support.pages import form_data, get_form, text, visible_text


@pytest.fixture
def admin(client: FlaskClient, clinic: Clinic) -> FlaskClient:
    login(client, clinic.admin.email)
    return client


def token_of(client: FlaskClient) -> str:
    return csrf_token(client, "/admin/")


def audit_targets(app: Flask, action: str) -> list[tuple[str, str | None, int | None]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.outcome, AuditEvent.target, AuditEvent.patient_id)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        ).all()
    return [(r.outcome.value, r.target, r.patient_id) for r in rows]


def test_admin_pages_are_404_for_everyone_else(app: Flask, clinic: Clinic) -> None:
    for person, home in ((clinic.patient_a, "/me/"), (clinic.clinician, "/clinic/")):
        client = app.test_client()
        login(client, person.email)
        token = csrf_token(client, home)  # a valid token: the 404 is about the role
        for path in ("/admin/", "/admin/audit", "/admin/audit?patient_id=1"):
            assert client.get(path).status_code == 404, (person.email, path)
        posts = {
            "/admin/users": {"display_name": "Evil", "email": "evil@x.test", "role": "admin"},
            f"/admin/users/{clinic.patient_b.user_id}/disable": {},
            f"/admin/teams/{clinic.team_north_id}/members": {"clinician_id": "1"},
            "/admin/teams": {"name": "Rogue team"},
        }
        for path, data in posts.items():
            response = client.post(path, data={**data, "csrf_token": token})
            assert response.status_code == 404, (person.email, path)
    with app.app_context():
        assert db.session.scalar(sa.select(User.id).where(User.email == "evil@x.test")) is None
        user = db.session.get(User, clinic.patient_b.user_id)
        assert user is not None and user.is_active


def test_index_lists_users_and_teams_without_clinical_data(admin: FlaskClient) -> None:
    page = admin.get("/admin/")
    assert page.status_code == 200
    body = visible_text(page)
    for name in ("Ada Admin", "Cara Clinician", "Dan Clinician", "Alice Patient", "Cleo Patient"):
        assert name in body
    assert "Team North" in body and "Team South" in body
    assert "2 patients" in body  # counts, not names or conditions per team
    assert "Low back pain" not in body  # no clinical data


def test_create_clinician_gives_a_one_time_link(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    data = get_form(admin, "/admin/", "/admin/users")
    data.update(display_name="Eve Clinician", email="Eve@Clinic.test", role="clinician")
    response = admin.post("/admin/users", data=data)
    assert response.status_code == 200
    match = re.search(r'value="http://localhost(/welcome/[^"]+)"', text(response))
    assert match
    link = match.group(1)
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == "eve@clinic.test")).one()
        assert user.role is Role.CLINICIAN and user.clinician is not None
        assert user.password_hash is None
        user_id = user.id
    assert audit_targets(app, "user.create") == [("allowed", f"user:{user_id}", None)]

    eve = app.test_client()
    form = get_form(eve, link)
    form.update(password="eve's long pass phrase", confirm="eve's long pass phrase")
    assert eve.post(link, data=form).status_code == 302
    assert eve.get(link).status_code == 400
    login(eve, "eve@clinic.test", "eve's long pass phrase")
    assert "No patients in your care teams yet." in visible_text(eve.get("/clinic/"))

    again = admin.post("/admin/users", data=data)
    assert again.status_code == 422
    assert "is already registered" in visible_text(again)
    patient_role = admin.post("/admin/users", data={**data, "email": "p@x.test", "role": "patient"})
    assert patient_role.status_code == 422
    assert "Not a valid choice." in visible_text(patient_role)


def test_new_link_for_an_account_without_password(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        user = accounts.create_staff_user(db.session, "late@clinic.test", "Late", Role.ADMIN, None)
        db.session.commit()
        user_id = user.id
    url = f"/admin/users/{user_id}/invite"
    data = form_data(text(admin.get("/admin/")), url)
    response = admin.post(url, data=data)
    assert response.status_code == 200
    assert "/welcome/" in text(response)
    # An account that has a password gets no link.
    refused = admin.post(f"/admin/users/{clinic.patient_a.user_id}/invite", data=data)
    assert refused.status_code == 302
    assert "has already set a password" in visible_text(admin.get("/admin/"))
    assert admin.post("/admin/users/987654/invite", data=data).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_disabling_a_user_ends_their_sessions(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    assert patient.get("/me/").status_code == 200

    uid = clinic.patient_a.user_id
    data = form_data(text(admin.get("/admin/")), f"/admin/users/{uid}/disable")
    response = admin.post(f"/admin/users/{uid}/disable", data=data)
    assert response.status_code == 302
    assert "is disabled and logged out everywhere" in visible_text(admin.get("/admin/"))

    after = patient.get("/me/")
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    token = csrf_token(patient, "/login")
    refused = patient.post(
        "/login", data={"email": clinic.patient_a.email, "password": PASSWORD, "csrf_token": token}
    )
    assert refused.status_code == 200  # the login page again, not a redirect
    # Their API token stops working too.
    headers = {"Authorization": f"Bearer {clinic.patient_a.token}"}
    assert patient.get("/api/v1/me", headers=headers).status_code == 401

    data = form_data(text(admin.get("/admin/")), f"/admin/users/{uid}/enable")
    assert admin.post(f"/admin/users/{uid}/enable", data=data).status_code == 302
    login(patient, clinic.patient_a.email)
    assert patient.get("/me/").status_code == 200
    assert audit_targets(app, "user.disable") == [("allowed", f"user:{uid}", None)]
    assert audit_targets(app, "user.enable") == [("allowed", f"user:{uid}", None)]


def test_admin_cannot_disable_themselves(app: Flask, admin: FlaskClient, clinic: Clinic) -> None:
    url = f"/admin/users/{clinic.admin.user_id}/disable"
    assert url not in text(admin.get("/admin/"))  # no button for it
    response = admin.post(url, data={"csrf_token": token_of(admin)})
    assert response.status_code == 302
    assert "You cannot disable your own account." in visible_text(admin.get("/admin/"))
    with app.app_context():
        user = db.session.get(User, clinic.admin.user_id)
        assert user is not None and user.is_active
    assert (
        admin.post("/admin/users/987654/disable", data={"csrf_token": token_of(admin)}).status_code
        == 404
    )


def test_care_team_membership_grants_and_removes_access(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    dan = app.test_client()
    login(dan, clinic.other_clinician.email)
    alice_page = f"/clinic/patients/{clinic.patient_a.patient_id}"
    assert dan.get(alice_page).status_code == 404

    north = clinic.team_north_id
    add_url = f"/admin/teams/{north}/members"
    data = get_form(admin, "/admin/", add_url)
    data[f"team{north}-clinician_id"] = str(clinic.other_clinician.clinician_id)
    assert admin.post(add_url, data=data).status_code == 302
    assert dan.get(alice_page).status_code == 200
    assert "Alice Patient" in visible_text(dan.get("/clinic/"))

    again = admin.post(add_url, data=data)  # already a member: no longer offered
    assert again.status_code == 422

    remove_url = f"/admin/teams/{north}/members/{clinic.other_clinician.clinician_id}/remove"
    form = form_data(text(admin.get("/admin/")), remove_url)
    assert admin.post(remove_url, data=form).status_code == 302
    assert dan.get(alice_page).status_code == 404  # at once
    assert admin.post(remove_url, data=form).status_code == 404  # not a member any more
    target = f"clinician:{clinic.other_clinician.clinician_id}"
    assert audit_targets(app, "care_team.member_add") == [("allowed", target, None)]
    assert audit_targets(app, "care_team.member_remove") == [("allowed", target, None)]
    with app.app_context():
        assert db.session.get(CareTeamMember, (north, clinic.other_clinician.clinician_id)) is None


def test_create_care_team(app: Flask, admin: FlaskClient) -> None:
    data = get_form(admin, "/admin/", "/admin/teams")
    assert admin.post("/admin/teams", data={**data, "name": "Team East"}).status_code == 302
    assert "Team East" in visible_text(admin.get("/admin/"))
    duplicate = admin.post("/admin/teams", data={**data, "name": "Team East"})
    assert duplicate.status_code == 422
    assert "a care team with this name exists" in visible_text(duplicate)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(CareTeam.id))) == 3


# --- audit log --------------------------------------------------------------------------------


def _bulk_audit(app: Flask, n: int, day: dt.date, patient_id: int | None = 42) -> None:
    with app.app_context():
        for i in range(n):
            db.session.add(
                AuditEvent(
                    at=dt.datetime.combine(day, dt.time(12, 0), tzinfo=dt.UTC)
                    + dt.timedelta(seconds=i),
                    user_id=7,
                    role="clinician",
                    patient_id=patient_id,
                    action="test.bulk",
                    outcome=AuditOutcome.ALLOWED,
                    request_id="r" * 12,
                )
            )
        db.session.commit()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_audit_log_is_searchable_and_paginated(app: Flask, admin: FlaskClient) -> None:
    _bulk_audit(app, 120, dt.date(2025, 9, 20))
    _bulk_audit(app, 5, dt.date(2025, 9, 22), patient_id=43)

    page = admin.get("/admin/audit?action=test.")
    assert page.status_code == 200
    body = visible_text(page)
    assert "125 events" in body and "page 1 of 3" in body
    assert "Older →" in body and "← Newer" not in body
    older = re.search(r'href="(/admin/audit\?[^"]*page=2[^"]*)"', text(page))
    assert older
    page2 = visible_text(admin.get(older.group(1).replace("&amp;", "&")))
    assert "page 2 of 3" in page2 and "← Newer" in page2

    by_patient = visible_text(admin.get("/admin/audit?patient_id=43"))
    assert "5 events" in by_patient
    by_date = visible_text(
        admin.get("/admin/audit?action=test.bulk&date_from=2025-09-21&date_to=2025-09-22")
    )
    assert "5 events" in by_date
    one_day = visible_text(admin.get("/admin/audit?date_from=2025-09-20&date_to=2025-09-20"))
    assert "120 events" in one_day
    by_user = visible_text(admin.get("/admin/audit?user_id=7&action=test.bulk"))
    assert "125 events" in by_user
    assert "No audit events match." in visible_text(admin.get("/admin/audit?action=nothing"))
    # "%" and "_" in the action are literal, not wildcards.
    assert "No audit events match." in visible_text(admin.get("/admin/audit?action=%25"))

    bad = admin.get("/admin/audit?date_from=2025-09-22&date_to=2025-09-20")
    assert bad.status_code == 422
    assert "is before date_from" in visible_text(bad)
    assert admin.get("/admin/audit?user_id=abc").status_code == 422
    # Reading the audit log is itself audited.
    assert len(audit_targets(app, "audit.read")) >= 7


def test_page_reads_appear_in_the_audit_log(app: Flask, admin: FlaskClient, clinic: Clinic) -> None:
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    a = clinic.patient_a.patient_id
    c = clinic.patient_c.patient_id
    clinician.get(f"/clinic/patients/{a}")
    clinician.get(f"/clinic/patients/{c}")
    body = visible_text(
        admin.get(f"/admin/audit?user_id={clinic.clinician.user_id}&action=patient.read")
    )
    assert "2 events" in body
    assert "allowed" in body and "denied" in body
