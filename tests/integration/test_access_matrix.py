"""The access matrix (issue 6, item 1): every route of the app, called as each of six actors.

`ROUTES` classifies every (endpoint, method) of `app.url_map`: who may call it and how to
build its URL (placeholders filled with an existing record of patient A, or with ids that do
not exist). A route missing from the table fails `test_every_route_is_classified`, so a new
route cannot ship without a decision.

For each route and actor:
- allowed: the answer is a success (200, 201, or a redirect after a POST);
- anonymous: 401 from the API, a redirect to the login page from pages;
- anybody else: 404, byte for byte the same answer for A's existing record as for an id that
  does not exist (and the same for an allowed actor asking for a missing record).
Forbidden calls are made with complete, valid bodies (the allowed actor's form, with the
caller's own CSRF token): refusing them must not depend on a validation error.

Then: ids and roles sent by a client never widen access; the caseload's search, filters, sorts,
counts and pages show only the care team's patients; list and series answers hold only the
caller's patients; and removing a clinician from a care team ends their access at their next
request.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from rehab import create_app
from rehab.charts import assets
from rehab.db.models import (
    AuditEvent,
    CareTeam,
    CareTeamMember,
    Event,
    Exercise,
    Notification,
    NotificationStatus,
    OutcomeMeasure,
    SessionLog,
    User,
    utcnow,
)
from rehab.domain.vocabulary import Instrument, Role
from rehab.extensions import db
from rehab.notifications.tokens import make_token
from rehab.services import accounts, notifications
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_notifications_outbox import make_alert, rows
from tests.support.actors import (
    ACTORS,
    ADMIN,
    ANONYMOUS,
    CLINICIAN_OFF,
    CLINICIAN_ON,
    LOGGED_IN,
    PATIENT_A,
    PATIENT_B,
    bearer,
    logged_in_clients,
    token_of,
)
from tests.support.clinic import Clinic, build_clinic, login, search_caseload
from tests.support.history import add_fall, add_logs
from tests.support.pages import form_data, text, visible_text

MISSING = 987654
EVERYONE = frozenset(ACTORS)
PATIENTS = frozenset({PATIENT_A, PATIENT_B})
CLINICIANS = frozenset({CLINICIAN_ON, CLINICIAN_OFF})
OK = frozenset({200})
REDIRECT = frozenset({302})
SEE_OTHER = frozenset({303})
CREATED = frozenset({201})


@dataclass(frozen=True)
class Route:
    """How to call one (endpoint, method) and who may.

    `path` has placeholders ({patient}, {alert}, ...) filled from `Ctx.existing` or
    `Ctx.missing`; a path with placeholders is "targeted": its forbidden answers are compared
    with the answers for missing ids. `form` is the page holding the route's form (a POST's
    body is that form as the allowed actor sees it, updated with `fields`)."""

    allowed: frozenset[str]
    path: str
    ok: frozenset[int] = OK
    api: bool = False
    form: str | None = None
    # Where that form posts, when not to its own page.
    form_action: str | None = None
    fields: Callable[[Ctx, str, Mapping[str, str]], dict[str, str]] | None = None
    json: Callable[[Ctx], dict[str, Any]] | None = None
    # Public routes answer every actor alike; `missing_status` is their answer to a bad token.
    missing_status: int = 404
    # Ends the caller's session (logout): called with a fresh login of each actor.
    fresh_session: bool = False

    @property
    def targeted(self) -> bool:
        return "{" in self.path


def _static(**values: str) -> Callable[[Ctx, str, Mapping[str, str]], dict[str, str]]:
    return lambda ctx, actor, ids: dict(values)


def _log_body(ctx: Ctx) -> dict[str, Any]:
    return {
        "client_id": uuid.uuid4().hex,
        # (Two days back: yesterday is the web form's, `patient.yesterday`.)
        "log_date": (clinic_today() - dt.timedelta(days=2)).isoformat(),
        "back_pain": 2,
        "leg_pain": 1,
        "leg_side": "left",
        "red_flags": [],
        "exercises": [],
        "note": "",
    }


def _todays_log_body(ctx: Ctx) -> dict[str, Any]:
    return {**_log_body(ctx), "log_date": clinic_today().isoformat()}


def _event_body(ctx: Ctx) -> dict[str, Any]:
    return {
        "client_id": uuid.uuid4().hex,
        "event_date": (clinic_today() - dt.timedelta(days=1)).isoformat(),
        "event_type": "imaging",
        "description": "MRI booked",
    }


def _new_patient(ctx: Ctx, actor: str, ids: Mapping[str, str]) -> dict[str, str]:
    team = ctx.clinic.team_north_id if actor != CLINICIAN_OFF else ctx.clinic.team_south_id
    return {
        "display_name": f"New Patient {actor}",
        "email": f"new-{actor}@patient.test",
        "care_team_id": str(team),
    }


def _member(ctx: Ctx, actor: str, ids: Mapping[str, str]) -> dict[str, str]:
    return {f"team{ids['team']}-clinician_id": str(ctx.clinic.other_clinician.clinician_id)}


def _program(ctx: Ctx, actor: str, ids: Mapping[str, str]) -> dict[str, str]:
    return {"title": "Matrix program", "prescriptions-0-exercise_id": str(ctx.exercise_id)}


def _odi(ctx: Ctx, actor: str, ids: Mapping[str, str]) -> dict[str, str]:
    return {f"sections-{i}": "2" for i in range(10)}


def _pin(ctx: Ctx, actor: str, ids: Mapping[str, str]) -> dict[str, str]:
    day = clinic_today() - dt.timedelta(days=1)
    return {"leg_pain-level": "2", "leg_pain-effective_from": day.isoformat()}


FALL = _static(
    event_type="fall",
    fall_location="stairs",
    fall_steps="3",
    fall_landed_on="buttocks",
    side="left",
    description="Slipped on the stairs",
)
P = "/clinic/patients/{patient}"
ODI = P + "/outcomes/new?instrument=odi"
PIN = P + "/baselines/leg_pain"

ROUTES: dict[tuple[str, str], Route] = {
    # --- public: no patient data, the same answer for everyone ---------------------------------
    ("auth.index", "GET"): Route(EVERYONE, "/", REDIRECT),
    ("auth.login", "GET"): Route(EVERYONE, "/login"),
    # An unknown e-mail: the form comes back (200), nobody is logged in or out.
    ("auth.login", "POST"): Route(
        EVERYONE,
        "/login",
        form="/login",
        fields=_static(email="nobody@clinic.test", password="wrong password"),
    ),
    # No login under way: back to the login page.
    ("auth.second_factor", "GET"): Route(EVERYONE, "/login/two-factor", REDIRECT),
    ("auth.second_factor", "POST"): Route(EVERYONE, "/login/two-factor", REDIRECT),
    ("auth.logout", "POST"): Route(frozenset(LOGGED_IN), "/logout", REDIRECT, fresh_session=True),
    # Anyone logged in, for her own account. A wrong current password changes nothing (a
    # real change would end the other sessions the matrix logs in with the old password;
    # tests/integration/test_change_password.py changes it).
    ("auth.change_password", "GET"): Route(frozenset(LOGGED_IN), "/account/password"),
    ("auth.change_password", "POST"): Route(
        frozenset(LOGGED_IN),
        "/account/password",
        frozenset({422}),
        form="/account/password",
        fields=_static(
            current_password="not the password",
            password="a long phrase nobody guesses 42",
            confirm="a long phrase nobody guesses 42",
        ),
    ),
    # The same for a new login address: a wrong current password changes nothing
    # (tests/integration/test_change_email.py changes it).
    ("auth.change_email", "POST"): Route(
        frozenset(LOGGED_IN),
        "/account/email",
        frozenset({422}),
        form="/account/password",
        fields=_static(
            **{
                "address-current_password": "not the password",
                "address-email": "matrix-new@clinic.test",
            }
        ),
    ),
    # The link sent to the new address is the proof (a bad one: 400 for everyone).
    ("auth.confirm_email", "GET"): Route(
        EVERYONE, "/account/email/{invite}", frozenset({400}), missing_status=400
    ),
    ("auth.confirm_email", "POST"): Route(
        EVERYONE, "/account/email/{invite}", frozenset({400}), missing_status=400
    ),
    # The one-time link is the proof; mismatched passwords change nothing.
    ("auth.set_password", "GET"): Route(EVERYONE, "/welcome/{invite}", missing_status=400),
    ("auth.set_password", "POST"): Route(
        EVERYONE,
        "/welcome/{invite}",
        form="/welcome/{invite}",
        missing_status=400,
        fields=_static(password="one long pass phrase", confirm="another long phrase"),
    ),
    ("auth.reset_password", "GET"): Route(EVERYONE, "/reset/{reset}", missing_status=400),
    ("auth.reset_password", "POST"): Route(
        EVERYONE,
        "/reset/{reset}",
        form="/reset/{reset}",
        missing_status=400,
        fields=_static(password="one long pass phrase", confirm="another long phrase"),
    ),
    # The same answer for any address; an unknown one sends nothing.
    ("auth.forgot_password", "GET"): Route(EVERYONE, "/login/forgot"),
    ("auth.forgot_password", "POST"): Route(
        EVERYONE, "/login/forgot", form="/login/forgot", fields=_static(email="nobody@clinic.test")
    ),
    ("settings.unsubscribe", "GET"): Route(EVERYONE, "/unsubscribe/{unsubscribe}"),
    ("settings.unsubscribe_post", "POST"): Route(
        EVERYONE, "/unsubscribe/{unsubscribe}", form="/unsubscribe/{unsubscribe}"
    ),
    ("static", "GET"): Route(EVERYONE, "/static/css/app.css"),
    ("health.liveness", "GET"): Route(EVERYONE, "/healthz"),
    ("health.readiness", "GET"): Route(EVERYONE, "/readyz"),
    # 503 here: no scan has run in this test's clinic.
    ("health.pipeline", "GET"): Route(EVERYONE, "/healthz/pipeline", ok=frozenset({200, 503})),
    ("chart_assets.plotly_js", "GET"): Route(EVERYONE, f"/assets/plotly-{assets.VERSION}.min.js"),
    ("chart_assets.plotly_css", "GET"): Route(EVERYONE, f"/assets/plotly-{assets.VERSION}.css"),
    ("api.openapi", "GET"): Route(EVERYONE, "/api/v1/openapi.json", api=True),
    ("api.docs", "GET"): Route(EVERYONE, "/api/v1/docs", api=True),
    # --- the patient's own pages (no id: always the caller's own record) -----------------------
    ("patient.today", "GET"): Route(PATIENTS, "/me/"),
    ("patient.today", "POST"): Route(
        PATIENTS, "/me/", form="/me/", fields=_static(back_pain="2", leg_pain="0")
    ),
    # Yesterday's log (no log yet in the matrix's clinic): the page, and the log stored once.
    ("patient.yesterday", "GET"): Route(PATIENTS, "/me/yesterday"),
    ("patient.yesterday", "POST"): Route(
        PATIENTS, "/me/yesterday", form="/me/yesterday", fields=_static(back_pain="2", leg_pain="0")
    ),
    ("patient.new_event", "GET"): Route(PATIENTS, "/me/events/new"),
    ("patient.new_event", "POST"): Route(
        PATIENTS, "/me/events/new", form="/me/events/new", fields=FALL
    ),
    ("patient.history", "GET"): Route(PATIENTS, "/me/history"),
    ("patient.progress", "GET"): Route(PATIENTS, "/me/progress"),
    ("patient.access", "GET"): Route(PATIENTS, "/me/access"),
    ("patient.program", "GET"): Route(PATIENTS, "/me/program"),
    ("patient.activities", "GET"): Route(PATIENTS, "/me/activities"),
    ("patient.activities", "POST"): Route(
        PATIENTS,
        "/me/activities",
        REDIRECT,
        form="/me/activities",
        fields=_static(rating_0="5", rating_1="5", rating_2="6"),
    ),
    ("patient.account", "GET"): Route(PATIENTS, "/me/account"),
    ("patient.export_own", "GET"): Route(PATIENTS, "/me/export.csv"),
    ("patient.export_own_fhir", "GET"): Route(PATIENTS, "/me/export.fhir.json"),
    # An event she recorded herself: hers to take back (B gets the 404 of a missing one).
    ("patient.event_entered_in_error", "GET"): Route(
        frozenset({PATIENT_A}), "/me/events/{own_event}/entered-in-error"
    ),
    ("patient.event_entered_in_error", "POST"): Route(
        frozenset({PATIENT_A}),
        "/me/events/{own_event}/entered-in-error",
        REDIRECT,
        form="/me/events/{own_event}/entered-in-error",
        fields=_static(reason="wrong day"),
    ),
    ("patient.reminders", "POST"): Route(
        PATIENTS, "/me/account/reminders", REDIRECT, fields=_static(reminder_opt_in="y")
    ),
    ("patient.create_token", "POST"): Route(
        PATIENTS, "/me/account/tokens", fields=_static(device_name="Matrix phone")
    ),
    # A's own device key: B's attempt is answered like a key that does not exist.
    ("patient.revoke_token", "POST"): Route(
        frozenset({PATIENT_A}), "/me/account/tokens/{token}/revoke", REDIRECT
    ),
    # --- any clinician, each seeing their own care teams ---------------------------------------
    ("clinic.caseload", "GET"): Route(CLINICIANS, "/clinic/"),
    ("clinic.outcomes", "GET"): Route(CLINICIANS, "/clinic/outcomes"),
    ("clinic.new_patient", "GET"): Route(CLINICIANS, "/clinic/patients/new"),
    ("clinic.new_patient", "POST"): Route(
        CLINICIANS, "/clinic/patients/new", form="/clinic/patients/new", fields=_new_patient
    ),
    # The name search is posted and kept in the session (never in a URL).
    ("clinic.search_caseload", "POST"): Route(
        CLINICIANS, "/clinic/search", SEE_OTHER, form="/clinic/", fields=_static(q="alice")
    ),
    ("alerts.inbox", "GET"): Route(CLINICIANS, "/clinic/alerts/"),
    ("settings.notification_settings", "GET"): Route(CLINICIANS, "/settings/notifications"),
    ("settings.api_key_settings", "GET"): Route(CLINICIANS, "/settings/api-keys"),
    ("settings.create_api_key", "POST"): Route(
        CLINICIANS, "/settings/api-keys", fields=_static(device_name="Matrix records system")
    ),
    # The on-team clinician's own key: another clinician's attempt is answered like a key
    # that does not exist.
    ("settings.revoke_api_key", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        "/settings/api-keys/{clinician_token}/revoke",
        SEE_OTHER,
        form="/settings/api-keys",
    ),
    ("settings.notification_settings", "POST"): Route(
        CLINICIANS,
        "/settings/notifications",
        SEE_OTHER,
        form="/settings/notifications",
        fields=_static(notify_mode="immediate"),
    ),
    # --- patient A's record: the clinician on A's care team only -------------------------------
    ("clinic.patient", "GET"): Route(frozenset({CLINICIAN_ON}), P),
    ("clinic.export_patient", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/export.csv"),
    ("clinic.export_patient_fhir", "GET"): Route(
        frozenset({CLINICIAN_ON}), P + "/export.fhir.json"
    ),
    ("clinic.patient_details", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/details"),
    ("clinic.patient_details", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        P + "/details",
        REDIRECT,
        form=P + "/details",
        fields=_static(condition_summary="Left L5 radiculopathy"),
    ),
    ("clinic.hand_over", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/care-team"),
    ("clinic.hand_over", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        P + "/care-team",
        REDIRECT,
        form=P + "/care-team",
        fields=lambda ctx, actor, ids: {"care_team_id": ctx.existing["second_team"]},
    ),
    # Patient A has set a password: no new link, back to the details (303).
    ("clinic.new_patient_invite", "POST"): Route(
        frozenset({CLINICIAN_ON}), P + "/invite", SEE_OTHER, form=P + "/details"
    ),
    ("clinic.new_event", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/events/new"),
    ("clinic.new_event", "POST"): Route(
        frozenset({CLINICIAN_ON}), P + "/events/new", REDIRECT, form=P + "/events/new", fields=FALL
    ),
    ("clinic.entered_in_error", "GET"): Route(
        frozenset({CLINICIAN_ON}), P + "/events/{event}/entered-in-error"
    ),
    ("clinic.entered_in_error", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        P + "/events/{event}/entered-in-error",
        REDIRECT,
        form=P + "/events/{event}/entered-in-error",
        fields=_static(reason="wrong patient"),
    ),
    # A's third fall, marked entered in error from the start: its page's take-back form.
    ("clinic.undo_entered_in_error", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        P + "/events/{marked_event}/entered-in-error/undo",
        REDIRECT,
        form=P + "/events/{marked_event}/entered-in-error",
        form_action=P + "/events/{marked_event}/entered-in-error/undo",
    ),
    ("clinic.new_findings", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/findings/new"),
    ("clinic.new_findings", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        P + "/findings/new",
        REDIRECT,
        form=P + "/findings/new",
        fields=_static(imaging_modality="mri", imaging_region="lumbar", imaging_text="clear"),
    ),
    ("clinic.new_outcome", "GET"): Route(frozenset({CLINICIAN_ON}), ODI),
    ("clinic.new_outcome", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        ODI,
        REDIRECT,
        form=ODI,
        fields=_odi,
    ),
    ("clinic.new_program", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/program/new"),
    ("clinic.new_program", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        P + "/program/new",
        REDIRECT,
        form=P + "/program/new",
        fields=_program,
    ),
    ("clinic.end_program", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/program/end"),
    ("clinic.end_program", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        P + "/program/end",
        REDIRECT,
        form=P + "/program/end",
        fields=_static(end_date=(clinic_today() + dt.timedelta(days=30)).isoformat()),
    ),
    ("clinic.pin_baseline", "GET"): Route(frozenset({CLINICIAN_ON}), PIN),
    ("clinic.pin_baseline", "POST"): Route(
        frozenset({CLINICIAN_ON}), PIN, REDIRECT, form=PIN, fields=_pin
    ),
    ("clinic.unpin_baseline", "POST"): Route(
        frozenset({CLINICIAN_ON}), PIN + "/automatic", REDIRECT
    ),
    ("summary.summary", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/summary"),
    ("summary.chart", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/summary/chart.png"),
    ("summary.pdf", "GET"): Route(frozenset({CLINICIAN_ON}), P + "/summary.pdf"),
    ("alerts.acknowledge", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        "/clinic/alerts/{alert}/acknowledge",
        SEE_OTHER,
        fields=_static(note="seen"),
    ),
    ("alerts.resolve", "POST"): Route(
        frozenset({CLINICIAN_ON}),
        "/clinic/alerts/{alert}/resolve",
        SEE_OTHER,
        fields=_static(note="done", judgement="acted_on"),
    ),
    # --- admin: people, teams, audit, e-mail delivery ------------------------------------------
    ("admin.index", "GET"): Route(frozenset({ADMIN}), "/admin/"),
    ("admin.audit_log", "GET"): Route(frozenset({ADMIN}), "/admin/audit"),
    ("admin.alert_response", "GET"): Route(frozenset({ADMIN}), "/admin/alerts"),
    ("admin.clinic_settings", "GET"): Route(frozenset({ADMIN}), "/admin/settings"),
    ("admin.change_clinic_settings", "POST"): Route(
        frozenset({ADMIN}),
        "/admin/settings",
        SEE_OTHER,
        form="/admin/settings",
        fields=_static(missed_logs_days="4"),
    ),
    ("admin.create_user", "POST"): Route(
        frozenset({ADMIN}),
        "/admin/users",
        fields=_static(display_name="Nora New", email="nora@clinic.test", role="clinician"),
    ),
    ("admin.invite_user", "POST"): Route(frozenset({ADMIN}), "/admin/users/{user}/invite"),
    ("admin.disable_user", "POST"): Route(
        frozenset({ADMIN}), "/admin/users/{user}/disable", REDIRECT
    ),
    ("admin.enable_user", "POST"): Route(
        frozenset({ADMIN}), "/admin/users/{user}/enable", REDIRECT
    ),
    ("admin.create_team", "POST"): Route(
        frozenset({ADMIN}), "/admin/teams", REDIRECT, fields=_static(name="Team Matrix")
    ),
    ("admin.add_member", "POST"): Route(
        frozenset({ADMIN}), "/admin/teams/{team}/members", REDIRECT, fields=_member
    ),
    ("admin.remove_member", "POST"): Route(
        frozenset({ADMIN}), "/admin/teams/{team}/members/{clinician}/remove", REDIRECT
    ),
    ("outbox.notifications_page", "GET"): Route(frozenset({ADMIN}), "/admin/notifications"),
    ("outbox.retry", "POST"): Route(
        frozenset({ADMIN}), "/admin/notifications/{notification}/retry", SEE_OTHER
    ),
    ("outbox.outbox_list", "GET"): Route(frozenset({ADMIN}), "/admin/outbox"),
    ("outbox.outbox_message", "GET"): Route(frozenset({ADMIN}), "/admin/outbox/{outbox}"),
    ("outbox.outbox_html", "GET"): Route(frozenset({ADMIN}), "/admin/outbox/{outbox}/html"),
    # --- the JSON API ----------------------------------------------------------------------------
    ("api.me", "GET"): Route(frozenset(LOGGED_IN), "/api/v1/me", api=True),
    # A daily log is the patient's own report: only the patient writes it.
    ("api.submit_log", "POST"): Route(
        frozenset({PATIENT_A}),
        "/api/v1/patients/{patient}/logs",
        CREATED,
        api=True,
        json=_log_body,
    ),
    ("api.put_todays_log", "PUT"): Route(
        frozenset({PATIENT_A}),
        "/api/v1/patients/{patient}/logs/{today}",
        frozenset({200, 201}),
        api=True,
        json=_todays_log_body,
    ),
    ("api.get_series", "GET"): Route(
        frozenset({PATIENT_A, CLINICIAN_ON}), "/api/v1/patients/{patient}/series", api=True
    ),
    ("api.create_event", "POST"): Route(
        frozenset({PATIENT_A, CLINICIAN_ON}),
        "/api/v1/patients/{patient}/events",
        CREATED,
        api=True,
        json=_event_body,
    ),
    ("api.list_events", "GET"): Route(
        frozenset({PATIENT_A, CLINICIAN_ON}), "/api/v1/patients/{patient}/events", api=True
    ),
    ("api.list_programs", "GET"): Route(
        frozenset({PATIENT_A, CLINICIAN_ON}), "/api/v1/patients/{patient}/programs", api=True
    ),
    ("api.export_patient", "GET"): Route(
        frozenset({PATIENT_A, CLINICIAN_ON}), "/api/v1/patients/{patient}/export.csv", api=True
    ),
    # Each caller's own patients (none for an admin): tests/integration/test_export.py.
    ("api.export_all", "GET"): Route(frozenset(LOGGED_IN), "/api/v1/export.csv", api=True),
    ("api.export_patient_fhir", "GET"): Route(
        frozenset({PATIENT_A, CLINICIAN_ON}),
        "/api/v1/patients/{patient}/export.fhir.json",
        api=True,
    ),
    ("api.export_all_fhir", "GET"): Route(
        frozenset(LOGGED_IN), "/api/v1/export.fhir.ndjson", api=True
    ),
}


def app_routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


# --- the clinic the matrix acts on ------------------------------------------------------------


@dataclass
class Ctx:
    clinic: Clinic
    existing: dict[str, str]
    missing: dict[str, str]
    exercise_id: int
    templates: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def url(self, route: Route, target: str) -> str:
        return route.path.format(**(self.existing if target == "existing" else self.missing))

    def ids(self, target: str) -> dict[str, str]:
        return self.existing if target == "existing" else self.missing


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    # Each actor logs in more than once here: no login throttling in the way.
    app = create_app(
        app_settings(database_url, tmp_path, secret_key="m" * 40, login_rate_limit="1000/minute")
    )
    yield app
    dispose_engines(app)


def build_ctx(app: Flask) -> Ctx:
    """The clinic, plus one record of each kind the routes name: an alert of A's (and its
    e-mail in the outbox), a failed notification, a spare device key of A's, an invited
    user, a spare care team with a member, a set-password link and an unsubscribe link."""
    with app.app_context():
        clinic = build_clinic()
        a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
        assert a is not None and b is not None
        today = clinic_today()
        # Up to three days back: the day before yesterday is the API's, yesterday the web's.
        add_logs(a, today - dt.timedelta(days=13), [1] * 9 + [6, 7])
        add_fall(a, clinic.patient_a.user_id, today - dt.timedelta(days=3))
        add_fall(a, clinic.patient_a.user_id, today - dt.timedelta(days=2))
        add_fall(a, clinic.clinician.user_id, today - dt.timedelta(days=5))
        # Their activities (a PSFS the clinician recorded with each), which they rate.
        for patient_id in (a, b):
            db.session.add(
                OutcomeMeasure(
                    patient_id=patient_id,
                    instrument=Instrument.PSFS,
                    measured_on=today - dt.timedelta(days=40),
                    score=4.0,
                    answers={
                        "activities": [
                            {"activity": name, "rating": 4} for name in ("Walk", "Sit", "Lift")
                        ]
                    },
                    recorded_by_user_id=clinic.clinician.user_id,
                )
            )
        db.session.commit()
        event_a, own_event_a, marked_event_a = db.session.scalars(
            sa.select(Event.id).where(Event.patient_id == a).order_by(Event.id)
        ).all()
        db.session.execute(
            sa.update(Event)
            .where(Event.id == marked_event_a)
            .values(
                entered_in_error_at=utcnow(),
                entered_in_error_by_user_id=clinic.clinician.user_id,
                entered_in_error_reason="wrong day",
            )
        )
        alert_a = make_alert(a)
        (mail,) = rows(alert_id=alert_a)
        assert notifications.deliver(db.session, mail.id).status == "sent"
        (outbox_name,) = (p.name for p in notifications.outbox_dir().glob("*.eml"))
        (failed,) = rows(alert_id=make_alert(b, detected_on=today - dt.timedelta(days=1)))
        db.session.execute(
            sa.update(Notification)
            .where(Notification.id == failed.id)
            .values(status=NotificationStatus.FAILED, last_error="550 test")
        )
        user_a = db.session.get(User, clinic.patient_a.user_id)
        assert user_a is not None
        spare_token, _ = accounts.issue_api_token(db.session, user_a, "spare")
        clinician_user = db.session.get(User, clinic.clinician.user_id)
        assert clinician_user is not None
        clinician_token, _ = accounts.issue_api_token(db.session, clinician_user, "spare")
        invited = accounts.create_staff_user(
            db.session, "ivy@clinic.test", "Ivy Invited", Role.CLINICIAN, None
        )
        eve = accounts.create_staff_user(
            db.session, "eve@clinic.test", "Eve Spare", Role.CLINICIAN, None
        )
        spare_team = CareTeam(name="Team Spare")
        db.session.add(spare_team)
        db.session.flush()
        assert eve.clinician is not None
        db.session.add(CareTeamMember(care_team_id=spare_team.id, clinician_id=eve.clinician.id))
        # A second team of the on-team clinician's, where she hands patient A over (and so
        # keeps seeing her for the calls after that one).
        second_team = CareTeam(name="Team North-East")
        db.session.add(second_team)
        db.session.flush()
        db.session.add(
            CareTeamMember(care_team_id=second_team.id, clinician_id=clinic.clinician.clinician_id)
        )
        exercise_id = db.session.scalar(sa.select(Exercise.id).order_by(Exercise.id).limit(1))
        assert exercise_id is not None
        db.session.commit()
        existing = {
            "patient": str(a),
            "alert": str(alert_a),
            "event": str(event_a),
            "own_event": str(own_event_a),
            "marked_event": str(marked_event_a),
            "token": str(spare_token.id),
            "clinician_token": str(clinician_token.id),
            "user": str(invited.id),
            "team": str(spare_team.id),
            "second_team": str(second_team.id),
            "clinician": str(eve.clinician.id),
            "notification": str(failed.id),
            "outbox": outbox_name,
            "invite": accounts.make_invite_token(invited, app.config["SECRET_KEY"]),
            "reset": accounts.make_link_token(
                invited, app.config["SECRET_KEY"], accounts.PASSWORD_RESET
            ),
            "unsubscribe": make_token(app.config["SECRET_KEY"], clinic.patient_a.user_id),
            "today": today.isoformat(),
        }
    missing = {key: str(MISSING) for key in existing}
    missing["today"] = today.isoformat()  # a date names no record: the patient is missing
    missing.update(
        outbox="20260101T000000000000Z-missing.eml",
        invite="not-a-valid-link",
        reset="not-a-valid-link",
        unsubscribe="not-a-valid-link",
    )
    return Ctx(clinic, existing, missing, exercise_id)


# --- calling a route ----------------------------------------------------------------------------


def allowed_actor(route: Route) -> str:
    """The actor whose view of the form is the template of every caller's body."""
    for actor in (PATIENT_A, CLINICIAN_ON, ADMIN, ANONYMOUS):
        if actor in route.allowed:
            return actor
    raise AssertionError(route)


