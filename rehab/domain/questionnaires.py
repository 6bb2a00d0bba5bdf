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

from collections.abc import Mapping, Sequence
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


def check_distinct_activities(names: Sequence[str]) -> None:
    """A PSFS rates each activity once: the same one twice (case and spacing aside) would
    count twice in the score and cannot be compared between measures."""
    seen: set[str] = set()
    for name in names:
        key = activity_key(name)
        if key in seen:
            raise QuestionnaireError(f"each activity is rated once; {name.strip()!r} is twice")
        seen.add(key)


def psfs_ratings(rows: object) -> tuple[tuple[str, float], ...]:
    """A stored PSFS's `{"activity", "rating"}` rows as (`activity_key`, rating) pairs, in
    order; anything but a list of such rows gives none, and a row without a named activity
    or a numeric rating is left out."""
    if not isinstance(rows, list):
        return ()
    pairs: list[tuple[str, float]] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        name, rating = row.get("activity"), row.get("rating")
        if isinstance(name, str) and name.strip() and isinstance(rating, int | float):
            pairs.append((activity_key(name), float(rating)))
    return tuple(pairs)


# Fewer activities in common than this and two PSFS are not compared: the 2-point MCID is for
# the mean of several activities (one activity's own is nearer 3; Stratford 1995, Horn 2012).
MIN_COMMON_ACTIVITIES = 2


@dataclass(frozen=True, slots=True)
class PsfsComparison:
    """A measure's score and the earlier measures' scores, on the same activities.

    `activities`: how many activities were compared; 0 when every measure rated the same
    ones (or their activities are not known), and the scores are the measures' own. `on`:
    the activities compared (empty where they are not known).
    """

    current: float
    earlier: tuple[float, ...]  # oldest first
    activities: int
    on: frozenset[str] = frozenset()


def comparable_psfs(
    latest: OutcomeScore,
    earlier: Sequence[OutcomeScore],
    within: frozenset[str] | None = None,
) -> PsfsComparison | None:
    """`latest` against `earlier` (oldest first) on the activities rated in all of them (and
    in `within`, when given: an open decline is judged on the activities it was raised on),
    each score then the mean of its ratings of those activities (rounded as `score_psfs`
    rounds; an activity named twice in one measure counts as the mean of its ratings).

    While fewer than `MIN_COMMON_ACTIVITIES` are common to all, the oldest earlier measure is
    dropped (the most recent is the last to go); None when even it shares too few with
    `latest`: her activities were replaced, and the scores measure other things. Scores
    whose activities are not known (ODI, or a PSFS stored without them) compare as they
    are."""
    if not earlier:
        return None
    if not latest.ratings or any(not measure.ratings for measure in earlier):
        return PsfsComparison(latest.score, tuple(m.score for m in earlier), 0)
    mine = _by_activity(latest.ratings)
    candidates = set(mine) if within is None else set(mine) & within
    theirs = [_by_activity(measure.ratings) for measure in earlier]
    while theirs:
        common = candidates.intersection(*theirs)
        if len(common) >= MIN_COMMON_ACTIVITIES:
            break
        theirs = theirs[1:]
    else:
        return None
    used = earlier[len(earlier) - len(theirs) :]
    on = frozenset(common)
    if all(
        len(measure.ratings) == len(common) == len(ratings)
        for measure, ratings in ((latest, mine), *zip(used, theirs, strict=True))
    ):
        # The same activities, each once: the scores as recorded.
        return PsfsComparison(latest.score, tuple(m.score for m in used), 0, on)
    return PsfsComparison(
        _mean_of(mine, on),
        tuple(_mean_of(ratings, on) for ratings in theirs),
        len(on),
        on,
    )


def _by_activity(ratings: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Each activity's rating (the mean of its ratings, if named more than once)."""
    grouped: dict[str, list[float]] = {}
    for activity, rating in ratings:
        grouped.setdefault(activity, []).append(rating)
    return {activity: sum(values) / len(values) for activity, values in grouped.items()}


def _mean_of(ratings: Mapping[str, float], activities: frozenset[str]) -> float:
    return round(sum(ratings[a] for a in sorted(activities)) / len(activities), 1)
