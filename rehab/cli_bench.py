"""`rehab bench`: benchmarks whose results go to bench/RESULTS.md."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from bench.results import database_url_option, json_option, results_option


@click.group()
def bench() -> None:
    """Benchmarks (see bench/RESULTS.md)."""


@bench.command("ingest")
@click.option("--seconds", type=float, default=None, help="Measured seconds per target [20].")
@click.option("--warmup", type=float, default=None, help="Warm-up seconds per target [3].")
@click.option("--clients", type=int, default=16, show_default=True, help="Concurrent clients.")
@click.option("--quick", is_flag=True, help="Short form for CI: 3 s per target, no RESULTS.md.")
@database_url_option
@click.option("--workers", type=int, default=None, help="Override the gunicorn config.")
@click.option("--threads", type=int, default=None, help="Override the gunicorn config.")
@results_option
@json_option
def ingest(
    seconds: float | None,
    warmup: float | None,
    clients: int,
    quick: bool,
    database_url: str | None,
    workers: int | None,
    threads: int | None,
    results_path: Path | None,
    json_path: Path | None,
) -> None:
    """Logs per second over HTTP (16 clients, gunicorn, PostgreSQL) against the bare-Flask
    and raw-psycopg references, measured in the same run."""
    import json

    from bench.ingest import RESULTS_PATH, IngestOptions, run_ingest

    options = IngestOptions.quick_form() if quick else IngestOptions()
    if seconds is not None:
        options.seconds = seconds
    if warmup is not None:
        options.warmup = warmup
    options.clients = clients
    options.database_url = database_url
    options.workers, options.threads = workers, threads
    options.results_path = results_path or (None if quick else RESULTS_PATH)
    parts = ["rehab bench ingest", "--quick" if quick else ""]
    parts += [f"--seconds {seconds:g}" if seconds is not None else ""]
    parts += [f"--warmup {warmup:g}" if warmup is not None else ""]
    parts += [f"--clients {clients}" if clients != 16 else ""]
    parts += [f"--workers {workers}" if workers else "", f"--threads {threads}" if threads else ""]
    parts += ["--database-url …" if database_url else ""]
    options.command = " ".join(p for p in parts if p)
    report = run_ingest(options, echo=lambda line: click.echo(line, err=True))
    click.echo(report.markdown())
    if json_path is not None:
        json_path.write_text(json.dumps(report.as_dict(), indent=2, default=str))
    if options.results_path is not None:
        click.echo(f"written to {options.results_path}", err=True)
    if not report.ok or math.isnan(report.ours.rate):
        sys.exit(1)


from bench.notify import notify_command  # noqa: E402

bench.add_command(notify_command, "notify")

from bench.pages import pages_command  # noqa: E402

bench.add_command(pages_command, "pages")

from bench.detect import detect_command  # noqa: E402

bench.add_command(detect_command, "detect")

from bench.load import load_command  # noqa: E402

bench.add_command(load_command, "load")

from bench.log_cpu import log_cpu_command  # noqa: E402

bench.add_command(log_cpu_command, "log-cpu")
