"""The tenant criteria are cached lambda criteria: one compiled statement serves every bank, and the bank id is a
bound parameter taken afresh from each scope, so a statement compiled for one bank never returns another's rows."""
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import aliased

from crm.core.scoping import scope_for, scoped
from crm.events.models import Event, Registration
from crm.extensions import db
from crm.firms.models import Contact, Firm
from crm.visits.models import Visit
from tests import factories
from tests import factories_events as fe


@pytest.fixture
def rows(world):
    """Per bank: one visit, one contact, one event organised by its branch with one registration."""
    out = {}
    for key, rm, bank, branch in (("a", world.rm_a, world.bank_a, world.branch_a),
                                  ("b", world.rm_b, world.bank_b, world.branch_b)):
        v = factories.visit(world.firm, rm, world.campaign, visited_on=date(2026, 3, 2))
        c = factories.contact(world.firm, bank, name=f"联系人{key}", mobile=f"1380013800{'1' if key == 'a' else '2'}")
        ev = fe.event([branch], world.campaign, title=f"活动{key}")
        reg = fe.registration(ev, world.firm, name=f"报名{key}")
        out[key] = {"visit": v.id, "contact": c.id, "event": ev.id, "registration": reg.id}
    out["scopes"] = {"a": scope_for(world.rm_a), "b": scope_for(world.rm_b)}
    out["firm"] = world.firm.id
    db.session.commit()
    return out


def _statements():
    """Statements touching tenant models plainly, through an alias, a join and a correlated EXISTS criterion."""
    va = aliased(Visit)
    return {
        "visit": sa.select(Visit.id).order_by(Visit.id),
        "contact": sa.select(Contact.id).order_by(Contact.id),
        "visit_alias": sa.select(va.id).order_by(va.id),
        "registration_join_event": sa.select(Registration.id, Event.id).join(Event).order_by(Registration.id),
        "event": sa.select(Event.id).order_by(Event.id),
    }


def _expected(rows, bank):
    r = rows[bank]
    return {"visit": [r["visit"]], "contact": [r["contact"]], "visit_alias": [r["visit"]],
            "registration_join_event": [(r["registration"], r["event"])], "event": [r["event"]]}


def test_one_compiled_statement_serves_every_bank_with_its_own_rows(app, rows):
    cache: dict = {}
    for bank in ("a", "b", "a", "b"):
        with scoped(rows["scopes"][bank]):
            db.session.expunge_all()
            for name, stmt in _statements().items():
                got = db.session.execute(stmt, execution_options={"compiled_cache": cache}).all()
                got = [tuple(r) if len(r) > 1 else r[0] for r in got]
                assert got == _expected(rows, bank)[name], (bank, name)
        if bank == "a":
            size_after_first_bank = len(cache)
    # the second bank reused the statements compiled for the first: the bank id is a parameter, not SQL text
    assert len(cache) == size_after_first_bank == len(_statements())


def test_get_lazy_loads_and_bulk_writes_stay_scoped_when_banks_alternate(app, rows):
    firm_id = rows["firm"]
    for bank, other in (("a", "b"), ("b", "a"), ("a", "b")):
        with scoped(rows["scopes"][bank]):
            db.session.expunge_all()
            assert db.session.get(Visit, rows[bank]["visit"]) is not None
            assert db.session.get(Visit, rows[other]["visit"]) is None
            firm = db.session.get(Firm, firm_id)
            assert [c.id for c in firm.contacts] == [rows[bank]["contact"]]
            ev = db.session.get(Event, rows[bank]["event"])
            assert [r.id for r in ev.registrations] == [rows[bank]["registration"]]
            res = db.session.execute(sa.update(Contact).where(Contact.id.in_([rows["a"]["contact"], rows["b"]["contact"]]))
                                     .values(title=f"改{bank}").execution_options(synchronize_session=False))
            assert res.rowcount == 1
        db.session.commit()
    db.session.expunge_all()
    titles = dict(db.session.execute(sa.select(Contact.id, Contact.title)).all())
    assert titles[rows["a"]["contact"]] == "改a" and titles[rows["b"]["contact"]] == "改b"


def test_a_statement_built_once_is_scoped_once_per_bank_and_each_bank_reads_its_own_rows(app, rows):
    """Statements built once (as the firm page's are) keep one scoped form per bank: running them again for a bank
    reuses that object, and alternating banks never hands one bank the other's form."""
    from crm.core import scoping

    statements = _statements()
    kept = {}
    for bank in ("a", "b", "a", "b"):
        with scoped(rows["scopes"][bank]):
            db.session.expunge_all()
            for name, stmt in statements.items():
                got = [tuple(r) if len(r) > 1 else r[0] for r in db.session.execute(stmt).all()]
                assert got == _expected(rows, bank)[name], (bank, name)
                form = scoping._scoped_statements[stmt][rows["scopes"][bank].bank_id]
                assert kept.setdefault((bank, name), form) is form  # the same object for the same bank
    assert all(kept[("a", n)] is not kept[("b", n)] for n in statements)


def test_statements_built_for_one_request_are_not_kept(app, rows):
    import gc

    from crm.core import scoping

    with scoped(rows["scopes"]["a"]):
        gc.collect()
        before = len(scoping._scoped_statements)
        for _ in range(50):
            db.session.execute(sa.select(Visit.id).where(Visit.firm_id == rows["firm"])).all()
        gc.collect()
        assert len(scoping._scoped_statements) <= before + 1  # (the last one may still be referenced)


def test_get_or_404_reads_each_banks_row_through_one_statement_and_uses_rows_the_session_holds(app, world, rows):
    from werkzeug.exceptions import NotFound

    from crm.core.scoping import _by_key, get_or_404
    from crm.firms.views import FIRM_PAGE_LOADS_BANK

    for bank in (world.bank_a, world.bank_b):
        factories.account(world.firm, bank)
    db.session.commit()
    _by_key.cache_clear()
    for bank, other in (("a", "b"), ("b", "a"), ("a", "b")):
        with scoped(rows["scopes"][bank]):
            db.session.expunge_all()
            assert get_or_404(Visit, rows[bank]["visit"]).id == rows[bank]["visit"]
            with pytest.raises(NotFound):
                get_or_404(Visit, rows[other]["visit"])
            firm = get_or_404(Firm, rows["firm"], options=FIRM_PAGE_LOADS_BANK)
            # the joined collection holds this bank's account only
            assert {a.bank_id for a in firm.accounts} == {rows["scopes"][bank].bank_id}
    assert _by_key.cache_info().currsize == 2  # (Visit, ()) and (Firm, the page's options), whatever the bank
    with scoped(rows["scopes"]["a"]):
        db.session.expunge_all()
        visit = get_or_404(Visit, rows["a"]["visit"])
        statements = []

        def count(conn, cursor, statement, *_args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert get_or_404(Visit, rows["a"]["visit"]) is visit
            assert statements == []  # held by the session: not read again
            db.session.expire(visit)
            assert get_or_404(Visit, rows["a"]["visit"]) is visit and len(statements) == 1  # expired: read again
            visit.is_deleted = True
            db.session.flush()
            statements.clear()
            with pytest.raises(NotFound):
                get_or_404(Visit, rows["a"]["visit"])
            assert get_or_404(Visit, rows["a"]["visit"], include_deleted=True) is visit
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        db.session.rollback()
