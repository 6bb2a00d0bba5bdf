"""Recording the daily session log: validated, idempotent by client id, audited, and followed
by detection once committed."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from rehab.db import execute_core
from rehab.db.models import (
    AuditEvent,
    Event,
    ExerciseEntry,
    Prescription,
    Program,
    SessionLog,
    SessionLogEdit,
    UTCDateTime,
    utcnow,
)
from rehab.domain.advice import Advice, advice_for
from rehab.domain.session_adherence import (
    DAILY,
    DAYS_BEFORE,
    DoneEntry,
    PrescribedDose,
    session_adherence,
)
from rehab.domain.vocabulary import EventType, RedFlag
from rehab.services import audit
from rehab.services.access import check_patient, require_patient
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput, SessionLogInput
from rehab.services.dispatch import EVALUATE_PATIENT_TASK, enqueue_after_commit
from rehab.services.programs import program_in_effect, program_on
from rehab.services.time import clinic_today


class LogOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    REPLAYED = "replayed"  # a retry of the submission that created the log
    REPLAYED_EDIT = "replayed_edit"  # a retry of an edit: the log as it stands, untouched


class Conflict(Exception):
    """The submission contradicts what is stored (a reused client id, a second log a day)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class LogResult:
    log: SessionLog
    outcome: LogOutcome
    advice: Advice | None


def record_session_log(
    session: Session,
    actor: Actor,
    patient_id: int,
    data: SessionLogInput,
    *,
    source: str = "api",
    allow_same_day_edit: bool = False,
    today_only: bool = False,
) -> LogResult:
    """Store one daily log (or replay the stored one for a retried client id).

    `allow_same_day_edit`: today's log is edited in place (the web form, the API's PUT), each
    edit recorded by its client id (`SessionLogEdit`), so that a retried edit is a replay and
    never lands again over a newer one. Without it (the API's POST) a second log on one date
    is 409. `today_only`: a log for another day is 409 (PUT edits today's log only).
    """
    check_patient(session, actor, patient_id, "session_log.write", patient_only=True)
    data = data.canonical()
    body_hash = data.fingerprint()
    _one_log_write_at_a_time(session, patient_id)
    context = _log_context(session, patient_id, data.log_date, data.client_id)

    if context.by_client_id is not None or context.edit_log_id is not None:
        replayed = _replay_by_client_id(session, patient_id, data.client_id, body_hash)
        if replayed is not None:
            return replayed

    today = clinic_today()
    if today_only and data.log_date != today:
        raise Conflict(
            "log_date", f"is not today ({today.isoformat()}): only today's log is edited"
        )
    if data.log_date > today:
        raise InvalidInput("log_date", f"is in the future (today is {today.isoformat()})")
    first_start = context.first_start
    if first_start is not None and data.log_date < first_start:
        raise InvalidInput(
            "log_date", f"is before the patient's first program ({first_start.isoformat()})"
        )
    prescriptions = context.prescribed
    for index, entry in enumerate(data.exercises):
        if entry.prescription_id not in prescriptions:
            raise InvalidInput(
                f"exercises.{index}.prescription_id",
                "is not an exercise of the patient's program on that date",
            )
    adherence = _day_adherence(prescriptions, data.exercises)

    now = utcnow()
    values: dict[str, Any] = {
        "body_hash": body_hash,
        "back_pain": data.back_pain,
        "leg_pain": data.leg_pain,
        "leg_side": data.leg_side,
        "pain_location": data.pain_location or None,
        **{f"red_flag_{flag.value}": flag in data.red_flags for flag in RedFlag},
        "note": data.note,
        "adherence": adherence,
        "source": source,
        "updated_at": now,
    }
    entries = [
        {
            "prescription_id": e.prescription_id,
            "done": e.done,
            "sets_done": e.sets_done,
            "reps_done": e.reps_done,
        }
        for e in data.exercises
    ]
    editing = context.same_day_id is not None
    if editing and not (allow_same_day_edit and data.log_date == today):
        raise Conflict(
            "log_date", "a log for this date already exists; only today's log can be edited"
        )
    enqueue_after_commit(session, EVALUATE_PATIENT_TASK, patient_id)
    try:
        if editing:
            assert context.same_day_id is not None
            # The log keeps the client id and body hash it was created with (a retry of that
            # submission is still its replay); the edit is recorded under its own.
            del values["body_hash"]
            log = _edit_log(session, context.same_day_id, values, entries)
            session.add(
                SessionLogEdit(
                    patient_id=patient_id,
                    client_id=data.client_id,
                    body_hash=body_hash,
                    session_log_id=context.same_day_id,
                    created_at=now,
                )
            )
            session.flush()
            outcome = LogOutcome.UPDATED
        else:
            key = {"patient_id": patient_id, "log_date": data.log_date, "client_id": data.client_id}
            log = _insert_log(session, {**key, "created_at": now, **values}, entries)
            outcome = LogOutcome.CREATED
        if context.logs_in_week_after:
            _recompute_adherence_after(session, patient_id, data.log_date)
        _commit_keeping_loaded(session)
    except IntegrityError:
        # A concurrent identical submission won the race: answer as its replay. The rollback
        # dropped this request's audit row with the rest; record the attempt again.
        session.rollback()
        audit.discard_pending()
        audit.record(session, actor, "session_log.write", patient_id)
        replayed = _replay_by_client_id(session, patient_id, data.client_id, body_hash)
        if replayed is None:
            raise Conflict("log_date", "a log for this date already exists") from None
        return replayed
    # The same rule as `advice_after_log`, from facts read before the insert (same request).
    advice = advice_for(
        [RedFlag(f) for f in log.red_flags],
        had_fall=context.recent_fall,
        has_spine_surgery_history=context.spine_surgery,
    )
    return LogResult(log, outcome, advice)


