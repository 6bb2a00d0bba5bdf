"""A patient followed at her visits only: she never logs on her phone, and her clinician
records her ODI at each visit. A worse ODI by the clinically important 10 points is a
function-decline alert like anyone else's (before, detection began at a first daily log)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask

from rehab.db.models import Alert, SessionLog
from rehab.extensions import db
from rehab.services import evaluation, scan
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic, login
from tests.support.history import add_outcome
from tests.support.pages import visible_text


def record_odi(app: Flask, clinic: Clinic, days_ago: int, sections: list[int | None]) -> None:
    assert clinic.patient_a.patient_id is not None
    with app.app_context():
        add_outcome(
            clinic.patient_a.patient_id, clinic.clinician.user_id, days_ago, odi_sections=sections
        )


def declines(app: Flask, patient_id: int) -> list[tuple[str, dt.date, float | None]]:
    with app.app_context():
        found = [
            (status.value, detected_on, current)
            for status, detected_on, current in db.session.execute(
                sa.select(Alert.status, Alert.detected_on, Alert.current).where(
                    Alert.patient_id == patient_id, Alert.kind == "function_decline"
                )
            )
        ]
        db.session.rollback()
        return found


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_an_odi_decline_of_a_patient_who_never_logs_is_alerted(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    record_odi(app, clinic, 60, [2, 1, 2, 1, 1, 1, 2, 1, 2, 2])  # 30 / 100
    record_odi(app, clinic, 30, [2, 2, 2, 1, 1, 1, 2, 1, 2, 2])  # 32 / 100
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(SessionLog.patient_id == a)) == 0
        evaluation.evaluate_and_commit(db.session, [a], today)
    assert declines(app, a) == []  # steady so far

    record_odi(app, clinic, 0, [3, 3, 2, 2, 2, 2, 3, 2, 2, 2])  # 46 / 100
    with app.app_context():
        # The periodic scan finds her by her new score, as it would anyone's new data.
        assert a in scan.patients_to_evaluate(db.session, today)
        db.session.rollback()
        evaluation.evaluate_and_commit(db.session, [a], today)
        evaluation.evaluate_and_commit(db.session, [a], today)  # a second run stores nothing
    assert declines(app, a) == [("open", today, 46.0)]

    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    inbox = visible_text(clinician.get("/clinic/alerts/"))
    assert "ODI 46/100" in inbox
    record = clinician.get(f"/clinic/patients/{a}")
    assert record.status_code == 200
    assert "ODI 46/100" in visible_text(record)
