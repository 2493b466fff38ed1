"""The audit trail (SECURITY.md §8): who/what/when/where for the sign-in events, refusals and role changes (LG-1),
no password and no full mobile anywhere in it (LG-2), no log injection (LG-3), append-only on SQLite and
PostgreSQL (LG-4), and a retention command that keeps at least 183 days (LG-5).
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError

from crm.auth import services
from crm.auth.models import User
from crm.core.db import utcnow
from crm.core.models import AuditEntry
from crm.extensions import db
from tests.conftest import TEST_PASSWORD, login
from tests.security_payloads import DB_ENGINES, csrf_token_in, engine_app

CANARY_PASSWORD = "Canary-Pw-7f3a"
CANARY_MOBILE = "13800138000"
MOBILE_RE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")

_engines: dict = {}


@pytest.fixture(params=DB_ENGINES)
def any_app(request, tmp_path):
    """The app on a fresh migrated database of each engine (SQLite and the throwaway PostgreSQL)."""
    yield from engine_app(request, tmp_path, _engines)


def entries(action=None):
    q = sa.select(AuditEntry).order_by(AuditEntry.id)
    if action:
        q = q.where(AuditEntry.action == action)
    return db.session.scalars(q).all()


# -- LG-1 coverage -------------------------------------------------------------------------------------------


def _assert_entry(entry, *, user, ip="127.0.0.1"):
    assert entry.user_id == (user.id if user else None)
    assert entry.bank_id == (user.bank_id if user else None)
    assert entry.ip == ip
    assert entry.at.tzinfo is not None and entry.at.utcoffset() == timedelta(0)
    assert abs((utcnow() - entry.at).total_seconds()) < 300


def test_sign_in_events_are_audited_once_with_who_when_and_where(app, client, world):
    rm = world.rm_a
    login(client, "rm_a", "Wrong-Password-9")
    [failed] = entries("auth.login_failed")
    _assert_entry(failed, user=None)
    assert failed.detail == "rm_a"
    login(client, "rm_a")
    [ok] = entries("auth.login")
    _assert_entry(ok, user=rm)
    assert (ok.object_type, ok.object_id) == ("user", rm.id)
    client.post("/password", data={"current": TEST_PASSWORD, "new": "Another-Long-Phrase-9",
                                   "confirm": "Another-Long-Phrase-9"})
    [changed] = entries("user.password_change")
    _assert_entry(changed, user=rm)
    client.post("/logout")
    [out] = entries("auth.logout")
    _assert_entry(out, user=rm)


def test_a_refused_request_is_audited(app, client, world):
    from crm.auth.decorators import role_required

    @role_required("admin")
    def admin_only():
        return "ok"

    app.add_url_rule("/_probe/admin-only", "probe_admin_only", admin_only, methods=["GET", "POST"])
    login(client, "rm_a")
    assert client.post("/_probe/admin-only?mobile=13800138000").status_code == 403
    [denied] = entries("access.denied")
    _assert_entry(denied, user=world.rm_a)
    assert denied.detail == "POST /_probe/admin-only probe_admin_only"  # no query string (it may hold PII)


def test_role_changes_and_deactivation_are_audited_with_before_and_after(app, world):
    services.change_role(db.session.get(User, world.rm_a.id), "bank_manager", actor=world.admin)
    services.set_active(db.session.get(User, world.rm_b.id), False, actor=world.admin)
    db.session.commit()
    [change] = entries("user.role_change")
    assert change.user_id == world.admin.id and change.object_id == world.rm_a.id
    assert json.loads(change.before)["role"] == "rm" and json.loads(change.after)["role"] == "bank_manager"
    [deact] = entries("user.deactivate")
    assert deact.user_id == world.admin.id and deact.object_id == world.rm_b.id


def test_role_change_refuses_a_bank_role_outside_a_bank(app, world):
    with pytest.raises(services.AccountError):
        services.change_role(db.session.get(User, world.rm_a.id), "rm", org=world.bureau)


# -- LG-2 canaries and LG-3 injection -------------------------------------------------------------------------


def test_no_password_and_no_full_mobile_reach_the_audit_trail_or_the_log(app, client, runner, world, caplog):
    caplog.set_level("DEBUG")
    result = runner.invoke(args=["crm", "create-user", "--username", "canary", "--role", "rm", "--org", "SZRCB-LG",
                                 "--password-stdin"], input=CANARY_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    login(client, CANARY_PASSWORD, CANARY_PASSWORD)  # password typed into the user name box
    login(client, "canary", CANARY_PASSWORD + "x")
    assert login(client, "canary", CANARY_PASSWORD).status_code == 302
    resp = client.post(f"/firms/{world.firm.id}/contacts/new",
                       data={"name": "金丝雀", "mobile": CANARY_MOBILE, "title": "", "email": ""})
    assert resp.status_code == 302, resp.status_code
    from crm.firms.models import Contact

    contact_id = db.session.scalar(sa.select(sa.func.max(Contact.id)))
    client.post(f"/firms/contacts/{contact_id}/reveal")
    client.get(f"/firms/{world.firm.id}")
    client.post("/password", data={"current": CANARY_PASSWORD, "new": "Next-" + CANARY_PASSWORD,
                                   "confirm": "Next-" + CANARY_PASSWORD})
    client.post("/logout")

    rows = db.session.execute(sa.select(AuditEntry.__table__)).all()
    assert len(rows) >= 6
    dump = "\n".join(" ".join(str(v) for v in row) for row in rows)
    assert CANARY_PASSWORD not in dump
    assert MOBILE_RE.findall(dump) == []
    assert "138****8000" in dump  # the contact was audited, masked
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert CANARY_PASSWORD not in log and CANARY_MOBILE not in log


@pytest.mark.parametrize("app_overrides", [{"WTF_CSRF_ENABLED": True}])
def test_control_characters_are_encoded_in_the_trail_and_the_log(app, client, world, caplog, app_overrides):
    evil = "evil\r\n2025-01-01 admin login OK\x1b[31m"
    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": evil, "password": "whatever-1234", "csrf_token": token})
    [failed] = entries("auth.login_failed")
    assert "\r" not in failed.detail and "\n" not in failed.detail and "\x1b" not in failed.detail
    assert "\\r\\n" in failed.detail and "\\x1b" in failed.detail
    with caplog.at_level("WARNING"):
        client.post("/logout\r\nX-Injected: 1".replace("\r\n", "%0d%0a"), data={})
        client.post("/login", data={"username": "x"})  # no token: a logged CSRF refusal
    for record in caplog.records:
        assert "\n" not in record.getMessage() and "\r" not in record.getMessage()


# -- LG-4 append-only -------------------------------------------------------------------------------------------


def _seed_entries(ages_days):
    now = utcnow()
    for age in ages_days:
        db.session.add(AuditEntry(action="test.aged", detail=f"{age} days", at=now - timedelta(days=age)))
    db.session.commit()


@pytest.mark.parametrize("statement", [
    sa.update(AuditEntry).values(detail="rewritten"),
    sa.delete(AuditEntry),
], ids=["update", "delete"])
def test_the_audit_trail_refuses_update_and_delete(any_app, statement):
    _seed_entries([1, 2])
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(statement)
        db.session.flush()
    db.session.rollback()
    assert {e.detail for e in entries("test.aged")} == {"1 days", "2 days"}


def test_the_audit_trail_refuses_orm_edits_and_raw_sql(any_app):
    _seed_entries([1])
    entry = entries("test.aged")[0]
    entry.detail = "rewritten"
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    with pytest.raises(DatabaseError, match="append-only"):
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_entry"))
    if db.engine.dialect.name == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE audit_entry"))
    assert len(entries("test.aged")) == 1


def test_the_migration_downgrades_and_upgrades_again(any_app):
    import flask_migrate

    _seed_entries([1])
    db.session.remove()
    flask_migrate.downgrade(revision="0006")
    db.session.execute(sa.update(AuditEntry).values(detail="editable again"))  # no trigger any more
    db.session.commit()
    db.session.remove()
    flask_migrate.upgrade()
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(sa.delete(AuditEntry))
    db.session.rollback()


# -- LG-5 retention ---------------------------------------------------------------------------------------------


def test_purge_refuses_to_keep_less_than_183_days(any_app):
    _seed_entries([182, 184, 400])
    runner = any_app.test_cli_runner()
    result = runner.invoke(args=["crm", "audit-purge", "--older-than-days", "180"])
    assert result.exit_code == 1
    assert "183" in result.output
    assert len(entries("test.aged")) == 3


def test_purge_deletes_only_entries_older_than_the_retention_and_is_itself_audited(any_app):
    _seed_entries([1, 182, 184, 400])
    runner = any_app.test_cli_runner()
    result = runner.invoke(args=["crm", "audit-purge", "--older-than-days", "183"])
    assert result.exit_code == 0, result.output
    assert "deleted 2" in result.output
    db.session.expire_all()
    assert sorted(e.detail for e in entries("test.aged")) == ["1 days", "182 days"]
    [purge] = entries("audit.purge")
    assert "deleted 2" in purge.detail and purge.ip == "cli"
    # the gate closed again with the purge's transaction
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(sa.delete(AuditEntry))
    db.session.rollback()
    if db.engine.dialect.name == "sqlite":
        assert db.session.scalar(sa.text("SELECT count(*) FROM audit_purge_lock")) == 0


def test_a_failed_purge_leaves_the_gate_closed(any_app, monkeypatch):
    _seed_entries([400])

    def boom(*a, **kw):
        raise RuntimeError("disk full")

    import crm.core.audit as audit_module

    monkeypatch.setattr(audit_module, "record", boom)
    result = any_app.test_cli_runner().invoke(args=["crm", "audit-purge", "--older-than-days", "183"])
    assert result.exit_code == 1
    db.session.remove()
    assert len(entries("test.aged")) == 1  # rolled back: nothing deleted
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(sa.delete(AuditEntry))
    db.session.rollback()


def test_retention_minimum_is_six_months():
    from config import Config

    assert Config.AUDIT_MIN_RETENTION_DAYS >= 183

