"""Reading a patient's record for a page: one access check and one audit row per page, then
the few queries the page needs (the per-item services would each audit again)."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.charts.model import ProgressData
from rehab.db.models import (
    CorrectionAction,
    EntryCorrection,
    Event,
    Finding,
    OutcomeMeasure,
    Patient,
    Prescription,
    Program,
    ProgramPhase,
    SessionLog,
    User,
)
from rehab.domain.outcome_schedule import OutcomeDue, last_measured_on
from rehab.domain.vocabulary import EventType, humanize
from rehab.services.access import require_patient
from rehab.services.actors import Actor
from rehab.services.clinical import CORRECTABLE
from rehab.services.outcome_schedule import outcome_interval_days, outcome_schedule
from rehab.services.programs import phase_on, program_on
from rehab.services.time import clinic_today

RECENT_LOGS = 14
HISTORY_DAYS = 30
HISTORY_EVENTS = 50
# The patient's progress page: weekly means for up to a year, where they started (the first
# of those weeks with logs) and where they are now (the mean of the last 7 days).
PROGRESS_WEEKS = 52


@dataclass(frozen=True)
class PatientRecord:
    """What the clinician's patient page shows."""

    patient: Patient
    display_name: str
    care_team_name: str
    program: Program | None
    phase: ProgramPhase | None
    logs: list[SessionLog]
    events: list[Event]
    findings: list[Finding]
    outcomes: list[OutcomeMeasure]
    has_surgery_history: bool
    today: dt.date
    # ODI's and PSFS's next due dates while a program is in effect (none otherwise).
    outcomes_schedule: tuple[OutcomeDue, ...] = ()
    # Events, findings and scores marked entered in error, newest mark first.
    corrections: tuple[Correction, ...] = ()
    # Marks that were themselves the mistake, taken back: newest first.
    marks_taken_back: tuple[TakenBack, ...] = ()


@dataclass(frozen=True)
class Correction:
    """An entry a clinician marked entered in error, as the record still shows it."""

    kind: str  # "events", "findings" or "outcomes" (clinical.CORRECTABLE)
    record_id: int
    dated: dt.date
    what: str
    marked_at: dt.datetime
    marked_by: str
    reason: str


@dataclass(frozen=True)
class TakenBack(Correction):
    """A mark of entered in error that was itself the mistake, and its taking back: the
    entry is in the record again, and the record says it was once marked."""

    taken_back_at: dt.datetime
    taken_back_by: str


def patient_record(
    session: Session, actor: Actor, patient_id: int, action: str = "patient.read"
) -> PatientRecord:
    """The record, after one access check audited as `action` (the page's read, or e.g. the
    printable summary's)."""
    patient = require_patient(session, actor, patient_id, action)
    today = clinic_today()
    program = program_on(session, patient_id, today)
    logs = list(
        session.scalars(
            sa.select(SessionLog)
            .where(SessionLog.patient_id == patient_id)
            .order_by(SessionLog.log_date.desc())
            .limit(RECENT_LOGS)
        )
    )
    every_event = _events(session, patient_id, limit=None, in_error_too=True)
    every_finding = list(
        session.scalars(
            sa.select(Finding)
            .where(Finding.patient_id == patient_id)
            .order_by(Finding.finding_date.desc(), Finding.id.desc())
        )
    )
    every_outcome = list(
        session.scalars(
            sa.select(OutcomeMeasure)
            .where(OutcomeMeasure.patient_id == patient_id)
            .order_by(OutcomeMeasure.measured_on.desc(), OutcomeMeasure.id.desc())
        )
    )
    corrections, marks_taken_back = _corrections(
        session, patient_id, every_event, every_finding, every_outcome
    )
    events = [e for e in every_event if not e.in_error]
    findings = [f for f in every_finding if not f.in_error]
    outcomes = [m for m in every_outcome if not m.in_error]
    return PatientRecord(
        patient=patient,
        display_name=patient.user.display_name,
        care_team_name=patient.care_team.name,
        program=program,
        phase=phase_on(program, today) if program else None,
        logs=logs,
        events=events,
        findings=findings,
        outcomes=outcomes,
        has_surgery_history=any(e.event_type is EventType.SURGERY for e in events),
        today=today,
        outcomes_schedule=outcome_schedule(
            last_measured_on((m.instrument.value, m.measured_on) for m in outcomes),
            program.start_date if program else None,
            outcome_interval_days(session),
        ),
        corrections=corrections,
        marks_taken_back=marks_taken_back,
    )


