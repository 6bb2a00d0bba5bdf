"""audit_events is append-only

On PostgreSQL a trigger refuses every UPDATE, DELETE and TRUNCATE of audit_events, whoever
runs it (the application has no such path; this stops a bug or a stray SQL session from
rewriting the trail). Nothing is revoked and nothing else changes: INSERT and SELECT work as
before. Removing the trail on purpose (e.g. a retention job run by a DBA) means dropping the
trigger in a migration, visibly.

SQLite (the demo database) has no such enforcement here: this migration is a no-op there.

Revision ID: ce944c465402
Revises: 47fa5e9d3cd6
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ce944c465402"
down_revision: str | None = "47fa5e9d3cd6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "audit_events_append_only"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: no-op (see the docstring)
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_events_no_update_or_delete
        BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_events_no_truncate
        BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
    op.execute("DROP TRIGGER IF EXISTS audit_events_no_update_or_delete ON audit_events")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
