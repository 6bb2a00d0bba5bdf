"""A clinician's e-mail settings `/settings/notifications` (routine alerts at once or in a
daily digest) and API keys `/settings/api-keys` (an integration reading her care teams'
patients through `/api/v1`), the failed-e-mail section of the alert inbox, and the patients'
unsubscribe link `/unsubscribe/<token>` (no login: the signed token is the proof).

Unsubscribing never happens on GET (mail scanners follow links): GET shows a confirm button;
POST unsubscribes, either from that page (with its CSRF token) or as an RFC 8058 one-click
POST from the mail client (body `List-Unsubscribe=One-Click`, no session, so no CSRF token).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import validate_csrf
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, ValidationError

from rehab.domain.vocabulary import NotifyMode, Role
from rehab.extensions import csrf, db, login_manager
from rehab.notifications import tokens
from rehab.services import clinic_policy, notifications
from rehab.services.actors import Actor
from rehab.web import api_keys
from rehab.web.forms import DeviceTokenForm
from rehab.web.guards import deny

bp = Blueprint("settings", __name__)

MODE_LABELS = {
    NotifyMode.IMMEDIATE: "At once: one e-mail per alert",
    NotifyMode.DIGEST: "Once a day: one summary of the day's routine alerts",
}
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


class NotifyModeForm(FlaskForm):
    notify_mode = RadioField(
        "Routine alerts",
        choices=[SelectChoice(mode.value, label) for mode, label in MODE_LABELS.items()],
        validators=[InputRequired()],
    )


@bp.app_context_processor
def _failed_notifications() -> dict[str, Any]:
    """`failed_notifications()` in templates: the logged-in clinician's alert e-mails that
    could not be delivered (the alert inbox shows them)."""

    def failed_notifications() -> list[notifications.FailedAlertMail]:
        if not current_user.is_authenticated or current_user.role is not Role.CLINICIAN:
            return []
        return notifications.failed_for_clinician(db.session, current_user.actor)

    return {"failed_notifications": failed_notifications}


def _clinician() -> Actor:
    """The logged-in clinician; anyone else is sent to log in, or gets the audited 404."""
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())  # the redirect to the login page
    if current_user.role is not Role.CLINICIAN:
        deny()
    actor: Actor = current_user.actor
    return actor


@bp.route("/settings/notifications", methods=["GET", "POST"])
def notification_settings() -> Any:
    actor = _clinician()
    digest_hour = clinic_policy.current(db.session).digest_hour
    form = NotifyModeForm()
    if request.method == "POST":
        if form.validate():
            mode = NotifyMode(form.notify_mode.data)
            notifications.set_notify_mode(db.session, actor, mode)
            flash(
                "Routine alerts will be e-mailed at once."
                if mode is NotifyMode.IMMEDIATE
                else f"Routine alerts will come in one summary a day at {digest_hour}:00.",
                "success",
            )
            return redirect(url_for("settings.notification_settings"), 303)
        status = 422
    else:
        form.notify_mode.data = notifications.notify_mode(db.session, actor).value
        status = 200
    return (
        render_template(
            "settings/notifications.html",
            form=form,
            digest_hour=digest_hour,
            timezone=current_app.config["REHAB_SETTINGS"].clinic_timezone,
        ),
        status,
    )


@bp.get("/settings/api-keys")
def api_key_settings() -> Any:
    return _api_keys_page(_clinician())


@bp.post("/settings/api-keys")
def create_api_key() -> Any:
    actor = _clinician()
    form, clear = api_keys.create_from_form(actor)
    return _api_keys_page(actor, form, clear, 200 if clear else 422)


@bp.post("/settings/api-keys/<int:token_id>/revoke")
def revoke_api_key(token_id: int) -> Any:
    actor = _clinician()
    api_keys.revoke_from_form(actor, token_id)
    flash("The key is revoked: it no longer opens the API.", "success")
    return redirect(url_for("settings.api_key_settings"), 303)


def _api_keys_page(
    actor: Actor, form: DeviceTokenForm | None = None, new_key: str | None = None, status: int = 200
) -> Any:
    return api_keys.page("settings/api_keys.html", actor, form, new_key, status)


def _read(token: str) -> tokens.Unsubscribe:
    found = tokens.read_token(current_app.config["SECRET_KEY"], token)
    if found is None:
        abort(404)
    return found


@bp.get("/unsubscribe/<token>")
def unsubscribe(token: str) -> Any:
    _read(token)
    return render_template("unsubscribe/confirm.html", token=token)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_post(token: str) -> Any:
    found = _read(token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if not one_click:
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            abort(400)
    if not notifications.unsubscribe(db.session, found):
        abort(404)
    if one_click:
        return "", 204
    return render_template("unsubscribe/done.html")
