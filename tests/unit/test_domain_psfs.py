"""PSFS measures are compared on the activities rated in both (`comparable_psfs`), in the
function-decline detector as everywhere else: a patient whose clinician replaced an activity
she can now do easily by a harder one has not declined because the mean of the new set is
lower."""

from __future__ import annotations

import dataclasses
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from rehab.domain.detection import OutcomeScore, detect_episodes
from rehab.domain.questionnaires import (
    PsfsComparison,
    activity_key,
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
    patient = dataclasses.replace(series([1] * 120), outcomes=measures)
    return [
        (e.detected_on, e.resolved_on, e.current, e.explanation)
        for e in detect_episodes(patient)
        if e.kind == "function_decline"
    ]


def test_names_compare_without_case_or_spacing() -> None:
    assert activity_key("  Climbing   STAIRS ") == activity_key("climbing stairs")
    rows = [
        {"activity": "Walking 30 minutes", "rating": 6},
        {"activity": " ", "rating": 5},  # no name
        {"activity": "Sitting", "rating": None},  # no rating
        {"activity": "Lifting", "rating": 4},
    ]
    assert psfs_ratings(rows) == (("walking 30 minutes", 6.0), ("lifting", 4.0))


def test_the_same_activities_compare_their_own_scores() -> None:
    earlier = [psfs(day(0), walking=6, sitting=7, lifting=5)]
    latest = psfs(day(30), Walking=4, SITTING=5, lifting=4)  # the same three, other case
    assert comparable_psfs(latest, earlier) == PsfsComparison(4.3, (6.0,), 0)


def test_a_replaced_activity_is_left_out_of_both_sides() -> None:
    earlier = [
        psfs(day(0), walking=6, sitting=7, lifting=5),
        psfs(day(20), walking=6, sitting=8, lifting=5),
    ]
    latest = psfs(day(40), walking=6, sitting=7, running=1)  # lifting replaced by running
    compared = comparable_psfs(latest, earlier)
    assert compared == PsfsComparison(6.5, (6.5, 7.0), 2)


def test_earlier_measures_without_a_common_activity_drop_out_oldest_first() -> None:
    old_set = psfs(day(0), walking=6, sitting=7, lifting=5)
    new_set = psfs(day(20), stairs=8, running=4, cycling=6)
    latest = psfs(day(40), stairs=5, running=3, cycling=6)
    # Nothing is common to the three; without the older one, all of them are.
    assert comparable_psfs(latest, [old_set, new_set]) == PsfsComparison(4.7, (6.0,), 0)
    assert comparable_psfs(psfs(day(40), stairs=5, running=3, lifting=6), [old_set]) == (
        PsfsComparison(6.0, (5.0,), 1)
    )
    assert comparable_psfs(psfs(day(40), stairs=5, running=3, sitting=2), [new_set]) == (
        PsfsComparison(4.0, (6.0,), 2)
    )
    # All replaced: not comparable with either.
    everything_new = psfs(day(40), swimming=2, golf=2, dancing=3)
    assert comparable_psfs(everything_new, [old_set, new_set]) is None


def test_scores_without_their_activities_compare_as_they_are() -> None:
    bare = OutcomeScore(day(0), "psfs", 6.0)
    latest = psfs(day(30), walking=3, sitting=4, lifting=5)
    assert comparable_psfs(latest, [bare]) == PsfsComparison(4.0, (6.0,), 0)
    assert comparable_psfs(OutcomeScore(day(30), "psfs", 3.0), [latest]) == (
        PsfsComparison(3.0, (4.0,), 0)
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
    assert "PSFS 5/10" in explanation
    assert "vs baseline 7.75/10" in explanation  # median of 7.5 and 8.0
    assert "median of 2 earlier measures, on the 2 activities rated in each" in explanation


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


def test_an_open_decline_resolves_only_on_comparable_activities() -> None:
    before = [
        psfs(day(0), walking=8, sitting=8, lifting=7),
        psfs(day(30), walking=8, sitting=8, lifting=7),
    ]
    worse = psfs(day(60), walking=5, sitting=5, lifting=5)
    replaced = psfs(day(70), running=9, cycling=9, swimming=9)  # says nothing of the others
    assert [d[:3] for d in declines(*before, worse, replaced)] == [(day(60), None, 5.0)]
    recovered = psfs(day(90), walking=8, sitting=7, lifting=7)
    assert [d[:3] for d in declines(*before, worse, replaced, recovered)] == [
        (day(60), day(90), 5.0)
    ]


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
