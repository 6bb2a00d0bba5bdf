"""Patient pages `/me/...` (mobile-first): today's log, events, history, account.

Every page is the logged-in patient's own; anyone else gets 404. Views parse the form into a
command, call a service and render; the services check access and write the audit rows.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from rehab.charts import progress as progress_charts
from rehab.charts.serialize import figure_json
from rehab.db.models import Prescription, SessionLog
from rehab.domain.vocabulary import RED_FLAG_LABELS, Role
from rehab.extensions import db, login_manager
from rehab.services import access_report, account_settings, clinical, export, logs, records
from rehab.services.access import NotFound, require_patient
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput
from rehab.services.time import clinic_today
from rehab.web import FieldRefused, api_keys
from rehab.web.corrections import mark_from_form
from rehab.web.downloads import download
from rehab.web.forms import (
    EVENT_TYPE_LABELS,
    FALL_LOCATION_LABELS,
    DeviceTokenForm,
    EnteredInErrorForm,
    EventForm,
    FormInvalid,
    OwnActivitiesForm,
    RemindersForm,
    SessionLogForm,
    new_client_id,
    show_service_error,
)
from rehab.web.guards import deny

bp = Blueprint("patient", __name__, url_prefix="/me")

CONFLICT_MESSAGE = (
    "This form was already sent with other answers. Reload the page to see what is saved, "
    "then change it."
)
LATE_CONFLICT_MESSAGE = "Yesterday is already logged; it was not changed."
UNREADABLE_DAY_MESSAGE = "This page's day could not be read: reload the page."
STALE_PAGE_MESSAGE = (
    "This page was opened for {day}, and the day has changed since: nothing was saved. "
    "The form below is for {now}: check it and save again."
)


@bp.before_request
def _patients_only() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role is not Role.PATIENT or current_user.actor.patient_id is None:
        deny()
    return None


def _actor() -> tuple[Actor, int]:
    actor: Actor = current_user.actor
    assert actor.patient_id is not None
    return actor, actor.patient_id


@bp.context_processor
def _labels() -> dict[str, Any]:
    return {
        "red_flag_labels": {flag.value: label for flag, label in RED_FLAG_LABELS.items()},
        "event_labels": EVENT_TYPE_LABELS,
        "fall_labels": FALL_LOCATION_LABELS,
    }


# --- today's log ----------------------------------------------------------------------------


def _prefill(
    form: SessionLogForm, day: dt.date, prescriptions: list[Prescription], log: SessionLog | None
) -> None:
    form.client_id.data = new_client_id()
    # The day the page is about travels with the form: posted after midnight, it is still
    # that day's log (`_post_log`), not the next day's.
    form.set_day(day)
    entries = {e.prescription_id: e for e in log.entries} if log else {}
    for p in prescriptions:
        entry = entries.get(p.id)
        done = bool(entry and (entry.done or entry.sets_done))
        form.exercises.append_entry(
            {
                "prescription_id": p.id,
                "done": done,
                "sets_done": entry.sets_done if done and entry and entry.sets_done else p.sets,
                "reps_done": entry.reps_done if done and entry and entry.reps_done else p.reps,
            }
        )
    if log is not None:
        form.back_pain.data = log.back_pain
        form.leg_pain.data = log.leg_pain
        form.leg_side.data = log.leg_side.value if log.leg_side else None
        form.pain_location.data = log.pain_location
        form.red_flags.data = log.red_flags
        form.note.data = log.note


def _log_page(form: SessionLogForm, day: dt.date, status: int = 200) -> Any:
    """Today's log page, or yesterday's (`late`) for a patient who forgot it."""
    actor, patient_id = _actor()
    today = clinic_today()
    late = day != today
    prescriptions = logs.prescriptions_for_day(db.session, patient_id, day)
    return (
        render_template(
            "patient/today.html",
            form=form,
            prescriptions={p.id: p for p in prescriptions},
            # (Access was checked and audited by the log's read or write.)
            existing=not late and logs.has_log_on(db.session, patient_id, day),
            day=day,
            late=late,
            activities_due=not late
            and clinical.own_activities_due(db.session, actor, patient_id, day),
            yesterday_open=not late
            and logs.can_log_late(db.session, patient_id, day - dt.timedelta(days=1)),
        ),
        status,
    )


@bp.route("/", methods=["GET", "POST"])
def today() -> Any:
    actor, patient_id = _actor()
    day = clinic_today()
    if request.method == "POST":
        return _post_log(actor, patient_id, day)
    form = SessionLogForm()
    existing = logs.get_log(db.session, actor, patient_id, day)
    _prefill(form, day, logs.prescriptions_for_day(db.session, patient_id, day), existing)
    return _log_page(form, day)


@bp.route("/yesterday", methods=["GET", "POST"])
def yesterday() -> Any:
    """Yesterday's log, for a patient who forgot it: the same form, stored once (a day
    already logged is not changed from here; only today's log is edited). The detector
    takes a late day like any other; the log's `created_at` shows it came late."""
    actor, patient_id = _actor()
    day = clinic_today() - dt.timedelta(days=1)
    if request.method == "POST":
        return _post_log(actor, patient_id, day)
    require_patient(db.session, actor, patient_id, "session_log.read")
    if not logs.can_log_late(db.session, patient_id, day):
        flash("Yesterday is already logged, or came before your program.", "error")
        return redirect(url_for("patient.today"))
    form = SessionLogForm()
    _prefill(form, day, logs.prescriptions_for_day(db.session, patient_id, day), None)
    return _log_page(form, day)


