"""email_changes: a person changes her own login address, confirmed from the new address

Until now a login address could not change once its password was set (a clinician may correct
a patient's only while her invitation is pending). A change asked for from the account page
is stored here; it takes effect when the link sent to the new address is followed, and the
old address is then told. The rows are the history of an account's login addresses.

Revision ID: c4e6a8b0d2f3
Revises: 9b4d2f6e8a10
Create Date: 2026-12-07 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4e6a8b0d2f3"
down_revision: str | None = "9b4d2f6e8a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("old_email", sa.String(length=254), nullable=False),
        sa.Column("new_email", sa.String(length=254), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_email_changes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_changes")),
    )
    with op.batch_alter_table("email_changes") as batch:
        batch.create_index(batch.f("ix_email_changes_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("email_changes") as batch:
        batch.drop_index(batch.f("ix_email_changes_user_id"))
    op.drop_table("email_changes")
