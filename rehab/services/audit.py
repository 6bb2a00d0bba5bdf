"""The audit trail: one append-only row per read, write, export or denied attempt.

Inside a web request the rows are collected on `flask.g` and written by `flush_request_audit`
after the view: on success in the same transaction as the view's work (views call `commit`);
on an error response the view's uncommitted work is rolled back first and the rows are kept,
with "allowed" turned into "failed", so a refused or failed attempt is still on record.
Outside a request (CLI, worker) rows go straight into the given session, their `request_id`
naming the invocation instead (`invocation`): "cli:<OS user>:<pid>" for a `rehab` command,
"task:<Celery task id>" for a worker's task, so that "who exported these patients from the
command line" and "which run wrote these rows" have an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from flask import g, has_request_context
from sqlalchemy.orm import Session

from rehab.db.models import AuditEvent, utcnow
from rehab.domain.vocabulary import AuditOutcome
from rehab.services.actors import Actor


@dataclass(frozen=True)
class AuditEntry:
    actor: Actor
    action: str
    patient_id: int | None
    outcome: AuditOutcome
    target: str | None


_INVOCATION: ContextVar[str | None] = ContextVar("audit_invocation", default=None)


@contextmanager
def invocation(label: str) -> Iterator[None]:
    """Name what runs outside a web request (a command, a worker's task): the audit rows
    written in the block carry it as their `request_id`."""
    token = _INVOCATION.set(label[:64])
    try:
        yield
    finally:
        _INVOCATION.reset(token)


def record(
    session: Session,
    actor: Actor,
    action: str,
    patient_id: int | None,
    outcome: AuditOutcome = AuditOutcome.ALLOWED,
    target: str | None = None,
) -> None:
    entry = AuditEntry(actor, action, patient_id, outcome, target)
    if has_request_context():
        g.setdefault("audit_trail", []).append(entry)
    else:
        session.add(_row(entry, request_id=_INVOCATION.get()))


def record_per_patient(
    session: Session,
    actor: Actor,
    action: str,
    patient_ids: Iterable[int],
    target: str | None = None,
    *,
    none_shown_row: bool = True,
) -> None:
    """A read of several patients' data (a list, a message about several): one row per
    patient (so "who read this patient's data" finds it), or, when it showed none, one row
    without a patient (`none_shown_row`; a clinician's own lists write nothing then)."""
    shown: list[int | None] = [*sorted(set(patient_ids))]
    if not shown and none_shown_row:
        shown = [None]
    for patient_id in shown:
        record(session, actor, action, patient_id, target=target)


def _values(entry: AuditEntry, request_id: str | None, failed: bool = False) -> dict[str, Any]:
    outcome = entry.outcome
    if failed and outcome is AuditOutcome.ALLOWED:
        outcome = AuditOutcome.FAILED
    return {
        "at": utcnow(),
        "user_id": entry.actor.user_id,
        "role": entry.actor.role.value if entry.actor.role else "system",
        "patient_id": entry.patient_id,
        "action": entry.action,
        "outcome": outcome,
        "request_id": request_id,
        "target": entry.target,
    }


def _row(entry: AuditEntry, request_id: str | None, failed: bool = False) -> AuditEvent:
    return AuditEvent(**_values(entry, request_id, failed))


def take_pending(failed: bool = False) -> list[AuditEvent]:
    """Rows collected in this request and not yet written; the list is emptied."""
    trail: list[AuditEntry] = g.pop("audit_trail", [])
    request_id = g.get("request_id")
    return [_row(entry, request_id, failed) for entry in trail]


_INSERT_AUDIT = sa.insert(cast(sa.Table, AuditEvent.__table__))


def take_pending_values(failed: bool = False) -> list[dict[str, Any]]:
    """`take_pending` as column values, for a caller that writes them in its own statement
    (the log write does, to save a round trip). Empty outside a request."""
    if not has_request_context():
        return []
    trail: list[AuditEntry] = g.pop("audit_trail", [])
    request_id = g.get("request_id")
    return [_values(entry, request_id, failed) for entry in trail]


def _write_pending(session: Session, failed: bool = False) -> None:
    """INSERT the request's pending rows into the session's transaction: one executemany,
    not an object per row for the unit of work (every request that touches a patient
    writes here)."""
    rows = take_pending_values(failed)
    if rows:
        session.execute(_INSERT_AUDIT, rows)


def discard_pending() -> None:
    """Forget this request's rows not yet written (their transaction was rolled back)."""
    if has_request_context():
        g.pop("audit_trail", None)


def commit(session: Session) -> None:
    """Commit the request's work together with its audit rows (one transaction)."""
    if has_request_context():
        _write_pending(session)
    session.commit()


def flush_request_audit(session: Session, status_code: int) -> None:
    """After a view: write audit rows the view did not commit itself (reads, denials)."""
    if not g.get("audit_trail"):
        return
    failed = status_code >= 400
    if failed:
        session.rollback()
    _write_pending(session, failed=failed)
    session.commit()
