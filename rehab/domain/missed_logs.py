"""Missed logging while a program asks for logs.

A series may say on which days the patient was asked to log (`PatientSeries.logging_asked`:
her programs' start and end dates). Then a stretch without logs counts only inside an unbroken
run of programs: from the run's start (a patient who has not logged since her program began,
or since she was taken on again after a break), between logs, and up to the run's end, which
closes a stretch still open then (a discharge). Without it (the CSV contract of `rehab
detect`), logging is asked from the first log on, for good.

Plain integers: days are date ordinals.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import NamedTuple

# A program's first and last day (None: no end set).
Period = tuple[date, date | None]
_ONE_DAY = timedelta(days=1)


def program_runs(periods: Iterable[Period]) -> list[Period]:
    """The programs as unbroken runs of days: a program replaced by the next (ended the day
    before it starts) is one run with it; overlapping ones too. Ordered by start."""
    runs: list[Period] = []
    for start, end in sorted(periods, key=lambda period: period[0]):
        if runs:
            run_start, run_end = runs[-1]
            if run_end is None or start <= run_end + _ONE_DAY:
                longer = None if run_end is None or end is None else max(run_end, end)
                runs[-1] = (run_start, longer)
                continue
        runs.append((start, end))
    return runs


def run_of(day: date, runs: Iterable[Period]) -> Period | None:
    """The run of programs in effect on `day`, if any."""
    for start, end in runs:
        if start <= day and (end is None or day <= end):
            return start, end
    return None


class Gap(NamedTuple):
    """A stretch of at least N days without a log, while logging was asked."""

    onset: int  # its first day
    detected: int  # its Nth day
    resolved: int | None  # the next log's day, or the day after the run ended; None: open
    last_log: int | None  # the log before it, if any (it may precede the run)
    run_start: int  # the first day of its run


def asked_gaps(
    log_days: Sequence[int],
    runs: Sequence[Period],
    as_of: int,
    n_missing: int,
    known_from: int | None = None,
) -> list[Gap]:
    """The stretches of `n_missing` days or more without a log, inside `runs`, up to `as_of`.

    `log_days`: the patient's logs, increasing, none after `as_of`. `known_from`: the first day
    the logs are known from (a window of a longer history); a stretch that may have begun
    before it is left out, as its onset cannot be known."""
    gaps: list[Gap] = []
    for start, end in runs:
        first = start.toordinal()
        if first > as_of:
            break
        ended = end is not None and end.toordinal() < as_of
        last = end.toordinal() if end is not None and ended else as_of
        cursor_known = known_from is None or first >= known_from
        cursor = first if cursor_known else max(first, known_from or first)
        i = bisect_left(log_days, cursor)
        j = bisect_right(log_days, last)
        before = log_days[i - 1] if i > 0 else None
        for k in range(i, j + 1):
            next_log = log_days[k] if k < j else None
            stop = next_log if next_log is not None else last + 1
            if cursor_known and stop - cursor >= n_missing:
                resolved = next_log if next_log is not None else (last + 1 if ended else None)
                gaps.append(Gap(cursor, cursor + n_missing - 1, resolved, before, first))
            if next_log is not None:
                cursor, cursor_known, before = next_log + 1, True, next_log
    return gaps
