"""Evaluating patients: load their data as plain series, run the pure detector, and reconcile
its episodes with the stored alerts. The worker's tasks and `rehab bench detect` call this.

Reconciliation is idempotent: an episode is stored once (unique per patient, kind, metric and
detection day; inserts ignore conflicts), so a task delivered twice, or two workers evaluating
the same patient, create one alert.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rehab.db.models import (
    Alert,
    AlertStatus,
    Event,
    OutcomeMeasure,
    Patient,
    Program,
    SessionLog,
    utcnow,
)
from rehab.db.models import PinnedBaseline as PinnedBaselineRow
from rehab.domain.detection import (
    DEFAULT_CONFIG,
    AlertEpisode,
    DetectionConfig,
    OutcomeScore,
    PatientEvent,
    PatientSeries,
    PinnedBaseline,
    detect_episodes_many,
)
from rehab.domain.event_text import fall_mechanism
from rehab.domain.vocabulary import EventType, FallLocation, LandedOn, RedFlag, Side
from rehab.services import audit, notifications, series_copy
from rehab.services.actors import SYSTEM
from rehab.services.series import RED_FLAG_COLUMNS

# A decision looks back at most ~10 weeks; 400 days of logs reproduce the full replay (see
# rehab.domain.detection) at a fraction of the cost.
LOOKBACK_DAYS = 400


@dataclass
class EvaluationResult:
    opened: list[int] = field(default_factory=list)  # ids of alerts that need notifying
    stored: int = 0  # episodes newly stored (open or already resolved)
    resolved: int = 0


def load_series(
    session: Session, patient_ids: Sequence[int], since: dt.date | None
) -> dict[int, PatientSeries]:
    """The plain series of several patients (keyed and ordered as `patient_ids`), in 4
    queries whatever their number. On PostgreSQL (psycopg) the logs come by binary COPY into
    numpy arrays (`series_copy`): the periodic scan reads a year of logs of every patient."""
    connection = _copy_connection(session)
    if connection is not None:
        logs = series_copy.log_columns(series_copy.read_log_arrays(connection, patient_ids, since))
    else:
        logs = _select_log_columns(session, patient_ids, since)
    events = _events(session, patient_ids)
    outcomes = _outcomes(session, patient_ids)
    pins = _pins(session, patient_ids)
    return {
        pid: _series(pid, logs.get(pid, _NO_LOGS), events, outcomes, pins) for pid in patient_ids
    }


_NO_LOGS: series_copy.LogColumns = ((), (), (), (), (), ())


def _series(
    pid: int,
    logs: series_copy.LogColumns,
    events: Mapping[int, list[PatientEvent]],
    outcomes: Mapping[int, list[OutcomeScore]],
    pins: Mapping[int, list[PinnedBaseline]],
) -> PatientSeries:
    dates, back_pain, leg_pain, adherence, leg_side, red_flags = logs
    return PatientSeries(
        patient_id=str(pid),
        dates=dates,
        back_pain=back_pain,
        leg_pain=leg_pain,
        adherence=adherence,
        leg_side=leg_side,
        red_flags=red_flags,
        events=tuple(events.get(pid, ())),
        outcomes=tuple(outcomes.get(pid, ())),
        pinned_baselines=tuple(pins.get(pid, ())),
    )


def _copy_connection(session: Session) -> psycopg.Connection[Any] | None:
    """The psycopg connection of the session's transaction, when the fast path applies."""
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return None
    connection = session.connection().connection.driver_connection
    return connection if isinstance(connection, psycopg.Connection) else None


def _select_log_columns(
    session: Session, patient_ids: Sequence[int], since: dt.date | None
) -> dict[int, series_copy.LogColumns]:
    """The generic path (SQLite: the demo): a plain SELECT, one row tuple per log."""
    log_query = sa.select(
        SessionLog.patient_id,
        SessionLog.log_date,
        SessionLog.back_pain,
        SessionLog.leg_pain,
        SessionLog.adherence,
        SessionLog.leg_side,
        *RED_FLAG_COLUMNS,
    ).where(SessionLog.patient_id.in_(patient_ids))
    if since is not None:
        log_query = log_query.where(SessionLog.log_date >= since)
    columns: dict[int, list[list[Any]]] = defaultdict(lambda: [[], [], [], [], [], []])
    flags = list(RedFlag)
    for row in session.execute(log_query.order_by(SessionLog.patient_id, SessionLog.log_date)):
        cols = columns[row[0]]
        cols[0].append(row[1])
        cols[1].append(row[2])
        cols[2].append(row[3])
        cols[3].append(row[4])
        cols[4].append(row[5].value if row[5] is not None else None)
        cols[5].append(tuple(f.value for f, on in zip(flags, row[6:], strict=True) if on))
    return {
        pid: (tuple(c[0]), tuple(c[1]), tuple(c[2]), tuple(c[3]), tuple(c[4]), tuple(c[5]))
        for pid, c in columns.items()
    }


