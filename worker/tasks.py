"""Celery tasks: thin wrappers that take ids, call a service and commit.

Every task is idempotent and acknowledged late (config/celery.py), so a redelivery after a
crash repeats work without repeating effects.
"""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app
from sqlalchemy.exc import OperationalError

from rehab.extensions import db
from rehab.services import broker, evaluation, scan
from rehab.services.time import clinic_today

log = logging.getLogger(__name__)

# Database hiccups (restart, failover) are retried; anything else is a bug to see in the log.
RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "max_retries": 8}


@shared_task(name="rehab.evaluate_patient", **RETRY)
def evaluate_patient(patient_id: int) -> None:
    evaluate_patients([patient_id])


@shared_task(name="rehab.evaluate_patients", **RETRY)
def evaluate_patients(patient_ids: list[int]) -> None:
    evaluation.evaluate_and_commit(db.session, patient_ids, clinic_today())


@shared_task(name="rehab.scan_patients", **RETRY)
def scan_patients() -> None:
    ids = scan.patients_to_evaluate(db.session, clinic_today())
    scan.record_run(db.session)
    # Sent before the watermark commits: if sending fails, the next scan sends them again
    # (evaluation is idempotent, so a double send costs only time).
    for batch in scan.batches(ids):
        evaluate_patients.delay(batch)
    db.session.commit()
    log.info("scan queued %d patients", len(ids))


@shared_task(name="rehab.clean_broker")
def clean_broker() -> None:
    settings = current_app.config["REHAB_SETTINGS"]
    deleted = broker.delete_consumed_messages(settings.resolve_sqlite(settings.broker_url))
    log.info("broker cleanup deleted %d consumed messages", deleted)
