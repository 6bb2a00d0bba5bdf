"""The downloads of patients' data, as every blueprint answers them (the API, the clinic's
patient record, the patient's own account page): the `rehab detect` CSV or FHIR R4."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from flask import Response, stream_with_context

from rehab import fhir
from rehab.extensions import db
from rehab.services import export
from rehab.services.actors import Actor
from rehab.services.time import clinic_today


def csv_download(actor: Actor, patient_ids: Sequence[int] | None) -> Response:
    """Checked and audited before the answer starts (`NotFound` for a patient the actor may
    not see); the rows are streamed batch by batch after the audit rows are committed."""
    ids = export.authorize(db.session, actor, patient_ids)
    return _attachment(
        export.csv_parts(db.session, ids), export.MEDIA_TYPE, export.filename(patient_ids, _on())
    )


def fhir_download(actor: Actor, patient_ids: Sequence[int] | None) -> Response:
    """As `csv_download`: one patient's Bundle as FHIR JSON, several patients' as NDJSON (a
    Bundle a line)."""
    ids = export.authorize(db.session, actor, patient_ids, export.FHIR)
    single = patient_ids is not None and len(patient_ids) == 1
    return _attachment(
        export.fhir_parts(db.session, ids, clinic_today()),
        fhir.MEDIA_TYPE if single else fhir.NDJSON_MEDIA_TYPE,
        export.filename(patient_ids, _on(), export.FHIR),
    )


def _on() -> str:
    return clinic_today().isoformat()


def _attachment(parts: Iterator[str], media_type: str, name: str) -> Response:
    response = Response(stream_with_context(parts), mimetype=media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
