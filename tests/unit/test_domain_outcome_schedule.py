"""When ODI and PSFS fall due (rehab.domain.outcome_schedule), hypothesis."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rehab.domain.outcome_schedule import (
    OutcomeDue,
    last_measured_on,
    outcome_due_on,
    outcomes_due,
)

DAYS = st.dates(dt.date(2024, 1, 1), dt.date(2027, 12, 31))
INTERVALS = st.integers(1, 120)


@given(DAYS, INTERVALS)
def test_never_measured_is_due_from_the_program_start(start: dt.date, interval: int) -> None:
    assert outcome_due_on(None, start, interval) == start


@given(DAYS, DAYS, INTERVALS)
def test_due_an_interval_after_the_last_score_and_never_before_the_program(
    last: dt.date, start: dt.date, interval: int
) -> None:
    due = outcome_due_on(last, start, interval)
    assert due >= start
    if last + dt.timedelta(days=interval) >= start:
        assert due == last + dt.timedelta(days=interval)
    else:  # a score from before this program (another episode of care): due at once
        assert due == start
    # A newer score never brings the next one forward.
    later = last + dt.timedelta(days=1)
    assert outcome_due_on(later, start, interval) >= due


def test_worked_example_and_overdue_days() -> None:
    start = dt.date(2025, 3, 1)
    (odi, psfs) = outcomes_due({"odi": dt.date(2025, 3, 3), "psfs": None}, start, 30)
    assert odi == OutcomeDue("odi", dt.date(2025, 3, 3), dt.date(2025, 4, 2))
    assert not odi.is_due(dt.date(2025, 4, 1))
    assert odi.is_due(dt.date(2025, 4, 2)) and odi.days_overdue(dt.date(2025, 4, 2)) == 0
    assert odi.days_overdue(dt.date(2025, 4, 12)) == 10
    assert psfs.due_on == start and psfs.days_overdue(dt.date(2025, 3, 8)) == 7
    assert outcomes_due({"odi": None}, None, 30) == ()  # no program: not scheduled
    # Only what is due by a day: PSFS (due from the start), not ODI (due 2025-04-02).
    due = outcomes_due(
        {"odi": dt.date(2025, 3, 3), "psfs": None}, start, 30, due_by=dt.date(2025, 3, 8)
    )
    assert due == (psfs,)
    with pytest.raises(ValueError, match="interval_days"):
        outcome_due_on(None, start, 0)


@given(st.lists(st.tuples(st.sampled_from(["odi", "psfs"]), DAYS), max_size=12))
def test_last_measured_is_each_instruments_latest(scores: list[tuple[str, dt.date]]) -> None:
    last = last_measured_on(scores)
    assert set(last) == {instrument for instrument, _ in scores}
    for instrument, day in last.items():
        assert day == max(d for i, d in scores if i == instrument)
