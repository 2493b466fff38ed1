"""One mechanism scopes bank-owned rows: a bank user neither lists nor opens another bank's records."""
from datetime import date

import pytest
import sqlalchemy as sa
from werkzeug.exceptions import NotFound

from crm.core.scoping import NOBODY, SYSTEM, get_or_404, scope_for, scoped
from crm.credit.models import CreditApplication
from crm.extensions import db
from crm.firms.models import Contact, Firm
from crm.visits.models import Visit
from tests import factories


@pytest.fixture
def records(world):
    va = factories.visit(world.firm, world.rm_a, world.campaign)
    vb = factories.visit(world.firm, world.rm_b, world.campaign)
    ca = factories.contact(world.firm, world.bank_a, name="甲方联系人", mobile="13800138000")
    cb = factories.contact(world.firm, world.bank_b, name="乙方联系人", mobile="13900139000")
    apps = {}
    for key, rm in (("a", world.rm_a), ("b", world.rm_b)):
        app_ = CreditApplication(bank_id=rm.bank_id, rm_id=rm.id, campaign_id=world.campaign.id, firm_id=world.firm.id,
                                 product_code="ip_pledge", requested_fen=5_000_000_00, accepted_on=date(2026, 3, 2))
        db.session.add(app_)
        apps[key] = app_
    db.session.commit()
    return {"visit": (va.id, vb.id), "contact": (ca.id, cb.id), "credit": (apps["a"].id, apps["b"].id)}


MODELS = {"visit": Visit, "contact": Contact, "credit": CreditApplication}


@pytest.mark.parametrize("kind", MODELS)
def test_bank_user_lists_only_own_bank_rows(world, records, kind):
    own, other = records[kind]
    with scoped(scope_for(world.rm_b)):
        db.session.expunge_all()
        ids = db.session.scalars(sa.select(MODELS[kind].id)).all()
    assert ids == [other]


@pytest.mark.parametrize("kind", MODELS)
def test_other_bank_record_is_404_like_a_missing_one(app, world, records, kind):
    own, other = records[kind]
    with app.test_request_context(), scoped(scope_for(world.rm_b)):
        db.session.expunge_all()
        assert get_or_404(MODELS[kind], other).id == other
        with pytest.raises(NotFound):
            get_or_404(MODELS[kind], own)
        with pytest.raises(NotFound):
            get_or_404(MODELS[kind], 987654)


@pytest.mark.parametrize("kind", MODELS)
def test_bulk_update_and_delete_cannot_touch_another_bank(world, records, kind):
    own, _other = records[kind]
    model = MODELS[kind]
    with scoped(scope_for(world.rm_b)):
        db.session.expunge_all()
        res = db.session.execute(sa.delete(model).where(model.id == own))
        assert res.rowcount == 0
    db.session.rollback()
    with scoped(SYSTEM):
        assert db.session.get(model, own) is not None


def test_bureau_and_system_see_every_bank(world, records):
    with scoped(scope_for(world.bureau_user)):
        db.session.expunge_all()
        assert len(db.session.scalars(sa.select(Visit)).all()) == 2


def test_request_without_user_sees_no_bank_rows(app, world, records):
    with app.test_request_context(), scoped(NOBODY):
        db.session.expunge_all()
        assert db.session.scalars(sa.select(Contact)).all() == []
        # the shared firm master record stays visible
        assert db.session.scalars(sa.select(Firm)).all() != []


def test_relationship_loads_are_scoped_too(world, records):
    firm_id = world.firm.id
    with scoped(scope_for(world.rm_a)):
        db.session.expunge_all()
        firm = db.session.get(Firm, firm_id)
        assert [c.name for c in firm.contacts] == ["甲方联系人"]


def test_events_and_registrations_are_scoped_by_a_probe_of_their_own_organisers(world):
    """A bank sees the events its bank or a branch organises, and their registrations. The condition is probed per
    row through the organisers' (event_id, org_id) key: as an ``IN (subquery)`` it made SQLite list every organiser
    row of the campaign to show one firm's few registrations (about 1 ms a statement at scale 1, twice a firm
    page)."""
    from crm.events.models import Event, Registration
    from tests import factories_events as fe

    by_branch = fe.event([world.branch_a], world.campaign)
    by_both = fe.event([world.bank_b, world.branch_a], world.campaign)
    by_b = fe.event([world.bank_b], world.campaign)
    by_nobody = fe.event([], world.campaign)
    regs = {e.id: fe.registration(e, world.firm).id for e in (by_branch, by_both, by_b, by_nobody)}
    by_branch, by_both, by_b = (e.id for e in (by_branch, by_both, by_b))
    db.session.commit()
    firm_id, users = world.firm.id, (world.rm_a, world.rm_b)
    scopes = [scope_for(u) for u in users]
    seen = []

    def _registration_statements(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT registration.id"):
            seen.append((statement, parameters))

    for scope, events in zip(scopes, ({by_branch, by_both}, {by_both, by_b})):
        with scoped(scope):
            db.session.expunge_all()
            assert set(db.session.scalars(sa.select(Event.id))) == events
            sa.event.listen(db.engine, "before_cursor_execute", _registration_statements)
            try:
                got = db.session.scalars(sa.select(Registration).where(Registration.firm_id == firm_id)).all()
            finally:
                sa.event.remove(db.engine, "before_cursor_execute", _registration_statements)
            assert {r.id for r in got} == {regs[e] for e in events}
    with scoped(SYSTEM):
        assert len(db.session.scalars(sa.select(Registration)).all()) == 4
    if db.engine.dialect.name != "sqlite":
        return
    statement, parameters = seen[-1]
    plan = [row[-1] for row in db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                        parameters)]
    db.session.rollback()
    assert not any(line.startswith("SCAN event_organiser") for line in plan), plan
    assert any("event_organiser" in line and "(event_id=?" in line for line in plan), plan


def test_the_events_condition_looks_up_its_own_organisers_whatever_the_statement_joins(world):
    """The condition's organisers are its own (aliased) rows: a statement that joins ``event_organiser`` or
    ``organisation`` itself keeps every row of the events the bank sees. Unaliased, the condition correlated to the
    statement's own organiser rows: an event of two banks lost its other organiser, a registration whose preferred
    bank was not the viewer's vanished, and a join from the organisers raised an error."""
    from crm.events.models import Event, Registration, event_organiser
    from crm.orgs.models import Organisation
    from tests import factories_events as fe

    both = fe.event([world.bank_a, world.bank_b], world.campaign)
    reg = fe.registration(both, world.firm, preferred_bank_id=world.bank_b.id)
    db.session.commit()
    ids = {"event": both.id, "reg": reg.id, "a": world.bank_a.id, "b": world.bank_b.id}
    scope = scope_for(world.rm_a)
    with scoped(scope):
        db.session.expunge_all()
        organisers = db.session.execute(sa.select(Event.id, Organisation.id).join(Event.organisers)
                                        .order_by(Organisation.id)).all()
        assert organisers == [(ids["event"], ids["a"]), (ids["event"], ids["b"])]
        preferred = db.session.execute(sa.select(Registration.id, Organisation.id).join(
            Organisation, Organisation.id == Registration.preferred_bank_id)).all()
        assert preferred == [(ids["reg"], ids["b"])]
        from_organisers = db.session.execute(
            sa.select(Organisation.id, Event.id).select_from(Organisation)
            .join(event_organiser, event_organiser.c.org_id == Organisation.id)
            .join(Event, Event.id == event_organiser.c.event_id).order_by(Organisation.id)).all()
        assert from_organisers == [(ids["a"], ids["event"]), (ids["b"], ids["event"])]