def _corrections(
    session: Session,
    patient_id: int,
    events: list[Event],
    findings: list[Finding],
    outcomes: list[OutcomeMeasure],
) -> tuple[tuple[Correction, ...], tuple[TakenBack, ...]]:
    """The marks in force (from the entries' own columns) and the marks taken back (from
    the record's history of corrections, each paired with the mark it took back)."""
    entries: dict[tuple[str, int], tuple[str, Event | Finding | OutcomeMeasure]] = {
        (CORRECTABLE[kind][1], row.id): (kind, row)
        for kind, rows in (("events", events), ("findings", findings), ("outcomes", outcomes))
        for row in rows
    }
    marked = [(kind, row) for kind, row in entries.values() if row.in_error]
    history = list(
        session.scalars(
            sa.select(EntryCorrection)
            .where(EntryCorrection.patient_id == patient_id)
            .order_by(EntryCorrection.at, EntryCorrection.id)
        )
    )
    if not marked and not history:
        return (), ()
    names = {
        user_id: name
        for user_id, name in session.execute(
            sa.select(User.id, User.display_name).where(
                User.id.in_(
                    {row.entered_in_error_by_user_id for _, row in marked}
                    | {c.by_user_id for c in history}
                )
            )
        )
    }
    corrections = [
        Correction(
            kind,
            row.id,
            *describe_entry(row),
            marked_at=row.entered_in_error_at,
            marked_by=names.get(row.entered_in_error_by_user_id or 0, ""),
            reason=row.entered_in_error_reason or "",
        )
        for kind, row in marked
        if row.entered_in_error_at is not None
    ]
    taken_back: list[TakenBack] = []
    for mark, step in _marks_taken_back(history):
        key = (step.entry_kind, step.entry_id)
        if key not in entries:
            continue
        kind, row = entries[key]
        taken_back.append(
            TakenBack(
                kind,
                row.id,
                *describe_entry(row),
                marked_at=mark.at,
                marked_by=names.get(mark.by_user_id, ""),
                reason=mark.reason or "",
                taken_back_at=step.at,
                taken_back_by=names.get(step.by_user_id, ""),
            )
        )
    newest_mark_first = sorted(corrections, key=lambda c: c.marked_at, reverse=True)
    return tuple(newest_mark_first), tuple(reversed(taken_back))


def _marks_taken_back(
    history: Iterable[EntryCorrection],
) -> Iterator[tuple[EntryCorrection, EntryCorrection]]:
    """(mark, its taking back) of each mark taken back, in the order taken back; `history`
    oldest first. A taking back whose mark is not kept here (made outside the app, or taken
    back before the history existed) is left out."""
    last_mark: dict[tuple[str, int], EntryCorrection] = {}
    for step in history:
        key = (step.entry_kind, step.entry_id)
        if step.action is CorrectionAction.MARKED:
            last_mark[key] = step
        elif (mark := last_mark.pop(key, None)) is not None:
            yield mark, step


@dataclass(frozen=True)
class CorrectionStep:
    """One mark of an entry, or one taking back, as its page lists them."""

    at: dt.datetime
    taken_back: bool
    by: str
    reason: str


def entry_corrections(
    session: Session, row: Event | Finding | OutcomeMeasure
) -> list[CorrectionStep]:
    """The entry's marks and takings back, oldest first (access checked by the caller)."""
    kind = next(singular for model, singular in CORRECTABLE.values() if isinstance(row, model))
    return [
        CorrectionStep(at, action is CorrectionAction.TAKEN_BACK, by or "", reason or "")
        for at, action, by, reason in session.execute(
            sa.select(
                EntryCorrection.at,
                EntryCorrection.action,
                User.display_name,
                EntryCorrection.reason,
            )
            .join(User, User.id == EntryCorrection.by_user_id)
            .where(
                EntryCorrection.patient_id == row.patient_id,
                EntryCorrection.entry_kind == kind,
                EntryCorrection.entry_id == row.id,
            )
            .order_by(EntryCorrection.at, EntryCorrection.id)
        )
    ]


def describe_entry(row: Event | Finding | OutcomeMeasure) -> tuple[dt.date, str]:
    """An event's, finding's or score's date and words, for the pages that name one."""
    if isinstance(row, Event):
        return row.event_date, _event_words(row)
    if isinstance(row, Finding):
        return row.finding_date, _finding_words(row)
    return row.measured_on, f"{row.instrument.value.upper()} {row.score:g}"


def _event_words(event: Event) -> str:
    words = humanize(event.event_type.value)
    return f"{words}: {event.description}" if event.description else words


