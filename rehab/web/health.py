"""Health endpoints for a load balancer and monitoring, and the pipeline status pages show.

- `/healthz`: the process answers (liveness; touches nothing).
- `/readyz`: it can serve: the database answers and is migrated to this code (503 if not).
- `/healthz/pipeline`: alerts are flowing: scan, evaluation and e-mail delivery are not late,
  and every care team with patients has an active clinician (503 if not;
  `rehab.services.health`). Counts and times only: no patient, no address.

None needs a login, none reads patient data, so none is audited. The pipeline status shown to
clinicians and admins and to monitoring (`current_pipeline_status`) is kept for a short while
per process, so that neither a busy caseload nor a crowd of probes runs its queries each time.
When a fresh status finds alerts late, or an incident the administrators were told of, the
process runs `pipeline_watch.watch` in a background thread (one at a time per process): it
e-mails the administrators without the worker, and never slows the page or probe that asked.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy.orm import Session

from rehab.extensions import db
from rehab.services import health, pipeline_watch

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)

# How long a process reuses the pipeline status it computed for its pages (the endpoint for
# monitoring always computes it afresh).
STATUS_REUSE_SECONDS = 30.0
_lock = threading.Lock()


def _late_after(app: Flask) -> dt.timedelta:
    return dt.timedelta(minutes=app.config["REHAB_SETTINGS"].pipeline_late_minutes)


@bp.get("/healthz")
def liveness() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readiness() -> Any:
    state = health.readiness(db.session)
    return jsonify(state.as_json()), 200 if state.ok else 503


@bp.get("/healthz/pipeline")
def pipeline() -> Any:
    # The status the pages use (kept STATUS_REUSE_SECONDS): anyone may ask, often.
    status = current_pipeline_status()
    if status is None:
        return jsonify({"status": "failing", "database": "failing"}), 503
    return jsonify(status.as_json()), 200 if status.all_ok else 503


def current_pipeline_status() -> health.PipelineStatus | None:
    """The pipeline status, computed at most every `STATUS_REUSE_SECONDS` in this process;
    None if the database did not answer (a page then shows no banner rather than fail)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    with _lock:
        kept = app.extensions.get("rehab.pipeline_status")
    if kept is not None and time.monotonic() - kept[0] < STATUS_REUSE_SECONDS:
        return kept[1]  # type: ignore[no-any-return]
    try:
        # On a connection of its own: an error here leaves the page's transaction usable.
        with Session(db.engine) as session:
            status = health.pipeline_status(session, _late_after(app))
            act = status.alerts_late or pipeline_watch.incident_open(session)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("pipeline status not computed (%s)", type(exc).__name__)
        return None
    with _lock:
        app.extensions["rehab.pipeline_status"] = (time.monotonic(), status)
    if act:
        _watch_in_background(app, status)
    return status


def _watch_in_background(app: Flask, status: health.PipelineStatus) -> None:
    with _lock:
        watching: threading.Lock = app.extensions.setdefault(
            "rehab.pipeline_watching", threading.Lock()
        )
    if not watching.acquire(blocking=False):
        return  # this process is at it already

    def run() -> None:
        try:
            with app.app_context(), Session(db.engine) as session:
                pipeline_watch.watch(session, status)
        except Exception as exc:  # a thread's error would otherwise go nowhere
            log.error("pipeline notices not sent (%s)", type(exc).__name__)
        finally:
            watching.release()

    thread = threading.Thread(target=run, name="rehab-pipeline-watch", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no thread to be had (at shutdown): the next fresh status tries again
        watching.release()
        return
    app.extensions["rehab.pipeline_watch"] = thread


def wait_for_pipeline_watch(app: Flask, timeout: float = 60.0) -> None:
    """Wait for this app's background pipeline watch, if one runs (tests; shutting down)."""
    thread = app.extensions.get("rehab.pipeline_watch")
    if thread is not None:
        thread.join(timeout)


def forget_pipeline_status(app: Flask) -> None:
    """Compute it afresh next time (tests)."""
    with _lock:
        app.extensions.pop("rehab.pipeline_status", None)
