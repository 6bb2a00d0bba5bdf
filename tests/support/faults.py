"""Helpers for fault-injection tests (tests/integration/test_faults.py): Celery processes that
can be SIGKILLed and started again, a clinic of patients whose next logs must raise known
alerts, and a paced log submitter that records every answer.

Nothing here injects a fault by itself; the test decides when.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Flask

from rehab.db.models import (
    CareTeam,
    CareTeamMember,
    Clinician,
    Exercise,
    Patient,
    Prescription,
    Program,
    SessionLog,
    User,
)
from rehab.domain.vocabulary import Role
from rehab.extensions import db
from rehab.services import accounts
from rehab.services.evaluation import EVALUATION_LOCK
from rehab.services.library import seed_exercise_library
from tests.support.clinic import password_hash
from tests.support.history import log_rows
from tests.support.worker import wait_for_log, worker_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# A quiet history: leg pain about 1/10 (the baseline), back pain 1, every session done.
QUIET = (1, 0, 1, 1, 2) * 9


# --- Celery processes ---------------------------------------------------------------------


class CeleryProcess:
    """`celery -A worker <argv>` in its own process group, so a SIGKILL takes the main process
    and its pool children at once (a machine or container dying, not a polite shutdown).
    Each start writes a new log file: `<name>-<n>.log`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_dir: Path,
        ready: str,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_dir = log_dir
        self.ready = ready
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.kills = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = self.log_dir / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(log)
        celery = str(Path(sys.executable).parent / "celery")
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [celery, "-A", "worker", *self.argv],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_ROOT,
                start_new_session=True,
            )
        wait_for_log(log, self.ready, self.process)

    def kill(self) -> None:
        """SIGKILL the whole process group; nothing gets to clean up or acknowledge."""
        assert self.process is not None and self.process.poll() is None, "not running"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def celery_worker(name: str, env: dict[str, str], log_dir: Path) -> CeleryProcess:
    """A prefork worker with one pool process: at most one task (one SMTP conversation) in
    flight, so one crash can duplicate at most one message."""
    argv = ["worker", "--loglevel", "INFO", "--concurrency", "1", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "--hostname", f"{name}@%h"]  # fmt: skip
    return CeleryProcess(name, argv, env, log_dir, "ready.")


def celery_beat(env: dict[str, str], log_dir: Path) -> CeleryProcess:
    argv = ["beat", "--loglevel", "INFO", "--schedule", str(log_dir / "beat-schedule")]
    return CeleryProcess("beat", argv, env, log_dir, "beat: Starting")


def celery_env(
    database_url: str, broker_url: str, instance_path: Path, settings: dict[str, str]
) -> dict[str, str]:
    extra = {f"REHAB_{key.upper()}": value for key, value in settings.items()}
    return worker_env(database_url, broker_url, instance_path, **extra)


# --- the clinic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPatient:
    id: int
    user_id: int
    token: str
    prescription_id: int
    team: str
    red_flag: bool  # today's log reports a red flag; otherwise leg pain rises to 7/10


@dataclass
class FaultClinic:
    patients: list[FaultPatient]
    clinicians: dict[str, list[int]]  # team name -> user ids of its clinicians
    today: dt.date

    def team_of(self, patient_id: int) -> str:
        return next(p.team for p in self.patients if p.id == patient_id)


def build_fault_clinic(
    teams: dict[str, int], patients_per_team: int, red_flag_every: int, today: dt.date
) -> FaultClinic:
    """Care teams (name -> number of clinicians), each with `patients_per_team` patients on a
    one-exercise program that began 47 days ago. Every patient has logged daily since,
    quietly, through the day before yesterday; every `red_flag_every`-th patient is a red-flag
    patient (yesterday quiet, today a red flag: one urgent `red_flag` alert today), the others
    have a step up (the day before yesterday 7/10 already, then 7/10 yesterday and today: one
    `pain_regression` of leg pain, detected today). No state in between alerts: with one or
    none of the two logs the detector finds nothing (and two missing days are not yet
    `missed_logs`). Commits inside the current app context."""
    session = db.session
    seed_exercise_library(session)
    exercise_id = session.scalars(sa.select(Exercise.id).order_by(Exercise.id).limit(1)).one()
    first_log = today - dt.timedelta(days=2 + len(QUIET))
    start = first_log  # (a program without logs for a while would be missed logging)
    clinicians: dict[str, list[int]] = {}
    patients: list[FaultPatient] = []
    run = uuid.uuid4().hex[:6]
    for team_name, clinician_count in teams.items():
        team = CareTeam(name=f"{team_name} {run}")
        session.add(team)
        session.flush()
        clinicians[team_name] = []
        for c in range(clinician_count):
            user = User(
                email=f"{team_name.lower()}-{c}-{run}@clinic.test",
                display_name=f"{team_name} Clinician {c}",
                role=Role.CLINICIAN,
                password_hash=password_hash(),
            )
            user.clinician = Clinician()
            session.add(user)
            session.flush()
            assert user.clinician is not None
            session.add(CareTeamMember(care_team_id=team.id, clinician_id=user.clinician.id))
            clinicians[team_name].append(user.id)
        author = clinicians[team_name][0]
        for n in range(patients_per_team):
            user = User(
                email=f"{team_name.lower()}-p{n}-{run}@patient.test",
                display_name=f"{team_name} Patient {n}",
                role=Role.PATIENT,
                password_hash=None,
            )
            user.patient = Patient(care_team_id=team.id, condition_summary="Low back pain")
            session.add(user)
            session.flush()
            patient = user.patient
            assert patient is not None
            program = Program(
                patient_id=patient.id, title="Stabilisation", start_date=start,
                created_by_user_id=author,
            )  # fmt: skip
            session.add(program)
            session.flush()
            prescription = Prescription(
                program_id=program.id, exercise_id=exercise_id, sets=3, reps=10
            )
            session.add(prescription)
            session.flush()
            _, token = accounts.issue_api_token(session, user, "fault-test phone")
            red_flag = n % red_flag_every == 0
            patients.append(
                FaultPatient(patient.id, user.id, token, prescription.id, team_name, red_flag)
            )
            leg = [*QUIET, 1 if red_flag else 7]
            _history(session, patient.id, first_log, leg)
    session.commit()
    return FaultClinic(patients, clinicians, today)


