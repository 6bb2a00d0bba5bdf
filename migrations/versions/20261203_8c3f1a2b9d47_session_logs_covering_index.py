"""session_logs: the one-log-a-day index carries the columns detection reads (PostgreSQL)

Detection reads a patient's logs by (patient_id, log_date). The heap is in arrival order (day
by day), so each log was a heap page of its own: about 3 ms of the 7–10 ms evaluation after a
new log, and a third of the periodic scan's read. With the columns in the index (INCLUDE) the
read is an index-only range scan. The constraint keeps its name and its two key columns; the
rebuild locks the table while the index is built (seconds per million logs).

Revision ID: 8c3f1a2b9d47
Revises: 5b1e0c7d2a91
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8c3f1a2b9d47"
down_revision: str | None = "5b1e0c7d2a91"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "uq_session_logs_patient_id_log_date"
# Written out, not imported: a migration states the schema of its own time.
DETECTION_COLUMNS = (
    "back_pain",
    "leg_pain",
    "leg_side",
    "adherence",
    "red_flag_new_numbness",
    "red_flag_new_weakness",
    "red_flag_bladder_bowel_change",
    "red_flag_saddle_numbness",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite indexes have no INCLUDE; its unique index stays as it is
    op.drop_constraint(CONSTRAINT, "session_logs", type_="unique")
    # (Alembic's create_unique_constraint knows only the key columns of the table.)
    op.execute(
        f"ALTER TABLE session_logs ADD CONSTRAINT {CONSTRAINT} UNIQUE (patient_id, log_date)"
        f" INCLUDE ({', '.join(DETECTION_COLUMNS)})"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_constraint(CONSTRAINT, "session_logs", type_="unique")
    op.create_unique_constraint(CONSTRAINT, "session_logs", ["patient_id", "log_date"])
