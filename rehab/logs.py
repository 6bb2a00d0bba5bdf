"""Log records without exception text: where a traceback is logged, its frames and the
exception's type are kept, never its message.

Why: an exception's message can carry patient data the code never meant to log. PostgreSQL
puts the values into its errors' DETAIL ("Key (email)=(…) already exists", "Failing row
contains (…)" — the whole row, notes included), psycopg adds that DETAIL to the message, and
SQLAlchemy's `hide_parameters` hides only the statement's bound values; a ValueError may quote
the input it refused. Celery logs a failed or retried task with the exception's repr.

What is kept, for the engineer reading the log: the traceback (files, lines, functions), the
exception's class, and for database errors the SQLSTATE and the constraint's name (schema
names, not data). `install` (called first thing by `create_app`, so in web and worker
processes) makes every log record of the process pass through `redact`, whatever logged it.

Limit: what a caller attaches with `extra=` is set on the record after the factory made it,
so it is not redacted. Celery attaches its failure context as `data` (the exception's repr and
traceback); the handlers configured here print the message, not extras, but a JSON or error-
tracking handler added later would have to drop it.
"""

from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType
from typing import Any

REDACTED = "(message not logged: it may hold patient data)"
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def describe(exc: BaseException) -> str:
    """The exception's class, with the SQLSTATE and constraint of a database error."""
    parts = [type(exc).__name__]
    try:
        original = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
        if original is None:
            original = exc
        sqlstate = getattr(original, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            parts.append(f"sqlstate={sqlstate}")
        diag = getattr(original, "diag", None)
        constraint = getattr(diag, "constraint_name", None) if diag is not None else None
        if isinstance(constraint, str) and constraint:
            parts.append(f"constraint={constraint}")
    except Exception:  # an exception's own attributes may fail too: the class is enough
        pass
    return " ".join(parts)


def redacted_traceback(
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None],
) -> str:
    """The traceback as Python prints it, each exception's message replaced by REDACTED
    (chained causes included)."""
    lines: list[str] = []
    exc: BaseException | None = exc_info[1]
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):  # identity: a cycle ends
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    for position, current in enumerate(reversed(chain)):
        if position:
            lines.append("\nThe above exception led to the following one:\n\n")
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(current.__traceback__))
        lines.append(f"{describe(current)}: {REDACTED}\n")
    return "".join(lines).rstrip("\n")


def redact(record: logging.LogRecord) -> logging.LogRecord:
    """The record without exception text: its traceback keeps frames and classes; an
    exception passed as an argument (`log.error("failed: %r", exc)`) becomes its class; and
    Celery's task-failure and retry records (their `exc` argument is the exception's repr,
    `traceback` its text) keep only the class. Never raises: a logging call must not fail
    because of what it logs."""
    try:
        exc_info = record.exc_info
        if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[1] is not None:
            try:
                record.exc_text = redacted_traceback(exc_info)
            except Exception:
                record.exc_text = f"{type(exc_info[1]).__name__}: {REDACTED}"
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, BaseException) for a in args):
            record.args = tuple(_class_only(a) if isinstance(a, BaseException) else a for a in args)
        elif isinstance(args, dict) and record.name.startswith("celery") and "exc" in args:
            cleaned = {**args, "exc": _class_only(args["exc"])}
            if "traceback" in cleaned:
                cleaned["traceback"] = REDACTED
            record.args = cleaned
    except Exception:  # never lose the record: at worst it keeps what it had
        pass
    return record


def _class_only(value: Any) -> str:
    if isinstance(value, BaseException):
        return f"{describe(value)}: {REDACTED}"
    try:
        found = _TYPE_NAME.match(str(value))
    except Exception:
        found = None
    return f"{found.group(0) if found else 'exception'}: {REDACTED}"


def install() -> None:
    """Every log record this process makes from now on goes through `redact` (the record
    factory, so it holds whichever handler prints the record: Flask's, gunicorn's, Celery's,
    pytest's). Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact(current(*args, **kwargs))

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
