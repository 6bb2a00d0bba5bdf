"""Writing the demo clinic into the configured (already migrated) database.

Bulk inserts, one transaction. Every row is what the services would have stored: logs carry a
client id, the SHA-256 fingerprint of the body the log service would have received, the
adherence it would have computed; events, findings and outcome measures pass the same input
validation as the API. A second load finds the demo care team and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import (
    Alert,
    CareTeam,
    CareTeamMember,
    Clinician,
    Event,
    Exercise,
    ExerciseEntry,
    Finding,
    OutcomeMeasure,
    Patient,
    Prescription,
    Program,
    ProgramPhase,
    SessionLog,
    User,
    utcnow,
)
from rehab.demo import DEFAULT_SEED
from rehab.demo.alerts import clinician_follow_up, evaluate_history
from rehab.demo.cohort import cohort
from rehab.demo.plan import PATIENT, PatientPlan
from rehab.demo.seed_case import (
    FALL,
    PHONE_CALL,
    SEED_PATIENT_EMAIL,
    SEED_PATIENT_NAME,
    SEED_PATIENT_PASSWORD,
    seed_patient,
)
from rehab.domain.vocabulary import NotifyMode, RedFlag, Role
from rehab.services import audit
from rehab.services.accounts import hash_password
from rehab.services.actors import SYSTEM
from rehab.services.commands import (
    EventInput,
    ExerciseEntryInput,
    FindingInput,
    SessionLogInput,
)
from rehab.services.library import seed_exercise_library
from rehab.services.time import clinic_today

# The first team's name marks a database that already holds the demo clinic.
DEMO_TEAMS = ("Demo Spine Team", "Demo Back Care Team")
DEMO_SOURCE = "demo"


@dataclass(frozen=True)
class Login:
    role: Role
    email: str
    password: str
    display_name: str


CLINICIAN_LOGIN = Login(
    Role.CLINICIAN, "clinician@demo.rehab.invalid", "demo-clinician-maya", "Maya Okafor"
)
ADMIN_LOGIN = Login(Role.ADMIN, "admin@demo.rehab.invalid", "demo-admin-account", "Demo Admin")
PATIENT_LOGIN = Login(Role.PATIENT, SEED_PATIENT_EMAIL, SEED_PATIENT_PASSWORD, SEED_PATIENT_NAME)
DEMO_LOGINS = (CLINICIAN_LOGIN, PATIENT_LOGIN, ADMIN_LOGIN)


class DemoError(RuntimeError):
    """The demo cannot be loaded as asked (the message says why)."""


@dataclass(frozen=True)
class DemoSummary:
    loaded: bool  # False: the demo was already there and nothing was written
    seed: int
    as_of: dt.date | None
    patients: int
    logs: int
    exercise_entries: int
    events: int
    findings: int
    outcome_measures: int
    programs: int
    alerts: int
    seconds: float


def build_plans(seed: int, as_of: dt.date) -> list[PatientPlan]:
    """The whole demo as plain data: the seed patient first, then the cohort."""
    try:
        first = seed_patient(seed, as_of)
    except ValueError as exc:
        raise DemoError(str(exc)) from None
    return [first, *cohort(seed, as_of)]


def is_loaded(session: Session) -> bool:
    return session.scalar(sa.select(CareTeam.id).where(CareTeam.name == DEMO_TEAMS[0])) is not None


def count_rows(session: Session) -> dict[str, int]:
    def count(column: Any) -> int:
        return int(session.scalar(sa.select(sa.func.count(column))) or 0)

    return {
        "patients": count(Patient.id),
        "logs": count(SessionLog.id),
        "exercise_entries": count(ExerciseEntry.id),
        "events": count(Event.id),
        "findings": count(Finding.id),
        "outcome_measures": count(OutcomeMeasure.id),
        "programs": count(Program.id),
        "alerts": count(Alert.id),
    }


def load_demo(
    session: Session,
    *,
    seed: int = DEFAULT_SEED,
    as_of: dt.date,
    now: dt.datetime | None = None,
) -> DemoSummary:
    """Create the demo clinic unless it is there already; commits."""
    started = time.perf_counter()
    if not sa.inspect(session.get_bind()).has_table(CareTeam.__tablename__):
        raise DemoError("the database is not migrated; run `rehab db upgrade` first")
    if is_loaded(session):
        return DemoSummary(False, seed, None, **count_rows(session), seconds=0.0)
    now = now or utcnow()
    if as_of > clinic_today():
        raise DemoError(f"--as-of {as_of.isoformat()} is in the future")
    plans = build_plans(seed, as_of)
    try:
        writer = _Writer(session, plans, now)
        writer.write()
        # The alerts the worker would have raised over the years, and the clinician's actions.
        evaluate_history(session, writer.patient_ids, as_of)
        clinician_follow_up(
            session,
            seed_patient_id=writer.patient_ids[0],
            fall=FALL,
            phone_call=PHONE_CALL,
            clinician_user_id=writer.clinician_user_id,
            as_of=as_of,
            at=writer.at,
        )
        audit.record(session, SYSTEM, "demo.load", None)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return DemoSummary(
        True, seed, as_of, **count_rows(session), seconds=time.perf_counter() - started
    )


def _insert_returning_ids(
    session: Session, model: Any, rows: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert a few rows and return their ids in order (RETURNING; fine for small batches)."""
    if not rows:
        return []
    statement = sa.insert(model).returning(model.id, sort_by_parameter_order=True)
    return list(session.scalars(statement, rows))


