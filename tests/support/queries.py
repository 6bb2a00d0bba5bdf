"""Counting the SQL statements a piece of code runs (pages must not issue one per patient)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask

from rehab.extensions import db


@contextmanager
def counting_queries(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", _count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", _count)
