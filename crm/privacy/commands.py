"""`flask --app wsgi crm pi-retention --days N [--dry-run]`: erase personal data past its retention (PI-3)."""
from __future__ import annotations

import click

from crm.commands import crm_cli, fail
from crm.extensions import db
from crm.privacy import services


@crm_cli.command("pi-retention")
@click.option("--days", type=int, default=services.DEFAULT_RETENTION_DAYS, show_default=True,
              help=f"Retention in days (at least {services.MIN_RETENTION_DAYS}).")
@click.option("--dry-run", is_flag=True, help="Only count what would be erased; change nothing.")
def pi_retention(days, dry_run):
    """Erase the personal fields of contacts deleted more than N days ago and the mobiles and titles of
    registrations for events held more than N days ago. Rows (and attendance counts) stay; idempotent."""
    minimum = services.MIN_RETENTION_DAYS
    if days < minimum:
        fail(f"个人信息至少保留 {minimum} 天 / personal data is kept at least {minimum} days (asked: {days})")
    try:
        result = services.erase_expired(days, dry_run=dry_run)
        if dry_run:
            db.session.rollback()
        else:
            db.session.commit()
    except Exception as exc:  # noqa: BLE001  (reported, exit 1)
        fail(f"清理失败 / retention failed: {exc}")
    verb = "would erase" if dry_run else "erased"
    click.echo(f"{verb} {result.contacts} deleted contacts (deleted before "
               f"{result.contacts_deleted_before:%Y-%m-%d %H:%M} UTC) and {result.registrations} registrations "
               f"(events held before {result.events_held_before.isoformat()}); retention {days} days"
               + (" (dry run: nothing changed)" if dry_run else ""))