# An advisory lock key space of its own (the first of the two int4 keys; the evaluation's is
# `evaluation.EVALUATION_LOCK`).
LOG_WRITE_LOCK = 0x524C4F47  # "RLOG"
_LOCK_LOG_WRITES = sa.select(
    sa.func.pg_advisory_xact_lock(
        sa.bindparam("key", type_=sa.Integer), sa.bindparam("patient_id", type_=sa.Integer)
    )
)


def _one_log_write_at_a_time(session: Session, patient_id: int) -> None:
    """Serialise one patient's log writes, before the context is read.

    A log's adherence is computed from the 6 days before it, and a log stored late recomputes
    the 6 days after it (`_recompute_adherence_after`): each relies on reading the other's
    day. Two of them in flight at once (a phone syncing a missed day and the next one
    together) would each read the other as absent, and the later day would keep a score
    without the earlier one for good. Under this lock the second waits for the first's
    commit, and its context SELECT (a statement of its own, so a snapshot taken after the
    wait: READ COMMITTED) then sees it. Identical retries are serialised too: the second
    finds the first's log by its client id and replays it. Transaction-scoped: released at
    commit or rollback. SQLite (the demo) is left as it is: its one writer is not held from
    the context read to the commit."""
    if session.get_bind().dialect.name == "postgresql":
        execute_core(session, _LOCK_LOG_WRITES, {"key": LOG_WRITE_LOCK, "patient_id": patient_id})


@dataclass(frozen=True)
class _LogContext:
    """What recording one log needs to know about the patient, read in one round trip."""

    by_client_id: int | None  # the log already stored under this client id
    # The edit already made under this client id: the log it edited and its body hash.
    edit_log_id: int | None
    edit_body_hash: str | None
    same_day_id: int | None  # the log already stored for this date
    first_start: dt.date | None  # start of the patient's first program
    # Active prescriptions in effect that day, by id, with what the day's adherence needs.
    prescribed: dict[int, PrescribedDose]
    recent_fall: bool  # a fall in the 7 days up to the log's date (advice)
    spine_surgery: bool  # any surgery on record (advice)
    # Logs already stored for the DAYS_BEFORE days after this one (an app syncing a missed
    # day late): their adherence depends on this day's (`_recompute_adherence_after`).
    logs_in_week_after: int


