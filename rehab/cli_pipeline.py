"""`rehab pipeline check`: are alerts flowing? For cron or a systemd timer, so that the
administrators hear of a stopped worker even when nobody opens a page:

    */5 * * * *  rehab pipeline check --quiet

It prints the pipeline status (counts and times only), e-mails the administrators as the web
app would (`rehab.services.pipeline_watch`: once when alerts become late, daily while they
stay late, once when they have been on time again for `REHAB_PIPELINE_SETTLE_MINUTES`; sent by
this command itself, not by the worker) and exits 1 while alerts may be late (the clinicians'
banner) or some care team's alerts reach no one, else 0 (also while the incident settles). An
e-mail that failed, or late mail other than alerts, is printed but is the admin page's to
show: it does not make cron repeat itself every few minutes for a day.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import with_appcontext

if TYPE_CHECKING:
    from rehab.services.pipeline_watch import Watch


@click.group("pipeline")
def pipeline_group() -> None:
    """The alert pipeline's health."""


@pipeline_group.command("check")
@click.option("--notify/--no-notify", default=True, help="E-mail the administrators [notify].")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--quiet", is_flag=True, help="Print nothing when all is well.")
@with_appcontext
def pipeline_check(notify: bool, as_json: bool, quiet: bool) -> None:
    """Check the scan, evaluation and e-mail delivery; exit 1 while alerts may be late."""
    import sqlalchemy as sa

    from rehab.extensions import db
    from rehab.services import health, pipeline_watch

    late_after = dt.timedelta(minutes=current_app.config["REHAB_SETTINGS"].pipeline_late_minutes)
    try:
        status = health.pipeline_status(db.session, late_after)
        db.session.rollback()
        watched = pipeline_watch.watch(db.session, status) if notify else None
    except sa.exc.SQLAlchemyError as exc:
        # The error's text may name hosts and users: its class is enough to act on.
        click.echo(f"rehab: the database did not answer ({type(exc).__name__})", err=True)
        sys.exit(1)
    attention = status.alerts_at_risk
    if quiet and not attention and not (watched and (watched.queued or watched.sent)):
        return
    if as_json:
        report = status.as_json()
        if watched is not None:
            report["administrators"] = _notices_line(watched)
        click.echo(json.dumps(report, indent=2))
    else:
        for name, part in status.as_json().items():
            if isinstance(part, dict):
                details = ", ".join(f"{k} {v}" for k, v in part.items() if k != "status")
                click.echo(f"{name}: {part['status']}" + (f" ({details})" if details else ""))
        if watched is not None:
            click.echo(f"administrators: {_notices_line(watched)}")
    if attention:
        sys.exit(1)


def _notices_line(watched: Watch) -> str:
    if watched.opened_at is None:
        state = "no incident open"
    elif watched.on_time_since is not None:
        settle = current_app.config["REHAB_SETTINGS"].pipeline_settle_minutes
        closes = watched.on_time_since + dt.timedelta(minutes=settle)
        state = (
            f"told alerts are late, settling: on time since"
            f" {watched.on_time_since.isoformat(timespec='seconds')}, told they are on time"
            f" again at the first check from {closes.isoformat(timespec='seconds')} if they stay so"
        )
    else:
        state = "told alerts are late"
    return f"{state}; {len(watched.queued)} notice(s) queued, {watched.sent} sent by this check"
