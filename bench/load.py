"""`rehab bench load`: the highest request rate the box sustains with p95 ≤ 300 ms and no error,
for a mix of patient logging and clinician page views.

- Server: `rehab:create_app()` under gunicorn (`config/gunicorn.conf.py`), production mode,
  a durable PostgreSQL (fsync on) and Redis, all on this machine; with one Celery worker
  (`--worker`, the default: it evaluates every new log, as in production) or none.
  Two-factor login is turned off for the run (`REHAB_TOTP_REQUIRED=false`): the load
  generator logs its clinicians in with a password, once, before the measurement.
- Clinic: `--patients` patients in care teams of `--patients / --teams`, each team with
  `--clinicians / --teams` clinicians; every patient has a program with 3 exercises and
  `--history-days` days of logs (≈ 90 % of days, with exercise entries), a fall for one in
  ten, and whatever alerts the detector finds in that history (evaluated once at set-up).
- Mix: 70 % `POST /api/v1/patients/{id}/logs` (bearer token; each a new log for a (patient,
  day) not logged yet — the days before the history, so nothing conflicts), 20 % the
  clinician's caseload `/clinic/`, 10 % a patient's trajectory `/clinic/patients/{id}` (a
  patient of that clinician's team), pages with the clinician's session cookie.
- Load: open loop. Requests arrive as a Poisson process at the offered rate whatever the
  answers; each goes out on an idle keep-alive connection or a new one, so a slow server
  meets more concurrent requests, not fewer. Latency runs from the request's scheduled
  arrival to the last byte of the answer (no coordinated omission). Each step lasts
  `--seconds`; after it the generator waits for every answer, then the next, higher rate
  starts. A step that misses the target is run once more (the machine is shared: someone
  else's burst can spoil one step); the run stops at a rate missed twice.
- Target per step: p95 ≤ 300 ms for every request type and no error (non-2xx answer, failed
  connection or timeout). The sustainable rate is the highest rate met (first time or on its
  repeat) with every lower rate met too.

The load generator is a separate asyncio process (`python -m bench.load loadgen SPEC OUT`),
stdlib only at this module's top, one process per step.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from bench.ingest import PROJECT_ROOT, LogPlan, PatientSlot, percentile
from bench.results import (
    RESULTS_PATH,
    database_url_option,
    json_option,
    load_average,
    machine_description,
    results_option,
    write_section,
)

SECTION_TITLE = "Load (rehab bench load)"
KINDS = ("log", "caseload", "patient")
MIX = {"log": 0.70, "caseload": 0.20, "patient": 0.10}
TARGET_P95_MS = 300.0
PASSWORD = "bench-load-clinician-password"
REQUEST_TIMEOUT = 30.0  # gunicorn's own timeout
MAX_CONNECTIONS = 512
IDLE_REUSE_SECONDS = 3.0  # gunicorn closes idle keep-alive connections after 5 s
DEFAULT_RATES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120, 140)
QUICK_RATES = (4, 8)

Echo = Callable[[str], None]


# --- the load generator (own process) -------------------------------------------------------


@dataclass(frozen=True)
class ClinicianSlot:
    cookie: str  # "session=..." as the browser would send it
    patient_ids: list[int]


class RequestMaker:
    """The mix: a new log 70 %, the caseload 20 %, a patient's page 10 %."""

    def __init__(self, spec: dict[str, Any], host: str) -> None:
        self.rng = random.Random(int(spec["seed"]))
        patients = [PatientSlot(**p) for p in spec["patients"]]
        self.plan = LogPlan(patients, spec["last_day"], host, seed=int(spec["seed"]))
        self.plan.next_seq = int(spec["first_seq"])
        self.clinicians = [ClinicianSlot(**c) for c in spec["clinicians"]]
        self.host = host

    def make(self) -> tuple[str, bytes]:
        draw = self.rng.random()
        if draw < MIX["log"]:
            request = self.plan.next_request()
            if request is not None:
                return "log", request
        clinician = self.rng.choice(self.clinicians)
        if draw < MIX["log"] + MIX["caseload"]:
            kind, path = "caseload", "/clinic/"
        else:
            kind, path = "patient", f"/clinic/patients/{self.rng.choice(clinician.patient_ids)}"
        head = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: rehab-bench\r\n"
            f"Accept: text/html\r\nCookie: {clinician.cookie}\r\n\r\n"
        )
        return kind, head.encode()


