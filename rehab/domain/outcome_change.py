"""How a patient's ODI or PSFS changed over her episode of care, and a caseload's summary of
those changes: the clinic's outcome figures (design §3's MCIDs, the same numbers the
function-decline detector uses).

A change is the latest score minus the first score of the episode, turned the way that reads
"better" (ODI: lower is better; PSFS: higher is better), and judged against the minimal
clinically important difference alone: ODI 10 points, PSFS 2 points. (Design §3 also gives
ODI's 30 %; from a low start 30 % is a few points, inside ODI's measurement error, so the
points rule holds alone, as in the detector.) A PSFS whose activities changed during the
episode is compared, as in the detector, on the activities rated at both ends
(`questionnaires.comparable_psfs`). The figures state what changed; what it means for the
patient stays the clinician's judgement.
"""

from __future__ import annotations

import datetime as dt
import enum
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from rehab.domain.clinical import ODI_MCID, PSFS_MCID, SCORE_TOLERANCE
from rehab.domain.questionnaires import comparable_psfs
from rehab.domain.series import OutcomeScore

# An intake score is often taken at the assessment, some days before the program starts.
INTAKE_DAYS_BEFORE_PROGRAM = 14


class Verdict(enum.StrEnum):
    BETTER = "better"  # better by at least the MCID
    WORSE = "worse"  # worse by at least the MCID
    WITHIN = "within"  # changed by less than the MCID either way


@dataclass(frozen=True, order=True)
class Score:
    on: dt.date
    value: float
    # A PSFS's activities and ratings (`OutcomeScore.ratings`); empty for ODI.
    ratings: tuple[tuple[str, float], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class OutcomeChange:
    instrument: str  # "odi" or "psfs"
    start: Score
    latest: Score
    scores: int  # how many scores of the episode, start and latest included
    # PSFS: compared on this many activities rated at both ends, each end's value their mean
    # (0: the same activities, the scores as recorded).
    activities: int = 0

    @property
    def change(self) -> float:
        """Latest minus start, in the instrument's own direction (ODI: a fall is better)."""
        return self.latest.value - self.start.value

    @property
    def improvement(self) -> float:
        """The change turned so that positive is better."""
        return -self.change if self.instrument == "odi" else self.change

    @property
    def verdict(self) -> Verdict:
        mcid = mcid_of(self.instrument)
        if self.improvement >= mcid - SCORE_TOLERANCE:
            return Verdict.BETTER
        if -self.improvement >= mcid - SCORE_TOLERANCE:
            return Verdict.WORSE
        return Verdict.WITHIN


def mcid_of(instrument: str) -> float:
    if instrument == "odi":
        return ODI_MCID
    if instrument == "psfs":
        return PSFS_MCID
    raise ValueError(f"unknown instrument {instrument!r}")


@dataclass(frozen=True)
class Program:
    start: dt.date
    end: dt.date | None  # None: no end set


@dataclass(frozen=True)
class Episode:
    """A patient's current episode of care: her latest run of programs one after the other
    (progressing a dose starts a new program the day after the last one ends), counted from
    the fortnight before the first (its intake assessment)."""

    scores_from: dt.date
    ended_on: dt.date | None  # the last program's end, if it has ended by today

    @property
    def ended(self) -> bool:
        return self.ended_on is not None


# Programs this close are one episode (a progression leaves no day between them).
_CONTINUOUS = dt.timedelta(days=1)


def current_episode(programs: Iterable[Program], today: dt.date) -> Episode | None:
    """The episode of the latest program whose intake window has begun by `today` (so a
    returning patient's new intake starts her new episode), back through the programs that
    ran one after the other before it; None without one."""
    intake = dt.timedelta(days=INTAKE_DAYS_BEFORE_PROGRAM)
    begun = sorted((p for p in programs if p.start - intake <= today), key=lambda p: p.start)
    if not begun:
        return None
    first = last = begun[-1]
    for earlier in reversed(begun[:-1]):
        if earlier.end is not None and earlier.end + _CONTINUOUS < first.start:
            break
        first = earlier
    ended = last.end if last.end is not None and last.end < today else None
    return Episode(first.start - intake, ended)


def outcome_change(
    instrument: str, scores: Iterable[Score], since: dt.date | None
) -> OutcomeChange | None:
    """The episode's change (its first score to its latest), or None without scores on two
    different days since `since` (two on one day, say the clinician's and the patient's own
    rating, are no change over time). Two on one day: the later recorded is given last. A PSFS
    starts from the episode's first score sharing enough activities with the latest
    (`questionnaires.MIN_COMMON_ACTIVITIES`), both ends then taken on those activities."""
    mcid_of(instrument)  # an unknown instrument is a caller's error, at once
    kept = sorted((s for s in scores if since is None or s.on >= since), key=lambda score: score.on)
    if len(kept) < 2 or kept[-1].on == kept[0].on:
        return None
    latest = kept[-1]
    # The first score comparable with the latest (PSFS: enough activities in common; ODI: any).
    position, compared = 0, None
    while compared is None:
        if kept[position].on == latest.on:
            return None
        compared = comparable_psfs(
            _as_outcome(instrument, latest), [_as_outcome(instrument, kept[position])]
        )
        position += compared is None
    start = kept[position]
    if compared.activities:
        start = replace(start, value=compared.earlier[0])
        latest = replace(latest, value=compared.current)
    return OutcomeChange(instrument, start, latest, len(kept) - position, compared.activities)


def _as_outcome(instrument: str, score: Score) -> OutcomeScore:
    return OutcomeScore(
        score.on, "odi" if instrument == "odi" else "psfs", score.value, score.ratings
    )


@dataclass(frozen=True)
class OutcomeSummary:
    instrument: str
    measured_twice: int  # patients with a start score and a later one
    better: int
    worse: int
    within: int
    median_improvement: float | None  # positive: better
    # Patients with one score of the episode so far (a PSFS: none earlier on enough of the
    # latest one's activities to compare).
    awaiting: int


def summarize(instrument: str, changes: Sequence[OutcomeChange], awaiting: int) -> OutcomeSummary:
    """The caseload's figures for one instrument from its patients' changes."""
    verdicts = [c.verdict for c in changes]
    return OutcomeSummary(
        instrument=instrument,
        measured_twice=len(changes),
        better=verdicts.count(Verdict.BETTER),
        worse=verdicts.count(Verdict.WORSE),
        within=verdicts.count(Verdict.WITHIN),
        median_improvement=(statistics.median(c.improvement for c in changes) if changes else None),
        awaiting=awaiting,
    )