def _post_log(actor: Actor, patient_id: int, page_day: dt.date) -> Any:
    """Store a posted log for the day its page was opened for (`logs.web_log_is_late`)."""
    form = SessionLogForm()
    day = page_day
    status = 422
    service_called = False
    if form.validate():
        day = form.log_date.data or page_day  # (a page opened before the form carried it)
        try:
            late = logs.web_log_is_late(day, clinic_today())
            data = form.to_command(day)
            service_called = True
            result = logs.record_session_log(
                db.session, actor, patient_id, data, source="web", allow_same_day_edit=not late
            )
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc)
        except logs.StaleDay:
            form.form_errors.append(
                STALE_PAGE_MESSAGE.format(day=day.isoformat(), now=page_day.isoformat())
            )
            status = 409
            # The form comes back as this page's day, to check and save.
            day = page_day
            form.set_day(page_day)
        except logs.Conflict:
            form.form_errors.append(LATE_CONFLICT_MESSAGE if late else CONFLICT_MESSAGE)
            status = 409
        except NotFound:
            abort(404)
        else:
            return render_template("patient/saved.html", result=result, late=late)
    elif form.log_date.errors:
        form.form_errors.append(UNREADABLE_DAY_MESSAGE)
    if not service_called:
        # The attempt is checked and audited (as failed) even when the form never got far.
        require_patient(db.session, actor, patient_id, "session_log.write")
    return _log_page(form, day, status)


# --- events -------------------------------------------------------------------------------


@bp.route("/events/new", methods=["GET", "POST"])
def new_event() -> Any:
    actor, patient_id = _actor()
    form = EventForm()
    if request.method == "GET":
        form.client_id.data = new_client_id()
        form.event_date.data = clinic_today()
        return render_template("patient/event_new.html", form=form, today=clinic_today())

    status = 422
    service_called = False
    if form.validate():
        try:
            data = form.to_command()
            service_called = True
            event, _created = clinical.record_event(db.session, actor, patient_id, data)
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc)
        except logs.Conflict:
            form.form_errors.append(CONFLICT_MESSAGE)
            status = 409
        except NotFound:
            abort(404)
        else:
            return render_template(
                "patient/event_saved.html",
                event=event,
                advice=logs.advice_after_event(db.session, event),
                labels=EVENT_TYPE_LABELS,
            )
    if not service_called:
        require_patient(db.session, actor, patient_id, "event.write")
    return render_template("patient/event_new.html", form=form, today=clinic_today()), status


# --- history --------------------------------------------------------------------------------


@bp.get("/history")
def history() -> Any:
    actor, patient_id = _actor()
    try:
        data = records.patient_history(db.session, actor, patient_id)
    except NotFound:
        abort(404)
    return render_template("patient/history.html", history=data, own_user_id=actor.user_id)


@bp.get("/program")
def program() -> Any:
    """Her program as she does it at home (`records.own_program`)."""
    actor, patient_id = _actor()
    try:
        data = records.own_program(db.session, actor, patient_id)
    except NotFound:
        abort(404)
    return render_template("patient/program.html", own=data)


@bp.get("/access")
def access() -> Any:
    """Who has opened her record, a month at a time (`services.access_report`)."""
    actor, patient_id = _actor()
    month = _month_argument()
    try:
        report = access_report.access_report(db.session, actor, patient_id, month)
    except NotFound:
        abort(404)
    return render_template("patient/access.html", report=report)


def _month_argument() -> dt.date | None:
    raw = request.args.get("month")
    if raw is None:
        return None
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}", raw):
        try:
            return dt.date.fromisoformat(f"{raw}-01")
        except ValueError:  # month 00 or 13
            pass
    raise FieldRefused(description="month: a month as YYYY-MM, e.g. 2025-09")


