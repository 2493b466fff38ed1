"""A bureau user filters the dashboard, follows the IP-pledge number to its records, downloads the monthly report."""
from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from openpyxl import load_workbook

from crm.extensions import db
from tests.e2e.conftest import screenshot, sign_in
from tests.factories import World
from tests.factories_dashboard import build_known_campaign

pytestmark = pytest.mark.e2e


@pytest.fixture
def seeded(live_server):
    with live_server.app.app_context():
        build_known_campaign(World.build())
        db.session.commit()
    return live_server


def test_bureau_filters_follows_the_ip_pledge_number_and_downloads_the_report(seeded, page):
    url = seeded.url
    sign_in(page, url, "bureau")
    page.goto(f"{url}/dashboard/?campaign=ZCR2026")
    page.wait_for_selector("[data-chart=funnel] svg")
    assert page.get_by_test_id("metric-ip_pledge_deals").inner_text() == "3"
    screenshot(page, "dashboard")

    # One industry and one bank, chosen in the filter bar.
    page.select_option("#f-industry", "ai")
    page.select_option("#f-bank", "SZRCB")
    page.get_by_test_id("apply-filters").click()
    page.wait_for_url("**industry=ai**")
    query = parse_qs(urlsplit(page.url).query)
    assert (query["industry"], query["bank"]) == (["ai"], ["SZRCB"])
    assert (page.locator("#f-industry").input_value(), page.locator("#f-bank").input_value()) == ("ai", "SZRCB")
    number = page.get_by_test_id("metric-ip_pledge_deals")
    shown = number.inner_text()
    assert shown == "2"  # A1 and A5: bank A's IP-pledge deals with firms in AI (A10 is bank B's, low-carbon)

    # The number leads to its list, filtered the same way, with as many rows as the number said.
    number.click()
    page.wait_for_url("**/dashboard/records?metric=ip_pledge_deals**")
    query = parse_qs(urlsplit(page.url).query)
    assert (query["industry"], query["bank"]) == (["ai"], ["SZRCB"])
    rows = page.locator("[data-testid=records] tbody tr[data-record]")
    assert rows.count() == int(shown)
    assert page.get_by_test_id("record-count").get_attribute("data-count") == shown
    assert page.get_by_test_id("metric-value").get_attribute("data-value") == shown
    assert set(rows.locator("td:nth-child(2)").all_inner_texts()) == {"深圳农商银行"}
    assert sorted(rows.locator("td:nth-child(1)").all_inner_texts()) == ["深圳市芯智科技有限公司", "深圳市龙岗算力有限公司"]

    # Back on the dashboard, the progress report keeps the filters; the bureau picks the month of March.
    page.go_back()
    page.get_by_test_id("report-link").click()
    page.wait_for_url("**/dashboard/report?**")
    assert page.locator("h1").first.inner_text().endswith("工作进展报告")
    page.select_option("#r-period", "month")
    page.fill("#r-month", "2026-03")
    page.locator("[data-report-form] button[type=submit]").click()
    page.wait_for_url("**month=2026-03**")
    with page.expect_download() as info:
        page.get_by_test_id("report-xlsx").click()
    download = info.value
    assert download.suggested_filename.endswith(".xlsx")
    with open(download.path(), "rb") as fh:
        wb = load_workbook(io.BytesIO(fh.read()))
    assert wb.sheetnames == ["汇总", "按银行", "按产业", "按街道", "知识产权质押业务", "活动及签到"]
    summary = {r[0]: r for r in wb["汇总"].iter_rows(min_row=2, values_only=True) if r[0]}
    assert summary["知识产权质押笔数"][2:4] == (1, 1)  # A1 (F2, AI, bank A) approved 2026-03-19; A5 is August's
    assert summary["报告期间"][1] == "2026年3月"
    deals = list(wb["知识产权质押业务"].iter_rows(min_row=2, values_only=True))
    assert [d[0] for d in deals] == ["深圳市芯智科技有限公司"]  # A1, decided in March
    assert [r[0] for r in wb["按银行"].iter_rows(min_row=2, values_only=True)] == ["深圳农商银行"]
    assert page.problems == []


def test_the_dashboard_fits_a_phone(seeded, phone_page):
    sign_in(phone_page, seeded.url, "mgr_a")
    phone_page.goto(f"{seeded.url}/dashboard/?campaign=ZCR2026")
    phone_page.wait_for_selector("[data-chart=funnel] svg")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= phone_page.viewport_size["width"], f"page scrolls sideways: {width}px"
    assert phone_page.get_by_test_id("metric-visits").inner_text() == "4"
    assert phone_page.problems == []
