"""JSON API `/api/v1`: bearer tokens per device, pydantic validation, OpenAPI 3 document.

Errors are JSON: 400 malformed body, 401 no/invalid token, 404 unknown or not yours,
409 conflict (reused client id), 413 too large, 422 invalid field (named).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, g, jsonify, render_template, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from rehab.extensions import csrf, db, limiter
from rehab.services import accounts, clinical, export, logs, programs, series
from rehab.services.access import NotFound, check_patient
from rehab.services.actors import Actor
from rehab.services.commands import EventInput, InvalidInput, SessionLogInput, error_list
from rehab.web import schemas
from rehab.web.downloads import download
from rehab.web.openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# The API takes bearer tokens only, never the session cookie, so CSRF cannot reach it.
csrf.exempt(bp)
# No rate limit on device submissions (login is limited where passwords are guessed); the
# limiter's per-request check would cost a tenth of a log's budget.
limiter.exempt(bp)


C = TypeVar("C", bound=BaseModel)


class ApiError(HTTPException):
    def __init__(self, code: int, body: dict[str, Any]) -> None:
        super().__init__(description=body.get("message", ""))
        self.code = code
        self.rehab_body = body


def unprocessable(errors: list[dict[str, str]]) -> ApiError:
    return ApiError(422, {"error": "validation_error", "errors": errors})


def parse_body(model: type[C]) -> C:
    if not request.is_json:
        raise ApiError(415, {"error": "unsupported_media_type", "message": "send application/json"})
    try:
        payload = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than any body of ours
        raise ApiError(
            400, {"error": "malformed_json", "message": "the body is not valid JSON"}
        ) from None
    if not isinstance(payload, dict):
        raise unprocessable([{"field": "body", "message": "must be a JSON object"}])
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise unprocessable(error_list(exc)) from None


def checked_body(model: type[C], patient_id: int, action: str, *, patient_only: bool = False) -> C:
    """`parse_body` for a request about one patient. When the body is refused, access is
    checked first: a caller who may not act on the patient gets the same 404 for any body
    (valid, invalid or malformed), and every attempt leaves its one audit row (denied, or
    failed for an allowed caller's bad body), as the service would have written it."""
    try:
        return parse_body(model)
    except ApiError:
        check_patient(db.session, current_actor(), patient_id, action, patient_only=patient_only)
        raise


def current_actor() -> Actor:
    actor: Actor = g.api_actor
    return actor


F = TypeVar("F", bound=Callable[..., Any])


def service_errors(view: F) -> F:
    """Map the services' exceptions to API answers, in one place."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except NotFound:
            abort(404)
        except InvalidInput as exc:
            raise unprocessable([{"field": exc.field, "message": exc.message}]) from None
        except logs.Conflict as exc:
            raise ApiError(
                409, {"error": "conflict", "errors": [{"field": exc.field, "message": exc.message}]}
            ) from None

    return wrapper  # type: ignore[return-value]


@bp.before_request
def _authenticate() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    actor = None
    if scheme.lower() == "bearer" and token:
        actor = accounts.actor_for_api_token(db.session, token.strip())
    if actor is None:
        response = jsonify({"error": "unauthorized", "message": "a valid bearer token is needed"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="rehab"'
        return response
    g.api_actor = actor
    return None


def _json(model: BaseModel, status: int = 200) -> Response:
    response = Response(model.model_dump_json(), status=status, mimetype="application/json")
    return response


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document())


@bp.get("/docs")
def docs() -> Any:
    return render_template("api_docs.html", spec=openapi_document())


PUBLIC_ENDPOINTS = {"api.openapi", "api.docs"}


@bp.get("/me")
def me() -> Any:
    actor = current_actor()
    return _json(
        schemas.MeOut(
            user_id=actor.user_id or 0,
            role=actor.role.value if actor.role else "",
            patient_id=actor.patient_id,
        )
    )


@bp.post("/patients/<int:patient_id>/logs")
@service_errors
def submit_log(patient_id: int) -> Any:
    data = checked_body(SessionLogInput, patient_id, "session_log.write", patient_only=True)
    result = logs.record_session_log(db.session, current_actor(), patient_id, data, source="api")
    replayed = result.outcome in _REPLAYED
    # The same client id answers with the same body and status; the header tells a replay.
    response = _json(schemas.session_log_out(result.log, result.advice), status=201)
    response.headers["Idempotent-Replayed"] = str(replayed).lower()
    return response


@bp.put("/patients/<int:patient_id>/logs/<log_date>")
@service_errors
def put_todays_log(patient_id: int, log_date: str) -> Any:
    """Today's log, created or replaced (design §2: a log is editable that day). The body is a
    log as for POST, with a new client id for each edit; its `log_date` is the path's. A retry
    answers as the first time (201 or 200) and leaves the log as it stands."""
    data = checked_body(SessionLogInput, patient_id, "session_log.write", patient_only=True)
    if data.log_date.isoformat() != log_date:
        check_patient(
            db.session, current_actor(), patient_id, "session_log.write", patient_only=True
        )
        raise unprocessable([{"field": "log_date", "message": "must be the date in the path"}])
    result = logs.record_session_log(
        db.session,
        current_actor(),
        patient_id,
        data,
        source="api",
        allow_same_day_edit=True,
        today_only=True,
    )
    created = result.outcome in (logs.LogOutcome.CREATED, logs.LogOutcome.REPLAYED)
    response = _json(
        schemas.session_log_out(result.log, result.advice), status=201 if created else 200
    )
    response.headers["Idempotent-Replayed"] = str(result.outcome in _REPLAYED).lower()
    return response


_REPLAYED = (logs.LogOutcome.REPLAYED, logs.LogOutcome.REPLAYED_EDIT)


@bp.get("/patients/<int:patient_id>/series")
@service_errors
def get_series(patient_id: int) -> Any:
    try:
        query = schemas.SeriesQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        check_patient(db.session, current_actor(), patient_id, "series.read")
        raise unprocessable(error_list(exc)) from None
    days = series.daily_series(
        db.session, current_actor(), patient_id, query.start, query.end or dt.date.max
    )
    return _json(schemas.SeriesOut.from_days(patient_id, days))


@bp.post("/patients/<int:patient_id>/events")
@service_errors
def create_event(patient_id: int) -> Any:
    data = checked_body(EventInput, patient_id, "event.write")
    event, created = clinical.record_event(db.session, current_actor(), patient_id, data)
    response = _json(schemas.EventOut.model_validate(event), status=201)
    response.headers["Idempotent-Replayed"] = "false" if created else "true"
    return response


@bp.get("/patients/<int:patient_id>/events")
@service_errors
def list_events(patient_id: int) -> Any:
    events = clinical.list_events(db.session, current_actor(), patient_id)
    return _json(schemas.EventList(items=[schemas.EventOut.model_validate(e) for e in events]))


@bp.get("/patients/<int:patient_id>/export.csv")
@service_errors
def export_patient(patient_id: int) -> Any:
    """The patient's logs and events as the `rehab detect` CSV (`rehab.services.export`)."""
    return download(current_actor(), [patient_id], export.CSV)


@bp.get("/export.csv")
def export_all() -> Any:
    """Every patient the key may see, as one CSV: a clinician's care teams (a patient's own
    key: herself). Streamed batch by batch."""
    return download(current_actor(), None, export.CSV)


@bp.get("/patients/<int:patient_id>/export.fhir.json")
@service_errors
def export_patient_fhir(patient_id: int) -> Any:
    """The patient's record as a FHIR R4 Bundle (`rehab.fhir`)."""
    return download(current_actor(), [patient_id], export.FHIR)


@bp.get("/export.fhir.ndjson")
def export_all_fhir() -> Any:
    """Every patient the key may see, a FHIR R4 Bundle a line (NDJSON), streamed."""
    return download(current_actor(), None, export.FHIR)


@bp.get("/patients/<int:patient_id>/programs")
@service_errors
def list_programs(patient_id: int) -> Any:
    items = programs.list_programs(db.session, current_actor(), patient_id)
    return _json(schemas.ProgramList(items=[schemas.program_out(p) for p in items]))