def form_body(
    ctx: Ctx, route: Route, key: tuple[str, str], actor: str, client: FlaskClient, target: str
) -> dict[str, str]:
    """The POST body: the form as the allowed actor sees it (fetched once per route and
    target), updated with the route's fields, carrying the caller's own CSRF token."""
    ids = ctx.ids(target)
    body: dict[str, str] = {}
    if route.form is not None:
        own = actor in route.allowed and target == "existing"
        cache_key = (key[0], target)
        if own:
            page = client.get(route.form.format(**ids))
            assert page.status_code == 200, (key, actor, page.status_code)
            body = form_data(text(page), (route.form_action or route.form).format(**ids))
            if actor == allowed_actor(route):
                ctx.templates[cache_key] = body
        else:
            body = dict(ctx.templates.get((key[0], "existing"), {}))
    if route.fields is not None:
        body.update(route.fields(ctx, actor, ids))
    body["csrf_token"] = token_of(client)
    return body


def call(
    ctx: Ctx,
    app: Flask,
    clients: dict[str, FlaskClient],
    key: tuple[str, str],
    actor: str,
    target: str = "existing",
) -> TestResponse:
    """Call the route as `actor`; the answer is read in full and closed (static files are
    streamed)."""
    response = _call(ctx, app, clients, key, actor, target)
    response.get_data()
    response.close()
    return response


