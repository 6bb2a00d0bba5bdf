"""entry_corrections: every mark of entered in error, and every taking back of one

An event's, finding's or score's own columns hold only the mark in force; taking the mark
back cleared them, so the record lost who had marked it and why, and the periodic scan (which
found corrected records by `entered_in_error_at`) could not see that the entry was back. These
rows keep each mark and each taking back. The marks in force are copied in (a mark
without its marker, which the app never makes, is left out: the entry's own columns still
hold it); marks taken back before this migration are gone. Going down drops the history,
takings back included: only the marks in force remain, on the entries.

Revision ID: b9d1f3a5c7e0
Revises: a8c0e2f4b6d9
Create Date: 2026-12-12 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b9d1f3a5c7e0"
down_revision: str | None = "a8c0e2f4b6d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables whose marks in force are copied, with the entry kind their rows are recorded as.
ENTRIES = {"events": "event", "findings": "finding", "outcome_measures": "outcome"}


def upgrade() -> None:
    op.create_table(
        "entry_corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("entry_kind", sa.String(length=10), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "marked",
                "taken_back",
                name="correction_action",
                native_enum=False,
                create_constraint=True,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("by_user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_id"], ["users.id"], name=op.f("fk_entry_corrections_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_entry_corrections_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry_corrections")),
    )
    op.create_index("ix_entry_corrections_at", "entry_corrections", ["at"], unique=False)
    op.create_index(
        "ix_entry_corrections_patient_id_entry",
        "entry_corrections",
        ["patient_id", "entry_kind", "entry_id"],
        unique=False,
    )
    for table, kind in ENTRIES.items():
        op.execute(
            sa.text(
                "INSERT INTO entry_corrections"
                " (patient_id, entry_kind, entry_id, action, reason, by_user_id, at)"
                " SELECT patient_id, :kind, id, 'marked', entered_in_error_reason,"
                f" entered_in_error_by_user_id, entered_in_error_at FROM {table}"
                " WHERE entered_in_error_at IS NOT NULL"
                " AND entered_in_error_by_user_id IS NOT NULL"
                " ORDER BY entered_in_error_at, id"
            ).bindparams(kind=kind)
        )


def downgrade() -> None:
    op.drop_index("ix_entry_corrections_patient_id_entry", table_name="entry_corrections")
    op.drop_index("ix_entry_corrections_at", table_name="entry_corrections")
    op.drop_table("entry_corrections")
