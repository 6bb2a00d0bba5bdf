"""Web layer: blueprints, the logged-in user, error pages and security headers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.routing import IntegerConverter, Map

from rehab.services.time import clinic_date, clinic_time

API_PREFIX = "/api/v1"

# Patient pages and API answers must not be kept by browsers or proxies.
NO_STORE_PREFIXES = (
    "/me",
    "/clinic",
    "/admin",
    "/settings",
    "/unsubscribe",
    "/welcome",  # the one-time links' pages show the account's address
    "/reset",
    "/account",  # her login address, and the link confirming a new one
    API_PREFIX,
)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class FieldRefused(BadRequest):
    """A 400 whose description names the field and why ("q: contains a NUL character")."""


def wants_json() -> bool:
    return request.path.startswith(API_PREFIX)


# Ids in URLs are database ids: INTEGER columns (SERIAL), at most 2**31 - 1.
MAX_ID = 2**31 - 1


def digits_at_most(limit: int) -> str:
    """A regular expression for the decimal numbers 0..limit (no leading zeros needed)."""
    text = str(limit)
    alternatives = [rf"\d{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    for i, char in enumerate(text):
        low = 1 if i == 0 and len(text) > 1 else 0
        if int(char) > low:
            below = f"[{low}-{int(char) - 1}]" if int(char) - 1 > low else str(low)
            alternatives.append(text[:i] + below + rf"\d{{{len(text) - i - 1}}}")
    alternatives.append(text)
    return "(?:" + "|".join(alternatives) + ")"


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: a number beyond what an id column holds matches no route
    (404) instead of reaching the database, where PostgreSQL refuses it (a 500). The bound is
    in the pattern, not only in the conversion: a path that matches a rule's pattern but
    fails its conversion is answered 405 when the same path has a rule for another method."""

    regex = digits_at_most(MAX_ID)

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def clinic_time_text(moment: dt.datetime) -> str:
    """A stored time as the clinic reads it, e.g. 2024-03-05 14:32 CET (templates:
    `clinic_time`)."""
    return clinic_time(moment).strftime("%Y-%m-%d %H:%M %Z")


def register_web(app: Flask) -> None:
    from rehab.web import admin, alerts, api, auth, chart_assets, clinic, health, patient, summary
    from rehab.web import outbox as outbox_web
    from rehab.web import settings as settings_web

    app.url_map.converters["int"] = IdConverter
    app.add_template_global(clinic_time_text, "clinic_time")
    app.add_template_global(clinic_date, "clinic_date")
    app.add_template_global(health.current_pipeline_status, "pipeline_status")
    auth.init_login(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(patient.bp)
    app.register_blueprint(clinic.bp)
    app.register_blueprint(alerts.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(settings_web.bp)
    app.register_blueprint(outbox_web.bp)
    app.register_blueprint(summary.bp)
    app.register_blueprint(chart_assets.bp)
    app.register_blueprint(health.bp)

    @app.before_request
    def _refuse_nul() -> None:
        # PostgreSQL cannot store NUL and no field takes one: refuse it here, naming the
        # field, before any view queries by it (the login form, the caseload search) or keeps
        # it (the search term lives in the session). The API checks its JSON bodies itself.
        sources = [request.args]
        if request.method == "POST" and request.mimetype in FORM_MIMETYPES and not wants_json():
            sources.append(request.form)
        for source in sources:
            for key, value in source.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    name = key.replace("\x00", "")
                    raise FieldRefused(description=f"{name}: contains a NUL character")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        if wants_json():
            body = getattr(exc, "rehab_body", None) or {
                "error": exc.name.lower().replace(" ", "_"),
                "message": exc.description,
            }
            return jsonify(body), code
        detail = exc.description if isinstance(exc, FieldRefused) else None
        return render_template("error.html", code=code, name=exc.name, detail=detail), code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        # Generic answer only: no traceback, no data. The log has the exception type and the
        # request id; never the request body.
        app.logger.error(
            "unhandled %s (request %s)", type(exc).__name__, g.get("request_id"), exc_info=exc
        )
        if wants_json():
            return jsonify({"error": "internal_error", "request_id": g.get("request_id")}), 500
        return render_template("error.html", code=500, name="Something went wrong"), 500

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if app.config["REHAB_MODE"] == "production":
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.path.startswith(NO_STORE_PREFIXES):
            headers["Cache-Control"] = "no-store"
        return response