def _finding_words(finding: Finding) -> str:
    if finding.test_name is not None:
        result = finding.result.value if finding.result else ""
        side = f" ({finding.side.value})" if finding.side else ""
        return f"{humanize(finding.test_name.value)}{side} {result}".strip()
    if finding.modality is not None:
        return f"{finding.modality.value.upper()}: {finding.text}".strip()
    return finding.text or humanize(finding.kind.value)


@dataclass(frozen=True)
class PatientHistory:
    """What a patient sees of their own recent history."""

    logs: list[SessionLog]
    events: list[Event]
    since: dt.date
    # Events she marked as logged by mistake whose mark her clinic took back: when it did
    # (they are in her history again; she is told why).
    put_back: dict[int, dt.datetime] = field(default_factory=dict)


def patient_history(
    session: Session, actor: Actor, patient_id: int, days: int = HISTORY_DAYS
) -> PatientHistory:
    require_patient(session, actor, patient_id, "history.read")
    since = clinic_today() - dt.timedelta(days=days - 1)
    logs = list(
        session.scalars(
            sa.select(SessionLog)
            .where(SessionLog.patient_id == patient_id, SessionLog.log_date >= since)
            .order_by(SessionLog.log_date.desc())
        )
    )
    events = _events(session, patient_id, limit=HISTORY_EVENTS)
    return PatientHistory(
        logs=logs, events=events, since=since, put_back=_put_back(session, actor, events)
    )


def _put_back(session: Session, actor: Actor, events: list[Event]) -> dict[int, dt.datetime]:
    """Of `events`, those whose latest correction is her clinic taking back a mark she made
    herself, and when."""
    own = [e.id for e in events if e.recorded_by_user_id == actor.user_id]
    if not own:
        return {}
    history = session.scalars(
        sa.select(EntryCorrection)
        .where(
            EntryCorrection.patient_id == events[0].patient_id,
            EntryCorrection.entry_kind == CORRECTABLE["events"][1],
            EntryCorrection.entry_id.in_(own),
        )
        .order_by(EntryCorrection.at, EntryCorrection.id)
    )
    # The latest taking back of each event decides (her events shown are not marked now).
    latest = {step.entry_id: (mark, step) for mark, step in _marks_taken_back(history)}
    return {
        event_id: step.at
        for event_id, (mark, step) in latest.items()
        if mark.by_user_id == actor.user_id
    }


@dataclass(frozen=True)
class OwnProgram:
    """The patient's program as she does it at home: what, how much, how often, how (the
    library's instructions) and her clinician's notes."""

    today: dt.date
    program: Program | None  # in effect today
    phase: ProgramPhase | None
    exercises: list[Prescription]  # the active ones, in the program's order
    next_program: Program | None  # already prescribed, starting after today
    last_ended: dt.date | None  # with none in effect: when the latest one ended


def own_program(session: Session, actor: Actor, patient_id: int) -> OwnProgram:
    require_patient(session, actor, patient_id, "program.read")
    today = clinic_today()
    program = program_on(session, patient_id, today)
    next_program = session.scalars(
        sa.select(Program)
        .where(Program.patient_id == patient_id, Program.start_date > today)
        .order_by(Program.start_date, Program.id)
        .limit(1)
    ).first()
    last_ended = None
    if program is None:
        last_ended = session.scalar(
            sa.select(sa.func.max(Program.end_date)).where(
                Program.patient_id == patient_id, Program.end_date < today
            )
        )
    return OwnProgram(
        today=today,
        program=program,
        phase=phase_on(program, today) if program else None,
        exercises=[p for p in program.prescriptions if p.active] if program else [],
        next_program=next_program,
        last_ended=last_ended,
    )


@dataclass(frozen=True)
class PatientProgress:
    """What a patient sees of their own progress (numbers chosen to encourage, never to
    judge: no alerts, no baselines)."""

    today: dt.date
    logged_today: bool
    days_logged: int  # ever
    days_logged_30: int  # of the last 30 days
    streak: int  # consecutive days with a log, up to today (or yesterday before today's log)
    best_streak: int
    # Share of prescribed exercise done over the last 7 days (days without a log count as
    # none); None without a program.
    adherence_7d: float | None
    first_log: dt.date | None
    start_leg: float | None
    start_back: float | None
    start_label: str
    now_leg: float | None
    now_back: float | None
    chart: ProgressData