def _events(session: Session, patient_ids: Sequence[int]) -> dict[int, list[PatientEvent]]:
    # Columns, not ORM objects: a scan batch holds thousands of events.
    events: dict[int, list[PatientEvent]] = defaultdict(list)
    for pid, day, kind, note, side, region, location, steps, height, landed in session.execute(
        sa.select(
            Event.patient_id,
            Event.event_date,
            Event.event_type,
            Event.description,
            Event.side,
            Event.body_region,
            Event.fall_location,
            Event.fall_steps,
            Event.fall_height_cm,
            Event.fall_landed_on,
        )
        .where(Event.patient_id.in_(patient_ids))
        .order_by(Event.patient_id, Event.event_date, Event.id)
    ):
        events[pid].append(
            _patient_event(day, kind, note, side, region, location, steps, height, landed)
        )
    return events


def _outcomes(session: Session, patient_ids: Sequence[int]) -> dict[int, list[OutcomeScore]]:
    outcomes: dict[int, list[OutcomeScore]] = defaultdict(list)
    for patient_id, measured_on, instrument, score in session.execute(
        sa.select(
            OutcomeMeasure.patient_id,
            OutcomeMeasure.measured_on,
            OutcomeMeasure.instrument,
            OutcomeMeasure.score,
        )
        .where(OutcomeMeasure.patient_id.in_(patient_ids))
        .order_by(OutcomeMeasure.patient_id, OutcomeMeasure.measured_on, OutcomeMeasure.id)
    ):
        outcomes[patient_id].append(
            OutcomeScore(date=measured_on, instrument=instrument.value, score=score)
        )
    return outcomes


def _pins(session: Session, patient_ids: Sequence[int]) -> dict[int, list[PinnedBaseline]]:
    pins: dict[int, list[PinnedBaseline]] = defaultdict(list)
    for patient_id, metric, level, effective_from, spread in session.execute(
        sa.select(
            PinnedBaselineRow.patient_id,
            PinnedBaselineRow.metric,
            PinnedBaselineRow.level,
            PinnedBaselineRow.effective_from,
            PinnedBaselineRow.spread,
        )
        .where(PinnedBaselineRow.patient_id.in_(patient_ids))
        .order_by(PinnedBaselineRow.patient_id, PinnedBaselineRow.id)
    ):
        pins[patient_id].append(
            PinnedBaseline(metric=metric, level=level, effective_from=effective_from, spread=spread)
        )
    return pins


def to_patient_event(event: Event) -> PatientEvent:
    """An `Event` as the detector sees it."""
    return _patient_event(
        event.event_date,
        event.event_type,
        event.description,
        event.side,
        event.body_region,
        event.fall_location,
        event.fall_steps,
        event.fall_height_cm,
        event.fall_landed_on,
    )


def _patient_event(
    event_date: dt.date,
    event_type: EventType,
    description: str,
    side: Side | None,
    body_region: str | None,
    fall_location: FallLocation | None,
    fall_steps: int | None,
    fall_height_cm: int | None,
    fall_landed_on: LandedOn | None,
) -> PatientEvent:
    mechanism = None
    if event_type == "fall":
        mechanism = (
            fall_mechanism(fall_location, fall_steps, fall_height_cm, fall_landed_on) or None
        )
    return PatientEvent(
        date=event_date,
        event_type=event_type.value,
        note=description,
        side=side.value if side else None,
        body_region=body_region,
        mechanism=mechanism,
    )


def evaluate_patients(
    session: Session,
    patient_ids: Sequence[int],
    today: dt.date,
    config: DetectionConfig = DEFAULT_CONFIG,
) -> EvaluationResult:
    """Detect and reconcile for a batch of patients; the caller commits."""
    if not patient_ids:
        return EvaluationResult()
    # Serialise evaluations of the same patients (PostgreSQL row locks; SQLite has one
    # writer anyway), so two workers never reconcile one patient at the same time.
    session.execute(
        sa.select(Patient.id)
        .where(Patient.id.in_(patient_ids))
        .order_by(Patient.id)
        .with_for_update()
    ).all()
    since = today - dt.timedelta(days=LOOKBACK_DAYS)
    return reconcile(session, detect(session, patient_ids, today, since, config))


def detect(
    session: Session,
    patient_ids: Sequence[int],
    as_of: dt.date,
    since: dt.date | None,
    config: DetectionConfig = DEFAULT_CONFIG,
) -> dict[int, tuple[AlertEpisode, ...]]:
    """The detector's episodes for each patient, from logs dated `since` (None: all) on."""
    series = load_series(session, patient_ids, since)
    periods = _program_periods(session, patient_ids)
    # The batch call runs the same replay vectorised over the patients: several times
    # cheaper per patient than one call each.
    detected = detect_episodes_many(series.values(), config, as_of=as_of)
    return {
        pid: tuple(
            e
            for e in detected[str(pid)]
            if e.kind != "missed_logs" or _in_program(e.detected_on, periods.get(pid, ()))
        )
        for pid in series
    }


