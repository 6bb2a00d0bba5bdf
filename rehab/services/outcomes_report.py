"""A clinician's outcome figures (`/clinic/outcomes`): for the patients of her care teams, how
ODI and PSFS changed over each one's episode of care (`rehab.domain.outcome_change`: from
the first score of the episode to the latest, against the MCID), and the caseload's counts.

A patient's episode is her latest program begun by today, ended or not (a discharged
patient's outcome is the one a clinic reports), from the fortnight before it began; without
a program, all her scores. Scores marked entered in error are left out. Three statements
whatever the caseload; every patient shown is audited as read (`outcomes.read`).
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
    episode_start,
    outcome_change,
    summarize,
)
from rehab.domain.vocabulary import Instrument
from rehab.services import audit
from rehab.services.access import NotFound, visible_patient_ids
from rehab.services.actors import Actor

ACTION = "outcomes.read"
INSTRUMENTS = (Instrument.ODI.value, Instrument.PSFS.value)


@dataclass(frozen=True)
class PatientOutcome:
    patient_id: int
    name: str
    episode_from: dt.date | None  # None: no program, every score counts
    change: OutcomeChange


@dataclass(frozen=True)
class OutcomesReport:
    summaries: list[OutcomeSummary]  # ODI, then PSFS
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
    starts = dict(
        session.execute(
            sa.select(Program.patient_id, sa.func.max(Program.start_date))
            .where(Program.patient_id.in_(visible), Program.start_date <= today)
            .group_by(Program.patient_id)
        ).all()
    )
    scores: dict[tuple[int, str], list[Score]] = defaultdict(list)
    rows = session.execute(
        sa.select(
            OutcomeMeasure.patient_id,
            OutcomeMeasure.instrument,
            OutcomeMeasure.measured_on,
            OutcomeMeasure.score,
        )
        .where(
            OutcomeMeasure.patient_id.in_(visible),
            OutcomeMeasure.current(),
            OutcomeMeasure.measured_on <= today,
        )
        .order_by(OutcomeMeasure.measured_on, OutcomeMeasure.id)
    )
    for patient_id, measured, measured_on, score in rows:
        scores[(patient_id, measured.value)].append(Score(measured_on, score))

    patients: list[PatientOutcome] = []
    summaries = []
    shown: set[int] = set()
    for instrument in INSTRUMENTS:
        changes = []
        awaiting = 0
        for (patient_id, of), own in scores.items():
            if of != instrument:
                continue
            since = episode_start(starts.get(patient_id))
            change = outcome_change(instrument, own, since)
            if change is None:
                if any(since is None or s.on >= since for s in own):
                    awaiting += 1
                    shown.add(patient_id)
                continue
            changes.append(change)
            shown.add(patient_id)
            patients.append(PatientOutcome(patient_id, names.get(patient_id, ""), since, change))
        summaries.append(summarize(instrument, changes, awaiting))
    patients.sort(key=lambda p: (_ORDER[p.change.verdict.value], p.name, p.change.instrument))
    # Counts of a patient are a read of her data as much as her row is.
    audit.record_per_patient(session, actor, ACTION, shown, none_shown_row=False)
    return OutcomesReport(summaries, patients)