def _call(
    ctx: Ctx,
    app: Flask,
    clients: dict[str, FlaskClient],
    key: tuple[str, str],
    actor: str,
    target: str = "existing",
) -> TestResponse:
    route = ROUTES[key]
    method = key[1]
    url = ctx.url(route, target)
    if route.api:
        client = clients[ANONYMOUS]
        headers = bearer(ctx.clinic, actor)
        if method == "GET":
            return client.get(url, headers=headers)
        assert route.json is not None
        return client.open(url, method=method, json=route.json(ctx), headers=headers)
    client = clients[actor]
    if route.fresh_session:
        client = app.test_client()
        email = dict(zip(ACTORS, people(ctx.clinic), strict=True))[actor]
        if email is not None:
            login(client, email)
    if method == "GET":
        return client.get(url)
    return client.post(url, data=form_body(ctx, route, key, actor, client, target))


def people(clinic: Clinic) -> list[str | None]:
    return [
        None,
        clinic.patient_a.email,
        clinic.patient_b.email,
        clinic.clinician.email,
        clinic.other_clinician.email,
        clinic.admin.email,
    ]


def is_login_redirect(response: TestResponse) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/login")


def same_answer(first: TestResponse, second: TestResponse) -> bool:
    return (
        first.status_code == second.status_code
        and first.headers.get("Content-Type") == second.headers.get("Content-Type")
        and first.get_data() == second.get_data()
    )


