"""IP assets and pledges: patent numbers, and every refusal CNIPA would make, with clear Chinese messages."""
from datetime import date

import pytest
import sqlalchemy as sa

from crm.core.scoping import scope_for, scoped
from crm.credit import services
from crm.credit.models import IpAsset, PatentKind, Pledge, PledgeStatus, Stage
from crm.extensions import db
from tests import factories
from tests import factories_credit as fc

WAN = 1_000_000
TODAY = date(2026, 11, 26)


@pytest.mark.parametrize("typed, canonical, kind", [
    ("ZL202010123456.2", "202010123456.2", PatentKind.INVENTION),
    ("CN202020123456.8", "202020123456.8", PatentKind.UTILITY_MODEL),
    ("zl 2020 3 0123456.3", "202030123456.3", PatentKind.DESIGN),
    ("2020801234560", "202080123456.0", PatentKind.PCT_INVENTION),
])
def test_patent_number_is_normalised_and_its_type_derived(app, world, typed, canonical, kind):
    a = fc.application(world)
    p = fc.pledge(a, world.rm_a, patent_no=typed)
    assert (p.ip_asset.patent_no, p.ip_asset.kind) == (canonical, kind)
    assert services.display_patent_no(p.ip_asset.patent_no) == "ZL" + canonical


@pytest.mark.parametrize("typed", ["ZL202010123456.7", "202040123456.1", "CN112345678A", ""])
def test_invalid_patent_numbers_are_refused(app, world, typed):
    a = fc.application(world)
    with pytest.raises(services.CreditError) as exc:
        fc.pledge(a, world.rm_a, patent_no=typed)
    assert exc.value.code == "patent_no"


@pytest.mark.parametrize("changes, code", [
    (dict(legal_status=services.LEGAL_PENDING), "not_granted"),
    (dict(granted_on=None), "not_granted"),
    (dict(granted_on=date(2026, 12, 1)), "not_granted"),
    (dict(legal_status=services.LEGAL_LAPSED), "lapsed"),
    (dict(expires_on=None), "expiry_missing"),
    (dict(expires_on=date(2026, 11, 1)), "expired"),
    (dict(expires_on=date(2027, 3, 1)), "patent_expires"),  # the requested 12-month term ends 2027-03-02
    (dict(owner_relation="hk_affiliate", licence_no=""), "licence"),
])
def test_pledge_refusals(app, world, changes, code):
    a = fc.application(world, accepted_on=date(2026, 3, 2), term=12)
    with pytest.raises(services.CreditError) as exc:
        fc.pledge(a, world.rm_a, **changes)
    assert exc.value.code == code
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Pledge)) == 0


def test_patent_expiring_on_the_maturity_day_is_accepted(app, world):
    a = fc.application(world, accepted_on=date(2026, 3, 2), term=12)
    assert fc.pledge(a, world.rm_a, expires_on=date(2027, 3, 2)).status == PledgeStatus.ACTIVE


def test_cross_border_pledge_keeps_owner_and_licence(app, world):
    a = fc.application(world)
    p = fc.pledge(a, world.rm_a, owner_name="香港某科技控股有限公司", owner_relation="hk_affiliate",
                  licence_no="LIC-2025-018", licence_note="独占许可，期限至2035年")
    assert (p.owner_relation, p.licence_no, p.ip_asset.owner_name) == ("hk_affiliate", "LIC-2025-018",
                                                                        "香港某科技控股有限公司")


def test_approval_is_refused_when_a_pledged_patent_expires_before_maturity(app, world):
    a = fc.application(world, accepted_on=date(2026, 3, 2), term=None)
    fc.pledge(a, world.rm_a, expires_on=date(2028, 1, 1))
    fc.advance(a, world.rm_a, Stage.UNDER_REVIEW)
    decision = services.Decision(approved_fen=100 * WAN, rate_bp=300, discount_bp=10, term_months=24)
    with pytest.raises(services.CreditError) as exc, scoped(scope_for(world.rm_a)):
        services.move(a, Stage.APPROVED, world.rm_a, date(2026, 3, 3), decision=decision, today=TODAY)
    assert exc.value.code == "patent_expires"
    decision.term_months = 18
    with scoped(scope_for(world.rm_a)):
        services.move(a, Stage.APPROVED, world.rm_a, date(2026, 3, 3), decision=decision, today=TODAY)
    assert a.stage == Stage.APPROVED


def test_a_patent_under_an_active_pledge_is_refused_even_at_another_bank(app, world):
    no = fc.patent_no()
    a = fc.application(world)
    fc.pledge(a, world.rm_a, patent_no=no)
    same_bank = fc.application(world, firm=factories.firm())
    with pytest.raises(services.CreditError) as exc:
        fc.pledge(same_bank, world.rm_a, patent_no=no)
    assert exc.value.code == "already_pledged"
    other_bank = fc.application(world, world.rm_b, firm=factories.firm())
    with pytest.raises(services.CreditError) as exc:
        fc.pledge(other_bank, world.rm_b, patent_no=no)
    assert exc.value.code == "already_pledged"
    assert "another" not in str(exc.value) and world.bank_a.name not in str(exc.value)


def test_the_database_index_decides_a_race_and_the_user_gets_the_message(app, world, monkeypatch):
    no = fc.patent_no()
    a = fc.application(world)
    fc.pledge(a, world.rm_a, patent_no=no)
    b = fc.application(world, world.rm_b, firm=factories.firm())
    db.session.commit()
    monkeypatch.setattr(services, "_patent_is_actively_pledged", lambda asset_id: False)  # both checks passed
    with pytest.raises(services.CreditError) as exc:
        fc.pledge(b, world.rm_b, patent_no=no)
    assert exc.value.code == "already_pledged"
    db.session.flush()  # the session is still usable
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Pledge)) == 1
    assert db.session.get(Pledge, a.pledges[0].id).application_id == a.id


