"""When the next ODI and PSFS are due (design §2: outcome measures "on a cadence").

The questionnaires are the only measure of function the detector has (`function_decline`
compares each score with the patient's earlier ones), so a patient in a program is measured
once at the start of care — the baseline later scores are read against — and again every
`interval_days` (the clinic's `REHAB_OUTCOME_INTERVAL_DAYS`, 30 by default: the monthly
progress review clinics and payers commonly work to, and the caseload's 30-day monitoring
period). A patient with no program in effect is not scheduled: a discharged patient is not
asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta


def outcome_due_on(last_measured: date | None, program_start: date, interval_days: int) -> date:
    """The day the next measure of one instrument is due while a program is in effect.

    Never measured: due from the program's start. Otherwise `interval_days` after the last
    score, and never before the program's start. So a score taken shortly before the program
    (at the intake assessment) stands as its first for one interval, while one older than
    the interval (from an earlier episode of care) makes the measure due at the start."""
    if interval_days < 1:
        raise ValueError(f"interval_days must be at least 1, got {interval_days}")
    if last_measured is None:
        return program_start
    return max(program_start, last_measured + timedelta(days=interval_days))


@dataclass(frozen=True, slots=True)
class OutcomeDue:
    """One instrument's schedule for a patient in a program."""

    instrument: str  # "odi" or "psfs"
    last_measured: date | None
    due_on: date

    def is_due(self, today: date) -> bool:
        return self.due_on <= today

    def days_overdue(self, today: date) -> int:
        """0 on the day it falls due (and before)."""
        return max(0, (today - self.due_on).days)


def last_measured_on(scores: Iterable[tuple[str, date]]) -> dict[str, date]:
    """The latest date of each instrument among (instrument, measured_on) pairs."""
    last: dict[str, date] = {}
    for instrument, measured_on in scores:
        if instrument not in last or measured_on > last[instrument]:
            last[instrument] = measured_on
    return last


def outcomes_due(
    last_measured: Mapping[str, date | None],
    program_start: date | None,
    interval_days: int,
    *,
    due_by: date | None = None,
) -> tuple[OutcomeDue, ...]:
    """Each instrument's schedule (in the order given); none without a program in effect.
    `due_by`: only the measures due by that day (a caseload asks this of every patient)."""
    if program_start is None:
        return ()
    schedule = []
    for instrument, last in last_measured.items():
        due_on = outcome_due_on(last, program_start, interval_days)
        if due_by is None or due_on <= due_by:
            schedule.append(OutcomeDue(instrument, last, due_on))
    return tuple(schedule)
