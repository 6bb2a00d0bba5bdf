"""pinned_baselines.replaced_at: a pin replaced stays, with who replaced it and when

A pin replaced by one from the same or an earlier date (or a return to automatic on its
first day) was deleted: the baseline's history lost it, and a FHIR receiver that had imported
it kept it, as no later export retracted it. The row now stays, marked replaced; only current
rows count. Going down deletes the replaced rows (as the code before this deleted them), then
the columns.

Revision ID: c0e2a4b6d8f1
Revises: b9d1f3a5c7e0
Create Date: 2026-12-13 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0e2a4b6d8f1"
down_revision: str | None = "b9d1f3a5c7e0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "pinned_baselines"
FK = "fk_pinned_baselines_replaced_by_user_id_users"


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replaced_by_user_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f(FK), "users", ["replaced_by_user_id"], ["id"])


def downgrade() -> None:
    op.execute(sa.text(f"DELETE FROM {TABLE} WHERE replaced_at IS NOT NULL"))
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(FK), type_="foreignkey")
        batch_op.drop_column("replaced_by_user_id")
        batch_op.drop_column("replaced_at")
