"""alerts.reopened_at: when the detector opened an alert again

An alert the detector resolved itself (superseded by a later one, no longer shown by the
record, ...) is opened again when the record, corrected since, shows its episode ongoing
again: a mark of entered in error taken back. The alert's history says when. NULL for every
alert before: the reopening lands with this column (an alert the reopening's first commit
opened again, before any release, has its `alert.reopen` audit row only). Going down drops
the column, and the alerts' histories no longer say they were reopened (the audit rows stay).

SQLite adds and drops the column in place: rebuilding the table, as a batch migration does,
would drop a table the notifications refer to. Both steps can run again.

Revision ID: d1f3a5c7e9b2
Revises: c0e2a4b6d8f1
Create Date: 2026-12-14 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d1f3a5c7e9b2"
down_revision: str | None = "c0e2a4b6d8f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "alerts"
COLUMN = "reopened_at"


def _has_column() -> bool:
    return COLUMN in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}


def upgrade() -> None:
    if not _has_column():
        op.add_column(TABLE, sa.Column(COLUMN, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    if _has_column():
        op.drop_column(TABLE, COLUMN)
