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
from rehab.domain.vocabulary import RedFlag
from rehab.services import audit, notifications
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
    """The plain series of several patients, in 4 queries whatever their number."""
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
    columns: dict[int, list[list[Any]]] = {pid: [[], [], [], [], [], []] for pid in patient_ids}
    flags = list(RedFlag)
    for row in session.execute(log_query.order_by(SessionLog.patient_id, SessionLog.log_date)):
        cols = columns[row[0]]
        cols[0].append(row[1])
        cols[1].append(row[2])
        cols[2].append(row[3])
        cols[3].append(row[4])
        cols[4].append(row[5].value if row[5] is not None else None)
        cols[5].append(tuple(f.value for f, on in zip(flags, row[6:], strict=True) if on))

    events: dict[int, list[PatientEvent]] = defaultdict(list)
    for event in session.scalars(sa.select(Event).where(Event.patient_id.in_(patient_ids))):
        events[event.patient_id].append(to_patient_event(event))
    outcomes: dict[int, list[OutcomeScore]] = defaultdict(list)
    for measure in session.execute(
        sa.select(
            OutcomeMeasure.patient_id,
            OutcomeMeasure.measured_on,
            OutcomeMeasure.instrument,
            OutcomeMeasure.score,
        ).where(OutcomeMeasure.patient_id.in_(patient_ids))
    ):
        outcomes[measure[0]].append(
            OutcomeScore(date=measure[1], instrument=measure[2].value, score=measure[3])
        )
    pins: dict[int, list[PinnedBaseline]] = defaultdict(list)
    for pin in session.scalars(
        sa.select(PinnedBaselineRow).where(PinnedBaselineRow.patient_id.in_(patient_ids))
    ):
        pins[pin.patient_id].append(
            PinnedBaseline(
                metric=pin.metric,
                level=pin.level,
                effective_from=pin.effective_from,
                spread=pin.spread,
            )
        )
    return {
        pid: PatientSeries(
            patient_id=str(pid),
            dates=tuple(cols[0]),
            back_pain=tuple(cols[1]),
            leg_pain=tuple(cols[2]),
            adherence=tuple(cols[3]),
            leg_side=tuple(cols[4]),
            red_flags=tuple(cols[5]),
            events=tuple(events[pid]),
            outcomes=tuple(outcomes[pid]),
            pinned_baselines=tuple(pins[pid]),
        )
        for pid, cols in columns.items()
    }


def to_patient_event(event: Event) -> PatientEvent:
    mechanism = None
    if event.event_type == "fall":
        mechanism = (
            fall_mechanism(
                event.fall_location, event.fall_steps, event.fall_height_cm, event.fall_landed_on
            )
            or None
        )
    return PatientEvent(
        date=event.event_date,
        event_type=event.event_type.value,
        note=event.description,
        side=event.side.value if event.side else None,
        body_region=event.body_region,
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
