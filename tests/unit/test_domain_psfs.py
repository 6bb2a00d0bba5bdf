"""PSFS measures are compared on the activities rated in both (`comparable_psfs`), in the
function-decline detector as everywhere else: a patient whose clinician replaced an activity
she can now do easily by a harder one has not declined because the mean of the new set is
lower."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rehab.domain.detection import OutcomeScore, PinnedBaseline, detect_episodes
from rehab.domain.questionnaires import (
    PsfsComparison,
    QuestionnaireError,
    activity_key,
    check_distinct_activities,
    comparable_psfs,
    psfs_ratings,
    score_psfs,
)
from tests.unit.test_domain_builders import day, series


def psfs(on: date, **ratings: int) -> OutcomeScore:
    """A PSFS as the app stores it: its score rounded, its activities by key."""
    return OutcomeScore(
        on,
        "psfs",
        score_psfs(list(ratings.values())),
        tuple((activity_key(name), float(r)) for name, r in ratings.items()),
    )


def declines(*measures: OutcomeScore) -> list[tuple[date, date | None, float | None, str]]:
    patient = dataclasses.replace(series([1] * 200), outcomes=measures)
    return [
        (e.detected_on, e.resolved_on, e.current, e.explanation)
        for e in detect_episodes(patient)
        if e.kind == "function_decline"
    ]


def figures(compared: PsfsComparison | None) -> tuple[float, tuple[float, ...], int] | None:
    return None if compared is None else (compared.current, compared.earlier, compared.activities)


def test_names_compare_without_case_or_spacing() -> None:
    assert activity_key("  Climbing   STAIRS ") == activity_key("climbing stairs")
    rows = [
        {"activity": "Walking 30 minutes", "rating": 6},
        {"activity": " ", "rating": 5},  # no name
        {"activity": "Sitting", "rating": None},  # no rating
        "not a row",
        {"activity": "Lifting", "rating": 4},
    ]
    assert psfs_ratings(rows) == (("walking 30 minutes", 6.0), ("lifting", 4.0))
    for stored in (None, {}, "text", {"activity": "x", "rating": 1}):
        assert psfs_ratings(stored) == ()


def test_an_activity_twice_in_one_psfs_is_refused() -> None:
    check_distinct_activities(["Walking", "Sitting", "Lifting"])
    with pytest.raises(QuestionnaireError, match="'walking' is twice"):
        check_distinct_activities(["Walking", "Sitting", "walking "])


def test_the_same_activities_compare_their_own_scores() -> None:
    earlier = [psfs(day(0), walking=6, sitting=7, lifting=5)]
    latest = psfs(day(30), Walking=4, SITTING=5, lifting=4)  # the same three, other case
    compared = comparable_psfs(latest, earlier)
    assert figures(compared) == (4.3, (6.0,), 0)
    assert compared is not None and compared.on == {"walking", "sitting", "lifting"}


def test_a_replaced_activity_is_left_out_of_both_sides() -> None:
    earlier = [
        psfs(day(0), walking=6, sitting=7, lifting=5),
        psfs(day(20), walking=6, sitting=8, lifting=5),
    ]
    latest = psfs(day(40), walking=6, sitting=7, running=1)  # lifting replaced by running
    assert figures(comparable_psfs(latest, earlier)) == (6.5, (6.5, 7.0), 2)


def test_earlier_measures_without_enough_in_common_drop_out_oldest_first() -> None:
    old_set = psfs(day(0), walking=6, sitting=7, lifting=5)
    new_set = psfs(day(20), stairs=8, running=4, cycling=6)
    latest = psfs(day(40), stairs=5, running=3, cycling=6)
    # Nothing is common to the three; without the older one, all of them are.
    assert figures(comparable_psfs(latest, [old_set, new_set])) == (4.7, (6.0,), 0)
    assert figures(comparable_psfs(psfs(day(40), stairs=5, running=3, sitting=2), [new_set])) == (
        4.0,
        (6.0,),
        2,
    )
    # One activity in common is too few: its 2-point change is not the mean's MCID.
    assert comparable_psfs(psfs(day(40), stairs=5, running=3, lifting=6), [old_set]) is None
    everything_new = psfs(day(40), swimming=2, golf=2, dancing=3)
    assert comparable_psfs(everything_new, [old_set, new_set]) is None


def test_within_limits_the_comparison_to_the_activities_given() -> None:
    earlier = [psfs(day(0), walking=8, sitting=8, lifting=7)]
    latest = psfs(day(30), walking=8, sitting=5, lifting=5)
    both = frozenset({"sitting", "lifting"})
    assert figures(comparable_psfs(latest, earlier, both)) == (5.0, (7.5,), 2)
    assert comparable_psfs(psfs(day(30), walking=8, sitting=5, golf=5), earlier, both) is None


def test_an_activity_named_twice_counts_as_the_mean_of_its_ratings() -> None:
    stored_twice = OutcomeScore(
        day(0), "psfs", 5.7, (("walking", 2.0), ("walking", 9.0), ("sitting", 6.0))
    )
    latest = OutcomeScore(day(30), "psfs", 5.5, (("walking", 5.0), ("sitting", 6.0)))
    # Walking counts once, as 5.5: (5.5 + 6) / 2 = 5.8 before (not the recorded 5.7).
    assert figures(comparable_psfs(latest, [stored_twice])) == (5.5, (5.8,), 2)


def test_scores_without_their_activities_compare_as_they_are() -> None:
    bare = OutcomeScore(day(0), "psfs", 6.0)
    latest = psfs(day(30), walking=3, sitting=4, lifting=5)
    assert figures(comparable_psfs(latest, [bare])) == (4.0, (6.0,), 0)
    assert figures(comparable_psfs(OutcomeScore(day(30), "psfs", 3.0), [latest])) == (
        3.0,
        (4.0,),
        0,
    )


def test_a_harder_activity_in_place_of_an_easy_one_is_not_a_decline() -> None:
    found = declines(
        psfs(day(0), walking=8, sitting=8, lifting=7),
        psfs(day(30), walking=8, sitting=9, lifting=7),
        # Walking is easy now: her clinician replaces it by running, which she cannot do yet.
        # The mean falls by 2.4; on the two activities rated in each, she is the same.
        psfs(day(60), running=1, sitting=8, lifting=7),
    )
    assert found == []


def test_a_decline_on_the_activities_kept_is_alerted_and_says_so() -> None:
    found = declines(
        psfs(day(0), walking=8, sitting=8, lifting=7),
        psfs(day(30), walking=8, sitting=9, lifting=7),
        psfs(day(60), running=9, sitting=5, lifting=5),  # the new one rated high
    )
    (detected_on, resolved_on, current, explanation) = found[0]
    assert len(found) == 1
    assert (detected_on, resolved_on, current) == (day(60), None, 5.0)
    assert explanation.startswith("PSFS on the 2 activities rated in each: 5/10 on ")
    assert "vs baseline 7.75/10 (median of 2 earlier measures; lower is worse)" in explanation


def test_all_activities_replaced_starts_the_comparison_again() -> None:
    before = [
        psfs(day(0), walking=8, sitting=8, lifting=7),
        psfs(day(30), walking=8, sitting=9, lifting=7),
    ]
    replaced = psfs(day(60), running=2, cycling=3, swimming=2)
    assert declines(*before, replaced) == []
    # The next measure compares with the new set's first one.
    worse = psfs(day(90), running=0, cycling=0, swimming=0)
    assert [d[:3] for d in declines(*before, replaced, worse)] == [(day(90), None, 0.0)]


def test_an_open_decline_is_judged_on_the_activities_it_was_raised_on() -> None:
    before = [
        psfs(day(0), walking=8, sitting=8, lifting=7),
        psfs(day(30), walking=8, sitting=9, lifting=7),
    ]
    worse = psfs(day(60), running=9, sitting=5, lifting=5)  # down on sitting and lifting
    # Walking rated high again says nothing of the two that declined: still open.
    mixed = psfs(day(90), walking=10, sitting=6, lifting=6)
    assert [d[:3] for d in declines(*before, worse, mixed)] == [(day(60), None, 5.0)]
    recovered = psfs(day(120), walking=10, sitting=8, lifting=7)
    assert [d[:3] for d in declines(*before, worse, mixed, recovered)] == [(day(60), day(120), 5.0)]


def test_an_open_decline_closes_when_its_activities_are_replaced_and_later_ones_alert() -> None:
    before = [
        psfs(day(0), walking=8, sitting=8, lifting=7),
        psfs(day(30), walking=8, sitting=8, lifting=7),
    ]
    worse = psfs(day(60), walking=5, sitting=5, lifting=5)
    replaced = psfs(day(90), running=9, cycling=9, swimming=9)
    patient = dataclasses.replace(series([1] * 200), outcomes=(*before, worse, replaced))
    (closed,) = [e for e in detect_episodes(patient) if e.kind == "function_decline"]
    assert (closed.detected_on, closed.resolved_on, closed.activities_replaced) == (
        day(60),
        day(90),
        True,
    )
    # The new activities are followed from there: a fall on them is alerted.
    later = psfs(day(150), running=1, cycling=1, swimming=1)
    assert [d[:2] for d in declines(*before, worse, replaced, later)] == [
        (day(60), day(90)),
        (day(150), None),
    ]


def test_a_change_of_exactly_the_mcid_alerts_whatever_the_subtraction_rounds_to() -> None:
    # 2.3 − 0.3 is 1.9999999999999998 in binary floating point: still the 2-point MCID.
    found = declines(OutcomeScore(day(0), "psfs", 2.3), OutcomeScore(day(30), "psfs", 0.3))
    assert [d[:3] for d in found] == [(day(30), None, 0.3)]


def test_a_pin_is_named_as_the_baseline() -> None:
    pinned = PinnedBaseline("psfs", 7.5, day(0))
    patient = dataclasses.replace(
        series([1] * 120),
        outcomes=(psfs(day(30), walking=5, sitting=5, lifting=5),),
        pinned_baselines=(pinned,),
    )
    (alert,) = [e for e in detect_episodes(patient) if e.kind == "function_decline"]
    assert "vs baseline 7.5/10 (pinned by the clinician; lower is worse)" in alert.explanation


ACTIVITY_SET = ("walking", "sitting", "lifting", "stairs", "running")


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=3, max_value=5),
    st.lists(st.lists(st.integers(0, 10), min_size=5, max_size=5), min_size=1, max_size=8),
)
def test_with_the_same_activities_the_ratings_change_nothing(
    n_activities: int, ratings: list[list[int]]
) -> None:
    """Where every PSFS rates the same activities (the usual case), the detector gives what
    it gives from the scores alone."""
    names = ACTIVITY_SET[:n_activities]
    measures = [
        psfs(day(20 * i), **dict(zip(names, own[:n_activities], strict=True)))
        for i, own in enumerate(ratings)
    ]
    bare = [OutcomeScore(m.date, m.instrument, m.score) for m in measures]
    with_ratings = dataclasses.replace(series([1] * 200), outcomes=tuple(measures))
    without = dataclasses.replace(series([1] * 200), outcomes=tuple(bare))
    assert detect_episodes(with_ratings) == detect_episodes(without)


def test_the_measure_that_replaces_an_open_declines_activities_is_judged_itself() -> None:
    before = [psfs(day(0), a=8, b=8, c=8, d=8, e=8), psfs(day(30), a=8, b=8, c=8, d=8, e=8)]
    worse = psfs(day(60), a=4, b=4, x=4)  # down on a and b
    # Rates none of those two, and is far down on c, d and e, rated before: the first
    # decline closes, and this one is alerted at once against the measures that rated them.
    replaced = psfs(day(90), c=2, d=2, e=2)
    assert [d[:3] for d in declines(*before, worse, replaced)] == [
        (day(60), day(90), 4.0),
        (day(90), None, 2.0),
    ]
