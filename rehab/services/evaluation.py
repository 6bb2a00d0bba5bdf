"""Evaluating patients: load their data as plain series, run the pure detector, and reconcile
its episodes with the stored alerts. The worker's tasks and `rehab bench detect` call this.

Reconciliation is idempotent: an episode is stored once (unique per patient, kind, metric and
detection day; inserts ignore conflicts), so a task delivered twice, or two workers evaluating
the same patient, create one alert.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, cast

import numpy as np
import sqlalchemy as sa
from flask import has_app_context
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rehab.db import execute_core
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
    ArraySeries,
    DetectionConfig,
    OutcomeScore,
    PatientEvent,
    PatientSeries,
    PinnedBaseline,
    detect_episodes_many,
)
from rehab.domain.episodes import LOOKBACK_KINDS
from rehab.domain.event_text import fall_mechanism
from rehab.domain.missed_logs import Period, program_runs
from rehab.domain.questionnaires import psfs_ratings
from rehab.domain.series import AnySeries
from rehab.domain.vocabulary import Instrument, RedFlag
from rehab.services import alerts, audit, clinic_policy, notifications, series_copy
from rehab.services.actors import SYSTEM
from rehab.services.series import RED_FLAG_COLUMNS

# A decision looks back at most ~12 weeks (`DetectionConfig.decision_lookback_days`): with 400
# days of logs, the detector decides as the full replay does for the last ~10 months, at a
# fraction of the cost; it opens nothing before that (rehab.domain.detection), where the
# evaluations of the time stored what there was. A patient with a stored open alert the
# window does not show is replayed whole (`_not_followed`).
LOOKBACK_DAYS = 400
# A missed-logs alert is its gap, whatever number of days without a log raised it: the clinic
# may change that number (`clinic_policy`), and the same gap is then detected on another day.
# Alerts stay identified by the day detected (the database's unique key), and a gap's episode
# is also matched by its first day (onset): to an open alert of the same gap (kept, nobody
# told again), or to a resolved one (not stored twice). An open one no replay shows any more
# (its gap is now shorter than the number) is resolved once she has logged since its onset.
GAP_KIND = "missed_logs"
# The packed keys of the gaps' first days are stored under this pseudo-kind (`has_gap`).
GAP_ONSET = GAP_KIND + "@onset"
# A log's updated_at is set when its request starts, before it commits; an evaluation that
# starts in between does not see it. Marking the patient evaluated a minute early (longer than
# a request may take, and any clock difference between hosts) keeps such a log "new" for the
# next scan, at the price of one redundant evaluation of recently active patients.
CLOCK_SLACK = dt.timedelta(minutes=1)


@dataclass
class EvaluationResult:
    opened: list[int] = field(default_factory=list)  # ids of alerts that need notifying
    # Open alerts that became urgent (a fall logged after them): notified again, at once.
    escalated: list[int] = field(default_factory=list)
    stored: int = 0  # episodes newly stored (open or already resolved)
    resolved: int = 0
    # Alerts the detector had resolved itself, opened again (`_reopen_all`).
    reopened: list[int] = field(default_factory=list)


def load_series(
    session: Session, patient_ids: Sequence[int], since: dt.date | None
) -> dict[int, PatientSeries]:
    """The plain series of several patients (keyed and ordered as `patient_ids`), in a fixed
    number of queries whatever their number. On PostgreSQL one statement returns the logs as
    packed binary records, decoded with numpy (`series_copy`), and the events, outcomes, pins,
    program periods and stored alerts as JSON: the periodic scan reads a year of logs of every
    patient, and the evaluation after one new log should wait for few round trips."""
    return {
        pid: s.to_series() if isinstance(s, ArraySeries) else s
        # (The stored alerts it also reads are not used: any number of missed-logs days.)
        for pid, s in _load(session, patient_ids, since, DEFAULT_CONFIG.missed_log_days)[0].items()
    }


class StoredAlert(NamedTuple):
    """An unresolved stored alert: what reconciling may change about it."""

    id: int
    severity: str
    # As stored: the events the explanation cites (a correction can take one away).
    related_events: list[Any] | None = None
    onset: dt.date | None = None


AlertKey = tuple[str, str, dt.date]  # kind, metric ("" for none), detected_on
# A packed alert key: patient id (high 32 bits), days since 0001-01-01 (22 bits: any date to
# the year 9999), a code for the (kind, metric) pair (10 bits).
_CODE_BITS = 10


class StoredAlerts:
    """What reconciling needs of the patients' stored alerts: which (kind, metric,
    detected_on) are stored, and the unresolved ones with their id and severity.

    Resolved alerts, most of those stored after a year, are only ever looked up: they are kept
    as integer keys (patient id, day and a code for the (kind, metric) pair packed into 64
    bits), which PostgreSQL sends as packed binary (`_read_statement`) — no Python object
    per alert."""

    def __init__(self) -> None:
        self.unresolved: dict[int, dict[AlertKey, StoredAlert]] = defaultdict(dict)
        self._codes: dict[tuple[str, str], int] = {}
        self._keys: set[int] = set()

    def add(self, patient_id: int, key: AlertKey, alert: StoredAlert, *, resolved: bool) -> None:
        code = self._codes.setdefault(key[:2], len(self._codes) + 1)
        self._keys.add(_packed_key(patient_id, key[2], code))
        if not resolved:
            self.unresolved[patient_id][key] = alert

    def has(self, patient_id: int, key: AlertKey) -> bool:
        code = self._codes.get(key[:2])
        return code is not None and _packed_key(patient_id, key[2], code) in self._keys

    def add_gap(self, patient_id: int, metric: str, onset: dt.date) -> None:
        """A stored missed-logs alert's gap, by its first day (`has_gap`)."""
        self.add(patient_id, (GAP_ONSET, metric, onset), StoredAlert(0, ""), resolved=True)

    def has_gap(self, patient_id: int, metric: str, onset: dt.date) -> bool:
        """Whether a missed-logs alert of the gap that began on `onset` is stored, whatever
        day it was detected on."""
        return self.has(patient_id, (GAP_ONSET, metric, onset))

    def open_gap(
        self, patient_id: int, metric: str, onset: dt.date, taken: set[int]
    ) -> StoredAlert | None:
        """The unresolved missed-logs alert of the gap that began on `onset`, if any, but
        not one in `taken` (another episode's by its very key, or matched already)."""
        for key, alert in self.unresolved.get(patient_id, {}).items():
            if key[:2] == (GAP_KIND, metric) and alert.onset == onset and alert.id not in taken:
                return alert
        return None

    @classmethod
    def from_packed(
        cls, codes: list[Any], count: int, blob: bytes | None, unresolved: list[Any]
    ) -> StoredAlerts:
        """From `_read_statement`: the codes of the (kind, metric) pairs, `count` keys packed
        as big-endian int8, and the unresolved alerts as JSON rows."""
        stored = cls()
        for code, kind, metric in codes:
            if not 0 < int(code) < 1 << _CODE_BITS:
                raise ValueError(f"alert (kind, metric) code {code} out of range")
            stored._codes[(kind, metric)] = int(code)
        data = blob or b""
        if len(data) != 8 * count:
            raise ValueError(f"packed alert keys: {len(data)} bytes for {count} alerts")
        stored._keys = set(np.frombuffer(data, ">i8").tolist())
        for pid, alert_id, kind, metric, detected_on, severity, related, onset in unresolved:
            key: AlertKey = (kind, metric, dt.date.fromisoformat(detected_on))
            stored.unresolved[pid][key] = StoredAlert(
                alert_id, severity, related, dt.date.fromisoformat(onset)
            )
        return stored


