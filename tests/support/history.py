"""Quick ways to give a test patient a history of daily logs and events."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from rehab.db.models import Event, OutcomeMeasure, SessionLog, User
from rehab.domain.vocabulary import EventType, FallLocation, Instrument, LandedOn, Side
from rehab.extensions import db
from rehab.services import accounts, clinical
from rehab.services.commands import OutcomeInput, PsfsActivity
from rehab.services.time import clinic_today


def add_logs(
    patient_id: int,
    first_day: dt.date,
    leg_pain: Sequence[int],
    back_pain: Sequence[int] | None = None,
    *,
    leg_side: Side = Side.LEFT,
    red_flag_days: Sequence[int] = (),
) -> None:
    """One log per day from `first_day`, leg (and back) pain as given; commits."""
    rows = log_rows(
        patient_id,
        first_day,
        leg_pain,
        back_pain,
        leg_side=leg_side,
        red_flag_days=red_flag_days,
    )
    db.session.execute(sa.insert(SessionLog), rows)
    db.session.commit()


def log_rows(
    patient_id: int,
    first_day: dt.date,
    leg_pain: Sequence[int],
    back_pain: Sequence[int] | None = None,
    *,
    leg_side: Side = Side.LEFT,
    red_flag_days: Sequence[int] = (),
) -> list[dict[str, object]]:
    """The `session_logs` rows of `add_logs`, to insert in a session of the caller's."""
    rows: list[dict[str, object]] = []
    for offset, leg in enumerate(leg_pain):
        day = first_day + dt.timedelta(days=offset)
        client_id = f"hist-{patient_id}-{day.isoformat()}"
        rows.append(
            {
                "patient_id": patient_id,
                "log_date": day,
                "client_id": client_id,
                "body_hash": hashlib.sha256(client_id.encode()).hexdigest(),
                "back_pain": back_pain[offset] if back_pain else 1,
                "leg_pain": leg,
                "leg_side": leg_side if leg > 0 else None,
                "adherence": 1.0,
                "source": "test",
                "red_flag_new_weakness": offset in red_flag_days,
            }
        )
    return rows


def set_leg_pain(patient_id: int, day: dt.date, leg_pain: int) -> None:
    """Change the stored leg pain of the patient's log on `day` (an edit); commits."""
    db.session.execute(
        sa.update(SessionLog)
        .where(SessionLog.patient_id == patient_id, SessionLog.log_date == day)
        .values(leg_pain=leg_pain)
    )
    db.session.commit()


def add_fall(patient_id: int, recorded_by: int, day: dt.date) -> None:
    db.session.add(
        Event(
            patient_id=patient_id,
            event_date=day,
            event_type=EventType.FALL,
            side=Side.LEFT,
            description="slipped on marble stairs",
            fall_location=FallLocation.STAIRS,
            fall_steps=10,
            fall_landed_on=LandedOn.BUTTOCKS,
            recorded_by_user_id=recorded_by,
        )
    )
    db.session.commit()


def add_outcome(
    patient_id: int,
    recorded_by: int,
    days_ago: int,
    *,
    odi_sections: Sequence[int | None] | None = None,
    psfs: Mapping[str, int] | None = None,
) -> OutcomeMeasure:
    """An ODI (its section scores) or a PSFS (activity → rating) measured `days_ago`, recorded
    by the clinician `recorded_by` through the service, as her form does; commits."""
    user = db.session.get(User, recorded_by)
    assert user is not None
    return clinical.record_outcome(
        db.session,
        accounts.actor_for(user),
        patient_id,
        OutcomeInput(
            instrument=Instrument.ODI if psfs is None else Instrument.PSFS,
            measured_on=clinic_today() - dt.timedelta(days=days_ago),
            odi_sections=None if odi_sections is None else list(odi_sections),
            psfs_activities=None
            if psfs is None
            else [PsfsActivity(activity=name, rating=rating) for name, rating in psfs.items()],
        ),
    )
