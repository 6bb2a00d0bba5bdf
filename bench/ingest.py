"""`rehab bench ingest`: how many daily logs per second the API takes, against two references
measured in the same run, on the same database and at the same concurrency.

- **ours**: `POST /api/v1/patients/{id}/logs` on `rehab:create_app()` under gunicorn
  (`config/gunicorn.conf.py`), production mode, PostgreSQL, Redis as the Celery broker: bearer
  auth, pydantic validation, idempotency by client id, access check, audit row, task after
  commit — everything on.
- **bare**: `bench/bare_app.py`, a Flask endpoint inserting one row with SQLAlchemy Core under
  the same gunicorn settings: the framework's ceiling.
- **raw**: threads doing a single-row INSERT + COMMIT with psycopg: the database's limit.

The load generator is a separate, single-threaded asyncio process (stdlib only, no framework)
with one keep-alive connection per client, the same for both HTTP targets. It stops sending at
the deadline and waits for the answers in flight, so every request has a known outcome; after
each run the stored rows are counted against the 2xx answers (no loss, no duplicate).

The top of this module imports the standard library only: `python -m bench.ingest loadgen`
runs the load generator without loading Flask or SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import random
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.results import (
    BENCH_DIR,
    RESULTS_PATH,
    load_average,
    machine_description,
    write_section,
)
from bench.servers import bench_database

PROJECT_ROOT = BENCH_DIR.parent
GUNICORN_CONFIG = PROJECT_ROOT / "config" / "gunicorn.conf.py"
SECTION_TITLE = "Ingest (rehab bench ingest)"
BENCH_SCHEMA = "bench"
RED_FLAGS = ("new_numbness", "new_weakness", "bladder_bowel_change", "saddle_numbness")
SIDES = ("left", "right", "both")
NOTES = ("", "", "", "", "Stiff in the morning.", "Walked 20 minutes.", "Long drive today.")


# --- the load generator (own process, stdlib only) -----------------------------------------


@dataclass(frozen=True)
class PatientSlot:
    """A patient the load generator logs for: token, prescriptions, first loggable day."""

    id: int
    token: str
    prescriptions: list[int]
    start: str  # ISO date: the program's start; logs go from there towards today


class LogPlan:
    """Request number n → one unique log: patient n mod P, day n div P from the program start.

    So every (patient, date) is logged once, dates are never before the program nor after
    `last_day`, and concurrent requests hit different patients."""

    def __init__(
        self, patients: list[PatientSlot], last_day: str, host: str, seed: int = 1
    ) -> None:
        self.patients = patients
        self.starts = [dt.date.fromisoformat(p.start) for p in patients]
        self.last_day = dt.date.fromisoformat(last_day)
        self.host = host
        self.rng = random.Random(seed)
        self.next_seq = 0
        self.exhausted = False

    def body(self, seq: int) -> tuple[PatientSlot, dict[str, Any]] | None:
        index, day = seq % len(self.patients), seq // len(self.patients)
        patient = self.patients[index]
        log_date = self.starts[index] + dt.timedelta(days=day)
        if log_date > self.last_day:
            return None
        rng = self.rng
        leg_pain = rng.choice((0, 0, 1, 2, 3, 3, 4, 5, 6, 7))
        body: dict[str, Any] = {
            "client_id": secrets.token_hex(16),
            "log_date": log_date.isoformat(),
            "back_pain": rng.randint(0, 8),
            "leg_pain": leg_pain,
            "leg_side": rng.choice(SIDES) if leg_pain > 0 else None,
            "red_flags": [rng.choice(RED_FLAGS)] if rng.random() < 0.005 else [],
            "exercises": [
                {
                    "prescription_id": pid,
                    "done": done,
                    "sets_done": rng.randint(1, 3) if done else 0,
                    "reps_done": rng.randint(5, 12) if done else 0,
                }
                for pid in rng.sample(patient.prescriptions, rng.choice((2, 3)))
                for done in (rng.random() < 0.85,)
            ],
            "note": rng.choice(NOTES),
        }
        if rng.random() < 0.2:
            body["pain_location"] = "buttock"
        return patient, body

    def next_request(self) -> bytes | None:
        if self.exhausted:
            return None
        planned = self.body(self.next_seq)
        if planned is None:
            self.exhausted = True
            return None
        self.next_seq += 1
        patient, body = planned
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST /api/v1/patients/{patient.id}/logs HTTP/1.1\r\n"
            f"Host: {self.host}\r\n"
            f"User-Agent: rehab-bench\r\n"
            f"Authorization: Bearer {patient.token}\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LoadStats:
    window_start: float = 0.0
    window_end: float = 0.0
    ok_total: int = 0
    errors_total: int = 0
    ok_window: int = 0
    errors_window: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    cpu_marks: dict[str, Any] = field(default_factory=dict)

    def record(self, status: int, sent: float, received: float, sample: bytes = b"") -> None:
        key = str(status)
        self.status_counts[key] = self.status_counts.get(key, 0) + 1
        ok = 200 <= status < 300
        in_window = self.window_start <= received <= self.window_end
        if ok:
            self.ok_total += 1
        else:
            self.errors_total += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{status}: {sample[:300]!r}")
        if in_window:
            if ok:
                self.ok_window += 1
            else:
                self.errors_window += 1
            self.latencies_ms.append((received - sent) * 1000.0)

    def mark(self, name: str) -> None:
        self.cpu_marks[name] = (time.perf_counter(), _self_cpu(), _cpu_jiffies())


class _Client(asyncio.Protocol):
    """One keep-alive connection sending one request at a time until the deadline."""

    def __init__(self, plan: LogPlan, stats: LoadStats, deadline: float) -> None:
        self.plan = plan
        self.stats = stats
        self.deadline = deadline
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.sent_at = 0.0
        self.in_flight = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send_next()

    def _send_next(self) -> None:
        assert self.transport is not None
        request = None
        if time.perf_counter() < self.deadline:
            request = self.plan.next_request()
        if request is None:
            self.transport.close()
            return
        self.in_flight = True
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = self.buffer[end + 4 : total]
        self.buffer = self.buffer[total:]
        self.in_flight = False
        self.stats.record(status, self.sent_at, time.perf_counter(), body)
        if close:
            # The server ends the connection: connection_lost() lets the caller reconnect.
            assert self.transport is not None
            self.transport.close()
            return
        self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.in_flight = False
            now = time.perf_counter()
            self.stats.record(0, self.sent_at, now, f"connection lost: {exc}".encode())
        if not self.done.done():
            self.done.set_result(None)


async def _run_connection(
    host: str, port: int, plan: LogPlan, stats: LoadStats, deadline: float
) -> None:
    loop = asyncio.get_running_loop()
    while time.perf_counter() < deadline and not plan.exhausted:
        client = _Client(plan, stats, deadline)
        try:
            await loop.create_connection(lambda c=client: c, host, port)  # type: ignore[misc]
        except OSError as exc:
            stats.record(0, time.perf_counter(), time.perf_counter(), str(exc).encode())
            await asyncio.sleep(0.05)
            continue
        await client.done
        if client.transport is not None and not client.transport.is_closing():
            client.transport.close()


async def generate_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `connections` keep-alive clients for warmup + seconds; return the figures."""
    patients = [PatientSlot(**p) for p in spec["patients"]]
    host, port = spec["host"], int(spec["port"])
    plan = LogPlan(patients, spec["last_day"], f"{host}:{port}", seed=int(spec.get("seed", 1)))
    stats = LoadStats()
    start = time.perf_counter()
    stats.window_start = start + float(spec["warmup"])
    stats.window_end = stats.window_start + float(spec["seconds"])
    loop = asyncio.get_running_loop()
    loop.call_at(loop.time() + float(spec["warmup"]), stats.mark, "start")
    loop.call_at(loop.time() + float(spec["warmup"]) + float(spec["seconds"]), stats.mark, "end")
    await asyncio.gather(
        *(
            _run_connection(host, port, plan, stats, stats.window_end)
            for _ in range(int(spec["connections"]))
        )
    )
    return summarize(
        stats, float(spec["seconds"]), requests_planned=plan.next_seq, exhausted=plan.exhausted
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarize(
    stats: LoadStats, seconds: float, *, requests_planned: int, exhausted: bool
) -> dict[str, Any]:
    marks = stats.cpu_marks
    client_cpu = machine_cpu = math.nan
    if "start" in marks and "end" in marks:
        (t0, c0, (b0, all0)), (t1, c1, (b1, all1)) = marks["start"], marks["end"]
        client_cpu = 100.0 * (c1 - c0) / max(t1 - t0, 1e-9)
        machine_cpu = 100.0 * (b1 - b0) / max(all1 - all0, 1)
    lat = stats.latencies_ms
    return {
        "ok_total": stats.ok_total,
        "errors_total": stats.errors_total,
        "ok_window": stats.ok_window,
        "errors_window": stats.errors_window,
        "seconds": seconds,
        "rate": stats.ok_window / seconds,
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else math.nan,
        "status_counts": stats.status_counts,
        "error_samples": stats.error_samples,
        "client_cpu_pct": client_cpu,
        "machine_cpu_pct": machine_cpu,
        "requests_sent": requests_planned,
        "plan_exhausted": exhausted,
    }


def loadgen_main(argv: list[str]) -> int:
    """`python -m bench.ingest loadgen SPEC.json OUT.json`."""
    spec = json.loads(Path(argv[0]).read_text())
    result = asyncio.run(generate_load(spec))
    Path(argv[1]).write_text(json.dumps(result))
    return 0


# --- the orchestrator -----------------------------------------------------------------------


@dataclass
class IngestOptions:
    seconds: float = 20.0
    warmup: float = 3.0
    clients: int = 16
    database_url: str | None = None
    workers: int | None = None
    threads: int | None = None
    quick: bool = False
    results_path: Path | None = RESULTS_PATH
    command: str = "rehab bench ingest"

    @classmethod
    def quick_form(cls, **overrides: Any) -> IngestOptions:
        options = cls(seconds=3.0, warmup=0.5, quick=True, results_path=None)
        for name, value in overrides.items():
            setattr(options, name, value)
        return options


@dataclass
class TargetResult:
    name: str
    what: str
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    ok_window: int
    ok_total: int
    seconds: float
    client_cpu_pct: float = math.nan
    machine_cpu_pct: float = math.nan
    stored: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestReport:
    ours: TargetResult
    bare: TargetResult
    raw: TargetResult
    lost: int
    duplicates: int
    checks: list[str]
    problems: list[str]
    machine: str
    load_before: str
    date: str
    server: str
    statements: str
    options: dict[str, Any]

    @property
    def ratio_bare(self) -> float:
        return self.ours.rate / self.bare.rate if self.bare.rate else math.nan

    @property
    def ratio_raw(self) -> float:
        return self.ours.rate / self.raw.rate if self.raw.rate else math.nan

    @property
    def ok(self) -> bool:
        return not self.problems

    def markdown(self) -> str:
        o = self.options
        lines = [
            f"## {SECTION_TITLE}",
            "",
            f"Measured {self.date} on {self.machine}; load average {self.load_before} when "
            "the run started (other work on the machine moves the figures; the ratios come "
            "from one run).",
            f"Command: `{o['command']}` — {o['clients']} concurrent keep-alive clients, "
            f"{o['warmup']:g} s warm-up then {o['seconds']:g} s measured per target, "
            "targets one after the other on the same database.",
            f"Server: {self.server}.",
            "Client: one asyncio process (stdlib only) with one keep-alive connection per client "
            "and one request in flight on each, the same for both HTTP targets; every request a "
            "new log (distinct patient and day, 2–3 exercise entries, random pains). It stops at "
            "the deadline and waits for the answers in flight, so every request has an outcome.",
            "",
            "| target | what it does per request | req/s | p50 ms | p99 ms | errors |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for t in (self.ours, self.bare, self.raw):
            lines.append(
                f"| {t.name} | {t.what} | {t.rate:,.0f} | {t.p50_ms:.1f} | {t.p99_ms:.1f} "
                f"| {t.errors} |"
            )
        lines += [
            "",
            f"**ours / bare Flask = {self.ratio_bare:.0%}**, "
            f"**ours / raw psycopg = {self.ratio_raw:.0%}** (same run). "
            f"Target ≥ 50 % of bare with p99 ≤ 100 ms: "
            f"{'met' if self.ratio_bare >= 0.5 and self.ours.p99_ms <= 100 else 'NOT met'}.",
            "",
            f"Statements per log: {self.statements}.",
            "",
            "Checks after the run: " + "; ".join(self.checks) + ".",
        ]
        if self.problems:
            lines += ["", "**Problems:** " + "; ".join(self.problems) + "."]
        lines += [
            "",
            "CPU during the measured window (whole machine busy / load generator's share of "
            "one core): "
            + ", ".join(
                f"{t.name} {t.machine_cpu_pct:.0f} % / {t.client_cpu_pct:.0f} %"
                for t in (self.ours, self.bare, self.raw)
            )
            + ". "
            + _cpu_sentence(self.ours, self.bare)
            + " req/s counts 2xx answers received in the window; p50/p99 are over those "
            "requests; errors are non-2xx answers and failed connections over the whole run.",
            "",
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio_bare"] = self.ratio_bare
        data["ratio_raw"] = self.ratio_raw
        return data


def _cpu_sentence(ours: TargetResult, bare: TargetResult) -> str:
    """Where the CPU goes, per answered request (warm-up included), by process group."""
    parts = []
    for target in (ours, bare):
        cpu = target.details.get("cpu_ms") or {}
        if not cpu:
            return ""
        groups = " + ".join(f"{group} {ms:.2f}" for group, ms in cpu.items() if ms >= 0.005)
        parts.append(f"{target.name} {groups} = {sum(cpu.values()):.2f} ms")
    return "CPU per answered request, by process group: " + "; ".join(parts) + "."


class _Gunicorn:
    """gunicorn with the production config (plus the bench's bind and overrides)."""

    def __init__(
        self, name: str, app_spec: str, env: dict[str, str], workdir: Path, options: IngestOptions
    ) -> None:
        from rehab.devservers import free_port

        self.name = name
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONFIG),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--no-control-socket",
        ]
        if options.workers:
            cmd += ["--workers", str(options.workers)]
        if options.threads:
            cmd += ["--threads", str(options.threads)]
        cmd.append(app_spec)
        self.stdout_path = workdir / f"{name}.access.log"
        self.stderr_path = workdir / f"{name}.error.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                cmd, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=err, start_new_session=True
            )

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn ({self.name}) exited: {self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn ({self.name}) not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self) -> str:
        try:
            return self.stderr_path.read_text()[-1500:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _run_loadgen(spec: dict[str, Any], workdir: Path, name: str) -> dict[str, Any]:
    spec_path, out_path = workdir / f"{name}.spec.json", workdir / f"{name}.result.json"
    spec_path.write_text(json.dumps(spec))
    timeout = float(spec["warmup"]) + float(spec["seconds"]) + 120
    subprocess.run(
        [sys.executable, "-m", "bench.ingest", "loadgen", str(spec_path), str(out_path)],
        cwd=PROJECT_ROOT,
        check=True,
        timeout=timeout,
    )
    result: dict[str, Any] = json.loads(out_path.read_text())
    return result


@dataclass
class _Clinic:
    patients: list[PatientSlot]
    probe: PatientSlot
    last_day: str


def build_bench_clinic(database_url: str, patients: int, days_back: int) -> _Clinic:
    """A care team, a clinician and `patients` + 1 patients (the last one for the statement
    probe), each with a program that started `days_back` days ago and an API token."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from rehab.db.models import CareTeam, CareTeamMember, Exercise
    from rehab.domain.vocabulary import Role
    from rehab.services import accounts
    from rehab.services.commands import PatientInput, PrescriptionInput, ProgramInput
    from rehab.services.library import seed_exercise_library
    from rehab.services.programs import create_program
    from rehab.services.time import clinic_today

    run = secrets.token_hex(4)
    today = clinic_today()
    start = today - dt.timedelta(days=days_back)
    engine = sa.create_engine(database_url)
    slots: list[PatientSlot] = []
    try:
        with Session(engine) as session:
            seed_exercise_library(session)
            team = CareTeam(name=f"Bench team {run}")
            session.add(team)
            clinician = accounts.create_staff_user(
                session,
                f"bench-clinician-{run}@clinic.test",
                "Bench Clinician",
                Role.CLINICIAN,
                None,
            )
            assert clinician.clinician is not None
            session.add(CareTeamMember(care_team=team, clinician=clinician.clinician))
            session.commit()
            actor = accounts.actor_for(clinician)
            exercises = list(session.scalars(sa.select(Exercise).order_by(Exercise.id).limit(3)))
            secret = secrets.token_hex(32)
            for n in range(patients + 1):
                new = accounts.create_patient(
                    session,
                    actor,
                    PatientInput(
                        display_name=f"Bench Patient {n}",
                        email=f"bench-{run}-{n}@patient.test",
                        care_team_id=team.id,
                        condition_summary="Low back pain",
                    ),
                    secret,
                )
                program = create_program(
                    session,
                    actor,
                    new.patient.id,
                    ProgramInput(
                        title="Lumbar stabilisation",
                        start_date=start,
                        prescriptions=[
                            PrescriptionInput(exercise_id=e.id, sets=3, reps=10) for e in exercises
                        ],
                    ),
                )
                _, token = accounts.issue_api_token(session, new.patient.user, "bench device")
                slots.append(
                    PatientSlot(
                        id=new.patient.id,
                        token=token,
                        prescriptions=[p.id for p in program.prescriptions],
                        start=start.isoformat(),
                    )
                )
                session.commit()
    finally:
        engine.dispose()
    return _Clinic(patients=slots[:-1], probe=slots[-1], last_day=today.isoformat())


def _psycopg_dsn(database_url: str) -> str:
    import sqlalchemy as sa

    url = sa.engine.make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


RAW_TABLE_SQL = f"""
CREATE TABLE {BENCH_SCHEMA}.raw_rows (
    id bigserial PRIMARY KEY,
    patient_id integer NOT NULL,
    log_date date NOT NULL,
    client_id varchar(64) NOT NULL,
    back_pain smallint NOT NULL,
    leg_pain smallint NOT NULL,
    created_at timestamptz NOT NULL
)
"""


def prepare_reference_tables(database_url: str) -> None:
    import psycopg
    import sqlalchemy as sa

    from bench.bare_app import metadata

    with psycopg.connect(_psycopg_dsn(database_url), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {BENCH_SCHEMA}")
        conn.execute(RAW_TABLE_SQL)
    engine = sa.create_engine(database_url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def run_raw(database_url: str, clients: int, warmup: float, seconds: float) -> TargetResult:
    """`clients` threads, each on its own connection: single-row INSERT + COMMIT in a loop."""
    import psycopg

    dsn = _psycopg_dsn(database_url)
    stats = LoadStats()
    lock = threading.Lock()
    start = time.perf_counter() + 0.5  # let every thread connect first
    stats.window_start = start + warmup
    stats.window_end = stats.window_start + seconds
    barrier = threading.Barrier(clients + 1)
    failures: list[str] = []

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            conn = psycopg.connect(dsn)
        except psycopg.Error as exc:
            failures.append(str(exc))
            barrier.wait()
            return
        barrier.wait()
        day = dt.date(2020, 1, 1)
        try:
            while (sent := time.perf_counter()) < stats.window_end:
                try:
                    conn.execute(
                        f"INSERT INTO {BENCH_SCHEMA}.raw_rows (patient_id, log_date, client_id,"
                        " back_pain, leg_pain, created_at) VALUES (%s, %s, %s, %s, %s, now())",
                        (n, day, secrets.token_hex(16), rng.randint(0, 10), rng.randint(0, 10)),
                    )
                    conn.commit()
                    status = 200
                except psycopg.Error as exc:
                    conn.rollback()
                    status = 0
                    failures.append(type(exc).__name__)
                with lock:
                    stats.record(status, sent, time.perf_counter())
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    _sleep_until(stats.window_start)
    stats.mark("start")
    _sleep_until(stats.window_end)
    stats.mark("end")
    for thread in threads:
        thread.join(60)
    figures = summarize(stats, seconds, requests_planned=0, exhausted=False)
    stored = _scalar(database_url, f"SELECT count(*) FROM {BENCH_SCHEMA}.raw_rows")
    return TargetResult(
        name="raw psycopg",
        what=f"{clients} threads, single-row INSERT + COMMIT, one connection each",
        rate=figures["rate"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        errors=figures["errors_total"],
        ok_window=figures["ok_window"],
        ok_total=figures["ok_total"],
        seconds=seconds,
        client_cpu_pct=figures["client_cpu_pct"],
        machine_cpu_pct=figures["machine_cpu_pct"],
        stored=stored,
        details={"failures": failures[:5]},
    )


def _sleep_until(moment: float) -> None:
    while (left := moment - time.perf_counter()) > 0:
        time.sleep(min(left, 0.5))


def _scalar(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    first = _column(database_url, sql, params)[:1]
    return int(first[0]) if first else 0


def _column(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    import psycopg

    with psycopg.connect(_psycopg_dsn(database_url), autocommit=True) as conn:
        return [row[0] for row in conn.execute(sql, params)]


def _checkpoint(database_url: str) -> None:
    import psycopg

    # Each target starts with the WAL flushed and no checkpoint pending.
    with psycopg.connect(_psycopg_dsn(database_url), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        conn.execute("VACUUM ANALYZE")


def _http_result(name: str, what: str, figures: dict[str, Any], stored: int) -> TargetResult:
    return TargetResult(
        name=name,
        what=what,
        rate=figures["rate"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        errors=figures["errors_total"],
        ok_window=figures["ok_window"],
        ok_total=figures["ok_total"],
        seconds=figures["seconds"],
        client_cpu_pct=figures["client_cpu_pct"],
        machine_cpu_pct=figures["machine_cpu_pct"],
        stored=stored,
        details={
            k: figures[k]
            for k in (
                "status_counts",
                "error_samples",
                "p90_ms",
                "max_ms",
                "plan_exhausted",
                "cpu_ms",
            )
        },
    )


def count_statements(app_overrides: dict[str, Any], probe: PatientSlot, last_day: str) -> str:
    """POST logs through the app in this process and count what each sends to the database:
    the first use of a token also records its last use (an UPDATE, at most once a minute);
    the second log is the steady state the benchmark measures."""
    import sqlalchemy as sa
    from sqlalchemy import event

    from rehab import create_app
    from rehab.extensions import db

    app = create_app(app_overrides)
    plan = LogPlan([probe], last_day, "localhost")
    client = app.test_client()
    counts: list[dict[str, int]] = []
    with app.app_context():
        engine: sa.Engine = db.engine
    pre_ping = bool(getattr(engine.pool, "_pre_ping", False))
    try:
        for seq in range(2):
            planned = plan.body(seq)
            assert planned is not None
            count = {"statements": 0, "commits": 0}
            counts.append(count)

            def on_execute(*_: Any, count: dict[str, int] = count) -> None:
                count["statements"] += 1

            def on_commit(*_: Any, count: dict[str, int] = count) -> None:
                count["commits"] += 1

            event.listen(engine, "before_cursor_execute", on_execute)
            event.listen(engine, "commit", on_commit)
            try:
                response = client.post(
                    f"/api/v1/patients/{probe.id}/logs",
                    json=planned[1],
                    headers={"Authorization": f"Bearer {probe.token}"},
                )
            finally:
                event.remove(engine, "before_cursor_execute", on_execute)
                event.remove(engine, "commit", on_commit)
            if response.status_code != 201:
                raise RuntimeError(f"probe log: {response.status_code} {response.get_data()!r}")
    finally:
        engine.dispose()
    first, steady = counts
    text = (
        f"{steady['statements']} SQL statements and {steady['commits']} COMMIT per new log "
        f"({first['statements']} on a token's first use in a minute, which records it)"
    )
    if pre_ping:
        text += ", plus the connection pool's pre-ping when a request checks out a connection"
    return text


@dataclass
class _Servers:
    database_url: str
    redis_url: str
    description: str
    postgres_pid: int | None  # the postmaster, when this run started PostgreSQL
    redis_pid: int


@contextlib.contextmanager
def _servers(options: IngestOptions) -> Iterator[_Servers]:
    """PostgreSQL (unless --database-url) and Redis for the run, stopped on exit."""
    import psycopg

    from rehab.devservers import start_redis

    stack = contextlib.ExitStack()
    with stack:
        database = bench_database(stack, options.database_url)
        url, durability, postgres_pid = database.url, database.durability, database.postgres_pid
        redis = start_redis()
        stack.callback(redis.close)
        with psycopg.connect(_psycopg_dsn(url), autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        version = f"PostgreSQL {row[0] if row else '?'} ({durability})"
        yield _Servers(url, redis.url, version, postgres_pid, redis.process.pid)


def _children(ppid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                found.append(int(stat.parent.name))
    return found


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes (those gone are not counted)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _reaped_seconds(pid: int) -> float:
    """User + system CPU of the process's children that have exited and been waited for."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return 0.0


class _CpuMeter:
    """CPU used by groups of processes between start() and stop(), e.g. gunicorn's workers and
    PostgreSQL's backends (children of their master process), counted per process.

    A group may name the parent of its members (`reaped_by`): a member that exits in between
    (an autovacuum worker, a backend, a recycled gunicorn worker) is then counted from what
    the parent reaped — its lifetime less what it had used at start() — instead of lost."""

    def __init__(
        self,
        groups: dict[str, Callable[[], list[int]]],
        reaped_by: dict[str, int] | None = None,
    ) -> None:
        self.groups = groups
        self.reaped_by = reaped_by or {}
        self.before: dict[str, dict[int, float]] = {}
        self.reaped_before: dict[str, float] = {}

    def _snapshot(self) -> dict[str, dict[int, float]]:
        return {
            name: {pid: _cpu_seconds([pid]) for pid in pids()} for name, pids in self.groups.items()
        }

    def _reaped(self) -> dict[str, float]:
        return {name: _reaped_seconds(parent) for name, parent in self.reaped_by.items()}

    def start(self) -> None:
        self.before = self._snapshot()
        self.reaped_before = self._reaped()

    def stop(self) -> dict[str, float]:
        after, reaped = self._snapshot(), self._reaped()
        used = {}
        for name in self.groups:
            before = self.before[name]
            running = sum(cpu - before.get(pid, 0.0) for pid, cpu in after[name].items())
            if name in self.reaped_by:
                gone = sum(cpu for pid, cpu in before.items() if pid not in after[name])
                running += max(reaped[name] - self.reaped_before[name] - gone, 0.0)
            used[name] = running
        return used


def _gunicorn_settings(options: IngestOptions) -> str:
    import runpy

    conf = runpy.run_path(str(GUNICORN_CONFIG))
    workers = options.workers or conf["workers"]
    threads = options.threads or conf["threads"]
    return (
        f"gunicorn `config/gunicorn.conf.py` ({conf['worker_class']}, {workers} workers × "
        f"{threads} threads, keep-alive {conf['keepalive']} s, access log on)"
    )


def run_ingest(options: IngestOptions, echo: Callable[[str], None] = print) -> IngestReport:
    """Set everything up, measure raw, bare and ours, verify, report (and write RESULTS.md)."""
    from rehab import migrate

    days_back = 365
    expected = 3000.0 * (options.warmup + options.seconds)
    patients = max(100 if not options.quick else 40, math.ceil(expected / (days_back + 1)))
    load_before = load_average() + " (1 / 5 / 15 min)"
    with (
        tempfile.TemporaryDirectory(prefix="rehab-bench-") as tmp,
        _servers(options) as servers,
    ):
        database_url, redis_url, pg_version = (
            servers.database_url,
            servers.redis_url,
            servers.description,
        )
        workdir = Path(tmp)
        echo(f"database: {pg_version}; migrating")
        migrate.upgrade(database_url)
        echo(f"creating the clinic: {patients} patients, programs from {days_back} days ago")
        clinic = build_bench_clinic(database_url, patients, days_back)
        prepare_reference_tables(database_url)
        patient_ids = [p.id for p in clinic.patients]
        secret_key = secrets.token_hex(32)
        app_env = {
            "REHAB_MODE": "production",
            "REHAB_SECRET_KEY": secret_key,
            "REHAB_DATABASE_URL": database_url,
            "REHAB_BROKER_URL": redis_url,
            "REHAB_INSTANCE_PATH": str(workdir / "instance"),
            "REHAB_OUTBOX_IN_PRODUCTION": "true",  # no SMTP: the bench sends no e-mail
        }
        statements = count_statements(
            {
                "mode": "production",
                "secret_key": secret_key,
                "database_url": database_url,
                "broker_url": redis_url,
                "instance_path": workdir / "instance",
                "outbox_in_production": True,
            },
            clinic.probe,
            clinic.last_day,
        )
        echo(f"statements: {statements}")
        messages_before, _ = _queued_evaluations(redis_url)
        spec_base = {
            "host": "127.0.0.1",
            "connections": options.clients,
            "warmup": options.warmup,
            "seconds": options.seconds,
            "patients": [asdict(p) for p in clinic.patients],
            "last_day": clinic.last_day,
        }
        env = {**os.environ, **app_env, "BENCH_DATABASE_URL": database_url}
        env.pop("GUNICORN_CMD_ARGS", None)

        _checkpoint(database_url)
        echo(f"raw psycopg: {options.clients} threads, {options.seconds:g} s")
        raw = run_raw(database_url, options.clients, options.warmup, options.seconds)
        echo(_line(raw))

        _checkpoint(database_url)
        bare_figures = _http_target(
            "bare",
            "bench.bare_app:create_app()",
            "/healthz",
            env,
            workdir,
            options,
            spec_base,
            servers,
            echo,
        )
        bare = _http_result(
            "bare Flask",
            "parse JSON, one INSERT with SQLAlchemy Core, COMMIT",
            bare_figures,
            _scalar(database_url, f"SELECT count(*) FROM {BENCH_SCHEMA}.bare_rows"),
        )
        echo(_line(bare))

        _checkpoint(database_url)
        ours_started = dt.datetime.now(dt.UTC)
        ours_figures = _http_target(
            "ours",
            "rehab:create_app()",
            "/api/v1/openapi.json",
            env,
            workdir,
            options,
            spec_base,
            servers,
            echo,
        )
        stored = _scalar(
            database_url,
            "SELECT count(*) FROM session_logs WHERE patient_id = ANY(%s)",
            (patient_ids,),
        )
        ours = _http_result(
            "ours",
            "bearer token, pydantic validation, idempotency by client id, access check, log + "
            "exercise entries + audit row in one transaction; after commit, the patient's "
            "evaluation request, gathered with others for 20 ms into one Celery task to Redis",
            ours_figures,
            stored,
        )
        echo(_line(ours))

        checks, problems = [], []
        distinct = _scalar(
            database_url,
            "SELECT count(DISTINCT client_id) FROM session_logs WHERE patient_id = ANY(%s)",
            (patient_ids,),
        )
        audited = _scalar(
            database_url,
            "SELECT count(*) FROM audit_events WHERE action = 'session_log.write'"
            " AND outcome = 'allowed' AND patient_id = ANY(%s)",
            (patient_ids,),
        )
        messages, queued_ids = _queued_evaluations(redis_url)
        messages -= messages_before
        logged_patients = {
            int(i)
            for i in _column(
                database_url,
                "SELECT DISTINCT patient_id FROM session_logs WHERE patient_id = ANY(%s)"
                " AND created_at >= %s",
                (patient_ids, ours_started),
            )
        }
        not_queued = logged_patients - queued_ids
        lost = max(ours.ok_total - stored, 0)
        duplicates = stored - distinct
        for target in (ours, bare, raw):
            verdict = "=" if target.stored == target.ok_total else "≠"
            checks.append(
                f"{target.name}: {target.stored:,} rows stored {verdict} "
                f"{target.ok_total:,} acknowledged"
            )
            if target.stored != target.ok_total:
                problems.append(
                    f"{target.name}: {target.stored} rows for {target.ok_total} acknowledged"
                )
            if target.errors:
                problems.append(
                    f"{target.name}: {target.errors} errors "
                    f"{target.details.get('error_samples', '')}"
                )
        checks.append(
            f"ours: {distinct:,} distinct client ids, {audited:,} audit rows, "
            f"{messages:,} evaluation tasks queued in Redis ({stored / max(messages, 1):.1f} logs"
            f" per task) covering all {len(logged_patients) - len(not_queued):,} patients"
            " logged for"
        )
        if duplicates:
            problems.append(f"ours: {duplicates} duplicate logs")
        if audited != stored:
            problems.append(f"ours: {audited} audit rows for {stored} logs")
        if not_queued:
            problems.append(f"ours: {len(not_queued)} patients logged for but never queued")
        for target in (ours, bare):
            if target.details.get("plan_exhausted"):
                problems.append(f"{target.name}: ran out of (patient, day) slots")

        report = IngestReport(
            ours=ours,
            bare=bare,
            raw=raw,
            lost=lost,
            duplicates=duplicates,
            checks=checks,
            problems=problems,
            machine=machine_description(),
            load_before=load_before,
            date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            server=f"{_gunicorn_settings(options)}; {pg_version}; Redis broker (no worker)",
            statements=statements,
            options={
                "command": options.command,
                "clients": options.clients,
                "warmup": options.warmup,
                "seconds": options.seconds,
            },
        )
    if options.results_path is not None:
        write_section(options.results_path, SECTION_TITLE, report.markdown())
    return report


def _queued_evaluations(redis_url: str) -> tuple[int, set[int]]:
    """The evaluation tasks waiting in Redis (no worker runs) and the patient ids they carry."""
    import redis

    from rehab.services.broker import decode_kombu_message
    from rehab.services.dispatch import GATHERED_TASKS
    from rehab.services.logs import EVALUATE_PATIENT_TASK

    batch_task = GATHERED_TASKS[EVALUATE_PATIENT_TASK]

    client = redis.Redis.from_url(redis_url)
    try:
        messages = client.lrange("celery", 0, -1)
    finally:
        client.close()
    count, ids = 0, set[int]()
    for raw in messages:  # type: ignore[union-attr]
        envelope, body = decode_kombu_message(raw)
        if envelope["headers"]["task"] != batch_task:
            continue
        args = json.loads(body)[0]
        count += 1
        ids.update(int(i) for i in args[0])
    return count, ids


def _http_target(
    name: str,
    app_spec: str,
    ready_path: str,
    env: dict[str, str],
    workdir: Path,
    options: IngestOptions,
    spec_base: dict[str, Any],
    servers: _Servers,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    server = _Gunicorn(name, app_spec, env, workdir, options)
    try:
        server.wait_ready(ready_path)
        echo(
            f"{name}: gunicorn on port {server.port}, {options.clients} clients, "
            f"{options.seconds:g} s"
        )
        groups: dict[str, Callable[[], list[int]]] = {
            "web": lambda: _children(server.process.pid),
            "Redis": lambda: [servers.redis_pid],
        }
        reaped_by = {"web": server.process.pid}
        if servers.postgres_pid is not None:
            postgres_pid = servers.postgres_pid
            groups["PostgreSQL"] = lambda: _children(postgres_pid)
            reaped_by["PostgreSQL"] = postgres_pid
        meter = _CpuMeter(groups, reaped_by)
        meter.start()
        figures = _run_loadgen({**spec_base, "port": server.port}, workdir, name)
        used = meter.stop()
        answered = max(figures["ok_total"] + figures["errors_total"], 1)
        # Over warm-up and window alike: CPU per answered request, in ms.
        figures["cpu_ms"] = {group: 1000.0 * cpu / answered for group, cpu in used.items()}
        return figures
    finally:
        server.stop()


def _line(t: TargetResult) -> str:
    return (
        f"  {t.name}: {t.rate:,.0f}/s  p50 {t.p50_ms:.1f} ms  p99 {t.p99_ms:.1f} ms  "
        f"errors {t.errors}  stored {t.stored:,}/{t.ok_total:,}  "
        f"cpu {t.machine_cpu_pct:.0f} % (client {t.client_cpu_pct:.0f} %)"
    )


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "loadgen":
        sys.exit(loadgen_main(sys.argv[2:]))
    sys.exit("usage: python -m bench.ingest loadgen SPEC.json OUT.json (or: rehab bench ingest)")
