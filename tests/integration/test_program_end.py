"""Ending a patient's program (a discharge, or a break in care): the clinician's page, its
checks, and missed logging counted while programs ask for logs (from their start, up to
their end)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import Alert, AlertStatus, AuditEvent, Exercise, Program, User
from rehab.extensions import db
from rehab.services import accounts, alerts, evaluation, programs
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.services.commands import EndProgramInput, PrescriptionInput, ProgramInput
from rehab.services.time import clinic_today
from tests.integration.test_api_logs import auth, log_body
from tests.support.clinic import Clinic, login
from tests.support.history import add_logs
from tests.support.pages import get_form, text, visible_text


def _end_url(patient_id: int | None) -> str:
    return f"/clinic/patients/{patient_id}/program/end"


def _end_dates(app: Flask, patient_id: int | None) -> list[dt.date | None]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Program.end_date)
                .where(Program.patient_id == patient_id)
                .order_by(Program.start_date)
            )
        )


def _program_writes(app: Flask, clinic: Clinic) -> list[str]:
    """The outcomes of the clinician's audited program writes for patient A, oldest first."""
    with app.app_context():
        return [
            str(outcome)
            for outcome in db.session.scalars(
                sa.select(AuditEvent.outcome)
                .where(
                    AuditEvent.patient_id == clinic.patient_a.patient_id,
                    AuditEvent.action == "program.write",
                    AuditEvent.user_id == clinic.clinician.user_id,
                )
                .order_by(AuditEvent.id)
            )
        ]


def _clinician_actor(clinic: Clinic) -> Actor:
    user = db.session.get(User, clinic.clinician.user_id)
    assert user is not None
    return accounts.actor_for(user)


