"""Patients' logs and events as CSV, for an integrator or a clinic's records (design §1:
"pull data as CSV"; `rehab export csv`, the API's and the pages' downloads).

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
from collections.abc import Iterator, Sequence

from sqlalchemy.orm import Session

from rehab.detect_io import write_series_csv
from rehab.domain.vocabulary import AuditOutcome
from rehab.services import audit, evaluation, scan
from rehab.services.access import NotFound, check_patient, visible_patient_ids
from rehab.services.actors import Actor

EXPORT_ACTION = "patient.export"
EXPORT_TARGET = "format:csv"  # the audit log's "kind:value" form
MEDIA_TYPE = "text/csv; charset=utf-8"


class ExportRefused(NotFound):
    """A patient of the export is unknown or not the actor's: the whole file is refused."""

    def __init__(self, patient_id: int) -> None:
        super().__init__(f"patient {patient_id}")
        self.patient_id = patient_id


def authorize(session: Session, actor: Actor, patient_ids: Sequence[int] | None) -> list[int]:
    """The patients of one export, each allowed and audited; `None`: every patient the actor
    may see (a clinician's care teams, a patient herself, an admin none; the CLI, as the
    system, every patient). A patient the
    actor may not see raises `ExportRefused` (a `NotFound`), and nothing of the file is
    written."""
    if patient_ids is None:
        ids = sorted(session.scalars(visible_patient_ids(actor)))
        audit.record_per_patient(session, actor, EXPORT_ACTION, ids, target=EXPORT_TARGET)
        return ids
    ids = list(dict.fromkeys(patient_ids))
    for patient_id in ids:
        try:
            check_patient(session, actor, patient_id, EXPORT_ACTION, target=EXPORT_TARGET)
        except NotFound:
            raise ExportRefused(patient_id) from None
    return ids


def record_refusal(session: Session, actor: Actor, refused: ExportRefused) -> None:
    """Outside a web request (the CLI): the refused attempt as one denied row, the rows of
    the patients checked before it dropped with the rest (`authorize` was rolled back)."""
    audit.record(
        session, actor, EXPORT_ACTION, refused.patient_id, AuditOutcome.DENIED, EXPORT_TARGET
    )


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


def filename(patient_ids: Sequence[int] | None, on: str) -> str:
    """ "rehab-patient-12-2026-11-26.csv" or "rehab-export-2026-11-26.csv": ids only."""
    if patient_ids is not None and len(patient_ids) == 1:
        return f"rehab-patient-{patient_ids[0]}-{on}.csv"
    return f"rehab-export-{on}.csv"
