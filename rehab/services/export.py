"""Patients' data for an integrator or a clinic's records (design §1: "pull data as CSV or
FHIR R4"; `rehab export csv|fhir`, the API's and the pages' downloads).

FHIR: each patient's whole record as a Bundle (`rehab.fhir`: logs with their exercises,
events, findings, ODI/PSFS, programs; and in a clinician's or the system's export, not in a
patient's own, the clinic's alerts and pinned baselines), read batch by batch like the CSV;
several patients are NDJSON, a Bundle a line.

CSV:

In the file: each log's pain (back, leg and its side), adherence and red flags, and each
event's type, date, note, side, body region and fall mechanism. Not in it: log notes, pain
location, exercise entries, findings, ODI/PSFS scores, pinned baselines, programs.

The file is the `rehab detect` input (design §4, plus the columns of ours that `detect_io`
documents), written from the series the worker's detector reads (`evaluation.load_series`):
one place decides what a patient's data is, and `rehab detect` on an export replays the
worker's view of those logs and events. Without ODI/PSFS scores, pinned baselines and program
dates (the §4 contract has no columns for them) `function_decline` alerts and a clinician's
pins do not replay from it, and missed logging counts from the first log.

Every patient in a file is checked and audited first (`patient.export`, one row each), then
the file is written batch by batch of patients, each batch in `load_series`' few statements:
the memory a download holds is one batch's, whatever the caseload.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from rehab import fhir
from rehab.db.models import (
    Alert,
    Event,
    Exercise,
    ExerciseEntry,
    Finding,
    OutcomeMeasure,
    Patient,
    PinnedBaseline,
    Prescription,
    Program,
    ProgramPhase,
    SessionLog,
    User,
    utcnow,
)
from rehab.detect_io import write_series_csv
from rehab.domain.vocabulary import AuditOutcome
from rehab.services import alerts, audit, evaluation, scan
from rehab.services.access import NotFound, check_patient, visible_patient_ids
from rehab.services.actors import Actor

EXPORT_ACTION = "patient.export"
CSV = "csv"
FHIR = "fhir"
MEDIA_TYPE = "text/csv; charset=utf-8"
# A whole record per patient (≈ 5 resources a log, and one per exercise logged): fewer at a
# time.
FHIR_BATCH_SIZE = 25


class ExportRefused(NotFound):
    """A patient of the export is unknown or not the actor's: the whole file is refused."""

    def __init__(self, patient_id: int) -> None:
        super().__init__(f"patient {patient_id}")
        self.patient_id = patient_id


def _target(file_format: str) -> str:
    return f"format:{file_format}"  # the audit log's "kind:value" form


def authorize(
    session: Session, actor: Actor, patient_ids: Sequence[int] | None, file_format: str = CSV
) -> list[int]:
    """The patients of one export, each allowed and audited; `None`: every patient the actor
    may see (a clinician's care teams, a patient herself, an admin none; the CLI, as the
    system, every patient). A patient the
    actor may not see raises `ExportRefused` (a `NotFound`), and nothing of the file is
    written."""
    target = _target(file_format)
    if patient_ids is None:
        ids = sorted(session.scalars(visible_patient_ids(actor)))
        audit.record_per_patient(session, actor, EXPORT_ACTION, ids, target=target)
        return ids
    ids = list(dict.fromkeys(patient_ids))
    for patient_id in ids:
        try:
            check_patient(session, actor, patient_id, EXPORT_ACTION, target=target)
        except NotFound:
            raise ExportRefused(patient_id) from None
    return ids


def record_refusal(
    session: Session, actor: Actor, refused: ExportRefused, file_format: str = CSV
) -> None:
    """Outside a web request (the CLI): the refused attempt as one denied row, the rows of
    the patients checked before it dropped with the rest (`authorize` was rolled back)."""
    audit.record(
        session,
        actor,
        EXPORT_ACTION,
        refused.patient_id,
        AuditOutcome.DENIED,
        _target(file_format),
    )


def parts(
    session: Session, actor: Actor, patient_ids: Sequence[int], file_format: str, today: date
) -> Iterator[str]:
    """An authorised export's text in parts, batch by batch: the CSV or the FHIR NDJSON."""
    if file_format == FHIR:
        return fhir_parts(session, patient_ids, today, clinic_records=clinic_records(actor))
    return csv_parts(session, patient_ids)


