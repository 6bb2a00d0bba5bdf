"""A patient's trajectory for the clinician's page and the printable summary: one access check
(through `records.patient_record`), then the few queries the chart and its side panels need.

The data are gathered here once, as the plain types of `rehab.charts.model`; the baseline band
is the detector's own (`rehab.charts.baseline`, an adapter over `rehab.domain.baseline`) with
clinicians' pins applied and each pain alert's baseline held over its episode, exactly as the
detector holds it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.charts import baseline as chart_baseline
from rehab.charts.model import (
    PAIN_METRICS,
    AlertSpan,
    DailyLogs,
    Marker,
    OutcomePoint,
    Trajectory,
)
from rehab.charts.style import ALERT_KIND_LABELS, MARKER_LABELS
from rehab.charts.trajectory import summary_sentences
from rehab.db.models import (
    Alert,
    AlertStatus,
    Event,
    ExerciseEntry,
    Finding,
    PinnedBaseline,
    Prescription,
    SessionLog,
)
from rehab.domain.explain import describe_event, metric_label
from rehab.domain.vocabulary import FindingKind, humanize
from rehab.services.actors import Actor
from rehab.services.alerts import STATUS_ORDER, URGENT_FIRST
from rehab.services.evaluation import to_patient_event
from rehab.services.records import PatientRecord, patient_record

# Events up to this long before the first log still open the chart (the operation that
# brought the patient to rehab, say); older ones are in the timeline only.
EVENTS_BEFORE_FIRST_LOG_DAYS = 90
MIN_CHART_DAYS = 30
ADHERENCE_WINDOWS = (7, 30)


@dataclass(frozen=True)
class TimelineEntry:
    """One day of the event and findings timeline: an event, or that day's findings."""

    date: dt.date
    event: Event | None = None
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class ExerciseAdherence:
    prescription: Prescription
    # Per window (7 and 30 days, from the program's start if later): sessions done / expected.
    done: dict[int, int] = field(default_factory=dict)
    expected: dict[int, float] = field(default_factory=dict)

    def percent(self, days: int) -> int | None:
        expected = self.expected.get(days) or 0.0
        if expected <= 0:
            return None
        return min(100, round(100 * self.done.get(days, 0) / expected))


@dataclass(frozen=True)
class ClinicianPage:
    record: PatientRecord
    chart: Trajectory
    alerts: list[Alert]
    timeline: list[TimelineEntry]
    exercises: list[ExerciseAdherence]
    outcome_points: list[OutcomePoint]
    summary: list[str]

    @property
    def active_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.status is not AlertStatus.RESOLVED]

    @property
    def resolved_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.status is AlertStatus.RESOLVED]

    def exercise_for(self, prescription_id: int) -> ExerciseAdherence | None:
        return next((e for e in self.exercises if e.prescription.id == prescription_id), None)


def clinician_page(
    session: Session, actor: Actor, patient_id: int, action: str = "patient.read"
) -> ClinicianPage:
    """Everything the clinician's patient page (or, with another `action`, the printable
    summary) shows. Raises `NotFound` (audited as denied) for a patient out of reach."""
    record = patient_record(session, actor, patient_id, action=action)
    today = record.today
    logs = daily_logs(session, patient_id, today)
    alerts = list(
        session.scalars(
            sa.select(Alert)
            .where(Alert.patient_id == patient_id)
            .order_by(STATUS_ORDER, URGENT_FIRST, Alert.detected_on.desc(), Alert.id.desc())
        )
    )
    markers = event_markers(record.events) + finding_markers(record.findings)
    spans = tuple(alert_span(a) for a in alerts)
    start = chart_start(logs, markers, spans, today)
    bands = baseline_bands(session, patient_id, logs, alerts, start, today)
    chart = Trajectory(start, today, logs, bands, spans, tuple(markers))
    return ClinicianPage(
        record=record,
        chart=chart,
        alerts=alerts,
        timeline=timeline(record.events, record.findings),
        exercises=exercise_adherence(session, record, today),
        outcome_points=[
            OutcomePoint(m.measured_on, m.instrument.value, m.score) for m in record.outcomes
        ],
        summary=summary_sentences(chart),
    )


# --- the pieces -----------------------------------------------------------------------------


