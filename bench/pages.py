"""`rehab bench pages`: server time of the clinician's two chart pages, and the chart payload.

A clinic of 500 patients, each with 730 days of history (daily logs, most days; a program with
phases and prescriptions; events, findings, ODI/PSFS every quarter; alerts, about one in five
patients with one open), on SQLite (the demo's database) and on PostgreSQL (production's; a
private throwaway server). Measured in-process through the WSGI app (Flask's test client, a
clinician logged in): the time from request to complete response, which is everything the
server does (routing, access checks, queries, the detector's baselines, figures, templates,
the audit rows and their commit), without a network.

- caseload: `/clinic/` with all 500 patients, in attention order;
- patient page: `/clinic/patients/<id>` of a patient with 730 days of logs, events, findings,
  alerts, both embedded figures (main chart and change vs baseline) and the outcomes chart.

Targets: ≤ 100 ms server time (median) and ≤ 300 KB of embedded chart JSON for the patient
page. Queries per request are counted too (they must not grow with the caseload or history).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from bench.results import RESULTS_PATH, load_average, machine_description, write_section

SECTION_TITLE = "Pages (rehab bench pages)"
PATIENTS = 500
DAYS = 730
TARGET_MS = 100.0
TARGET_PAYLOAD_KB = 300.0
PASSWORD = "bench-clinician-password"
PAGE_SIZE = 50  # the caseload's page (rehab.services.caseload.PAGE_SIZE)
STATUS_ROW = "alerts-flowing status (/healthz/pipeline, computed afresh)"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
FIGURE = re.compile(r'<script type="application/json" id="fig-[\w-]+">(.*?)</script>', re.S)

Echo = Callable[[str], None]


@dataclass
class PageResult:
    name: str
    times_ms: list[float]
    cpu_ms: list[float]
    html_bytes: int
    gzip_bytes: int
    figure_bytes: int
    queries: int

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_ms)

    @property
    def p90(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


@dataclass
class Scenario:
    database: str
    version: str
    logs: int
    build_seconds: float
    load: str = ""
    pages: list[PageResult] = field(default_factory=list)


# --- the clinic ---------------------------------------------------------------------------------


def _pain(rng: np.random.Generator, n: int, level: float) -> np.ndarray:
    """AR(1) daily pain around `level` (design §3: SD ~1.2, autocorrelated), 0–10."""
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.6 * noise[i - 1] + rng.normal(0, 0.95)
    trend = np.linspace(level + 2.5, level, n)  # recovering over the two years
    return np.clip(np.rint(trend + noise), 0, 10)


def build_clinic(database_url: str, today: dt.date, echo: Echo) -> tuple[int, int]:
    """Migrate and fill the database; returns (patient id to open, number of logs)."""
    import sqlalchemy as sa

    from rehab import migrate
    from rehab.db.models import (
        Alert,
        AlertStatus,
        CareTeam,
        CareTeamMember,
        Clinician,
        Event,
        Exercise,
        ExerciseEntry,
        Finding,
        JobWatermark,
        OutcomeMeasure,
        Patient,
        Prescription,
        Program,
        ProgramPhase,
        SessionLog,
        User,
    )
    from rehab.domain.vocabulary import (
        EventType,
        FallLocation,
        FindingKind,
        Instrument,
        LandedOn,
        NeurodynamicTest,
        Role,
        Side,
        TestResult,
    )
    from rehab.services import scan
    from rehab.services.accounts import hash_password
    from rehab.services.library import seed_exercise_library

    migrate.upgrade(database_url)
    engine = sa.create_engine(database_url)
    rng = np.random.default_rng(20240610)
    first = today - dt.timedelta(days=DAYS - 1)
    with sa.orm.Session(engine) as session:
        seed_exercise_library(session)
        exercises = list(session.scalars(sa.select(Exercise.id).order_by(Exercise.id).limit(5)))
        team = CareTeam(name="Bench team")
        user = User(
            email="clinician@bench.invalid",
            display_name="Bench Clinician",
            role=Role.CLINICIAN,
            password_hash=hash_password(PASSWORD),
        )
        session.add_all([team, user])
        session.flush()
        clinician = Clinician(user_id=user.id)
        session.add(clinician)
        session.flush()
        session.add(CareTeamMember(care_team_id=team.id, clinician_id=clinician.id))
        users = [
            {
                "email": f"patient{i}@bench.invalid",
                "display_name": f"Patient {i:03d}",
                "role": Role.PATIENT,
                "password_hash": None,
            }
            for i in range(PATIENTS)
        ]
        session.execute(sa.insert(User), users)
        user_ids: dict[str, int] = dict(
            session.execute(
                sa.select(User.email, User.id).where(User.email.like("patient%@bench.invalid"))
            ).all()
        )
        session.execute(
            sa.insert(Patient),
            [
                {
                    "user_id": user_ids[str(u["email"])],
                    "care_team_id": team.id,
                    "year_of_birth": 1950 + i % 50,
                    "condition_summary": "Lumbar radiculopathy after L4-L5 decompression",
                }
                for i, u in enumerate(users)
            ],
        )
        patient_ids = list(
            session.scalars(
                sa.select(Patient.id).where(Patient.care_team_id == team.id).order_by(Patient.id)
            )
        )
        session.execute(
            sa.insert(Program),
            [
                {
                    "patient_id": pid,
                    "title": "Conservative care program",
                    "start_date": first,
                    "end_date": None,
                    "created_by_user_id": user.id,
                }
                for pid in patient_ids
            ],
        )
        programs = dict(
            session.execute(
                sa.select(Program.patient_id, Program.id).where(Program.patient_id.in_(patient_ids))
            ).all()
        )
        session.execute(
            sa.insert(ProgramPhase),
            [
                {"program_id": prog, "name": name, "start_date": first + dt.timedelta(days=k)}
                for prog in programs.values()
                for name, k in (("Protect", 0), ("Build strength", 120), ("Maintain", 365))
            ],
        )
        session.execute(
            sa.insert(Prescription),
            [
                {
                    "program_id": prog,
                    "exercise_id": ex,
                    "position": k,
                    "sets": 3,
                    "reps": 10,
                    "hold_seconds": 0,
                    "sessions_per_week": 7,
                    "notes": "",
                    "active": True,
                }
                for prog in programs.values()
                for k, ex in enumerate(exercises)
            ],
        )
        echo(f"  {PATIENTS} patients; writing {DAYS} days of logs each …")
        logs = 0
        days = [first + dt.timedelta(days=k) for k in range(DAYS)]
        probe = patient_ids[0]

        def evening(day: dt.date) -> dt.datetime:
            return dt.datetime.combine(day, dt.time(19), tzinfo=dt.UTC)

        for pid in patient_ids:
            logged = rng.random(DAYS) < 0.9
            leg = _pain(rng, DAYS, rng.uniform(0.5, 3.0))
            back = _pain(rng, DAYS, rng.uniform(0.5, 3.0))
            adherence = np.round(np.clip(rng.normal(0.8, 0.2, DAYS), 0, 1), 2)
            if pid == probe:
                # The probe patient's story: settled, then a fall 4 days ago.
                leg[-4:] = [6, 7, 7, 6]
            rows = [
                {
                    "patient_id": pid,
                    "log_date": day,
                    "client_id": f"bench-{pid}-{day.isoformat()}",
                    "body_hash": hashlib.sha256(f"{pid}{day}".encode()).hexdigest(),
                    "back_pain": int(back[k]),
                    "leg_pain": int(leg[k]),
                    "leg_side": Side.LEFT if leg[k] > 0 else None,
                    "adherence": float(adherence[k]),
                    "source": "bench",
                    # Logged that evening (the alerts-flowing check reads recent changes).
                    "created_at": evening(day),
                    "updated_at": evening(day),
                }
                for k, day in enumerate(days)
                if logged[k] or (pid == probe and k >= DAYS - 4)
            ]
            session.execute(sa.insert(SessionLog), rows)
            logs += len(rows)
        prescription_ids = list(
            session.scalars(
                sa.select(Prescription.id)
                .where(Prescription.program_id == programs[probe])
                .order_by(Prescription.position)
            )
        )
        probe_logs = session.execute(
            sa.select(SessionLog.id, SessionLog.adherence).where(SessionLog.patient_id == probe)
        ).all()
        session.execute(
            sa.insert(ExerciseEntry),
            [
                {
                    "session_log_id": log_id,
                    "prescription_id": rx,
                    "done": k < round((adherence or 0) * len(prescription_ids)),
                    "sets_done": 3,
                    "reps_done": 10,
                }
                for log_id, adherence in probe_logs
                for k, rx in enumerate(prescription_ids)
            ],
        )
        events: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        outcomes: list[dict[str, Any]] = []
        alerts: list[dict[str, Any]] = []
        for i, pid in enumerate(patient_ids):
            events += [
                {
                    "patient_id": pid,
                    "event_date": first - dt.timedelta(days=14),
                    "event_type": EventType.SURGERY,
                    "side": Side.LEFT,
                    "description": "Left L4-L5 decompression.",
                    "recorded_by_user_id": user.id,
                },
                {
                    "patient_id": pid,
                    "event_date": first + dt.timedelta(days=200),
                    "event_type": EventType.IMAGING,
                    "description": "Lumbar MRI: no new compression.",
                    "recorded_by_user_id": user.id,
                },
                {
                    "patient_id": pid,
                    "event_date": today - dt.timedelta(days=4),
                    "event_type": EventType.FALL,
                    "side": Side.LEFT,
                    "description": "Slipped on stairs.",
                    "fall_location": FallLocation.STAIRS,
                    "fall_steps": 10,
                    "fall_landed_on": LandedOn.BUTTOCKS,
                    "recorded_by_user_id": user.id,
                },
            ]
            for k, test in enumerate(list(NeurodynamicTest)[:5]):
                findings.append(
                    {
                        "patient_id": pid,
                        "finding_date": first + dt.timedelta(days=30 + 300 * (k % 2)),
                        "kind": FindingKind.NEURODYNAMIC_TEST,
                        "test_name": test,
                        "side": Side.LEFT,
                        "result": TestResult.NEGATIVE,
                        "text": "",
                        "author_user_id": user.id,
                    }
                )
            for q in range(0, DAYS, 91):
                for instrument, score in (
                    (Instrument.ODI, 40 - q / 30),
                    (Instrument.PSFS, 4 + q / 200),
                ):
                    outcomes.append(
                        {
                            "patient_id": pid,
                            "instrument": instrument,
                            "measured_on": first + dt.timedelta(days=q),
                            "score": round(score, 1),
                            "answers": {},
                            "recorded_by_user_id": user.id,
                        }
                    )
            for k in range(3):
                onset = first + dt.timedelta(days=100 + 180 * k)
                alerts.append(
                    {
                        "patient_id": pid,
                        "kind": "pain_regression",
                        "metric": "leg_pain",
                        "severity": "routine",
                        "onset": onset,
                        "detected_on": onset + dt.timedelta(days=2),
                        "resolved_on": onset + dt.timedelta(days=20),
                        "baseline": 1.0,
                        "current": 5.0,
                        "change": 4.0,
                        "explanation": "Leg pain 5/10 vs baseline 1/10.",
                        "status": AlertStatus.RESOLVED,
                    }
                )
            if i % 5 == 0:
                alerts.append(
                    {
                        "patient_id": pid,
                        "kind": "pain_regression",
                        "metric": "leg_pain",
                        "severity": "urgent" if i % 10 == 0 else "routine",
                        "onset": today - dt.timedelta(days=4),
                        "detected_on": today - dt.timedelta(days=3),
                        "baseline": 1.0,
                        "current": 6.5,
                        "change": 5.5,
                        "explanation": "Leg pain 6.5/10 vs baseline 1/10, after a fall.",
                        "status": AlertStatus.OPEN,
                    }
                )
        table: list[dict[str, Any]]
        for model, table in (
            (Event, events),
            (Finding, findings),
            (OutcomeMeasure, outcomes),
            (Alert, alerts),
        ):
            session.execute(sa.insert(model), table)
        # The worker has evaluated everyone (and its scan just ran): nothing is late.
        session.execute(sa.update(Patient).values(evaluated_at=dt.datetime.now(dt.UTC)))
        session.execute(
            sa.insert(JobWatermark).values(
                name=scan.LAST_RUN_WATERMARK, through=dt.datetime.now(dt.UTC)
            )
        )
        session.commit()
    # A steady-state database: planner statistics (and, on PostgreSQL, the visibility map) as
    # autovacuum would have left them, not a table loaded a second ago.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE" if engine.dialect.name == "sqlite" else "VACUUM ANALYZE")
    engine.dispose()
    return probe, logs


# --- measuring ----------------------------------------------------------------------------------


def _measure(
    app: Any,
    client: Any,
    path: str,
    name: str,
    runs: int,
    warmup: int,
    *,
    before: Callable[[], None] = lambda: None,
) -> PageResult:
    """`before` runs ahead of every request (e.g. dropping a cached answer)."""
    import sqlalchemy as sa

    from rehab.extensions import db

    for _ in range(warmup):
        before()
        assert client.get(path).status_code == 200
    statements: list[str] = []

    def count(*_: Any) -> None:
        statements.append("")

    with app.app_context():
        engine = db.engine
    before()
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(path)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    html = response.get_data()
    times, cpu = [], []
    for _ in range(runs):
        before()
        started, used = time.perf_counter(), time.process_time()
        response = client.get(path)
        times.append(1000 * (time.perf_counter() - started))
        cpu.append(1000 * (time.process_time() - used))
        assert response.status_code == 200
    figures = sum(len(m.encode()) for m in FIGURE.findall(html.decode()))
    return PageResult(
        name=name,
        times_ms=times,
        cpu_ms=cpu,
        html_bytes=len(html),
        gzip_bytes=len(gzip.compress(html, 6)),
        figure_bytes=figures,
        queries=len(statements),
    )


def run_scenario(database: str, runs: int, warmup: int, echo: Echo) -> Scenario:
    from rehab import create_app
    from rehab.extensions import db
    from rehab.web.health import forget_pipeline_status

    today = dt.date.today()
    with _database(database) as (url, version, tmp):
        echo(f"{database}: building the clinic …")
        started = time.perf_counter()
        probe, logs = build_clinic(url, today, echo)
        built = time.perf_counter() - started
        echo(f"  built in {built:.0f} s ({logs} logs)")
        app = create_app(
            {
                "mode": "testing",
                "database_url": url,
                "broker_url": "memory://",
                "instance_path": tmp / "instance",
                "ratelimit_storage_url": "memory://",
                "totp_required": False,
            }
        )
        scenario = Scenario(database, version, logs, built, load_average())
        try:
            client = app.test_client()
            login_page = client.get("/login").get_data(as_text=True)
            found = CSRF.search(login_page)
            assert found is not None, "no CSRF token on the login page"
            token = found.group(1)
            response = client.post(
                "/login",
                data={
                    "email": "clinician@bench.invalid",
                    "password": PASSWORD,
                    "csrf_token": token,
                },
            )
            assert response.status_code == 302, response.status_code
            for path, name in (
                ("/clinic/", f"caseload, {PATIENTS} patients (first page of {PAGE_SIZE})"),
                ("/clinic/?per_page=all", f"caseload, all {PATIENTS} on one page"),
                (f"/clinic/patients/{probe}", f"patient page, {DAYS} days"),
            ):
                result = _measure(app, client, path, name, runs, warmup)
                echo(
                    f"  {name}: median {result.median:.0f} ms, p90 {result.p90:.0f} ms, "
                    f"CPU {result.cpu_median:.0f} ms, "
                    f"{result.queries} queries, HTML {result.html_bytes / 1024:.0f} KB "
                    f"({result.gzip_bytes / 1024:.0f} KB gzipped), "
                    f"chart JSON {result.figure_bytes / 1024:.0f} KB"
                )
                scenario.pages.append(result)
            # The caseload's and inbox's "alerts may be late" check, computed afresh each
            # time here (pages reuse it for 30 s per process); all is on time in this clinic.
            status = _measure(
                app,
                client,
                "/healthz/pipeline",
                STATUS_ROW,
                runs,
                warmup,
                before=lambda: forget_pipeline_status(app),
            )
            echo(
                f"  {STATUS_ROW}: median {status.median:.1f} ms, CPU {status.cpu_median:.1f} ms,"
                f" {status.queries} queries"
            )
            scenario.pages.append(status)
        finally:
            with app.app_context():
                for engine in db.engines.values():
                    engine.dispose()
    return scenario


@contextlib.contextmanager
def _database(kind: str) -> Iterator[tuple[str, str, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="rehab-bench-pages-"))
    try:
        if kind == "sqlite":
            import sqlite3

            yield f"sqlite:///{tmp / 'bench.sqlite'}", f"SQLite {sqlite3.sqlite_version}", tmp
        else:
            import psycopg

            from rehab.devservers import start_postgres

            server = start_postgres()
            try:
                with psycopg.connect(server.dsn(), autocommit=True) as conn:
                    conn.execute("CREATE DATABASE bench_pages")
                    row = conn.execute("SHOW server_version").fetchone()
                version = f"PostgreSQL {row[0].split()[0] if row else '?'}"
                yield server.url("bench_pages"), version, tmp
            finally:
                server.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- the report ---------------------------------------------------------------------------------


def markdown(scenarios: list[Scenario], command: str, runs: int) -> str:
    loads = "; ".join(f"{s.version}: {s.load}" for s in scenarios)
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"`{command}` on {dt.date.today().isoformat()}, {machine_description()}; load "
        f"average (1/5/15 min) when measuring: {loads}.",
        "",
        f"Server time: request to complete response through the WSGI app in-process (Flask's "
        f"test client, a clinician logged in; no network), {runs} requests after a warm-up, "
        f"one after another; CPU: this process's CPU time for the same requests (with SQLite "
        f"that includes the database's work; with PostgreSQL the server's is not in it). A "
        f"clinic of {PATIENTS} patients with {DAYS} days of history each (daily logs on ~90 % "
        f"of days, a program with phases and 5 exercises, 3 events, 5 findings, ODI/PSFS every "
        f"quarter, 3 resolved alerts each, an open one for one patient in five), then "
        f"ANALYZE (PostgreSQL: VACUUM ANALYZE) as autovacuum would have run. The caseload "
        f"computes and sorts all {PATIENTS} (attention order, 30-day trend lines, RTM days, "
        f"7-day adherence, the change against the detector's baseline) and shows the first "
        f"{PAGE_SIZE} (the default) or all of them; the patient page has {DAYS} days of logs (and "
        f"exercise entries), the main chart, the change-vs-baseline chart and the outcomes "
        f"chart embedded. Chart JSON: the embedded figures' bytes (target ≤ "
        f"{TARGET_PAYLOAD_KB:.0f} KB); server time target ≤ {TARGET_MS:.0f} ms (median). "
        f"Queries: SQL statements per request, constant in the caseload's size and the "
        f"history's length (the audit rows, one per patient shown, are one INSERT). The "
        f"alerts-flowing status is the check behind the caseload's and inbox's \"alerts may "
        f'be late" banner (scan, evaluation, e-mail delivery, care teams), computed afresh '
        f"for each request here; a web process reuses it for 30 s, so a page pays it at most "
        f"that often (its chart and payload columns do not apply).",
        "",
        "| database | page | median (ms) | p90 (ms) | min (ms) | CPU median (ms) | queries "
        "| HTML (KB) | gzipped (KB) | chart JSON (KB) | target met (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        for p in s.pages:
            met = p.median <= TARGET_MS and p.figure_bytes / 1024 <= TARGET_PAYLOAD_KB
            lines.append(
                f"| {s.version} | {p.name} | {p.median:.0f} | {p.p90:.0f} | {min(p.times_ms):.0f} "
                f"| {p.cpu_median:.0f} "
                f"| {p.queries} | {p.html_bytes / 1024:.0f} | {p.gzip_bytes / 1024:.0f} "
                f"| {p.figure_bytes / 1024:.0f} | {'yes' if met else 'no'} |"
            )
    lines += [
        "",
        "plotly.js itself (4.8 MB, 1.4 MB gzipped) is served once from the installed plotly "
        "package under a versioned URL with a one-year immutable cache, so it is not part of "
        "any page's payload after the first.",
    ]
    return "\n".join(lines) + "\n"


@click.command()
@click.option(
    "--database",
    "databases",
    type=click.Choice(["sqlite", "postgresql"]),
    multiple=True,
    help="Which database(s) [both].",
)
@click.option("--runs", type=int, default=20, show_default=True, help="Measured requests.")
@click.option("--warmup", type=int, default=3, show_default=True, help="Warm-up requests.")
@click.option("--no-results", is_flag=True, help="Print the figures only.")
def pages_command(databases: tuple[str, ...], runs: int, warmup: int, no_results: bool) -> None:
    """Server time of the caseload (500 patients) and a patient page (730 days), and the
    chart payload; writes its section of bench/RESULTS.md."""
    kinds = list(databases) or ["sqlite", "postgresql"]
    echo: Echo = lambda line: click.echo(line, err=True)  # noqa: E731
    scenarios = [run_scenario(kind, runs, warmup, echo) for kind in kinds]
    parts = ["rehab bench pages", *(f"--database {k}" for k in databases)]
    parts += [f"--runs {runs}"] if runs != 20 else []
    section = markdown(scenarios, " ".join(parts), runs)
    click.echo(section)
    if not no_results:
        write_section(RESULTS_PATH, SECTION_TITLE, section)
        click.echo(f"written to {RESULTS_PATH}", err=True)
