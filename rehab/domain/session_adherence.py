"""Adherence of one daily session: how much of the prescribed work was done (0–1).

The day's session is the exercises *due* that day. An exercise prescribed 7 or more times a
week is due every day. One prescribed fewer times (`sessions_per_week` 1–6) is due when the
7-day window ending that day can no longer hold `sessions_per_week` sessions without it: fewer
than that were performed in the 6 days before. Performed on a day it is not due (a session
beyond the week's count), it is extra work and left out of that day's session: it neither
raises the day's adherence (hiding a skipped exercise) nor lowers it (a set or two of it,
credited by the fraction of sets, used to score below doing nothing).

So Mon/Wed/Fri at 3×/week scores 100 % on every day of the week (each session day is due:
the 6 days before hold 2 sessions), and an exercise that is stopped is due again (and scored
0) within a week.

One refinement of that rule, for the start of a program: days of the 6-day window that came
before the program started cannot have been logged, so they are given the benefit of the
doubt (each may have been a session, up to `sessions_per_week`). Without it a patient
starting on a Monday with a Mon/Wed/Fri routine would show a miss on the Tuesday and the
Thursday, and every program change would repeat that (a new program has new prescriptions,
with no history). With it, any regular schedule scores 1.0 from the first day, and doing
nothing scores 0 at the latest once the first week has passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# From this many sessions a week an exercise is due every day.
DAILY = 7
# The days before the log's day that decide whether a less-than-daily exercise is due.
DAYS_BEFORE = DAILY - 1


@dataclass(frozen=True)
class PrescribedDose:
    prescription_id: int
    sets: int
    sessions_per_week: int = DAILY
    # Of the DAYS_BEFORE days before the log's day: on how many the exercise was performed
    # (see `performed`), and on how many its program was already in effect.
    performed_before: int = 0
    days_in_effect_before: int = DAYS_BEFORE


@dataclass(frozen=True)
class DoneEntry:
    prescription_id: int
    done: bool
    sets_done: int = 0


def performed(entry: DoneEntry | None) -> bool:
    """The exercise was (at least partly) done: ticked done, or some sets logged. The log
    service's context query counts the same thing in SQL (`done OR sets_done > 0`)."""
    return entry is not None and (entry.done or entry.sets_done > 0)


def is_due(dose: PrescribedDose) -> bool:
    """Whether the exercise is part of the day's session (module docstring)."""
    if dose.sessions_per_week >= DAILY:
        return True
    days_before_start = DAYS_BEFORE - max(0, min(DAYS_BEFORE, dose.days_in_effect_before))
    benefit_of_doubt = min(days_before_start, dose.sessions_per_week)
    return dose.performed_before + benefit_of_doubt < dose.sessions_per_week


def session_adherence(
    prescribed: Iterable[PrescribedDose], done: Mapping[int, DoneEntry]
) -> float | None:
    """Mean credit over the exercises due today; None when nothing was prescribed, 1.0 when
    exercises are prescribed but none is due today (nothing of the session was missed).

    An exercise ticked done with no set count gets full credit (the phone form is a single
    tap); with a set count, credit is the fraction of prescribed sets, capped at 1, so doing
    extra of one exercise does not hide skipping another. Due exercises not logged count 0.
    """
    credits: list[float] = []
    any_prescribed = False
    for dose in prescribed:
        any_prescribed = True
        entry = done.get(dose.prescription_id)
        if not is_due(dose):
            continue
        if entry is None or not performed(entry):
            credits.append(0.0)
        elif entry.sets_done == 0:
            credits.append(1.0)
        else:
            credits.append(min(1.0, entry.sets_done / dose.sets))
    if not any_prescribed:
        return None
    if not credits:
        return 1.0
    return round(sum(credits) / len(credits), 3)
