"""The clinician's alert inbox: explained alerts, acknowledge and resolve, each audited."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import Alert, AlertStatus, AuditEvent
from rehab.extensions import db
from rehab.services import evaluation
from rehab.services.time import clinic_today
from tests.integration.test_evaluation import seed_like_history
from tests.support.clinic import Clinic, csrf_token, login


def open_pain_alert(app: Flask, clinic: Clinic) -> int:
    with app.app_context():
        a, _ = seed_like_history(clinic)
        evaluation.evaluate_and_commit(db.session, [a], clinic_today())
        alert_id = db.session.scalar(
            sa.select(Alert.id).where(Alert.patient_id == a, Alert.kind == "pain_regression")
        )
    assert alert_id is not None
    return alert_id


def status_of(app: Flask, alert_id: int) -> AlertStatus:
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert alert is not None
        return alert.status


def test_inbox_shows_the_explained_alert_and_actions_work(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    alert_id = open_pain_alert(app, clinic)
    login(client, clinic.clinician.email)
    page = client.get("/clinic/alerts/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Left leg pain" in html and "fall" in html and "Alice Patient" in html

    token = csrf_token(client, "/clinic/alerts/")
    response = client.post(
        f"/clinic/alerts/{alert_id}/acknowledge",
        data={"csrf_token": token, "note": "Phoned her; assessment booked."},
    )
    assert response.status_code == 303
    assert status_of(app, alert_id) is AlertStatus.ACKNOWLEDGED
    response = client.post(
        f"/clinic/alerts/{alert_id}/resolve", data={"csrf_token": token, "note": "Settled."}
    )
    assert status_of(app, alert_id) is AlertStatus.RESOLVED
    with app.app_context():
        actions = list(
            db.session.scalars(
                sa.select(AuditEvent.action).where(
                    AuditEvent.target == f"alert:{alert_id}",
                    AuditEvent.user_id == clinic.clinician.user_id,
                )
            )
        )
    assert actions == ["alert.acknowledge", "alert.resolve"]


def test_clinician_off_the_team_neither_sees_nor_acts(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    alert_id = open_pain_alert(app, clinic)
    login(client, clinic.other_clinician.email)
    assert "Alice Patient" not in client.get("/clinic/alerts/").get_data(as_text=True)
    token = csrf_token(client, "/clinic/alerts/")
    response = client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 404
    assert (
        client.post("/clinic/alerts/999999/acknowledge", data={"csrf_token": token}).status_code
        == 404
    )
    assert status_of(app, alert_id) is AlertStatus.OPEN


def test_patients_cannot_reach_the_inbox(client: FlaskClient, clinic: Clinic) -> None:
    login(client, clinic.patient_a.email)
    assert client.get("/clinic/alerts/").status_code == 404
