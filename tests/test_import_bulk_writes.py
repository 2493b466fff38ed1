"""The ledger imports' bulk writes (``crm.imports.framework.insert_rows`` and ``AuditBatch``) store the rows and
audit entries the services would store one by one, and a preview predicts the commit without writing anything.

The firms ledger writes a chunk's new firms, accounts and contacts with one INSERT each and builds their audit
snapshots from the inserted values instead of reading the rows back: the snapshots must be exactly what
``crm.core.audit.snapshot`` gives for the stored rows. A preview (dry run) skips the writes and must still report
the same counts and rejections as the commit of the same file.
"""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from crm.auth.models import User
from crm.core import audit
from crm.core.models import AuditEntry
from crm.core.scoping import scope_for, scoped
from crm.dashboard import snapshots
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount
from crm.imports.framework import AuditBatch, ImportContext, get_ledger, in_values, insert_rows, run_import
from tests import factories
from tests.concurrency import race_at_insert
from tests.factories_firms import count, csv_bytes
from tests.sqlcount import statements

HEADERS = ["企业名称", "统一社会信用代码", "所属区", "所属街道", "重点产业", "国民经济行业门类", "高新技术企业",
           "高企证书编号", "高企发证日期", "专精特新", "发明专利数", "实用新型数", "外观设计数", "软件著作权数", "联系人",
           "联系电话"]
MODELS = {"firm": Firm, "firm_account": FirmAccount, "contact": Contact}


def row(i: int, *, patents: int = 1, area: str = "龙岗区", street: str = "坂田街道", contact: bool = True) -> list:
    high_tech = i % 2 == 0
    return [f"深圳市批量{i:04d}科技有限公司", factories.credit_code(60_000 + i), area, street,
            "人工智能" if i % 3 else "", "I" if i % 4 else "", "是" if high_tech else "否",
            f"GR2024{i:06d}" if high_tech else "", "2024-12-01" if high_tech else "", "专精特新中小企业" if i % 5 else "",
            patents, i % 7, 0, 2, f"联系人{i}" if contact else "", f"139{i:08d}" if contact else ""]


def ledger(rows: list[list]) -> bytes:
    return csv_bytes([HEADERS, *rows])




def run(data: bytes, user, *, commit: bool = True, valid_only: bool = False):
    with scoped(scope_for(user)):
        return run_import(get_ledger("firms"), data, "ledger.csv", ImportContext(user=user), commit=commit,
                          valid_only=valid_only)


def write_version() -> int:
    version = snapshots.read_write_version(db.session.connection())
    db.session.commit()
    return version


def creates() -> list[AuditEntry]:
    return list(db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "create")
                                   .order_by(AuditEntry.id).execution_options(skip_tenant_scope=True)))


@pytest.mark.parametrize("who", ["rm_a", "mgr_a", "admin"])
def test_imported_rows_are_audited_with_the_snapshots_of_the_stored_rows(world, who):
    user = getattr(world, who)
    report = run(ledger([row(i, contact=who != "admin") for i in range(12)]), user)
    assert report.committed and report.created == 12, report.text_report()
    entries = creates()
    kinds = [e.object_type for e in entries]
    expected = {"firm": 12} if who == "admin" else {"firm": 12, "firm_account": 12, "contact": 12}
    assert {k: kinds.count(k) for k in set(kinds)} == expected
    done = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "import.commit")
                             .execution_options(skip_tenant_scope=True))  # written by audit.record itself
    db.session.expire_all()
    for entry in entries:
        obj = db.session.get(MODELS[entry.object_type], entry.object_id, execution_options={"skip_tenant_scope": True})
        assert json.loads(entry.after) == audit.snapshot(obj), entry.object_type
        assert (entry.before, entry.user_id, entry.ip, entry.detail) == (None, user.id, done.ip, "")
        assert entry.bank_id == (obj.bank_id if hasattr(obj, "bank_id") else user.bank_id)
    # the file's order: firms numbered in it, each firm's entry before its account's and contact's
    firms = [e for e in entries if e.object_type == "firm"]
    codes = [db.session.get(Firm, e.object_id).credit_code for e in firms]
    assert codes == [factories.credit_code(60_000 + i) for i in range(12)]
    assert [e.object_id for e in firms] == sorted(e.object_id for e in firms)
    if who != "admin":
        account = db.session.scalar(sa.select(FirmAccount).where(FirmAccount.firm_id == firms[0].object_id)
                                    .execution_options(skip_tenant_scope=True))
        assert (account.bank_id, account.owner_id) == (user.bank_id, user.id if who == "rm_a" else None)
        assert account.branch_id == (user.org_id if who == "rm_a" else None)
        contact = db.session.scalar(sa.select(Contact).where(Contact.firm_id == firms[0].object_id)
                                    .execution_options(skip_tenant_scope=True))
        assert (contact.name, contact.mobile, contact.bank_id, contact.version, contact.is_deleted) == \
            ("联系人0", "13900000000", user.bank_id, 1, False)
        assert "139****0000" in next(e.after for e in entries if e.object_type == "contact")