def _prescribe_from(clinic: Clinic, patient_id: int, start: dt.date, title: str) -> None:
    """A one-exercise program for the patient from `start`, by her clinician (in the app
    context)."""
    exercise = db.session.scalar(sa.select(Exercise.id).order_by(Exercise.id).limit(1))
    assert exercise is not None
    programs.create_program(
        db.session,
        _clinician_actor(clinic),
        patient_id,
        ProgramInput(
            title=title,
            start_date=start,
            prescriptions=[PrescriptionInput(exercise_id=exercise, sets=2, reps=8)],
        ),
    )


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_clinician_ends_the_program_from_the_patients_record(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    login(client, clinic.clinician.email)
    assert _end_url(a) in text(client.get(f"/clinic/patients/{a}"))
    page = client.get(_end_url(a))
    assert "In effect today:" in visible_text(page)
    form = get_form(client, _end_url(a))
    today = clinic_today()
    assert form["end_date"] == today.isoformat()

    before = _program_writes(app, clinic)
    response = client.post(_end_url(a), data=form)

    assert response.status_code == 302, text(response)[:500]
    assert _end_dates(app, a) == [today]
    record = visible_text(client.get(f"/clinic/patients/{a}"))
    assert f"to {today.isoformat()}" in record
    assert _program_writes(app, clinic) == [*before, "allowed"]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_an_end_that_would_leave_out_what_is_recorded_is_refused_naming_the_date(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A day logged against the program after the end, a date no program covers, a later
    program already prescribed, a date that is no date: 422 with the field named, and the
    program left as it was."""
    a = clinic.patient_a.patient_id
    today = clinic_today()
    logged = today - dt.timedelta(days=2)
    body = log_body(clinic, log_date=logged.isoformat())
    headers = auth(clinic.patient_a)
    assert client.post(f"/api/v1/patients/{a}/logs", json=body, headers=headers).status_code == 201
    login(client, clinic.clinician.email)
    form = get_form(client, _end_url(a))

    def refused(end_date: str) -> str:
        response = client.post(_end_url(a), data={**form, "end_date": end_date})
        assert response.status_code == 422, (end_date, response.status_code)
        assert _end_dates(app, a) == [None]
        return visible_text(response)

    assert "the last day logged under this program" in refused(
        (logged - dt.timedelta(days=1)).isoformat()
    )
    assert "no program is in effect" in refused(
        (clinic.program_start - dt.timedelta(days=1)).isoformat()
    )
    assert "Not a valid date value" in refused("2026-13-01")

    later = today + dt.timedelta(days=10)
    with app.app_context():
        assert a is not None
        _prescribe_from(clinic, a, later, "Next phase")
    assert _end_dates(app, a) == [later - dt.timedelta(days=1), None]
    response = client.post(_end_url(a), data={**form, "end_date": today.isoformat()})
    assert response.status_code == 422
    assert f"a later program starts on {later.isoformat()}" in visible_text(response)
    assert _end_dates(app, a) == [later - dt.timedelta(days=1), None]


def test_others_cannot_end_the_program(app: Flask, clinic: Clinic) -> None:
    """The clinician of another care team and the patient herself get 404; nothing changes."""
    a = clinic.patient_a.patient_id
    assert a is not None
    for person in (clinic.other_clinician, clinic.patient_a):
        client = app.test_client()
        login(client, person.email)
        assert client.get(_end_url(a)).status_code == 404
        with app.app_context():
            user = db.session.get(User, person.user_id)
            assert user is not None
            with pytest.raises(NotFound):
                programs.end_program(
                    db.session,
                    accounts.actor_for(user),
                    a,
                    EndProgramInput(end_date=clinic_today()),
                )
    assert _end_dates(app, a) == [None]


def _missed_logs_alerts(patient_id: int | None) -> list[Alert]:
    return list(
        db.session.scalars(
            sa.select(Alert)
            .where(Alert.patient_id == patient_id, Alert.kind == "missed_logs")
            .order_by(Alert.detected_on)
        )
    )


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_discharge_closes_the_open_missed_logs_alert_and_no_new_one_follows(
    app: Flask, clinic: Clinic
) -> None:
    """Patient A stopped logging 8 days ago: a missed-logs alert is open. Her program ends
    yesterday: the alert closes today, saying why, and days without logs after the end raise
    nothing. Patient B's gap is closed by a log, and her alert says that instead (it used to
    read "back near baseline")."""
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a is not None and b is not None
    today = clinic_today()
    with app.app_context():
        # Every day of their programs up to today - 9.
        add_logs(a, clinic.program_start, [1] * ((today - clinic.program_start).days - 8))
        add_logs(b, clinic.program_start, [1] * ((today - clinic.program_start).days - 8))
        evaluation.evaluate_and_commit(db.session, [a, b], today)
        for patient in (a, b):
            (gap,) = _missed_logs_alerts(patient)
            assert gap.status is AlertStatus.OPEN
            assert gap.detected_on == today - dt.timedelta(days=9 - 3)

        programs.end_program(
            db.session,
            _clinician_actor(clinic),
            a,
            EndProgramInput(end_date=today - dt.timedelta(days=1)),
        )
        add_logs(b, today, [1])
        evaluation.evaluate_and_commit(db.session, [a, b], today)
        (closed_a,) = _missed_logs_alerts(a)
        (closed_b,) = _missed_logs_alerts(b)
        assert (closed_a.status, closed_a.resolved_on) == (AlertStatus.RESOLVED, today)
        assert closed_a.resolve_note == alerts.AUTO_PROGRAM_ENDED
        assert (closed_b.status, closed_b.resolved_on) == (AlertStatus.RESOLVED, today)
        assert closed_b.resolve_note == alerts.AUTO_LOGGING_RESUMED
        reasons = [step.reason for step in alerts.history(closed_a, {})]
        assert reasons == ["the program ended: no logs asked for after it"]

        # Three weeks on, still no log from A: nothing new (B, still in her program, has one).
        evaluation.evaluate_and_commit(db.session, [a, b], today + dt.timedelta(days=21))
        assert [x.id for x in _missed_logs_alerts(a)] == [closed_a.id]
        assert len(_missed_logs_alerts(b)) == 2


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_missed_logging_counts_from_the_programs_start_and_again_after_a_break(
    app: Flask, clinic: Clinic
) -> None:
    """Patient A never logged since her program began 60 days ago: one open missed-logs
    alert, from the start. Patient B logged every day until her discharge 20 days ago and was
    taken on again 5 days ago, with no log since: nothing for the break, an alert from the new
    start (the detector used to count only from a log, so neither was alerted)."""
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a is not None and b is not None
    today = clinic_today()
    start = clinic.program_start
    discharged, again = today - dt.timedelta(days=20), today - dt.timedelta(days=5)
    with app.app_context():
        add_logs(b, start, [1] * ((discharged - start).days + 1))
        programs.end_program(
            db.session, _clinician_actor(clinic), b, EndProgramInput(end_date=discharged)
        )
        _prescribe_from(clinic, b, again, "Back again")
        evaluation.evaluate_and_commit(db.session, [a, b], today)
        (never,) = _missed_logs_alerts(a)
        (taken_on_again,) = _missed_logs_alerts(b)
        assert (never.status, never.onset, never.resolved_on) == (AlertStatus.OPEN, start, None)
        assert never.explanation.startswith(
            f"No log for 3 days since the program started {start.isoformat()} (no log yet)."
        )
        assert (taken_on_again.status, taken_on_again.onset) == (AlertStatus.OPEN, again)
        assert taken_on_again.explanation.startswith(
            f"No log for 3 days since the program started {again.isoformat()}"
            f" (last log {discharged.isoformat()})."
        )


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_after_the_end_the_patient_can_still_log_pain_but_not_the_old_exercises(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    today = clinic_today()
    with app.app_context():
        programs.end_program(
            db.session,
            _clinician_actor(clinic),
            a or 0,
            EndProgramInput(end_date=today - dt.timedelta(days=3)),
        )
    headers = auth(clinic.patient_a)
    body = log_body(clinic, log_date=today.isoformat(), exercises=[])
    assert client.post(f"/api/v1/patients/{a}/logs", json=body, headers=headers).status_code == 201
    # (log_body's exercises: the ended program's.)
    body = log_body(clinic, log_date=(today - dt.timedelta(days=1)).isoformat())
    refused = client.post(f"/api/v1/patients/{a}/logs", json=body, headers=headers)
    assert refused.status_code == 422
    assert refused.json is not None
    assert refused.json["errors"][0]["field"] == "exercises.0.prescription_id"
    login(client, clinic.patient_a.email)
    today_page = client.get("/me/")
    assert today_page.status_code == 200
    assert "No exercises are prescribed for today" in visible_text(today_page)


D = dt.date(2026, 3, 1)


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (alerts.AUTO_LOGGING_RESUMED, "a log arrived"),
        (alerts.AUTO_PROGRAM_ENDED, "the program ended: no logs asked for after it"),
        # What a gap closed by a log was noted with before: read as what it was.
        (alerts.AUTO_BACK_NEAR_BASELINE, "a log arrived"),
    ],
)
def test_a_missed_logs_alert_closed_by_the_detector_says_why(note: str, reason: str) -> None:
    alert = Alert(
        kind="missed_logs",
        status=AlertStatus.RESOLVED,
        resolved_on=D,
        resolve_note=note,
    )
    assert [step.reason for step in alerts.history(alert, {})] == [reason]
