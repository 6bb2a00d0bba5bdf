"""Persistence: typed models, engine set-up, and query helpers returning plain data."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLite ignores foreign keys unless asked, and the demo's web server, worker and beat
    # write concurrently: WAL lets readers proceed while one writer works.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def execute_core(
    session: Session, statement: Executable, params: Any = None
) -> CursorResult[*tuple[Any, ...]]:
    """Run a Core statement (table columns, no ORM entities) on the session's connection, in
    its transaction. `session.execute` would route it through the ORM's execution layer
    (events, compile state, result adaptation) for nothing: about a third of the Python CPU
    of a small statement. For the hot paths (every log submission, every batch of the scan,
    the caseload); no autoflush, so call it only where nothing pending needs flushing first."""
    return session.connection().execute(statement, params)


# Per process. gunicorn runs up to 16 threads per process (config/gunicorn.conf.py), the
# Celery worker fewer; PostgreSQL's default max_connections (100) fits several processes.
POOL_SIZE = 16
MAX_OVERFLOW = 8


CONNECT_TIMEOUT_SECONDS = 10


def engine_options(url: str) -> dict[str, Any]:
    """create_engine() arguments for one database URL."""
    # hide_parameters: SQL errors must not carry patient values into logs.
    options: dict[str, Any] = {"url": url, "hide_parameters": True}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 10}
    else:
        options["pool_pre_ping"] = True
        # A database host that does not answer fails a request (and `/readyz`) in seconds
        # instead of holding it for the operating system's TCP timeout.
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        # Keep a connection per web thread: QueuePool closes a returned connection when it
        # already holds `pool_size` idle ones, so a pool smaller than the number of threads
        # that use it at once opens and closes a PostgreSQL connection (a backend process)
        # on almost every request under load.
        options["pool_size"] = POOL_SIZE
        options["max_overflow"] = MAX_OVERFLOW
    return options


def drop_async_session_teardown(app: Any) -> None:
    """Remove Flask-SQLAlchemy-Lite's async-session teardown when the app has no async engine.

    The extension always registers an `async def` teardown; Flask runs it through asgiref,
    which starts an event loop (and a thread) at the end of every request just to find no
    async session to close: over a millisecond per request on the reference machine, more
    than any query. rehab uses synchronous sessions only, so the teardown has nothing to do.
    Call it from create_app() after db.init_app(); the API blueprint calls it meanwhile.
    """
    if app.config.get("SQLALCHEMY_ASYNC_ENGINES"):
        return
    from flask_sqlalchemy_lite._extension import _close_async_sessions

    funcs = app.teardown_appcontext_funcs
    while _close_async_sessions in funcs:
        funcs.remove(_close_async_sessions)


def rows_matched(result: Any) -> int:
    """How many rows an UPDATE or DELETE matched (its cursor's rowcount; 0 if unknown)."""
    return int(getattr(result, "rowcount", 0) or 0)
