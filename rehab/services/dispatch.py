"""Tasks are sent only after the transaction that justifies them commits (never before:
a worker must not look for a row that is not there yet, or act on one that was rolled back).

If the broker is unreachable the commit still stands; the periodic scan finds the new data.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_KEY = "rehab_after_commit_tasks"


def enqueue_after_commit(session: Session, task_name: str, *ids: int) -> None:
    """Queue a task (by name, with ids only) to be sent when `session` commits."""
    pending: list[tuple[str, tuple[int, ...]]] = session.info.setdefault(_KEY, [])
    if (task_name, ids) not in pending:
        pending.append((task_name, ids))


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    pending = session.info.pop(_KEY, [])
    if not pending:
        return
    from celery import current_app as celery_app

    for task_name, ids in pending:
        try:
            celery_app.send_task(task_name, args=list(ids))
        except Exception:
            log.warning("could not send task %s; the periodic scan will pick it up", task_name)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_KEY, None)


def pending_tasks(session: Session) -> list[tuple[str, tuple[Any, ...]]]:
    return list(session.info.get(_KEY, []))
