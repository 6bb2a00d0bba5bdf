"""The patient's access report (`/me/access`): who at the clinic read or changed her record,
a month at a time, from the audit trail.

Listed: other people's accounts (allowed, refused, not completed) and commands run on the
server; never her own use, the worker's automatic work, or the name of another patient whose
attempt was refused. Months are the clinic's; a bad month is a 400 naming the field."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from rehab import create_app
from rehab.cli import main as rehab_cli
from rehab.db.models import AuditEvent, Patient, User
from rehab.domain.vocabulary import AuditOutcome, Role
from rehab.extensions import db
from rehab.services import audit
from rehab.services.access_report import ACTION_PHRASES, action_phrase
from rehab.services.actors import SYSTEM
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_audit_coverage import ADMIN_LISTS, MANY_PATIENTS, PATIENT_DATA
from tests.integration.test_pages_patient import audit_rows
from tests.support.clinic import Clinic, build_clinic, login
from tests.support.pages import visible_text

# Actions only a patient takes on her own record: never in her report.
OWN_ONLY = {"history.read", "progress.read", "access_report.read"}


def report(client: FlaskClient, month: str | None = None) -> tuple[int, str]:
    response = client.get("/me/access", query_string={"month": month} if month else None)
    return response.status_code, visible_text(response)


def patient_client(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    login(client, email)
    return client


def clinician_row(user_id: int, patient_id: int | None, action: str, **values: object) -> None:
    """An audit row a clinician's request would have written (in the caller's session)."""
    db.session.add(
        AuditEvent(
            user_id=user_id,
            role=Role.CLINICIAN.value,
            patient_id=patient_id,
            action=action,
            outcome=values.pop("outcome", AuditOutcome.ALLOWED),
            **values,
        )
    )


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_she_sees_who_opened_her_record_and_who_was_refused(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    cara = patient_client(app, clinic.clinician.email)
    for _ in range(2):
        assert cara.get(f"/clinic/patients/{a}").status_code == 200
    dan = patient_client(app, clinic.other_clinician.email)  # team South: not hers
    assert dan.get(f"/clinic/patients/{a}").status_code == 404
    bob = app.test_client()
    headers = {"Authorization": f"Bearer {clinic.patient_b.token}"}
    assert bob.get(f"/api/v1/patients/{a}/series", headers=headers).status_code == 404
    alice = patient_client(app, clinic.patient_a.email)
    assert alice.get("/me/history").status_code == 200

    status, page = report(alice)

    assert status == 200
    assert "Cara Clinician (clinician) opened your record — 2 times" in page
    assert "Dan Clinician (clinician) tried to open your record and was refused" in page
    assert "Another patient's account tried to open your record and was refused" in page
    assert "Bob" not in page  # another patient's name is never shown
    assert "Alice Patient (" not in page  # her own use is not listed
    assert "Dan Clinician (clinician) opened" not in page
    # The report is itself a read of her record, and audited as hers.
    assert audit_rows(app, "access_report.read") == [("allowed", a, clinic.patient_a.user_id)]
    # Bob's report is his own: Cara opened Alice's record, not his.
    _, bobs = report(patient_client(app, clinic.patient_b.email))
    assert "opened your record" not in bobs
    assert "and was refused" not in bobs


def test_a_command_on_the_server_is_listed_and_the_worker_is_not(
    app: Flask, clinic: Clinic, tmp_path: Path
) -> None:
    a = clinic.patient_a.patient_id
    out = tmp_path / "a.csv"
    result = app.test_cli_runner().invoke(
        rehab_cli, ["export", "csv", "--patient", str(a), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        with audit.invocation("task:0f6c"):  # what a worker's task writes
            audit.record(db.session, SYSTEM, "alert.create", a, target="alert:1")
        db.session.commit()

    _, page = report(patient_client(app, clinic.patient_a.email))

    assert "A command run on the clinic's server exported your record" in page
    assert "alert" not in page


def test_a_failed_change_says_it_was_not_completed(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    with app.app_context():
        clinician_row(clinic.clinician.user_id, a, "finding.write", outcome=AuditOutcome.FAILED)
        db.session.commit()

    _, page = report(patient_client(app, clinic.patient_a.email))

    assert "Cara Clinician (clinician) recorded a finding (not completed)" in page


@pytest.fixture
def auckland_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(app_settings(database_url, tmp_path, clinic_timezone="Pacific/Auckland"))
    yield app
    dispose_engines(app)


def test_months_are_the_clinics_and_bad_months_are_refused(auckland_app: Flask) -> None:
    app = auckland_app
    zone = ZoneInfo("Pacific/Auckland")
    today = dt.datetime.now(zone).date().replace(day=1)
    last_month = (today - dt.timedelta(days=1)).replace(day=1)
    two_back = (last_month - dt.timedelta(days=1)).replace(day=1)
    with app.app_context():
        clinic = build_clinic()
        a = clinic.patient_a.patient_id
        patient = db.session.get(Patient, a)
        assert patient is not None
        patient.created_at = dt.datetime.combine(two_back, dt.time(12), tzinfo=zone)
        # 00:30 on the 1st of last month in Auckland is the day before in UTC, and 23:30 on
        # the last day of the month before: each belongs to the clinic's month.
        first_of_last = dt.datetime.combine(last_month, dt.time(0, 30), tzinfo=zone)
        end_of_two_back = first_of_last - dt.timedelta(hours=1)
        assert first_of_last.astimezone(dt.UTC).date() < last_month
        for moment, action in ((first_of_last, "finding.read"), (end_of_two_back, "outcome.read")):
            clinician_row(clinic.clinician.user_id, a, action, at=moment.astimezone(dt.UTC))
        db.session.commit()
    alice = patient_client(app, clinic.patient_a.email)

    _, shown = report(alice, last_month.strftime("%Y-%m"))
    assert f"{last_month.isoformat()} Cara Clinician (clinician) read the findings" in shown
    assert "at 00:30" in shown
    assert "questionnaire" not in shown
    # Links to the months either side, within her record's life.
    assert two_back.strftime("%B %Y") in shown and today.strftime("%B %Y") in shown

    _, earlier = report(alice, two_back.strftime("%Y-%m"))
    last_day = last_month - dt.timedelta(days=1)
    assert f"{last_day.isoformat()} Cara Clinician (clinician) read your questionnaire" in earlier
    assert "at 23:30" in earlier
    assert "findings" not in earlier

    # Before her record existed: its first month; after this one: this one.
    assert report(alice, "1999-01")[1] == earlier
    assert report(alice, "2999-12")[1] == report(alice)[1]
    assert f"<h2>{today.strftime('%B %Y')}</h2>" in alice.get("/me/access").get_data(as_text=True)

    for bad in ("2025-13", "2025-00", "2025-9", "abc", "2025-09-01", "२०२५-०९"):
        status, body = report(alice, bad)
        assert status == 400, bad
        assert "month:" in body, bad


def test_every_action_on_her_record_reads_as_plain_words() -> None:
    # A page that reads or writes a patient's record audits an action; each has its own
    # words in her report (a missing one would read only by its verb).
    audited = set(PATIENT_DATA.values()) | set(ADMIN_LISTS.values())
    audited |= {action for actions in MANY_PATIENTS.values() for action in actions}
    missing = sorted(audited - OWN_ONLY - ACTION_PHRASES.keys())
    assert not missing, f"add words for {missing} to ACTION_PHRASES"
    assert action_phrase("thing.read") == "looked at your record"
    assert action_phrase("thing.list") == "looked at your record"
    assert action_phrase("thing.write") == "changed your record"


def test_two_colleagues_of_one_name_are_two_lines(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    with app.app_context():
        namesake = User(
            email="cara2@clinic.test", display_name="Cara Clinician", role=Role.CLINICIAN
        )
        db.session.add(namesake)
        db.session.flush()
        for user_id in (clinic.clinician.user_id, namesake.id, namesake.id):
            clinician_row(user_id, a, "finding.read")
        db.session.commit()

    _, page = report(patient_client(app, clinic.patient_a.email))

    assert page.count("Cara Clinician (clinician) read the findings of your examinations") == 2
    assert "examinations — 2 times" in page and "examinations — at" in page
