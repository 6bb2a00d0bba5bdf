"""alerts.followed_up_at, and an index of the urgent alerts still open

An urgent alert nobody has acknowledged within `urgent_follow_up_minutes` is e-mailed again
to its care team and told to the administrators, once (`notifications.queue_follow_ups`);
`followed_up_at` records when, so it happens once and the alert's history shows it. The
follow-up's run every few minutes and the admin page read the urgent alerts still open: a
partial index keeps that to the few there are.

The column is nullable with no default: adding it rewrites nothing. On PostgreSQL the index
is built CONCURRENTLY, outside the migration's transaction (the worker writes alerts while
it builds); that commits the column first. So the migration can be run again after stopping
half way: a column already there is kept, and an index left by an earlier build (invalid, if
it was cancelled) is dropped first.

Revision ID: e6a8c0d2f4b7
Revises: d5f7a9c1e3b5
Create Date: 2026-12-09 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e6a8c0d2f4b7"
down_revision: str | None = "d5f7a9c1e3b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "alerts"
INDEX = "ix_alerts_urgent_open"
WHERE = sa.text("status = 'open' AND severity = 'urgent'")


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}
    if "followed_up_at" not in columns:
        op.add_column(
            TABLE, sa.Column("followed_up_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name=TABLE, if_exists=True, postgresql_concurrently=True)
        op.create_index(
            INDEX,
            TABLE,
            ["created_at"],
            unique=False,
            postgresql_concurrently=True,
            postgresql_where=WHERE,
            sqlite_where=WHERE,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name=TABLE, if_exists=True, postgresql_concurrently=True)
    # A plain DROP COLUMN (SQLite 3.35+): rebuilding the table, as batch mode does, would drop
    # a table the notifications refer to.
    op.drop_column(TABLE, "followed_up_at")