def _packed_key(patient_id: int, detected_on: dt.date, code: int) -> int:
    # Days since 0001-01-01, as `_stored_alert_columns` packs them in SQL.
    day = detected_on.toordinal() - 1
    return (patient_id << 32) | (day << _CODE_BITS) | code


@dataclass(frozen=True)
class _Context:
    """What detection needs besides the logs, by patient."""

    events: Mapping[int, list[PatientEvent]]
    outcomes: Mapping[int, list[OutcomeScore]]
    pins: Mapping[int, list[PinnedBaseline]]
    periods: Mapping[int, list[Period]]  # program start and end dates
    # The stored alerts, when read with the rest (PostgreSQL); else `reconcile` reads them.
    stored: StoredAlerts | None = None
    # The window's first day, and the patients with logs before it (their series are cut).
    since: dt.date | None = None
    cut: frozenset[int] = frozenset()


def _load(
    session: Session, patient_ids: Sequence[int], since: dt.date | None, gap_days: int
) -> tuple[dict[int, AnySeries], _Context]:
    """PostgreSQL: `ArraySeries` (the log columns stay numpy arrays); else PatientSeries."""
    series: dict[int, AnySeries]
    if _fast_path(session):
        arrays, context = _read_postgresql(session, patient_ids, since, gap_days)
        series = {pid: _array_series(pid, arrays.get(pid), context) for pid in patient_ids}
    else:
        logs = _select_log_columns(session, patient_ids, since)
        context = _context_generic(session, patient_ids, since)
        series = {pid: _series(pid, logs.get(pid, _NO_LOGS), context) for pid in patient_ids}
    return series, context


def _logs_before(since: Any, patient_id: Any) -> Any:
    """Whether the patient has a log before `since` (one probe of the (patient, date) index)."""
    return sa.exists().where(SessionLog.patient_id == patient_id, SessionLog.log_date < since)


# Per patient: dates, back pain, leg pain, adherence, leg side, red flags (PatientSeries order).
LogColumns = tuple[
    tuple[dt.date, ...],
    tuple[int | None, ...],
    tuple[int | None, ...],
    tuple[float | None, ...],
    tuple[str | None, ...],
    tuple[tuple[str, ...], ...],
]
_NO_LOGS: LogColumns = ((), (), (), (), (), ())
_NO_ARRAY_LOGS = series_copy.PatientLogs(
    np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0), [], []
)


def _array_series(pid: int, logs: series_copy.PatientLogs | None, context: _Context) -> ArraySeries:
    return ArraySeries(**(logs or _NO_ARRAY_LOGS)._asdict(), **_not_logs(pid, context))


def _series(pid: int, logs: LogColumns, context: _Context) -> PatientSeries:
    dates, back_pain, leg_pain, adherence, leg_side, red_flags = logs
    return PatientSeries(
        dates=dates,
        back_pain=back_pain,
        leg_pain=leg_pain,
        adherence=adherence,
        leg_side=leg_side,
        red_flags=red_flags,
        **_not_logs(pid, context),
    )


def _not_logs(pid: int, context: _Context) -> dict[str, Any]:
    """A series' fields besides the log columns, the same for both forms."""
    return {
        "patient_id": str(pid),
        "events": tuple(context.events.get(pid, ())),
        "outcomes": tuple(context.outcomes.get(pid, ())),
        "pinned_baselines": tuple(context.pins.get(pid, ())),
        # A window of a longer history: the detector must know (rehab.domain.series).
        "logs_from": context.since if pid in context.cut else None,
        # Missed logging counts while her programs ask for logs (rehab.domain.missed_logs).
        "logging_asked": tuple(context.periods.get(pid, ())),
    }


def _fast_path(session: Session) -> bool:
    """PostgreSQL: one statement reads everything (`_read_postgresql`)."""
    return session.get_bind().dialect.name == "postgresql"


# --- the generic path (SQLite: the demo) ---------------------------------------------------


def _select_log_columns(
    session: Session, patient_ids: Sequence[int], since: dt.date | None
) -> dict[int, LogColumns]:
    """A plain SELECT, one row tuple per log."""
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
    for row in execute_core(
        session, log_query.order_by(SessionLog.patient_id, SessionLog.log_date)
    ):
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


