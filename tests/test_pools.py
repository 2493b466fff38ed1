"""Securitisation pools: membership rules, the summary, the XLSX composition; IP-pledge deals list."""
import io
from datetime import date

import openpyxl
import pytest

from crm.core.scoping import scope_for, scoped
from crm.credit import services
from crm.credit.models import CreditApplication, Stage
from crm.extensions import db
from tests import factories
from tests import factories_credit as fc

WAN = 1_000_000
TODAY = date(2026, 11, 26)


def _pool(user, name="知产证券化2026-1", issue_on=None):
    with scoped(scope_for(user)):
        return services.create_pool(user, name, "深圳证券交易所", issue_on)


def _approved(world, user=None, area="longgang", **kw):
    a = fc.application(world, user, firm=factories.firm(area_code=area), **kw)
    fc.advance(a, user or world.rm_a, Stage.APPROVED)
    return a


def test_pool_takes_approved_ip_pledge_loans_and_sums_them(app, world):
    pool = _pool(world.rm_a)
    a = _approved(world, area="futian")
    b = _approved(world, area="baoan")
    c = fc.application(world, firm=a.firm)
    fc.advance(c, world.rm_a, Stage.DISBURSED)
    with scoped(scope_for(world.rm_a)):
        assert {x.id for x in services.pool_candidates(pool)} == {a.id, b.id, c.id}
        for loan in (a, b, c):
            services.add_to_pool(pool, loan, world.rm_a)
    s = services.pool_summary(pool)
    assert (s.size_fen, s.loan_count, s.firm_count, s.areas) == (1500 * WAN, 3, 2, ["宝安区", "福田区"])


@pytest.mark.parametrize("setup, code", [
    ("open", "not_approved"),
    ("declined", "not_approved"),
    ("repaid", "not_approved"),
    ("working_capital", "not_ip"),
    ("other_bank", "other_bank"),
])
def test_pool_refuses_loans_that_do_not_qualify(app, world, setup, code):
    pool = _pool(world.rm_a)
    if setup == "open":
        loan = fc.application(world)
    elif setup == "declined":
        loan = fc.application(world)
        fc.advance(loan, world.rm_a, Stage.UNDER_REVIEW)
        fc.advance(loan, world.rm_a, Stage.DECLINED)
    elif setup == "repaid":
        loan = fc.application(world)
        fc.advance(loan, world.rm_a, Stage.REPAID)
    elif setup == "working_capital":
        loan = _approved(world, product="working_capital")
    else:
        loan = _approved(world, world.rm_b)
    with pytest.raises(services.CreditError) as exc, scoped(scope_for(world.rm_a)):
        services.add_to_pool(pool, loan, world.rm_a)
    assert exc.value.code == code
    assert loan.pool_id is None


def test_a_loan_is_in_at_most_one_pool(app, world):
    first, second = _pool(world.rm_a), _pool(world.rm_a, "知产证券化2026-2")
    a = _approved(world)
    with scoped(scope_for(world.rm_a)):
        services.add_to_pool(first, a, world.rm_a)
        for pool, code in ((first, "in_pool"), (second, "in_other_pool")):
            with pytest.raises(services.CreditError) as exc:
                services.add_to_pool(pool, a, world.rm_a)
            assert exc.value.code == code
        assert a.id not in {x.id for x in services.pool_candidates(second)}
        services.remove_from_pool(first, a, world.rm_a, today=TODAY)
        services.add_to_pool(second, a, world.rm_a)
    assert a.pool_id == second.id


def test_an_issued_pool_cannot_change(app, world):
    pool = _pool(world.rm_a, issue_on=date(2026, 6, 30))
    a = _approved(world)
    with scoped(scope_for(world.rm_a)):
        services.add_to_pool(pool, a, world.rm_a)
        with pytest.raises(services.CreditError) as exc:
            services.remove_from_pool(pool, a, world.rm_a, today=TODAY)
    assert exc.value.code == "issued"


def test_pool_names_are_unique_per_bank(app, world):
    _pool(world.rm_a)
    with pytest.raises(services.CreditError) as exc:
        _pool(world.rm_a)
    assert exc.value.code == "duplicate"
    assert _pool(world.rm_b).bank_id == world.bank_b.id


