"""An RM records an IP-pledge deal end to end; the bureau sees it in the IP-pledge list."""
import pytest

from tests.e2e.conftest import screenshot, sign_out
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.e2e


def _settle(page):
    """Let the page finish loading (its favicon too) before the next click navigates away."""
    page.wait_for_load_state("networkidle")


def _submit(page):
    _settle(page)
    page.locator("main form [type=submit]").last.click()


def sign_in(page, base_url, username):
    """tests.e2e.conftest.sign_in, letting the sign-in page finish loading before submitting."""
    page.goto(f"{base_url}/login")
    _settle(page)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("form[action$='/login'] button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def _click(page, selector):
    _settle(page)
    page.click(selector)


def test_rm_records_an_ip_pledge_deal_and_the_bureau_sees_it(live_server, live_world, page):
    base = live_server.url
    with live_server.app.app_context():
        from crm.extensions import db
        from crm.firms.models import Firm

        firm = db.session.get(Firm, live_world.ids["firm"])
        firm_name, credit_code = firm.name, firm.credit_code

    sign_in(page, base, "rm_a")
    _settle(page)
    page.goto(f"{base}/credit/")
    _click(page, "[data-testid=new-application]")
    page.fill("input[name=firm]", credit_code)
    page.select_option("select[name=product_code]", "ip_pledge")
    page.fill("input[name=requested_wan]", "800")
    page.fill("input[name=requested_term_months]", "12")
    page.fill("input[name=accepted_on]", "2026-03-02")
    page.fill("input[name=guarantee]", "专利质押")
    page.check("input[name=is_first_loan]")
    page.check("input[name=in_risk_pool]")
    _click(page, "form[data-testid=application-form] [type=submit]")
    page.wait_for_selector("[data-testid=sla-card]")
    assert page.locator("[data-testid=sla-deadline]").inner_text() == "2026-03-05"
    detail_url = page.url

    for number, title in (("ZL202010123456.2", "一种无人机电池管理方法"), ("CN202020123456.8", "一种低空飞行器支架")):
        _click(page, "[data-testid=add-pledge]")
        page.fill("input[name=patent_no]", number)
        page.fill("input[name=title]", title)
        page.fill("input[name=granted_on]", "2021-05-07")
        page.fill("input[name=expires_on]", "2040-06-01")
        page.fill("input[name=owner_name]", firm_name)
        _submit(page)
        page.wait_for_url(f"{detail_url}#pledges")
    assert page.locator("[data-testid=pledges] tbody tr").count() == 2

    _click(page, "[data-testid=add-valuation]")
    page.fill("input[name=valuer]", "深圳市某资产评估有限公司")
    page.fill("input[name=requested_on]", "2026-03-02")
    page.fill("input[name=completed_on]", "2026-03-04")
    page.fill("input[name=amount_wan]", "1200")
    _submit(page)
    page.wait_for_url(f"{detail_url}#valuations")
    assert "2 个工作日" in page.locator("[data-testid=valuations]").inner_text()
    assert "达标" in page.locator("[data-testid=valuations]").inner_text()

    _click(page, "[data-testid=move-under_review]")
    page.fill("input[name=changed_on]", "2026-03-03")
    _submit(page)
    page.wait_for_url(detail_url)
    _click(page, "[data-testid=move-approved]")
    page.fill("input[name=changed_on]", "2026-03-04")
    page.fill("input[name=approved_wan]", "800")
    page.fill("input[name=rate_pct]", "3.45")
    page.fill("input[name=discount_bp]", "15")
    page.fill("input[name=term_months]", "12")
    _submit(page)
    page.wait_for_url(detail_url)
    assert page.locator("[data-testid=discount]").inner_text() == "15 BP"

    _click(page, "[data-testid=move-contracted]")
    page.fill("input[name=changed_on]", "2026-03-05")
    _submit(page)
    page.wait_for_url(detail_url)
    for i in range(2):
        _settle(page)
        page.locator("[data-testid=register-pledge]").nth(i).click()
        page.fill("input[name=registration_no]", f"Y202644000012{i}")
        page.fill("input[name=registered_on]", "2026-03-06")
        page.fill("input[name=secured_wan]", "400")
        _submit(page)
        page.wait_for_url(f"{detail_url}#pledges")
    assert page.locator("[data-testid=registered-total]").inner_text() == "800.00"
    _click(page, "[data-testid=move-pledge_registered]")
    page.fill("input[name=changed_on]", "2026-03-06")
    _submit(page)
    page.wait_for_url(detail_url)

    assert page.locator("[data-testid=sla-card] [data-testid=sla-state]").inner_text() == "达标"
    history = page.locator("[data-testid=history]").inner_text()
    for label in ("已受理", "审查中", "审批通过", "已签约", "质押已登记"):
        assert label in history
    assert page.locator("[data-testid=stage]").first.inner_text() == "质押已登记"
    screenshot(page, "credit-application")
    _settle(page)
    sign_out(page, base)
    _settle(page)

    sign_in(page, base, "bureau")
    _settle(page)
    page.goto(f"{base}/credit/ip-pledges")
    deals = page.locator("[data-testid=deals]").inner_text()
    assert firm_name in deals and "ZL202010123456.2" in deals
    assert page.locator("[data-testid=deal-count]").inner_text() == "1"
    assert page.locator("[data-testid=deal-amount]").inner_text() == "800.00 万元"
    _settle(page)
    assert page.problems == []


def test_credit_pages_fit_a_phone(live_server, live_world, phone_page):
    with live_server.app.app_context():
        from types import SimpleNamespace

        from crm.auth.models import User
        from crm.credit.models import Stage
        from crm.extensions import db
        from crm.firms.models import Firm
        from crm.orgs.models import Campaign
        from tests import factories_credit as fc

        ids = live_world.ids
        world = SimpleNamespace(rm_a=db.session.get(User, ids["rm_a"]), firm=db.session.get(Firm, ids["firm"]),
                                campaign=db.session.get(Campaign, ids["campaign"]))
        a = fc.application(world)
        fc.pledge(a, world.rm_a)
        fc.advance(a, world.rm_a, Stage.CONTRACTED)
        db.session.commit()
        app_id = a.id
    sign_in(phone_page, live_server.url, "rm_a")
    for path in ("/credit/", "/credit/new", "/credit/ip-pledges", "/credit/sla", "/credit/pools", f"/credit/{app_id}",
                 f"/credit/{app_id}/move/pledge_registered", f"/credit/{app_id}/pledges/new"):
        _settle(phone_page)
        phone_page.goto(f"{live_server.url}{path}")
        width = phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} scrolls sideways: {width}px"
    _settle(phone_page)
    assert phone_page.problems == []