_EVENT_COLUMNS = (
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
_EVENT_ORDER = (Event.patient_id, Event.event_date, Event.id)
# A row a clinician marked entered in error is no evidence: detection never sees it.
_CURRENT_EVENTS = Event.current()
# A PSFS's stored activity rows (none for ODI), which `questionnaires.psfs_ratings` reads:
# PSFS measures are compared on the activities rated in each (`comparable_psfs`).
PSFS_ACTIVITIES = sa.case(
    (OutcomeMeasure.instrument == Instrument.PSFS, OutcomeMeasure.answers["activities"]),
    else_=sa.null(),
)
_OUTCOME_COLUMNS = (
    OutcomeMeasure.patient_id,
    OutcomeMeasure.measured_on,
    OutcomeMeasure.instrument,
    OutcomeMeasure.score,
    PSFS_ACTIVITIES,
)
_OUTCOME_ORDER = (OutcomeMeasure.patient_id, OutcomeMeasure.measured_on, OutcomeMeasure.id)
_CURRENT_OUTCOMES = OutcomeMeasure.current()
_PIN_COLUMNS = (
    PinnedBaselineRow.patient_id,
    PinnedBaselineRow.metric,
    PinnedBaselineRow.level,
    PinnedBaselineRow.effective_from,
    PinnedBaselineRow.spread,
)
_PIN_ORDER = (PinnedBaselineRow.patient_id, PinnedBaselineRow.id)
_CURRENT_PINS = PinnedBaselineRow.current()
_PERIOD_COLUMNS = (Program.patient_id, Program.start_date, Program.end_date)
_PERIOD_ORDER = (Program.patient_id, Program.id)


def _context_generic(
    session: Session, patient_ids: Sequence[int], since: dt.date | None = None
) -> _Context:
    """Events, outcomes, pins and program periods: 4 plain selects (5 with `since`: who has
    logs before it)."""
    cut: frozenset[int] = frozenset()
    if since is not None:
        cut = frozenset(
            execute_core(
                session,
                sa.select(Patient.id).where(
                    Patient.id.in_(patient_ids), _logs_before(since, Patient.id)
                ),
            ).scalars()
        )
    context = _Context(
        defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list),
        since=since, cut=cut,
    )  # fmt: skip

    def rows(columns: tuple[Any, ...], order: tuple[Any, ...], *where: Any) -> Any:
        return execute_core(
            session, sa.select(*columns).where(columns[0].in_(patient_ids), *where).order_by(*order)
        )

    for pid, day, kind, note, side, region, location, steps, height, landed in rows(
        _EVENT_COLUMNS, _EVENT_ORDER, _CURRENT_EVENTS
    ):
        context.events[pid].append(
            _patient_event(
                day, kind, note, _value(side), region, _value(location), steps, height,
                _value(landed),
            )
        )  # fmt: skip
    for pid, measured_on, instrument, score, activities in rows(
        _OUTCOME_COLUMNS, _OUTCOME_ORDER, _CURRENT_OUTCOMES
    ):
        context.outcomes[pid].append(
            OutcomeScore(measured_on, instrument.value, score, psfs_ratings(activities))
        )
    for pid, metric, level, effective_from, spread in rows(_PIN_COLUMNS, _PIN_ORDER, _CURRENT_PINS):
        context.pins[pid].append(PinnedBaseline(metric, level, effective_from, spread))
    for pid, start, end in rows(_PERIOD_COLUMNS, _PERIOD_ORDER):
        context.periods[pid].append((start, end))
    return context


def _value(member: Any) -> str | None:
    return None if member is None else str(member.value)


# --- the PostgreSQL path: one statement for logs, context and stored alerts ------------------


def _json_rows(columns: tuple[Any, ...], order: tuple[Any, ...], ids: Any, *where: Any) -> Any:
    """A JSON array of the rows (each a JSON array of `columns`) of these patients, in order."""
    row = sa.func.json_build_array(*columns)
    return (
        sa.select(
            sa.func.coalesce(
                sa.func.json_agg(postgresql.aggregate_order_by(row, *order)),
                sa.literal_column("'[]'::json"),
            )
        )
        .where(columns[0] == sa.func.any(ids), *where)
        .scalar_subquery()
    )


_IDS = sa.bindparam("ids", type_=postgresql.ARRAY(sa.Integer))
_SINCE = sa.bindparam("since", type_=sa.Date)
# The number of days without a log that opens a missed-logs episode in this replay.
_GAP_DAYS = sa.bindparam("gap_days", type_=sa.Integer)
_UNRESOLVED_ALERT_COLUMNS = (
    Alert.patient_id,
    Alert.id,
    Alert.kind,
    Alert.metric,
    Alert.detected_on,
    Alert.severity,
    Alert.related_events,
    Alert.onset,
)


def _read_statement(with_since: bool) -> sa.Select[Any]:
    """One row: the number of logs and their packed records (`series_copy`), then events,
    outcomes, pins, program periods and stored alerts as JSON arrays — one round trip."""
    logs = sa.select(
        sa.func.count().label("n"),
        sa.func.string_agg(
            sa.literal_column(series_copy.RECORD_SQL), sa.literal_column("''::bytea")
        ).label("records"),
    ).where(SessionLog.patient_id == sa.func.any(_IDS))
    if with_since:
        logs = logs.where(SessionLog.log_date >= _SINCE)
    counted = logs.subquery("logs")
    # The patients with logs before the window (their series are cut): none without one.
    cut = (
        sa.select(sa.func.array_agg(Patient.id))
        .where(Patient.id == sa.func.any(_IDS), _logs_before(_SINCE, Patient.id))
        .scalar_subquery()
        if with_since
        else sa.null()
    )
    return sa.select(
        counted.c.n,
        counted.c.records,
        _json_rows(_EVENT_COLUMNS, _EVENT_ORDER, _IDS, _CURRENT_EVENTS),
        _json_rows(_OUTCOME_COLUMNS, _OUTCOME_ORDER, _IDS, _CURRENT_OUTCOMES),
        _json_rows(_PIN_COLUMNS, _PIN_ORDER, _IDS, _CURRENT_PINS),
        _json_rows(_PERIOD_COLUMNS, _PERIOD_ORDER, _IDS),
        *_stored_alert_columns(),
        cut,
    )


