"""Log records keep the traceback's frames and the exception's class, never its text
(`rehab.logs`)."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Mapping
from typing import Any

from rehab import logs

MARKER = "Failing row contains (7, marker-note-91)"
KEY = "marker-key-91"


def _raise_chained() -> None:
    values: dict[str, int] = {}
    try:
        values[KEY] += 1
    except KeyError as exc:
        raise ValueError(MARKER) from exc


def _printed(record: logging.LogRecord) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.emit(record)
    return out.getvalue()


def _record(
    message: str,
    args: tuple[object, ...] | Mapping[str, object],
    exc_info: Any = None,
    name: str = "test",
) -> logging.LogRecord:
    logger = logging.getLogger(name)
    return logger.makeRecord(name, logging.ERROR, __file__, 1, message, args, exc_info)


def test_a_traceback_keeps_its_frames_and_classes_not_the_messages() -> None:
    try:
        _raise_chained()
    except ValueError:
        record = logs.redact(_record("failed in request %s", ("r-1",), sys.exc_info()))
    printed = _printed(record)
    assert "marker" not in printed and "Failing row" not in printed
    assert "ERROR failed in request r-1" in printed
    assert "in _raise_chained" in printed and 'File "' in printed
    assert f"KeyError: {logs.REDACTED}" in printed and f"ValueError: {logs.REDACTED}" in printed
    assert printed.index("KeyError") < printed.index("ValueError")  # cause first, as Python


def test_celerys_failure_and_retry_records_keep_only_the_class() -> None:
    context = {
        "name": "rehab.evaluate_patients",
        "id": "abc",
        "description": "raised unexpected",
        "exc": f"IntegrityError('{MARKER}')",
        "traceback": f"Traceback ...\nIntegrityError: {MARKER}",
    }
    # As `logger.log(level, format, context)` makes it: one mapping argument.
    record = logs.redact(
        _record(
            "Task %(name)s[%(id)s] %(description)s: %(exc)s", (context,), name="celery.app.trace"
        )
    )
    assert record.getMessage() == (
        f"Task rehab.evaluate_patients[abc] raised unexpected: IntegrityError: {logs.REDACTED}"
    )
    assert isinstance(record.args, dict) and "marker" not in str(record.args)
    assert context["exc"].startswith("IntegrityError('Failing")  # the caller's dict untouched


def test_a_database_error_is_described_by_sqlstate_and_constraint() -> None:
    class Diag:
        constraint_name = "uq_users_email"

    class DriverError(Exception):
        sqlstate = "23505"
        diag = Diag()

    class Wrapped(Exception):
        orig = DriverError("Key (email)=(someone@x.test) already exists")

    assert logs.describe(Wrapped("whatever")) == "Wrapped sqlstate=23505 constraint=uq_users_email"
    assert logs.describe(KeyError("x")) == "KeyError"


def test_install_redacts_every_record_of_the_process_once() -> None:
    logs.install()
    factory = logging.getLogRecordFactory()
    logs.install()
    assert logging.getLogRecordFactory() is factory  # not wrapped twice
    assert getattr(factory, "redacts", False)
    try:
        raise RuntimeError(MARKER)
    except RuntimeError:
        record = logging.getLogger("any.library").makeRecord(
            "any.library", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
        )
    assert record.exc_text is not None and "marker" not in record.exc_text
    assert f"RuntimeError: {logs.REDACTED}" in record.exc_text


def test_odd_exceptions_never_break_logging() -> None:
    """A cycle in the chain, a broken __str__ and a failing attribute still give a record."""

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

        @property
        def orig(self) -> object:
            raise KeyError("no orig")

    first, second = ValueError(MARKER), Broken()
    first.__context__, second.__context__ = second, first  # a cycle
    try:
        raise second
    except Broken:
        record = logs.redact(_record("odd", (), sys.exc_info()))
    assert record.exc_text is not None and "marker" not in record.exc_text
    assert f"Broken: {logs.REDACTED}" in record.exc_text
    printed = _printed(
        logs.redact(_record("%(exc)s", ({"exc": Broken()},), name="celery.app.trace"))
    )
    assert "Broken" in printed and logs.REDACTED in printed


def test_an_exception_passed_as_an_argument_is_its_class() -> None:
    record = logs.redact(_record("chart failed: %r (%s)", (ValueError(MARKER), "kept")))
    assert record.getMessage() == f"chart failed: 'ValueError: {logs.REDACTED}' (kept)"


def test_other_mappings_and_odd_exc_info_are_left_alone() -> None:
    # A mapping argument with an "exc" key that is not Celery's: untouched, still formats.
    record = logs.redact(_record("count %(exc)d", ({"exc": 3},)))
    assert record.getMessage() == "count 3"
    for odd in (True, (None, None, None), ("short",)):
        record = _record("odd", ())
        record.exc_info = odd  # type: ignore[assignment]
        assert logs.redact(record) is record
