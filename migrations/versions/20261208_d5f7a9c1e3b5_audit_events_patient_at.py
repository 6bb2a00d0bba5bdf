"""audit_events: index (patient_id, at) for one patient's trail in a time range

A patient's access report (`/me/access`) reads one month of her audit rows, and the admin's
audit search by patient pages them newest first. The index on patient_id alone made both read
every row of her years (a caseload view writes one per patient on it). The composite index
serves the old lookups too, so it replaces that one.

On PostgreSQL the index is built CONCURRENTLY, outside the migration's transaction: every
request writes audit rows, and a plain CREATE INDEX would hold them all while it builds. Each
step can be run again: a build that failed or was cancelled leaves an invalid index of that
name, so it is dropped first; a run that stopped after the build and before Alembic recorded
the revision finds the old index already gone.

Revision ID: d5f7a9c1e3b5
Revises: c4e6a8b0d2f3
Create Date: 2026-12-08 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d5f7a9c1e3b5"
down_revision: str | None = "c4e6a8b0d2f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "audit_events"
NEW = "ix_audit_events_patient_id_at"
OLD = "ix_audit_events_patient_id"


def _concurrently() -> dict[str, bool]:
    return {"postgresql_concurrently": True}


def _replace(new: str, new_columns: list[str], old: str) -> None:
    with op.get_context().autocommit_block():
        op.drop_index(new, table_name=TABLE, if_exists=True, **_concurrently())
        op.create_index(new, TABLE, new_columns, unique=False, **_concurrently())
        op.drop_index(old, table_name=TABLE, if_exists=True, **_concurrently())


def upgrade() -> None:
    _replace(NEW, ["patient_id", "at"], OLD)


def downgrade() -> None:
    _replace(OLD, ["patient_id"], NEW)
