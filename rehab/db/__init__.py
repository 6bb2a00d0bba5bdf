"""Persistence: typed models, engine set-up, and query helpers returning plain data."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


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


def engine_options(url: str) -> dict[str, Any]:
    """create_engine() arguments for one database URL."""
    # hide_parameters: SQL errors must not carry patient values into logs.
    options: dict[str, Any] = {"url": url, "hide_parameters": True}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 10}
    else:
        options["pool_pre_ping"] = True
    return options
