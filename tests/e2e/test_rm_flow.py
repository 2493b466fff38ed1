"""An RM on a 375-px phone: finds a firm by a name fragment, logs a visit with a need and a follow-up through
the type-ahead picker, sees it on the firm's timeline and in "my follow-ups", and marks the follow-up done."""
from datetime import timedelta

import pytest

from crm.core.formatting import today_local
from tests.e2e.conftest import screenshot, sign_in

pytestmark = pytest.mark.e2e


def _no_sideways_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"page scrolls sideways: {width}px"


def test_rm_logs_a_visit_on_a_phone_and_closes_the_follow_up(live_server, live_world, phone_page):
    page, base = phone_page, live_server.url
    sign_in(page, base, "rm_a")

    # find the firm by a fragment of its name
    page.goto(f"{base}/firms/")
    page.fill("input[name=q]", "共享")
    page.click("[data-testid=firm-search]")
    page.wait_for_url("**/firms/?q=*")
    firm_link = page.locator("[data-testid=firm-list] a", has_text="深圳市共享科技有限公司")
    assert firm_link.count() == 1
    _no_sideways_scroll(page)

    # log a visit: the firm through the type-ahead, a financing need, a next step with a due date
    page.goto(f"{base}/visits/new")
    assert not page.locator("[data-testid=firm-search-plain]").is_visible()  # JS replaced the plain search
    page.click(".ts-wrapper.single .ts-control")
    page.keyboard.type("共享")
    page.locator(".ts-dropdown .option", has_text="深圳市共享科技有限公司").click()
    page.fill("textarea[name=summary]", "企业计划扩产，需要流动资金，手机端登记")
    page.select_option("select[name=willingness_code]", "strong")
    page.click("[data-testid=need-section] summary")
    page.fill("input[name=need_amount_wan]", "300")
    page.fill("input[name=need_purpose]", "购置设备")
    page.click("[data-testid=next-step-section] summary")
    page.fill("input[name=next_step]", "送达设备更新贷款方案")
    due = today_local() + timedelta(days=5)
    page.fill("input[name=next_step_due_on]", due.isoformat())
    _no_sideways_scroll(page)
    assert page.locator("[data-testid=save-visit]").is_visible()
    page.click("[data-testid=save-visit]")
    page.wait_for_url("**/firms/*")

    # the visit and the follow-up are on the firm's timeline
    timeline = page.locator("[data-testid=timeline]")
    assert "企业计划扩产，需要流动资金，手机端登记" in timeline.inner_text()
    assert "送达设备更新贷款方案" in timeline.inner_text()
    assert page.locator("[data-testid=account-card]").inner_text().count("300.00") == 1
    _no_sideways_scroll(page)
    screenshot(page, "firm_page")

    # ... and in my follow-ups, where it is marked done with an outcome
    page.goto(f"{base}/visits/followups/mine")
    item = page.locator(".followup-item", has_text="送达设备更新贷款方案")
    assert item.count() == 1
    item.locator("summary").click()
    item.locator("textarea[name=outcome]").fill("已送达，企业将准备材料")
    item.locator("[data-testid=mark-done]").click()
    page.wait_for_url("**/visits/followups/mine")
    assert page.locator(".followup-item", has_text="送达设备更新贷款方案").count() == 0
    assert page.locator(".alert-success").count() == 1
    _no_sideways_scroll(page)

    page.goto(f"{base}/firms/{live_world.ids['firm']}")
    assert "已送达，企业将准备材料" in page.locator("[data-testid=timeline]").inner_text()
    assert page.problems == []


def test_rm_hands_a_follow_up_over_to_a_colleague_on_a_phone(live_server, live_world, phone_page):
    """From "my follow-ups", the hand-over page lists the bank's colleagues once; saving it comes back to the list,
    where the follow-up is no longer the RM's."""
    from crm.auth.models import User
    from crm.extensions import db
    from crm.firms.models import Firm
    from tests import factories

    with live_server.app.app_context():
        factories.follow_up(db.session.get(Firm, live_world.ids["firm"]), db.session.get(User, live_world.ids["rm_a"]),
                            today_local() + timedelta(days=2), title="转交给同事的事项")
        db.session.commit()
    page, base = phone_page, live_server.url
    sign_in(page, base, "rm_a")
    page.goto(f"{base}/visits/followups/mine")
    item = page.locator(".followup-item", has_text="转交给同事的事项")
    item.locator("summary").click()
    item.locator("[data-testid=hand-over]").click()
    page.wait_for_url(lambda url: "/reassign" in url)
    _no_sideways_scroll(page)
    page.select_option("select[name=assignee_id]", str(live_world.ids["rm_a2"]))
    page.locator("[data-testid=reassign-form] button[type=submit]").click()
    page.wait_for_url("**/visits/followups/mine")
    assert page.locator(".alert-success").count() == 1
    assert page.locator(".followup-item", has_text="转交给同事的事项").count() == 0
    assert page.problems == []
