"""`rehab demo load` and `rehab demo run`: the fictional demo clinic around the seed case."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import with_appcontext

from rehab.demo import DEFAULT_SEED

if TYPE_CHECKING:
    from rehab.demo.loader import DemoSummary

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.group()
def demo() -> None:
    """The demo clinic: load it, run it."""


def _as_of(value: dt.datetime | None) -> dt.date:
    from rehab.services.time import clinic_today

    return value.date() if value is not None else clinic_today()


def _load(seed: int, as_of: dt.date) -> DemoSummary:
    # Imported here: the `rehab` CLI loads this module for every command.
    from rehab.demo.loader import DemoError, load_demo
    from rehab.extensions import db

    try:
        summary = load_demo(db.session, seed=seed, as_of=as_of)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    counts = (
        f"{summary.patients} patients, {summary.logs} daily logs ({summary.exercise_entries} "
        f"exercise entries), {summary.events} events, {summary.findings} findings, "
        f"{summary.outcome_measures} outcome measures, {summary.programs} programs, "
        f"{summary.alerts} alerts"
    )
    if summary.loaded:
        click.echo(
            f"Demo clinic loaded in {summary.seconds:.1f} s (seed {summary.seed}, "
            f"today = {as_of.isoformat()}): {counts}."
        )
    else:
        click.echo(f"The demo clinic is already in this database ({counts}); nothing changed.")
    return summary


def _print_logins() -> None:
    from rehab.demo.loader import DEMO_LOGINS
    from rehab.demo.seed_case import FALL, SEED_PATIENT_NAME

    click.echo("Demo logins (e-mail / password):")
    width = max(len(login.email) for login in DEMO_LOGINS)
    for login in DEMO_LOGINS:
        click.echo(
            f"  {login.role.value:<10} {login.email:<{width}}  {login.password:<20} "
            f"{login.display_name}"
        )
    click.echo(
        "Two-factor sign-in (required for clinicians and admins in production) is off in the"
        " demo; set REHAB_TOTP_REQUIRED=true to try it."
    )
    click.echo(
        f"The seed case: as the clinician, open {SEED_PATIENT_NAME} from the caseload (her"
        f" chart marks the fall of {FALL.isoformat()}). Her fall-linked alerts are in Alerts;"
        " once resolved (she recovered), under “Show resolved alerts too”."
    )


@demo.command("load")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Random seed.")
@click.option(
    "--as-of",
    "as_of",
    type=_DATE,
    default=None,
    help="The demo's today (YYYY-MM-DD; default: the clinic's today). The seed patient's "
    "dates are fixed by her case; everyone else's are placed relative to this day.",
)
@with_appcontext
def load_command(seed: int, as_of: dt.datetime | None) -> None:
    """Create the demo clinic in the configured (migrated) database; a second run changes
    nothing."""
    _load(seed, _as_of(as_of))
    _print_logins()


@demo.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option(
    "--as-of",
    "as_of",
    type=_DATE,
    default=None,
    help="The demo data's today, as for `rehab demo load` (used only when the demo is loaded; "
    "the web server and worker keep the real clock).",
)
@with_appcontext
def run_command(host: str, port: int, seed: int, as_of: dt.datetime | None) -> None:
    """Migrate, load the demo if needed, then run the web server, a Celery worker and Celery
    beat until Ctrl-C."""
    from rehab import migrate
    from rehab.cli import database_url
    from rehab.demo import runner
    from rehab.extensions import db

    instance_path = Path(current_app.instance_path)
    instance_path.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(database_url())
    _load(seed, _as_of(as_of))
    _queue_first_scan()
    db.session.close()
    for engine in db.engines.values():
        engine.dispose()  # the children open their own connections

    url = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"rehab demo: open {url}  (Ctrl-C stops the web server, worker and beat)")
    _print_logins()
    click.echo("")
    sys.stdout.flush()
    code = runner.run_processes(
        runner.process_commands(host, port, instance_path),
        runner.child_environment(instance_path, url),
    )
    if code:
        raise click.exceptions.Exit(code)
    click.echo("rehab demo: stopped.")


def _queue_first_scan() -> None:
    """Ask the worker to evaluate every patient at once instead of at beat's first tick."""
    try:
        current_app.extensions["celery"].send_task("rehab.scan_patients")
    except Exception as exc:  # the demo still runs; beat's schedule will scan later
        click.echo(f"rehab demo: could not queue the first scan ({type(exc).__name__})", err=True)
