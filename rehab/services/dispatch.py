"""Tasks are sent only after the transaction that justifies them commits (never before:
a worker must not look for a row that is not there yet, or act on one that was rolled back).

If the broker is unreachable the commit still stands; the periodic scan finds the new data.

Evaluation requests are gathered. Every log, event or finding asks for its patient to be
evaluated; sending one Celery message per commit cost the web process about a third of a
log's CPU (kombu builds a producer and a Redis client per message; `rehab bench ingest`).
So ids for `rehab.evaluate_patient` are gathered in this process for
`evaluation_batch_ms` after the first one arrives, then sent from a background thread as one
`rehab.evaluate_patients` task (up to `MAX_IDS_PER_TASK` ids, each once) — the task the
periodic scan sends, many times cheaper per patient for the worker too. The request that
committed does not wait for the broker. What a process dies holding (at most one window's
ids: a SIGKILL; a normal exit sends them) is what a lost message always was: the periodic scan
evaluates every patient with data newer than her last evaluation. `evaluation_batch_ms = 0`
sends one task per commit, at once, from the committing thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from rehab.services.scan import BATCH_SIZE

log = logging.getLogger(__name__)

_KEY = "rehab_after_commit_tasks"

# Sent by every write that may change what the detector finds for a patient (`worker.tasks`).
EVALUATE_PATIENT_TASK = "rehab.evaluate_patient"
# A task that takes one id → the task that takes a list of them (gathered, see above).
GATHERED_TASKS = {EVALUATE_PATIENT_TASK: "rehab.evaluate_patients"}
# As many patients as one batch of the periodic scan.
MAX_IDS_PER_TASK = BATCH_SIZE


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
    celery_app, window = _destination()
    for task_name, ids in pending:
        gathered_as = GATHERED_TASKS.get(task_name)
        if gathered_as is not None and window > 0 and len(ids) == 1:
            _gatherer().add(celery_app, gathered_as, ids[0], window)
        else:
            _send(celery_app, task_name, list(ids))


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_KEY, None)


def pending_tasks(session: Session) -> list[tuple[str, tuple[Any, ...]]]:
    return list(session.info.get(_KEY, []))


def flush() -> None:
    """Send the gathered ids now (a process about to exit; tests that read the broker)."""
    if _instance is not None:
        _instance.flush()


def _destination() -> tuple[Any, float]:
    """The Celery app to send with and the gathering window in seconds: the current Flask
    app's (a request, a task, a CLI command); else Celery's default app, sent at once."""
    if has_app_context():
        window_ms = current_app.config["REHAB_SETTINGS"].evaluation_batch_ms
        return current_app.extensions["celery"], window_ms / 1000.0
    from celery import current_app as celery_app

    return celery_app, 0.0


def _send(celery_app: Any, task_name: str, args: list[Any]) -> None:
    try:
        celery_app.send_task(task_name, args=args)
    except Exception:
        log.warning("could not send task %s; the periodic scan will pick it up", task_name)


class Gatherer:
    """Ids waiting to be sent, by (Celery app, task); one background thread sends them a
    window after the first of a round arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Held while a round is sent: a flush waits for the background thread's send in
        # flight (a process about to exit would otherwise leave with it half done).
        self._sending = threading.Lock()
        self._pending: dict[tuple[Any, str], set[int]] = {}
        self._window = 0.0
        self._due = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rehab-dispatch", daemon=True)
        self._thread.start()

    def add(self, celery_app: Any, task_name: str, item: int, window: float) -> None:
        with self._lock:
            self._pending.setdefault((celery_app, task_name), set()).add(item)
            self._window = window
        self._due.set()

    def flush(self) -> None:
        with self._sending:
            with self._lock:
                pending, self._pending = self._pending, {}
            for (celery_app, task_name), items in pending.items():
                ordered = sorted(items)
                for start in range(0, len(ordered), MAX_IDS_PER_TASK):
                    _send(celery_app, task_name, [ordered[start : start + MAX_IDS_PER_TASK]])

    def _run(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self._window)
            # Cleared before taking the ids: an id added from here on sets it again.
            self._due.clear()
            try:
                self.flush()
            except Exception:  # the thread must outlive any one failure
                log.exception("sending gathered tasks failed")


_instance: Gatherer | None = None
_instance_lock = threading.Lock()


def _gatherer() -> Gatherer:
    """This process's gatherer, started on first use."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = Gatherer()
    return _instance


def _after_fork_in_child() -> None:
    # The child inherits a copy of the parent's pending ids (the parent sends them) but not
    # its thread, and maybe a lock another thread held: it starts its own gatherer when it
    # first needs one.
    global _instance, _instance_lock
    _instance = None
    _instance_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush)
