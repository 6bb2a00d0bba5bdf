"""A patient who forgot yesterday logs it the next day (`/me/yesterday`): offered from today's
page while yesterday has no log and is within her program, stored once (never changed from
there), with the same checks, guidance and audit as today's log."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab import create_app
from rehab.db.models import SessionLog
from rehab.domain.advice import RED_FLAG_ADVICE
from rehab.extensions import db
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_pages_patient import all_logs
from tests.support.clinic import Clinic, build_clinic, login
from tests.support.live_server import freeze_clinic_today
from tests.support.pages import form_data, get_form, text, visible_text

OFFER = "Forgot yesterday? Log yesterday"


@pytest.fixture
def patient(client: FlaskClient, clinic: Clinic) -> FlaskClient:
    login(client, clinic.patient_a.email)
    return client


def yesterday_form(client: FlaskClient, **values: object) -> dict[str, object]:
    data: dict[str, object] = dict(get_form(client, "/me/yesterday"))
    data.update(values)
    return data


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_she_logs_yesterday_once_and_today_stays_separate(
    app: Flask, patient: FlaskClient, clinic: Clinic
) -> None:
    yesterday = clinic_today() - dt.timedelta(days=1)
    assert OFFER in visible_text(patient.get("/me/"))
    page = visible_text(patient.get("/me/yesterday"))
    assert f"Yesterday, {yesterday.strftime('%A')} {yesterday.day}" in page

    data = yesterday_form(patient, back_pain="3", leg_pain="5", leg_side="left")
    saved = patient.post("/me/yesterday", data=data)

    assert saved.status_code == 200
    assert f"The log of {yesterday.strftime('%A')} {yesterday.day}" in visible_text(saved)
    [log] = all_logs(app)
    assert (log.log_date, log.back_pain, log.leg_pain, log.source) == (yesterday, 3, 5, "web")
    # The offer is gone, and the page sends her back to today.
    today_page = visible_text(patient.get("/me/"))
    assert OFFER not in today_page
    assert "You have logged today" not in today_page  # today is still to log
    again = patient.get("/me/yesterday")
    assert (again.status_code, again.headers["Location"]) == (302, "/me/")
    # A second form (another tab) is refused and changes nothing.
    data.update(back_pain="9", client_id="f" * 32)
    refused = patient.post("/me/yesterday", data=data)
    assert refused.status_code == 409
    assert "Yesterday is already logged; it was not changed." in visible_text(refused)
    [log] = all_logs(app)
    assert log.back_pain == 3
    # Her clinician reads it as recalled a day later; today's log, noted the same day, not.
    assert patient.post("/me/", data=dict(get_form(patient, "/me/"), back_pain="1")).status_code
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    record = visible_text(clinician.get(f"/clinic/patients/{clinic.patient_a.patient_id}"))
    today = clinic_today()
    assert f"{yesterday.isoformat()} logged {today.isoformat()}" in record
    assert f"{today.isoformat()} logged" not in record


def test_a_red_flag_logged_late_gets_the_same_guidance(app: Flask, patient: FlaskClient) -> None:
    data = yesterday_form(
        patient, back_pain="4", leg_pain="7", leg_side="left", red_flags=["new_numbness"]
    )
    response = patient.post("/me/yesterday", data=data)
    assert response.status_code == 200
    assert RED_FLAG_ADVICE in visible_text(response)
    [log] = all_logs(app)
    assert log.red_flags == ["new_numbness"]


def test_bad_input_names_the_field_and_stores_nothing(app: Flask, patient: FlaskClient) -> None:
    data = yesterday_form(patient, back_pain="2", leg_pain="11", leg_side="left")
    response = patient.post("/me/yesterday", data=data)
    assert response.status_code == 422
    body = visible_text(response)
    assert "Choose a number from 0 to 10." in body and "Nothing was saved." in body
    assert all_logs(app) == []
    # The page is yesterday's still: fixing the number saves yesterday.
    data["leg_pain"] = "1"
    assert patient.post("/me/yesterday", data=data).status_code == 200
    assert [log.log_date for log in all_logs(app)] == [clinic_today() - dt.timedelta(days=1)]


def test_no_offer_before_her_program_began(database_url: str, tmp_path: object) -> None:
    app = create_app(app_settings(database_url, tmp_path))  # type: ignore[arg-type]
    try:
        with app.app_context():
            clinic = build_clinic(program_days_ago=0)  # her program starts today
        client = app.test_client()
        login(client, clinic.patient_a.email)
        assert OFFER not in visible_text(client.get("/me/"))
        assert client.get("/me/yesterday").status_code == 302
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count(SessionLog.id))) == 0
    finally:
        dispose_engines(app)


def test_a_page_posted_after_midnight_is_still_its_days_log(
    app: Flask, patient: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = clinic_today()
    data = dict(get_form(patient, "/me/"))  # opened late in the evening
    data.update(back_pain="2", leg_pain="6", leg_side="left")
    freeze_clinic_today(monkeypatch, day + dt.timedelta(days=1), hour=0)  # sent at 00:05

    saved = patient.post("/me/", data=data)

    assert saved.status_code == 200
    assert f"The log of {day.strftime('%A')} {day.day}" in visible_text(saved)
    [log] = all_logs(app)
    assert (log.log_date, log.leg_pain) == (day, 6)


def test_a_page_older_than_yesterday_is_refused_not_moved(
    app: Flask, patient: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = clinic_today()
    data = yesterday_form(patient, back_pain="2", leg_pain="6", leg_side="left")  # for day-1
    freeze_clinic_today(monkeypatch, day + dt.timedelta(days=1))  # day-1 is now 2 days back

    refused = patient.post("/me/yesterday", data=data)

    assert refused.status_code == 409
    body = visible_text(refused)
    later = (day - dt.timedelta(days=1)).isoformat()
    assert f"This page was opened for {later}, and the day has changed since" in body
    assert f"The form below is for {day.isoformat()}" in body
    assert all_logs(app) == []
    # The form that came back is for the page's day now: saved as that, once checked.
    again = dict(form_data(text(refused), "/me/yesterday"))
    assert again["log_date"] == day.isoformat() and again["leg_pain"] == "6"
    assert patient.post("/me/yesterday", data=again).status_code == 200
    assert [log.log_date for log in all_logs(app)] == [day]


def test_a_forged_day_is_refused(app: Flask, patient: FlaskClient) -> None:
    for forged, status in (("2099-01-01", 409), ("not-a-day", 422)):
        data = yesterday_form(patient, back_pain="2", leg_pain="0", log_date=forged)
        response = patient.post("/me/", data=data)
        assert response.status_code == status, forged
    assert all_logs(app) == []
