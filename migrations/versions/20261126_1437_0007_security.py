"""security: the audit trail becomes append-only

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 14:37:00

UPDATE and DELETE on ``audit_entry`` raise, on SQLite (triggers calling RAISE(ABORT)) and on
PostgreSQL (a trigger function raising an exception, also for TRUNCATE). The only way to delete
rows is the retention command ``flask crm audit-purge``, which opens the gate for its own
transaction: on PostgreSQL with ``SET LOCAL crm.audit_purge = 'on'``, on SQLite by inserting the
single row of ``audit_purge_lock`` and deleting it again before the commit, so no other
connection ever sees the gate open. Updates are never allowed.

Note for later migrations: a SQLite batch ALTER of ``audit_entry`` recreates the table and drops
these triggers; re-create them (``create_sqlite_triggers()``) in that migration.
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MESSAGE = "audit_entry is append-only"

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry
    WHEN NOT EXISTS (SELECT 1 FROM audit_purge_lock WHERE id = 1)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
]

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('crm.audit_purge', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END
$$
"""
PG_TRIGGERS = [
    """CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()""",
    """CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()""",
]


def create_sqlite_triggers() -> None:
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade():
    dialect = op.get_bind().dialect.name
    # the SQLite purge gate (declared in crm/core/security_commands.py; unused but harmless on PostgreSQL)
    op.create_table(
        "audit_purge_lock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_purge_lock_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_purge_lock")),
    )
    if dialect == "sqlite":
        create_sqlite_triggers()
    elif dialect == "postgresql":
        op.execute(PG_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    op.drop_table("audit_purge_lock")