@bp.route("/events/<int:event_id>/entered-in-error", methods=["GET", "POST"])
def event_entered_in_error(event_id: int) -> Any:
    """An event she logged by mistake (`clinical.mark_entered_in_error`): it leaves her
    history, her clinic's charts and the detector's evidence, and stays in the record."""
    actor, patient_id = _actor()
    form = EnteredInErrorForm()
    posting = request.method == "POST"
    try:
        event = clinical.correctable_record(
            db.session, actor, patient_id, "events", event_id, None if posting else "event.read"
        )
    except NotFound:
        abort(404)
    if posting and mark_from_form(form, actor, event):
        flash("Marked as logged by mistake. Your clinic can see that it was.", "success")
        return redirect(url_for("patient.history"))
    page = render_template("patient/event_entered_in_error.html", form=form, event=event)
    return page, 422 if posting else 200


# --- progress -------------------------------------------------------------------------------


@bp.get("/progress")
def progress() -> Any:
    actor, patient_id = _actor()
    try:
        data = records.patient_progress(db.session, actor, patient_id)
    except NotFound:
        abort(404)
    figure = figure_json(progress_charts.progress_spec(data.chart), progress_charts.CONFIG)
    return render_template("patient/progress.html", progress=data, figure=figure)


# --- her activities (PSFS) ------------------------------------------------------------------


@bp.route("/activities", methods=["GET", "POST"])
def activities() -> Any:
    """She rates, 0–10, the activities her clinic chose with her (her latest PSFS)."""
    actor, patient_id = _actor()
    form = OwnActivitiesForm()
    if request.method == "GET":
        own = clinical.own_activities(db.session, actor, patient_id)
        if own.rated_today:
            for field, rating in zip(
                form.rating_fields(len(own.activities)), own.last_ratings, strict=True
            ):
                field.data = rating
        return _activities_page(form, own)
    # (Her own record; the write below checks and audits access for this request.)
    own = clinical.peek_own_activities(db.session, actor, patient_id)
    service_called = False
    if form.validate():
        try:
            data = form.to_command(len(own.activities))
            service_called = True
            measure = clinical.rate_own_activities(db.session, actor, patient_id, data)
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc)
        except NotFound:
            abort(404)
        else:
            flash(f"Saved. Your activities score {measure.score:g} out of 10 today.", "success")
            return redirect(url_for("patient.progress"))
    if not service_called:
        require_patient(db.session, actor, patient_id, "outcome.write")
    return _activities_page(form, own, 422)


def _activities_page(
    form: OwnActivitiesForm, own: clinical.OwnActivities, status: int = 200
) -> Any:
    fields = form.rating_fields(len(own.activities))
    for field, name in zip(fields, own.activities, strict=True):
        field.label.text = name
    page = render_template("patient/activities.html", form=form, own=own, fields=fields)
    return page, status


# --- account --------------------------------------------------------------------------------


def _account_page(
    token_form: DeviceTokenForm | None = None, new_token: str | None = None, status: int = 200
) -> Any:
    actor, _ = _actor()
    reminders_form = RemindersForm(
        formdata=None,
        reminder_opt_in=account_settings.reminder_opt_in(db.session, actor),
    )
    return api_keys.page(
        "patient/account.html",
        actor,
        token_form,
        new_token,
        status,
        reminders_form=reminders_form,
    )


@bp.get("/export.csv")
def export_own() -> Any:
    """Her logs and events as a file she can keep or take elsewhere (`services.export`)."""
    actor, patient_id = _actor()
    return download(actor, [patient_id], export.CSV)


@bp.get("/export.fhir.json")
def export_own_fhir() -> Any:
    """Her whole record as FHIR R4, for another clinic's or a health app's import."""
    actor, patient_id = _actor()
    return download(actor, [patient_id], export.FHIR)


@bp.get("/account")
def account() -> Any:
    return _account_page()


@bp.post("/account/reminders")
def reminders() -> Any:
    actor, _ = _actor()
    form = RemindersForm()
    if form.validate():
        account_settings.set_reminder_opt_in(db.session, actor, bool(form.reminder_opt_in.data))
        flash("Reminders are on." if form.reminder_opt_in.data else "Reminders are off.", "success")
    return redirect(url_for("patient.account"))


@bp.post("/account/tokens")
def create_token() -> Any:
    actor, _ = _actor()
    form, clear = api_keys.create_from_form(actor)
    if clear is not None:
        return _account_page(form, new_token=clear)
    return _account_page(form, status=422)


@bp.post("/account/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> Any:
    actor, _ = _actor()
    api_keys.revoke_from_form(actor, token_id)
    flash("The device key is revoked; the device can no longer send logs.", "success")
    return redirect(url_for("patient.account"))