def _counts() -> dict[str, int]:
    from rehab.db.models import Base

    result = {}
    for table in Base.metadata.sorted_tables:
        if table.name == "audit_events":
            continue
        result[table.name] = db.session.scalar(sa.select(sa.func.count()).select_from(table)) or 0
    db.session.rollback()
    return result


# --- the tests ------------------------------------------------------------------------------


def test_every_route_is_classified(app: Flask) -> None:
    """A route added to the app without a line in ROUTES fails here (and a stale line too)."""
    routes = app_routes(app)
    unclassified = sorted(routes - ROUTES.keys())
    assert not unclassified, f"classify these routes in ROUTES: {unclassified}"
    stale = sorted(ROUTES.keys() - routes)
    assert not stale, f"no such routes any more: {stale}"
    for key, route in ROUTES.items():
        assert route.allowed, key
        assert (route.json is not None) == (route.api and key[1] in ("POST", "PUT")), key


@pytest.mark.slow
def test_every_route_as_every_actor(app: Flask) -> None:
    ctx = build_ctx(app)
    clients = logged_in_clients(app, ctx.clinic)
    assert app_routes(app) == ROUTES.keys()
    checked = {"denied": 0, "anonymous": 0, "allowed": 0, "missing": 0}

    # Phase 1: every refusal, before anything is changed by an allowed call. Forbidden
    # callers send complete bodies; nothing of theirs may be stored.
    with app.app_context():
        before = _counts()
    # The allowed actors' forms (the bodies everybody else sends) are read first.
    for key, route in ROUTES.items():
        if key[1] == "POST" and route.form is not None and route.allowed != EVERYONE:
            actor = allowed_actor(route)
            form_body(ctx, route, key, actor, clients[actor], "existing")
    for key, route in ROUTES.items():
        public = route.allowed == EVERYONE
        for actor in ACTORS:
            if public or actor in route.allowed:
                continue
            response = call(ctx, app, clients, key, actor)
            where = (key, actor)
            if actor == ANONYMOUS:
                checked["anonymous"] += 1
                if route.api:
                    assert response.status_code == 401, where
                    assert response.json == {
                        "error": "unauthorized",
                        "message": "a valid bearer token is needed",
                    }, where
                else:
                    assert is_login_redirect(response), (where, response.status_code)
                continue
            checked["denied"] += 1
            assert response.status_code == 404, (where, response.status_code)
            if route.targeted:
                missing = call(ctx, app, clients, key, actor, "missing")
                assert same_answer(response, missing), (where, response.data, missing.data)
                checked["missing"] += 1
    with app.app_context():
        assert _counts() == before, "a refused call changed something"

    # Phase 2: the allowed calls (reads first), and allowed callers asking for what is not
    # there. Public routes answer everyone alike.
    ordered = sorted(ROUTES.items(), key=lambda item: item[0][1] != "GET")
    for key, route in ordered:
        for actor in sorted(route.allowed, key=ACTORS.index):
            where = (key, actor)
            if route.targeted:
                missing = call(ctx, app, clients, key, actor, "missing")
                expected = route.missing_status if route.allowed == EVERYONE else 404
                assert missing.status_code == expected, (where, missing.status_code)
                checked["missing"] += 1
            response = call(ctx, app, clients, key, actor)
            assert response.status_code in route.ok, (
                where,
                response.status_code,
                visible_text(response)[:400] if not route.api else response.data[:400],
            )
            if route.ok & {302, 303} and route.allowed != EVERYONE and not route.fresh_session:
                assert not is_login_redirect(response), where
                clients[actor].get(response.headers["Location"])  # show (and drop) its flash
            checked["allowed"] += 1

    pairs = len(ROUTES) * len(ACTORS)
    assert checked["allowed"] + checked["denied"] + checked["anonymous"] == pairs
    print(
        f"\naccess matrix: {len(ROUTES)} routes x {len(ACTORS)} actors = {pairs} calls; {checked}"
    )


