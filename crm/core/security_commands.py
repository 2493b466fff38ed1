"""Security and data-care commands: `flask --app wsgi crm audit-purge | backup | restore`.

Imported by ``crm.security.register`` so the commands exist whenever the app does.
"""
from __future__ import annotations

from datetime import timedelta

import click
import sqlalchemy as sa
from flask import current_app

from crm.commands import crm_cli, fail
from crm.core.db import utcnow
from crm.extensions import db

#: The SQLite gate of the append-only audit trail (migration 0007): while its single row exists
#: inside the purge's own transaction, the BEFORE DELETE trigger lets rows go. Never committed.
audit_purge_lock = sa.Table(
    "audit_purge_lock",
    db.metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.CheckConstraint("id = 1", name="single_row"),
)


def purge_audit(cutoff) -> int:
    """Delete audit rows older than ``cutoff`` in the caller's transaction; returns the number deleted.

    The append-only triggers are opened for this transaction only (PostgreSQL: SET LOCAL; SQLite:
    the gate row, inserted and deleted again before the commit). The caller commits.
    """
    from crm.core.models import AuditEntry

    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        db.session.execute(sa.text("SET LOCAL crm.audit_purge = 'on'"))
    elif dialect == "sqlite":
        db.session.execute(sa.insert(audit_purge_lock).values(id=1))
    try:
        result = db.session.execute(
            sa.delete(AuditEntry).where(AuditEntry.at < cutoff),
            execution_options={"synchronize_session": False, "skip_tenant_scope": True},
        )
    finally:
        if dialect == "postgresql":
            db.session.execute(sa.text("SET LOCAL crm.audit_purge = 'off'"))
        elif dialect == "sqlite":
            db.session.execute(sa.delete(audit_purge_lock))
    return result.rowcount


@crm_cli.command("audit-purge")
@click.option("--older-than-days", "days", type=int, required=True,
              help="Delete audit entries older than this many days (at least AUDIT_MIN_RETENTION_DAYS, 183).")
def audit_purge(days):
    """Retention: delete audit entries older than N days; refuses to keep less than six months."""
    from crm.core import audit

    minimum = int(current_app.config.get("AUDIT_MIN_RETENTION_DAYS", 183))
    if days < minimum:
        fail(f"审计日志至少保留 {minimum} 天 / audit entries are kept at least {minimum} days (asked: {days})")
    cutoff = utcnow() - timedelta(days=days)
    try:
        deleted = purge_audit(cutoff)
        audit.record("audit.purge", object_type="audit_entry",
                     detail=f"deleted {deleted} entries older than {cutoff.isoformat()} ({days} days)")
        db.session.commit()
    except Exception as exc:  # noqa: BLE001  (reported, exit 1)
        fail(f"清理失败 / purge failed: {exc}")
    click.echo(f"deleted {deleted} audit entries older than {cutoff:%Y-%m-%d %H:%M} UTC ({days} days)")


@crm_cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def backup_command(path):
    """Write a consistent online backup of the database to PATH (SQLite backup API or pg_dump)."""
    from crm.core import backup

    db.session.remove()
    try:
        result = backup.backup(db.engine.url, path, bin_dir=current_app.config.get("PG_BIN_DIR"))
    except backup.BackupError as exc:
        fail(f"备份失败 / backup failed: {exc}")
    detail = ""
    if result.tables:
        detail = f", {len(result.tables)} tables, {sum(result.tables.values())} rows"
    click.echo(f"backup written to {result.path} ({result.dialect}, {result.size} bytes{detail})")


@crm_cli.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Confirm: the whole database is replaced by the backup.")
def restore_command(path, yes):
    """Replace the whole database with a backup made by `crm backup`. Stop the app servers first."""
    from crm.core import audit, backup

    if not yes:
        fail("恢复会覆盖整个数据库；确认请加 --yes / restore replaces the whole database; add --yes to confirm")
    db.session.remove()
    db.engine.dispose()
    try:
        result = backup.restore(db.engine.url, path, bin_dir=current_app.config.get("PG_BIN_DIR"))
    except backup.BackupError as exc:
        fail(f"恢复失败 / restore failed: {exc}")
    db.engine.dispose()
    audit.record("db.restore", object_type="database", detail=f"restored from {result.path.name}")
    db.session.commit()
    click.echo(f"database restored from {result.path} ({result.dialect})")
