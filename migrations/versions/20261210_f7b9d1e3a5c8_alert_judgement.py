"""alerts.resolve_judgement: what came of an alert, as the resolving clinician judged it

Optional, one of acted_on / no_action / not_a_change (`AlertJudgement`), with the same CHECK
constraint as the model's other enum columns. NULL for the alerts resolved before (and for
those resolved automatically): nothing is invented for them.

SQLite adds the column with its CHECK in place (ALTER TABLE ... ADD COLUMN ... CHECK), and
drops it in place: rebuilding the table, as a batch migration does, would drop a table the
notifications refer to. Both steps can run again: a column already there is kept.

Revision ID: f7b9d1e3a5c8
Revises: e6a8c0d2f4b7
Create Date: 2026-12-10 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f7b9d1e3a5c8"
down_revision: str | None = "e6a8c0d2f4b7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "alerts"
COLUMN = "resolve_judgement"
CHECK = "ck_alerts_alert_judgement"
VALUES = "resolve_judgement IN ('acted_on', 'no_action', 'not_a_change')"


def _has_column() -> bool:
    return COLUMN in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}


def upgrade() -> None:
    if _has_column():
        return
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE {TABLE} ADD COLUMN {COLUMN} VARCHAR(40)"
            f" CONSTRAINT {CHECK} CHECK ({VALUES})"
        )
        return
    op.add_column(TABLE, sa.Column(COLUMN, sa.String(length=40), nullable=True))
    op.create_check_constraint(op.f(CHECK), TABLE, sa.text(VALUES))


def downgrade() -> None:
    if not _has_column():
        return
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f(CHECK), TABLE, type_="check")
    op.drop_column(TABLE, COLUMN)
