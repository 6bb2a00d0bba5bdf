"""A clinician's outcome figures (`/clinic/outcomes`): for the patients of her care teams, how
ODI and PSFS changed over each one's current episode of care (`rehab.domain.outcome_change`:
from the first score of the episode to the latest, against the MCID), and the caseload's
counts, for all episodes and for those ended.

A patient's episode is her latest run of programs one after the other (a progression starts
a new program the day after the last one ends), from the fortnight before the first; a
program starting within the next fortnight already counts (its intake assessment). Without a
program, all her scores. Scores marked entered in error are left out. Four statements
whatever the caseload; every patient shown or counted is audited as read (`outcomes.read`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import OutcomeMeasure, Patient, Program, User
from rehab.domain.outcome_change import (
    OutcomeChange,
    OutcomeSummary,
    Score,
    current_episode,
    outcome_change,
    summarize,
)
from rehab.domain.outcome_change import Program as ProgramSpan
from rehab.domain.questionnaires import psfs_ratings
from rehab.domain.vocabulary import Instrument
from rehab.services import audit
from rehab.services.access import NotFound, visible_patient_ids
from rehab.services.actors import Actor
from rehab.services.evaluation import PSFS_ACTIVITIES

ACTION = "outcomes.read"
INSTRUMENTS = (Instrument.ODI.value, Instrument.PSFS.value)


@dataclass(frozen=True)
class PatientOutcome:
    patient_id: int
    name: str
    episode_from: dt.date | None  # None: no program, every score counts
    ended_on: dt.date | None  # the episode's last program ended then
    change: OutcomeChange


@dataclass(frozen=True)
class OutcomesReport:
    summaries: list[OutcomeSummary]  # ODI, then PSFS: every episode
    ended: list[OutcomeSummary]  # the same, of the episodes ended by today
    patients: list[PatientOutcome]  # worse first, then within, then better; by name


_ORDER = {"worse": 0, "within": 1, "better": 2}


def outcomes_report(session: Session, actor: Actor, today: dt.date) -> OutcomesReport:
    if not actor.is_clinician:
        raise NotFound("outcomes")
    visible = visible_patient_ids(actor)
    names = dict(
        session.execute(
            sa.select(Patient.id, User.display_name)
            .join(User, User.id == Patient.user_id)
            .where(Patient.id.in_(visible))
        ).all()
    )
    programs: dict[int, list[ProgramSpan]] = defaultdict(list)
    for patient_id, start, end in session.execute(
        sa.select(Program.patient_id, Program.start_date, Program.end_date).where(
            Program.patient_id.in_(visible)
        )
    ):
        programs[patient_id].append(ProgramSpan(start, end))
    episodes = {pid: current_episode(own, today) for pid, own in programs.items()}
    scores: dict[tuple[int, str], list[Score]] = defaultdict(list)
    rows = session.execute(
        sa.select(
            OutcomeMeasure.patient_id,
            OutcomeMeasure.instrument,
            OutcomeMeasure.measured_on,
            OutcomeMeasure.score,
            PSFS_ACTIVITIES,
        )
        .where(
            OutcomeMeasure.patient_id.in_(visible),
            OutcomeMeasure.current(),
            OutcomeMeasure.measured_on <= today,
        )
        .order_by(OutcomeMeasure.measured_on, OutcomeMeasure.id)
    )
    for patient_id, measured, measured_on, score, activities in rows:
        scores[(patient_id, measured.value)].append(
            Score(measured_on, score, psfs_ratings(activities))
        )

    patients: list[PatientOutcome] = []
    summaries, ended = [], []
    shown: set[int] = set()
    for instrument in INSTRUMENTS:
        changes: list[tuple[OutcomeChange, bool]] = []
        awaiting = awaiting_ended = 0
        for (patient_id, of), own in scores.items():
            if of != instrument:
                continue
            episode = episodes.get(patient_id)
            since = episode.scores_from if episode else None
            over = episode is not None and episode.ended
            change = outcome_change(instrument, own, since)
            if change is None:
                if any(since is None or s.on >= since for s in own):
                    awaiting += 1
                    awaiting_ended += over
                    shown.add(patient_id)
                continue
            changes.append((change, over))
            shown.add(patient_id)
            patients.append(
                PatientOutcome(
                    patient_id,
                    names.get(patient_id, ""),
                    since,
                    episode.ended_on if episode else None,
                    change,
                )
            )
        summaries.append(summarize(instrument, [c for c, _ in changes], awaiting))
        ended.append(summarize(instrument, [c for c, over in changes if over], awaiting_ended))
    patients.sort(key=lambda p: (_ORDER[p.change.verdict.value], p.name, p.change.instrument))
    # Counts of a patient are a read of her data as much as her row is.
    audit.record_per_patient(session, actor, ACTION, shown, none_shown_row=False)
    return OutcomesReport(summaries, ended, patients)