def _history(session: Any, patient_id: int, first: dt.date, leg_pain: list[int]) -> None:
    session.execute(sa.insert(SessionLog), log_rows(patient_id, first, leg_pain))


def api_logs(clinic: FaultClinic, seed: int = 7) -> list[tuple[FaultPatient, dict[str, Any]]]:
    """The two logs each patient still sends (yesterday, today), in a shuffled order where each
    patient's yesterday comes before its today (a phone catching up), today a few places later."""
    rng = random.Random(seed)
    order = list(clinic.patients)
    rng.shuffle(order)
    yesterday = clinic.today - dt.timedelta(days=1)
    planned: list[tuple[FaultPatient, dict[str, Any]]] = []
    lag = 6
    for i in range(len(order) + lag):
        if i < len(order):
            planned.append((order[i], _body(order[i], yesterday, today=False)))
        if i >= lag:
            planned.append((order[i - lag], _body(order[i - lag], clinic.today, today=True)))
    return planned


def _body(patient: FaultPatient, day: dt.date, *, today: bool) -> dict[str, Any]:
    leg = 2 if patient.red_flag else 7
    if patient.red_flag and not today:
        leg = 1
    return {
        "client_id": uuid.uuid4().hex,
        "log_date": day.isoformat(),
        "back_pain": 1,
        "leg_pain": leg,
        "leg_side": "left",
        "red_flags": ["new_weakness"] if patient.red_flag and today else [],
        "exercises": [{"prescription_id": patient.prescription_id, "done": True}],
    }


# --- submitting logs ----------------------------------------------------------------------


@dataclass
class Answer:
    client_id: str
    patient_id: int
    status: int
    seconds: float
    at: float  # time.monotonic() when the answer came
    replay: bool


@dataclass
class Submitter:
    """Posts the planned logs through the app (Flask's test client, one per thread) at a
    steady pace from a background thread; every `replay_every`-th log is posted a second time
    with the same client id, as a phone retrying after a slow answer would. With `pause_at`,
    the logs from that index on wait until `resume()`: so a fault can be sure to meet logs
    still coming in, however slowly the machine runs."""

    app: Flask
    planned: list[tuple[FaultPatient, dict[str, Any]]]
    interval: float = 0.15
    threads: int = 4
    replay_every: int = 10
    pause_at: int | None = None
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    posted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _local: threading.local = field(default_factory=threading.local)
    _resume: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="submitter", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the submitter did not finish in time"

    def resume(self) -> None:
        self._resume.set()

    def stop(self) -> None:
        """Post nothing more (a failing test must not leave it posting)."""
        self._stop.set()
        self._resume.set()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self.planned) - self.posted

    def _run(self) -> None:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="post") as pool:
            futures = []
            next_at = time.monotonic()
            for index, (patient, body) in enumerate(self.planned):
                if index == self.pause_at:
                    self._resume.wait(300)
                    next_at = time.monotonic()
                if self._stop.is_set():
                    break
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += self.interval
                futures.append(pool.submit(self._post, patient, body, index))
                with self._lock:
                    self.posted += 1
            for future in futures:
                future.result()

    def _post(self, patient: FaultPatient, body: dict[str, Any], index: int) -> None:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.app.test_client()
        for replay in (False, True) if index % self.replay_every == 0 else (False,):
            started = time.monotonic()
            try:
                response = client.post(
                    f"/api/v1/patients/{patient.id}/logs",
                    json=body,
                    headers={"Authorization": f"Bearer {patient.token}"},
                )
                status = response.status_code
            except Exception as exc:  # an exception escaping the app is an answer too (500)
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                status = 500
            now = time.monotonic()
            with self._lock:
                self.answers.append(
                    Answer(body["client_id"], patient.id, status, now - started, now, replay)
                )


# --- looking inside -----------------------------------------------------------------------


def broker_backlog(redis_url: str) -> dict[str, int]:
    """Messages in the Celery queue and reserved by workers but not acknowledged (kombu's
    Redis transport keeps those in the `unacked` hash until acknowledged, or until the
    visibility timeout gives them back)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return {"queued": int(client.llen("celery")), "unacked": int(client.hlen("unacked"))}  # type: ignore[arg-type]
    finally:
        client.close()


def evaluation_lock_waiters(dsn: str, patient_id: int) -> int:
    """Backends waiting for the evaluation lock of this patient (an evaluation in progress,
    stopped at `rehab.services.evaluation._lock_patients`)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = %s AND objid = %s AND objsubid = 2",
            (EVALUATION_LOCK, patient_id),
        ).fetchone()
    return int(row[0]) if row else 0


def hold_evaluation_lock(dsn: str, patient_id: int) -> Callable[[], None]:
    """Take the patient's evaluation lock in a connection of our own; returns its release."""
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (EVALUATION_LOCK, patient_id))

    def release() -> None:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (EVALUATION_LOCK, patient_id))
            conn.close()

    return release