def clinic_records(actor: Actor) -> bool:
    """Whether an export carries the clinic's working records (alerts, pinned baselines): a
    clinician's and the system's do; a patient's own does not, as her pages show neither
    (the alerts are written for her clinicians, in their words)."""
    return not actor.is_patient


def media_type(file_format: str, single: bool) -> str:
    """One patient's Bundle is FHIR JSON, several patients' NDJSON; a CSV is a CSV."""
    if file_format == FHIR:
        return fhir.MEDIA_TYPE if single else fhir.NDJSON_MEDIA_TYPE
    return MEDIA_TYPE


def csv_parts(
    session: Session, patient_ids: Sequence[int], batch_size: int = scan.BATCH_SIZE
) -> Iterator[str]:
    """The CSV of authorised patients in parts: the header, then one part per batch. Each
    batch is read in a transaction of its own, ended before the part is handed over: a slow
    download holds no transaction open (no "idle in transaction" connection)."""
    yield _header()
    for batch in scan.batches(list(patient_ids), batch_size):
        series = evaluation.load_series(session, batch, since=None)
        session.rollback()  # reads only
        buffer = io.StringIO()
        write_series_csv(series.values(), buffer, header=False)
        yield buffer.getvalue()


def _header() -> str:
    buffer = io.StringIO()
    write_series_csv((), buffer)
    return buffer.getvalue()


def fhir_parts(
    session: Session,
    patient_ids: Sequence[int],
    today: date,
    batch_size: int = FHIR_BATCH_SIZE,
    *,
    clinic_records: bool,
) -> Iterator[str]:
    """Authorised patients' Bundles, one NDJSON line each, read batch by batch (each batch's
    transaction ended before its lines are handed over, as for the CSV)."""
    generated_at = utcnow()
    for batch in scan.batches(list(patient_ids), batch_size):
        records = fhir_records(session, batch, clinic_records=clinic_records)
        session.rollback()  # reads only
        yield from fhir.patient_bundles_json(records, today, generated_at)


def fhir_records(
    session: Session, patient_ids: Sequence[int], *, clinic_records: bool
) -> list[fhir.PatientExport]:
    """The patients' rows for `rehab.fhir`, in `patient_ids`' order: 9 statements a batch,
    and up to 3 more for the clinic's records (alerts, their clinicians' names, pins).
    Plain rows (table columns), not ORM objects: they outlive the read's transaction and cost
    a fraction to build."""
    ids = list(patient_ids)
    patients = {
        row.id: row
        for row in session.execute(
            select(Patient.id, Patient.year_of_birth, User.display_name)
            .join(User, User.id == Patient.user_id)
            .where(Patient.id.in_(ids))
        )
    }
    logs = _rows_by_patient(
        session, SessionLog, SessionLog.patient_id.in_(ids), SessionLog.log_date
    )
    events = _rows_by_patient(session, Event, Event.patient_id.in_(ids), Event.event_date)
    findings = _rows_by_patient(
        session, Finding, Finding.patient_id.in_(ids), Finding.finding_date, User.display_name
    )
    outcomes = _rows_by_patient(
        session, OutcomeMeasure, OutcomeMeasure.patient_id.in_(ids), OutcomeMeasure.measured_on
    )
    programs = _programs_by_patient(session, ids)
    entries: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(
        select(*ExerciseEntry.__table__.columns, SessionLog.patient_id)
        .join(SessionLog, SessionLog.id == ExerciseEntry.session_log_id)
        .join(Prescription, Prescription.id == ExerciseEntry.prescription_id)
        .where(SessionLog.patient_id.in_(ids))
        .order_by(ExerciseEntry.session_log_id, Prescription.position, Prescription.id)
    ):
        entries[row.patient_id].append(row)
    alert_records, pins = _clinic_records(session, ids) if clinic_records else ({}, {})
    return [
        fhir.PatientExport(
            patient=patients[pid],
            display_name=patients[pid].display_name,
            logs=logs.get(pid, []),
            events=events.get(pid, []),
            findings=[(row, row.display_name) for row in findings.get(pid, [])],
            outcomes=outcomes.get(pid, []),
            programs=programs.get(pid, []),
            entries=entries.get(pid, []),
            alerts=alert_records.get(pid, []),
            pins=pins.get(pid, []),
        )
        for pid in ids
        if pid in patients
    ]