def _program_periods(
    session: Session, patient_ids: Sequence[int]
) -> dict[int, list[tuple[dt.date, dt.date | None]]]:
    periods: dict[int, list[tuple[dt.date, dt.date | None]]] = defaultdict(list)
    for patient_id, start, end in session.execute(
        sa.select(Program.patient_id, Program.start_date, Program.end_date).where(
            Program.patient_id.in_(patient_ids)
        )
    ):
        periods[patient_id].append((start, end))
    return periods


def _in_program(day: dt.date, periods: Iterable[tuple[dt.date, dt.date | None]]) -> bool:
    """Missed logging only matters while a program asks the patient to log."""
    return any(start <= day and (end is None or day <= end) for start, end in periods)


def reconcile(
    session: Session, episodes_by_patient: Mapping[int, Iterable[AlertEpisode]]
) -> EvaluationResult:
    result = EvaluationResult()
    stored = _stored_alerts(session, list(episodes_by_patient))
    now = utcnow()
    new_rows: list[dict[str, Any]] = []
    for patient_id, episodes in episodes_by_patient.items():
        known = stored.get(patient_id, {})
        for episode in episodes:
            key = (episode.kind, episode.metric or "", episode.detected_on)
            existing = known.get(key)
            if existing is not None:
                alert_id, status = existing
                if episode.resolved_on is not None and status is not AlertStatus.RESOLVED:
                    _auto_resolve(session, alert_id, episode.resolved_on, now)
                    audit.record(
                        session, SYSTEM, "alert.resolve", patient_id, target=f"alert:{alert_id}"
                    )
                    result.resolved += 1
                continue
            if episode.resolved_on is None and episode.kind != "red_flag":
                # A still-unresolved older alert of this kind and metric that the detector no
                # longer follows (e.g. its log was edited) gives way to the new episode.
                for (kind, metric, _), (old_id, status) in known.items():
                    if (kind, metric) == key[:2] and status is not AlertStatus.RESOLVED:
                        _auto_resolve(session, old_id, episode.detected_on, now, superseded=True)
            new_rows.append(_row(patient_id, episode, now))
    for alert_id, patient_id, status in _insert_ignoring_duplicates(session, new_rows):
        result.stored += 1
        if status is AlertStatus.OPEN:
            result.opened.append(alert_id)
        audit.record(session, SYSTEM, "alert.create", patient_id, target=f"alert:{alert_id}")
    return result


def _insert_ignoring_duplicates(
    session: Session, rows: list[dict[str, Any]]
) -> list[tuple[int, int, AlertStatus]]:
    """Insert the episodes; a row another evaluation stored first is skipped, not an error."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Alert).on_conflict_do_nothing().returning(Alert.id, Alert.patient_id, Alert.status)
    )
    return [(r[0], r[1], r[2]) for r in session.execute(statement, rows)]


def _stored_alerts(
    session: Session, patient_ids: list[int]
) -> dict[int, dict[tuple[str, str, dt.date], tuple[int, AlertStatus]]]:
    out: dict[int, dict[tuple[str, str, dt.date], tuple[int, AlertStatus]]] = defaultdict(dict)
    for row in session.execute(
        sa.select(
            Alert.id, Alert.patient_id, Alert.kind, Alert.metric, Alert.detected_on, Alert.status
        ).where(Alert.patient_id.in_(patient_ids))
    ):
        out[row.patient_id][(row.kind, row.metric, row.detected_on)] = (row.id, row.status)
    return out


def _auto_resolve(
    session: Session, alert_id: int, on: dt.date, now: dt.datetime, superseded: bool = False
) -> None:
    note = (
        "Superseded by a newer alert of the same kind."
        if superseded
        else ("Resolved automatically: back near baseline for a sustained period.")
    )
    session.execute(
        sa.update(Alert)
        .where(Alert.id == alert_id, Alert.status != AlertStatus.RESOLVED)
        .values(status=AlertStatus.RESOLVED, resolved_on=on, resolved_at=now, resolve_note=note)
    )


def _row(patient_id: int, episode: AlertEpisode, now: dt.datetime) -> dict[str, Any]:
    resolved = episode.resolved_on is not None
    return {
        "patient_id": patient_id,
        "kind": episode.kind,
        "metric": episode.metric or "",
        "severity": episode.severity,
        "onset": episode.onset,
        "detected_on": episode.detected_on,
        "resolved_on": episode.resolved_on,
        "baseline": episode.baseline,
        "current": episode.current,
        "change": episode.change,
        "baseline_source": episode.baseline_source[:300],
        "related_events": [e.to_json_dict() for e in episode.related_events],
        "explanation": episode.explanation,
        "status": AlertStatus.RESOLVED if resolved else AlertStatus.OPEN,
        "resolved_at": now if resolved else None,
        "resolve_note": "Already resolved when first evaluated." if resolved else "",
        "created_at": now,
    }


def evaluate_and_commit(
    session: Session, patient_ids: Sequence[int], today: dt.date
) -> EvaluationResult:
    """One transaction per batch: the alerts (and, with them, their notifications) commit
    together or not at all."""
    result = evaluate_patients(session, patient_ids, today)
    notifications.queue_for_alerts(session, result.opened)
    audit.commit(session)
    return result
