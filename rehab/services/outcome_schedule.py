"""The clinic's schedule of outcome measures (`rehab.domain.outcome_schedule`), with its
interval from the clinic's policy (`clinic_policy`: the administrator's setting, by default
`REHAB_OUTCOME_INTERVAL_DAYS`): one place for the caseload and the patient record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy.orm import Session

from rehab.domain.outcome_schedule import OutcomeDue, outcomes_due
from rehab.domain.vocabulary import Instrument
from rehab.services import clinic_policy


def outcome_interval_days(session: Session) -> int:
    return clinic_policy.current(session).outcome_interval_days


def outcome_schedule(
    last_measured: Mapping[str, dt.date | None],
    program_start: dt.date | None,
    interval_days: int,
    *,
    due_by: dt.date | None = None,
) -> tuple[OutcomeDue, ...]:
    """ODI's then PSFS's schedule (`last_measured` by instrument value: "odi", "psfs"); none
    without a program in effect. `interval_days`: `outcome_interval_days(session)`, read once
    by a caller that asks for many patients; `due_by`: only what is due by then (the
    caseload's rows)."""
    return outcomes_due(
        {i.value: last_measured.get(i.value) for i in Instrument},
        program_start,
        interval_days,
        due_by=due_by,
    )
