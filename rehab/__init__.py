"""rehab: longitudinal rehabilitation tracking.

`create_app(overrides)` builds the Flask application; `overrides` are settings names
(`database_url`, `mode`, ...) that take precedence over the environment and the defaults.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, request

from config import Settings, load_settings

log = logging.getLogger(__name__)


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    from rehab import logs

    # No exception text in this process's logs (web, worker, CLI): it may hold patient data.
    logs.install()
    settings = load_settings(**dict(overrides or {}))
    app = Flask(__name__, instance_path=str(settings.resolved_instance_path()))
    configure(app, settings)

    from rehab.db import drop_async_session_teardown, engine_options
    from rehab.extensions import csrf, db, limiter, login_manager

    app.config["SQLALCHEMY_ENGINES"] = {
        "default": engine_options(settings.resolve_sqlite(settings.database_url))
    }
    db.init_app(app)
    drop_async_session_teardown(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    from worker.factory import celery_init_app

    celery_init_app(app)

    from rehab.web import register_web

    register_web(app)
    install_request_hooks(app)
    return app


def configure(app: Flask, settings: Settings) -> None:
    production = settings.mode == "production"
    app.config.update(
        REHAB_SETTINGS=settings,
        REHAB_MODE=settings.mode,
        REHAB_CLINIC_TIMEZONE=settings.clinic_timezone,
        REHAB_PUBLIC_URL=settings.public_url.rstrip("/"),
        TESTING=settings.mode == "testing",
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,
        REMEMBER_COOKIE_SECURE=production,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=settings.session_absolute_minutes),
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        RATELIMIT_HEADERS_ENABLED=True,
        # The CSRF token lives as long as the session, not one hour: a form left open on a
        # phone must still submit.
        WTF_CSRF_TIME_LIMIT=None,
    )
    if settings.mode != "development":
        # The debugger runs code sent from the browser and shows tracebacks: never outside
        # development, whatever FLASK_DEBUG says.
        app.debug = False


def install_request_hooks(app: Flask) -> None:
    from rehab.extensions import db
    from rehab.services import audit

    @app.before_request
    def _request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        # Accept a caller's id only if it is a plain token (it ends up in the audit table).
        g.request_id = (
            incoming if 8 <= len(incoming) <= 64 and incoming.isalnum() else uuid.uuid4().hex
        )

    @app.after_request
    def _finish(response: Any) -> Any:
        audit.flush_request_audit(db.session, response.status_code)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response