def _clinic_records(
    session: Session, patient_ids: list[int]
) -> tuple[dict[int, list[fhir.AlertExport]], dict[int, list[tuple[Any, str]]]]:
    """The batch's alerts by detection day, each with its lifecycle as the alert's page tells
    it (`alerts.history`), and pinned baselines in the order written, with who pinned each."""
    # Rows with an Alert's columns: what `alerts.history` reads of one.
    rows: list[Any] = list(
        session.execute(
            select(*Alert.__table__.columns)
            .where(Alert.patient_id.in_(patient_ids))
            .order_by(Alert.detected_on, Alert.id)
        )
    )
    names = alerts.clinician_names(session, rows)
    by_patient: dict[int, list[fhir.AlertExport]] = defaultdict(list)
    for row in rows:
        by_patient[row.patient_id].append(
            fhir.AlertExport(row, alerts.history(row, names), alerts.no_longer_shown(row))
        )
    pins: dict[int, list[tuple[Any, str]]] = defaultdict(list)
    for row in session.execute(
        select(*PinnedBaseline.__table__.columns, User.display_name)
        .join(User, User.id == PinnedBaseline.pinned_by_user_id)
        .where(PinnedBaseline.patient_id.in_(patient_ids))
        .order_by(PinnedBaseline.id)
    ):
        pins[row.patient_id].append((row, row.display_name))
    return by_patient, pins


def _programs_by_patient(
    session: Session, patient_ids: list[int]
) -> dict[int, list[fhir.ProgramExport]]:
    """The batch's programs by start date, each with its prescriptions (and their
    exercises' names) and phases: three statements."""
    programs = session.execute(
        select(*Program.__table__.columns)
        .where(Program.patient_id.in_(patient_ids))
        .order_by(Program.start_date, Program.id)
    ).all()
    program_ids = [row.id for row in programs]
    prescriptions: dict[int, list[tuple[Any, str]]] = defaultdict(list)
    for row in session.execute(
        select(*Prescription.__table__.columns, Exercise.name)
        .join(Exercise, Exercise.id == Prescription.exercise_id)
        .where(Prescription.program_id.in_(program_ids))
        .order_by(Prescription.position, Prescription.id)
    ):
        prescriptions[row.program_id].append((row, row.name))
    phases: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(
        select(*ProgramPhase.__table__.columns)
        .where(ProgramPhase.program_id.in_(program_ids))
        .order_by(ProgramPhase.start_date, ProgramPhase.id)
    ):
        phases[row.program_id].append(row)
    grouped: dict[int, list[fhir.ProgramExport]] = defaultdict(list)
    for row in programs:
        grouped[row.patient_id].append(
            fhir.ProgramExport(row, prescriptions.get(row.id, []), phases.get(row.id, []))
        )
    return grouped


def _rows_by_patient(
    session: Session,
    model: type[Event | Finding | OutcomeMeasure | SessionLog],
    where: ColumnElement[bool],
    dated: InstrumentedAttribute[date],
    *extra: InstrumentedAttribute[str],
) -> dict[int, list[Any]]:
    """A table's rows of the batch's patients, by patient, in date order; a finding's
    author's name (`extra`) joined in."""
    table = model.__table__
    query = select(*table.columns, *extra).where(where).order_by(dated, table.c.id)
    if extra:
        query = query.join(User, User.id == table.c.author_user_id)
    grouped: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(query):
        grouped[row.patient_id].append(row)
    return grouped


def filename(patient_ids: Sequence[int] | None, on: str, file_format: str = CSV) -> str:
    """ "rehab-patient-12-2026-11-26.csv" or "rehab-export-2026-11-26.csv": ids only. FHIR:
    one patient's Bundle is `.fhir.json`, several patients' `.fhir.ndjson`."""
    single = patient_ids is not None and len(patient_ids) == 1
    extension = "csv"
    if file_format == FHIR:
        extension = "fhir.json" if single else "fhir.ndjson"
    if patient_ids is not None and single:
        return f"rehab-patient-{patient_ids[0]}-{on}.{extension}"
    return f"rehab-export-{on}.{extension}"
