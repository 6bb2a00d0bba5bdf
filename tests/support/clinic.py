"""A small fictional clinic for tests: two care teams, their clinicians, three patients with
programs, an admin, and API tokens for each person."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache

import sqlalchemy as sa
from flask.testing import FlaskClient

from rehab.db.models import CareTeam, CareTeamMember, Exercise, Patient, User
from rehab.domain.vocabulary import Role
from rehab.extensions import db
from rehab.services import accounts
from rehab.services.commands import PrescriptionInput, ProgramInput
from rehab.services.library import seed_exercise_library
from rehab.services.programs import create_program
from rehab.services.time import clinic_today

PASSWORD = "correct horse battery staple"


@cache
def password_hash() -> str:
    # One argon2 hash for every test user: hashing is deliberately slow.
    return accounts.hash_password(PASSWORD)


@dataclass
class Person:
    user_id: int
    email: str
    token: str
    patient_id: int | None = None
    clinician_id: int | None = None


@dataclass
class Clinic:
    admin: Person
    clinician: Person  # on team North (patients A and B)
    other_clinician: Person  # on team South (patient C)
    patient_a: Person
    patient_b: Person
    patient_c: Person
    team_north_id: int
    team_south_id: int
    program_start: dt.date
    prescription_ids: dict[int, list[int]] = field(default_factory=dict)


def _user(email: str, name: str, role: Role) -> User:
    user = User(email=email, display_name=name, role=role, password_hash=password_hash())
    db.session.add(user)
    return user


def _person(user: User, device: str = "test device") -> Person:
    db.session.flush()
    _, token = accounts.issue_api_token(db.session, user, device)
    return Person(
        user_id=user.id,
        email=user.email,
        token=token,
        patient_id=user.patient.id if user.patient else None,
        clinician_id=user.clinician.id if user.clinician else None,
    )


def build_clinic(program_days_ago: int = 60) -> Clinic:
    """Create the clinic inside the current app context and commit it."""
    session = db.session
    seed_exercise_library(session)
    north, south = CareTeam(name="Team North"), CareTeam(name="Team South")
    session.add_all([north, south])

    admin = _user("admin@clinic.test", "Ada Admin", Role.ADMIN)
    people = {}
    for key, email, name, team in (
        ("clinician", "cara@clinic.test", "Cara Clinician", north),
        ("other_clinician", "dan@clinic.test", "Dan Clinician", south),
    ):
        user = _user(email, name, Role.CLINICIAN)
        user.clinician = accounts.Clinician()
        session.flush()
        session.add(CareTeamMember(care_team=team, clinician=user.clinician))
        people[key] = user
    for key, email, name, team in (
        ("patient_a", "alice@patient.test", "Alice Patient", north),
        ("patient_b", "bob@patient.test", "Bob Patient", north),
        ("patient_c", "cleo@patient.test", "Cleo Patient", south),
    ):
        user = _user(email, name, Role.PATIENT)
        user.patient = Patient(care_team=team, condition_summary="Low back pain")
        people[key] = user
    session.flush()

    start = clinic_today() - dt.timedelta(days=program_days_ago)
    exercises = list(session.scalars(sa.select(Exercise).order_by(Exercise.id).limit(3)))
    prescription_ids: dict[int, list[int]] = {}
    for key, author in (
        ("patient_a", "clinician"),
        ("patient_b", "clinician"),
        ("patient_c", "other_clinician"),
    ):
        patient = people[key].patient
        assert patient is not None
        program = create_program(
            session,
            accounts.actor_for(people[author]),
            patient.id,
            ProgramInput(
                title="Lumbar stabilisation",
                start_date=start,
                prescriptions=[
                    PrescriptionInput(exercise_id=e.id, sets=3, reps=10) for e in exercises
                ],
            ),
        )
        prescription_ids[patient.id] = [p.id for p in program.prescriptions]

    clinic = Clinic(
        admin=_person(admin),
        clinician=_person(people["clinician"]),
        other_clinician=_person(people["other_clinician"]),
        patient_a=_person(people["patient_a"]),
        patient_b=_person(people["patient_b"]),
        patient_c=_person(people["patient_c"]),
        team_north_id=north.id,
        team_south_id=south.id,
        program_start=start,
        prescription_ids=prescription_ids,
    )
    session.commit()
    return clinic


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} (status {page.status_code})"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> None:
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def search_caseload(client: FlaskClient, term: str) -> None:
    """Set (or clear, with "") the caseload's name search, as the page's search form does."""
    token = csrf_token(client, "/clinic/")
    response = client.post("/clinic/search", data={"q": term, "csrf_token": token})
    assert response.status_code == 303, response.status_code
