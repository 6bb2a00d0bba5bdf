"""The PostgreSQL the benchmarks measure on: the one given with --database-url, or a private,
durable server of their own (fsync and synchronous_commit on, as production runs)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchDatabase:
    url: str
    durability: str  # for the report
    postgres_pid: int | None  # the private server's postmaster (CPU accounting); None if given


def bench_database(stack: contextlib.ExitStack, database_url: str | None) -> BenchDatabase:
    """The database to use, its server closed with `stack` when it is a private one."""
    if database_url:
        return BenchDatabase(database_url, "given with --database-url", None)
    import psycopg

    from rehab.devservers import start_postgres

    server = start_postgres(durable=True)
    stack.callback(server.close)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE rehab_bench")
    pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    return BenchDatabase(
        server.url("rehab_bench"),
        "private server, durable: fsync and synchronous_commit on",
        pid,
    )
