"""The episode's ODI/PSFS change and the caseload's summary (rehab.domain.outcome_change):
plain data, no database."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rehab.domain.outcome_change import (
    Episode,
    OutcomeChange,
    Program,
    Score,
    Verdict,
    current_episode,
    outcome_change,
    summarize,
)
from rehab.domain.questionnaires import activity_key

DAY = dt.date(2025, 3, 1)


def scores(*values: float, start: dt.date = DAY, every: int = 30) -> list[Score]:
    return [Score(start + dt.timedelta(days=every * i), v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("instrument", "start", "latest", "verdict"),
    [
        ("odi", 40, 30, Verdict.BETTER),  # 10 points lower: the MCID exactly
        ("odi", 40, 30.1, Verdict.WITHIN),
        ("odi", 30, 40, Verdict.WORSE),
        ("odi", 20, 14, Verdict.WITHIN),  # 30 % but 6 points: within ODI's error
        ("psfs", 3, 5, Verdict.BETTER),  # higher is better for PSFS
        ("psfs", 5, 3, Verdict.WORSE),
        ("psfs", 4, 5.9, Verdict.WITHIN),
    ],
)
def test_the_verdict_is_the_mcid_in_the_instruments_direction(
    instrument: str, start: float, latest: float, verdict: Verdict
) -> None:
    change = outcome_change(instrument, scores(start, latest), None)
    assert change is not None
    assert change.verdict is verdict
    assert change.change == pytest.approx(latest - start)


def test_the_episode_runs_from_a_fortnight_before_its_first_program() -> None:
    program = Program(dt.date(2025, 6, 1), None)
    episode = current_episode([program], dt.date(2025, 9, 1))
    assert episode == Episode(dt.date(2025, 5, 18), None) and not episode.ended
    history = [
        Score(dt.date(2024, 7, 1), 70),  # an earlier episode of care
        Score(dt.date(2025, 5, 20), 44),  # the intake assessment, before the program
        Score(dt.date(2025, 7, 1), 38),
        Score(dt.date(2025, 9, 1), 30),
    ]
    change = outcome_change("odi", reversed(history), episode.scores_from)
    assert change is not None
    assert (change.start, change.latest, change.scores) == (history[1], history[3], 3)
    assert change.verdict is Verdict.BETTER
    assert current_episode([], dt.date(2025, 9, 1)) is None
    assert outcome_change("odi", history[:1], None) is None  # one score: nothing to compare
    with pytest.raises(ValueError, match="unknown instrument"):
        outcome_change("sf36", history, None)


def test_a_progression_continues_the_episode_and_a_break_or_a_return_starts_one() -> None:
    today = dt.date(2025, 10, 1)
    first = Program(dt.date(2025, 3, 1), dt.date(2025, 5, 31))
    progressed = Program(dt.date(2025, 6, 1), None)  # begun the day after the first ended
    assert current_episode([progressed, first], today) == Episode(dt.date(2025, 2, 15), None)
    # Ended by today: the episode is over.
    done = Program(dt.date(2025, 6, 1), dt.date(2025, 9, 15))
    assert current_episode([first, done], today) == Episode(
        dt.date(2025, 2, 15), dt.date(2025, 9, 15)
    )
    # A week's break between programs: a new episode.
    later = Program(dt.date(2025, 6, 8), None)
    assert current_episode([first, later], today) == Episode(dt.date(2025, 5, 25), None)
    # A returning patient: a program starting within a fortnight (her intake is being taken)
    # is her episode; one starting later is not yet.
    returning = Program(dt.date(2025, 10, 10), None)
    assert current_episode([first, returning], today) == Episode(dt.date(2025, 9, 26), None)
    far = Program(dt.date(2025, 11, 1), None)
    assert current_episode([first, far], today) == Episode(
        dt.date(2025, 2, 15), dt.date(2025, 5, 31)
    )


def test_two_scores_on_one_day_are_no_change() -> None:
    same_day = [Score(DAY, 3.0), Score(DAY, 5.0)]
    assert outcome_change("psfs", same_day, None) is None
    later = outcome_change("psfs", [*same_day, Score(DAY + dt.timedelta(days=1), 6.0)], None)
    assert later is not None and later.start == same_day[0] and later.scores == 3


value = st.floats(min_value=0, max_value=100, allow_nan=False).map(lambda v: round(v, 1))


@settings(max_examples=300, deadline=None)
@given(
    instrument=st.sampled_from(["odi", "psfs"]),
    values=st.lists(value, min_size=2, max_size=8),
)
def test_only_the_first_and_latest_count_and_reversing_swaps_better_and_worse(
    instrument: str, values: list[float]
) -> None:
    if instrument == "psfs":
        values = [v / 10 for v in values]
    forward = outcome_change(instrument, scores(*values), None)
    middle_changed = outcome_change(
        instrument, scores(values[0], *[0.0] * (len(values) - 2), values[-1]), None
    )
    backward = outcome_change(instrument, scores(*reversed(values)), None)
    assert forward is not None and middle_changed is not None and backward is not None
    assert forward.verdict is middle_changed.verdict
    assert forward.improvement == pytest.approx(-backward.improvement)
    swapped = {Verdict.BETTER: Verdict.WORSE, Verdict.WORSE: Verdict.BETTER}
    assert backward.verdict is swapped.get(forward.verdict, Verdict.WITHIN)
    if values[0] == values[-1]:
        assert forward.verdict is Verdict.WITHIN


def test_the_summary_counts_each_verdict_and_the_median_improvement() -> None:
    changes = [
        c
        for c in (
            outcome_change("odi", scores(50, 30), None),  # +20 better
            outcome_change("odi", scores(30, 28), None),  # +2 within
            outcome_change("odi", scores(20, 34), None),  # -14 worse
        )
        if c is not None
    ]
    summary = summarize("odi", changes, awaiting=4)
    assert (summary.measured_twice, summary.better, summary.within, summary.worse) == (3, 1, 1, 1)
    assert summary.median_improvement == pytest.approx(2)
    assert summary.awaiting == 4
    empty = summarize("psfs", [], awaiting=0)
    assert empty.median_improvement is None and empty.measured_twice == 0


def test_a_change_is_plain_data() -> None:
    change = OutcomeChange("psfs", Score(DAY, 2.0), Score(DAY, 4.5), 2)
    assert change.improvement == pytest.approx(2.5) and change.verdict is Verdict.BETTER


def rated(on: dt.date, **ratings: int) -> Score:
    """A PSFS score as the report reads it: its mean, its activities by key."""
    value = round(sum(ratings.values()) / len(ratings), 1)
    return Score(on, value, tuple((activity_key(a), float(r)) for a, r in ratings.items()))


def test_a_psfs_is_compared_on_the_activities_rated_at_both_ends() -> None:
    later = DAY + dt.timedelta(days=40)
    # Walking replaced by running: the means say +1.0 (within), the two kept activities +2.5.
    change = outcome_change(
        "psfs", [rated(DAY, walking=3, sitting=3, lifting=4), rated(later, running=1,
                                                                    sitting=6, lifting=6)],
        None,
    )  # fmt: skip
    assert change is not None
    assert (change.start, change.latest, change.activities) == (
        Score(DAY, 3.5),
        Score(later, 6.0),
        2,
    )
    assert change.verdict is Verdict.BETTER
    # The same activities: the recorded scores, as before.
    same = outcome_change(
        "psfs", [rated(DAY, walking=3, sitting=3, lifting=4), rated(later, walking=4,
                                                                    sitting=4, lifting=4)],
        None,
    )  # fmt: skip
    assert same is not None and (same.start.value, same.latest.value, same.activities) == (
        3.3,
        4.0,
        0,
    )


def test_a_psfs_starts_from_the_first_score_sharing_an_activity_with_the_latest() -> None:
    first = rated(DAY, walking=3, sitting=3, lifting=4)
    replaced = rated(DAY + dt.timedelta(days=20), running=2, cycling=2, swimming=3)
    latest = rated(DAY + dt.timedelta(days=40), running=5, cycling=5, swimming=5)
    change = outcome_change("psfs", [first, replaced, latest], None)
    assert change is not None
    assert (change.start, change.scores, change.activities) == (replaced, 2, 0)
    # With none in common at all, there is no change to state.
    assert outcome_change("psfs", [first, latest], None) is None
