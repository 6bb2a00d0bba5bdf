"""pinned_baselines: a row with no level returns the metric to the automatic baseline

A pin was in force from its date on with no end, so "return to automatic" could only delete
the metric's pins, and the next evaluation replayed the whole history as if it had never
been pinned (alerts of past months appearing, or vanishing from the chart's account). Now a
row with a NULL level ends the pins before it from its date on: the history keeps what was in
force when.

Revision ID: 3d5e7f9a1b2c
Revises: 8c3f1a2b9d47
Create Date: 2026-12-04 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3d5e7f9a1b2c"
down_revision: str | None = "8c3f1a2b9d47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pinned_baselines") as batch:
        batch.alter_column("level", existing_type=sa.Double(), nullable=True)


def downgrade() -> None:
    # The schema before had no way to say "automatic again": those rows cannot be kept.
    op.execute("DELETE FROM pinned_baselines WHERE level IS NULL")
    with op.batch_alter_table("pinned_baselines") as batch:
        batch.alter_column("level", existing_type=sa.Double(), nullable=False)