def _stored_alert_columns() -> tuple[Any, ...]:
    """The stored alerts for `StoredAlerts.from_packed`: the (kind, metric) codes as JSON
    rows, the number of alerts and their packed keys, and the unresolved alerts as JSON."""
    # Every alert by the day detected, and a missed-logs alert once more by its gap's first
    # day, under the pseudo-kind GAP_ONSET (`StoredAlerts.has_gap`) — only one detected after
    # another number of days than this replay's: the replay detects a gap on its first day
    # + gap_days - 1 (`rehab.domain.missed_logs`), so the day-detected key finds the others,
    # nearly all of them, and has_gap is asked only when that key is missing.
    detected_after = sa.literal_column("alerts.detected_on - alerts.onset", sa.Integer)
    keyed = sa.union_all(
        sa.select(Alert.patient_id, Alert.kind, Alert.metric, Alert.detected_on).where(
            Alert.patient_id == sa.func.any(_IDS)
        ),
        sa.select(
            Alert.patient_id,
            sa.literal(GAP_ONSET, sa.String).label("kind"),
            Alert.metric,
            Alert.onset.label("detected_on"),
        ).where(
            Alert.patient_id == sa.func.any(_IDS),
            Alert.kind == GAP_KIND,
            detected_after != _GAP_DAYS - 1,
        ),
    ).subquery("keyed")
    stored = sa.select(
        keyed.c.patient_id,
        keyed.c.kind,
        keyed.c.metric,
        keyed.c.detected_on,
        sa.func.dense_rank().over(order_by=(keyed.c.kind, keyed.c.metric)).label("code"),
    ).cte("stored_alerts")
    pairs = sa.select(stored.c.code, stored.c.kind, stored.c.metric).distinct().subquery()
    codes = sa.select(
        sa.func.coalesce(
            sa.func.json_agg(sa.func.json_build_array(pairs.c.code, pairs.c.kind, pairs.c.metric)),
            sa.literal_column("'[]'::json"),
        )
    ).scalar_subquery()
    key: sa.ColumnElement[bytes] = sa.literal_column(
        f"int8send((stored_alerts.patient_id::int8 << 32)"
        f" | ((stored_alerts.detected_on - DATE '0001-01-01')::int8 << {_CODE_BITS})"
        f" | stored_alerts.code)"
    )
    count = sa.select(sa.func.count()).select_from(stored).scalar_subquery()
    keys = (
        sa.select(sa.func.string_agg(key, sa.literal_column("''::bytea")))
        .select_from(stored)
        .scalar_subquery()
    )
    unresolved = _json_rows(
        _UNRESOLVED_ALERT_COLUMNS,
        (Alert.patient_id, Alert.id),
        _IDS,
        Alert.status != AlertStatus.RESOLVED,
    )
    return codes, count, keys, unresolved


_READ = {True: _read_statement(True), False: _read_statement(False)}


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def _read_postgresql(
    session: Session, patient_ids: Sequence[int], since: dt.date | None, gap_days: int
) -> tuple[dict[int, series_copy.PatientLogs], _Context]:
    """Logs, `_context_generic` and the stored alerts in one statement, decoded here into the
    values the generic path gives (dates, ints, floats, strings, enums). `gap_days`: the
    replay's missed-logs days (which gaps' first days are keyed)."""
    parameters: dict[str, Any] = {
        "ids": sorted({int(i) for i in patient_ids}),
        "gap_days": gap_days,
    }
    if since is not None:
        parameters["since"] = since
    row = execute_core(session, _READ[since is not None], parameters).one()
    count, packed, events, outcomes, pins, periods, codes, n_alerts, keys, unresolved, cut = row
    arrays = series_copy.LogArrays.from_records(series_copy.records(packed, count))
    logs = series_copy.patient_logs(arrays)
    stored = StoredAlerts.from_packed(_as_list(codes), n_alerts, keys, _as_list(unresolved))
    context = _Context(defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list),
                       stored, since, frozenset(cut or ()))  # fmt: skip
    fromisoformat = dt.date.fromisoformat
    for pid, day, kind, note, side, region, location, steps, height, landed in _as_list(events):
        context.events[pid].append(
            _patient_event(
                fromisoformat(day), kind, note, side, region, location, steps, height, landed
            )
        )
    for pid, measured_on, instrument, score, activities in _as_list(outcomes):
        context.outcomes[pid].append(
            OutcomeScore(
                fromisoformat(measured_on), instrument, float(score), psfs_ratings(activities)
            )
        )
    for pid, metric, level, effective_from, spread in _as_list(pins):
        context.pins[pid].append(
            PinnedBaseline(
                metric,
                None if level is None else float(level),
                fromisoformat(effective_from),
                None if spread is None else float(spread),
            )
        )
    for pid, start, end in _as_list(periods):
        context.periods[pid].append((fromisoformat(start), _date(end)))
    return logs, context


def _as_list(value: Any) -> list[Any]:
    """psycopg decodes json columns; a driver that does not hands over the text."""
    return list(value) if isinstance(value, list) else list(json.loads(value))


def to_patient_event(event: Event) -> PatientEvent:
    """An `Event` as the detector sees it."""
    return _patient_event(
        event.event_date,
        event.event_type.value,
        event.description,
        _value(event.side),
        event.body_region,
        _value(event.fall_location),
        event.fall_steps,
        event.fall_height_cm,
        _value(event.fall_landed_on),
    )


def _patient_event(
    event_date: dt.date,
    event_type: str,
    description: str,
    side: str | None,
    body_region: str | None,
    fall_location: str | None,
    fall_steps: int | None,
    fall_height_cm: int | None,
    fall_landed_on: str | None,
) -> PatientEvent:
    mechanism = None
    if event_type == "fall":
        mechanism = (
            fall_mechanism(fall_location, fall_steps, fall_height_cm, fall_landed_on) or None
        )
    return PatientEvent(
        date=event_date,
        event_type=str(event_type),
        note=description,
        side=side,
        body_region=body_region,
        mechanism=mechanism,
    )


