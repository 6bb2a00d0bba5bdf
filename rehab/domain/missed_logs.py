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

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from itertools import pairwise
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


class Gap(NamedTuple):
    """A stretch of at least N days without a log, while logging was asked."""

    onset: int  # its first day
    detected: int  # its Nth day
    resolved: int | None  # the next log's day, or the day after the run ended; None: open
    last_log: int | None  # the log before it, if any (it may precede the run)
    run_start: int  # the first day of its run
    run_ended: bool = False  # resolved by the end of the run, not by a log


# Days without a log between two logs (exclusive); None for "no log before" (the stretch
# before the first log) or "no log after" (up to as_of).
Stretch = tuple[int | None, int | None]


def stretches_of(log_days: Sequence[int]) -> list[Stretch]:
    """Every stretch around the logs: before the first, between each two, after the last."""
    bounds: list[int | None] = [None, *log_days, None]
    return list(pairwise(bounds))


def asked_gaps(
    stretches: Iterable[Stretch],
    runs: Sequence[Period],
    as_of: int,
    n_missing: int,
    known_from: int | None = None,
) -> list[Gap]:
    """The stretches of `n_missing` days or more without a log, inside `runs`, up to `as_of`.

    `stretches`: the patient's stretches without logs in date order (`stretches_of`; the
    detector passes only those of `n_missing` days or more, the others cannot hold a gap),
    none after `as_of`. `known_from`: the first day the logs are known from (a window of a
    longer history): the stretch before the first log then has an unknown beginning, and a
    gap in it is left out unless its run began inside the window."""
    gaps: list[Gap] = []
    bounds = [
        (
            start.toordinal(),
            end.toordinal() if end is not None and end.toordinal() < as_of else as_of,
            end is not None and end.toordinal() < as_of,
        )
        for start, end in runs
        if start.toordinal() <= as_of
    ]
    for last_log, next_log in stretches:
        first_day = last_log + 1 if last_log is not None else None
        last_day = next_log - 1 if next_log is not None else as_of
        for run_start, run_last, ended in bounds:
            if first_day is None:
                if known_from is not None and run_start < known_from:
                    continue
                onset = run_start
            else:
                onset = max(first_day, run_start)
            until = min(last_day, run_last)
            if until - onset + 1 < n_missing:
                continue
            detected = onset + n_missing - 1
            if until == last_day and next_log is not None:
                gaps.append(Gap(onset, detected, next_log, last_log, run_start))
            elif ended and until == run_last:
                gaps.append(Gap(onset, detected, run_last + 1, last_log, run_start, True))
            else:
                gaps.append(Gap(onset, detected, None, last_log, run_start))
    return gaps