_LOGS = cast(sa.Table, SessionLog.__table__)
_ENTRIES = cast(sa.Table, ExerciseEntry.__table__)
_EDITS = cast(sa.Table, SessionLogEdit.__table__)


def _log_context_statement() -> sa.Select[Any]:
    """One SELECT for every check of a new log, so that accepting a log costs this query and
    the INSERTs. A one-row `facts` subquery (scalar subqueries on the patient's indexed
    columns) is joined to the active prescriptions of the program in effect: one row per
    prescription, or one row with NULLs when no program is in effect. Each prescription row
    carries how often it was performed in the 6 days before the log's day, which decides
    whether a less-than-daily exercise is part of the day's session
    (`rehab.domain.session_adherence`)."""
    patient_id = sa.bindparam("patient_id", type_=sa.Integer)
    log_date = sa.bindparam("log_date", type_=sa.Date)
    client_id = sa.bindparam("client_id", type_=sa.String)
    week_before = sa.bindparam("week_before", type_=sa.Date)
    week_after = sa.bindparam("week_after", type_=sa.Date)
    # Table columns, not ORM attributes: a plain Core statement skips the ORM's result layer.
    programs, logs = _table(Program), _LOGS
    events, prescriptions = _table(Event), _table(Prescription)
    program_id = program_in_effect(patient_id, log_date, programs.c.id).scalar_subquery()
    # Days of the DAYS_BEFORE before the log's day on which the prescription was performed
    # (`session_adherence.performed`: ticked done or some sets logged): an index range on the
    # patient's logs, then the (log, prescription) unique index. Daily exercises skip it.
    performed_before = (
        sa.select(sa.func.count())
        .select_from(_ENTRIES.join(logs, logs.c.id == _ENTRIES.c.session_log_id))
        .where(
            logs.c.patient_id == patient_id,
            logs.c.log_date > week_before,  # the 6 days before: week_before is 7 days back
            logs.c.log_date < log_date,
            _ENTRIES.c.prescription_id == prescriptions.c.id,
            sa.or_(_ENTRIES.c.done, _ENTRIES.c.sets_done > 0),
        )
        .correlate(prescriptions)
        .scalar_subquery()
    )
    less_than_daily = (prescriptions.c.sessions_per_week < DAILY, performed_before)
    facts = sa.select(
        sa.select(sa.func.min(programs.c.start_date))
        .where(programs.c.patient_id == patient_id)
        .scalar_subquery()
        .label("first_start"),
        program_in_effect(patient_id, log_date, programs.c.start_date)
        .scalar_subquery()
        .label("program_start"),
        sa.select(logs.c.id)
        .where(logs.c.patient_id == patient_id, logs.c.client_id == client_id)
        .scalar_subquery()
        .label("by_client_id"),
        *(
            sa.select(column)
            .where(_EDITS.c.patient_id == patient_id, _EDITS.c.client_id == client_id)
            .scalar_subquery()
            .label(f"edit_{column.name}")
            for column in (_EDITS.c.session_log_id, _EDITS.c.body_hash)
        ),
        sa.select(logs.c.id)
        .where(logs.c.patient_id == patient_id, logs.c.log_date == log_date)
        .scalar_subquery()
        .label("same_day_id"),
        sa.select(sa.func.count(events.c.id))
        .where(
            events.c.patient_id == patient_id,
            events.c.event_type == EventType.FALL,
            events.c.event_date.between(week_before, log_date),
            Event.current(),  # (the same table: a WHERE leaves the result's columns alone)
        )
        .scalar_subquery()
        .label("recent_falls"),
        sa.select(sa.func.count(events.c.id))
        .where(
            events.c.patient_id == patient_id,
            events.c.event_type == EventType.SURGERY,
            Event.current(),
        )
        .scalar_subquery()
        .label("surgeries"),
        sa.select(sa.func.count(logs.c.id))
        .where(
            logs.c.patient_id == patient_id,
            logs.c.log_date > log_date,
            logs.c.log_date <= week_after,
        )
        .scalar_subquery()
        .label("logs_in_week_after"),
    ).subquery("facts")
    return (
        sa.select(
            facts,
            prescriptions.c.id.label("prescription_id"),
            prescriptions.c.sets,
            prescriptions.c.sessions_per_week,
            sa.case(less_than_daily, else_=0).label("performed_before"),
        )
        .select_from(
            facts.outerjoin(
                prescriptions,
                sa.and_(prescriptions.c.program_id == program_id, prescriptions.c.active),
            )
        )
        .order_by(prescriptions.c.position)
    )


