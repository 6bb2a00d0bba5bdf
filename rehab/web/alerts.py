"""Clinician alert inbox `/clinic/alerts`: read (a page at a time), acknowledge (with a note),
resolve; and, for every template that shows an alert, its history (who and when)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.validators import Length

from rehab.domain.vocabulary import Role
from rehab.extensions import db
from rehab.services import alerts
from rehab.services.access import NotFound
from rehab.services.commands import InvalidInput
from rehab.web.forms import choice_list
from rehab.web.guards import deny

bp = Blueprint("alerts", __name__, url_prefix="/clinic/alerts")


class AlertActionForm(FlaskForm):
    note = TextAreaField("Note", validators=[Length(max=alerts.MAX_NOTE)])
    # Resolve only, optional; the service checks the value (a bad one is a flashed error).
    judgement = RadioField(
        "What came of it? (optional)",
        choices=choice_list(alerts.JUDGEMENT_LABELS.items()),
        validate_choice=False,
    )


@bp.before_request
@login_required
def _clinicians_only() -> None:
    if current_user.role is not Role.CLINICIAN:
        deny()


# A page number: digits only, and not absurdly many (a longer one is no page of ours).
PAGE_NUMBER = re.compile(r"[0-9]{1,9}")


@bp.get("/")
def inbox() -> Any:
    include_resolved = request.args.get("show") == "all"
    asked = request.args.get("page")
    number = int(asked) if asked is not None and PAGE_NUMBER.fullmatch(asked) else None
    page = alerts.inbox_page(
        db.session, current_user.actor, include_resolved=include_resolved, page=number or 1
    )
    _remember_names(page.names)
    notice = ""
    if asked is not None and (number is None or number != page.page):
        # Out of range or not a page number: the nearest page, said so (never an error page).
        notice = f"There is no such page; showing page {page.page} of {page.pages}."
    args: dict[str, Any] = {"show": "all"} if include_resolved else {}
    here_args: dict[str, Any] = {**args, "page": page.page} if page.page > 1 else args
    return render_template(
        "alerts/inbox.html",
        page=page,
        rows=page.rows,
        form=AlertActionForm(),
        include_resolved=include_resolved,
        args=args,
        notice=notice,
        here=url_for("alerts.inbox", **here_args),
    )


# --- an alert's history, for any template that shows an alert ------------------------------


def _remember_names(names: dict[int, str]) -> None:
    g.setdefault("alert_clinician_names", {}).update(names)


def _history(alert: Any) -> list[alerts.Step]:
    """Who acknowledged and resolved `alert`, and when. Names already known this request (the
    inbox fetched its page's) cost nothing; another is fetched once (there are few)."""
    known: dict[int, str] = g.setdefault("alert_clinician_names", {})
    wanted = {alert.acknowledged_by_user_id, alert.resolved_by_user_id} - {None} - set(known)
    if wanted:
        known.update(alerts.user_names(db.session, wanted))
    return alerts.history(alert, known)


@bp.app_context_processor
def _alert_helpers() -> dict[str, Any]:
    return {
        "alert_history": _history,
        "judgement_choices": [(j.value, label) for j, label in alerts.JUDGEMENT_LABELS.items()],
    }


def _act(alert_id: int, action: Any, done: str, *, judged: bool = False) -> Any:
    form = AlertActionForm()
    if not form.validate_on_submit():
        abort(400)
    extra = {"judgement": form.judgement.data} if judged else {}
    try:
        action(db.session, current_user.actor, alert_id, form.note.data or "", **extra)
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
    return _act(alert_id, alerts.resolve, "Alert resolved.", judged=True)
