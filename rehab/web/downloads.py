"""The CSV download of patients' logs and events, as every blueprint answers it (the API,
the clinic's patient record, the patient's own account page)."""

from __future__ import annotations

from collections.abc import Sequence

from flask import Response, stream_with_context

from rehab.extensions import db
from rehab.services import export
from rehab.services.actors import Actor
from rehab.services.time import clinic_today


def csv_download(actor: Actor, patient_ids: Sequence[int] | None) -> Response:
    """Checked and audited before the answer starts (`NotFound` for a patient the actor may
    not see); the rows are streamed batch by batch after the audit rows are committed."""
    ids = export.authorize(db.session, actor, patient_ids)
    response = Response(
        stream_with_context(export.csv_parts(db.session, ids)), mimetype=export.MEDIA_TYPE
    )
    name = export.filename(patient_ids, clinic_today().isoformat())
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
