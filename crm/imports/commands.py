"""`flask --app wsgi crm import KIND FILE --campaign CODE --as USERNAME [--dry-run] [--valid-only]`."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import sqlalchemy as sa

from crm.commands import crm_cli, fail
from crm.extensions import db


@crm_cli.command("import")
@click.argument("kind")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--campaign", "campaign_code", default=None, help="Campaign code the rows belong to.")
@click.option("--as", "username", required=True, help="Import as this user (their bank owns the rows).")
@click.option("--dry-run", is_flag=True, help="Check and count, change nothing.")
@click.option("--valid-only", is_flag=True, help="Import the valid rows even when some are rejected.")
def import_ledger(kind, file, campaign_code, username, dry_run, valid_only):
    """Import a ledger (firms, visits, ...): all or nothing; exit 1 with the row report on stderr on rejects."""
    from crm.auth.services import find_user
    from crm.core.scoping import scope_for, scoped
    from crm.imports.framework import ImportContext, get_ledger, ledgers, run_import
    from crm.orgs.models import Campaign

    ledger = get_ledger(kind)
    if ledger is None:
        fail(f"未知的台账类型 / unknown ledger: {kind} (known: {', '.join(lg.kind for lg in ledgers())})")
    user = find_user(username)
    if user is None or not user.is_active:
        fail(f"未知的用户 / unknown user: {username}")
    if str(user.role) not in ledger.roles or (ledger.needs_bank and user.bank_id is None):
        fail(f"用户 {user.username} 不能导入 {kind} 台账 / user may not import this ledger")
    campaign = None
    if campaign_code:
        campaign = db.session.scalar(sa.select(Campaign).where(Campaign.code == campaign_code.strip()))
        if campaign is None:
            fail(f"未知的专项活动 / unknown campaign: {campaign_code}")
    elif ledger.needs_campaign:
        fail("请用 --campaign 指定专项活动 / --campaign is required for this ledger")
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"无法读取文件 / cannot read {file}: {exc.strerror}")
    with scoped(scope_for(user)):
        if campaign is not None:
            from crm.firms.queries import campaigns_for

            if campaign.id not in {c.id for c in campaigns_for(user)}:
                fail(f"用户所在银行未参加专项活动 {campaign.code} / the user's bank is not in this campaign")
        ctx = ImportContext(user=user, campaign=campaign, dry_run=dry_run)
        report = run_import(ledger, data, file.name, ctx, commit=not dry_run, valid_only=valid_only)
    prefix = "（试运行，未写入）" if dry_run else ("" if report.committed else "（未写入任何数据）")
    click.echo(prefix + report.summary_line())
    if report.file_error or report.problems:
        click.echo(report.text_report(), err=True)
        sys.exit(1)
