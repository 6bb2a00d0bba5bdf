"""Scoring of the outcome questionnaires (design §2 OutcomeMeasure, §3 MCIDs).

ODI (Oswestry Disability Index, v2.1a): 10 sections scored 0–5; the score is the sum over the
answered sections divided by 5 × answered, as a percentage 0–100. Fairbank & Pynsent 2000 allow
one unanswered section; more missing makes the index unreliable, so we refuse it.

PSFS (Patient-Specific Functional Scale): 3 to 5 patient-chosen activities rated 0 (unable) to
10 (as before injury); the score is their mean (Stratford 1995).
"""

from __future__ import annotations

from collections.abc import Sequence

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