def patient_progress(session: Session, actor: Actor, patient_id: int) -> PatientProgress:
    require_patient(session, actor, patient_id, "progress.read")
    today = clinic_today()
    rows = session.execute(
        sa.select(
            SessionLog.log_date, SessionLog.leg_pain, SessionLog.back_pain, SessionLog.adherence
        )
        .where(SessionLog.patient_id == patient_id, SessionLog.log_date <= today)
        .order_by(SessionLog.log_date)
    ).all()
    first_program = session.scalar(
        sa.select(sa.func.min(Program.start_date)).where(
            Program.patient_id == patient_id, Program.start_date <= today
        )
    )
    return progress_from_rows(today, [(r[0], r[1], r[2], r[3]) for r in rows], first_program)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def progress_from_rows(
    today: dt.date,
    rows: list[tuple[dt.date, int, int, float | None]],
    first_program: dt.date | None,
) -> PatientProgress:
    """The progress numbers from (date, leg, back, adherence) rows in date order."""
    dates = [r[0] for r in rows]
    logged = set(dates)
    streak = 0
    day = today if today in logged else today - dt.timedelta(days=1)
    while day in logged:
        streak += 1
        day -= dt.timedelta(days=1)
    best = run = 0
    previous: dt.date | None = None
    for d in dates:
        run = run + 1 if previous is not None and (d - previous).days == 1 else 1
        best = max(best, run)
        previous = d
    week_ago = today - dt.timedelta(days=6)
    adherence = None
    if first_program is not None:
        days = max(1, min(7, (today - first_program).days + 1))
        done = sum(r[3] or 0.0 for r in rows if r[0] >= week_ago)
        adherence = min(1.0, done / days)
    recent = [r for r in rows if r[0] >= week_ago]

    week_ends: list[dt.date] = []
    leg: list[float | None] = []
    back: list[float | None] = []
    weeks = 0
    if rows:
        weeks = min(PROGRESS_WEEKS, (today - rows[0][0]).days // 7 + 1)
        for k in range(weeks - 1, -1, -1):
            end = today - dt.timedelta(days=7 * k)
            start = end - dt.timedelta(days=6)
            inside = rows[bisect_left(dates, start) : bisect_right(dates, end)]
            week_ends.append(end)
            leg.append(_mean([r[1] for r in inside]))
            back.append(_mean([r[2] for r in inside]))
    # Where they started: their first 7 days of logging, or for someone logging for longer
    # than the chart shows, its first week with logs ("a year ago").
    first_week_is_start = not rows or weeks < PROGRESS_WEEKS
    if first_week_is_start:
        first = [r for r in rows if r[0] < rows[0][0] + dt.timedelta(days=7)]
        start_leg = _mean([r[1] for r in first])
        start_back = _mean([r[2] for r in first])
    else:
        start_leg = next((v for v in leg if v is not None), None)
        start_back = next((v for v in back if v is not None), None)
    start_label = "when you started" if first_week_is_start else "a year ago"
    return PatientProgress(
        today=today,
        logged_today=today in logged,
        days_logged=len(dates),
        days_logged_30=sum(1 for d in dates if d > today - dt.timedelta(days=30)),
        streak=streak,
        best_streak=best,
        adherence_7d=adherence,
        first_log=dates[0] if dates else None,
        start_leg=start_leg,
        start_back=start_back,
        now_leg=_mean([r[1] for r in recent]),
        now_back=_mean([r[2] for r in recent]),
        start_label=start_label,
        chart=ProgressData(
            tuple(week_ends), tuple(leg), tuple(back), start_leg, start_back, start_label
        ),
    )


def _events(
    session: Session, patient_id: int, limit: int | None, *, in_error_too: bool = False
) -> list[Event]:
    query = (
        sa.select(Event)
        .where(Event.patient_id == patient_id)
        .order_by(Event.event_date.desc(), Event.id.desc())
    )
    if not in_error_too:
        query = query.where(Event.current())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def patient_header(session: Session, actor: Actor, patient_id: int, action: str) -> Patient:
    """The patient a form page is about (access checked and audited once)."""
    return require_patient(session, actor, patient_id, action)


def care_team_id(session: Session, patient_id: int) -> int | None:
    """The patient's care team, for a page whose access a service has already checked."""
    return session.scalar(sa.select(Patient.care_team_id).where(Patient.id == patient_id))


def patient_name(session: Session, patient_id: int) -> str:
    """The name for a page whose access a service has already checked and audited."""
    name = session.scalar(
        sa.select(User.display_name)
        .join(Patient, Patient.user_id == User.id)
        .where(Patient.id == patient_id)
    )
    return name or ""
