"""Scoring of the outcome questionnaires (design §2 OutcomeMeasure, §3 MCIDs).

ODI (Oswestry Disability Index, v2.1a): 10 sections scored 0–5; the score is the sum over the
answered sections divided by 5 × answered, as a percentage 0–100. Fairbank & Pynsent 2000 allow
one unanswered section; more missing makes the index unreliable, so we refuse it.

PSFS (Patient-Specific Functional Scale): 3 to 5 patient-chosen activities rated 0 (unable) to
10 (as before injury); the score is their mean (Stratford 1995). A patient's activities are her
own and may change between measures (a clinician replaces one she can now do easily); two PSFS
are compared on the activities rated in both, since the mean of other activities is another
measure (`comparable_psfs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rehab.domain.series import OutcomeScore

ODI_SECTIONS = 10
ODI_MAX_PER_SECTION = 5
ODI_MAX_MISSING_SECTIONS = 1
PSFS_MIN_ACTIVITIES = 3
PSFS_MAX_ACTIVITIES = 5
PSFS_MAX_RATING = 10


class QuestionnaireError(ValueError):
    """The answers cannot be scored; the message says why."""


def score_odi(section_scores: Sequence[int | None]) -> float:
    """ODI percentage 0–100 from the 10 section answers (None = unanswered)."""
    if len(section_scores) != ODI_SECTIONS:
        raise QuestionnaireError(f"ODI has {ODI_SECTIONS} sections, got {len(section_scores)}")
    answered = [s for s in section_scores if s is not None]
    if ODI_SECTIONS - len(answered) > ODI_MAX_MISSING_SECTIONS:
        raise QuestionnaireError(
            f"ODI needs at least {ODI_SECTIONS - ODI_MAX_MISSING_SECTIONS} answered sections"
        )
    for s in answered:
        if not 0 <= s <= ODI_MAX_PER_SECTION:
            raise QuestionnaireError(f"ODI section scores are 0–{ODI_MAX_PER_SECTION}, got {s}")
    return round(100.0 * sum(answered) / (ODI_MAX_PER_SECTION * len(answered)), 1)


def score_psfs(activity_ratings: Sequence[int]) -> float:
    """PSFS mean 0–10 over 3–5 activity ratings."""
    if not PSFS_MIN_ACTIVITIES <= len(activity_ratings) <= PSFS_MAX_ACTIVITIES:
        raise QuestionnaireError(
            f"PSFS rates {PSFS_MIN_ACTIVITIES}–{PSFS_MAX_ACTIVITIES} activities,"
            f" got {len(activity_ratings)}"
        )
    for r in activity_ratings:
        if not 0 <= r <= PSFS_MAX_RATING:
            raise QuestionnaireError(f"PSFS ratings are 0–{PSFS_MAX_RATING}, got {r}")
    return round(sum(activity_ratings) / len(activity_ratings), 1)


ODI_SECTION_TITLES: tuple[str, ...] = (
    "Pain intensity",
    "Personal care",
    "Lifting",
    "Walking",
    "Sitting",
    "Standing",
    "Sleeping",
    "Sex life",
    "Social life",
    "Travelling",
)


def activity_key(name: str) -> str:
    """A PSFS activity as compared between measures: case and spacing do not make another one
    ("Climbing stairs" and "climbing  stairs " are one activity)."""
    return " ".join(name.split()).casefold()


def psfs_ratings(rows: Iterable[Mapping[str, object]]) -> tuple[tuple[str, float], ...]:
    """A stored PSFS's `{"activity", "rating"}` rows as (`activity_key`, rating) pairs, in
    order; a row without a named activity or a numeric rating is left out."""
    pairs: list[tuple[str, float]] = []
    for row in rows:
        name, rating = row.get("activity"), row.get("rating")
        if isinstance(name, str) and name.strip() and isinstance(rating, int | float):
            pairs.append((activity_key(name), float(rating)))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class PsfsComparison:
    """A measure's score and the earlier measures' scores, on the same activities.

    `activities`: how many activities were compared; 0 when every measure rated the same
    ones (or their activities are not known), and the scores are the measures' own.
    """

    current: float
    earlier: tuple[float, ...]  # oldest first
    activities: int


def comparable_psfs(latest: OutcomeScore, earlier: Sequence[OutcomeScore]) -> PsfsComparison | None:
    """`latest` against `earlier` (oldest first) on the activities rated in all of them, each
    score the mean of its ratings of those activities (rounded as `score_psfs` rounds).

    Earlier measures sharing none of them are dropped, oldest first, until some activity is
    common (the most recent earlier measure is the last to go); None when even it shares no
    activity with `latest`: her activities were all replaced, and the scores measure
    different things. Where an activity appears twice in one measure, its first rating
    counts."""
    if not earlier:
        return None
    if not latest.ratings or any(not measure.ratings for measure in earlier):
        return PsfsComparison(latest.score, tuple(m.score for m in earlier), 0)
    mine = _by_activity(latest.ratings)
    theirs = [_by_activity(measure.ratings) for measure in earlier]
    while theirs:
        common = set(mine).intersection(*theirs)
        if common:
            break
        theirs = theirs[1:]
    else:
        return None
    used = earlier[len(earlier) - len(theirs) :]
    if len(common) == len(mine) and all(len(ratings) == len(common) for ratings in theirs):
        return PsfsComparison(latest.score, tuple(m.score for m in used), 0)
    return PsfsComparison(
        _mean_of(mine, common),
        tuple(_mean_of(ratings, common) for ratings in theirs),
        len(common),
    )


def _by_activity(ratings: Sequence[tuple[str, float]]) -> dict[str, float]:
    by_activity: dict[str, float] = {}
    for activity, rating in ratings:
        by_activity.setdefault(activity, rating)
    return by_activity


def _mean_of(ratings: Mapping[str, float], activities: set[str]) -> float:
    return round(sum(ratings[a] for a in activities) / len(activities), 1)
