"""`rehab bench notify`: how long a red flag takes to reach the clinician's mail server.

Measured: from a committed red-flag log (the API's 201 answer; the app runs in this process)
to the alert e-mail's arrival at an SMTP server (aiosmtpd, in this process). In between, all
real: the task sent after the commit, a Celery worker process evaluating the patient, the alert
and its notification rows committed together, the delivery task, the claim, the rendering and
the SMTP conversation. Celery beat runs beside the worker (the outbox re-sender).

Two set-ups:
- **sqlite**: the demo's: SQLite database, Celery's SQLAlchemy transport on a SQLite file (it
  polls), one worker process with the solo pool.
- **redis**: production's: PostgreSQL and Redis (private throwaway servers), a prefork worker
  with 2 processes.

Runs go one after another, each for its own patient (one red-flag alert per patient per day);
one care-team clinician, so one message per run. A first run warms up and is not counted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import hashlib
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bench.results import RESULTS_PATH, machine_description, write_section

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECTION_TITLE = "Notification latency (rehab bench notify)"
TARGETS = {"sqlite": 10.0, "redis": 2.0}
PATIENT_LINK = re.compile(r"/clinic/patients/(\d+)")
HISTORY_DAYS = 30

Echo = Callable[[str], None]


# --- the SMTP server ----------------------------------------------------------------------


class _Arrivals:
    """aiosmtpd handler: when each patient's alert e-mail arrived (time.monotonic())."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_patient: dict[int, float] = {}
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.monotonic()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
        text = body.get_content() if body is not None else ""
        match = PATIENT_LINK.search(text)
        with self.lock:
            self.count += 1
            if match:
                self.by_patient.setdefault(int(match.group(1)), at)
        return "250 OK"

    def wait(self, patient_id: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if patient_id in self.by_patient:
                    return self.by_patient[patient_id]
            time.sleep(0.005)
        return None


@contextlib.contextmanager
def _smtp_server() -> Iterator[tuple[str, _Arrivals]]:
    from aiosmtpd.controller import Controller

    from rehab.devservers import free_port

    handler = _Arrivals()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", handler
    finally:
        controller.stop()
        controller.loop.close()


# --- processes ----------------------------------------------------------------------------


@contextlib.contextmanager
def _celery(argv: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[None]:
    celery = str(Path(sys.executable).parent / "celery")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [celery, "-A", "worker", *argv], env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while ready not in log.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise click.ClickException(f"celery {argv[0]} did not start:\n{tail}")
                time.sleep(0.1)
            yield
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


# --- the clinic ---------------------------------------------------------------------------


def _build_clinic(patients: int) -> list[tuple[int, str]]:
    """One care team, one clinician, `patients` patients with a month of quiet logs each;
    returns (patient id, API token) pairs. Needs an app context."""
    import sqlalchemy as sa

    from rehab.db.models import CareTeam, CareTeamMember, Clinician, Patient, SessionLog, User
    from rehab.domain.vocabulary import Role
    from rehab.extensions import db
    from rehab.services import accounts
    from rehab.services.time import clinic_today

    session = db.session
    team = CareTeam(name="Bench team")
    clinician = User(email="clinician@bench.test", display_name="Bench Clinician",
                     role=Role.CLINICIAN, password_hash=None)  # fmt: skip
    clinician.clinician = Clinician()
    session.add_all([team, clinician])
    session.flush()
    session.add(CareTeamMember(care_team_id=team.id, clinician_id=clinician.clinician.id))
    out = []
    today = clinic_today()
    for n in range(patients):
        user = User(email=f"patient{n}@bench.test", display_name=f"Bench Patient {n}",
                    role=Role.PATIENT, password_hash=None)  # fmt: skip
        user.patient = Patient(care_team_id=team.id)
        session.add(user)
        session.flush()
        _, token = accounts.issue_api_token(session, user, "bench")
        assert user.patient.id is not None
        out.append((user.patient.id, token))
        rows = []
        for back in range(HISTORY_DAYS, 0, -1):
            day = today - dt.timedelta(days=back)
            client_id = f"bench-{user.patient.id}-{day}"
            rows.append({
                "patient_id": user.patient.id, "log_date": day, "client_id": client_id,
                "body_hash": hashlib.sha256(client_id.encode()).hexdigest(),
                "back_pain": 1, "leg_pain": (back % 3 == 0) * 1, "leg_side": None,
                "adherence": 1.0, "source": "bench",
            })  # fmt: skip
        session.execute(sa.insert(SessionLog), rows)
    session.commit()
    return out


# --- one set-up ---------------------------------------------------------------------------


@dataclass
class Scenario:
    kind: str
    broker: str
    database: str
    worker: str
    target: float
    latencies: list[float] = field(default_factory=list)  # seconds, commit -> arrival
    request_times: list[float] = field(default_factory=list)  # seconds, the POST itself
    lost: int = 0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else math.nan

    @property
    def met(self) -> bool:
        return self.lost == 0 and self.quantile(0.9) <= self.target


@contextlib.contextmanager
def _servers(kind: str, workdir: Path) -> Iterator[tuple[str, str, str]]:
    """(database URL, broker URL, database label) for the set-up."""
    if kind == "sqlite":
        yield (
            f"sqlite:///{workdir / 'rehab.sqlite'}",
            f"sqla+sqlite:///{workdir / 'broker.sqlite'}",
            "SQLite",
        )
        return
    import psycopg

    from rehab.devservers import start_postgres, start_redis

    postgres = start_postgres()
    redis = start_redis()
    try:
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE rehab_bench")
            row = conn.execute("SHOW server_version").fetchone()
        version = str(row[0]).split()[0] if row else "?"
        yield postgres.url("rehab_bench"), redis.url, f"PostgreSQL {version}"
    finally:
        redis.close()
        postgres.close()


def run_scenario(kind: str, runs: int, echo: Echo, timeout: float = 60.0) -> Scenario:
    from rehab import create_app, migrate
    from rehab.extensions import db
    from rehab.services.time import clinic_today

    workdir = Path(tempfile.mkdtemp(prefix=f"rehab-bench-notify-{kind}-"))
    try:
        with _servers(kind, workdir) as (database_url, broker_url, database_label), \
                _smtp_server() as (smtp_url, arrivals):  # fmt: skip
            echo(f"[{kind}] migrating {database_label}")
            migrate.upgrade(database_url)
            settings = {
                "mode": "production",
                "secret_key": secrets.token_hex(32),
                "database_url": database_url,
                "broker_url": broker_url,
                "instance_path": str(workdir / "instance"),
                "smtp_url": smtp_url,
                "public_url": "http://127.0.0.1:5000",
            }
            env = dict(os.environ)
            env.update({f"REHAB_{k.upper()}": v for k, v in settings.items()})
            app = create_app(settings)
            with app.app_context():
                patients = _build_clinic(runs + 1)
            if kind == "sqlite":
                pool = ["--pool", "solo"]
                worker_label = "1 process, solo pool (as `rehab demo run`)"
                broker_label = "SQLite transport (kombu SQLAlchemy, polls every 1 s)"
            else:
                pool = ["--concurrency", "2"]
                worker_label = "prefork, 2 processes"
                broker_label = "Redis"
            scenario = Scenario(kind, broker_label, database_label, worker_label, TARGETS[kind])
            worker_argv = ["worker", "--loglevel", "INFO", *pool, "--without-gossip",
                           "--without-mingle", "--without-heartbeat"]  # fmt: skip
            beat_argv = ["beat", "--loglevel", "INFO",
                         "--schedule", str(workdir / "celerybeat-schedule")]  # fmt: skip
            with _celery(worker_argv, env, workdir / "worker.log", "ready."), \
                    _celery(beat_argv, env, workdir / "beat.log", "beat: Starting"):  # fmt: skip
                echo(f"[{kind}] worker and beat running; {runs} runs + 1 warm-up")
                client = app.test_client()
                today = clinic_today().isoformat()
                for index, (patient_id, token) in enumerate(patients):
                    started = time.monotonic()
                    response = client.post(
                        f"/api/v1/patients/{patient_id}/logs",
                        json={"client_id": uuid.uuid4().hex, "log_date": today,
                              "back_pain": 2, "leg_pain": 3, "leg_side": "left",
                              "red_flags": ["new_weakness"]},
                        headers={"Authorization": f"Bearer {token}"},
                    )  # fmt: skip
                    committed = time.monotonic()
                    if response.status_code != 201:
                        raise click.ClickException(
                            f"the API answered {response.status_code}: {response.get_data()!r}"
                        )
                    arrived = arrivals.wait(patient_id, timeout)
                    if index == 0:
                        echo(f"[{kind}] warm-up: {_fmt(arrived, committed)}")
                        continue
                    if arrived is None:
                        scenario.lost += 1
                    else:
                        scenario.latencies.append(arrived - committed)
                    scenario.request_times.append(committed - started)
                    echo(f"[{kind}] run {index}/{runs}: {_fmt(arrived, committed)}")
                    time.sleep(0.3)
            with app.app_context():
                for engine in db.engines.values():
                    engine.dispose()
        return scenario
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _fmt(arrived: float | None, committed: float) -> str:
    return "lost" if arrived is None else f"{arrived - committed:.3f} s"


# --- report -------------------------------------------------------------------------------


def markdown(scenarios: list[Scenario], runs: int, command: str) -> str:
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"`{command}` on {dt.date.today().isoformat()}, {machine_description()}.",
        "",
        "Time from a committed red-flag log (the API's 201 answer; app in-process) to the alert"
        " e-mail's arrival at the SMTP server (aiosmtpd in the bench process). In between, all"
        " real: the evaluation task sent after the commit, a Celery worker process evaluating"
        " the patient (30 days of history), the alert and its notification row committed"
        " together, the delivery task, the claim, rendering (text, HTML, inline chart) and the"
        " SMTP conversation. Celery beat (the outbox re-sender) runs beside the worker. One"
        f" care-team clinician, one message per run, {runs} runs one after another after a"
        " warm-up run. Target met when the 90th percentile is within it and nothing is lost.",
        "",
        "| broker | database | worker | runs | median (s) | p90 (s) | min / max (s) "
        "| POST median (ms) | lost | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        low = min(s.latencies) if s.latencies else math.nan
        high = max(s.latencies) if s.latencies else math.nan
        post = statistics.median(s.request_times) * 1000 if s.request_times else math.nan
        lines.append(
            f"| {s.broker} | {s.database} | {s.worker} | {len(s.latencies) + s.lost} "
            f"| {s.median:.2f} | {s.quantile(0.9):.2f} | {low:.2f} / {high:.2f} | {post:.0f} "
            f"| {s.lost} | ≤ {s.target:g} s | {'yes' if s.met else 'no'} |"
        )
    lines += [
        "",
        "Where the time goes: a red flag takes two hops through the broker (evaluate, then"
        " deliver). The SQLite transport is polled (kombu's default: once a second while the"
        " queue is empty; at once again after a message), so the first hop waits up to a second"
        " and the second hardly at all; Redis pushes, leaving the evaluation, two commits and"
        " the SMTP exchange.",
    ]
    return "\n".join(lines) + "\n"


@click.command("notify")
@click.option("--runs", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option(
    "--broker",
    "brokers",
    type=click.Choice(["sqlite", "redis"]),
    multiple=True,
    help="Set-ups to measure (repeatable) [both].",
)
@click.option(
    "--results",
    "results_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=RESULTS_PATH,
    show_default=True,
    help="Markdown file to write the section to.",
)
@click.option("--no-results", is_flag=True, help="Print the figures only.")
def notify_command(
    runs: int, brokers: tuple[str, ...], results_path: Path, no_results: bool
) -> None:
    """Red flag to SMTP server: latency on the SQLite broker and on Redis."""
    # kombu's SQLAlchemy transport uses a loader strategy SQLAlchemy 2.1 deprecates.
    warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy")
    kinds = list(brokers) or ["sqlite", "redis"]
    scenarios = [
        run_scenario(kind, runs, echo=lambda line: click.echo(line, err=True)) for kind in kinds
    ]
    parts = ["rehab bench notify", f"--runs {runs}" if runs != 20 else ""]
    parts += [f"--broker {k}" for k in brokers]
    section = markdown(scenarios, runs, " ".join(p for p in parts if p))
    click.echo(section)
    if not no_results:
        write_section(results_path, SECTION_TITLE, section)
        click.echo(f"written to {results_path}", err=True)
    if not all(s.met for s in scenarios):
        sys.exit(1)
