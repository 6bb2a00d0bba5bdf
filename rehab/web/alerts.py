"""Clinician alert inbox `/clinic/alerts`: read, acknowledge (with a note), resolve."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from rehab.domain.vocabulary import Role
from rehab.extensions import db
from rehab.services import alerts
from rehab.services.access import NotFound
from rehab.services.commands import InvalidInput
from rehab.web.guards import deny

bp = Blueprint("alerts", __name__, url_prefix="/clinic/alerts")


class AlertActionForm(FlaskForm):
    note = TextAreaField("Note", validators=[Length(max=alerts.MAX_NOTE)])


@bp.before_request
@login_required
def _clinicians_only() -> None:
    if current_user.role is not Role.CLINICIAN:
        deny()


@bp.get("/")
def inbox() -> Any:
    include_resolved = request.args.get("show") == "all"
    rows = alerts.inbox(db.session, current_user.actor, include_resolved=include_resolved)
    return render_template(
        "alerts/inbox.html", rows=rows, form=AlertActionForm(), include_resolved=include_resolved
    )


def _act(alert_id: int, action: Any, done: str) -> Any:
    form = AlertActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        action(db.session, current_user.actor, alert_id, form.note.data or "")
    except NotFound:
        abort(404)
    except InvalidInput as exc:
        flash(exc.message, "error")
        return redirect(_back()), 303
    flash(done, "info")
    return redirect(_back()), 303


def _back() -> str:
    # Only our own pages: a next= pointing elsewhere is ignored.
    target = request.form.get("next", "")
    if target.startswith("/clinic/") and "//" not in target:
        return target
    return url_for("alerts.inbox")


@bp.post("/<int:alert_id>/acknowledge")
def acknowledge(alert_id: int) -> Any:
    return _act(alert_id, alerts.acknowledge, "Alert acknowledged.")


@bp.post("/<int:alert_id>/resolve")
def resolve(alert_id: int) -> Any:
    return _act(alert_id, alerts.resolve, "Alert resolved.")