# An advisory lock key space of its own (the first of the two int4 keys).
EVALUATION_LOCK = 0x52455641  # "REVA"


def lock_patients(session: Session, patient_ids: Sequence[int]) -> None:
    """Serialise evaluations of the same patients, so two workers never reconcile one patient
    at the same time; in id order, so two overlapping batches cannot deadlock. PostgreSQL:
    transaction-scoped advisory locks — unlike row locks (SELECT … FOR UPDATE) they write
    nothing, so an evaluation that finds nothing new commits without waiting for a WAL flush.
    SQLite has one writer anyway."""
    ids = sorted({int(i) for i in patient_ids})
    if session.get_bind().dialect.name == "postgresql":
        execute_core(
            session,
            sa.text(
                "SELECT pg_advisory_xact_lock(:key, id) FROM unnest(CAST(:ids AS int4[])) AS t(id)"
            ),
            {"key": EVALUATION_LOCK, "ids": ids},
        ).all()
    else:
        session.execute(
            sa.select(Patient.id).where(Patient.id.in_(ids)).order_by(Patient.id).with_for_update()
        ).all()


def configured_detection(session: Session) -> DetectionConfig:
    """The detector's defaults with the clinic's policy applied (missed-log days: the
    administrator's setting, by default REHAB_MISSED_LOGS_DAYS)."""
    if not has_app_context():
        return DEFAULT_CONFIG
    missed_logs_days = clinic_policy.current(session).missed_logs_days
    if missed_logs_days == DEFAULT_CONFIG.missed_log_days:
        return DEFAULT_CONFIG
    return replace(DEFAULT_CONFIG, missed_log_days=missed_logs_days)


def evaluate_patients(
    session: Session,
    patient_ids: Sequence[int],
    today: dt.date,
    config: DetectionConfig = DEFAULT_CONFIG,
) -> EvaluationResult:
    """Detect and reconcile for a batch of patients; the caller commits."""
    if not patient_ids:
        return EvaluationResult()
    lock_patients(session, patient_ids)
    evaluated_at = utcnow() - CLOCK_SLACK
    since = today - dt.timedelta(days=LOOKBACK_DAYS)
    episodes, context, series = _detect(session, patient_ids, today, since, config)
    stored = context.stored
    if stored is None:  # (SQLite: read here rather than by the reconcile, as often)
        stored = _stored_alerts(session, list(patient_ids))
    doubtful = _not_followed(stored, episodes, today)
    if doubtful:
        whole, _, whole_series = _detect(session, doubtful, today, None, config)
        episodes.update(whole)
        series.update(whole_series)
    result = _reconcile(session, episodes, stored, as_of=today, series=series)
    session.execute(
        sa.update(Patient).where(Patient.id.in_(patient_ids)).values(evaluated_at=evaluated_at)
    )
    return result


def detect(
    session: Session,
    patient_ids: Sequence[int],
    as_of: dt.date,
    since: dt.date | None,
    config: DetectionConfig = DEFAULT_CONFIG,
) -> dict[int, tuple[AlertEpisode, ...]]:
    """The detector's episodes for each patient, from logs dated `since` (None: all) on."""
    return _detect(session, patient_ids, as_of, since, config)[0]  # (its episodes)


def _detect(
    session: Session,
    patient_ids: Sequence[int],
    as_of: dt.date,
    since: dt.date | None,
    config: DetectionConfig,
) -> tuple[dict[int, tuple[AlertEpisode, ...]], _Context, dict[int, AnySeries]]:
    series, context = _load(session, patient_ids, since, config.missed_log_days)
    # The batch call runs the same replay vectorised over the patients: several times
    # cheaper per patient than one call each.
    detected = detect_episodes_many(series.values(), config, as_of=as_of)
    return {pid: detected[str(pid)] for pid in series}, context, series


def _first_log_from(series: AnySeries | None, day: dt.date) -> dt.date | None:
    """The patient's first log on or after `day` in the series read, if any."""
    if series is None:
        return None
    if isinstance(series, ArraySeries):
        ordinals = series.ordinal
        at = int(np.searchsorted(ordinals, day.toordinal()))
        return dt.date.fromordinal(int(ordinals[at])) if at < len(ordinals) else None
    return next((d for d in series.dates if d >= day), None)


def replay_whole_history(
    session: Session, patient_ids: Sequence[int], as_of: dt.date
) -> EvaluationResult:
    """Detect over the patients' whole history and store what is new (the demo's history);
    the caller commits."""
    episodes, _, series = _detect(session, patient_ids, as_of, None, DEFAULT_CONFIG)
    return _reconcile(session, episodes, None, series=series)


def _not_followed(
    stored: StoredAlerts, episodes: Mapping[int, Iterable[AlertEpisode]], as_of: dt.date
) -> list[int]:
    """The patients with a stored open pain or adherence alert (raised by `as_of`) that the
    window's replay does not show. The window decides as the whole history does nearly
    always; such an alert is one the data no longer supports (today's log edited down, a
    baseline re-pinned from an earlier day), one older than the window's own decisions (a
    persistent flare, open for months), or one an episode of the window's warm-up — replayed
    but not returned — holds off. Only the whole history tells these apart, so these
    patients are replayed whole and reconciled from that: one more read, for them only."""
    return [
        patient_id
        for patient_id, unresolved in stored.unresolved.items()
        if patient_id in episodes and _unshown(unresolved, episodes[patient_id], as_of)
    ]


def _unshown(
    unresolved: Mapping[AlertKey, StoredAlert],
    episodes: Iterable[AlertEpisode],
    as_of: dt.date,
    kinds: frozenset[str] = LOOKBACK_KINDS,
) -> list[tuple[AlertKey, StoredAlert]]:
    """The stored open alerts of `kinds` (pain and adherence) raised by `as_of` that
    `episodes` lack."""
    shown = {_key(e) for e in episodes}
    return [
        (key, alert)
        for key, alert in unresolved.items()
        if key[0] in kinds and key[2] <= as_of and key not in shown
    ]


