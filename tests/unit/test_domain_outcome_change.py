"""The episode's ODI/PSFS change and the caseload's summary (rehab.domain.outcome_change):
plain data, no database."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rehab.domain.outcome_change import (
    OutcomeChange,
    Score,
    Verdict,
    episode_start,
    outcome_change,
    summarize,
)

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


def test_the_episode_is_the_scores_from_a_fortnight_before_the_program() -> None:
    program = dt.date(2025, 6, 1)
    since = episode_start(program)
    assert since == dt.date(2025, 5, 18)
    history = [
        Score(dt.date(2024, 7, 1), 70),  # an earlier episode of care
        Score(dt.date(2025, 5, 20), 44),  # the intake assessment, before the program
        Score(dt.date(2025, 7, 1), 38),
        Score(dt.date(2025, 9, 1), 30),
    ]
    change = outcome_change("odi", reversed(history), since)
    assert change is not None
    assert (change.start, change.latest, change.scores) == (history[1], history[3], 3)
    assert change.verdict is Verdict.BETTER
    assert episode_start(None) is None
    assert outcome_change("odi", history[:1], None) is None  # one score: nothing to compare
    with pytest.raises(ValueError, match="unknown instrument"):
        outcome_change("sf36", history, None)


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