class _Connections:
    """Idle keep-alive connections, reused newest first; at most MAX_CONNECTIONS open."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self.opened = 0
        self.retried = 0

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < IDLE_REUSE_SECONDS and not writer.is_closing():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return reader, writer, False

    def release(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.idle.append((reader, writer, time.monotonic()))

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _read_body(reader: asyncio.StreamReader, head: str) -> tuple[int, bytes, bool]:
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if not chunked:
        return status, await reader.readexactly(length), close
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, body, close
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _exchange(connections: _Connections, request: bytes) -> tuple[int, bytes]:
    """One request, one answer. A reused connection the server closed meanwhile (keep-alive
    timeout) is retried once on a new one: a log carries its client id, so a retry cannot
    store it twice, and pages are reads."""
    for attempt in (1, 2):
        reader, writer, reused = await connections.acquire()
        try:
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            if reused and attempt == 1:
                connections.retried += 1
                continue
            raise
        try:
            status, body, close = await _read_body(reader, head)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            connections.release(reader, writer)
        return status, body
    raise ConnectionError("unreachable")


@dataclass
class _Outcome:
    kind: str
    status: int  # 0: no answer (connection failed, timeout)
    latency_ms: float
    done_at: float
    sample: str = ""


async def _one(connections: _Connections, kind: str, request: bytes, scheduled: float) -> _Outcome:
    loop = asyncio.get_running_loop()
    async with connections.slots:
        try:
            status, body = await asyncio.wait_for(_exchange(connections, request), REQUEST_TIMEOUT)
            sample = "" if 200 <= status < 300 else body[:200].decode("utf-8", "replace")
        except Exception as exc:  # no answer: refused, reset, timed out, unparsable
            status, sample = 0, f"{type(exc).__name__}: {exc}"[:200]
    done = loop.time()
    return _Outcome(kind, status, (done - scheduled) * 1000.0, done, sample)


def _machine_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_step(spec: dict[str, Any]) -> dict[str, Any]:
    """Offer `rate` requests/s for `seconds` (Poisson arrivals), then wait for every answer."""
    host, port = spec["host"], int(spec["port"])
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    maker = RequestMaker(spec, f"{host}:{port}")
    connections = _Connections(host, port)
    loop = asyncio.get_running_loop()
    arrivals = random.Random(int(spec["seed"]) * 7919)
    busy0, total0 = _machine_jiffies()
    cpu0 = _own_cpu()
    start = loop.time() + 0.1
    end = start + seconds
    moment = start
    tasks: list[asyncio.Task[_Outcome]] = []
    late = 0.0
    while True:
        moment += arrivals.expovariate(rate)
        if moment >= end:
            break
        delay = moment - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        kind, request = maker.make()
        tasks.append(asyncio.create_task(_one(connections, kind, request, moment)))
    outcomes = list(await asyncio.gather(*tasks))
    finished = loop.time()
    busy1, total1 = _machine_jiffies()
    cpu1 = _own_cpu()
    connections.close()
    result = summarize_step(outcomes, rate, seconds, start, finished)
    result.update(
        machine_cpu_pct=100.0 * (busy1 - busy0) / max(total1 - total0, 1),
        client_cpu_pct=100.0 * (cpu1 - cpu0) / max(finished - start, 1e-9),
        connections_opened=connections.opened,
        connections_retried=connections.retried,
        scheduler_lag_ms=late * 1000.0,
        next_seq=maker.plan.next_seq,
        plan_exhausted=maker.plan.exhausted,
    )
    return result


def summarize_step(
    outcomes: list[_Outcome], rate: float, seconds: float, start: float, finished: float
) -> dict[str, Any]:
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        mine = [o for o in outcomes if o.kind == kind]
        latencies = [o.latency_ms for o in mine]
        statuses: dict[str, int] = {}
        for o in mine:
            statuses[str(o.status)] = statuses.get(str(o.status), 0) + 1
        by_kind[kind] = {
            "requests": len(mine),
            "ok": sum(1 for o in mine if 200 <= o.status < 300),
            "errors": sum(1 for o in mine if not 200 <= o.status < 300),
            "status_counts": statuses,
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies) if latencies else math.nan,
        }
    latencies = [o.latency_ms for o in outcomes]
    ok = sum(1 for o in outcomes if 200 <= o.status < 300)
    errors = len(outcomes) - ok
    # Throughput: 2xx answers over the step, or over the time it took to answer them all
    # when the server fell behind.
    span = max(seconds, finished - start)
    return {
        "offered_rate": rate,
        "seconds": seconds,
        "sent": len(outcomes),
        "sent_rate": len(outcomes) / seconds,
        "ok": ok,
        "errors": errors,
        "server_errors": sum(1 for o in outcomes if o.status >= 500),
        "achieved_rate": ok / span,
        "drain_seconds": max(0.0, finished - start - seconds),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "by_kind": by_kind,
        "error_samples": [f"{o.kind} {o.status}: {o.sample}" for o in outcomes if o.sample][:5],
    }


def loadgen_main(argv: list[str]) -> int:
    """`python -m bench.load loadgen SPEC.json OUT.json`."""
    spec = json.loads(Path(argv[0]).read_text())
    result = asyncio.run(run_step(spec))
    Path(argv[1]).write_text(json.dumps(result))
    return 0


# --- the orchestrator -----------------------------------------------------------------------


@dataclass
class LoadOptions:
    rates: tuple[float, ...] = DEFAULT_RATES
    seconds: float = 20.0
    warmup: float = 5.0
    pause: float = 3.0
    patients: int = 200
    clinicians: int = 10
    teams: int = 5
    history_days: int = 90
    worker: bool = True
    database_url: str | None = None
    web_workers: int | None = None
    threads: int | None = None
    quick: bool = False
    results_path: Path | None = RESULTS_PATH
    command: str = "rehab bench load"

    @classmethod
    def quick_form(cls) -> LoadOptions:
        return cls(
            rates=QUICK_RATES,
            seconds=4.0,
            warmup=1.0,
            pause=1.0,
            patients=40,
            clinicians=4,
            teams=2,
            history_days=30,
            quick=True,
            results_path=None,
        )


@dataclass
class StepResult:
    offered_rate: float
    figures: dict[str, Any]
    cpu_seconds: dict[str, float]  # by process group, over the step
    queue_after: int | None  # Celery messages waiting in Redis after the step
    wall_seconds: float = math.nan  # the time over which cpu_seconds were measured
    attempt: int = 1  # 2: the step repeated after a miss

    @property
    def other_cores(self) -> float:
        """Cores busy with processes outside the benchmark during the step (the machine is
        shared): the machine's busy time less the server's groups and the load generator."""
        f = self.figures
        ours = sum(self.cpu_seconds.values()) / self.wall_seconds
        busy = f["machine_cpu_pct"] / 100.0 * (os.cpu_count() or 1)
        return max(0.0, busy - ours - f["client_cpu_pct"] / 100.0)

    @property
    def meets_target(self) -> bool:
        f = self.figures
        return f["errors"] == 0 and all(
            k["requests"] == 0 or k["p95_ms"] <= TARGET_P95_MS for k in f["by_kind"].values()
        )


@dataclass
class LoadReport:
    steps: list[StepResult]
    sustainable_rate: float | None
    checks: list[str]
    problems: list[str]
    machine: str
    load_before: str
    date: str
    server: str
    clinic: str
    options: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def server_errors(self) -> int:
        return sum(s.figures["server_errors"] for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["server_errors"] = self.server_errors
        for step, raw in zip(self.steps, data["steps"], strict=True):
            raw["meets_target"] = step.meets_target
        return data

    def markdown(self) -> str:
        o = self.options
        lines = [
            f"## {SECTION_TITLE}",
            "",
            f"Measured {self.date} on {self.machine}; load average {self.load_before} when the "
            "run started (other work on the machine moves the figures).",
            f"Command: `{o['command']}` — open-loop Poisson arrivals at each offered rate for "
            f"{o['seconds']:g} s (after a {o['warmup']:g} s warm-up at the first rate), then "
            "every answer awaited before the next rate; a rate that misses the target is run once "
            "more (shared machine), and the run stops at a rate missed twice.",
            f"Server: {self.server}.",
            f"Clinic: {self.clinic}.",
            "Mix: 70 % `POST /api/v1/patients/{id}/logs` (bearer token, a new log each: 2–3 "
            "exercise entries, for a day not logged yet), 20 % caseload `/clinic/`, 10 % "
            "trajectory `/clinic/patients/{id}` (a patient of the clinician's team), both with "
            "a logged-in clinician's session cookie. Latency: from the request's scheduled "
            "arrival to the last byte of the answer, in ms, as p50 / p95 / p99.",
            "",
            "| offered req/s | sent req/s | achieved req/s | log | caseload | patient page "
            "| all p95 | errors | machine CPU busy | of which other work (cores) "
            "| tasks queued after | p95 ≤ 300 ms, 0 errors |",
            "|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for step in self.steps:
            f = step.figures
            cells = [
                f"{step.offered_rate:g}" + (" (again)" if step.attempt > 1 else ""),
                f"{f['sent_rate']:.1f}",
                f"{f['achieved_rate']:.1f}",
                *(_triple(f["by_kind"][k]) for k in KINDS),
                f"{f['p95_ms']:.0f}",
                str(f["errors"]),
                f"{f['machine_cpu_pct']:.0f} %",
                f"{step.other_cores:.2f}",
                "–" if step.queue_after is None else f"{step.queue_after:,}",
                "yes" if step.meets_target else "no",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        rate = (
            f"**{self.sustainable_rate:g} requests/s**"
            if self.sustainable_rate is not None
            else "**none of the steps**"
        )
        lines += [
            "",
            f"Highest offered rate with p95 ≤ {TARGET_P95_MS:.0f} ms for every request type "
            f"and 0 errors, every lower rate meeting it too: {rate}"
            + (
                f" (≈ {0.7 * self.sustainable_rate:.0f} logs/s and "
                f"{0.3 * self.sustainable_rate:.0f} page views/s)."
                if self.sustainable_rate is not None
                else "."
            ),
            "",
            *self._interpretation(),
            "",
            "CPU over each step, in cores (2.0 = the whole machine), by process group, then "
            "the load generator, then everything else running on the machine meanwhile (other "
            "people's work: it competes for the same cores): "
            + "; ".join(f"{s.offered_rate:g}/s: {_cpu_text(s)}" for s in self.steps)
            + ".",
            "",
            "Checks after the run: " + "; ".join(self.checks) + ".",
        ]
        if self.problems:
            lines += ["", "**Problems:** " + "; ".join(self.problems) + "."]
        lines.append("")
        return "\n".join(lines)

    def _interpretation(self) -> list[str]:
        if not self.steps:
            return []
        other = sum(s.other_cores for s in self.steps) / len(self.steps)
        text = (
            f"The machine is shared: other work took {other:.2f} of its "
            f'{os.cpu_count() or 1} cores on average during the steps (column "other work"), '
            "so these rates are what the stack sustains on what was left, not on a dedicated "
            "box."
        )
        met = [s for s in self.steps if s.meets_target and s.offered_rate == self.sustainable_rate]
        if met:
            step = met[-1]
            ours = sum(step.cpu_seconds.values()) / step.wall_seconds
            per_request = 1000.0 * ours / max(step.figures["achieved_rate"], 1e-9)
            text += (
                f" At {step.offered_rate:g} req/s the stack (web, PostgreSQL, Redis, worker) "
                f"used {ours:.2f} cores: {per_request:.0f} ms of CPU per request of the mix."
            )
        return [text]


def _cpu_text(step: StepResult) -> str:
    f = step.figures
    ours = {g: cpu / step.wall_seconds for g, cpu in step.cpu_seconds.items()}
    client = f["client_cpu_pct"] / 100.0
    groups = ", ".join(f"{g} {cores:.2f}" for g, cores in ours.items())
    return f"{groups}, load generator {client:.2f}, other {step.other_cores:.2f}"


def _triple(kind: dict[str, Any]) -> str:
    if not kind["requests"]:
        return "–"
    return f"{kind['p50_ms']:.0f} / {kind['p95_ms']:.0f} / {kind['p99_ms']:.0f}"


def sustainable(steps: list[StepResult]) -> float | None:
    """The highest rate met with every lower rate met too; a rate counts as met when its
    step, or its one repeat after a miss, met the target."""
    met: dict[float, bool] = {}
    for step in steps:
        met[step.offered_rate] = met.get(step.offered_rate, False) or step.meets_target
    best = None
    for rate in sorted(met):
        if not met[rate]:
            break
        best = rate
    return best


@dataclass
class LoadClinic:
    patients: list[PatientSlot]
    teams: dict[int, list[int]]  # care team id -> patient ids
    clinicians: list[tuple[str, int]]  # (e-mail, care team id)
    last_day: str  # the last day new logs may use (the day before the history)
    logs: int
    alerts: int
    description: str = ""


def build_load_clinic(database_url: str, options: LoadOptions, echo: Echo) -> LoadClinic:
    """Care teams with clinicians (a password each) and patients (an API token each), every
    patient with a program of 3 exercises that started a year before the history, and
    `history_days` days of logs up to yesterday, about 90 % of days, with exercise entries."""
    import numpy as np
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from rehab.db.models import (
        ApiToken,
        CareTeam,
        CareTeamMember,
        Clinician,
        Event,
        Exercise,
        ExerciseEntry,
        Patient,
        Prescription,
        Program,
        SessionLog,
        User,
    )
    from rehab.domain.vocabulary import EventType, FallLocation, LandedOn, Role, Side
    from rehab.services.accounts import hash_password, token_hash
    from rehab.services.library import seed_exercise_library
    from rehab.services.time import clinic_today

    today = clinic_today()
    history_start = today - dt.timedelta(days=options.history_days)
    program_start = history_start - dt.timedelta(days=365)
    rng = np.random.default_rng(20261126)
    engine = sa.create_engine(database_url)
    password = hash_password(PASSWORD)
    slots: list[PatientSlot] = []
    teams: dict[int, list[int]] = {}
    clinicians: list[tuple[str, int]] = []
    logs = 0
    try:
        with Session(engine) as session:
            seed_exercise_library(session)
            exercises = list(session.scalars(sa.select(Exercise.id).order_by(Exercise.id).limit(3)))
            team_ids = []
            for t in range(options.teams):
                team = CareTeam(name=f"Load team {t + 1}")
                session.add(team)
                session.flush()
                team_ids.append(team.id)
                teams[team.id] = []
            for c in range(options.clinicians):
                team_id = team_ids[c % options.teams]
                email = f"clinician{c}@load.invalid"
                user = User(
                    email=email,
                    display_name=f"Clinician {c}",
                    role=Role.CLINICIAN,
                    password_hash=password,
                )
                user.clinician = Clinician()
                session.add(user)
                session.flush()
                assert user.clinician is not None
                session.add(CareTeamMember(care_team_id=team_id, clinician_id=user.clinician.id))
                clinicians.append((email, team_id))
            author = session.scalars(sa.select(User.id).where(User.role == Role.CLINICIAN)).first()
            days = [history_start + dt.timedelta(days=k) for k in range(options.history_days)]
            for n in range(options.patients):
                team_id = team_ids[n % options.teams]
                user = User(
                    email=f"patient{n}@load.invalid",
                    display_name=f"Patient {n:03d}",
                    role=Role.PATIENT,
                    password_hash=None,
                )
                user.patient = Patient(care_team_id=team_id, condition_summary="Low back pain")
                session.add(user)
                session.flush()
                patient = user.patient
                assert patient is not None
                program = Program(
                    patient_id=patient.id,
                    title="Lumbar stabilisation",
                    start_date=program_start,
                    created_by_user_id=author,
                )
                session.add(program)
                session.flush()
                prescriptions = [
                    Prescription(program_id=program.id, exercise_id=e, position=k, sets=3, reps=10)
                    for k, e in enumerate(exercises)
                ]
                session.add_all(prescriptions)
                clear = "rhb_" + secrets.token_urlsafe(32)
                session.add(
                    ApiToken(user_id=user.id, name="load phone", token_hash=token_hash(clear))
                )
                if n % 10 == 0:
                    session.add(
                        Event(
                            patient_id=patient.id,
                            event_date=today - dt.timedelta(days=int(rng.integers(5, 60))),
                            event_type=EventType.FALL,
                            side=Side.LEFT,
                            description="Slipped on stairs.",
                            fall_location=FallLocation.STAIRS,
                            fall_steps=5,
                            fall_landed_on=LandedOn.BUTTOCKS,
                            recorded_by_user_id=author,
                        )
                    )
                session.flush()
                logged = rng.random(len(days)) < 0.9
                level = rng.uniform(1.0, 4.0)
                noise = np.zeros(len(days))
                for i in range(1, len(days)):
                    noise[i] = 0.6 * noise[i - 1] + rng.normal(0, 0.95)
                leg = np.clip(np.rint(level + noise), 0, 10)
                back = np.clip(np.rint(level + 0.5 + noise[::-1]), 0, 10)
                rows = [
                    {
                        "patient_id": patient.id,
                        "log_date": day,
                        "client_id": f"load-{patient.id}-{day.isoformat()}",
                        "body_hash": hashlib.sha256(f"{patient.id}{day}".encode()).hexdigest(),
                        "back_pain": int(back[k]),
                        "leg_pain": int(leg[k]),
                        "leg_side": Side.LEFT if leg[k] > 0 else None,
                        "adherence": 1.0,
                        "source": "bench",
                    }
                    for k, day in enumerate(days)
                    if logged[k]
                ]
                log_ids = session.scalars(
                    sa.insert(SessionLog).returning(SessionLog.id), rows
                ).all()
                session.execute(
                    sa.insert(ExerciseEntry),
                    [
                        {
                            "session_log_id": log_id,
                            "prescription_id": p.id,
                            "done": True,
                            "sets_done": 3,
                            "reps_done": 10,
                        }
                        for log_id in log_ids
                        for p in prescriptions
                    ],
                )
                logs += len(rows)
                teams[team_id].append(patient.id)
                slots.append(
                    PatientSlot(
                        id=patient.id,
                        token=clear,
                        prescriptions=[p.id for p in prescriptions],
                        start=program_start.isoformat(),
                    )
                )
            session.commit()
    finally:
        engine.dispose()
    echo(f"  {options.patients} patients, {logs:,} logs of history")
    return LoadClinic(
        patients=slots,
        teams=teams,
        clinicians=clinicians,
        last_day=(history_start - dt.timedelta(days=1)).isoformat(),
        logs=logs,
        alerts=0,
    )


def evaluate_everyone(app_settings: dict[str, Any], clinic: LoadClinic) -> int:
    """Run the detector over the history once, as the first periodic scan would: the pages
    then show the alerts a real caseload has. Returns the number of alerts stored."""
    import sqlalchemy as sa

    from rehab import create_app
    from rehab.db.models import Alert
    from rehab.extensions import db
    from rehab.services import evaluation
    from rehab.services.time import clinic_today

    app = create_app(app_settings)
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [p.id for p in clinic.patients], clinic_today())
        count = int(db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) or 0)
        for engine in db.engines.values():
            engine.dispose()
    return count


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _session_cookie(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "set-cookie" and value.startswith("session="):
            return value.split(";", 1)[0]
    return None


def login(port: int, email: str) -> str:
    """Log a clinician in (password only: two-factor is off for the run); returns the
    session cookie ("session=...")."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/login")
        page = conn.getresponse()
        html = page.read().decode()
        cookie = _session_cookie(page.getheaders())
        match = _CSRF.search(html)
        if cookie is None or match is None:
            raise RuntimeError(f"no login form ({page.status})")
        form = urllib.parse.urlencode(
            {"email": email, "password": PASSWORD, "csrf_token": match.group(1)}
        )
        conn.request(
            "POST",
            "/login",
            body=form,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )
        answer = conn.getresponse()
        answer.read()
        logged_in = _session_cookie(answer.getheaders())
        if answer.status != 302 or logged_in is None:
            raise RuntimeError(f"login of {email} answered {answer.status}")
        conn.request("GET", "/clinic/", headers={"Cookie": logged_in})
        check = conn.getresponse()
        check.read()
        if check.status != 200:
            raise RuntimeError(f"caseload after login answered {check.status}")
        return logged_in
    finally:
        conn.close()


