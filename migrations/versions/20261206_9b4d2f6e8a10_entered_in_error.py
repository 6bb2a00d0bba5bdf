"""entered in error: a clinician's correction of an event, finding or ODI/PSFS score

A wrongly recorded fall (a wrong date, the wrong patient) was attributed to regressions and
shown on every chart, with no way to take it back. The row now says who marked it entered in
error, when and why; it stays for the record's history and the FHIR export's retraction, and
every page, detection and CSV leaves it out.

Revision ID: 9b4d2f6e8a10
Revises: 6a8c0e2f4b7d
Create Date: 2026-12-06 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b4d2f6e8a10"
down_revision: str | None = "6a8c0e2f4b7d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("events", "findings", "outcome_measures")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("entered_in_error_at", sa.DateTime(timezone=True), nullable=True)
            )
            batch_op.add_column(
                sa.Column("entered_in_error_by_user_id", sa.Integer(), nullable=True)
            )
            batch_op.add_column(
                sa.Column("entered_in_error_reason", sa.String(length=300), nullable=True)
            )
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_entered_in_error_by_user_id_users"),
                "users",
                ["entered_in_error_by_user_id"],
                ["id"],
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_entered_in_error_by_user_id_users"), type_="foreignkey"
            )
            batch_op.drop_column("entered_in_error_reason")
            batch_op.drop_column("entered_in_error_by_user_id")
            batch_op.drop_column("entered_in_error_at")
