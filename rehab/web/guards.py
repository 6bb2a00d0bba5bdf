"""The role check of the page blueprints: a logged-in caller on pages of another role gets
the same 404 as for a record that does not exist, and the attempt is audited as denied."""

from __future__ import annotations

from typing import NoReturn

from flask import abort, request
from flask_login import current_user

from rehab.domain.vocabulary import AuditOutcome
from rehab.extensions import db
from rehab.services import audit


def deny() -> NoReturn:
    """404, with one "denied" audit row: the endpoint as the action, the patient id when the
    URL names one, and the other record the URL names (e.g. "alert:7") as the target."""
    args = request.view_args or {}
    patient_id = args.get("patient_id")
    target = next(
        (
            f"{name.removesuffix('_id')}:{value}"
            for name, value in args.items()
            if name != "patient_id" and isinstance(value, int)
        ),
        None,
    )
    audit.record(
        db.session,
        current_user.actor,
        request.endpoint or "page",
        patient_id if isinstance(patient_id, int) else None,
        AuditOutcome.DENIED,
        target,
    )
    abort(404)