def _run_loadgen(spec: dict[str, Any], workdir: Path, name: str) -> dict[str, Any]:
    spec_path, out_path = workdir / f"{name}.spec.json", workdir / f"{name}.result.json"
    spec_path.write_text(json.dumps(spec))
    subprocess.run(
        [sys.executable, "-m", "bench.load", "loadgen", str(spec_path), str(out_path)],
        cwd=PROJECT_ROOT,
        check=True,
        timeout=float(spec["seconds"]) + REQUEST_TIMEOUT + 120,
    )
    result: dict[str, Any] = json.loads(out_path.read_text())
    return result


@contextlib.contextmanager
def _celery_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One `celery -A worker worker` (prefork, one process per core), in its own group."""
    import signal

    celery = str(Path(sys.executable).parent / "celery")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [celery, "-A", "worker", "worker", "--loglevel", "WARNING", "--without-gossip",
             "--without-mingle", "--without-heartbeat"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _queue_length(redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.llen("celery"))  # type: ignore[arg-type]
    finally:
        client.close()


def _scalar(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    import psycopg

    from bench.ingest import _psycopg_dsn

    with psycopg.connect(_psycopg_dsn(database_url), autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def run_load(options: LoadOptions, echo: Echo = print) -> LoadReport:
    """Set up, log the clinicians in, step the rate up, check, report (and write RESULTS.md)."""
    import runpy

    from bench.ingest import (
        GUNICORN_CONFIG,
        IngestOptions,
        _children,
        _CpuMeter,
        _Gunicorn,
        _servers,
    )
    from rehab import migrate

    load_before = load_average() + " (1 / 5 / 15 min)"
    steps: list[StepResult] = []
    checks: list[str] = []
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="rehab-load-") as tmp,
        _servers(IngestOptions(database_url=options.database_url)) as servers,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        database_url, redis_url = servers.database_url, servers.redis_url
        echo(f"database: {servers.description}; migrating")
        migrate.upgrade(database_url)
        echo("building the clinic")
        clinic = build_load_clinic(database_url, options, echo)
        secret_key = secrets.token_hex(32)
        settings = {
            "mode": "production",
            "outbox_in_production": True,  # no SMTP: alerts' e-mails go to the file outbox
            "secret_key": secret_key,
            "database_url": database_url,
            "broker_url": redis_url,
            "instance_path": workdir / "instance",
            "totp_required": False,
            "ratelimit_storage_url": redis_url,
        }
        if options.clinicians > 10:
            # The default login limit (10 a minute from one address) would refuse the
            # generator's own logins, which all come from 127.0.0.1.
            settings["login_rate_limit"] = f"{options.clinicians} per minute"
        clinic.alerts = evaluate_everyone(settings, clinic)
        echo(f"  {clinic.alerts} alerts from the detector over the history")
        env = {
            **os.environ,
            **{f"REHAB_{k.upper()}": str(v) for k, v in settings.items()},
        }
        env.pop("GUNICORN_CMD_ARGS", None)
        worker = None
        if options.worker:
            worker = stack.enter_context(_celery_worker(env, workdir / "worker.log"))
        server = _Gunicorn(
            "load",
            "rehab:create_app()",
            env,
            workdir,
            IngestOptions(workers=options.web_workers, threads=options.threads),
        )
        stack.callback(server.stop)
        server.wait_ready("/login")
        echo(f"gunicorn on port {server.port}; logging {len(clinic.clinicians)} clinicians in")
        cookies = [(login(server.port, email), team) for email, team in clinic.clinicians]
        spec_base: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": server.port,
            "patients": [asdict(p) for p in clinic.patients],
            "clinicians": [
                asdict(ClinicianSlot(cookie, clinic.teams[team])) for cookie, team in cookies
            ],
            "last_day": clinic.last_day,
        }
        groups: dict[str, Callable[[], list[int]]] = {
            "web": lambda: _children(server.process.pid),
            "Redis": lambda: [servers.redis_pid],
        }
        reaped_by = {"web": server.process.pid}
        if servers.postgres_pid is not None:
            postgres_pid = servers.postgres_pid
            groups["PostgreSQL"] = lambda: _children(postgres_pid)
            reaped_by["PostgreSQL"] = postgres_pid
        if worker is not None:
            worker_pid = worker.pid
            groups["worker"] = lambda: [worker_pid, *_children(worker_pid)]
            reaped_by["worker"] = worker_pid
        echo(f"warm-up: {options.rates[0]:g} req/s for {options.warmup:g} s")
        warm = _run_loadgen(
            {**spec_base, "rate": options.rates[0], "seconds": options.warmup, "seed": 999,
             "first_seq": 0},
            workdir, "warmup",
        )  # fmt: skip
        state = {"seq": warm["next_seq"], "log_answers": warm["by_kind"]["log"]["ok"]}

        def run_one(rate: float, attempt: int) -> StepResult:
            time.sleep(options.pause)
            meter = _CpuMeter(groups, reaped_by)
            meter.start()
            metered = time.monotonic()
            figures = _run_loadgen(
                {**spec_base, "rate": rate, "seconds": options.seconds, "seed": index,
                 "first_seq": state["seq"]},
                workdir, f"step{index}",
            )  # fmt: skip
            used = meter.stop()
            metered = time.monotonic() - metered
            state["seq"] = figures["next_seq"]
            state["log_answers"] += figures["by_kind"]["log"]["ok"]
            queued = _queue_length(redis_url) if worker is not None else None
            step = StepResult(rate, figures, used, queued, metered, attempt)
            steps.append(step)
            echo(_line(step))
            if figures["plan_exhausted"]:
                problems.append(f"{rate:g}/s: ran out of (patient, day) slots for new logs")
            return step

        index = 0
        for rate in options.rates:
            for attempt in (1, 2):
                index += 1
                step = run_one(rate, attempt)
                if step.meets_target or figures_exhausted(step):
                    break
            if not step.meets_target or figures_exhausted(step):
                break
        stored = _scalar(database_url, "SELECT count(*) FROM session_logs WHERE source = 'api'")
        log_answers = state["log_answers"]
        verdict = "=" if stored == log_answers else "≠"
        checks.append(f"{stored:,} logs stored {verdict} {log_answers:,} acknowledged (2xx)")
        if stored != log_answers:
            problems.append(f"{stored} logs stored for {log_answers} acknowledged")
        if worker is not None:
            backlog = _queue_length(redis_url)
            checks.append(f"{backlog:,} Celery tasks still queued at the end (the worker's lag)")
        server_errors = sum(s.figures["server_errors"] for s in steps)
        checks.append(f"{server_errors} 5xx answers")
        if server_errors:
            problems.append(f"{server_errors} 5xx answers")
        conf = runpy.run_path(str(GUNICORN_CONFIG))
        web = (
            f"gunicorn `config/gunicorn.conf.py` ({conf['worker_class']}, "
            f"{options.web_workers or conf['workers']} workers × "
            f"{options.threads or conf['threads']} threads)"
        )
        worker_text = (
            "one Celery worker (prefork, one process per core) evaluating every new log"
            if options.worker
            else "no Celery worker (tasks wait in Redis)"
        )
        teams = options.teams
        clinic.description = (
            f"{options.patients} patients in {teams} care teams of "
            f"{options.patients // teams}, {options.clinicians} clinicians "
            f"({options.clinicians // teams} per team, logged in before the run), "
            f"{options.history_days} days of history ({clinic.logs:,} logs with exercise "
            f"entries), {clinic.alerts} alerts from the detector"
        )
        server_text = (
            f"{web}, production mode, two-factor off (`REHAB_TOTP_REQUIRED=false`); "
            f"{servers.description}; Redis broker (also the rate limiter's storage); "
            f"{worker_text}; load generator on the same machine"
        )
    report = LoadReport(
        steps=steps,
        sustainable_rate=sustainable(steps),
        checks=checks,
        problems=problems,
        machine=machine_description(),
        load_before=load_before,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        server=server_text,
        clinic=clinic.description,
        options={
            "command": options.command,
            "seconds": options.seconds,
            "warmup": options.warmup,
            "rates": list(options.rates),
        },
    )
    if options.results_path is not None:
        write_section(options.results_path, SECTION_TITLE, report.markdown())
    return report


def figures_exhausted(step: StepResult) -> bool:
    return bool(step.figures["plan_exhausted"])


def _line(step: StepResult) -> str:
    f = step.figures
    kinds = "  ".join(f"{k} p95 {f['by_kind'][k]['p95_ms']:.0f}" for k in KINDS)
    queued = "" if step.queue_after is None else f"  queued {step.queue_after}"
    again = " (again)" if step.attempt > 1 else ""
    return (
        f"  {step.offered_rate:g}/s{again}: achieved {f['achieved_rate']:.1f}/s  {kinds}  "
        f"errors {f['errors']}  cpu {f['machine_cpu_pct']:.0f} % (other {step.other_cores:.2f})"
        f"{queued}  "
        f"{'ok' if step.meets_target else 'MISSED'}"
    )


# --- the command ----------------------------------------------------------------------------


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter("comma-separated numbers, e.g. 10,20,40") from None
    if not rates or any(r <= 0 for r in rates):
        raise click.BadParameter("positive rates, e.g. 10,20,40")
    return rates


@click.command("load")
@click.option("--rates", default=None, help="Offered rates (req/s), comma-separated, ascending.")
@click.option("--seconds", type=float, default=None, help="Seconds per step [20; 4 with --quick].")
@click.option("--warmup", type=float, default=None, help="Warm-up seconds at the first rate [5].")
@click.option("--patients", type=int, default=None, help="Patients [200; 40 with --quick].")
@click.option("--clinicians", type=int, default=None, help="Clinicians [10; 4 with --quick].")
@click.option("--teams", type=int, default=None, help="Care teams [5; 2 with --quick].")
@click.option("--history-days", type=int, default=None, help="Days of history [90; 30].")
@click.option("--worker/--no-worker", default=True, show_default=True, help="Run one worker.")
@click.option("--quick", is_flag=True, help="Short form for CI: 2 steps of 4 s, no RESULTS.md.")
@database_url_option
@click.option("--workers", type=int, default=None, help="gunicorn processes (override).")
@click.option("--threads", type=int, default=None, help="gunicorn threads (override).")
@results_option
@json_option
def load_command(
    rates: str | None,
    seconds: float | None,
    warmup: float | None,
    patients: int | None,
    clinicians: int | None,
    teams: int | None,
    history_days: int | None,
    worker: bool,
    quick: bool,
    database_url: str | None,
    workers: int | None,
    threads: int | None,
    results_path: Path | None,
    json_path: Path | None,
) -> None:
    """Open-loop load (70 % logs, 20 % caseload, 10 % patient page) on gunicorn + PostgreSQL,
    stepping the rate up to the highest one with p95 ≤ 300 ms and no error."""
    options = LoadOptions.quick_form() if quick else LoadOptions()
    if rates is not None:
        options.rates = _rates(rates)
    for name, value in (
        ("seconds", seconds),
        ("warmup", warmup),
        ("patients", patients),
        ("clinicians", clinicians),
        ("teams", teams),
        ("history_days", history_days),
    ):
        if value is not None:
            setattr(options, name, value)
    if options.clinicians < options.teams or options.patients < options.teams:
        raise click.BadParameter("need at least one clinician and one patient per team")
    options.worker = worker
    options.database_url = database_url
    options.web_workers, options.threads = workers, threads
    options.results_path = results_path or (None if quick else RESULTS_PATH)
    parts = ["rehab bench load", "--quick" if quick else ""]
    parts += [f"--rates {rates}" if rates else ""]
    for flag, value in (
        ("--seconds", seconds),
        ("--warmup", warmup),
        ("--patients", patients),
        ("--clinicians", clinicians),
        ("--teams", teams),
        ("--history-days", history_days),
    ):
        parts += [f"{flag} {value:g}" if value is not None else ""]
    parts += ["--no-worker" if not worker else ""]
    parts += [f"--workers {workers}" if workers else "", f"--threads {threads}" if threads else ""]
    options.command = " ".join(p for p in parts if p)
    report = run_load(options, echo=lambda line: click.echo(line, err=True))
    click.echo(report.markdown())
    if json_path is not None:
        json_path.write_text(json.dumps(report.as_dict(), indent=2, default=str))
    if options.results_path is not None:
        click.echo(f"written to {options.results_path}", err=True)
    if not report.ok or not report.steps:
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "loadgen":
        sys.exit(loadgen_main(sys.argv[2:]))
    sys.exit("usage: python -m bench.load loadgen SPEC.json OUT.json (or: rehab bench load)")
