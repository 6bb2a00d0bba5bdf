"""A patient rates her own activities (PSFS) on her phone between visits.

Her clinic chose the activities with her (the latest PSFS on her record); when the clinic's
outcome schedule says they are due, today's log asks her to rate them, 0–10 each. Her rating
is a PSFS recorded by her, which the clinician sees on the record and the detector reads like
any other: a drop by the clinically important 2 points is a function-decline alert."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import Alert, AuditEvent, OutcomeMeasure
from rehab.domain.vocabulary import Instrument
from rehab.extensions import db
from rehab.services import evaluation
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic, csrf_token, login
from tests.support.history import add_logs, add_outcome
from tests.support.pages import text, visible_text

ACTIVITIES = ("Walking 30 minutes", "Sitting through a film", "Lifting the shopping")


def psfs_by_clinician(app: Flask, clinic: Clinic, days_ago: int, ratings: list[int]) -> None:
    assert clinic.patient_a.patient_id is not None
    with app.app_context():
        add_outcome(
            clinic.patient_a.patient_id,
            clinic.clinician.user_id,
            days_ago,
            psfs=dict(zip(ACTIVITIES, ratings, strict=True)),
        )


def psfs_rows(app: Flask, patient_id: int) -> list[tuple[dt.date, float, int, list[str]]]:
    with app.app_context():
        found = [
            (
                m.measured_on,
                m.score,
                m.recorded_by_user_id,
                [a["activity"] for a in m.answers["activities"]],
            )
            for m in db.session.scalars(
                sa.select(OutcomeMeasure)
                .where(
                    OutcomeMeasure.patient_id == patient_id,
                    OutcomeMeasure.instrument == Instrument.PSFS,
                )
                .order_by(OutcomeMeasure.id)
            )
        ]
        db.session.rollback()
        return found


def rate(client: FlaskClient, **ratings: str) -> tuple[int, str]:
    token = csrf_token(client, "/me/activities")
    response = client.post("/me/activities", data={"csrf_token": token, **ratings})
    return response.status_code, visible_text(response)


def with_activities(app: Flask, clinic: Clinic, ratings: list[int]) -> tuple[int, FlaskClient]:
    """Patient A's id, her activities rated by her clinician 40 days ago (due again), and her
    logged-in client."""
    a = clinic.patient_a.patient_id
    assert a is not None
    psfs_by_clinician(app, clinic, 40, ratings)
    client = app.test_client()
    login(client, clinic.patient_a.email)
    return a, client


def test_due_activities_are_asked_for_rated_and_shown_to_the_clinic(
    app: Flask, clinic: Clinic
) -> None:
    a, client = with_activities(app, clinic, [3, 4, 2])
    assert "rate your activities" in visible_text(client.get("/me/"))
    page = visible_text(client.get("/me/activities"))
    assert all(name in page for name in ACTIVITIES)

    status, _ = rate(client, rating_0="6", rating_1="7", rating_2="5")
    assert status == 302
    rows = psfs_rows(app, a)
    assert rows[-1] == (clinic_today(), 6.0, clinic.patient_a.user_id, list(ACTIVITIES))
    assert len(rows) == 2
    # Rated: no longer due; the clinician's record shows her score.
    assert "rate your activities" not in visible_text(client.get("/me/"))
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    record = visible_text(clinician.get(f"/clinic/patients/{a}"))
    # Hers is told apart from the one taken at the clinic.
    assert record.count("PSFS (rated by the patient)") == 1
    with app.app_context():
        actions = list(
            db.session.execute(
                sa.select(AuditEvent.action, AuditEvent.user_id).where(
                    AuditEvent.patient_id == a, AuditEvent.action == "outcome.write"
                )
            )
        )
        db.session.rollback()
    assert (("outcome.write", clinic.patient_a.user_id)) in [tuple(r) for r in actions]


def test_rating_again_the_same_day_changes_todays_ratings(app: Flask, clinic: Clinic) -> None:
    a, client = with_activities(app, clinic, [3, 4, 2])
    assert rate(client, rating_0="6", rating_1="7", rating_2="5")[0] == 302
    page = client.get("/me/activities")
    assert "You rated them today" in visible_text(page)
    assert re.search(r'<input checked[^>]* id="rating_1-7"', text(page))
    assert rate(client, rating_0="2", rating_1="2", rating_2="2")[0] == 302
    rows = psfs_rows(app, a)
    assert len(rows) == 2 and rows[-1][1] == 2.0


def test_a_missing_or_bad_rating_names_the_activity_and_stores_nothing(
    app: Flask, clinic: Clinic
) -> None:
    a, client = with_activities(app, clinic, [3, 4, 2])
    before = psfs_rows(app, a)
    for ratings in (
        {"rating_0": "6", "rating_2": "5"},
        {"rating_0": "6", "rating_1": "11", "rating_2": "5"},
        {"rating_0": "6", "rating_1": "x", "rating_2": "5"},
    ):
        status, shown = rate(client, **ratings)
        assert status == 422, ratings
        assert "Nothing was saved" in shown, ratings
        assert ACTIVITIES[1] in shown, ratings
        assert psfs_rows(app, a) == before, ratings


def test_without_activities_there_is_nothing_to_rate(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    client = app.test_client()
    login(client, clinic.patient_a.email)
    assert "has not chosen your activities" in visible_text(client.get("/me/activities"))
    assert "rate your activities" not in visible_text(client.get("/me/"))
    status, _ = rate(client, rating_0="5")
    assert status == 422
    assert psfs_rows(app, a) == []


def test_a_drop_she_reports_herself_is_a_function_decline(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        add_logs(a, clinic_today() - dt.timedelta(days=45), [2] * 45)
    a, client = with_activities(app, clinic, [7, 8, 6])
    assert rate(client, rating_0="4", rating_1="5", rating_2="3")[0] == 302
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [a], clinic_today())
        declines = list(
            db.session.scalars(
                sa.select(Alert.explanation).where(
                    Alert.patient_id == a, Alert.kind == "function_decline"
                )
            )
        )
        db.session.rollback()
    assert len(declines) == 1 and "PSFS" in declines[0]