def _table(model: type[Any]) -> sa.Table:
    return cast(sa.Table, model.__table__)


# Built once: SQLAlchemy then reuses its compiled form and cache key on every request.
_LOG_CONTEXT = _log_context_statement()


def _log_context(
    session: Session, patient_id: int, log_date: dt.date, client_id: str
) -> _LogContext:
    rows = execute_core(
        session,
        _LOG_CONTEXT,
        {
            "patient_id": patient_id,
            "log_date": log_date,
            "client_id": client_id,
            # (The calendar's first and last weeks have no week before or after them.)
            "week_before": max(log_date, dt.date.min + dt.timedelta(days=7)) - dt.timedelta(days=7),
            "week_after": min(log_date, dt.date.max - dt.timedelta(days=DAYS_BEFORE))
            + dt.timedelta(days=DAYS_BEFORE),
        },
    ).all()
    first = rows[0]
    days_in_effect_before = (
        DAYS_BEFORE
        if first.program_start is None
        else min(DAYS_BEFORE, (log_date - first.program_start).days)
    )
    return _LogContext(
        by_client_id=first.by_client_id,
        edit_log_id=first.edit_session_log_id,
        edit_body_hash=first.edit_body_hash,
        same_day_id=first.same_day_id,
        first_start=first.first_start,
        prescribed={
            r.prescription_id: PrescribedDose(
                r.prescription_id,
                r.sets,
                r.sessions_per_week,
                performed_before=r.performed_before,
                days_in_effect_before=days_in_effect_before,
            )
            for r in rows
            if r.prescription_id
        },
        recent_fall=bool(first.recent_falls),
        spine_surgery=bool(first.surgeries),
        logs_in_week_after=first.logs_in_week_after,
    )


def _recompute_adherence_after(session: Session, patient_id: int, log_date: dt.date) -> None:
    """Store again the adherence of the logs of the DAYS_BEFORE days after `log_date`.

    Whether a less-than-daily exercise was due on a day depends on the 6 days before it
    (`rehab.domain.session_adherence`), so a log stored after those days' logs (a phone
    syncing a missed day late) changes what they should have scored, and the detector reads
    the stored figure. Each day is computed as when it was logged (same context query, same
    rule), now with the new log among the days before it. Only such late logs pay for this:
    the context query says whether there are any. A day whose exercises are not those of the
    program now in effect on it (a program change recorded afterwards, back-dated) keeps its
    score: it was logged against another program, and only that one could judge it."""
    later = session.execute(
        sa.select(_LOGS.c.id, _LOGS.c.log_date, _LOGS.c.adherence)
        .where(
            _LOGS.c.patient_id == patient_id,
            _LOGS.c.log_date > log_date,
            _LOGS.c.log_date <= log_date + dt.timedelta(days=DAYS_BEFORE),
        )
        .order_by(_LOGS.c.log_date)
    ).all()
    for log in later:
        prescribed = _log_context(session, patient_id, log.log_date, client_id="").prescribed
        entries = session.execute(
            sa.select(_ENTRIES.c.prescription_id, _ENTRIES.c.done, _ENTRIES.c.sets_done).where(
                _ENTRIES.c.session_log_id == log.id
            )
        ).all()
        if any(e.prescription_id not in prescribed for e in entries):
            continue
        adherence = _day_adherence(prescribed, entries)
        if adherence != log.adherence:
            session.execute(
                sa.update(_LOGS).where(_LOGS.c.id == log.id).values(adherence=adherence)
            )


