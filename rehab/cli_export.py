"""`rehab export`: patients' data out of the clinic's database (design §1, the integrator).

rehab export csv [--patient ID ...] [-o FILE]    # the `rehab detect` CSV; stdout by default
rehab export fhir [--patient ID ...] [-o FILE]   # FHIR R4, a patient's Bundle per line
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
from flask.cli import with_appcontext


@click.group("export")
def export_group() -> None:
    """Export patients' data."""


_PATIENTS = click.option(
    "--patient",
    "patient_ids",
    type=int,
    multiple=True,
    help="A patient's id (repeat for several) [every patient].",
)
_OUTPUT = click.option(
    "-o",
    "--output",
    default="-",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
    help="File to write, readable by its owner only [- : standard output].",
)


@export_group.command("csv")
@_PATIENTS
@_OUTPUT
@with_appcontext
def export_csv(patient_ids: tuple[int, ...], output: str) -> None:
    """Patients' logs and events as the CSV `rehab detect` reads (one audit row each)."""
    from rehab.services import export

    _export(patient_ids, output, export.CSV)


@export_group.command("fhir")
@_PATIENTS
@_OUTPUT
@with_appcontext
def export_fhir(patient_ids: tuple[int, ...], output: str) -> None:
    """Patients' whole records as FHIR R4, a Bundle per line (NDJSON; one audit row each)."""
    from rehab.services import export

    _export(patient_ids, output, export.FHIR)


def _export(patient_ids: tuple[int, ...], output: str, file_format: str) -> None:
    from rehab import migrate
    from rehab.extensions import db
    from rehab.services import export
    from rehab.services.actors import SYSTEM
    from rehab.services.time import clinic_today

    session = db.session
    if not migrate.is_at_head(db.engine):
        click.echo("error: the database is not migrated: run `rehab db upgrade`", err=True)
        sys.exit(2)
    try:
        ids = export.authorize(session, SYSTEM, list(patient_ids) or None, file_format)
    except export.ExportRefused as refused:
        session.rollback()
        export.record_refusal(session, SYSTEM, refused, file_format)
        session.commit()  # the refused attempt stays on record, as on the web
        click.echo(f"error: --patient: no {refused}", err=True)
        sys.exit(2)
    try:
        with _destination(output) as stream:
            session.commit()  # the audit rows, once the file can be written: before any row
            for part in export.parts(session, SYSTEM, ids, file_format, clinic_today()):
                stream.write(part)
    except OSError as exc:
        session.rollback()
        click.echo(f"error: --output: cannot write {output}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    session.rollback()  # reads only
    click.echo(f"exported {len(ids)} patient(s) to {output}", err=True)


@contextlib.contextmanager
def _destination(output: str) -> Iterator[IO[str]]:
    """Standard output, or a file that appears whole or not at all: written aside (created
    readable by its owner only: it holds health data), renamed over `output` at the end."""
    if output == "-":
        yield sys.stdout
        return
    target = Path(output)
    fd, aside = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
        os.replace(aside, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)
        raise
