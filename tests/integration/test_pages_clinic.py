"""The clinician's pages: caseload (only their patients, few queries), the patient record,
adding a patient, prescribing a program, events, findings (several tests at once), ODI/PSFS,
and access (off-team clinicians get 404, audited as denied)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import (
    AuditEvent,
    Event,
    Exercise,
    Finding,
    OutcomeMeasure,
    Patient,
    Prescription,
    Program,
    SessionLog,
    User,
)
from rehab.domain.vocabulary import EventType, FindingKind, NeurodynamicTest, Role, TestResult
from rehab.extensions import db
from rehab.services import caseload as caseload_service
from rehab.services.actors import Actor
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic, Person, login, search_caseload
from tests.support.pages import FormData, form_data, get_form, text, visible_text
from tests.support.queries import counting_queries


@pytest.fixture
def clinician(client: FlaskClient, clinic: Clinic) -> FlaskClient:
    login(client, clinic.clinician.email)
    return client


def other_clinician(app: Flask, clinic: Clinic) -> FlaskClient:
    client = app.test_client()
    login(client, clinic.other_clinician.email)
    return client


def api_log(client: FlaskClient, clinic: Clinic, person: Person, day: dt.date, **body: Any) -> None:
    assert person.patient_id is not None
    payload = {
        "client_id": uuid.uuid4().hex,
        "log_date": day.isoformat(),
        "back_pain": 2,
        "leg_pain": 0,
        "exercises": [
            {"prescription_id": pid, "done": True}
            for pid in clinic.prescription_ids[person.patient_id]
        ],
        **body,
    }
    response = client.post(
        f"/api/v1/patients/{person.patient_id}/logs",
        json=payload,
        headers={"Authorization": f"Bearer {person.token}"},
    )
    assert response.status_code == 201, response.json


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def audit_rows(app: Flask, action: str) -> list[tuple[str, int | None, int | None]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.outcome, AuditEvent.patient_id, AuditEvent.user_id)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        ).all()
    return [(r.outcome.value, r.patient_id, r.user_id) for r in rows]


# --- caseload -------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_caseload_lists_only_the_clinicians_patients(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    body = visible_text(clinician.get("/clinic/"))
    assert "Alice Patient" in body and "Bob Patient" in body
    assert "Cleo Patient" not in body
    other = visible_text(other_clinician(app, clinic).get("/clinic/"))
    assert "Cleo Patient" in other and "Alice Patient" not in other

    search_caseload(clinician, "ALI")
    search = visible_text(clinician.get("/clinic/"))
    assert "Alice Patient" in search and "Bob Patient" not in search
    # Nor do the pager's links carry the term ("Show in pages" on the one-page view).
    every = clinician.get("/clinic/?per_page=all").get_data(as_text=True)
    links = re.findall(r'href="([^"]*)"', every)
    assert any("per_page" not in link and "/clinic/?" in link for link in links)
    assert not [link for link in links if "ALI" in link.upper() or "q=" in link]
    # LIKE wildcards are searched literally.
    search_caseload(clinician, "%")
    assert "Alice Patient" not in visible_text(clinician.get("/clinic/"))
    search_caseload(clinician, "_")
    assert "No patient matches" in visible_text(clinician.get("/clinic/"))
    # The name never travels in a URL; clearing the search shows everyone again.
    search_caseload(clinician, "")
    assert "Bob Patient" in visible_text(clinician.get("/clinic/?q=ALI"))


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_caseload_shows_last_log_pain_adherence_and_program(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    today = clinic_today()
    for days_ago in range(7):
        api_log(clinician, clinic, clinic.patient_a, today - dt.timedelta(days=days_ago))
    api_log(
        clinician,
        clinic,
        clinic.patient_b,
        today - dt.timedelta(days=3),
        back_pain=5,
        leg_pain=8,
        leg_side="right",
        exercises=[],
    )
    rows = {r.name: r for r in _rows(app, clinic)}
    alice, bob = rows["Alice Patient"], rows["Bob Patient"]
    assert (alice.last_log_date, alice.days_since_log, alice.back_pain) == (today, 0, 2)
    assert alice.adherence_7d == pytest.approx(1.0)
    assert alice.program_title == "Lumbar stabilisation"
    assert (bob.days_since_log, bob.leg_pain, bob.leg_side) == (3, 8, "right")
    assert bob.adherence_7d == pytest.approx(0.0)

    page = clinician.get("/clinic/?sort=leg_pain")
    body = visible_text(page)
    assert body.index("Bob Patient") < body.index("Alice Patient")
    assert "100 %" in body and "3 days ago" in body and "today" in body
    by_name = visible_text(clinician.get("/clinic/?sort=name"))
    assert by_name.index("Alice Patient") < by_name.index("Bob Patient")
    assert clinician.get("/clinic/?sort=nonsense").status_code == 200


def _rows(app: Flask, clinic: Clinic) -> list[caseload_service.CaseloadRow]:
    actor = Actor(
        clinic.clinician.user_id, Role.CLINICIAN, clinician_id=clinic.clinician.clinician_id
    )
    with app.app_context():
        return caseload_service.caseload(db.session, actor)


def _add_patients(app: Flask, clinic: Clinic, n: int) -> None:
    today = clinic_today()
    with app.app_context():
        for i in range(n):
            user = User(
                email=f"extra{i}@patient.test", display_name=f"Extra {i}", role=Role.PATIENT
            )
            patient = Patient(user=user, care_team_id=clinic.team_north_id)
            db.session.add(patient)
            db.session.flush()
            db.session.add(
                Program(
                    patient_id=patient.id,
                    title=f"Program {i}",
                    start_date=today - dt.timedelta(days=30),
                    created_by_user_id=clinic.clinician.user_id,
                )
            )
            for d in range(3):
                db.session.add(
                    SessionLog(
                        patient_id=patient.id,
                        log_date=today - dt.timedelta(days=d),
                        client_id=uuid.uuid4().hex,
                        body_hash="x" * 64,
                        back_pain=d,
                        leg_pain=i % 10,
                        adherence=0.5,
                    )
                )
        db.session.commit()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_caseload_query_count_does_not_grow_with_the_caseload(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    clinician.get("/clinic/")  # warm up (login, first connection)
    with counting_queries(app) as small:
        assert clinician.get("/clinic/").status_code == 200
    _add_patients(app, clinic, 12)
    with counting_queries(app) as large:
        page = clinician.get("/clinic/")
    assert "Extra 11" in visible_text(page)
    assert len(large) == len(small)
    # The service itself: one SELECT.
    with counting_queries(app) as service:
        rows = _rows(app, clinic)
    assert len(rows) == 14
    assert len(service) <= 5
    extra = {r.name: r for r in rows}["Extra 3"]
    assert (extra.leg_pain, extra.back_pain, extra.days_since_log) == (3, 0, 0)
    assert extra.adherence_7d == pytest.approx(1.5 / 7)


def test_caseload_reads_are_audited_per_patient(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    clinician.get("/clinic/")
    rows = audit_rows(app, "caseload.read")
    user = clinic.clinician.user_id
    assert sorted(rows, key=lambda r: r[1] or 0) == [
        ("allowed", clinic.patient_a.patient_id, user),
        ("allowed", clinic.patient_b.patient_id, user),
    ]


# --- the patient page -------------------------------------------------------------------------


def test_patient_page_shows_the_record_and_audits_the_read(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    today = clinic_today()
    for days_ago in range(20):
        api_log(
            clinician, clinic, clinic.patient_a, today - dt.timedelta(days=days_ago), leg_pain=0
        )
    page = clinician.get(f"/clinic/patients/{a}")
    assert page.status_code == 200
    body = visible_text(page)
    assert "Alice Patient" in body and "Low back pain" in body and "Team North" in body
    assert "Lumbar stabilisation" in body and "Abdominal bracing" in body
    assert "Last 14 logs" in body
    assert (today - dt.timedelta(days=13)).isoformat() in body
    assert (today - dt.timedelta(days=14)).isoformat() not in body
    assert audit_rows(app, "patient.read") == [("allowed", a, clinic.clinician.user_id)]


def test_off_team_clinician_gets_404_and_a_denied_audit_row(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    other = other_clinician(app, clinic)
    off_team = other.get(f"/clinic/patients/{a}")
    missing = other.get("/clinic/patients/987654")
    assert off_team.status_code == missing.status_code == 404
    assert visible_text(off_team) == visible_text(missing)
    for path in ("program/new", "events/new", "findings/new", "outcomes/new"):
        assert other.get(f"/clinic/patients/{a}/{path}").status_code == 404, path
    rows = audit_rows(app, "patient.read")
    assert rows[0] == ("denied", a, clinic.other_clinician.user_id)
    assert rows[1] == ("denied", 987654, clinic.other_clinician.user_id)
    assert all(outcome == "denied" for outcome, _, _ in rows)


def test_off_team_clinician_cannot_write(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    other = other_clinician(app, clinic)
    c = clinic.patient_c.patient_id
    # A well-formed form taken from the other clinician's own patient, sent for patient A.
    data = get_form(
        other, f"/clinic/patients/{c}/findings/new", f"/clinic/patients/{c}/findings/new"
    )
    data.update({"tests-0-result": "negative", "tests-0-side": "left"})
    assert other.post(f"/clinic/patients/{a}/findings/new", data=data).status_code == 404
    # An invalid form answers 404 too (access is checked before the form errors are shown).
    assert (
        other.post(
            f"/clinic/patients/{a}/findings/new", data={**data, "finding_date": ""}
        ).status_code
        == 404
    )
    assert count(app, Finding) == 0
    assert [r[0] for r in audit_rows(app, "finding.write")] == ["denied", "denied"]


# --- adding a patient -------------------------------------------------------------------------


def test_create_patient_shows_a_one_time_link(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    data = get_form(clinician, "/clinic/patients/new")
    data.update(
        display_name="Maria Example",
        email="Maria@Example.test",
        year_of_birth="1970",
        condition_summary="Left L5 radiculopathy after L4-L5 decompression",
        care_team_id=str(clinic.team_north_id),
    )
    response = clinician.post("/clinic/patients/new", data=data)
    assert response.status_code == 200
    match = re.search(r'value="(http://localhost/welcome/[^"]+)"', text(response))
    assert match, visible_text(response)
    link = match.group(1).removeprefix("http://localhost")
    with app.app_context():
        patient = db.session.scalars(
            sa.select(Patient).join(User).where(User.email == "maria@example.test")
        ).one()
        assert patient.care_team_id == clinic.team_north_id and patient.year_of_birth == 1970
    assert "Maria Example" in visible_text(clinician.get("/clinic/"))

    newcomer = app.test_client()
    form = get_form(newcomer, link)
    form.update(password="a long pass phrase of mine", confirm="a long pass phrase of mine")
    assert newcomer.post(link, data=form).status_code == 302
    assert newcomer.get(link).status_code == 400  # used
    login(newcomer, "maria@example.test", "a long pass phrase of mine")
    assert "No exercises are prescribed" in visible_text(newcomer.get("/me/"))

    again = clinician.post("/clinic/patients/new", data=data)
    assert again.status_code == 422
    assert "is already registered" in visible_text(again)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"email": "not-an-email"}, "String should match pattern"),
        ({"display_name": ""}, "This field is required."),
        ({"year_of_birth": "1800"}, "Number must be between 1900 and 2100."),
        ({"care_team_id": "team"}, "Invalid Choice: could not coerce."),
    ],
)
def test_create_patient_refuses_bad_input(
    app: Flask, clinician: FlaskClient, clinic: Clinic, change: dict[str, str], message: str
) -> None:
    data = get_form(clinician, "/clinic/patients/new")
    data.update(display_name="X", email="x@example.test", care_team_id=str(clinic.team_north_id))
    data.update(change)
    response = clinician.post("/clinic/patients/new", data=data)
    assert response.status_code == 422
    assert message in visible_text(response)
    assert count(app, Patient) == 3


def test_cannot_add_a_patient_to_another_team(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    data = get_form(clinician, "/clinic/patients/new")
    assert f'value="{clinic.team_south_id}"' not in text(clinician.get("/clinic/patients/new"))
    data.update(display_name="X", email="x@example.test", care_team_id=str(clinic.team_south_id))
    response = clinician.post("/clinic/patients/new", data=data)
    assert response.status_code == 422
    assert "Not a valid choice." in visible_text(response)
    assert count(app, Patient) == 3


# --- program ----------------------------------------------------------------------------------


def _options(html: str, name: str) -> dict[str, str]:
    select = re.search(rf'<select[^>]*name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    assert select, name
    return {
        label.strip(): value
        for value, label in re.findall(
            r'<option[^>]*value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1)
        )
    }


def program_form(client: FlaskClient, patient_id: int) -> tuple[FormData, dict[str, str]]:
    url = f"/clinic/patients/{patient_id}/program/new"
    page = client.get(url)
    assert page.status_code == 200
    return form_data(text(page), url), _options(text(page), "prescriptions-0-exercise_id")


def test_program_form_prescribes_a_program_with_phases(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    data, library = program_form(clinician, a)
    assert data["start_date"] == today.isoformat()
    bird_dog = next(v for k, v in library.items() if k.startswith("Bird dog"))
    bridge = next(v for k, v in library.items() if k.startswith("Glute bridge"))
    data.update(
        {
            "title": "Return to activity",
            "phases-0-name": "Protect",
            "phases-0-start_date": today.isoformat(),
            "phases-0-goals": "Calm the leg pain",
            "phases-1-name": "Load",
            "phases-1-start_date": (today + dt.timedelta(days=21)).isoformat(),
            "prescriptions-0-exercise_id": bird_dog,
            "prescriptions-0-sets": "2",
            "prescriptions-0-reps": "8",
            "prescriptions-0-sessions_per_week": "5",
            "prescriptions-3-exercise_id": bridge,  # a later row; numbers from the library
            # The rows filled in from the current program, cleared: a different program.
            "prescriptions-1-exercise_id": "",
            "prescriptions-2-exercise_id": "",
        }
    )
    for field in ("sets", "reps", "hold_seconds", "sessions_per_week", "notes"):
        data[f"prescriptions-3-{field}"] = ""
    response = clinician.post(f"/clinic/patients/{a}/program/new", data=data)
    assert response.status_code == 302, visible_text(response)
    assert response.headers["Location"] == f"/clinic/patients/{a}"
    with app.app_context():
        programs = list(
            db.session.scalars(
                sa.select(Program).where(Program.patient_id == a).order_by(Program.start_date)
            )
        )
        old, new = programs
        assert old.end_date == today - dt.timedelta(days=1)
        assert new.title == "Return to activity"
        assert [p.name for p in new.phases] == ["Protect", "Load"]
        first, second = new.prescriptions
        assert (first.sets, first.reps, first.sessions_per_week) == (2, 8, 5)
        assert (second.sets, second.reps) == (
            second.exercise.default_sets,
            second.exercise.default_reps,
        )
    page = visible_text(clinician.get(f"/clinic/patients/{a}"))
    assert "Return to activity" in page and "Current phase: Protect" in page
    assert "Program “Return to activity” saved." in page
    # The patient's form now lists the new exercises.
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    today_page = visible_text(patient.get("/me/"))
    assert "Bird dog" in today_page and "Abdominal bracing" not in today_page


def test_adjusting_a_program_starts_from_the_one_in_effect(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    """The new-program form opens with the current program's title, exercises and doses:
    progressing one dose is a change of one field, not a program typed again."""
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        current = db.session.scalars(sa.select(Program).where(Program.patient_id == a)).one()
        title = current.title
        before = [
            (p.exercise_id, p.sets, p.reps, p.hold_seconds, p.sessions_per_week, p.notes)
            for p in current.prescriptions
        ]
        db.session.rollback()
    data, _ = program_form(clinician, a)
    assert data["title"] == title
    shown = [
        (
            int(data[f"prescriptions-{i}-exercise_id"]),
            int(data[f"prescriptions-{i}-sets"]),
            int(data[f"prescriptions-{i}-reps"]),
            int(data[f"prescriptions-{i}-hold_seconds"]),
            int(data[f"prescriptions-{i}-sessions_per_week"]),
            data[f"prescriptions-{i}-notes"],
        )
        for i in range(len(before))
    ]
    assert shown == before
    assert data[f"prescriptions-{len(before)}-exercise_id"] == ""
    assert "The form starts from" in visible_text(
        clinician.get(f"/clinic/patients/{a}/program/new")
    )

    data["prescriptions-0-reps"] = str(before[0][2] + 5)  # progress one dose
    data["title"] = title + " (progressed)"
    response = clinician.post(f"/clinic/patients/{a}/program/new", data=data)
    assert response.status_code == 302, visible_text(response)
    with app.app_context():
        old, new = db.session.scalars(
            sa.select(Program).where(Program.patient_id == a).order_by(Program.id)
        ).all()
        assert old.end_date == clinic_today() - dt.timedelta(days=1)
        after = [
            (p.exercise_id, p.sets, p.reps, p.hold_seconds, p.sessions_per_week, p.notes)
            for p in new.prescriptions
        ]
    assert after[0] == (*before[0][:2], before[0][2] + 5, *before[0][3:])
    assert after[1:] == before[1:]


def test_a_program_larger_than_the_form_is_not_cut_short(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    """More exercises than the form's rows: it opens blank and says why, rather than
    filling in the first twelve (saving that would drop the rest unseen)."""
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        current = db.session.scalars(sa.select(Program).where(Program.patient_id == a)).one()
        exercises = db.session.scalars(sa.select(Exercise.id).order_by(Exercise.id)).all()
        for position in range(len(current.prescriptions), 13):
            current.prescriptions.append(
                Prescription(exercise_id=exercises[position], position=position, sets=1, reps=5)
            )
        db.session.commit()
    data, _ = program_form(clinician, a)
    assert data["title"] == "" and data["prescriptions-0-exercise_id"] == ""
    shown = visible_text(clinician.get(f"/clinic/patients/{a}/program/new"))
    assert "has 13 exercises, more than this form's 12 rows" in shown


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prescriptions-0-sets": "0"}, "Number must be between 1 and 20."),
        ({"prescriptions-0-exercise_id": ""}, "Pick at least one exercise."),
        ({"prescriptions-0-exercise_id": "999999"}, "Choose an exercise from the library."),
        ({"title": ""}, "This field is required."),
        ({"phases-0-name": "Early", "phases-0-start_date": "2000-01-01"}, "starts outside"),
        ({"phases-0-goals": "orphan goals"}, "Give the phase a name"),
        ({"end_date": "2000-01-01"}, "before start_date"),
        ({"start_date": "2000-01-01"}, "must be after the start of the current program"),
    ],
)
def test_program_form_refuses_bad_input(
    app: Flask, clinician: FlaskClient, clinic: Clinic, change: dict[str, str], message: str
) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    data, library = program_form(clinician, a)
    data.update(
        {"title": "T", "prescriptions-0-exercise_id": next(v for v in library.values() if v)}
    )
    for row in range(1, 12):  # only the first row (the current program's others cleared)
        data[f"prescriptions-{row}-exercise_id"] = ""
    data.update(change)
    response = clinician.post(f"/clinic/patients/{a}/program/new", data=data)
    assert response.status_code == 422
    assert message in visible_text(response)
    assert count(app, Program) == 3


# --- events -----------------------------------------------------------------------------------


def test_clinician_records_a_fall_for_their_patient(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    url = f"/clinic/patients/{a}/events/new"
    data = get_form(clinician, url)
    data.update(
        event_type="fall",
        event_date=(clinic_today() - dt.timedelta(days=8)).isoformat(),
        fall_location="stairs",
        fall_steps="10",
        fall_landed_on="buttocks",
        side="left",
        description="Slipped on a marble staircase on holiday",
    )
    response = clinician.post(url, data=data)
    assert response.status_code == 302
    with app.app_context():
        event = db.session.scalars(sa.select(Event)).one()
        assert event.event_type is EventType.FALL and event.fall_steps == 10
        assert event.recorded_by_user_id == clinic.clinician.user_id
    page = visible_text(clinician.get(f"/clinic/patients/{a}"))
    assert "Slipped on a marble staircase" in page and "10 steps" in page
    bad = clinician.post(
        url, data={**data, "event_date": "2999-01-01", "client_id": uuid.uuid4().hex}
    )
    assert bad.status_code == 422
    assert "is in the future" in visible_text(bad)
    assert count(app, Event) == 1


# --- findings ---------------------------------------------------------------------------------


def findings_form(client: FlaskClient, patient_id: int | None) -> FormData:
    url = f"/clinic/patients/{patient_id}/findings/new"
    return get_form(client, url)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_several_neurodynamic_tests_and_an_observation_at_once(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    data = findings_form(clinician, a)
    tests = list(NeurodynamicTest)
    assert [data[f"tests-{i}-test_name"] for i in range(len(tests))] == [t.value for t in tests]
    for i in range(len(tests)):
        data[f"tests-{i}-side"] = "both" if i % 2 else "left"
        data[f"tests-{i}-result"] = "negative"
    data["tests-5-result"] = ""  # not tested
    data["tests-5-side"] = ""
    data["observation_region"] = "left buttock"
    data["observation_text"] = "Large bruise over two-thirds of the left buttock, visible swelling"
    response = clinician.post(f"/clinic/patients/{a}/findings/new", data=data)
    assert response.status_code == 302, visible_text(response)
    with app.app_context():
        findings = list(db.session.scalars(sa.select(Finding).order_by(Finding.id)))
        tested = [f for f in findings if f.kind is FindingKind.NEURODYNAMIC_TEST]
        assert [f.test_name for f in tested] == tests[:5]
        assert all(f.result is TestResult.NEGATIVE for f in tested)
        [observation] = [f for f in findings if f.kind is FindingKind.OBSERVATION]
        assert observation.body_region == "left buttock"
        assert all(f.author_user_id == clinic.clinician.user_id for f in findings)
    assert audit_rows(app, "finding.write") == [("allowed", a, clinic.clinician.user_id)]
    page = visible_text(clinician.get(f"/clinic/patients/{a}"))
    assert "6 findings saved." in page
    assert "Straight leg raise" in page and "negative" in page and "Large bruise" in page


def test_imaging_finding(app: Flask, clinician: FlaskClient, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    data = findings_form(clinician, a)
    data.update(
        imaging_modality="mri",
        imaging_region="pelvis and gluteal soft tissue",
        imaging_text="Morel-Lavallée lesion; lumbar spine clear",
    )
    assert clinician.post(f"/clinic/patients/{a}/findings/new", data=data).status_code == 302
    with app.app_context():
        finding = db.session.scalars(sa.select(Finding)).one()
        assert finding.kind is FindingKind.IMAGING and finding.modality is not None
        assert finding.body_region == "pelvis and gluteal soft tissue"
    assert "Morel-Lavallée lesion" in visible_text(clinician.get(f"/clinic/patients/{a}"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tests-0-side": "left"}, "Choose a result (or clear the side)."),
        ({}, "Record at least one test result, imaging or observation."),
        ({"tests-0-result": "negative", "finding_date": "2999-01-01"}, "is in the future"),
        ({"tests-0-result": "sort of"}, "Input should be"),
        ({"imaging_text": "something"}, "required for an imaging finding"),
        ({"observation_region": "left buttock"}, "required for an observation"),
    ],
)
def test_findings_form_refuses_bad_input(
    app: Flask, clinician: FlaskClient, clinic: Clinic, change: dict[str, str], message: str
) -> None:
    a = clinic.patient_a.patient_id
    data = findings_form(clinician, a)
    data.update(change)
    response = clinician.post(f"/clinic/patients/{a}/findings/new", data=data)
    assert response.status_code == 422
    assert message in visible_text(response)
    assert count(app, Finding) == 0


# --- outcome measures -------------------------------------------------------------------------


def test_odi_and_psfs_are_scored(app: Flask, clinician: FlaskClient, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    odi_url = f"/clinic/patients/{a}/outcomes/new?instrument=odi"
    page = clinician.get(odi_url)
    assert "1. Pain intensity" in visible_text(page) and "10. Travelling" in visible_text(page)
    data = form_data(text(page), odi_url)
    for i in range(10):
        data[f"sections-{i}"] = "2"
    data["sections-7"] = ""  # one section may be unanswered
    response = clinician.post(odi_url, data=data)
    assert response.status_code == 302
    assert "ODI saved: score 40." in visible_text(clinician.get(f"/clinic/patients/{a}"))

    psfs_url = f"/clinic/patients/{a}/outcomes/new?instrument=psfs"
    data = get_form(clinician, psfs_url)
    for i, (activity, rating) in enumerate([("Sitting 1 hour", 4), ("Stairs", 6), ("Lifting", 8)]):
        data[f"activities-{i}-activity"] = activity
        data[f"activities-{i}-rating"] = str(rating)
    assert clinician.post(psfs_url, data=data).status_code == 302
    with app.app_context():
        scores = db.session.execute(
            sa.select(OutcomeMeasure.instrument, OutcomeMeasure.score).order_by(OutcomeMeasure.id)
        ).all()
    assert [(i.value, s) for i, s in scores] == [("odi", 40.0), ("psfs", 6.0)]
    assert [r[0] for r in audit_rows(app, "outcome.write")] == ["allowed", "allowed"]

    # The follow-up rates the same activities: their names come filled in, the ratings not.
    follow_up = get_form(clinician, psfs_url)
    assert [follow_up[f"activities-{i}-activity"] for i in range(5)] == [
        "Sitting 1 hour",
        "Stairs",
        "Lifting",
        "",
        "",
    ]
    assert all(follow_up[f"activities-{i}-rating"] == "" for i in range(5))


def test_outcome_forms_refuse_bad_input(app: Flask, clinician: FlaskClient, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    odi_url = f"/clinic/patients/{a}/outcomes/new?instrument=odi"
    data = get_form(clinician, odi_url)
    for i in range(8):
        data[f"sections-{i}"] = "3"
    response = clinician.post(odi_url, data=data)
    assert response.status_code == 422
    assert "ODI needs at least 9 answered sections" in visible_text(response)
    data["sections-8"] = data["sections-9"] = "9"
    assert clinician.post(odi_url, data=data).status_code == 422

    psfs_url = f"/clinic/patients/{a}/outcomes/new?instrument=psfs"
    data = get_form(clinician, psfs_url)
    data.update({"activities-0-activity": "Walking", "activities-0-rating": "5"})
    response = clinician.post(psfs_url, data=data)
    assert response.status_code == 422
    assert "PSFS rates 3–5 activities, got 1" in visible_text(response)
    data.update({"activities-1-rating": "5"})
    assert "Name the activity" in visible_text(clinician.post(psfs_url, data=data))
    assert clinician.get(f"/clinic/patients/{a}/outcomes/new?instrument=sf36").status_code == 404
    assert count(app, OutcomeMeasure) == 0