def _day_adherence(prescribed: dict[int, PrescribedDose], entries: Iterable[Any]) -> float | None:
    """The day's adherence from its exercise entries (anything with `prescription_id`,
    `done` and `sets_done`: the submitted ones or the stored rows)."""
    return session_adherence(
        prescribed.values(),
        {e.prescription_id: DoneEntry(e.prescription_id, e.done, e.sets_done) for e in entries},
    )


_AUDIT = cast(sa.Table, AuditEvent.__table__)
_INSERT_LOG = sa.insert(_LOGS).returning(_LOGS.c.id)
_INSERT_ENTRIES = sa.insert(_ENTRIES)
_ENTRY_COLUMNS = ("prescription_id", "done", "sets_done", "reps_done")
_AUDIT_COLUMNS = (
    *("at", "user_id", "role", "patient_id"),
    *("action", "outcome", "request_id", "target"),
)


def _insert_log(
    session: Session, values: dict[str, Any], entries: list[dict[str, Any]]
) -> SessionLog:
    """INSERT a new log and its exercise entries; return the log as built from what was
    written. The rows are those `session.add(SessionLog(...))` would write, but going around
    the unit of work (and, on PostgreSQL, writing the log, its entries and the request's
    audit rows in one statement) saves most of what a log costs the web process."""
    if session.get_bind().dialect.name == "postgresql":
        log_id = _insert_log_postgresql(session, values, entries)
    else:
        log_id = session.execute(_INSERT_LOG, values).scalar_one()
        if entries:
            session.execute(_INSERT_ENTRIES, [{"session_log_id": log_id, **e} for e in entries])
    log = SessionLog(id=log_id, **values)
    set_committed_value(
        log, "entries", [ExerciseEntry(session_log_id=log_id, **entry) for entry in entries]
    )
    # Detached, with every column loaded: the caller reads it, nothing reloads it.
    make_transient_to_detached(log)
    return log


def _insert_log_postgresql(
    session: Session, values: dict[str, Any], entries: list[dict[str, Any]]
) -> int:
    audit_rows = audit.take_pending_values()
    params = dict(values)
    params["entry_rows"] = _json_rows(entries, _ENTRY_COLUMNS)
    params["audit_rows"] = _json_rows(audit_rows, _AUDIT_COLUMNS)
    statement = _postgresql_write(tuple(values))
    return int(execute_core(session, statement, params).scalar_one())


def _json_rows(rows: list[dict[str, Any]], names: tuple[str, ...]) -> str:
    """Rows as one JSON text parameter. One string costs the driver a fraction of what a
    dozen typed arrays (one per column) cost it to adapt: that adaptation was a tenth of the
    web process's CPU per log."""
    return json.dumps([[_plain(row[name]) for name in names] for row in rows])


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


