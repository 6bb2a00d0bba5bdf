"""The clinic's schedule of outcome measures (`rehab.domain.outcome_schedule`), with its
interval from the settings (`REHAB_OUTCOME_INTERVAL_DAYS`): one place for the caseload and
the patient record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from flask import current_app

from rehab.domain.outcome_schedule import OutcomeDue, outcomes_due
from rehab.domain.vocabulary import Instrument


def outcome_interval_days() -> int:
    interval: int = current_app.config["REHAB_SETTINGS"].outcome_interval_days
    return interval


def outcome_schedule(
    last_measured: Mapping[str, dt.date | None],
    program_start: dt.date | None,
    *,
    due_by: dt.date | None = None,
    interval_days: int | None = None,
) -> tuple[OutcomeDue, ...]:
    """ODI's then PSFS's schedule (`last_measured` by instrument value: "odi", "psfs"); none
    without a program in effect. `due_by`: only what is due by then (the caseload's rows);
    `interval_days`: the setting, read once by a caller that asks for many patients."""
    return outcomes_due(
        {i.value: last_measured.get(i.value) for i in Instrument},
        program_start,
        interval_days or outcome_interval_days(),
        due_by=due_by,
    )