# --- ids and roles from the client ------------------------------------------------------------

B_ONLY = "bravo-only-region"


def _b_history(app: Flask, clinic: Clinic) -> None:
    """B's logs and an event with a value nobody else has (to spot it in any answer)."""
    with app.app_context():
        b = clinic.patient_b.patient_id
        assert b is not None
        add_logs(b, clinic_today() - dt.timedelta(days=5), [4, 5, 6])
        db.session.execute(
            sa.update(SessionLog).where(SessionLog.patient_id == b).values(pain_location=B_ONLY)
        )
        db.session.add(
            Event(
                patient_id=b,
                event_date=clinic_today() - dt.timedelta(days=2),
                event_type="imaging",
                body_region=B_ONLY,
                description=B_ONLY,
                recorded_by_user_id=clinic.patient_b.user_id,
            )
        )
        db.session.commit()


def _logs_of(app: Flask, patient_id: int | None) -> int:
    with app.app_context():
        return (
            db.session.scalar(
                sa.select(sa.func.count(SessionLog.id)).where(SessionLog.patient_id == patient_id)
            )
            or 0
        )


def test_ids_and_roles_sent_by_the_client_never_widen_access(app: Flask) -> None:
    with app.app_context():
        clinic = build_clinic()
    _b_history(app, clinic)
    a, b, c = (p.patient_id for p in (clinic.patient_a, clinic.patient_b, clinic.patient_c))
    api = app.test_client()
    token_a = bearer(clinic, PATIENT_A)

    # The API: the path names the patient; a patient_id or role in the query or the body is
    # refused as an unknown field, never obeyed.
    tampered = api.get(f"/api/v1/patients/{a}/series?patient_id={b}", headers=token_a)
    assert tampered.status_code == 422 and B_ONLY not in tampered.get_data(as_text=True)
    me = api.get("/api/v1/me?role=admin&patient_id=2", headers=token_a)
    assert me.status_code == 200
    assert me.json == {"user_id": clinic.patient_a.user_id, "role": "patient", "patient_id": a}
    body = {**_log_body_for(clinic), "patient_id": b, "role": "clinician"}
    response = api.post(f"/api/v1/patients/{a}/logs", json=body, headers=token_a)
    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {"patient_id", "role"}
    response = api.post(
        f"/api/v1/patients/{b}/logs",
        json={**_log_body_for(clinic), "patient_id": a},
        headers=token_a,
    )
    assert response.status_code == 404
    assert _logs_of(app, b) == 3
    event = {**_event_body(None), "patient_id": a}  # type: ignore[arg-type]
    assert api.post(f"/api/v1/patients/{b}/events", json=event, headers=token_a).status_code == 404
    # An API refusal does not depend on the body being valid: a forbidden caller gets 404
    # for a malformed or invalid body too, exactly like for a valid one.
    for bad in ({"back_pain": "lots"}, {}):
        for url in (f"/api/v1/patients/{b}/logs", f"/api/v1/patients/{MISSING}/logs"):
            assert api.post(url, json=bad, headers=token_a).status_code == 404, (url, bad)
    assert (
        api.post(
            f"/api/v1/patients/{b}/logs",
            data="{not json",
            headers={**token_a, "Content-Type": "application/json"},
        ).status_code
        == 404
    )
    bad_query = api.get(f"/api/v1/patients/{b}/series?start=never", headers=token_a)
    assert bad_query.status_code == 404
    # Ids beyond what an id column holds: 404 like any unknown id (not a database error).
    for huge in (2**31, 2**63, 10**30):
        for url in (f"/api/v1/patients/{huge}/series", f"/api/v1/patients/{huge}/events"):
            assert api.get(url, headers=token_a).status_code == 404, url

    # Pages: the patient's own pages take no id; one sent along is ignored.
    clients = logged_in_clients(app, clinic)
    patient = clients[PATIENT_A]
    for url in (f"/me/history?patient_id={b}", f"/me/progress?patient_id={b}", "/me/?patient_id=2"):
        page = patient.get(url)
        assert page.status_code == 200 and B_ONLY not in text(page), url
    data = form_data(text(patient.get("/me/")), "/me/")
    data.update(back_pain="3", leg_pain="0", patient_id=str(b), role="clinician")
    assert patient.post(f"/me/?patient_id={b}", data=data).status_code == 200
    assert (_logs_of(app, a), _logs_of(app, b)) == (1, 3)

    # A clinician cannot reach another team's patient through a query parameter, nor add a
    # patient to a team they are not on.
    cara, dan = clients[CLINICIAN_ON], clients[CLINICIAN_OFF]
    assert cara.get(f"/clinic/patients/{c}?patient_id={a}").status_code == 404
    assert cara.get(f"/clinic/patients/{2**31}").status_code == 404
    assert dan.get(f"/clinic/patients/{c}/summary?patient_id={a}").status_code == 200
    form = form_data(text(dan.get("/clinic/patients/new")), "/clinic/patients/new")
    form.update(
        display_name="Smuggled In",
        email="smuggled@patient.test",
        care_team_id=str(clinic.team_north_id),
    )
    assert dan.post("/clinic/patients/new", data=form).status_code == 422
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count(User.id)).where(User.email == "smuggled@patient.test")
            )
            == 0
        )


