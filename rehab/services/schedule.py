"""The clinic's schedule of outcome measures (`rehab.domain.outcome_schedule`), with its
interval from the settings (`REHAB_OUTCOME_INTERVAL_DAYS`): one place for the caseload and
the patient record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from flask import current_app

from rehab.domain.outcome_schedule import OutcomeDue, outcomes_due
from rehab.domain.vocabulary import Instrument


def outcome_interval_days() -> int:
    interval: int = current_app.config["REHAB_SETTINGS"].outcome_interval_days
    return interval


def outcome_schedule(
    last_measured: Mapping[Instrument, dt.date | None], program_start: dt.date | None
) -> tuple[OutcomeDue, ...]:
    """ODI's then PSFS's schedule; none without a program in effect."""
    return outcomes_due(
        {i.value: last_measured.get(i) for i in Instrument}, program_start, outcome_interval_days()
    )


def last_measured_on(scores: Iterable[tuple[Instrument, dt.date]]) -> dict[Instrument, dt.date]:
    """The latest date of each instrument among (instrument, measured_on) pairs."""
    last: dict[Instrument, dt.date] = {}
    for instrument, measured_on in scores:
        if instrument not in last or measured_on > last[instrument]:
            last[instrument] = measured_on
    return last
