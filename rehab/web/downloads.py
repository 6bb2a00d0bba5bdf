"""The downloads of patients' data, as every blueprint answers them (the API, the clinic's
patient record, the patient's own account page): the `rehab detect` CSV or FHIR R4."""

from __future__ import annotations

from collections.abc import Sequence

from flask import Response, stream_with_context

from rehab.extensions import db
from rehab.services import export
from rehab.services.actors import Actor
from rehab.services.time import clinic_today


def download(actor: Actor, patient_ids: Sequence[int] | None, file_format: str) -> Response:
    """`export.CSV` or `export.FHIR`, checked and audited before the answer starts
    (`NotFound` for a patient the actor may not see); the file is streamed batch by batch
    after the audit rows are committed."""
    ids = export.authorize(db.session, actor, patient_ids, file_format)
    today = clinic_today()
    single = patient_ids is not None and len(patient_ids) == 1
    response = Response(
        stream_with_context(export.parts(db.session, actor, ids, file_format, today)),
        mimetype=export.media_type(file_format, single),
    )
    name = export.filename(patient_ids, today.isoformat(), file_format)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
