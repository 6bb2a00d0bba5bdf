"""`rehab export`: patients' data out of the clinic's database (design §1, the integrator).

rehab export csv [--patient ID ...] [-o FILE]    # the `rehab detect` CSV; stdout by default
"""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext


@click.group("export")
def export_group() -> None:
    """Export patients' data."""


@export_group.command("csv")
@click.option(
    "--patient",
    "patient_ids",
    type=int,
    multiple=True,
    help="A patient's id (repeat for several) [every patient].",
)
@click.option(
    "-o",
    "--output",
    default="-",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="File to write [- : standard output].",
)
@with_appcontext
def export_csv(patient_ids: tuple[int, ...], output: str) -> None:
    """Patients' logs and events as the CSV `rehab detect` reads (one audit row each)."""
    from rehab import migrate
    from rehab.extensions import db
    from rehab.services import export
    from rehab.services.access import NotFound
    from rehab.services.actors import SYSTEM

    session = db.session
    if not migrate.is_at_head(session.get_bind()):  # type: ignore[arg-type]
        click.echo(
            "error: the database is not migrated to this version: run `rehab db upgrade`", err=True
        )
        sys.exit(2)
    try:
        ids = export.authorize(session, SYSTEM, list(patient_ids) or None)
    except NotFound as exc:
        session.rollback()
        click.echo(f"error: --patient: no {exc}", err=True)
        sys.exit(2)
    session.commit()  # the audit rows first: nothing leaves unrecorded
    # A file appears whole or not at all (written aside, renamed at the end).
    with click.open_file(output, "w", encoding="utf-8", atomic=output != "-") as stream:
        for part in export.csv_parts(session, ids):
            stream.write(part)
    session.rollback()  # reads only
    click.echo(f"exported {len(ids)} patient(s) to {output}", err=True)
