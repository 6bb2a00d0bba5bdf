"""The demo clinic: `rehab demo load` (the seed case, the cohort, idempotence, determinism,
logins) on SQLite and PostgreSQL, and `rehab demo run` as a real process tree."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import aliased

from rehab import create_app
from rehab.cli_demo import demo
from rehab.db.models import (
    Alert,
    CareTeam,
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
)
from rehab.demo import DEFAULT_SEED
from rehab.demo.loader import DEMO_LOGINS, DemoSummary, count_rows, load_demo
from rehab.demo.seed_case import SEED_PATIENT_EMAIL, SEED_PATIENT_NAME
from rehab.devservers import PostgresServer
from rehab.domain.session_adherence import DoneEntry, PrescribedDose, session_adherence
from rehab.domain.vocabulary import (
    EventType,
    FallLocation,
    FindingKind,
    ImagingModality,
    LandedOn,
    NeurodynamicTest,
    Role,
    Side,
    TestResult,
)
from rehab.extensions import db
from rehab.services import accounts
from tests.conftest import app_settings, create_pg_database, dispose_engines
from tests.support.clinic import CSRF_RE
from tests.support.clinic import login as log_in
from tests.support.pages import visible_text

AS_OF = dt.date(2025, 12, 1)
D = dt.date

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def load(app: Flask, as_of: dt.date = AS_OF, seed: int = DEFAULT_SEED) -> DemoSummary:
    with app.app_context():
        return load_demo(db.session, seed=seed, as_of=as_of)


def seed_patient(session: Any) -> Patient:
    return session.scalars(
        sa.select(Patient).join(User).where(User.email == SEED_PATIENT_EMAIL)
    ).one()


def all_counts(session: Any) -> dict[str, int]:
    counts = count_rows(session)
    for model in (User, CareTeam, Exercise, ProgramPhase, Prescription):
        counts[model.__tablename__] = session.scalar(sa.select(sa.func.count()).select_from(model))
    return counts


# --- the seed case ------------------------------------------------------------------------


@both_databases
def test_seed_patient_has_the_whole_case(app: Flask) -> None:
    summary = load(app)
    assert summary.loaded
    with app.app_context():
        session = db.session
        elena = seed_patient(session)
        events = list(session.scalars(sa.select(Event).where(Event.patient_id == elena.id)))
        by_type: dict[EventType, list[Event]] = {}
        for event in events:
            by_type.setdefault(event.event_type, []).append(event)

        [surgery] = by_type[EventType.SURGERY]
        assert surgery.event_date == D(2024, 6, 10)
        assert surgery.side is Side.LEFT
        assert "L4-L5" in surgery.description
        assert "decompression" in surgery.description.lower()

        [symptom_return] = by_type[EventType.SYMPTOM_RETURN]
        assert D(2024, 7, 15) <= symptom_return.event_date <= D(2024, 7, 25)
        imaging = {e.event_date: e.description.lower() for e in by_type[EventType.IMAGING]}
        assert any(
            D(2024, 7, 15) <= day <= D(2024, 7, 29) and "re-herniation" in text
            for day, text in imaging.items()
        )

        [fall] = by_type[EventType.FALL]
        assert fall.event_date == D(2025, 9, 14)
        assert fall.fall_location is FallLocation.STAIRS
        assert fall.fall_steps == 10
        assert fall.fall_landed_on is LandedOn.BUTTOCKS
        assert fall.side is Side.LEFT
        assert "slipped at the top of a marble staircase on holiday" in fall.description.lower()
        assert fall.recorded_by_user_id == elena.user_id

        after_fall = [
            e.description.lower()
            for e in by_type[EventType.IMAGING]
            if e.event_date > fall.event_date
        ]
        assert any(
            "lumbar" in t and "no re-herniation" in t and "no new trauma" in t for t in after_fall
        )
        assert any("morel-lavall" in t and "sciatic nerve" in t for t in after_fall)
        assert any(
            "deep gluteal syndrome" in e.description.lower() and e.event_date > fall.event_date
            for e in by_type[EventType.DIAGNOSIS]
        )

        findings = list(session.scalars(sa.select(Finding).where(Finding.patient_id == elena.id)))
        assessment = [f for f in findings if f.finding_date == D(2025, 9, 22)]
        tests = {
            (f.test_name, f.side): f.result
            for f in assessment
            if f.kind is FindingKind.NEURODYNAMIC_TEST
        }
        for test, side in (
            (NeurodynamicTest.STRAIGHT_LEG_RAISE, Side.LEFT),
            (NeurodynamicTest.STRAIGHT_LEG_RAISE, Side.RIGHT),
            (NeurodynamicTest.SLUMP, Side.LEFT),
            (NeurodynamicTest.PRONE_KNEE_BEND, Side.LEFT),
            (NeurodynamicTest.FEMORAL_NERVE_TENSION, Side.LEFT),
        ):
            assert tests.get((test, side)) is TestResult.NEGATIVE, (test, side)
        assert NeurodynamicTest.CROSSED_STRAIGHT_LEG_RAISE in {t for t, _ in tests}
        assert set(tests.values()) == {TestResult.NEGATIVE}
        observations = [f.text.lower() for f in assessment if f.kind is FindingKind.OBSERVATION]
        assert any(
            "bruise" in t and "two-thirds of the left buttock" in t and "swelling" in t
            for t in observations
        )
        mri_texts = [
            f.text.lower()
            for f in findings
            if f.kind is FindingKind.IMAGING
            and f.modality is ImagingModality.MRI
            and f.finding_date > fall.event_date
        ]
        assert len(mri_texts) == 2
        assert any("lumbar spine clear" in t for t in mri_texts)
        assert any("morel-lavall" in t for t in mri_texts)

        logs = {
            log.log_date: log
            for log in session.scalars(
                sa.select(SessionLog).where(SessionLog.patient_id == elena.id)
            )
        }
        after = [logs[D(2025, 9, 14) + dt.timedelta(days=k)] for k in range(1, 8)]
        assert all(log.leg_pain >= 6 and log.leg_side is Side.LEFT for log in after)
        assert all(log.pain_location == "buttock" for log in after)
        settled = [log for day, log in logs.items() if D(2025, 3, 1) <= day <= D(2025, 8, 31)]
        assert len(settled) > 150
        assert max(log.leg_pain for log in settled) <= 2
        assert max(log.back_pain for log in settled) <= 2
        reherniated = [log for day, log in logs.items() if D(2024, 7, 22) <= day <= D(2024, 8, 20)]
        assert min(log.leg_pain for log in reherniated) >= 7
        assert max(logs) == AS_OF  # her logs continue up to the demo's today
        adherence = [log.adherence for log in logs.values() if log.adherence is not None]
        assert sum(adherence) / len(adherence) > 0.8

        programs = list(session.scalars(sa.select(Program).where(Program.patient_id == elena.id)))
        twelve = [p for p in programs if "12-month" in p.title]
        assert len(twelve) == 1
        assert [ph.name for ph in twelve[0].phases] == [
            "Protect",
            "Build strength",
            "Function and range",
            "Maintain",
        ]
        slugs = {p.exercise.slug for p in twelve[0].prescriptions}
        assert {"sciatic-nerve-slider", "bird-dog", "glute-bridge", "walking"} <= slugs

        outcomes = list(
            session.scalars(sa.select(OutcomeMeasure).where(OutcomeMeasure.patient_id == elena.id))
        )
        odi = {o.measured_on: o.score for o in outcomes if o.instrument.value == "odi"}
        assert odi[D(2025, 9, 22)] > odi[D(2025, 7, 28)] + 10  # worse after the fall
        assert odi[D(2025, 11, 17)] < 20
        assert {o.measured_on for o in outcomes if o.instrument.value == "psfs"} == set(odi)

        # The regression alert of the fall, acknowledged after her phone call.
        fall_alert = session.scalars(
            sa.select(Alert).where(
                Alert.patient_id == elena.id,
                Alert.kind == "pain_regression",
                Alert.metric == "leg_pain",
                Alert.detected_on.between(D(2025, 9, 14), D(2025, 9, 21)),
            )
        ).one()
        assert fall_alert.acknowledged_by_user_id is not None
        assert "fall" in fall_alert.explanation


@both_databases
def test_cohort_logs_are_valid_as_if_entered_through_the_service(app: Flask) -> None:
    load(app)
    with app.app_context():
        session = db.session
        patients = list(session.scalars(sa.select(Patient).join(User)))
        others = [p for p in patients if p.user.email != SEED_PATIENT_EMAIL]
        assert len(others) >= 40
        assert all(p.user.email.endswith("@demo.rehab.invalid") for p in patients)
        assert len({p.user.display_name for p in patients}) == len(patients)
        assert all(p.user.password_hash is None for p in others)

        programs: dict[int, list[Program]] = {}
        for program in session.scalars(sa.select(Program)):
            programs.setdefault(program.patient_id, []).append(program)
        prescriptions: dict[int, list[Prescription]] = {}
        for prescription in session.scalars(sa.select(Prescription)):
            prescriptions.setdefault(prescription.program_id, []).append(prescription)
        entries: dict[int, list[ExerciseEntry]] = {}
        for entry in session.scalars(sa.select(ExerciseEntry)):
            entries.setdefault(entry.session_log_id, []).append(entry)

        logs = list(session.scalars(sa.select(SessionLog)))
        assert len(logs) > 5000
        last_log: dict[int, dt.date] = {}
        first_log: dict[int, dt.date] = {}
        for log in logs:
            assert log.log_date <= AS_OF
            assert log.source == "demo"
            assert log.client_id.startswith("demo-")
            assert re.fullmatch(r"[0-9a-f]{64}", log.body_hash)
            assert (log.leg_side is not None) == (log.leg_pain > 0)
            in_effect = [
                p
                for p in programs[log.patient_id]
                if p.start_date <= log.log_date
                and (p.end_date is None or log.log_date <= p.end_date)
            ]
            assert len(in_effect) == 1, (log.patient_id, log.log_date)
            prescribed = prescriptions[in_effect[0].id]
            done = {e.prescription_id: e for e in entries.get(log.id, [])}
            assert set(done) <= {p.id for p in prescribed}
            expected = session_adherence(
                [PrescribedDose(p.id, p.sets) for p in prescribed],
                {k: DoneEntry(k, e.done, e.sets_done) for k, e in done.items()},
            )
            assert log.adherence == pytest.approx(expected)
            first_log[log.patient_id] = min(
                first_log.get(log.patient_id, log.log_date), log.log_date
            )
            last_log[log.patient_id] = max(last_log.get(log.patient_id, log.log_date), log.log_date)

        spans = [(last_log[p.id] - first_log[p.id]).days + 1 for p in others]
        assert min(spans) >= 55 and max(spans) <= 510
        stopped = [p for p in others if (AS_OF - last_log[p.id]).days >= 4]
        assert len(stopped) >= 4
        red_flag_logs = session.scalars(
            sa.select(SessionLog).where(
                sa.or_(
                    SessionLog.red_flag_new_numbness,
                    SessionLog.red_flag_new_weakness,
                    SessionLog.red_flag_bladder_bowel_change,
                    SessionLog.red_flag_saddle_numbness,
                )
            )
        ).all()
        assert sum(1 for log in red_flag_logs if (AS_OF - log.log_date).days <= 3) >= 3
        falls = session.scalars(sa.select(Event).where(Event.event_type == EventType.FALL)).all()
        assert len({e.patient_id for e in falls}) >= 6
        assert all(e.fall_location is not None and e.fall_landed_on is not None for e in falls)
        counts = count_rows(session)
        assert counts["findings"] >= 60
        assert counts["outcome_measures"] >= 4 * len(patients)


@both_databases
def test_second_load_changes_nothing_and_logins_work(app: Flask) -> None:
    load(app)
    with app.app_context():
        before = all_counts(db.session)
    again = load(app)
    assert not again.loaded
    with app.app_context():
        assert all_counts(db.session) == before
        for login in DEMO_LOGINS:
            assert len(login.password) >= accounts.MIN_PASSWORD_LENGTH
            user = accounts.authenticate(db.session, login.email, login.password)
            assert user is not None, login.email
            assert user.role is login.role
            assert accounts.authenticate(db.session, login.email, login.password + "x") is None


# --- determinism --------------------------------------------------------------------------


@pytest.fixture
def other_app(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Flask]:
    """A second, empty database of the same kind as `database_url`."""
    drop = None
    if database_url.startswith("sqlite"):
        path = tmp_path / "other.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        name = create_pg_database(postgres, request.getfixturevalue("pg_template"))
        url, drop = postgres.url(name), (postgres, name)
    app = create_app(app_settings(url, tmp_path / "other"))
    yield app
    dispose_engines(app)
    if drop is not None:
        with psycopg.connect(drop[0].dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')


def digest(app: Flask) -> dict[str, str]:
    """A fingerprint of every demo table, by natural keys (not ids)."""
    owner = aliased(User)
    with app.app_context():
        session = db.session
        queries: dict[str, Any] = {
            "users": sa.select(User.email, User.display_name, User.role, User.created_at),
            "patients": sa.select(
                owner.email, CareTeam.name, Patient.year_of_birth, Patient.condition_summary
            )
            .join(owner, owner.id == Patient.user_id)
            .join(CareTeam),
            "programs": sa.select(
                owner.email, Program.title, Program.start_date, Program.end_date
            )
            .join(Patient, Patient.id == Program.patient_id)
            .join(owner, owner.id == Patient.user_id),
            "prescriptions": sa.select(
                owner.email,
                Program.start_date,
                Prescription.position,
                Exercise.slug,
                Prescription.sets,
                Prescription.reps,
                Prescription.hold_seconds,
                Prescription.notes,
            )
            .join(Program, Program.id == Prescription.program_id)
            .join(Exercise)
            .join(Patient, Patient.id == Program.patient_id)
            .join(owner, owner.id == Patient.user_id),
            "logs": sa.select(
                owner.email,
                SessionLog.log_date,
                SessionLog.client_id,
                SessionLog.body_hash,
                SessionLog.back_pain,
                SessionLog.leg_pain,
                SessionLog.leg_side,
                SessionLog.pain_location,
                SessionLog.red_flag_new_numbness,
                SessionLog.red_flag_saddle_numbness,
                SessionLog.note,
                SessionLog.adherence,
                SessionLog.created_at,
            )
            .join(Patient, Patient.id == SessionLog.patient_id)
            .join(owner, owner.id == Patient.user_id),
            "entries": sa.select(
                owner.email,
                SessionLog.log_date,
                Prescription.position,
                ExerciseEntry.done,
                ExerciseEntry.sets_done,
                ExerciseEntry.reps_done,
            )
            .join(SessionLog, SessionLog.id == ExerciseEntry.session_log_id)
            .join(Prescription, Prescription.id == ExerciseEntry.prescription_id)
            .join(Patient, Patient.id == SessionLog.patient_id)
            .join(owner, owner.id == Patient.user_id),
            "events": sa.select(
                owner.email,
                Event.event_date,
                Event.event_type,
                Event.description,
                Event.side,
                Event.fall_location,
                Event.fall_steps,
                Event.client_id,
            )
            .join(Patient, Patient.id == Event.patient_id)
            .join(owner, owner.id == Patient.user_id),
            "findings": sa.select(
                owner.email, Finding.finding_date, Finding.kind, Finding.test_name,
                Finding.side, Finding.result, Finding.text,
            )
            .join(Patient, Patient.id == Finding.patient_id)
            .join(owner, owner.id == Patient.user_id),
            "outcomes": sa.select(
                owner.email, OutcomeMeasure.measured_on, OutcomeMeasure.instrument,
                OutcomeMeasure.score, OutcomeMeasure.answers,
            )
            .join(Patient, Patient.id == OutcomeMeasure.patient_id)
            .join(owner, owner.id == Patient.user_id),
            "alerts": sa.select(
                owner.email, Alert.kind, Alert.metric, Alert.onset, Alert.detected_on,
                Alert.resolved_on, Alert.status, Alert.explanation,
            )
            .join(Patient, Patient.id == Alert.patient_id)
            .join(owner, owner.id == Patient.user_id),
        }  # fmt: skip
        out = {}
        for name, query in queries.items():
            rows = sorted(
                json.dumps([str(v) if not isinstance(v, dict) else v for v in row], sort_keys=True)
                for row in session.execute(query)
            )
            assert rows, name
            out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        return out


@both_databases
def test_same_seed_and_date_give_identical_data(app: Flask, other_app: Flask) -> None:
    load(app, seed=11)
    load(other_app, seed=11)
    assert digest(app) == digest(other_app)


def test_another_seed_gives_another_cohort_but_the_same_seed_case(
    sqlite_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    app = create_app(app_settings(sqlite_url, tmp_path))
    other = tmp_path / "other.sqlite"
    shutil.copy(request.getfixturevalue("sqlite_template"), other)
    other_app = create_app(app_settings(f"sqlite:///{other}", tmp_path / "o"))
    try:
        load(app, seed=1)
        load(other_app, seed=2)
        first, second = digest(app), digest(other_app)
        assert first["logs"] != second["logs"]
        assert first["programs"] != second["programs"]
        for one in (app, other_app):
            with one.app_context():
                elena = seed_patient(db.session)
                falls = db.session.scalars(
                    sa.select(Event.event_date).where(
                        Event.patient_id == elena.id, Event.event_type == EventType.FALL
                    )
                ).all()
                assert falls == [D(2025, 9, 14)]
    finally:
        dispose_engines(app)
        dispose_engines(other_app)


# --- the command --------------------------------------------------------------------------


@both_databases
def test_load_command_as_of_three_days_after_the_fall(app: Flask) -> None:
    result = app.test_cli_runner().invoke(demo, ["load", "--as-of", "2025-09-17", "--seed", "3"])
    assert result.exit_code == 0, result.output
    counted = re.search(r"(\d+) patients, (\d+) daily logs", result.output)
    assert counted is not None, result.output
    assert int(counted[1]) >= 41 and int(counted[2]) > 3000
    for login in DEMO_LOGINS:
        assert login.email in result.output and login.password in result.output
    # Where to find the seed case, as the output says: her alert in the clinician's inbox.
    assert f"open {SEED_PATIENT_NAME} from the caseload" in result.output
    assert "Show resolved alerts too" in result.output
    clinician = next(x for x in DEMO_LOGINS if x.role is Role.CLINICIAN)
    client = app.test_client()
    log_in(client, clinician.email, clinician.password)
    inbox = visible_text(client.get("/clinic/alerts/"))
    assert f"Pain regression: leg pain — {SEED_PATIENT_NAME}" in inbox
    assert "fall on stairs" in inbox
    assert "Show resolved alerts too" in inbox
    with app.app_context():
        session = db.session
        elena = seed_patient(session)
        logs = {
            log.log_date: log
            for log in session.scalars(
                sa.select(SessionLog).where(SessionLog.patient_id == elena.id)
            )
        }
        assert max(logs) == D(2025, 9, 17)
        assert all(logs[D(2025, 9, d)].leg_pain >= 6 for d in (15, 16, 17))
        assert session.scalar(sa.select(sa.func.max(SessionLog.log_date))) == D(2025, 9, 17)
        # Nothing after the demo's today: no assessment yet, no MRI, no post-fall program.
        last_finding = session.scalar(sa.select(sa.func.max(Finding.finding_date)))
        last_event = session.scalar(sa.select(sa.func.max(Event.event_date)))
        assert last_finding is not None and last_finding <= D(2025, 9, 17)
        assert last_event is not None and last_event <= D(2025, 9, 17)
        assert not session.scalars(
            sa.select(Program).where(
                Program.patient_id == elena.id, Program.start_date > D(2025, 9, 17)
            )
        ).all()
        fall_alert = session.scalars(
            sa.select(Alert)
            .where(
                Alert.patient_id == elena.id,
                Alert.kind == "pain_regression",
                Alert.metric == "leg_pain",
            )
            .order_by(Alert.detected_on.desc())
        ).first()
        assert fall_alert is not None and fall_alert.resolved_on is None
        assert fall_alert.onset >= D(2025, 9, 14)

    again = app.test_cli_runner().invoke(demo, ["load", "--as-of", "2025-09-17", "--seed", "3"])
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.output


@pytest.mark.parametrize(
    ("as_of", "message"),
    [("2024-05-01", "the demo starts on 2024-06-24"), ("2999-01-01", "in the future")],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_load_command_refuses_dates_outside_the_story(app: Flask, as_of: str, message: str) -> None:
    result = app.test_cli_runner().invoke(demo, ["load", "--as-of", as_of])
    assert result.exit_code != 0
    assert message in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Patient.id))) == 0


def test_load_on_an_unmigrated_database_says_what_to_do(tmp_path: Path) -> None:
    app = create_app(app_settings(f"sqlite:///{tmp_path / 'empty.sqlite'}", tmp_path))
    try:
        result = app.test_cli_runner().invoke(demo, ["load"])
        assert result.exit_code != 0
        assert "rehab db upgrade" in result.output
    finally:
        dispose_engines(app)


# --- `rehab demo run` ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def started_pids(output: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"\| (\w+) started \(pid=(\d+)\)", output)}


@pytest.mark.slow
def test_demo_run_serves_the_login_page_with_a_worker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REHAB_", "FLASK_"))}
    env["REHAB_INSTANCE_PATH"] = str(tmp_path / "instance")
    log_path = tmp_path / "demo-run.log"
    rehab = Path(sys.executable).parent / "rehab"
    pids: dict[str, int] = {}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(rehab), "demo", "run", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            page_ok = worker_ready = False
            while time.monotonic() < deadline and not (page_ok and worker_ready):
                assert process.poll() is None, log_path.read_text()
                output = log_path.read_text(errors="replace")
                pids = started_pids(output)
                worker_ready = (
                    "worker" in pids and re.search(r"worker .*ready\.", output) is not None
                )
                if not page_ok:
                    try:
                        with urllib.request.urlopen(f"{base}/login", timeout=5) as response:
                            page_ok = response.status == 200
                    except (urllib.error.URLError, ConnectionError):
                        pass
                time.sleep(0.5)
            output = log_path.read_text(errors="replace")
            assert page_ok and worker_ready, output
            assert f"http://127.0.0.1:{port}" in output
            for login in DEMO_LOGINS:
                assert login.email in output and login.password in output
            assert set(pids) == {"web", "worker", "beat"}
            assert all(alive(pid) for pid in pids.values())

            # A demo login works through the real server.
            jar = http.cookiejar.CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            with opener.open(f"{base}/login", timeout=10) as response:
                match = CSRF_RE.search(response.read().decode())
            assert match is not None
            clinician = DEMO_LOGINS[0]
            form = urllib.parse.urlencode(
                {"email": clinician.email, "password": clinician.password, "csrf_token": match[1]}
            ).encode()
            with opener.open(f"{base}/login", data=form, timeout=10) as response:
                assert response.status == 200
                assert "/login" not in response.geturl()

            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0, log_path.read_text()
            output = log_path.read_text(errors="replace")
            assert "rehab demo: stopped." in output
            for name, pid in pids.items():
                assert not alive(pid), f"{name} (pid {pid}) still running"
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            for pid in pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
