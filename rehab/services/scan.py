"""The periodic scan: which patients need evaluating, fanned out in batches.

- Patients with data written after their last evaluation (`patients.evaluated_at`): a log
  whose evaluation task was lost (worker crash, broker restart) is found by the next scan,
  because nothing marks it evaluated until an evaluation has committed.
- Once a day, every patient: missed logging is a matter of the calendar, not of new data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import (
    EntryCorrection,
    Event,
    JobWatermark,
    OutcomeMeasure,
    Patient,
    PinnedBaseline,
    SessionLog,
    utcnow,
)
from rehab.services.time import clinic_date

DAILY_WATERMARK = "scan.daily"
# When the scan last ran (`rehab.services.health`: a stale one means beat or the worker has
# stopped, and with them missed-log alerts and the catching up of missed evaluations).
LAST_RUN_WATERMARK = "scan.last_run"
# Only this recent data is compared with evaluation times (an index range on the timestamps);
# anything older that was somehow never evaluated is caught by the daily full scan.
RECHECK_WINDOW = dt.timedelta(days=2)
BATCH_SIZE = 250


def patients_to_evaluate(session: Session, today: dt.date) -> list[int]:
    """The ids to evaluate now. Advances the daily watermark; the caller commits after
    sending the tasks."""
    now = utcnow()
    daily = session.get(JobWatermark, DAILY_WATERMARK)
    # `today` is the clinic's date; the watermark is a UTC time (east of UTC, its UTC date
    # would stay a day behind for hours, and every scan of them would take everyone).
    if daily is None or clinic_date(daily.through) < today:
        if daily is None:
            session.add(JobWatermark(name=DAILY_WATERMARK, through=now))
        else:
            daily.through = now
        return list(session.scalars(sa.select(Patient.id).order_by(Patient.id)))
    changed = changed_since_evaluation(now)
    return sorted(session.scalars(sa.select(changed.c.patient_id).distinct()))


def record_run(session: Session) -> None:
    """Note that the periodic scan ran now (`LAST_RUN_WATERMARK`); the caller commits."""
    session.merge(JobWatermark(name=LAST_RUN_WATERMARK, through=utcnow()))


def changed_since_evaluation(now: dt.datetime) -> sa.Subquery:
    """(patient_id, changed_at) of each log, event, score or pinned baseline written or
    corrected in the recheck window after its patient's last evaluation: what the next scan
    evaluates."""
    floor = now - RECHECK_WINDOW

    def newer(column: Any, patient_id: Any) -> sa.Select[Any]:
        return (
            sa.select(patient_id.label("patient_id"), column.label("changed_at"))
            .join(Patient, Patient.id == patient_id)
            .where(
                column > floor,
                sa.or_(Patient.evaluated_at.is_(None), column > Patient.evaluated_at),
            )
        )

    return sa.union_all(
        newer(SessionLog.updated_at, SessionLog.patient_id),
        newer(Event.created_at, Event.patient_id),
        newer(OutcomeMeasure.created_at, OutcomeMeasure.patient_id),
        # An event or score marked entered in error, or its mark taken back (which clears
        # the entry's own mark columns: only the correction's row says when). Findings give
        # context to pages, not to detection.
        newer(EntryCorrection.at, EntryCorrection.patient_id).where(
            EntryCorrection.entry_kind != "finding"
        ),
        # A baseline pinned, returned to automatic, or replaced by one from an earlier date.
        newer(PinnedBaseline.created_at, PinnedBaseline.patient_id),
        newer(PinnedBaseline.replaced_at, PinnedBaseline.patient_id),
    ).subquery()


def batches(ids: list[int], size: int = BATCH_SIZE) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
