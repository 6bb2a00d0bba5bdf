"""Reading a patient's daily series (the data behind charts, the API and detection)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import SessionLog
from rehab.domain.vocabulary import RedFlag
from rehab.services.access import require_patient
from rehab.services.actors import Actor

RED_FLAG_COLUMNS = [getattr(SessionLog, f"red_flag_{flag.value}") for flag in RedFlag]


@dataclass(frozen=True)
class DayPoint:
    date: dt.date
    back_pain: int
    leg_pain: int
    leg_side: str | None
    pain_location: str | None
    adherence: float | None
    red_flags: tuple[str, ...]


def daily_series(
    session: Session, actor: Actor, patient_id: int, start: dt.date | None, end: dt.date
) -> list[DayPoint]:
    require_patient(session, actor, patient_id, "series.read")
    query = sa.select(
        SessionLog.log_date,
        SessionLog.back_pain,
        SessionLog.leg_pain,
        SessionLog.leg_side,
        SessionLog.pain_location,
        SessionLog.adherence,
        *RED_FLAG_COLUMNS,
    ).where(SessionLog.patient_id == patient_id, SessionLog.log_date <= end)
    if start is not None:
        query = query.where(SessionLog.log_date >= start)
    points = []
    for row in session.execute(query.order_by(SessionLog.log_date)):
        flags = tuple(flag.value for flag, on in zip(RedFlag, row[6:], strict=True) if on)
        points.append(
            DayPoint(
                date=row[0],
                back_pain=row[1],
                leg_pain=row[2],
                leg_side=row[3].value if row[3] else None,
                pain_location=row[4],
                adherence=row[5],
                red_flags=flags,
            )
        )
    return points
