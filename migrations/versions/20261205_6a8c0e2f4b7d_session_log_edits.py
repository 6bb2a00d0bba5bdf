"""session_log_edits: the client id and body of each in-place edit of a day's log

A day's log is editable that day (the web form; the API's PUT). The log row keeps the client id
and body hash of the submission that created it; an edit's own client id was kept nowhere, so
a retried edit was applied again, over a newer one. Each edit is now recorded here, unique per
patient and client id, and a retry of it is answered as a replay.

Revision ID: 6a8c0e2f4b7d
Revises: 3d5e7f9a1b2c
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a8c0e2f4b7d"
down_revision: str | None = "3d5e7f9a1b2c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "session_log_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("session_log_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_session_log_edits_patient_id_patients"),
        ),
        sa.ForeignKeyConstraint(
            ["session_log_id"],
            ["session_logs.id"],
            name=op.f("fk_session_log_edits_session_log_id_session_logs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_log_edits")),
        sa.UniqueConstraint(
            "patient_id", "client_id", name=op.f("uq_session_log_edits_patient_id_client_id")
        ),
    )
    with op.batch_alter_table("session_log_edits") as batch:
        batch.create_index(
            batch.f("ix_session_log_edits_session_log_id"), ["session_log_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("session_log_edits") as batch:
        batch.drop_index(batch.f("ix_session_log_edits_session_log_id"))
    op.drop_table("session_log_edits")
