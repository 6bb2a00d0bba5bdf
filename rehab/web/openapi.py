"""The OpenAPI 3.1 document, assembled from the same pydantic models that validate requests
and serialise responses, so the document cannot drift from the code."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from rehab.detect_io import CSV_COLUMNS
from rehab.services.commands import EventInput, SessionLogInput
from rehab.web import MAX_ID, schemas

PATIENT_ID = {
    "name": "patient_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


ERRORS = {
    "401": _json(schemas.ErrorOut, "No or invalid bearer token"),
    "404": _json(schemas.ErrorOut, "Unknown, or not visible to this token"),
}
CSV_FILE = {
    "description": "The `rehab detect` CSV (RFC 4180, header line): for each patient, her logs, "
    "a row each, then her events, a row each; `red_flags` lists the day's red flags separated by "
    "`;`; free text starting like a spreadsheet formula is written after a `'`. Sent as an "
    "attachment (Content-Disposition). Columns: " + ", ".join(CSV_COLUMNS),
    "content": {"text/csv": {"schema": {"type": "string"}}},
}
FHIR_BUNDLE = {
    "description": "The patient's record as a FHIR R4 Bundle (type collection): the Patient, "
    "an Observation per pain score (LOINC 72514-3), adherence, red flag, event, finding and "
    "ODI/PSFS score, each exercise logged, a daily-log panel per log and a CarePlan per "
    "program; for a clinician's key also a DetectedIssue per alert and an Observation per "
    "pinned baseline; stable urn:uuid ids. Sent as an attachment.",
    "content": {"application/fhir+json": {"schema": {"type": "object"}}},
}
FHIR_NDJSON = {
    "description": "One FHIR R4 Bundle per line (NDJSON), each as one patient's export.",
    "content": {"application/fhir+ndjson": {"schema": {"type": "string"}}},
}
BODY_ERRORS = {
    "400": _json(schemas.ErrorOut, "Malformed JSON"),
    "409": _json(schemas.ErrorOut, "Conflicts with what is stored"),
    "413": {"description": "Body too large"},
    "415": _json(schemas.ErrorOut, "Not application/json"),
    "422": _json(schemas.ErrorOut, "Invalid field; each error names its field"),
}


@cache
def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        SessionLogInput,
        EventInput,
        schemas.SessionLogOut,
        schemas.SeriesOut,
        schemas.EventOut,
        schemas.EventList,
        schemas.ProgramList,
        schemas.MeOut,
        schemas.ErrorOut,
    ]
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rehab API",
            "version": "1",
            "description": "Daily session logs, events and programs of rehabilitation "
            "patients. Every call needs a per-device bearer token.",
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": secured,
        "paths": {
            "/me": {
                "get": {
                    "operationId": "getMe",
                    "summary": "Who this token belongs to",
                    "responses": {"200": _json(schemas.MeOut, "The token's user"), **ERRORS},
                }
            },
            "/patients/{patient_id}/logs": {
                "post": {
                    "operationId": "submitSessionLog",
                    "summary": "Submit a daily session log (idempotent by client_id)",
                    "description": "Send the same client_id again (a retry) and the stored log "
                    "is returned with the same status; header Idempotent-Replayed tells which. "
                    "A used client_id with a different body is 409.",
                    "parameters": [PATIENT_ID],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(SessionLogInput)}},
                    },
                    "responses": {
                        "201": _json(schemas.SessionLogOut, "Stored (or replayed)"),
                        **ERRORS,
                        **BODY_ERRORS,
                    },
                }
            },
            "/patients/{patient_id}/logs/{log_date}": {
                "put": {
                    "operationId": "putTodaysSessionLog",
                    "summary": "Create or replace today's log (a log is editable that day)",
                    "description": "The body is a log as for POST, its log_date the path's "
                    "date, which must be today (the clinic's date); use a new client_id for "
                    "each edit. 201 when created, 200 when replaced; another day is 409. A "
                    "retry (the same client_id and body) answers as the first time and leaves "
                    "the log as it stands; the same client_id with another body is 409.",
                    "parameters": [
                        PATIENT_ID,
                        {
                            "name": "log_date",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "date"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(SessionLogInput)}},
                    },
                    "responses": {
                        "200": _json(schemas.SessionLogOut, "Replaced"),
                        "201": _json(schemas.SessionLogOut, "Created"),
                        **ERRORS,
                        **BODY_ERRORS,
                    },
                }
            },
            "/patients/{patient_id}/series": {
                "get": {
                    "operationId": "getSeries",
                    "summary": "The patient's daily pain and adherence series",
                    "parameters": [
                        PATIENT_ID,
                        {
                            "name": "start",
                            "in": "query",
                            "schema": {"type": "string", "format": "date"},
                        },
                        {
                            "name": "end",
                            "in": "query",
                            "schema": {"type": "string", "format": "date"},
                        },
                    ],
                    "responses": {
                        "200": _json(schemas.SeriesOut, "Days in date order"),
                        "422": _json(schemas.ErrorOut, "Invalid query parameter"),
                        **ERRORS,
                    },
                }
            },
            "/patients/{patient_id}/events": {
                "get": {
                    "operationId": "listEvents",
                    "summary": "The patient's events, newest first (those a clinician marked "
                    "entered in error are left out)",
                    "parameters": [PATIENT_ID],
                    "responses": {"200": _json(schemas.EventList, "Events"), **ERRORS},
                },
                "post": {
                    "operationId": "createEvent",
                    "summary": "Record an event (a fall needs its mechanism)",
                    "parameters": [PATIENT_ID],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(EventInput)}},
                    },
                    "responses": {
                        "201": _json(schemas.EventOut, "Stored (or replayed by client_id)"),
                        **ERRORS,
                        **BODY_ERRORS,
                    },
                },
            },
            "/patients/{patient_id}/export.csv": {
                "get": {
                    "operationId": "exportPatient",
                    "summary": "The patient's logs and events as CSV (the `rehab detect` input)",
                    "parameters": [PATIENT_ID],
                    "responses": {"200": CSV_FILE, **ERRORS},
                }
            },
            "/export.csv": {
                "get": {
                    "operationId": "exportAll",
                    "summary": "Every patient this key may see (a clinician's care teams) as one "
                    "CSV, the same as one patient's",
                    "responses": {"200": CSV_FILE, "401": ERRORS["401"]},
                }
            },
            "/patients/{patient_id}/export.fhir.json": {
                "get": {
                    "operationId": "exportPatientFhir",
                    "summary": "The patient's record as a FHIR R4 Bundle",
                    "parameters": [PATIENT_ID],
                    "responses": {"200": FHIR_BUNDLE, **ERRORS},
                }
            },
            "/export.fhir.ndjson": {
                "get": {
                    "operationId": "exportAllFhir",
                    "summary": "Every patient this key may see, a FHIR R4 Bundle a line",
                    "responses": {"200": FHIR_NDJSON, "401": ERRORS["401"]},
                }
            },
            "/patients/{patient_id}/programs": {
                "get": {
                    "operationId": "listPrograms",
                    "summary": "The patient's programs with phases and prescriptions",
                    "parameters": [PATIENT_ID],
                    "responses": {"200": _json(schemas.ProgramList, "Programs"), **ERRORS},
                }
            },
        },
    }
