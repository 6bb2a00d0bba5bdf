"""Admin pages for e-mail: `/admin/notifications` (counts, failed notifications with a retry
button, the latest rows) and `/admin/outbox` (the file transport's messages, when no SMTP
server is configured: the demo's "sent" e-mails).

The notifications page shows recipients' accounts and ids, no clinical content. The outbox
viewer shows whole messages, which do carry alert details: it exists for the demo and for
setting up a clinic before SMTP is configured, and every message read is audited.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from rehab.domain.vocabulary import Role
from rehab.extensions import db, login_manager
from rehab.services import notifications
from rehab.services.access import NotFound
from rehab.web.forms import ActionForm
from rehab.web.guards import deny

bp = Blueprint("outbox", __name__, url_prefix="/admin")

# The stored HTML e-mail is shown as its own page, sandboxed: no scripts, no requests out.
HTML_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@bp.before_request
def _admins_only() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role is not Role.ADMIN:
        deny()
    return None


@bp.get("/notifications")
def notifications_page() -> Any:
    counts, failed, recent = notifications.admin_overview(db.session, current_user.actor)
    settings = current_app.config["REHAB_SETTINGS"]
    return render_template(
        "outbox/notifications.html",
        counts=counts,
        failed=failed,
        recent=recent,
        smtp=bool(settings.smtp_url),
        action_form=ActionForm(formdata=None),
    )


@bp.post("/notifications/<int:notification_id>/retry")
def retry(notification_id: int) -> Any:
    if not ActionForm().validate():
        abort(400)
    try:
        notifications.retry_failed(db.session, current_user.actor, notification_id)
    except NotFound:
        abort(404)
    flash(f"Notification {notification_id} will be sent again.", "success")
    return redirect(url_for("outbox.notifications_page"), 303)


@bp.get("/outbox")
def outbox_list() -> Any:
    entries = notifications.list_outbox_messages(db.session, current_user.actor)
    smtp = bool(current_app.config["REHAB_SETTINGS"].smtp_url)
    return render_template("outbox/list.html", entries=entries, smtp=smtp)


def _message(name: str) -> Any:
    message = notifications.read_outbox_message(db.session, current_user.actor, name)
    if message is None:
        abort(404)
    return message


@bp.get("/outbox/<name>")
def outbox_message(name: str) -> Any:
    return render_template("outbox/message.html", message=_message(name))


@bp.get("/outbox/<name>/html")
def outbox_html(name: str) -> Any:
    html = _message(name).html_with_images()
    if html is None:
        abort(404)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_CSP
    return response
