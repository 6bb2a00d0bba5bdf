"""`rehab bench log-cpu`: CPU per accepted log, ours against the bare Flask endpoint.

`rehab bench ingest` measures throughput over HTTP, which on a shared 2-core machine moves
with whatever else runs (its ratio has ranged 20–47 % on unchanged code). This measures what
the throughput is made of, and moves far less: one thread posts logs through each app's WSGI
interface (each request's WSGI environ built before the clock starts: no gunicorn, no
sockets, no client work) and the run counts the CPU seconds of this process (the app, its
gathering thread included) and of the PostgreSQL server's processes, per log. Rounds
alternate between the two apps, which goes first changing every round, so that both see the
same machine; the figure kept for each is its median round.

The apps are those of `rehab bench ingest`: ours in production mode (bearer token, pydantic
validation, idempotency by client id, access check, audit row, evaluation request gathered
to Redis) and `bench.bare_app` (parse JSON, one INSERT, COMMIT), on one private durable
PostgreSQL with the same clinic and the same log bodies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bench.results import (
    RESULTS_PATH,
    load_average,
    machine_description,
    results_option,
    write_section,
)

TITLE = "Log CPU (rehab bench log-cpu)"


@dataclass
class Target:
    name: str
    web_ms: list[float] = field(default_factory=list)
    postgres_ms: list[float] = field(default_factory=list)
    posted: int = 0

    def median_web(self) -> float:
        return statistics.median(self.web_ms)

    def median_postgres(self) -> float:
        return statistics.median(self.postgres_ms)

    def total(self) -> float:
        return self.median_web() + self.median_postgres()


@dataclass
class LogCpuReport:
    logs_per_round: int
    rounds: int
    ours: Target
    bare: Target
    stored: int
    machine: str
    load: str
    started: str

    def ratio(self) -> float:
        """bare ÷ ours, CPU per log: the share of the bare endpoint's rate that ours would
        reach if both were bound by this CPU alone."""
        return self.bare.total() / self.ours.total()

    def markdown(self, command: str) -> str:
        def row(target: Target, what: str) -> str:
            rounds = ", ".join(f"{w:.2f}" for w in target.web_ms)
            return (
                f"| {target.name} | {what} | {target.median_web():.2f} | "
                f"{target.median_postgres():.2f} | {target.total():.2f} | {rounds} |"
            )

        return "\n".join(
            [
                f"## {TITLE}",
                "",
                f"Measured {self.started} on {self.machine}; load average {self.load} "
                "(1 / 5 / 15 min) when the run started.",
                f"Command: `{command}` — {self.rounds} rounds of {self.logs_per_round:,} logs "
                "per app, alternating, one thread calling each app's WSGI interface with "
                "environs built beforehand (no gunicorn, no sockets, no client), on one "
                "private durable PostgreSQL; CPU of this "
                "process (the app and its threads) and of the PostgreSQL server's processes "
                "per log; the median round of each.",
                "",
                "| app | what it does per log | web CPU ms | PostgreSQL CPU ms | total ms "
                "| web CPU per round (ms) |",
                "|---|---|---:|---:|---:|---|",
                row(
                    self.ours,
                    "bearer token, validation, idempotency, access check, log + entries + "
                    "audit row, evaluation request gathered to Redis",
                ),
                row(self.bare, "parse JSON, one INSERT, COMMIT"),
                "",
                f"**bare ÷ ours, CPU per log: {self.ratio():.0%}** — the share of the bare "
                "endpoint's rate that ours would reach if both were bound by this CPU alone "
                "(gunicorn's and the HTTP client's work per request, the same for both, is "
                "left out, so the HTTP ratio of `rehab bench ingest` comes out higher). Checks: "
                f"{self.stored:,} of ours's {self.ours.posted:,} logs stored.",
            ]
        )


def _requests(bodies: list[Any]) -> list[dict[str, Any]]:
    """Each log's WSGI environ, built before the clock starts: the CPU counted is the app's,
    not that of building requests (which would flatter the ratio: the same cost on both)."""
    from werkzeug.test import EnvironBuilder

    built = []
    for patient, body in bodies:
        builder = EnvironBuilder(
            path=f"/api/v1/patients/{patient.id}/logs",
            method="POST",
            json=body,
            headers=[("Authorization", f"Bearer {patient.token}")],
        )
        try:
            built.append(builder.get_environ())
        finally:
            builder.close()
    return built


def _post_all(app: Any, requests: list[dict[str, Any]], name: str) -> None:
    status: list[str] = []

    def start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(code)
        return lambda data: None

    for environ in requests:
        status.clear()
        body = app(environ, start_response)
        try:
            b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if not status or not status[0].startswith(("200", "201")):
            raise click.ClickException(f"{name}: HTTP {status[0] if status else '?'}")


def run_log_cpu(logs_per_round: int, rounds: int, echo: Any) -> LogCpuReport:
    from bench.ingest import (
        LogPlan,
        _children,
        _CpuMeter,
        build_bench_clinic,
        prepare_reference_tables,
    )
    from bench.servers import bench_database
    from rehab import migrate
    from rehab.devservers import start_redis
    from rehab.services import dispatch

    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = load_average()
    with contextlib.ExitStack() as stack:
        database = bench_database(stack, None)  # private: its processes' CPU is measured
        assert database.postgres_pid is not None
        redis = start_redis()
        stack.callback(redis.close)
        migrate.upgrade(database.url)
        days_back = 365
        # A log per patient and day (round 0 warms up): days_back + 1 loggable days each.
        needed = logs_per_round * (rounds + 1)
        patients = max(20, -(-needed // (days_back + 1)))
        echo(f"creating the clinic: {patients} patients")
        clinic = build_bench_clinic(database.url, patients, days_back)
        prepare_reference_tables(database.url)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rehab-bench-")))
        environment = {
            "REHAB_MODE": "production",
            "REHAB_SECRET_KEY": secrets.token_hex(32),
            "REHAB_DATABASE_URL": database.url,
            "REHAB_BROKER_URL": redis.url,
            "REHAB_INSTANCE_PATH": str(workdir / "instance"),
            "REHAB_OUTBOX_IN_PRODUCTION": "true",
            "BENCH_DATABASE_URL": database.url,
        }
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        stack.callback(_restore, saved)

        from bench.bare_app import create_app as create_bare_app
        from rehab import create_app

        apps = {"ours": create_app(), "bare Flask": create_bare_app()}
        targets = {name: Target(name) for name in apps}
        # Ours takes each body once (a log per patient and day); bare gets the same bodies.
        plan = LogPlan(clinic.patients, clinic.last_day, "bench")
        bodies = [plan.body(n) for n in range(needed)]
        if any(b is None for b in bodies):
            raise click.ClickException("the clinic has too few loggable days for this run")
        postmaster = database.postgres_pid
        postgres = _CpuMeter(
            {"PostgreSQL": lambda: [postmaster, *_children(postmaster)]},
            reaped_by={"PostgreSQL": postmaster},
        )

        for round_number in range(rounds + 1):  # round 0 warms both apps up, not counted
            chunk = bodies[round_number * logs_per_round : (round_number + 1) * logs_per_round]
            order = list(apps) if round_number % 2 else list(reversed(apps))
            for name in order:
                requests = _requests(chunk)
                cpu = time.process_time()
                postgres.start()
                _post_all(apps[name], requests, name)
                # Ours's gathered evaluation requests are sent now, inside its round.
                dispatch.flush()
                cpu, pg = time.process_time() - cpu, postgres.stop()["PostgreSQL"]
                if round_number == 0:
                    continue
                target = targets[name]
                target.web_ms.append(cpu / len(chunk) * 1000)
                target.postgres_ms.append(pg / len(chunk) * 1000)
                target.posted += len(chunk)
                echo(
                    f"round {round_number} {name}: web {target.web_ms[-1]:.2f} ms, "
                    f"PostgreSQL {target.postgres_ms[-1]:.2f} ms per log"
                )
        import sqlalchemy as sa

        engine = sa.create_engine(database.url)
        try:
            with engine.connect() as conn:
                stored = int(
                    conn.execute(
                        sa.text("SELECT count(*) FROM session_logs WHERE patient_id = ANY(:ids)"),
                        {"ids": [p.id for p in clinic.patients]},
                    ).scalar_one()
                )
        finally:
            engine.dispose()
        # Round 0's logs are stored too.
        stored -= logs_per_round
    return LogCpuReport(
        logs_per_round,
        rounds,
        targets["ours"],
        targets["bare Flask"],
        stored,
        machine_description(),
        load,
        started,
    )


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@click.command("log-cpu")
@click.option("--logs", "logs_per_round", type=int, default=800, show_default=True)
@click.option("--rounds", type=int, default=5, show_default=True)
@click.option("--quick", is_flag=True, help="Short form for CI: 2 rounds of 40, no RESULTS.md.")
@results_option
def log_cpu_command(
    logs_per_round: int,
    rounds: int,
    quick: bool,
    results_path: Path | None,
) -> None:
    """CPU per accepted log (web process and PostgreSQL), ours against the bare Flask
    endpoint, alternating rounds in one run."""
    if logs_per_round < 1 or rounds < 1:
        raise click.UsageError("--logs and --rounds must be at least 1")
    if quick:
        logs_per_round, rounds = 40, 2
    report = run_log_cpu(logs_per_round, rounds, lambda line: click.echo(line, err=True))
    parts = ["rehab bench log-cpu", "--quick" if quick else ""]
    if not quick:
        parts += [f"--logs {logs_per_round}", f"--rounds {rounds}"]
    section = report.markdown(" ".join(p for p in parts if p))
    click.echo(section)
    target = results_path or (None if quick else RESULTS_PATH)
    if target is not None:
        write_section(target, TITLE, section)
        click.echo(f"written to {target}", err=True)