@cache
def _postgresql_write(log_columns: tuple[str, ...]) -> sa.Select[Any]:
    """WITH new_log AS (INSERT ... RETURNING id), new_entries AS (INSERT ... SELECT FROM the
    entries' JSON rows), new_audit AS (INSERT ... SELECT FROM the audit rows' JSON) SELECT id:
    one round trip instead of three. PostgreSQL checks the entries' foreign key at the end of
    the statement, when the new log exists."""
    new_log = (
        sa.insert(_LOGS)
        .values({name: sa.bindparam(name, type_=_LOGS.c[name].type) for name in log_columns})
        .returning(_LOGS.c.id)
        .cte("new_log")
    )

    def rows(parameter: str, table: sa.Table, names: tuple[str, ...]) -> Any:
        # Each row a JSON array of the columns in order: a typed record per element, by
        # position (json_populate_recordset would need a named composite type).
        element = sa.func.json_array_elements(
            sa.cast(sa.bindparam(parameter, type_=sa.Text), JSON)
        ).table_valued("value")
        columns = [
            sa.cast(
                element.c.value.op("->>")(sa.literal_column(str(position))),
                _row_type(table.c[name].type),
            ).label(name)
            for position, name in enumerate(names)
        ]
        return sa.select(*columns).select_from(element).subquery(f"{parameter}")

    entry_rows = rows("entry_rows", _ENTRIES, _ENTRY_COLUMNS)
    new_entries = (
        sa.insert(_ENTRIES)
        .from_select(
            ["session_log_id", *_ENTRY_COLUMNS],
            sa.select(new_log.c.id, *(entry_rows.c[name] for name in _ENTRY_COLUMNS))
            .select_from(new_log)
            .join(entry_rows, sa.true()),
        )
        .cte("new_entries")
    )
    audit_rows = rows("audit_rows", _AUDIT, _AUDIT_COLUMNS)
    new_audit = (
        sa.insert(_AUDIT)
        .from_select(list(_AUDIT_COLUMNS), sa.select(*(audit_rows.c[n] for n in _AUDIT_COLUMNS)))
        .cte("new_audit")
    )
    return sa.select(new_log.c.id).add_cte(new_entries, new_audit)


def _row_type(column_type: Any) -> Any:
    # Enumerations travel as their text values; times keep their zone. Text is cast without
    # its length (an explicit cast to VARCHAR(n) would cut a longer value silently: the
    # column's own type refuses it instead, as the ORM's INSERT would).
    if isinstance(column_type, sa.String | sa.Enum):
        return sa.String()
    if isinstance(column_type, UTCDateTime):
        return sa.DateTime(timezone=True)
    return column_type


def _edit_log(
    session: Session, log_id: int, values: dict[str, Any], entries: list[dict[str, Any]]
) -> SessionLog:
    """Replace today's log in place (the web form's edit), through the unit of work."""
    log = session.scalars(
        sa.select(SessionLog)
        .where(SessionLog.id == log_id)
        .options(selectinload(SessionLog.entries))
    ).one()
    log.entries.clear()
    session.flush()
    for name, value in values.items():
        setattr(log, name, value)
    log.entries.extend(ExerciseEntry(**entry) for entry in entries)
    return log


def _commit_keeping_loaded(session: Session) -> None:
    """Commit the request's work (with its audit rows) without expiring what is loaded: the
    answer is built from the rows just written, and reloading them after the commit would
    cost a transaction and a query per object."""
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        audit.commit(session)
    finally:
        session.expire_on_commit = expire


def _by_client_id(session: Session, patient_id: int, client_id: str) -> SessionLog | None:
    return session.scalars(
        sa.select(SessionLog)
        .where(SessionLog.patient_id == patient_id, SessionLog.client_id == client_id)
        .options(selectinload(SessionLog.entries))
    ).one_or_none()


def _replay_by_client_id(
    session: Session, patient_id: int, client_id: str, body_hash: str
) -> LogResult | None:
    """The answer to a retried submission (the one that created a log, or an edit), or None
    if the client id was never used. The log is returned as it stands: a retried edit never
    lands again over a newer one. The same id with another body is 409."""
    log = _by_client_id(session, patient_id, client_id)
    outcome = LogOutcome.REPLAYED
    stored_hash = log.body_hash if log is not None else None
    if log is None:
        edit = session.execute(
            sa.select(SessionLogEdit.session_log_id, SessionLogEdit.body_hash).where(
                SessionLogEdit.patient_id == patient_id, SessionLogEdit.client_id == client_id
            )
        ).one_or_none()
        if edit is None:
            return None
        log = session.scalars(
            sa.select(SessionLog)
            .where(SessionLog.id == edit.session_log_id)
            .options(selectinload(SessionLog.entries))
        ).one()
        outcome, stored_hash = LogOutcome.REPLAYED_EDIT, edit.body_hash
    if stored_hash != body_hash:
        raise Conflict(
            "client_id", "was already used for a different log; generate a new id per log"
        )
    return LogResult(log, outcome, advice_after_log(session, log))


