"""A clinician's outcome figures (`/clinic/outcomes`): each episode's ODI/PSFS change against
the MCID for her care teams' patients only, scores of an earlier episode and scores marked
entered in error left out, every patient shown audited."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from flask import Flask

from rehab.db.models import AuditEvent, OutcomeMeasure, Program, utcnow
from rehab.domain.vocabulary import Instrument
from rehab.extensions import db
from rehab.services import outcomes_report
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic, login
from tests.support.pages import visible_text

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
ODI, PSFS = Instrument.ODI, Instrument.PSFS


def score(
    patient_id: int | None, instrument: Instrument, days_ago: int, value: float, by: int
) -> OutcomeMeasure:
    assert patient_id is not None
    row = OutcomeMeasure(
        patient_id=patient_id,
        instrument=instrument,
        measured_on=clinic_today() - dt.timedelta(days=days_ago),
        score=value,
        answers={},
        recorded_by_user_id=by,
    )
    db.session.add(row)
    return row


def history(clinic: Clinic) -> None:
    """The clinic's programs began 60 days ago: episodes from 74 days ago."""
    cara, dan = clinic.clinician.user_id, clinic.other_clinician.user_id
    a, b, c = (p.patient_id for p in (clinic.patient_a, clinic.patient_b, clinic.patient_c))
    score(a, ODI, 100, 70, cara)  # an earlier episode: not counted
    score(a, ODI, 70, 44, cara)  # the intake assessment
    score(a, ODI, 30, 38, cara)
    score(a, ODI, 5, 30, cara)  # 14 points lower: better
    score(a, PSFS, 60, 3.0, cara)
    score(a, PSFS, 10, 4.0, cara)  # +1: within the MCID of 2
    score(b, ODI, 50, 20, cara)
    score(b, ODI, 2, 32, cara)  # 12 points higher: worse
    mistaken = score(b, ODI, 1, 10, cara)  # entered in error: would make her "better"
    score(b, PSFS, 20, 5.0, cara)  # one score so far
    score(c, ODI, 50, 60, dan)  # another care team's patient
    score(c, ODI, 3, 20, dan)
    db.session.flush()
    today = clinic_today()
    # a's dose was progressed 19 days ago (a new program, the first ended the day before):
    # one episode still, from her intake. b was discharged yesterday: an ended episode.
    (a_program,) = db.session.scalars(sa.select(Program).where(Program.patient_id == a))
    a_program.end_date = today - dt.timedelta(days=20)
    db.session.add(
        Program(
            patient_id=a,
            title="Progressed",
            start_date=today - dt.timedelta(days=19),
            created_by_user_id=cara,
        )
    )
    (b_program,) = db.session.scalars(sa.select(Program).where(Program.patient_id == b))
    b_program.end_date = today - dt.timedelta(days=1)
    mistaken.entered_in_error_at = utcnow()
    mistaken.entered_in_error_by_user_id = cara
    mistaken.entered_in_error_reason = "wrong patient"
    db.session.commit()


def rows_of(body: str) -> list[str]:
    part = body.split("Worse by the MCID first", 1)[1]
    return re.findall(r"(Alice Patient|Bob Patient|Cleo Patient) (ODI|PSFS)", part)


@BOTH
def test_the_report_counts_each_episode_against_the_mcid_for_the_care_team_only(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        history(clinic)
    client = app.test_client()
    login(client, clinic.clinician.email)
    response = client.get("/clinic/outcomes")
    assert response.status_code == 200
    body = visible_text(response)
    summary = re.sub(r"\s+", " ", body.split("Patients by how their score changed", 1)[1])
    # Scored on two days, better (%), within, worse, median improvement, one score so far.
    # ODI: Alice 14 points lower over her progressed episode, Bob 12 higher; median +1.
    assert "ODI, all 2 1 (50 %) 0 1 +1.0 0" in summary
    # PSFS: Alice within (+1); Bob has one score.
    assert "PSFS, all 1 0 (0 %) 1 0 +1.0 1" in summary
    # Bob's episode ended yesterday.
    assert "ODI, ended 1 0 (0 %) 0 1 -12.0 0" in summary
    assert "PSFS, ended 0 0 0 0 — 1" in summary
    assert rows_of(body) == [
        ("Bob Patient", "ODI"),  # worse first
        ("Alice Patient", "PSFS"),
        ("Alice Patient", "ODI"),
    ]
    patients = re.sub(r"\s+", " ", body.split("Worse by the MCID first", 1)[1])
    first_day = (clinic_today() - dt.timedelta(days=70)).isoformat()
    assert f"ongoing {first_day} : 44.0" in patients
    assert "(3 scores) -14.0 (lower is better) better by the MCID or more" in patients
    ended = (clinic_today() - dt.timedelta(days=1)).isoformat()
    assert f"Bob Patient ODI ended {ended}" in patients
    assert "+12.0 (lower is better) worse by the MCID or more" in patients
    assert "+1.0 (higher is better) within the MCID" in patients
    assert "Cleo Patient" not in body

    with app.app_context():
        audited = db.session.scalars(
            sa.select(AuditEvent.patient_id)
            .where(AuditEvent.action == outcomes_report.ACTION)
            .order_by(AuditEvent.patient_id)
        ).all()
    assert audited == sorted([clinic.patient_a.patient_id, clinic.patient_b.patient_id])

    # The other care team's clinician sees her own patient only.
    dan = app.test_client()
    login(dan, clinic.other_clinician.email)
    other = visible_text(dan.get("/clinic/outcomes"))
    assert rows_of(other) == [("Cleo Patient", "ODI")]
    assert "Alice Patient" not in other and "Bob Patient" not in other


def test_an_empty_caseload_and_who_may_not_read_it(app: Flask, clinic: Clinic) -> None:
    client = app.test_client()
    login(client, clinic.clinician.email)
    body = visible_text(client.get("/clinic/outcomes"))
    assert "No patient of your care teams has scores of one measure on two days" in body
    assert "ODI, all 0 0 0 0 — 0" in re.sub(r"\s+", " ", body)
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count(AuditEvent.id)).where(
                    AuditEvent.action == outcomes_report.ACTION
                )
            )
            == 0
        )
    for person in (clinic.patient_a, clinic.admin):
        other = app.test_client()
        login(other, person.email)
        assert other.get("/clinic/outcomes").status_code == 404
