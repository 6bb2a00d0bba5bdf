"""The patient's program as she does it at home (`/me/program`, and "How to do it" under each
exercise of her log): what, how much, how often, the library's instructions and her
clinician's notes; a program ended or one to come; hers only, audited."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import Prescription, Program, ProgramPhase
from rehab.extensions import db
from rehab.services.time import clinic_today
from tests.integration.test_pages_patient import audit_rows
from tests.support.clinic import Clinic, login
from tests.support.pages import visible_text


def prescriptions_of(app: Flask, patient_id: int) -> list[tuple[int, str, str]]:
    """(id, exercise name, instructions) of her program's exercises, in order."""
    with app.app_context():
        rows = db.session.scalars(
            sa.select(Prescription)
            .join(Program)
            .where(Program.patient_id == patient_id)
            .order_by(Prescription.position, Prescription.id)
        ).all()
        return [(p.id, p.exercise.name, p.exercise.instructions) for p in rows]


def change(app: Flask, prescription_id: int, **values: object) -> None:
    with app.app_context():
        db.session.execute(
            sa.update(Prescription).where(Prescription.id == prescription_id).values(**values)
        )
        db.session.commit()


def page_of(app: Flask, email: str, path: str = "/me/program") -> str:
    client: FlaskClient = app.test_client()
    login(client, email)
    response = client.get(path)
    assert response.status_code == 200
    return visible_text(response)


def test_she_reads_what_how_much_how_often_and_how(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    (first, name, instructions), (_, name_2, _), (third, name_3, _) = prescriptions_of(app, a)
    change(app, first, hold_seconds=5, sessions_per_week=3, notes="Keep it below 3/10.")
    change(app, third, active=False)  # taken off her program
    with app.app_context():
        program_id = db.session.scalar(sa.select(Program.id).where(Program.patient_id == a))
        db.session.add(
            ProgramPhase(
                program_id=program_id,
                name="Load",
                start_date=clinic_today() - dt.timedelta(days=10),
                goals="Walk 30 minutes",
            )
        )
        db.session.commit()

    page = page_of(app, clinic.patient_a.email)

    assert "Lumbar stabilisation" in page
    assert "Now: Load — Walk 30 minutes" in page
    assert f"{name} 3 sets of 10, hold 5 s, 3 days a week" in page
    assert "From your clinic: Keep it below 3/10." in page
    assert instructions in page
    assert f"{name_2} 3 sets of 10, every day" in page
    assert name_3 not in page
    assert audit_rows(app, "program.read") == [("allowed", a, clinic.patient_a.user_id)]

    # Today's log has the same, folded under each exercise; her neighbour's has not.
    today = page_of(app, clinic.patient_a.email, "/me/")
    assert f"How to do it From your clinic: Keep it below 3/10. {instructions}" in today
    assert "Keep it below 3/10." not in page_of(app, clinic.patient_b.email)


def test_a_program_ended_and_one_to_come(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    today = clinic_today()
    with app.app_context():
        program = db.session.scalars(sa.select(Program).where(Program.patient_id == a)).one()
        program.end_date = today - dt.timedelta(days=2)
        db.session.add(
            Program(
                patient_id=a,
                title="Return to running",
                start_date=today + dt.timedelta(days=5),
                created_by_user_id=clinic.clinician.user_id,
            )
        )
        db.session.commit()

    page = page_of(app, clinic.patient_a.email)

    assert f"Your program ended on {(today - dt.timedelta(days=2)).isoformat()}" in page
    assert "Lumbar stabilisation" not in page
    assert "A new program, Return to running" in page
    assert f"starts on {(today + dt.timedelta(days=5)).isoformat()}" in page