def _log_body_for(clinic: Clinic) -> dict[str, Any]:
    return _log_body(None)  # type: ignore[arg-type]


# --- lists, filters, sorts, counts ------------------------------------------------------------


CAPTION = re.compile(r"(\d+) patients?\b")
# (query string, name search posted first)
EXTRAS = (
    ("", ""),
    ("&per_page=all", ""),
    ("&page=2", ""),
    ("&page=99", ""),
    ("", "cleo"),
    ("", "a"),
)


@pytest.mark.slow
def test_caseload_search_filters_sorts_counts_and_pages_show_only_the_care_team(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rehab.services import caseload as caseload_service

    with app.app_context():
        clinic = build_clinic()
        c = clinic.patient_c.patient_id
        assert c is not None
        # Cleo (team South) has everything that would put her on top of any view: an urgent
        # alert, rising pain, a long silence.
        add_logs(c, clinic_today() - dt.timedelta(days=20), [1] * 10 + [9] * 5)
        make_alert(c, queue=False)
    clients = logged_in_clients(app, clinic)
    names = {
        CLINICIAN_ON: ({"Alice Patient", "Bob Patient"}, {"Cleo Patient"}),
        CLINICIAN_OFF: ({"Cleo Patient"}, {"Alice Patient", "Bob Patient"}),
    }
    views = 0
    for page_size in (50, 1):
        monkeypatch.setattr(caseload_service, "PAGE_SIZE", page_size)
        for actor, (own, others) in names.items():
            client = clients[actor]
            # Every sort, every filter, with search and paging on top.
            combos = [(sort, "all") for sort in caseload_service.SORTS] + [
                ("attention", show) for show in caseload_service.FILTERS if show != "all"
            ]
            for sort, show in combos:
                for extra, term in EXTRAS:
                    search_caseload(client, term)
                    page = client.get(f"/clinic/?sort={sort}&show={show}{extra}")
                    assert page.status_code == 200
                    body = visible_text(page)
                    for name in others:
                        assert name not in body, (actor, sort, show, extra)
                    count = CAPTION.search(body)
                    if count is not None:
                        assert int(count.group(1)) <= len(own), (actor, sort, show, extra)
                    if show == "all" and extra in ("", "&per_page=all") and not term:
                        assert count is not None and int(count.group(1)) == len(own)
                    views += 1
    sorts, filters = len(caseload_service.SORTS), len(caseload_service.FILTERS)
    assert views == 2 * 2 * (sorts + filters - 1) * len(EXTRAS)
    # Only the team's patients were read (one audit row per patient shown).
    with app.app_context():
        read = set(
            db.session.execute(
                sa.select(User.email, AuditEvent.patient_id)
                .join(AuditEvent, AuditEvent.user_id == User.id)
                .where(AuditEvent.action == "caseload.read")
            ).all()
        )
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert read == {
        (clinic.clinician.email, a),
        (clinic.clinician.email, b),
        (clinic.other_clinician.email, c),
    }


def test_inbox_lists_and_series_hold_only_the_callers_patients(app: Flask) -> None:
    with app.app_context():
        clinic = build_clinic()
        a, b, c = (p.patient_id for p in (clinic.patient_a, clinic.patient_b, clinic.patient_c))
        assert a is not None and c is not None
        alert_a, alert_c = make_alert(a, queue=False), make_alert(c, queue=False)
    _b_history(app, clinic)
    clients = logged_in_clients(app, clinic)
    for show in ("", "?show=all"):
        cara = text(clients[CLINICIAN_ON].get(f"/clinic/alerts/{show}"))
        dan = text(clients[CLINICIAN_OFF].get(f"/clinic/alerts/{show}"))
        assert f"/clinic/alerts/{alert_a}/" in cara and f"/clinic/alerts/{alert_c}/" not in cara
        assert f"/clinic/alerts/{alert_c}/" in dan and f"/clinic/alerts/{alert_a}/" not in dan
        assert "Alice Patient" not in dan and "Cleo Patient" not in cara

    # B's series and events never appear in what A's token reads, whatever the range.
    api = app.test_client()
    token_a = bearer(clinic, PATIENT_A)
    for url in (
        f"/api/v1/patients/{a}/series",
        f"/api/v1/patients/{a}/series?start=2000-01-01&end=2999-12-31",
        f"/api/v1/patients/{a}/events",
        f"/api/v1/patients/{a}/programs",
        "/api/v1/me",
    ):
        response = api.get(url, headers=token_a)
        assert response.status_code == 200, url
        assert B_ONLY not in response.get_data(as_text=True), url
        assert f'"patient_id":{b}' not in response.get_data(as_text=True).replace(" ", ""), url
    for suffix in ("series", "events", "programs"):
        response = api.get(f"/api/v1/patients/{b}/{suffix}", headers=token_a)
        assert response.status_code == 404 and B_ONLY not in response.get_data(as_text=True)


# --- care-team changes ------------------------------------------------------------------------


def test_removing_a_clinician_from_the_care_team_ends_access_at_the_next_request(
    app: Flask,
) -> None:
    with app.app_context():
        clinic = build_clinic()
        a = clinic.patient_a.patient_id
        assert a is not None
        alert_a = make_alert(a, queue=False)
    clients = logged_in_clients(app, clinic)
    cara, admin = clients[CLINICIAN_ON], clients[ADMIN]
    api = app.test_client()
    token = bearer(clinic, CLINICIAN_ON)
    assert cara.get(f"/clinic/patients/{a}").status_code == 200
    assert api.get(f"/api/v1/patients/{a}/series", headers=token).status_code == 200

    removed = admin.post(
        f"/admin/teams/{clinic.team_north_id}/members/{clinic.clinician.clinician_id}/remove",
        data={"csrf_token": token_of(admin)},
    )
    assert removed.status_code == 302

    # The same open session and the same device key: refused at once, like a stranger.
    assert cara.get(f"/clinic/patients/{a}").status_code == 404
    assert cara.get(f"/clinic/patients/{a}/summary").status_code == 404
    assert api.get(f"/api/v1/patients/{a}/series", headers=token).status_code == 404
    ack = cara.post(
        f"/clinic/alerts/{alert_a}/acknowledge", data={"csrf_token": token_of(cara), "note": ""}
    )
    assert ack.status_code == 404
    assert "Alice Patient" not in visible_text(cara.get("/clinic/?per_page=all"))
    assert f"/clinic/alerts/{alert_a}/" not in text(cara.get("/clinic/alerts/?show=all"))
    with app.app_context():
        change = db.session.execute(
            sa.select(AuditEvent.user_id, AuditEvent.target).where(
                AuditEvent.action == "care_team.member_remove"
            )
        ).one()
    assert change == (clinic.admin.user_id, f"clinician:{clinic.clinician.clinician_id}")
