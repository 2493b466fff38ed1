"""Ledger imports issue a number of SQL statements that does not grow with the rows of the file.

A 10,000-row ledger must import in seconds, so the look-ups of a file are read in bulk (one ``IN`` query per chunk
of rows) and its writes are one INSERT per table and chunk (``crm.imports.framework.insert_rows``). Importing N rows
and 2N rows (both within one chunk of ``CHUNK_SIZE``) must cost exactly the same number of statements, for new
firms, for a preview, for a re-import that changes nothing, and for known firms that are updated and gain the
importing bank's account and a contact; a file of more than one chunk (2,000 rows) costs a fixed number of
statements per chunk, the same for a full chunk as for a chunk of one row.
"""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from crm.core.models import AuditEntry
from crm.core.scoping import scope_for, scoped
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount
from crm.imports.framework import CHUNK_SIZE, ImportContext, get_ledger, run_import
from tests import factories
from tests.factories_firms import count, csv_bytes
from tests.sqlcount import statements

HEADERS = ["企业名称", "统一社会信用代码", "所属区", "所属街道", "重点产业", "国民经济行业门类", "高新技术企业",
           "高企证书编号", "专精特新", "发明专利数", "实用新型数", "外观设计数", "软件著作权数", "联系人", "联系电话"]


def ledger(first: int, n: int, *, name: str = "导入", patents: int = 1, contacts: bool = True) -> bytes:
    rows = [HEADERS]
    for i in range(first, first + n):
        rows.append([f"深圳市{name}{i:05d}科技有限公司", factories.credit_code(80_000 + i), "龙岗区", "坂田街道", "人工智能",
                     "I", "是" if i % 2 else "否", f"GR2024{i:06d}" if i % 2 else "", "专精特新中小企业", patents, 0, 0,
                     1, f"联系人{i}" if contacts else "", f"138{i:08d}" if contacts else ""])
    return csv_bytes(rows)




def run(data: bytes, user, *, commit: bool = True):
    with scoped(scope_for(user)), statements() as seen:
        report = run_import(get_ledger("firms"), data, "ledger.csv", ImportContext(user=user), commit=commit)
    return report, len(seen)


@pytest.mark.parametrize("who", ["rm_a", "admin"])
def test_importing_twice_as_many_new_firms_costs_the_same_statements(world, who):
    user = getattr(world, who)
    accounts, contacts = count(FirmAccount), count(Contact)
    contacts_ok = who != "admin"  # the admin records no contacts (no organisation to record them for)
    small, n_small = run(ledger(0, 20, contacts=contacts_ok), user)
    large, n_large = run(ledger(100, 40, contacts=contacts_ok), user)
    assert small.committed and large.committed, large.text_report()
    assert (small.created, large.created) == (20, 40)
    assert n_large == n_small
    # every firm, and for a bank user its account and the contact, is written and audited one by one
    assert count(Firm) == 1 + 60
    creates = {t: n for t, n in db.session.execute(
        sa.select(AuditEntry.object_type, sa.func.count()).where(AuditEntry.action == "create")
        .group_by(AuditEntry.object_type).execution_options(skip_tenant_scope=True))}
    if who == "rm_a":
        assert creates.get("firm") == 60 and creates.get("firm_account") == 60 and creates.get("contact") == 60
        assert (count(FirmAccount), count(Contact)) == (accounts + 60, contacts + 60)
    else:  # the admin records firms only (no bank, so no account and no contact)
        assert creates.get("firm") == 60 and "firm_account" not in creates


def test_a_preview_costs_the_same_statements_for_twice_the_rows_and_writes_nothing(world):
    _r, n_small = run(ledger(0, 20), world.rm_a, commit=False)
    _r, n_large = run(ledger(100, 40), world.rm_a, commit=False)
    assert n_large == n_small
    # two chunks: 2,000 rows cost what 1,001 rows cost
    report, two_full_chunks = run(ledger(1000, 2 * CHUNK_SIZE), world.rm_a, commit=False)
    assert report.created == 2 * CHUNK_SIZE and not report.committed
    _r, two_chunks = run(ledger(4000, CHUNK_SIZE + 1), world.rm_a, commit=False)
    assert two_full_chunks == two_chunks
    assert count(Firm) == 1 and count(AuditEntry) == 0


def test_reimporting_an_unchanged_file_costs_the_same_statements_for_twice_the_rows(world):
    small_file, large_file = ledger(0, 20), ledger(100, 40)
    run(small_file, world.rm_a)
    run(large_file, world.rm_a)
    audits = count(AuditEntry)
    small, n_small = run(small_file, world.rm_a)
    large, n_large = run(large_file, world.rm_a)
    assert (small.unchanged, large.unchanged, large.created, large.updated) == (20, 40, 0, 0)
    assert n_large == n_small
    assert count(AuditEntry) == audits + 2  # only the two imports themselves


def test_updating_known_firms_for_another_bank_costs_the_same_statements_for_twice_the_rows(world):
    run(ledger(0, 20), world.rm_a)
    run(ledger(100, 40), world.rm_a)
    # bank B imports the same firms with changed patent counts: each firm is updated, gains B's account and contact
    small, n_small = run(ledger(0, 20, patents=7), world.rm_b)
    large, n_large = run(ledger(100, 40, patents=7), world.rm_b)
    assert (small.updated, large.updated, large.created, large.unchanged) == (20, 40, 0, 0)
    assert n_large == n_small
    firm = db.session.scalar(sa.select(Firm).where(Firm.credit_code == factories.credit_code(80_105)))
    assert firm.invention_patents == 7
    update = db.session.scalar(sa.select(AuditEntry).where(
        AuditEntry.action == "update", AuditEntry.object_type == "firm", AuditEntry.object_id == firm.id)
        .execution_options(skip_tenant_scope=True))
    assert json.loads(update.before)["invention_patents"] == 1 and json.loads(update.after)["invention_patents"] == 7
    banks = set(db.session.scalars(sa.select(FirmAccount.bank_id).where(FirmAccount.firm_id == firm.id)
                                   .execution_options(skip_tenant_scope=True)))
    assert banks == {world.bank_a.id, world.bank_b.id}


def test_a_file_of_several_chunks_costs_a_fixed_number_of_statements_per_chunk(world):
    _r, one_chunk = run(ledger(0, 10), world.rm_a)
    _r, two_chunks = run(ledger(100, CHUNK_SIZE + 1), world.rm_a)
    report, two_full_chunks = run(ledger(2000, 2 * CHUNK_SIZE), world.rm_a)  # 2,000 rows
    assert report.created == 2 * CHUNK_SIZE
    report, three_chunks = run(ledger(5000, 2 * CHUNK_SIZE + 10), world.rm_a)
    assert report.created == 2 * CHUNK_SIZE + 10
    # the fixed cost (the file, the code lists, the import's own audit entry) is paid once; each chunk adds the
    # same few statements (look-ups and one INSERT per table), whatever its number of rows: 1,000 rows in the
    # second chunk cost what 1 row costs there
    assert two_full_chunks == two_chunks
    per_chunk = two_chunks - one_chunk
    assert three_chunks - two_full_chunks == per_chunk
    assert 0 < per_chunk < one_chunk
    assert three_chunks < 2 * CHUNK_SIZE / 10