# Every replay, a window's too, decides function declines from all of the patient's ODI/PSFS
# scores: one it no longer shows lost its evidence (a score marked entered in error).
NO_LONGER_SHOWN_KINDS = LOOKBACK_KINDS | {"function_decline"}


def _key(episode: AlertEpisode) -> AlertKey:
    """What identifies an episode among a patient's stored alerts."""
    return (episode.kind, episode.metric or "", episode.detected_on)


def _resolution_note(episode: AlertEpisode) -> str:
    """Why the replay closed an episode, in the note of the alert it resolves."""
    if episode.superseded:  # a further rise, not a return to baseline
        return alerts.AUTO_SUPERSEDED
    if episode.program_ended:
        return alerts.AUTO_PROGRAM_ENDED
    if episode.activities_replaced:
        return alerts.AUTO_ACTIVITIES_REPLACED
    if episode.kind == "missed_logs":
        return alerts.AUTO_LOGGING_RESUMED
    return alerts.AUTO_BACK_NEAR_BASELINE


def _reconcile(
    session: Session,
    episodes_by_patient: Mapping[int, Iterable[AlertEpisode]],
    stored: StoredAlerts | None,
    as_of: dt.date | None = None,
    series: Mapping[int, AnySeries] | None = None,
) -> EvaluationResult:
    """Store the episodes not stored yet and auto-resolve the stored ones the detector
    resolved, with one query for the stored alerts of all the patients (unless given).
    `as_of`: the replay covers every decision up to that day (the worker's evaluation), so
    an open pain or adherence alert it no longer shows at all is resolved (`_no_longer_shown`).
    `series`: the logs replayed, by patient: an open missed-logs alert the replay does not
    show is resolved once she logged on or after its gap's first day."""
    result = EvaluationResult()
    if stored is None:
        stored = _stored_alerts(session, list(episodes_by_patient))
    now = utcnow()
    new_rows: list[dict[str, Any]] = []
    reopen: list[_Ongoing] = []
    for patient_id, given in episodes_by_patient.items():
        episodes = tuple(given)
        unresolved = stored.unresolved.get(patient_id, {})
        # Exact matches first: an alert some episode names by its very key is that one's,
        # never another's by its gap's first day.
        matched = {unresolved[k].id for k in map(_key, episodes) if k in unresolved}
        for episode in episodes:
            key = _key(episode)
            existing = unresolved.get(key)
            if existing is None and episode.kind == GAP_KIND and not stored.has(patient_id, key):
                existing = stored.open_gap(patient_id, key[1], episode.onset, matched)
            if existing is not None:
                alert_id = existing.id
                matched.add(alert_id)
                _follow(session, patient_id, existing, episode, result)
                if episode.resolved_on is not None:
                    note = _resolution_note(episode)
                    result.resolved += _auto_resolve(
                        session, patient_id, alert_id, episode.resolved_on, now, note
                    )
                continue
            if stored.has(patient_id, key):  # stored, and resolved
                if episode.resolved_on is None and key[0] in NO_LONGER_SHOWN_KINDS:
                    # Ongoing, yet its alert was resolved: by a clinician (it stays so), or
                    # by the detector before a correction was taken back (`_reopen_all`),
                    # perhaps with a later alert of its kind and metric in its place.
                    displaced = next(
                        (
                            (old_key, old)
                            for old_key, old in unresolved.items()
                            if old_key[:2] == key[:2] and old.id not in matched
                        ),
                        None,
                    )
                    if displaced is not None:
                        matched.add(displaced[1].id)
                    reopen.append(_Ongoing(patient_id, episode, displaced))
                continue
            if episode.kind == GAP_KIND and stored.has_gap(patient_id, key[1], episode.onset):
                continue  # this gap's alert, detected on another day, and resolved
            if episode.resolved_on is None and episode.kind != "red_flag":
                # A still-unresolved older alert of this kind and metric that the detector no
                # longer follows (e.g. its log was edited) gives way to the new episode.
                for (kind, metric, _), (old_id, *_) in unresolved.items():
                    if (kind, metric) == key[:2]:
                        # (The usual further rise resolved it above already: a no-op then.)
                        result.resolved += _auto_resolve(
                            session,
                            patient_id,
                            old_id,
                            episode.detected_on,
                            now,
                            alerts.AUTO_SUPERSEDED,
                        )
            new_rows.append(_row(patient_id, episode, now))
        if series is not None:
            closed = _gaps_closed(unresolved, matched, series.get(patient_id), as_of)
            for old_id, day, note in closed:
                result.resolved += _auto_resolve(session, patient_id, old_id, day, now, note)
        if as_of is not None:
            for old_id in _no_longer_shown(unresolved, episodes, as_of):
                result.resolved += _auto_resolve(
                    session, patient_id, old_id, as_of, now, alerts.AUTO_NO_LONGER_SHOWN
                )
    if reopen:
        _reopen_all(session, reopen, as_of, now, result)
    for alert_id, patient_id, status in _insert_ignoring_duplicates(session, new_rows):
        result.stored += 1
        if status is AlertStatus.OPEN:
            result.opened.append(alert_id)
        audit.record(session, SYSTEM, "alert.create", patient_id, target=f"alert:{alert_id}")
    return result