def _insert(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    # Core INSERT on the table: one executemany (the ORM bulk path splits it into many
    # statements when optional columns are None in some rows). Keys are column names.
    if rows:
        session.execute(sa.insert(model.__table__), rows)


def _insert_keyed(
    session: Session,
    model: Any,
    rows: Sequence[dict[str, Any]],
    key: tuple[str, ...],
    where: Any,
) -> list[int]:
    """Insert many rows (plain executemany) and read their ids back by a unique key.

    Faster than RETURNING with `sort_by_parameter_order` for thousands of rows, whose
    re-ordering of the returned batches is quadratic on SQLite."""
    _insert(session, model, rows)
    columns = [getattr(model, name) for name in key]
    ids = {
        tuple(row[:-1]): row[-1]
        for row in session.execute(sa.select(*columns, model.id).where(where))
    }
    return [ids[tuple(row[name] for name in key)] for row in rows]


class _Writer:
    def __init__(self, session: Session, plans: list[PatientPlan], now: dt.datetime) -> None:
        self.session = session
        self.plans = plans
        self.now = now
        self.first_day = min(p.registered_on for p in plans)
        # argon2 is slow by design and releases the GIL: hash the demo passwords side by side.
        passwords = [login.password for login in DEMO_LOGINS]
        with ThreadPoolExecutor(len(passwords)) as pool:
            self.hashes = dict(zip(passwords, pool.map(hash_password, passwords), strict=True))

    def at(self, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        """A plausible time on `day` (UTC), never after the moment of loading."""
        when = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)
        return min(when, self.now)

    def write(self) -> None:
        session = self.session
        seed_exercise_library(session)
        self.exercise_ids = {
            slug: exercise_id
            for slug, exercise_id in session.execute(sa.select(Exercise.slug, Exercise.id))
        }
        self.write_staff()
        self.write_patients()
        self.write_programs()
        self.write_logs()
        self.write_events()
        self.write_findings()
        self.write_outcomes()

    def write_staff(self) -> None:
        session = self.session
        created = self.at(self.first_day - dt.timedelta(days=30), 9)
        self.team_ids = _insert_returning_ids(
            session, CareTeam, [{"name": name, "created_at": created} for name in DEMO_TEAMS]
        )
        ids = _insert_returning_ids(
            session,
            User,
            [self._user_row(login.email, login.display_name, login.role, login.password, created)
             for login in (CLINICIAN_LOGIN, ADMIN_LOGIN)],
        )  # fmt: skip
        self.clinician_user_id = ids[0]
        [clinician_id] = _insert_returning_ids(
            session,
            Clinician,
            [{"user_id": self.clinician_user_id, "profession": "physiotherapist"}],
        )
        _insert(
            session,
            CareTeamMember,
            [
                {"care_team_id": team_id, "clinician_id": clinician_id, "added_at": created}
                for team_id in self.team_ids
            ],
        )

    def _user_row(
        self, email: str, name: str, role: Role, password: str | None, created: dt.datetime
    ) -> dict[str, Any]:
        return {
            "email": email,
            "display_name": name,
            "role": role,
            "password_hash": (self.hashes.get(password) or hash_password(password))
            if password
            else None,
            "password_changed_at": created if password else None,
            "is_active": True,
            "session_epoch": 0,
            "notify_mode": NotifyMode.IMMEDIATE,
            "reminder_opt_in": False,
            "created_at": created,
        }

    def write_patients(self) -> None:
        session = self.session
        rows = [
            self._user_row(
                p.email, p.display_name, Role.PATIENT, p.password, self.at(p.registered_on, 9)
            )
            for p in self.plans
        ]
        self.user_ids = _insert_keyed(
            session, User, rows, ("email",), User.email.in_([p.email for p in self.plans])
        )
        self.patient_ids = _insert_keyed(
            session,
            Patient,
            [
                {
                    "user_id": user_id,
                    "care_team_id": self.team_ids[p.team],
                    "year_of_birth": p.year_of_birth,
                    "condition_summary": p.condition_summary,
                    "created_at": self.at(p.registered_on, 9),
                }
                for p, user_id in zip(self.plans, self.user_ids, strict=True)
            ],
            ("user_id",),
            Patient.user_id.in_(self.user_ids),
        )

    def write_programs(self) -> None:
        session = self.session
        keys, rows = [], []
        for i, p in enumerate(self.plans):
            for j, program in enumerate(p.programs):
                keys.append((i, j))
                rows.append(
                    {
                        "patient_id": self.patient_ids[i],
                        "title": program.title,
                        "start_date": program.start,
                        "end_date": program.end,
                        "created_by_user_id": self.clinician_user_id,
                        "created_at": self.at(program.start, 10),
                    }
                )
        ids = _insert_keyed(
            session,
            Program,
            rows,
            ("patient_id", "start_date"),
            Program.patient_id.in_(self.patient_ids),
        )
        program_ids = dict(zip(keys, ids, strict=True))
        phases, prescriptions, prescription_keys = [], [], []
        for (i, j), program_id in program_ids.items():
            program = self.plans[i].programs[j]
            phases += [
                {
                    "program_id": program_id,
                    "name": phase.name,
                    "start_date": phase.start,
                    "goals": phase.goals,
                }
                for phase in program.phases
            ]
            for position, item in enumerate(program.prescriptions):
                prescription_keys.append((i, j, position))
                prescriptions.append(
                    {
                        "program_id": program_id,
                        "exercise_id": self.exercise_ids[item.slug],
                        "position": position,
                        "sets": item.sets,
                        "reps": item.reps,
                        "hold_seconds": item.hold_seconds,
                        "sessions_per_week": item.sessions_per_week,
                        "notes": item.notes,
                        "active": True,
                    }
                )
        _insert(session, ProgramPhase, phases)
        ids = _insert_keyed(
            session,
            Prescription,
            prescriptions,
            ("program_id", "position"),
            Prescription.program_id.in_(list(program_ids.values())),
        )
        self.prescription_ids = dict(zip(prescription_keys, ids, strict=True))

    def write_logs(self) -> None:
        rows: list[dict[str, Any]] = []
        entries: list[list[dict[str, Any]]] = []
        for i, p in enumerate(self.plans):
            for k, log in enumerate(p.logs):
                pids = [self.prescription_ids[(i, log.program, e.position)] for e in log.entries]
                body = SessionLogInput(
                    client_id=f"demo-{p.key}-{log.day.isoformat()}",
                    log_date=log.day,
                    back_pain=log.back_pain,
                    leg_pain=log.leg_pain,
                    leg_side=log.leg_side,
                    pain_location=log.pain_location,
                    red_flags=list(log.red_flags),
                    exercises=[
                        ExerciseEntryInput(
                            prescription_id=pid,
                            done=e.done,
                            sets_done=e.sets_done,
                            reps_done=e.reps_done,
                        )
                        for pid, e in zip(pids, log.entries, strict=True)
                    ],
                    note=log.note,
                ).canonical()
                # Evenings mostly; the minute varies from day to day.
                when = self.at(log.day, 18 + (k * 7) % 4, (k * 17) % 60)
                rows.append(
                    {
                        "patient_id": self.patient_ids[i],
                        "log_date": log.day,
                        "client_id": body.client_id,
                        "body_hash": body.fingerprint(),
                        "back_pain": body.back_pain,
                        "leg_pain": body.leg_pain,
                        "leg_side": body.leg_side,
                        "pain_location": body.pain_location or None,
                        **{f"red_flag_{flag.value}": flag in body.red_flags for flag in RedFlag},
                        "note": body.note,
                        "adherence": log.adherence,
                        "source": DEMO_SOURCE,
                        "created_at": when,
                        "updated_at": when,
                    }
                )
                entries.append(
                    [
                        {
                            "prescription_id": e.prescription_id,
                            "done": e.done,
                            "sets_done": e.sets_done,
                            "reps_done": e.reps_done,
                        }
                        for e in body.exercises
                    ]
                )
        log_ids = _insert_keyed(
            self.session,
            SessionLog,
            rows,
            ("patient_id", "client_id"),
            SessionLog.patient_id.in_(self.patient_ids),
        )
        _insert(
            self.session,
            ExerciseEntry,
            [
                {"session_log_id": log_id, **entry}
                for log_id, day_entries in zip(log_ids, entries, strict=True)
                for entry in day_entries
            ],
        )

    def write_events(self) -> None:
        rows = []
        for i, p in enumerate(self.plans):
            for k, event in enumerate(p.events):
                by_patient = event.by == PATIENT
                data = EventInput(
                    client_id=f"demo-{p.key}-event-{k + 1}" if by_patient else None,
                    event_date=event.day,
                    event_type=event.event_type,
                    side=event.side,
                    body_region=event.body_region,
                    description=event.description,
                    fall_location=event.fall_location,
                    fall_steps=event.fall_steps,
                    fall_height_cm=event.fall_height_cm,
                    fall_landed_on=event.fall_landed_on,
                )
                rows.append(
                    {
                        "patient_id": self.patient_ids[i],
                        "recorded_by_user_id": self.user_ids[i]
                        if by_patient
                        else self.clinician_user_id,
                        "created_at": self.at(event.day, 20 if by_patient else 12),
                        **data.model_dump(),
                    }
                )
        _insert(self.session, Event, rows)

    def write_findings(self) -> None:
        rows = []
        for i, p in enumerate(self.plans):
            for finding in p.findings:
                data = FindingInput(
                    finding_date=finding.day,
                    kind=finding.kind,
                    test_name=finding.test_name,
                    side=finding.side,
                    result=finding.result,
                    modality=finding.modality,
                    body_region=finding.body_region,
                    text=finding.text,
                )
                rows.append(
                    {
                        "patient_id": self.patient_ids[i],
                        "author_user_id": self.clinician_user_id,
                        "created_at": self.at(finding.day, 11),
                        **data.model_dump(),
                    }
                )
        _insert(self.session, Finding, rows)

    def write_outcomes(self) -> None:
        rows = [
            {
                "patient_id": self.patient_ids[i],
                "instrument": outcome.instrument,
                "measured_on": outcome.day,
                "score": outcome.score,
                "answers": outcome.answers,
                "recorded_by_user_id": self.clinician_user_id,
                "created_at": self.at(outcome.day, 11, 30),
            }
            for i, p in enumerate(self.plans)
            for outcome in p.outcomes
        ]
        _insert(self.session, OutcomeMeasure, rows)
