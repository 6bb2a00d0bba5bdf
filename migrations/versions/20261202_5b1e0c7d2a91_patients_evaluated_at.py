"""patients.evaluated_at: what the periodic scan compares new data with

The scan used to keep one watermark and move it past data whose evaluation tasks could still
be lost (a broker restart); a per-patient time lets the next scan find such patients again.

Revision ID: 5b1e0c7d2a91
Revises: ce944c465402
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0c7d2a91"
down_revision: str | None = "ce944c465402"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("evaluated_at")