def daily_logs(session: Session, patient_id: int, until: dt.date) -> DailyLogs:
    rows = session.execute(
        sa.select(
            SessionLog.log_date, SessionLog.leg_pain, SessionLog.back_pain, SessionLog.adherence
        )
        .where(SessionLog.patient_id == patient_id, SessionLog.log_date <= until)
        .order_by(SessionLog.log_date)
    ).all()
    if not rows:
        return DailyLogs()
    dates, leg, back, adherence = zip(*rows, strict=True)
    return DailyLogs(dates, leg, back, adherence)


def pins_by_metric(
    session: Session, patient_ids: list[int]
) -> dict[int, dict[str, list[chart_baseline.Pin]]]:
    out: dict[int, dict[str, list[chart_baseline.Pin]]] = defaultdict(lambda: defaultdict(list))
    for row in session.execute(
        sa.select(
            PinnedBaseline.patient_id,
            PinnedBaseline.metric,
            PinnedBaseline.level,
            PinnedBaseline.effective_from,
            PinnedBaseline.spread,
        )
        .where(
            PinnedBaseline.patient_id.in_(patient_ids),
            PinnedBaseline.metric.in_(PAIN_METRICS),
            PinnedBaseline.current(),
        )
        # Of two pins of one date the later row wins (`pin_periods` keeps the order given).
        .order_by(PinnedBaseline.id)
    ):
        out[row[0]][row[1]].append(chart_baseline.Pin(row[2], row[3], row[4]))
    return out


def alert_end(alert: Alert) -> dt.date | None:
    if alert.resolved_on is not None:
        return alert.resolved_on
    if alert.status is AlertStatus.RESOLVED and alert.resolved_at is not None:
        return alert.resolved_at.date()
    return None


def alert_title(alert: Alert) -> str:
    """ "Leg pain up", "Adherence down", "ODI worse", "Red flag", "Missed logs"."""
    if alert.kind == "pain_regression" and alert.metric:
        return f"{metric_label(alert.metric)} up"
    if alert.kind == "function_decline" and alert.metric:
        return f"{metric_label(alert.metric)} worse"
    return ALERT_KIND_LABELS.get(alert.kind, humanize(alert.kind)).capitalize()


def alert_span(alert: Alert) -> AlertSpan:
    return AlertSpan(
        kind=alert.kind,
        metric=alert.metric,
        severity=alert.severity,
        status=alert.status.value,
        onset=alert.onset,
        end=alert_end(alert),
        label=f"{alert_title(alert)} · {alert.severity} · {alert.status.value}",
    )


def baseline_bands(
    session: Session,
    patient_id: int,
    logs: DailyLogs,
    alerts: list[Alert],
    start: dt.date,
    today: dt.date,
) -> dict[str, chart_baseline.BaselineBand]:
    """The detector's baseline band of each pain metric from `start` to `today`: the pins
    applied, each pain alert's baseline held over its episode."""
    pins = pins_by_metric(session, [patient_id]).get(patient_id, {})
    return {
        metric: chart_baseline.daily_band(
            start,
            today,
            logs.dates,
            logs.column(metric),
            pins=pins.get(metric, ()),
            frozen=frozen_levels(alerts, metric),
        )
        for metric in PAIN_METRICS
    }


def frozen_levels(alerts: list[Alert], metric: str) -> list[chart_baseline.Frozen]:
    """The detector holds a pain alert's baseline while the episode lasts."""
    return [
        chart_baseline.Frozen(a.onset, alert_end(a), a.baseline)
        for a in sorted(alerts, key=lambda a: a.onset)
        if a.kind == "pain_regression" and a.metric == metric and a.baseline is not None
    ]


def event_markers(events: list[Event]) -> list[Marker]:
    out = []
    for event in events:
        kind = event.event_type.value
        text = describe_event(to_patient_event(event))
        out.append(
            Marker(
                event.event_date,
                kind,
                MARKER_LABELS.get(kind, "Event"),
                text[:1].upper() + text[1:],
            )
        )
    return out


def finding_markers(findings: list[Finding]) -> list[Marker]:
    by_day: dict[dt.date, list[Finding]] = defaultdict(list)
    for f in findings:
        by_day[f.finding_date].append(f)
    return [
        Marker(day, "findings", MARKER_LABELS["findings"], findings_sentence(items))
        for day, items in sorted(by_day.items())
    ]