def test_a_preview_reports_what_the_commit_then_does_and_writes_nothing(world):
    assert run(ledger([row(i) for i in range(10)]), world.rm_a).created == 10
    # bank B: rows 0-2 as they are (B gains its account and contact), 3-4 with changed patents, 5 with a street
    # outside the firm's stored district (refused when applied, not when parsed), 6 refused when parsed, 10-14 new
    rows = [row(i) for i in range(3)] + [row(i, patents=9) for i in (3, 4)]
    rows += [row(5, area="", street="园岭街道"), row(6)[:1] + ["BAD"] + row(6)[2:]] + [row(i) for i in range(10, 15)]
    before = {m: count(m) for m in (Firm, FirmAccount, Contact, AuditEntry)}
    version = write_version()
    with statements() as seen:
        preview = run(ledger(rows), world.rm_b, commit=False)
    assert not [s for s in seen if s.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    # look-ups and writes by key, thousands of them: PostgreSQL may plan each statement once (crm/core/pgconn.py)
    assert any("'plan_cache_mode', 'auto'" in s for s in seen) == (db.engine.dialect.name == "postgresql")
    assert {m: count(m) for m in before} == before
    refused = run(ledger(rows), world.rm_b)  # all or nothing: two rejected rows, nothing written
    assert not refused.committed and {m: count(m) for m in before} == before
    assert write_version() == version
    committed = run(ledger(rows), world.rm_b, valid_only=True)
    assert committed.committed
    # new firms and changed patent counts move no dashboard number (crm.dashboard.snapshots.INSERT_IGNORED,
    # COLUMN_SENSITIVE): the dashboard's snapshots stay current; a changed industry invalidates them
    assert write_version() == version
    moved = [row(i) for i in range(10, 12)]
    for r in moved:
        r[4] = "生物医药"
    assert run(ledger(moved), world.rm_b).committed
    assert write_version() > version
    for report in (preview, refused):
        assert (report.created, report.updated, report.unchanged, report.rejected, report.problems) == \
            (committed.created, committed.updated, committed.unchanged, committed.rejected, committed.problems)
    assert (committed.created, committed.updated, committed.unchanged, committed.rejected) == (5, 5, 0, 2)
    assert [(p.row, p.column) for p in committed.problems] == [(7, "所属街道"), (8, "统一社会信用代码")]
    assert count(Firm) == before[Firm] + 5 and count(FirmAccount) == before[FirmAccount] + 10
    assert count(Contact) == before[Contact] + 10


def test_a_bank_managers_preview_of_known_firms_counts_the_accounts_it_would_open(world):
    run(ledger([row(i, contact=False) for i in range(4)]), world.rm_a)
    preview = run(ledger([row(i, contact=False) for i in range(4)]), world.mgr_b, commit=False)
    commit = run(ledger([row(i, contact=False) for i in range(4)]), world.mgr_b)
    assert (preview.updated, preview.unchanged) == (commit.updated, commit.unchanged) == (4, 0)
    again = run(ledger([row(i, contact=False) for i in range(4)]), world.mgr_b, commit=False)
    assert (again.updated, again.unchanged) == (0, 4)


def test_insert_rows_completes_the_rows_and_skips_a_taken_key(world):
    other = factories.firm("深圳市另一家科技有限公司")
    factories.account(world.firm, world.bank_a)
    rows = [{"bank_id": world.bank_a.id, "firm_id": world.firm.id},
            {"bank_id": world.bank_a.id, "firm_id": other.id, "owner_id": world.rm_a.id}]
    inserted = insert_rows(FirmAccount, rows, key=("bank_id", "firm_id"), skip_conflicts=True)
    assert inserted == [rows[1]] and "id" not in rows[0]
    db.session.expire_all()
    stored = db.session.get(FirmAccount, rows[1]["id"], execution_options={"skip_tenant_scope": True})
    assert AuditBatch.snapshot_values(FirmAccount, rows[1]) == audit.snapshot(stored)
    assert (stored.owner_id, stored.branch_id, rows[1]["branch_id"]) == (world.rm_a.id, None, None)
    assert stored.created_at == rows[1]["created_at"]


def test_in_values_matches_whole_values_only(world):
    """A look-up key longer than the column is not cut to the column's length (which could match another row)."""
    name = world.rm_a.username
    assert db.session.scalars(sa.select(User).where(in_values(User.username, [name, "nobody"]))).all() == [world.rm_a]
    assert db.session.scalars(sa.select(User).where(in_values(User.username, [name + "x" * 200]))).all() == []
    code = world.firm.credit_code
    assert db.session.scalars(sa.select(Firm).where(in_values(Firm.credit_code, [code + "X"]))).all() == []
    assert db.session.scalars(sa.select(Firm).where(in_values(Firm.credit_code, [code]))).all() == [world.firm]


def test_insert_rows_refuses_a_value_too_long_for_its_column_instead_of_cutting_it(world):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(sa.exc.DataError):
        insert_rows(Contact, [{"firm_id": world.firm.id, "bank_id": world.bank_a.id, "name": "名" * 61}],
                    key=("firm_id", "name"))


def test_two_imports_opening_the_same_accounts_at_once_open_each_once_and_audit_it_once(app, world):
    """Two users of one bank import the same known firms at the same moment: both imports commit, each account is
    created (and audited) by one of them, the other import finds it taken and counts its rows unchanged."""
    rows = [row(i, contact=False) for i in range(6)]
    assert run(ledger(rows), world.rm_b).created == 6  # the firms exist; bank A has no account with them
    user_ids = [world.rm_a.id, world.rm_a2.id]
    db.session.rollback()  # the test's own session holds no connection during the race

    def worker(user_id: int):
        def run_one():
            user = db.session.get(User, user_id)
            report = run(ledger(rows), user)
            return report.committed, report.updated, report.unchanged, report.file_error
        return run_one

    results, errors, attempts = race_at_insert(app, "firm_account", [worker(u) for u in user_ids])

    assert errors == [] and attempts == 2  # both had looked, found no account and tried to insert: a real race
    assert sorted(results) == [(True, 0, 6, ""), (True, 6, 0, "")]
    accounts = list(db.session.scalars(sa.select(FirmAccount.id).where(FirmAccount.bank_id == world.bank_a.id)
                                       .execution_options(skip_tenant_scope=True)))
    assert len(accounts) == 6
    audited = list(db.session.scalars(sa.select(AuditEntry.object_id).where(
        AuditEntry.action == "create", AuditEntry.object_type == "firm_account", AuditEntry.bank_id == world.bank_a.id)
        .execution_options(skip_tenant_scope=True)))
    assert sorted(audited) == sorted(accounts)
