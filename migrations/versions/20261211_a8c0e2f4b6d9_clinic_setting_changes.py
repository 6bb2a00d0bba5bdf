"""clinic_setting_changes: the clinic's policy settings, changed by an administrator in the app

Missed-log days, the urgent follow-up limit, the ODI/PSFS interval, the digest hour and the
patients' reminders were environment variables only: a clinic had to ask whoever runs the
servers to change its own policy. The latest row of a setting is its value (NULL: back to
the configured default); the rows are its history.

Revision ID: a8c0e2f4b6d9
Revises: f7b9d1e3a5c8
Create Date: 2026-12-11 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a8c0e2f4b6d9"
down_revision: str | None = "f7b9d1e3a5c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clinic_setting_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("previous_value", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by_user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by_user_id"],
            ["users.id"],
            name=op.f("fk_clinic_setting_changes_changed_by_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_setting_changes")),
    )
    op.create_index(
        op.f("ix_clinic_setting_changes_name"), "clinic_setting_changes", ["name"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_clinic_setting_changes_name"), table_name="clinic_setting_changes")
    op.drop_table("clinic_setting_changes")
