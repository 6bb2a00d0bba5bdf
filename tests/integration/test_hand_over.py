"""A clinician hands a patient over to another care team (`/clinic/patients/{id}/care-team`).

The new team sees her record from then on, and is notified of her open alerts; the old team
no longer sees her (nor gets the messages about her not sent yet); the move is audited with
the team it went to. Bad input is a 422 naming the field, with nothing changed."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, CareTeam, CareTeamMember, Notification, Patient
from rehab.extensions import db
from rehab.services import notifications
from tests.integration.test_alert_inbox import open_pain_alert
from tests.support.clinic import Clinic, csrf_token, login
from tests.support.pages import visible_text


def hand_over(client: FlaskClient, patient_id: int, care_team_id: object) -> tuple[int, str, str]:
    path = f"/clinic/patients/{patient_id}/care-team"
    # (Someone who may not open the page takes a token from her own caseload.)
    token = csrf_token(client, path if client.get(path).status_code == 200 else "/clinic/")
    response = client.post(path, data={"csrf_token": token, "care_team_id": str(care_team_id)})
    return response.status_code, response.headers.get("Location", ""), visible_text(response)


def team_of(app: Flask, patient_id: int) -> int:
    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        assert patient is not None
        team = patient.care_team_id
        db.session.rollback()
        return team


def notified(app: Flask, alert_id: int) -> dict[int, str]:
    """Recipient user id → status of the alert's notification rows."""
    with app.app_context():
        found = {
            user_id: status
            for user_id, status in db.session.execute(
                sa.select(Notification.recipient_user_id, Notification.status).where(
                    Notification.alert_id == alert_id
                )
            )
        }
        db.session.rollback()
        return found


def test_handing_over_moves_the_record_and_its_open_alerts(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    alert_id = open_pain_alert(app, clinic)
    cara, dan = clinic.clinician.user_id, clinic.other_clinician.user_id
    assert set(notified(app, alert_id)) == {cara}

    client = app.test_client()
    login(client, clinic.clinician.email)
    page = visible_text(client.get(f"/clinic/patients/{a}/care-team"))
    assert "is with Team North" in page and "Team South" in page
    status, location, _ = hand_over(client, a, clinic.team_south_id)
    assert (status, location) == (302, "/clinic/")
    shown = visible_text(client.get("/clinic/"))
    assert "Handed over to Team South" in shown and "1 open alert" in shown
    assert team_of(app, a) == clinic.team_south_id
    assert client.get(f"/clinic/patients/{a}").status_code == 404

    # The new team sees her, and was told of her open alert.
    dan_client = app.test_client()
    login(dan_client, clinic.other_clinician.email)
    assert dan_client.get(f"/clinic/patients/{a}").status_code == 200
    assert set(notified(app, alert_id)) == {cara, dan}
    # What was queued for the old team is not sent to her any more.
    with app.app_context():
        cara_row = db.session.scalar(
            sa.select(Notification.id).where(
                Notification.alert_id == alert_id, Notification.recipient_user_id == cara
            )
        )
        assert cara_row is not None
        assert notifications.deliver(db.session, cara_row).status == "failed"
        audited = db.session.execute(
            sa.select(AuditEvent.user_id, AuditEvent.outcome, AuditEvent.target).where(
                AuditEvent.action == "patient.transfer", AuditEvent.patient_id == a
            )
        ).all()
    assert [(u, o.value, t) for u, o, t in audited] == [
        (cara, "allowed", f"care_team:{clinic.team_south_id}")
    ]

    # Handed back: Cara, whose message was dropped while the patient was away, is told again.
    assert hand_over(dan_client, a, clinic.team_north_id)[:2] == (302, "/clinic/")
    with app.app_context():
        rows = db.session.execute(
            sa.select(Notification.recipient_user_id, Notification.status)
            .where(Notification.alert_id == alert_id)
            .order_by(Notification.id)
        ).all()
    assert [(u, st.value) for u, st in rows] == [
        (cara, "failed"),
        (dan, "pending"),
        (cara, "pending"),
    ]


def test_a_clinician_on_both_teams_stays_on_the_record(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        db.session.add(
            CareTeamMember(
                care_team_id=clinic.team_south_id, clinician_id=clinic.clinician.clinician_id
            )
        )
        db.session.commit()
    client = app.test_client()
    login(client, clinic.clinician.email)
    status, location, _ = hand_over(client, a, clinic.team_south_id)
    assert (status, location) == (302, f"/clinic/patients/{a}")
    assert "Handed over to Team South" in visible_text(client.get(location))
    assert team_of(app, a) == clinic.team_south_id


def test_bad_hand_overs_name_the_field_and_change_nothing(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        empty = CareTeam(name="Team Empty")  # nobody would see her there
        db.session.add(empty)
        db.session.commit()
        empty_id = empty.id
    client = app.test_client()
    login(client, clinic.clinician.email)
    for team, says in (
        (clinic.team_north_id, "is her care team already"),
        (empty_id, "has no active clinician"),
        (987654, "Not a valid choice"),
        ("north", "could not coerce"),
        ("", "This field is required"),
    ):
        status, _, text = hand_over(client, a, team)
        assert status == 422, team
        assert "Hand over to" in text and says in text, (team, text)
        assert team_of(app, a) == clinic.team_north_id


def test_only_her_care_team_may_hand_her_over(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    dan = app.test_client()
    login(dan, clinic.other_clinician.email)
    assert dan.get(f"/clinic/patients/{a}/care-team").status_code == 404
    assert hand_over(dan, a, clinic.team_south_id)[0] == 404
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    assert patient.get(f"/clinic/patients/{a}/care-team").status_code == 404
    assert team_of(app, a) == clinic.team_north_id
    with app.app_context():
        denied = db.session.scalars(
            sa.select(AuditEvent.action).where(
                AuditEvent.patient_id == a,
                AuditEvent.user_id == clinic.other_clinician.user_id,
                AuditEvent.outcome == "denied",
            )
        ).all()
    assert "patient.transfer" in denied