def test_pool_pages_add_loans_and_export_the_composition(app, world, login_as):
    a = _approved(world, area="futian")
    fc.pledge(a, world.rm_a, patent_no="ZL202010123456.2")
    db.session.commit()
    client = login_as(world.rm_a)
    resp = client.post("/credit/pools", data={"name": "知产证券化2026-1", "exchange": "深圳证券交易所",
                                              "issue_on": "2026-12-20"})
    assert resp.status_code == 302
    pool_url = resp.headers["Location"]
    assert client.post(pool_url, data={"application_id": a.id}).status_code == 302
    assert db.session.get(CreditApplication, a.id).pool_id is not None
    html = client.get(pool_url).get_data(as_text=True)
    assert "500.00 万元" in html and "福田区" in html
    resp = client.get(pool_url + "/export.xlsx")
    assert resp.status_code == 200 and resp.mimetype.endswith("spreadsheetml.sheet")
    wb = openpyxl.load_workbook(io.BytesIO(resp.data))
    rows = list(wb["入池明细"].iter_rows(values_only=True))
    assert rows[0][:3] == ("序号", "企业名称", "统一社会信用代码")
    assert rows[1][1] == a.firm.name and rows[1][2] == a.firm.credit_code
    assert "ZL202010123456.2" in rows[1][13]
    summary = dict(wb["概况"].iter_rows(min_row=2, values_only=True))
    assert summary["贷款笔数"] == 1 and summary["所属区"] == "福田区"


# ---------------------------------------------------------------------------------------------------------
# the IP-pledge deals list (the dashboard links here with GET filters)
# ---------------------------------------------------------------------------------------------------------


def test_bureau_sees_every_banks_deals_and_a_bank_only_its_own(app, world, login_as):
    a = _approved(world, area="futian")
    b = _approved(world, world.rm_b, area="baoan")
    wc = _approved(world, product="working_capital")
    pending = fc.application(world, firm=factories.firm())
    db.session.commit()
    client = login_as(world.bureau_user)
    html = client.get("/credit/ip-pledges").get_data(as_text=True)
    for x in (a, b):
        assert f"/credit/{x.id}\"" in html
    for x in (wc, pending):
        assert f"/credit/{x.id}\"" not in html
    assert 'data-testid="deal-count">2<' in html and "1,000.00 万元" in html
    html = client.get(f"/credit/ip-pledges?bank={world.bank_b.id}").get_data(as_text=True)
    assert f"/credit/{b.id}\"" in html and f"/credit/{a.id}\"" not in html
    client.post("/logout")
    client = login_as(world.rm_b)
    html = client.get(f"/credit/ip-pledges?bank={world.bank_a.id}").get_data(as_text=True)
    assert f"/credit/{a.id}\"" not in html and 'data-testid="deal-count">0<' in html
    html = client.get("/credit/ip-pledges").get_data(as_text=True)
    assert f"/credit/{b.id}\"" in html and f"/credit/{a.id}\"" not in html


@pytest.mark.parametrize("query, expect", [
    ("campaign=ZCR2026", {"a", "b"}),
    ("campaign=NOPE", {"a", "b"}),
    ("area=futian", {"a"}),
    ("industry=biomedicine", {"b"}),
    ("from=2026-03-02&to=2026-03-02", {"a"}),
    ("from=2026-04-01", {"b"}),
    ("stage=disbursed", {"b"}),
    ("product=ip_pledge&stage=approved", {"a", "b"}),
    ("from=garbage", {"a", "b"}),
])
def test_deal_filters(app, world, login_as, query, expect):
    a = fc.application(world, firm=factories.firm(area_code="futian"), accepted_on=date(2026, 3, 2))
    fc.advance(a, world.rm_a, Stage.APPROVED, on=date(2026, 3, 2))
    b = fc.application(world, world.rm_b, firm=factories.firm(area_code="baoan", industry="biomedicine"),
                       accepted_on=date(2026, 4, 7))
    fc.advance(b, world.rm_b, Stage.DISBURSED, on=date(2026, 4, 8))
    db.session.commit()
    client = login_as(world.bureau_user)
    html = client.get(f"/credit/ip-pledges?{query}").get_data(as_text=True)
    found = {name for name, x in (("a", a), ("b", b)) if f"/credit/{x.id}\"" in html}
    assert found == expect


def test_deals_export_is_scoped(app, world, login_as):
    a = _approved(world)
    _approved(world, world.rm_b)
    db.session.commit()
    client = login_as(world.rm_a)
    resp = client.get("/credit/ip-pledges?format=xlsx")
    rows = list(openpyxl.load_workbook(io.BytesIO(resp.data)).active.iter_rows(values_only=True))
    assert len(rows) == 2 and rows[1][2] == a.firm.name
