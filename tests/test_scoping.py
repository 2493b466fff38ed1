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
