"""Submitting daily logs over the JSON API: idempotency, validation, access, audit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, SessionLog
from rehab.extensions import db
from tests.support.clinic import Clinic, Person


def auth(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"}


def log_body(clinic: Clinic, **overrides: Any) -> dict[str, Any]:
    body = {
        "client_id": uuid.uuid4().hex,
        "log_date": clinic.program_start.isoformat(),
        "back_pain": 2,
        "leg_pain": 3,
        "leg_side": "left",
        "red_flags": [],
        "exercises": [
            {"prescription_id": pid, "done": True}
            for pid in clinic.prescription_ids[clinic.patient_a.patient_id or 0][:2]
        ],
        "note": "",
    }
    body.update(overrides)
    return body


def count_logs(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(SessionLog.id))) or 0


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_same_client_id_twice_stores_one_log_and_same_response(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    body = log_body(clinic)
    first = client.post(url, json=body, headers=auth(clinic.patient_a))
    second = client.post(url, json=body, headers=auth(clinic.patient_a))
    assert first.status_code == 201, first.json
    assert second.status_code == 201
    assert first.json == second.json
    assert first.headers["Idempotent-Replayed"] == "false"
    assert second.headers["Idempotent-Replayed"] == "true"
    assert count_logs(app) == 1
    assert first.json["adherence"] == pytest.approx(2 / 3, abs=0.001)


def test_used_client_id_with_other_body_is_409(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    body = log_body(clinic)
    assert client.post(url, json=body, headers=auth(clinic.patient_a)).status_code == 201
    changed = {**body, "back_pain": 7}
    response = client.post(url, json=changed, headers=auth(clinic.patient_a))
    assert response.status_code == 409
    assert response.json["errors"][0]["field"] == "client_id"
    assert count_logs(app) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"back_pain": 11}, "back_pain"),
        ({"leg_pain": -1}, "leg_pain"),
        ({"back_pain": "7"}, "back_pain"),
        ({"back_pain": 7.5}, "back_pain"),
        ({"log_date": "2999-01-01"}, "log_date"),
        ({"log_date": "2001-01-01"}, "log_date"),
        ({"log_date": "not a date"}, "log_date"),
        ({"leg_side": None}, "leg_side"),
        ({"red_flags": ["third_eye"]}, "red_flags.0"),
        ({"exercises": [{"prescription_id": 999999, "done": True}]}, "exercises.0.prescription_id"),
        ({"surprise": 1}, "surprise"),
        ({"client_id": "x"}, "client_id"),
    ],
)
def test_bad_values_are_422_naming_the_field(
    app: Flask, client: FlaskClient, clinic: Clinic, change: dict[str, Any], field: str
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    response = client.post(url, json=log_body(clinic, **change), headers=auth(clinic.patient_a))
    assert response.status_code == 422, response.json
    assert field in [e["field"] for e in response.json["errors"]]
    assert count_logs(app) == 0


def test_malformed_json_and_oversized_bodies(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    headers = {**auth(clinic.patient_a), "Content-Type": "application/json"}
    assert client.post(url, data="{not json", headers=headers).status_code == 400
    assert client.post(url, data="[1, 2]", headers=headers).status_code == 422
    huge = log_body(clinic, note="x" * 200_000)
    assert client.post(url, json=huge, headers=auth(clinic.patient_a)).status_code == 413
    assert count_logs(app) == 0


def test_patient_cannot_write_or_read_another_patient(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    b = clinic.patient_b.patient_id
    url = f"/api/v1/patients/{b}/logs"
    response = client.post(url, json=log_body(clinic), headers=auth(clinic.patient_a))
    assert response.status_code == 404
    assert (
        client.get(f"/api/v1/patients/{b}/series", headers=auth(clinic.patient_a)).status_code
        == 404
    )
    # A patient id that does not exist answers exactly the same.
    missing = client.get("/api/v1/patients/987654/series", headers=auth(clinic.patient_a))
    assert missing.status_code == 404
    assert (
        missing.json
        == client.get(f"/api/v1/patients/{b}/series", headers=auth(clinic.patient_a)).json
    )
    assert count_logs(app) == 0


def test_clinician_off_the_care_team_gets_404(client: FlaskClient, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    on_team = client.get(f"/api/v1/patients/{a}/series", headers=auth(clinic.clinician))
    off_team = client.get(f"/api/v1/patients/{a}/series", headers=auth(clinic.other_clinician))
    assert on_team.status_code == 200
    assert off_team.status_code == 404


def test_no_token_is_401(client: FlaskClient, clinic: Clinic) -> None:
    response = client.get(f"/api/v1/patients/{clinic.patient_a.patient_id}/series")
    assert response.status_code == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer rhb_nope"})
    assert bad.status_code == 401


def test_reads_writes_and_denials_are_audited(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    client.post(f"/api/v1/patients/{a}/logs", json=log_body(clinic), headers=auth(clinic.patient_a))
    client.get(f"/api/v1/patients/{a}/series", headers=auth(clinic.patient_a))
    client.get(f"/api/v1/patients/{b}/series", headers=auth(clinic.patient_a))
    with app.app_context():
        rows = db.session.execute(
            sa.select(
                AuditEvent.action, AuditEvent.outcome, AuditEvent.patient_id, AuditEvent.user_id
            )
            .where(AuditEvent.action.in_(["session_log.write", "series.read"]))
            .order_by(AuditEvent.id)
        ).all()
    user = clinic.patient_a.user_id
    assert [(r.action, r.outcome.value, r.patient_id, r.user_id) for r in rows] == [
        ("session_log.write", "allowed", a, user),
        ("series.read", "allowed", a, user),
        ("series.read", "denied", b, user),
    ]


def test_series_returns_the_logged_days(client: FlaskClient, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    client.post(
        f"/api/v1/patients/{a}/logs",
        json=log_body(clinic, leg_pain=6),
        headers=auth(clinic.patient_a),
    )
    series = client.get(f"/api/v1/patients/{a}/series", headers=auth(clinic.clinician)).json
    assert [(d["date"], d["leg_pain"], d["leg_side"]) for d in series["days"]] == [
        (clinic.program_start.isoformat(), 6, "left")
    ]
    bad = client.get(f"/api/v1/patients/{a}/series?start=yesterday", headers=auth(clinic.clinician))
    assert bad.status_code == 422
    assert bad.json["errors"][0]["field"] == "start"
