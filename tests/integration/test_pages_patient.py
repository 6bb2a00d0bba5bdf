"""The patient's pages: today's log (create, same-day edit, double submit, red flags, bad
input), events (falls with their mechanism and guidance), history, account, and access."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import ApiToken, AuditEvent, Event, SessionLog, User
from rehab.domain.advice import FALL_ADVICE, FALL_AFTER_SURGERY_ADVICE, RED_FLAG_ADVICE
from rehab.domain.vocabulary import AuditOutcome, EventType, FallLocation, LandedOn, Side
from rehab.extensions import db
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic, login
from tests.support.pages import FormData, get_form, text, visible_text


@pytest.fixture
def patient(client: FlaskClient, clinic: Clinic) -> FlaskClient:
    login(client, clinic.patient_a.email)
    return client


def today_form(client: FlaskClient, **values: Any) -> FormData:
    data = get_form(client, "/me/")
    data.update(values)
    return data


def all_logs(app: Flask) -> list[SessionLog]:
    with app.app_context():
        logs = list(db.session.scalars(sa.select(SessionLog).order_by(SessionLog.id)))
        for log in logs:
            db.session.expunge(log)
        return logs


def audit_rows(app: Flask, action: str) -> list[tuple[str, int | None, int | None]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.outcome, AuditEvent.patient_id, AuditEvent.user_id)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        ).all()
    return [(r.outcome.value, r.patient_id, r.user_id) for r in rows]


# --- today's log ----------------------------------------------------------------------------


def test_form_lists_the_prescribed_exercises_prefilled(patient: FlaskClient) -> None:
    page = patient.get("/me/")
    assert page.status_code == 200
    body = visible_text(page)
    for name in ("Abdominal bracing", "Pelvic tilt", "Single knee to chest"):
        assert name in body
    data = today_form(patient)
    assert data["exercises-0-sets_done"] == "3"
    assert data["exercises-0-reps_done"] == "10"
    assert "exercises-0-done" not in data  # nothing ticked yet
    assert len(data["client_id"]) == 32
    # Every render gets a fresh client id.
    assert today_form(patient)["client_id"] != data["client_id"]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_patient_logs_today_then_edits_it_the_same_day(
    app: Flask, patient: FlaskClient, clinic: Clinic
) -> None:
    data = today_form(
        patient,
        back_pain="3",
        leg_pain="2",
        leg_side="left",
        pain_location="buttock",
        note="felt stiff",
        **{"exercises-0-done": "y", "exercises-1-done": "y", "exercises-1-sets_done": "1"},
    )
    response = patient.post("/me/", data=data)
    assert response.status_code == 200
    assert "Saved." in visible_text(response)
    assert "Seek immediate care" not in visible_text(response)
    [log] = all_logs(app)
    assert (log.log_date, log.back_pain, log.leg_pain) == (clinic_today(), 3, 2)
    assert log.leg_side is Side.LEFT and log.pain_location == "buttock"
    assert log.source == "web"
    # Full credit, a third, and nothing: (1 + 1/3 + 0) / 3.
    assert log.adherence == pytest.approx((1 + 1 / 3) / 3, abs=0.001)
    assert "44 %" in visible_text(response)

    # Back on the page: today's log is prefilled for editing.
    again = patient.get("/me/")
    assert "You have logged today" in visible_text(again)
    edit = today_form(patient)
    assert edit["back_pain"] == "3" and edit["leg_side"] == "left"
    assert edit["exercises-0-done"] == "y" and "exercises-2-done" not in edit
    assert edit["exercises-1-sets_done"] == "1"
    assert edit["client_id"] != data["client_id"]
    edit.update(back_pain="6", leg_pain="0")
    edit.pop("leg_side")
    edit.pop("exercises-1-done")
    response = patient.post("/me/", data=edit)
    assert response.status_code == 200
    assert "Updated." in visible_text(response)
    [log] = all_logs(app)  # still one row
    assert (log.back_pain, log.leg_pain, log.leg_side) == (6, 0, None)
    assert log.adherence == pytest.approx(1 / 3, abs=0.001)


def test_a_double_tap_stores_one_log(app: Flask, patient: FlaskClient) -> None:
    data = today_form(patient, back_pain="2", leg_pain="0", **{"exercises-0-done": "y"})
    first = patient.post("/me/", data=data)
    second = patient.post("/me/", data=data)
    assert first.status_code == second.status_code == 200
    assert "Already saved." in visible_text(second)
    assert len(all_logs(app)) == 1


def test_red_flag_log_shows_seek_care_guidance(
    app: Flask, patient: FlaskClient, clinic: Clinic
) -> None:
    data = today_form(
        patient, back_pain="4", leg_pain="7", leg_side="left", red_flags=["new_weakness"]
    )
    response = patient.post("/me/", data=data)
    assert response.status_code == 200
    html = text(response)
    assert "guidance-urgent" in html
    body = visible_text(response)
    assert "Seek immediate care" in body
    assert RED_FLAG_ADVICE in body
    assert "new weakness in a leg or foot" in body
    [log] = all_logs(app)
    assert log.red_flags == ["new_weakness"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"back_pain": "11", "leg_pain": "0"}, "Choose a number from 0 to 10."),
        ({"back_pain": "-1", "leg_pain": "0"}, "Choose a number from 0 to 10."),
        ({"leg_pain": "0"}, "Choose a number from 0 to 10."),
        ({"back_pain": "2", "leg_pain": "4"}, "required when leg_pain is above 0"),
        ({"back_pain": "2", "leg_pain": "1", "leg_side": "middle"}, "Input should be"),
        (
            {
                "back_pain": "2",
                "leg_pain": "0",
                "exercises-0-done": "y",
                "exercises-0-sets_done": "many",
            },
            "Not a valid integer value.",
        ),
        ({"back_pain": "2", "leg_pain": "0", "red_flags": ["third_eye"]}, "is not a valid choice"),
        (
            {"back_pain": "2", "leg_pain": "0", "exercises-0-prescription_id": "999999"},
            "is not an exercise of the patient's program on that date",
        ),
    ],
)
def test_bad_log_input_is_422_with_the_message_and_stores_nothing(
    app: Flask, patient: FlaskClient, values: dict[str, Any], message: str
) -> None:
    data = today_form(patient, **values)
    response = patient.post("/me/", data=data)
    assert response.status_code == 422
    body = visible_text(response)
    assert message in body
    assert "Nothing was saved." in body
    assert all_logs(app) == []
    # The attempt is on record as failed (the patient's own id, not a denial).
    assert audit_rows(app, "session_log.write")[-1][0] == AuditOutcome.FAILED.value


def test_leg_side_error_is_shown_next_to_the_field(patient: FlaskClient) -> None:
    response = patient.post("/me/", data=today_form(patient, back_pain="2", leg_pain="5"))
    assert response.status_code == 422
    assert 'id="leg_side-error"' in text(response)


def test_reading_today_is_audited(app: Flask, patient: FlaskClient, clinic: Clinic) -> None:
    patient.get("/me/")
    assert audit_rows(app, "session_log.read") == [
        ("allowed", clinic.patient_a.patient_id, clinic.patient_a.user_id)
    ]


# --- events -------------------------------------------------------------------------------


def fall_form(client: FlaskClient, **values: Any) -> FormData:
    data = get_form(client, "/me/events/new")
    data.update(
        {
            "event_type": "fall",
            "fall_location": "stairs",
            "fall_steps": "10",
            "fall_landed_on": "buttocks",
            "side": "left",
            "body_region": "left buttock",
            "description": "Slipped at the top of a marble staircase",
        }
    )
    data.update(values)
    return data


def all_events(app: Flask) -> list[Event]:
    with app.app_context():
        events = list(db.session.scalars(sa.select(Event).order_by(Event.id)))
        for e in events:
            db.session.expunge(e)
        return events


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_fall_with_mechanism_is_stored_and_shows_fall_guidance(
    app: Flask, patient: FlaskClient, clinic: Clinic
) -> None:
    data = fall_form(patient)
    assert data["event_date"] == clinic_today().isoformat()  # defaults to today
    response = patient.post("/me/events/new", data=data)
    assert response.status_code == 200
    body = visible_text(response)
    assert FALL_ADVICE in body
    assert FALL_AFTER_SURGERY_ADVICE not in body  # no surgery on record
    [event] = all_events(app)
    assert event.event_type is EventType.FALL
    assert event.fall_location is FallLocation.STAIRS
    assert event.fall_steps == 10
    assert event.fall_landed_on is LandedOn.BUTTOCKS
    assert event.side is Side.LEFT
    assert event.recorded_by_user_id == clinic.patient_a.user_id
    # A double submit of the same form stores one event.
    assert patient.post("/me/events/new", data=data).status_code == 200
    assert len(all_events(app)) == 1


def test_fall_after_spine_surgery_adds_the_surgery_guidance(
    app: Flask, patient: FlaskClient
) -> None:
    surgery = get_form(patient, "/me/events/new")
    surgery.update(
        event_type="surgery",
        event_date=(clinic_today() - dt.timedelta(days=400)).isoformat(),
        description="L4-L5 decompression",
        side="left",
    )
    response = patient.post("/me/events/new", data=surgery)
    assert response.status_code == 200
    assert FALL_ADVICE not in visible_text(response)  # no fall guidance for a surgery
    response = patient.post("/me/events/new", data=fall_form(patient))
    assert FALL_AFTER_SURGERY_ADVICE in visible_text(response)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"event_date": "2999-01-01"}, "is in the future"),
        ({"fall_location": ""}, "required for a fall"),
        ({"fall_landed_on": ""}, "required for a fall"),
        ({"fall_steps": "0"}, "Number must be between 1 and 200."),
        ({"event_type": ""}, "Choose what happened."),
        ({"event_type": "alien_abduction"}, "Input should be"),
        ({"event_date": "yesterday"}, "Not a valid date value."),
    ],
)
def test_bad_event_input_is_422_and_stores_nothing(
    app: Flask, patient: FlaskClient, values: dict[str, str], message: str
) -> None:
    response = patient.post("/me/events/new", data=fall_form(patient, **values))
    assert response.status_code == 422
    assert message in visible_text(response)
    assert all_events(app) == []


def test_fall_answers_are_ignored_for_other_event_types(app: Flask, patient: FlaskClient) -> None:
    # Typed as a fall, then switched to travel: the fall answers are dropped, not an error.
    response = patient.post("/me/events/new", data=fall_form(patient, event_type="travel"))
    assert response.status_code == 200
    assert FALL_ADVICE not in visible_text(response)
    [event] = all_events(app)
    assert event.event_type is EventType.TRAVEL
    assert (event.fall_location, event.fall_steps, event.fall_landed_on) == (None, None, None)


# --- history --------------------------------------------------------------------------------


def test_history_shows_recent_logs_and_events(
    app: Flask, patient: FlaskClient, clinic: Clinic
) -> None:
    patient.post("/me/", data=today_form(patient, back_pain="3", leg_pain="6", leg_side="left"))
    patient.post("/me/events/new", data=fall_form(patient))
    page = patient.get("/me/history")
    assert page.status_code == 200
    body = visible_text(page)
    assert clinic_today().isoformat() in body
    assert "Fall" in body and "10 steps" in body and "landed on buttocks" in body
    assert audit_rows(app, "history.read") == [
        ("allowed", clinic.patient_a.patient_id, clinic.patient_a.user_id)
    ]


# --- account --------------------------------------------------------------------------------


def test_reminder_opt_in(app: Flask, patient: FlaskClient, clinic: Clinic) -> None:
    data = get_form(patient, "/me/account", "/me/account/reminders")
    assert "reminder_opt_in" not in data
    response = patient.post("/me/account/reminders", data={**data, "reminder_opt_in": "y"})
    assert response.status_code == 302
    with app.app_context():
        user = db.session.get(User, clinic.patient_a.user_id)
        assert user is not None and user.reminder_opt_in is True
    data = get_form(patient, "/me/account", "/me/account/reminders")
    assert data["reminder_opt_in"] == "y"
    patient.post("/me/account/reminders", data={"csrf_token": data["csrf_token"]})
    with app.app_context():
        user = db.session.get(User, clinic.patient_a.user_id)
        assert user is not None and user.reminder_opt_in is False


def test_device_token_is_shown_once_works_and_can_be_revoked(
    app: Flask, patient: FlaskClient, clinic: Clinic
) -> None:
    data = get_form(patient, "/me/account", "/me/account/tokens")
    response = patient.post("/me/account/tokens", data={**data, "device_name": "My phone"})
    assert response.status_code == 200
    token = get_form_value(text(response), "new-token")
    assert token.startswith("rhb_")
    headers = {"Authorization": f"Bearer {token}"}
    assert patient.get("/api/v1/me", headers=headers).status_code == 200
    # Not shown again.
    assert token not in text(patient.get("/me/account"))
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.name == "My phone"))
    revoke_url = f"/me/account/tokens/{token_id}/revoke"
    form = get_form(patient, "/me/account", revoke_url)
    assert patient.post(revoke_url, data=form).status_code == 302
    assert patient.get("/api/v1/me", headers=headers).status_code == 401
    # Someone else's token cannot be revoked (404), and an empty name is refused.
    with app.app_context():
        others = db.session.scalar(
            sa.select(ApiToken.id).where(ApiToken.user_id == clinic.patient_b.user_id)
        )
    assert patient.post(f"/me/account/tokens/{others}/revoke", data=form).status_code == 404
    empty = patient.post("/me/account/tokens", data={**data, "device_name": "  "})
    assert empty.status_code == 422


def get_form_value(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*value="([^"]+)"', html)
    assert match, element_id
    return match.group(1)


# --- access -----------------------------------------------------------------------------------


def test_patient_gets_404_on_other_patients_and_other_roles_pages(
    app: Flask, patient: FlaskClient, clinic: Clinic
) -> None:
    b, own = clinic.patient_b.patient_id, clinic.patient_a.patient_id
    for path in (
        f"/clinic/patients/{b}",
        f"/clinic/patients/{own}",
        f"/clinic/patients/{b}/events/new",
        "/clinic/",
        "/clinic/patients/new",
        "/admin/",
        "/admin/audit",
    ):
        assert patient.get(path).status_code == 404, path
    data = get_form(patient, "/me/events/new")
    assert patient.post(f"/clinic/patients/{b}/events/new", data=data).status_code == 404
    assert all_events(app) == []


def test_clinicians_and_admins_get_404_on_patient_pages(app: Flask, clinic: Clinic) -> None:
    for person in (clinic.clinician, clinic.admin):
        client = app.test_client()
        login(client, person.email)
        for path in ("/me/", "/me/history", "/me/events/new", "/me/account"):
            assert client.get(path).status_code == 404, (person.email, path)