def _insert_ignoring_duplicates(
    session: Session, rows: list[dict[str, Any]]
) -> list[tuple[int, int, AlertStatus]]:
    """Insert the episodes; a row another evaluation stored first is skipped, not an error.

    Not the ORM's bulk insert of the entity: that groups the rows by which values are None and
    splices the RETURNING rows of every group, and a first scan stores thousands of episodes
    per batch. On PostgreSQL the rows travel as one JSON parameter (`jsonb_to_recordset`):
    one short statement instead of a VALUES list with 17 placeholders per row for psycopg to
    parse. Elsewhere a Core INSERT of the table."""
    if not rows:
        return []
    table = cast(sa.Table, Alert.__table__)
    returning = (table.c.id, table.c.patient_id, table.c.status)
    if session.get_bind().dialect.name == "postgresql":
        try:
            payload = json.dumps(rows, default=_json_value, allow_nan=False)
        except ValueError:  # a NaN or infinity: JSON cannot carry it
            payload = None
        if payload is not None:
            names = list(rows[0])
            source = (
                sa.func.jsonb_to_recordset(
                    sa.cast(sa.bindparam("rows", type_=sa.Text), postgresql.JSONB)
                )
                .table_valued(*(sa.column(name, table.c[name].type) for name in names))
                .render_derived(name="r", with_types=True)
            )
            statement = (
                postgresql.insert(table)
                .from_select(names, sa.select(*(source.c[name] for name in names)))
                .on_conflict_do_nothing()
                .returning(*returning)
            )
            result = execute_core(session, statement, {"rows": payload})
            return [(r[0], r[1], r[2]) for r in result]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).on_conflict_do_nothing().returning(*returning)
    return [(r[0], r[1], r[2]) for r in execute_core(session, statement, rows)]


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _stored_alerts(session: Session, patient_ids: list[int]) -> StoredAlerts:
    """Every stored alert of the patients: one query."""
    out = StoredAlerts()
    unresolved = Alert.status != AlertStatus.RESOLVED
    rows = execute_core(
        session,
        sa.select(
            Alert.id,
            Alert.patient_id,
            Alert.kind,
            Alert.metric,
            Alert.detected_on,
            Alert.status,
            Alert.severity,
            # (Only the unresolved alerts' events are compared: no JSON for the others.)
            sa.case((unresolved, Alert.related_events), else_=sa.null()),
            Alert.onset,
        ).where(Alert.patient_id.in_(patient_ids)),
    )
    for alert_id, patient_id, kind, metric, detected_on, status, severity, related, onset in rows:
        out.add(
            patient_id,
            (kind, metric, detected_on),
            StoredAlert(alert_id, severity, related, onset),
            resolved=status is AlertStatus.RESOLVED,
        )
        if kind == GAP_KIND:
            out.add_gap(patient_id, metric, onset)
    return out


def _no_longer_shown(
    unresolved: Mapping[AlertKey, StoredAlert], episodes: Iterable[AlertEpisode], as_of: dt.date
) -> list[int]:
    """The open pain and adherence alerts raised up to `as_of` that the replay has no episode
    for, while it has no open episode of their kind and metric either: the logs or pins that
    raised one were changed (today's log edited down, a baseline re-pinned from an earlier
    day, a fall or score marked entered in error) and nothing took its place. The worker
    applies it to whole-history replays only (`_not_followed`): a window's replay can miss a
    pain or adherence alert the whole history still has open; function declines, which every
    replay decides from all the scores, are checked on any replay. Red flags and missed logs
    are left to their own rules."""
    episodes = tuple(episodes)
    ongoing = {_key(e)[:2] for e in episodes if e.resolved_on is None}
    unshown = _unshown(unresolved, episodes, as_of, NO_LONGER_SHOWN_KINDS)
    return [alert.id for key, alert in unshown if key[:2] not in ongoing]


def _gaps_closed(
    unresolved: Mapping[AlertKey, StoredAlert],
    matched: set[int],
    series: AnySeries | None,
    as_of: dt.date | None,
) -> list[tuple[int, dt.date, str]]:
    """The open missed-logs alerts no episode matched (the clinic's number of days now
    exceeds the gap, or the gap began before the window read) whose gap is over, with the
    day and why: her program run ended before she logged again (the day after), or she
    logged on or after the gap's first day (that day), by `as_of`."""
    if series is None:
        return []
    until = as_of or dt.date.max
    runs = program_runs(series.logging_asked) if series.logging_asked is not None else []
    closed = []
    for (kind, _, _), alert in unresolved.items():
        if kind != GAP_KIND or alert.id in matched or alert.onset is None:
            continue
        onset = alert.onset
        logged = _first_log_from(series, onset)
        if logged is not None and logged > until:
            logged = None
        run_end = next(
            (end for start, end in runs if start <= onset and (end is None or onset <= end)),
            None,
        )
        if run_end is not None and run_end < until and (logged is None or logged > run_end):
            closed.append((alert.id, run_end + dt.timedelta(days=1), alerts.AUTO_PROGRAM_ENDED))
        elif logged is not None:
            closed.append((alert.id, logged, alerts.AUTO_LOGGING_RESUMED))
    return closed


