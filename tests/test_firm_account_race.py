"""A bank's account with a firm is created once, even when two requests create it at the same moment.

crm.firms.services.ensure_account runs in every visit save, firm registration and ledger import. Two of those for
the same firm and bank at once used to both find no account and both insert one: on PostgreSQL the second insert
waited for the first transaction and then failed with a UniqueViolation (a 500). Here two threads, each with its own
app context, session and database connection, are held at a barrier just before their INSERT (both have checked and
found nothing), then let go together: both must get the one account, created and audited once. Runs on the engine of
the test run (SQLite by default, PostgreSQL with CRM_TEST_DB=postgres).
"""
from __future__ import annotations

import sqlalchemy as sa

from crm.auth.models import User
from crm.core.models import AuditEntry
from crm.extensions import db
from crm.firms import services
from crm.firms.models import Firm, FirmAccount
from tests import factories
from tests.concurrency import race_at_insert


def _accounts(firm_id: int, bank_id: int) -> list[FirmAccount]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(FirmAccount).where(FirmAccount.firm_id == firm_id,
                                                                 FirmAccount.bank_id == bank_id)))


def _creations(account_id: int) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "create", AuditEntry.object_type == "firm_account", AuditEntry.object_id == account_id))


def _race(app, firm_id: int, bank_id: int, user_ids: list[int]) -> tuple[list, list[BaseException], int]:
    """Both threads run ensure_account and commit; each waits before its INSERT into firm_account for the other."""
    def worker(user_id: int):
        def run():
            firm = db.session.get(Firm, firm_id)
            user = db.session.get(User, user_id)
            account = services.ensure_account(firm, bank_id, user=user, owner=user)
            db.session.commit()
            return account.id
        return run

    return race_at_insert(app, "firm_account", [worker(u) for u in user_ids])


def test_two_sessions_creating_the_same_account_at_once_get_one_account_created_and_audited_once(app, world):
    firm = factories.firm("并发建户科技有限公司")
    db.session.commit()
    firm_id, bank_id = firm.id, world.bank_a.id
    user_ids = [world.rm_a.id, world.rm_a2.id]
    db.session.rollback()  # the test's own session holds no connection during the race

    results, errors, attempts = _race(app, firm_id, bank_id, user_ids)

    assert errors == []
    assert attempts == 2  # both sessions had checked, found nothing and tried to insert: a real race
    accounts = _accounts(firm_id, bank_id)
    assert len(accounts) == 1
    assert results == [accounts[0].id, accounts[0].id]
    assert accounts[0].owner_id in user_ids
    assert _creations(accounts[0].id) == 1


def test_an_existing_account_is_returned_unchanged_and_not_audited_again(app, world):
    firm = factories.firm()
    created = services.ensure_account(firm, world.bank_a.id, user=world.rm_a, owner=world.rm_a)
    db.session.commit()
    again = services.ensure_account(firm, world.bank_a.id, user=world.rm_a2, owner=world.rm_a2)
    db.session.commit()
    assert again.id == created.id and again.owner_id == world.rm_a.id
    assert len(_accounts(firm.id, world.bank_a.id)) == 1
    assert _creations(created.id) == 1


def test_a_new_account_takes_the_owners_branch_and_is_audited_with_its_values(app, world):
    firm = factories.firm()
    account = services.ensure_account(firm, world.bank_a.id, user=world.rm_a, owner=world.rm_a)
    db.session.commit()
    assert (account.bank_id, account.firm_id, account.owner_id) == (world.bank_a.id, firm.id, world.rm_a.id)
    assert account.branch_id == world.rm_a.org_id and world.rm_a.org.is_branch
    assert account.created_at is not None and account.modified_at is not None
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.object_type == "firm_account",
                                                          AuditEntry.object_id == account.id))
    assert entry.action == "create" and entry.user_id == world.rm_a.id and entry.bank_id == world.bank_a.id
    assert f'"owner_id": {world.rm_a.id}' in entry.after
