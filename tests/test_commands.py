"""Administration commands: they create what they are told and refuse bad input with exit 1 and no rows."""
import pytest
import sqlalchemy as sa

from crm.auth.models import User
from crm.extensions import db
from crm.orgs.models import Campaign, Organisation


def count(model):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def invoke(runner, *args, input=None):
    runner.app.config["CLI_LOCALE"] = "en"
    return runner.invoke(args=["crm", *args], input=input)


@pytest.fixture
def orgs(runner):
    assert invoke(runner, "create-org", "--code", "SZRCB", "--name", "深圳农商银行", "--kind", "bank").exit_code == 0
    assert invoke(runner, "create-org", "--code", "SZRCB-LG", "--name", "龙岗支行", "--kind", "bank",
                  "--parent", "SZRCB").exit_code == 0
    assert invoke(runner, "create-org", "--code", "LG-KCJ", "--name", "龙岗区科技创新局", "--kind", "bureau").exit_code == 0


def test_create_org_makes_a_branch_under_its_bank(app, orgs):
    branch = db.session.scalar(sa.select(Organisation).where(Organisation.code == "SZRCB-LG"))
    assert branch.is_branch and branch.bank.code == "SZRCB"


@pytest.mark.parametrize("args,message", [
    (["--code", "X1", "--name", "x", "--kind", "bank", "--parent", "NOPE"], "unknown organisation code"),
    (["--code", "SZRCB", "--name", "dup", "--kind", "bank"], "already taken"),
    (["--code", "bad code!", "--name", "x", "--kind", "bank"], "The code must be"),
    (["--code", "P1", "--name", "x", "--kind", "park", "--parent", "SZRCB"], "parent"),
])
def test_create_org_refuses_bad_input(app, runner, orgs, args, message):
    before = count(Organisation)
    result = invoke(runner, "create-org", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert count(Organisation) == before


def test_create_user_prints_a_one_time_password_that_must_be_changed(app, runner, orgs):
    result = invoke(runner, "create-user", "--username", "Li.Ming", "--role", "rm", "--org", "SZRCB-LG", "--name", "李明")
    assert result.exit_code == 0, result.output
    password = result.output.split("one-time password: ")[1].strip()
    assert len(password) >= 16
    user = db.session.scalar(sa.select(User).where(User.username == "li.ming"))
    assert user.must_change_password and user.bank.code == "SZRCB"
    assert password not in user.password_hash


def test_create_user_reads_password_from_stdin(app, runner, orgs, client):
    result = invoke(runner, "create-user", "--username", "kcj1", "--role", "bureau", "--org", "LG-KCJ",
                    "--password-stdin", input="Long-Enough-Phrase-42\n")
    assert result.exit_code == 0, result.output
    assert "one-time password" not in result.output
    assert client.post("/login", data={"username": "kcj1", "password": "Long-Enough-Phrase-42"}).status_code == 302


@pytest.mark.parametrize("args,message", [
    (["--username", "x1", "--role", "pilot", "--org", "SZRCB"], "Unknown role"),
    (["--username", "x2", "--role", "rm", "--org", "NOPE"], "unknown organisation code"),
    (["--username", "x3", "--role", "rm", "--org", "LG-KCJ"], "Bank staff"),
    (["--username", "x4", "--role", "bureau", "--org", "SZRCB"], "Bureau users"),
])
def test_create_user_refuses_bad_input(app, runner, orgs, args, message):
    before = count(User)
    result = invoke(runner, "create-user", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert count(User) == before


@pytest.mark.parametrize("lookalike", ["admin ", " admin", "ADMIN", "ａｄｍｉｎ", "admin\u200b"])
def test_create_user_refuses_lookalike_usernames(app, runner, orgs, lookalike):
    assert invoke(runner, "create-user", "--username", "admin", "--role", "admin", "--org", "LG-KCJ").exit_code == 0
    result = invoke(runner, "create-user", "--username", lookalike, "--role", "admin", "--org", "LG-KCJ")
    assert result.exit_code == 1
    assert count(User) == 1


def test_create_user_refuses_a_common_password(app, runner, orgs):
    result = invoke(runner, "create-user", "--username", "weak", "--role", "bureau", "--org", "LG-KCJ",
                    "--password-stdin", input="12345678\n")
    assert result.exit_code == 1
    assert count(User) == 0


def test_create_campaign_with_participants(app, runner, orgs):
    result = invoke(runner, "create-campaign", "--code", "ZCR", "--name", "知产融", "--district", "龙岗区",
                    "--start", "2026-03-01", "--end", "2026-12-31", "--orgs", "SZRCB,LG-KCJ")
    assert result.exit_code == 0, result.output
    camp = db.session.scalar(sa.select(Campaign))
    assert {o.code for o in camp.organisations} == {"SZRCB", "LG-KCJ"}
    assert len(camp.industries) == 6


@pytest.mark.parametrize("args,message", [
    (["--start", "2026-12-31", "--end", "2026-01-01", "--orgs", "SZRCB"], "before"),
    (["--start", "2026-13-01", "--end", "2026-12-31", "--orgs", "SZRCB"], "YYYY-MM-DD"),
    (["--start", "2026-01-01", "--end", "2026-12-31", "--orgs", "SZRCB,NOPE"], "unknown organisation code"),
])
def test_create_campaign_refuses_bad_input(app, runner, orgs, args, message):
    result = invoke(runner, "create-campaign", "--code", "C1", "--name", "n", "--district", "龙岗区", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert count(Campaign) == 0


def test_fresh_database_has_no_login(app):
    assert count(User) == 0


def test_command_line_messages_are_chinese_by_default(app, runner, orgs):
    app.config.pop("CLI_LOCALE")
    result = runner.invoke(args=["crm", "create-org", "--code", "SZRCB", "--name", "x", "--kind", "bank"])
    assert result.exit_code == 1
    assert "已被使用" in result.output