def has_spine_surgery_history(session: Session, patient_id: int) -> bool:
    return (
        session.scalar(
            sa.select(sa.func.count(Event.id)).where(
                Event.patient_id == patient_id,
                Event.event_type == EventType.SURGERY,
                Event.current(),
            )
        )
        or 0
    ) > 0


def advice_after_log(session: Session, log: SessionLog) -> Advice | None:
    """Red flags in the log, or a fall logged in the last 7 days, earn care guidance."""
    recent_fall = session.scalar(
        sa.select(sa.func.count(Event.id)).where(
            Event.patient_id == log.patient_id,
            Event.event_type == EventType.FALL,
            Event.event_date.between(log.log_date - dt.timedelta(days=7), log.log_date),
            Event.current(),
        )
    )
    return advice_for(
        [RedFlag(f) for f in log.red_flags],
        had_fall=bool(recent_fall),
        has_spine_surgery_history=has_spine_surgery_history(session, log.patient_id),
    )


def get_log(
    session: Session, actor: Actor, patient_id: int, log_date: dt.date
) -> SessionLog | None:
    require_patient(session, actor, patient_id, "session_log.read")
    return session.scalars(
        sa.select(SessionLog)
        .where(SessionLog.patient_id == patient_id, SessionLog.log_date == log_date)
        .options(selectinload(SessionLog.entries))
    ).one_or_none()


def prescriptions_for_day(session: Session, patient_id: int, day: dt.date) -> list[Prescription]:
    program = program_on(session, patient_id, day)
    return [p for p in program.prescriptions if p.active] if program else []


def advice_after_event(session: Session, event: Event) -> Advice | None:
    """A fall just logged earns the same care guidance as a log after a fall."""
    if event.event_type is not EventType.FALL:
        return None
    return advice_for(
        [],
        had_fall=True,
        has_spine_surgery_history=has_spine_surgery_history(session, event.patient_id),
    )


class StaleDay(Conflict):
    """A web log page opened for a day that can no longer be logged from the web."""


def web_log_is_late(log_date: dt.date, today: dt.date) -> bool:
    """The web form's days: today's log (replaced if saved again that day), or yesterday's
    the day after, for a patient who forgot it (a late log: created once, never replaced).
    A page opened for an older day, or a later one, is refused (`StaleDay`): its answers
    are never stored under another day."""
    if log_date == today:
        return False
    if log_date == today - dt.timedelta(days=1):
        return True
    raise StaleDay("log_date", f"{log_date.isoformat()} can no longer be logged here")


def can_log_late(session: Session, patient_id: int, day: dt.date) -> bool:
    """Whether the patient's page offers to log `day` after it (she forgot yesterday): not
    logged yet, and not before her first program's start (the log's own rule). The caller
    has checked access."""
    first_start = session.scalar(
        sa.select(sa.func.min(Program.start_date)).where(Program.patient_id == patient_id)
    )
    if first_start is not None and day < first_start:
        return False
    return not has_log_on(session, patient_id, day)


def has_log_on(session: Session, patient_id: int, day: dt.date) -> bool:
    """Whether the patient has a log for `day` (the today page says "edit" rather than "new";
    the caller has checked access)."""
    found = session.scalar(
        sa.select(SessionLog.id).where(
            SessionLog.patient_id == patient_id, SessionLog.log_date == day
        )
    )
    return found is not None