def findings_sentence(findings: list[Finding] | tuple[Finding, ...]) -> str:
    """ "9 neurodynamic tests: 9 negative. Observation (left buttock): large bruise …"."""
    tests = [f for f in findings if f.kind is FindingKind.NEURODYNAMIC_TEST]
    parts = []
    if tests:
        counts: dict[str, int] = defaultdict(int)
        for f in tests:
            counts[f.result.value if f.result else "not recorded"] += 1
        results = ", ".join(f"{n} {result}" for result, n in sorted(counts.items()))
        parts.append(f"{len(tests)} neurodynamic test{'s' if len(tests) != 1 else ''}: {results}.")
    for f in findings:
        if f.kind is FindingKind.NEURODYNAMIC_TEST:
            continue
        where = f" ({f.body_region})" if f.body_region else ""
        what = (
            f"Imaging {f.modality.value.upper()}"
            if f.kind is FindingKind.IMAGING and f.modality
            else humanize(f.kind.value)
        )
        parts.append(
            f"{what}{where}: {f.text}".rstrip(": ") + ("" if f.text.endswith(".") else ".")
        )
    return " ".join(parts)


def chart_start(
    logs: DailyLogs, markers: list[Marker], spans: tuple[AlertSpan, ...], today: dt.date
) -> dt.date:
    """The chart's first day: the first log, or an earlier event shortly before it (a surgery
    before rehab began), or an alert's onset; at least `MIN_CHART_DAYS` days."""
    candidates = []
    if logs.dates:
        first = logs.dates[0]
        candidates.append(first)
        floor = first - dt.timedelta(days=EVENTS_BEFORE_FIRST_LOG_DAYS)
        candidates += [m.date for m in markers if floor <= m.date <= today]
        candidates += [s.onset for s in spans if floor <= s.onset <= today]
    start = min(candidates) if candidates else today
    return min(start, today - dt.timedelta(days=MIN_CHART_DAYS - 1))


def timeline(events: list[Event], findings: list[Finding]) -> list[TimelineEntry]:
    """Events and each day's findings, newest first."""
    by_day: dict[dt.date, list[Finding]] = defaultdict(list)
    for f in findings:
        by_day[f.finding_date].append(f)
    entries = [TimelineEntry(e.event_date, event=e) for e in events]
    entries += [TimelineEntry(day, findings=tuple(items)) for day, items in by_day.items()]
    # Same day: the findings after the events (an assessment follows what happened).
    return sorted(entries, key=lambda e: (e.date, e.event is None), reverse=True)


def exercise_adherence(
    session: Session, record: PatientRecord, today: dt.date
) -> list[ExerciseAdherence]:
    """Per prescribed exercise of the current program: sessions done in the last 7 and 30
    days against its weekly frequency (counted from the program's start when later)."""
    program = record.program
    if program is None:
        return []
    longest = max(ADHERENCE_WINDOWS)
    since = max(program.start_date, today - dt.timedelta(days=longest - 1))
    done_in = {
        days: sa.func.sum(
            sa.case(
                (
                    sa.and_(
                        ExerciseEntry.done.is_(True),
                        SessionLog.log_date >= today - dt.timedelta(days=days - 1),
                    ),
                    1,
                ),
                else_=0,
            )
        ).label(f"done_{days}")
        for days in ADHERENCE_WINDOWS
    }
    rows = session.execute(
        sa.select(ExerciseEntry.prescription_id, *done_in.values())
        .join(SessionLog, SessionLog.id == ExerciseEntry.session_log_id)
        .where(
            SessionLog.patient_id == record.patient.id,
            SessionLog.log_date.between(since, today),
            ExerciseEntry.prescription_id.in_([p.id for p in program.prescriptions]),
        )
        .group_by(ExerciseEntry.prescription_id)
    ).all()
    done = {
        row[0]: {d: int(row[i + 1] or 0) for i, d in enumerate(ADHERENCE_WINDOWS)} for row in rows
    }
    out = []
    for p in program.prescriptions:
        if not p.active:
            continue
        expected = {}
        for days in ADHERENCE_WINDOWS:
            first = max(program.start_date, today - dt.timedelta(days=days - 1))
            span = max(0, (today - first).days + 1)
            expected[days] = min(span, p.sessions_per_week * span / 7)
        out.append(ExerciseAdherence(p, done.get(p.id, {}), expected))
    return out
