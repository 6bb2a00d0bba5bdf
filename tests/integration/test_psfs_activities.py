"""A patient's PSFS activities change between visits (her clinician replaces one she now does
easily by a harder one): the detector compares her measures on the activities rated in each,
through both of the evaluation's reads (PostgreSQL's one statement, SQLite's generic read),
and the alert says so."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from flask import Flask

from rehab.db.models import Alert, OutcomeMeasure, User
from rehab.domain.vocabulary import Instrument
from rehab.extensions import db
from rehab.services import accounts, alerts, clinical, evaluation
from rehab.services.commands import PsfsRatingsInput
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic, login
from tests.support.history import add_outcome
from tests.support.pages import get_form, visible_text


def record_psfs(app: Flask, clinic: Clinic, days_ago: int, ratings: dict[str, int]) -> None:
    assert clinic.patient_a.patient_id is not None
    with app.app_context():
        add_outcome(clinic.patient_a.patient_id, clinic.clinician.user_id, days_ago, psfs=ratings)


def evaluated_declines(app: Flask, patient_id: int) -> list[tuple[dt.date, float | None, str]]:
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [patient_id], clinic_today())
        found = [
            (detected_on, current, explanation)
            for detected_on, current, explanation in db.session.execute(
                sa.select(Alert.detected_on, Alert.current, Alert.explanation).where(
                    Alert.patient_id == patient_id, Alert.kind == "function_decline"
                )
            )
        ]
        db.session.rollback()
        return found


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_psfs_measures_are_compared_on_the_activities_rated_in_each(
    app: Flask, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    record_psfs(app, clinic, 90, {"Walking 30 minutes": 8, "Sitting through a film": 8,
                                  "Lifting the shopping": 7})  # fmt: skip
    # The same activities, typed again with other case and spacing.
    record_psfs(app, clinic, 60, {"walking 30  minutes": 8, "Sitting through a film": 9,
                                  "lifting the shopping ": 7})  # fmt: skip
    # Walking is easy now; running replaces it. The mean falls from 7.7–8.0 to 5.3, but on the
    # two activities rated in each she is as before: no decline.
    record_psfs(app, clinic, 30, {"Running 5 km": 1, "Sitting through a film": 8,
                                  "Lifting the shopping": 7})  # fmt: skip
    assert evaluated_declines(app, a) == []

    # Rated high on running, lower on the two she had: the mean (6.3) is within 2 of the
    # earlier measures', but those two are down by 2.5 from their median (7.5).
    record_psfs(app, clinic, 0, {"Running 5 km": 9, "Sitting through a film": 5,
                                 "Lifting the shopping": 5})  # fmt: skip
    found = evaluated_declines(app, a)
    assert [(on, current) for on, current, _ in found] == [(clinic_today(), 5.0)]
    assert "vs baseline 7.5/10" in found[0][2]
    assert "on the 2 activities rated in each" in found[0][2]

    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    assert "on the 2 activities rated in each" in visible_text(clinician.get("/clinic/alerts/"))


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_the_outcomes_report_compares_a_psfs_on_the_activities_kept(
    app: Flask, clinic: Clinic
) -> None:
    record_psfs(app, clinic, 50, {"Walking 30 minutes": 3, "Sitting through a film": 3,
                                  "Lifting the shopping": 4})  # fmt: skip
    record_psfs(app, clinic, 5, {"Running 5 km": 1, "sitting through a film": 6,
                                 "Lifting the shopping": 6})  # fmt: skip
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    page = re.sub(r"\s+", " ", visible_text(clinician.get("/clinic/outcomes")))
    # The means (3.3 → 4.3) are within the MCID; the two activities kept rose by 2.5.
    assert ": 3.5" in page and ": 6.0" in page
    assert "both on the 2 activities rated at each" in page
    assert "+2.5 (higher is better) better by the MCID or more" in page


def test_the_psfs_form_says_how_changed_activities_are_compared(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    record_psfs(app, clinic, 30, {"Walking 30 minutes": 6, "Sitting through a film": 7,
                                  "Lifting the shopping": 5})  # fmt: skip
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    response = clinician.get(f"/clinic/patients/{a}/outcomes/new?instrument=psfs")
    assert response.status_code == 200
    page = visible_text(response)
    assert "the latest ones are filled in" in page
    assert "use the activities rated in both" in page
    assert 'value="Walking 30 minutes"' in response.get_data(as_text=True)


def test_an_activity_twice_in_one_psfs_is_refused_naming_the_field(
    app: Flask, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    url = f"/clinic/patients/{a}/outcomes/new?instrument=psfs"
    data = get_form(clinician, url)
    for i, (activity, rating) in enumerate([("Stairs", 4), ("Sitting", 6), ("  stairs ", 8)]):
        data[f"activities-{i}-activity"] = activity
        data[f"activities-{i}-rating"] = str(rating)
    refused = clinician.post(url, data=data)
    assert refused.status_code == 422
    assert "each activity is rated once; 'stairs' is twice" in visible_text(refused)
    with app.app_context():
        stored = db.session.scalar(sa.select(sa.func.count()).where(OutcomeMeasure.patient_id == a))
        db.session.rollback()
    assert stored == 0


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_a_decline_whose_activities_are_replaced_is_resolved_saying_why(
    app: Flask, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    names = ("Walking 30 minutes", "Sitting through a film", "Lifting the shopping")
    record_psfs(app, clinic, 90, dict(zip(names, (8, 8, 7), strict=True)))
    record_psfs(app, clinic, 60, dict(zip(names, (8, 8, 7), strict=True)))
    record_psfs(app, clinic, 30, dict(zip(names, (5, 5, 5), strict=True)))
    assert [(on, current) for on, current, _ in evaluated_declines(app, a)] == [
        (clinic_today() - dt.timedelta(days=30), 5.0)
    ]
    record_psfs(app, clinic, 0, {"Running 5 km": 9, "Cycling": 9, "Swimming": 9})
    evaluated_declines(app, a)
    with app.app_context():
        status, note, resolved_on = db.session.execute(
            sa.select(Alert.status, Alert.resolve_note, Alert.resolved_on).where(
                Alert.patient_id == a, Alert.kind == "function_decline"
            )
        ).one()
        db.session.rollback()
    assert (status.value, note, resolved_on) == (
        "resolved",
        alerts.AUTO_ACTIVITIES_REPLACED,
        clinic_today(),
    )


def test_she_rates_her_clinics_list_even_with_an_activity_there_twice(
    app: Flask, clinic: Clinic
) -> None:
    """A list stored before the clinic's form refused an activity twice: her own rating of it
    is taken, not refused for a mistake that is not hers to mend."""
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        db.session.add(
            OutcomeMeasure(
                patient_id=a,
                instrument=Instrument.PSFS,
                measured_on=clinic_today() - dt.timedelta(days=40),
                score=6.0,
                answers={"activities": [{"activity": "Stairs", "rating": 6},
                                        {"activity": "Sitting", "rating": 6},
                                        {"activity": "stairs", "rating": 6}]},
                recorded_by_user_id=clinic.clinician.user_id,
            )
        )  # fmt: skip
        db.session.commit()
        user = db.session.get(User, clinic.patient_a.user_id)
        assert user is not None
        measure = clinical.rate_own_activities(
            db.session, accounts.actor_for(user), a, PsfsRatingsInput(ratings=[5, 6, 5])
        )
        assert measure.score == 5.3
        db.session.rollback()