def _auto_resolve(
    session: Session,
    patient_id: int,
    alert_id: int,
    on: dt.date,
    now: dt.datetime,
    note: str,
) -> bool:
    """Resolve a stored alert the replay closed (or no longer shows), with the note that says
    why, audited (a write of patient data); False if it was resolved already (nothing
    written)."""
    changed = session.execute(
        sa.update(Alert)
        .where(Alert.id == alert_id, Alert.status != AlertStatus.RESOLVED)
        .values(status=AlertStatus.RESOLVED, resolved_on=on, resolved_at=now, resolve_note=note)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    audit.record(session, SYSTEM, "alert.resolve", patient_id, target=f"alert:{alert_id}")
    return True


class _Ongoing(NamedTuple):
    """An ongoing episode of the replay whose stored alert is resolved, and the open alert of
    its kind and metric that no episode matched, if any."""

    patient_id: int
    episode: AlertEpisode
    displaced: tuple[AlertKey, StoredAlert] | None


def _follow(
    session: Session,
    patient_id: int,
    alert: StoredAlert,
    episode: AlertEpisode,
    result: EvaluationResult,
) -> None:
    """An open alert says what the replay's episode now says: made urgent (a fall logged
    after it opened: the alert says so and goes out again, at once), or reworded when the
    events it cites changed (one marked entered in error, or logged late without making it
    urgent; nobody is e-mailed again)."""
    if alert.severity != "urgent" and episode.severity == "urgent":
        _reword(session, alert.id, episode)
        audit.record(session, SYSTEM, "alert.escalate", patient_id, target=f"alert:{alert.id}")
        result.escalated.append(alert.id)
    elif alert.related_events is not None and alert.related_events != _related_json(episode):
        _reword(session, alert.id, episode)
        audit.record(session, SYSTEM, "alert.update", patient_id, target=f"alert:{alert.id}")


def _reopen_all(
    session: Session,
    ongoing: Sequence[_Ongoing],
    as_of: dt.date | None,
    now: dt.datetime,
    result: EvaluationResult,
) -> None:
    """Ongoing episodes whose alert is resolved (one query for all of them).

    An alert the detector resolved itself (superseded, no longer shown, back near baseline,
    its activities replaced...) is opened again: the record, corrected since, shows its
    episode ongoing (a mark of entered in error taken back: the fall that made the alert a
    day early is back, and the later alert without it, which had taken its place, is no
    longer shown). The later alert is resolved first (one unresolved alert per kind and
    metric). The reopened one keeps or takes over an acknowledgement (of either), says what
    the replay says, and is dated (`Alert.reopened_at`) and audited; it is made urgent at
    once if the episode now is (`result.escalated`), and otherwise told only to those of its
    care team never told of it (`result.reopened`, queued under the alert's first key).

    An alert a clinician resolved stays resolved: her judgement of the episode stands, and
    the later alert, which the record no longer shows, is resolved all the same."""
    keys = [(o.patient_id, *_key(o.episode)) for o in ongoing]
    reopenable = {
        (patient_id, kind, metric, detected_on): (alert_id, severity, acknowledged_by)
        for alert_id, patient_id, kind, metric, detected_on, severity, acknowledged_by in (
            session.execute(
                sa.select(
                    Alert.id,
                    Alert.patient_id,
                    Alert.kind,
                    Alert.metric,
                    Alert.detected_on,
                    Alert.severity,
                    Alert.acknowledged_by_user_id,
                ).where(
                    sa.tuple_(Alert.patient_id, Alert.kind, Alert.metric, Alert.detected_on).in_(
                        keys
                    ),
                    Alert.status == AlertStatus.RESOLVED,
                    Alert.resolved_by_user_id.is_(None),
                )
            )
        )
    }
    for (patient_id, episode, displaced), key in zip(ongoing, keys, strict=True):
        found = reopenable.get(key)
        acknowledgement: dict[str, Any] = {}
        if displaced is not None:
            (_, _, displaced_on), later = displaced
            # First: one unresolved alert per kind and metric (a unique index). Not before it
            # was raised, whatever the replay's day (the demo's replay has none).
            result.resolved += _auto_resolve(
                session,
                patient_id,
                later.id,
                max(as_of or displaced_on, displaced_on),
                now,
                alerts.AUTO_NO_LONGER_SHOWN,
            )
            if found is not None and found[2] is None:
                acknowledgement = _acknowledgement_of(session, later.id)
        if found is None:
            continue
        alert_id, severity, acknowledged_by = found
        acknowledged = acknowledged_by is not None or bool(acknowledgement)
        session.execute(
            sa.update(Alert)
            .where(Alert.id == alert_id)
            .values(
                status=AlertStatus.ACKNOWLEDGED if acknowledged else AlertStatus.OPEN,
                resolved_on=None,
                resolved_at=None,
                resolve_note="",
                resolve_judgement=None,
                reopened_at=now,
                **acknowledgement,
            )
        )
        _reword(session, alert_id, episode)
        audit.record(session, SYSTEM, "alert.reopen", patient_id, target=f"alert:{alert_id}")
        result.reopened.append(alert_id)
        if severity != "urgent" and episode.severity == "urgent":
            audit.record(session, SYSTEM, "alert.escalate", patient_id, target=f"alert:{alert_id}")
            result.escalated.append(alert_id)


def _acknowledgement_of(session: Session, alert_id: int) -> dict[str, Any]:
    """Who acknowledged the alert, when and with what note, as column values (none if
    nobody did)."""
    row = session.execute(
        sa.select(
            Alert.acknowledged_by_user_id, Alert.acknowledged_at, Alert.acknowledge_note
        ).where(Alert.id == alert_id, Alert.acknowledged_by_user_id.is_not(None))
    ).first()
    if row is None:
        return {}
    return {
        "acknowledged_by_user_id": row[0],
        "acknowledged_at": row[1],
        "acknowledge_note": row[2],
    }


def _reword(session: Session, alert_id: int, episode: AlertEpisode) -> None:
    """An open alert's severity, explanation and related events as the replay now has them."""
    session.execute(
        sa.update(Alert)
        .where(Alert.id == alert_id)
        .values(
            severity=episode.severity,
            explanation=episode.explanation,
            related_events=_related_json(episode),
        )
    )


def _related_json(episode: AlertEpisode) -> list[dict[str, Any]]:
    return [e.to_json_dict() for e in episode.related_events]


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
        "related_events": _related_json(episode),
        "explanation": episode.explanation,
        "status": AlertStatus.RESOLVED if resolved else AlertStatus.OPEN,
        "resolved_at": now if resolved else None,
        "resolve_note": alerts.AUTO_ALREADY_RESOLVED if resolved else "",
        "created_at": now,
    }


def evaluate_and_commit(
    session: Session,
    patient_ids: Sequence[int],
    today: dt.date,
    config: DetectionConfig | None = None,
) -> EvaluationResult:
    """One transaction per batch: the alerts (and, with them, their notifications) commit
    together or not at all."""
    with cyclic_gc_paused():
        result = evaluate_patients(
            session, patient_ids, today, config or configured_detection(session)
        )
        notifications.queue_for_alerts(session, result.opened)
        # (Under their first key: only those never told of a reopened alert are told now.)
        notifications.queue_for_alerts(session, result.reopened)
        notifications.queue_for_alerts(session, result.escalated, escalation=True)
        audit.commit(session)
    return result


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for the block, then back on.

    Why: evaluating a batch makes hundreds of thousands of short-lived objects (decoded rows,
    series, episodes and their explanations), next to none of them in reference cycles, which
    reference counting frees. The collector, started every 700 new container objects, walked
    them and the process's older objects again and again: 10–15 % of a steady scan's CPU
    (`rehab bench detect`). What cycles the block leaves, the collector's next run frees.
    The switch is process-wide: a worker process runs one task at a time."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
