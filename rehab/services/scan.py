"""The periodic scan: which patients need evaluating (new data since the last scan, or a
day has passed so missed logging may have begun), fanned out in batches."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import Event, JobWatermark, OutcomeMeasure, Patient, SessionLog, utcnow

SCAN_WATERMARK = "scan"
DAILY_WATERMARK = "scan.daily"
# Transactions that began before the scan may commit after it reads: look back a little.
OVERLAP = dt.timedelta(minutes=2)
BATCH_SIZE = 250


def patients_to_evaluate(session: Session, today: dt.date) -> list[int]:
    """Patients with data changed since the last scan; once a day, every patient (missed
    logging is a matter of the calendar, not of new data). Advances the watermarks; the
    caller commits after sending the tasks."""
    now = utcnow()
    since = _watermark(session, SCAN_WATERMARK)
    daily_done = _watermark(session, DAILY_WATERMARK)
    if daily_done is None or daily_done.date() < today:
        ids = list(session.scalars(sa.select(Patient.id).order_by(Patient.id)))
        _advance(session, DAILY_WATERMARK, now)
    elif since is None:
        ids = list(session.scalars(sa.select(Patient.id).order_by(Patient.id)))
    else:
        cutoff = since - OVERLAP
        changed = sa.union(
            sa.select(SessionLog.patient_id).where(SessionLog.updated_at > cutoff),
            sa.select(Event.patient_id).where(Event.created_at > cutoff),
            sa.select(OutcomeMeasure.patient_id).where(OutcomeMeasure.created_at > cutoff),
        )
        ids = sorted(session.scalars(sa.select(changed.subquery().c[0])))
    _advance(session, SCAN_WATERMARK, now)
    return ids


def batches(ids: list[int], size: int = BATCH_SIZE) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _watermark(session: Session, name: str) -> dt.datetime | None:
    row = session.get(JobWatermark, name)
    return row.through if row else None


def _advance(session: Session, name: str, through: dt.datetime) -> None:
    row = session.get(JobWatermark, name)
    if row is None:
        session.add(JobWatermark(name=name, through=through))
    else:
        row.through = through