def test_the_database_refuses_two_active_pledges_of_one_patent(app, world):
    a = fc.application(world)
    p = fc.pledge(a, world.rm_a)
    db.session.commit()
    db.session.add(Pledge(bank_id=world.bank_b.id, application_id=a.id, ip_asset_id=p.ip_asset_id,
                          owner_relation="self"))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_a_released_pledge_frees_the_patent(app, world):
    no = fc.patent_no()
    a = fc.application(world)
    fc.pledge(a, world.rm_a, patent_no=no)
    fc.advance(a, world.rm_a, Stage.WITHDRAWN)
    assert a.pledges[0].status == PledgeStatus.RELEASED and a.pledges[0].released_on == a.accepted_on
    b = fc.application(world, world.rm_b, firm=factories.firm())
    assert fc.pledge(b, world.rm_b, patent_no=no).status == PledgeStatus.ACTIVE
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IpAsset)) == 1


def test_pledges_only_on_ip_pledge_products(app, world):
    a = fc.application(world, product="working_capital")
    with pytest.raises(services.CreditError) as exc:
        fc.pledge(a, world.rm_a)
    assert exc.value.code == "not_ip_product"


def test_registration_records_cnipa_number_date_and_secured_amount(app, world):
    a = fc.application(world, accepted_on=date(2026, 3, 2))
    p = fc.pledge(a, world.rm_a)
    with scoped(scope_for(world.rm_a)):
        with pytest.raises(services.CreditError) as exc:
            services.register_pledge(p, world.rm_a, "Y2026440000123", date(2026, 3, 1), 300 * WAN, today=TODAY)
        assert exc.value.code == "registered_early"
        services.register_pledge(p, world.rm_a, "Y2026440000123", date(2026, 3, 9), 300 * WAN, today=TODAY)
    assert (p.registration_no, p.registered_on, p.secured_fen) == ("Y2026440000123", date(2026, 3, 9), 300 * WAN)
    with pytest.raises(services.CreditError) as exc, scoped(scope_for(world.rm_a)):
        services.release_pledge(p, world.rm_a)
    assert exc.value.code == "in_force"


def test_pledge_refusals_show_chinese_messages_in_the_form(app, world, login_as):
    a = fc.application(world, accepted_on=date(2026, 3, 2))
    db.session.commit()
    client = login_as(world.rm_a)
    form = {"patent_no": "ZL202010123456.2", "title": "一种方法", "granted_on": "2021-05-07", "expires_on": "2040-06-01",
            "legal_status": "valid", "owner_name": "x", "owner_relation": "self"}
    html = client.post(f"/credit/{a.id}/pledges/new", data={**form, "legal_status": "pending"}).get_data(as_text=True)
    assert "该专利尚未授权" in html
    html = client.post(f"/credit/{a.id}/pledges/new", data={**form, "patent_no": "ZL202010123456.7"}).get_data(
        as_text=True)
    assert "校验位不正确" in html
    html = client.post(f"/credit/{a.id}/pledges/new", data={**form, "expires_on": "2027-01-01"}).get_data(as_text=True)
    assert "早于贷款到期日 2027-03-02" in html
    assert client.post(f"/credit/{a.id}/pledges/new", data=form).status_code == 302
    b = fc.application(world, world.rm_b, firm=factories.firm())
    db.session.commit()
    client.post("/logout")
    client = login_as(world.rm_b)
    html = client.post(f"/credit/{b.id}/pledges/new", data=form).get_data(as_text=True)
    assert "该专利已存在有效质押" in html


def test_valuation_requires_completion_data_and_order(app, world, login_as):
    a = fc.application(world, accepted_on=date(2026, 3, 2))
    with scoped(scope_for(world.rm_a)):
        for args, code in (((date(2026, 3, 5), date(2026, 3, 4), 100 * WAN), "completed_early"),
                           ((date(2026, 3, 5), date(2026, 3, 6), None), "valuation_amount"),
                           ((date(2026, 11, 27), None, None), "future_date")):
            with pytest.raises(services.CreditError) as exc:
                services.add_valuation(a, world.rm_a, "评估所", *args, today=TODAY)
            assert exc.value.code == code
        v = services.add_valuation(a, world.rm_a, "评估所", date(2026, 3, 5), today=TODAY)
        services.complete_valuation(v, world.rm_a, date(2026, 3, 9), 900 * WAN, today=TODAY)
    assert (v.completed_on, v.amount_fen) == (date(2026, 3, 9), 900 * WAN)


def test_lengthening_the_requested_term_past_a_pledged_patents_expiry_is_refused(app, world):
    a = fc.application(world, accepted_on=date(2026, 3, 2), term=12)
    fc.pledge(a, world.rm_a, expires_on=date(2028, 1, 1))
    data = services.ApplicationData(firm=a.firm, product_code="ip_pledge", requested_fen=a.requested_fen,
                                    accepted_on=a.accepted_on, campaign_id=a.campaign_id, requested_term_months=24)
    with pytest.raises(services.CreditError) as exc, scoped(scope_for(world.rm_a)):
        services.update_application(a, world.rm_a, data, today=TODAY)
    assert exc.value.code == "patent_expires"
    data.requested_term_months = 18
    with scoped(scope_for(world.rm_a)):
        services.update_application(a, world.rm_a, data, today=TODAY)
    assert a.requested_term_months == 18
