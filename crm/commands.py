"""Command-line tools: `flask --app wsgi crm ...`. Each refuses bad input with a message, exit 1 and no rows."""
from __future__ import annotations

import sys
from datetime import date

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from crm.extensions import db

crm_cli = AppGroup("crm", help="Campaign CRM administration.")


def fail(message: str) -> None:
    """Roll back, print the reason to stderr and exit non-zero."""
    db.session.rollback()
    click.echo(f"错误 / Error: {message}", err=True)
    sys.exit(1)


def _parse_date(value: str, label: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{label} 日期格式应为 YYYY-MM-DD / {label} must be YYYY-MM-DD: {value!r}")


def _org_by_code(code: str):
    from crm.orgs.models import Organisation

    return db.session.scalar(sa.select(Organisation).where(Organisation.code == code.strip()))


@crm_cli.command("create-org")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(["bank", "bureau", "street", "park"]))
@click.option("--parent", "parent_code", default=None, help="Parent organisation code (a branch's bank).")
@click.option("--short-name", default="")
def create_org(code, name, kind, parent_code, short_name):
    """Create an organisation; a branch is a bank whose parent is a bank."""
    from crm.orgs import services

    parent = None
    if parent_code:
        parent = _org_by_code(parent_code)
        if parent is None:
            fail(f"未知的机构代码 / unknown organisation code: {parent_code}")
    try:
        org = services.create_org(code=code, name=name, kind=kind, parent=parent, short_name=short_name)
    except services.OrgError as exc:
        fail(str(exc))
    db.session.commit()
    click.echo(f"created organisation {org.code} ({org.kind.value}) id={org.id}")


@crm_cli.command("create-user")
@click.option("--username", required=True)
@click.option("--role", required=True)
@click.option("--org", "org_code", required=True)
@click.option("--name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(username, role, org_code, name, password_stdin):
    """Create a user; without --password-stdin a strong random password is printed once."""
    from crm.auth import services

    org = _org_by_code(org_code)
    if org is None:
        fail(f"未知的机构代码 / unknown organisation code: {org_code}")
    generated = not password_stdin
    password = services.generate_password() if generated else sys.stdin.readline().rstrip("\r\n")
    try:
        user = services.create_user(username=username, role=role, org=org, password=password, name=name)
    except services.AccountError as exc:
        fail(str(exc))
    user.must_change_password = generated
    db.session.commit()
    click.echo(f"created user {user.username} ({user.role.value}) in {org.code}")
    if generated:
        click.echo(f"one-time password: {password}")


@crm_cli.command("create-campaign")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--district", required=True)
@click.option("--start", "start", required=True)
@click.option("--end", "end", required=True)
@click.option("--orgs", default="", help="Participating organisation codes, comma-separated.")
@click.option("--industries", default="", help="Priority industry codes (default: all six).")
def create_campaign(code, name, district, start, end, orgs, industries):
    """Create a campaign with its participating organisations."""
    from crm.orgs import services

    start_on = _parse_date(start, "--start")
    end_on = _parse_date(end, "--end")
    org_list = []
    for c in [c for c in orgs.split(",") if c.strip()]:
        org = _org_by_code(c)
        if org is None:
            fail(f"未知的机构代码 / unknown organisation code: {c.strip()}")
        org_list.append(org)
    try:
        campaign = services.create_campaign(
            code=code, name=name, district=district, start_on=start_on, end_on=end_on, orgs=org_list,
            industry_codes=[c.strip() for c in industries.split(",") if c.strip()] or None,
        )
    except services.OrgError as exc:
        fail(str(exc))
    db.session.commit()
    click.echo(f"created campaign {campaign.code} {campaign.start_on}..{campaign.end_on} with {len(org_list)} organisations")


@crm_cli.command("demo-data")
@click.option("--force", is_flag=True, help="Load even though the database already has data.")
@click.option("--if-empty", is_flag=True, help="Do nothing (successfully) when the database has data.")
@click.option("--seed", default=20261126, type=int)
def demo_data(force, if_empty, seed):
    """Load the demo campaign (知产融, Longgang) and print one login per role."""
    from flask import current_app

    from crm import demo
    from crm.orgs.models import Organisation

    if current_app.config.get("REQUIRE_STRONG_SECRET"):
        fail("演示数据使用公开的共享密码，生产配置下不允许加载 / the demo has a shared public password; "
             "it cannot be loaded under the production configuration")
    has_data = db.session.scalar(sa.select(sa.func.count()).select_from(Organisation)) > 0
    if has_data and if_empty:
        click.echo("database already has data; demo not loaded")
        if demo.DEMO_LOGINS_NOTE:
            click.echo(demo.DEMO_LOGINS_NOTE)
        return
    if has_data and not force:
        fail("数据库不为空；如确需加载演示数据请加 --force / the database is not empty; use --force to load anyway")
    try:
        logins = demo.load(seed=seed)
    except ValueError as exc:
        fail(str(exc))
    db.session.commit()
    click.echo("demo campaign loaded. Demo logins (password for all: %s):" % demo.DEMO_PASSWORD)
    for role, username in logins:
        click.echo(f"  {role:<13} {username}")
