"""The day's session adherence (`rehab.domain.session_adherence`): exercises prescribed less
than daily count only on the days they are due."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rehab.domain.session_adherence import (
    DAYS_BEFORE,
    DoneEntry,
    PrescribedDose,
    is_due,
    session_adherence,
)

SETTINGS = settings(max_examples=200, deadline=None)


def dose(
    pid: int = 1,
    sets: int = 3,
    per_week: int = 7,
    before: int = 0,
    in_effect: int = DAYS_BEFORE,
) -> PrescribedDose:
    return PrescribedDose(
        pid, sets, per_week, performed_before=before, days_in_effect_before=in_effect
    )


def simulate(per_week: Sequence[int], done_days: Sequence[set[int]], days: int) -> list[float]:
    """Day-by-day adherence from the program's first day (day 0), as the log service computes
    it: each exercise's performed days in the 6 days before, and how many of those days the
    program was in effect. `done_days[i]`: the days exercise i was done."""
    scores = []
    for day in range(days):
        window = range(max(0, day - DAYS_BEFORE), day)
        doses = [
            dose(i, 3, f, before=sum(d in done_days[i] for d in window), in_effect=len(window))
            for i, f in enumerate(per_week)
        ]
        done = {i: DoneEntry(i, True) for i in range(len(per_week)) if day in done_days[i]}
        score = session_adherence(doses, done)
        assert score is not None
        scores.append(score)
    return scores


def test_credit_rules_for_a_daily_program_are_unchanged() -> None:
    doses = [dose(1, sets=3), dose(2, sets=4), dose(3, sets=2)]
    done = {
        1: DoneEntry(1, True),  # one tap: full credit
        2: DoneEntry(2, True, sets_done=2),  # half the sets
        3: DoneEntry(3, False),  # not done
    }
    assert session_adherence(doses, done) == pytest.approx(0.5)
    assert session_adherence(doses, {1: DoneEntry(1, True, sets_done=9)}) == pytest.approx(0.333)
    assert session_adherence([], {}) is None


def test_a_rest_day_of_a_three_times_a_week_exercise_is_not_counted() -> None:
    daily, thrice = dose(1), dose(2, per_week=3, before=3)
    # Done the daily one, the other was done three times in the 6 days before: 100 %.
    assert session_adherence([daily, thrice], {1: DoneEntry(1, True)}) == 1.0
    # Ticked "not done" counts the same as not listed.
    assert (
        session_adherence([daily, thrice], {1: DoneEntry(1, True), 2: DoneEntry(2, False)}) == 1.0
    )
    # Only twice in the 6 days before: due today, and missing it halves the day.
    short = dose(2, per_week=3, before=2)
    assert session_adherence([daily, short], {1: DoneEntry(1, True)}) == 0.5
    # Done anyway, beyond the week's count: extra work, left out. A set or two of it used to
    # score 0.667, below doing nothing (1.0); done in full, it used to hide a skipped one.
    partial = {1: DoneEntry(1, True), 2: DoneEntry(2, False, sets_done=1)}
    assert session_adherence([daily, thrice], partial) == 1.0
    assert (
        session_adherence([daily, thrice], {1: DoneEntry(1, False), 2: DoneEntry(2, True)}) == 0.0
    )
    # Due today, it is credited by its sets as before.
    assert session_adherence([daily, short], partial) == pytest.approx((1 + 1 / 3) / 2, abs=1e-3)


def test_nothing_due_is_a_complete_session_and_nothing_prescribed_is_unknown() -> None:
    assert session_adherence([dose(1, per_week=2, before=2)], {}) == 1.0
    assert session_adherence([], {1: DoneEntry(1, True)}) is None


def test_the_start_of_a_program_gives_the_days_before_it_the_benefit_of_the_doubt() -> None:
    # Day 1 of a 3×/week exercise, done on day 0: not due (the window may hold 3 more).
    assert not is_due(dose(per_week=3, before=1, in_effect=1))
    # Day 4, done only on day 0: the 2 days before the start may have been the other two.
    assert not is_due(dose(per_week=3, before=1, in_effect=4))
    # Day 5: one day before the start cannot make up the missing two.
    assert is_due(dose(per_week=3, before=1, in_effect=5))
    # A week in, the window is all program: the plain rule.
    assert is_due(dose(per_week=3, before=2, in_effect=DAYS_BEFORE))
    assert not is_due(dose(per_week=3, before=3, in_effect=DAYS_BEFORE))
    # Daily (and twice daily) exercises are always due.
    assert is_due(dose(per_week=7, before=6))
    assert is_due(dose(per_week=14, before=6))


def test_mon_wed_fri_scores_every_day_and_stopping_shows_within_a_week() -> None:
    mwf = {d for d in range(28) if d % 7 in (0, 2, 4)}
    every_day = set(range(35))
    assert simulate([7, 3], [every_day, mwf], 28) == [1.0] * 28
    # Stopped after day 20 (the last Friday was day 18): the daily one still done.
    stopped = {d for d in mwf if d <= 20}
    scores = simulate([7, 3], [every_day, stopped], 35)
    assert scores[:21] == [1.0] * 21
    assert scores[21] == 0.5  # Monday: only Wed and Fri in the 6 days before
    assert scores[25:] == [0.5] * 10


@st.composite
def regular_schedules(draw: st.DrawFn) -> tuple[list[int], list[set[int]], int]:
    """1–4 exercises, each with a weekly pattern of exactly `sessions_per_week` weekdays
    (so every rolling 7 days holds exactly that many), from any weekday of the start."""
    days = draw(st.integers(min_value=1, max_value=42))
    per_week, done_days = [], []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        f = draw(st.integers(min_value=1, max_value=7))
        weekdays = draw(st.sets(st.integers(min_value=0, max_value=6), min_size=f, max_size=f))
        per_week.append(f)
        done_days.append({d for d in range(days) if d % 7 in weekdays})
    return per_week, done_days, days


@SETTINGS
@given(regular_schedules())
def test_a_regular_schedule_always_scores_one(
    schedule: tuple[list[int], list[set[int]], int],
) -> None:
    per_week, done_days, days = schedule
    assert simulate(per_week, done_days, days) == [1.0] * days


@SETTINGS
@given(
    per_week=st.lists(st.integers(min_value=1, max_value=14), min_size=1, max_size=4),
    days=st.integers(min_value=8, max_value=30),
)
def test_doing_nothing_scores_zero_once_a_week_has_passed(per_week: list[int], days: int) -> None:
    scores = simulate(per_week, [set() for _ in per_week], days)
    assert scores[7:] == [0.0] * (days - 7)
    assert scores[DAYS_BEFORE] == 0.0  # in fact from the seventh day


@SETTINGS
@given(
    doses=st.lists(
        st.builds(
            PrescribedDose,
            prescription_id=st.integers(min_value=0, max_value=5),
            sets=st.integers(min_value=1, max_value=20),
            sessions_per_week=st.integers(min_value=1, max_value=14),
            performed_before=st.integers(min_value=0, max_value=DAYS_BEFORE),
            days_in_effect_before=st.integers(min_value=0, max_value=DAYS_BEFORE),
        ),
        max_size=6,
    ),
    entries=st.lists(
        st.builds(
            DoneEntry,
            prescription_id=st.integers(min_value=0, max_value=5),
            done=st.booleans(),
            sets_done=st.integers(min_value=0, max_value=50),
        ),
        max_size=6,
    ),
)
def test_the_score_is_a_fraction(doses: list[PrescribedDose], entries: list[DoneEntry]) -> None:
    score = session_adherence(doses, {e.prescription_id: e for e in entries})
    if doses:
        assert score is not None and 0.0 <= score <= 1.0
    else:
        assert score is None
