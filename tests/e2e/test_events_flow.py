"""Browser: an organiser on a phone runs a whole event, from invitations to the attendee lists."""
from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from crm.core.models import Street
from crm.extensions import db
from tests import factories
from tests.e2e.conftest import screenshot, sign_in
from tests.factories import World

pytestmark = pytest.mark.e2e


def _seed(app):
    """The standard world plus 21 AI firms in 坂田街道 (one already visited) and 3 others, with bank A contacts."""
    with app.app_context():
        w = World.build()
        bantian = db.session.scalar(sa.select(Street).where(Street.name == "坂田街道"))
        for i in range(21):
            f = factories.firm(f"坂田智能科技{i:02d}有限公司", industry="ai", street_id=bantian.id)
            factories.contact(f, w.bank_a, name=f"来宾{i:02d}", mobile=f"1380013{i:04d}")
            if i == 20:
                factories.visit(f, w.rm_a, w.campaign)  # reached already: the filter leaves it out
        for i in range(3):
            f = factories.firm(f"布吉生物医药{i}有限公司", industry="biomedicine")
            factories.contact(f, w.bank_a, name=f"其他{i}", mobile=f"1370013{i:04d}")
        db.session.commit()


def test_organiser_runs_an_event_on_a_phone(live_server, phone_page, tmp_path):
    page, base = phone_page, live_server.url
    _seed(live_server.app)
    sign_in(page, base, "rm_a")

    # 1. create the event
    page.goto(f"{base}/events/new")
    page.fill("input[name=title]", "坂田人工智能银企对接会")
    page.fill("input[name=held_on]", "2026-06-18")
    page.fill("input[name=start_time]", "14:30")
    page.fill("input[name=venue]", "天安云谷")
    page.click("[data-testid=save-event]")
    page.wait_for_url(re.compile(r"/events/\d+$"))
    event_url = page.url
    assert page.get_by_test_id("event-code").inner_text().startswith("EV-2026-")

    # 2. invite the AI firms of 坂田街道 never reached by this campaign
    page.click("[data-testid=invite-link]")
    page.select_option("select[name=industry]", "ai")
    page.select_option("select[name=area]", "longgang")
    page.select_option("select[name=street_id]", label="坂田街道")
    page.check("input[name=never_reached]")
    page.click("[data-testid=find-firms]")
    assert page.get_by_test_id("match-count").inner_text() == "20"
    page.check("[data-testid=select-all]")
    page.click("[data-testid=invite-submit]")
    page.wait_for_url(event_url)
    assert page.locator("[data-testid=registrations] tbody tr").count() == 20

    # 3. the check-in desk: 16 taps, one undo, one walk-in
    page.goto(event_url + "/desk")
    count = page.get_by_test_id("count-checked-in")
    page.fill("[data-testid=desk-search]", "0007")  # by the mobile's last digits
    page.wait_for_selector(".desk-list[data-q='0007']")
    assert page.locator("[data-testid=desk-row]").count() == 1
    page.click("[data-testid=desk-row] [data-testid=checkin]")
    expect(count).to_have_text("1")
    page.fill("[data-testid=desk-search]", "")
    page.wait_for_selector(".desk-list[data-q='']")
    for n in range(2, 17):
        page.locator("[data-testid=checkin]").first.click()
        expect(count).to_have_text(str(n))
    undone = page.locator("[data-testid=desk-row]:has([data-testid=undo])").first
    undone_name = undone.get_by_test_id("desk-name").inner_text()
    undone.get_by_test_id("undo").click()
    expect(count).to_have_text("15")
    page.click("[data-testid=walk-in] summary")
    page.fill("[data-testid=walk-in] input[name=firm_name]", "布吉生物医药0有限公司")
    page.fill("[data-testid=walk-in] input[name=person_name]", "现场来宾")
    page.fill("[data-testid=walk-in] input[name=person_title]", "董事长")
    page.fill("[data-testid=walk-in] input[name=mobile]", "13600009999")
    page.click("[data-testid=walk-in-submit]")
    page.wait_for_url(re.compile(r"/desk$"))
    assert count.inner_text() == "16"
    assert page.get_by_test_id("count-registered").inner_text() == "20"
    assert page.get_by_test_id("count-walk-ins").inner_text() == "1"
    checked_names = set(page.locator("[data-testid=desk-row].is-checked-in [data-testid=desk-name]").all_inner_texts())
    assert len(checked_names) == 16 and undone_name not in checked_names and "现场来宾" in checked_names
    screenshot(page, "checkin_desk")

    # 4. download the lists of those who came
    page.goto(event_url + "/export")
    page.check("[data-testid=attendance-attended]")
    with page.expect_download() as xlsx_info:
        page.click("[data-testid=download-xlsx]")
    xlsx_path = tmp_path / "list.xlsx"
    xlsx_info.value.save_as(xlsx_path)
    assert xlsx_info.value.suggested_filename.endswith("参会名单（已签到）_2026-06-18.xlsx")
    ws = openpyxl.load_workbook(xlsx_path).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    name_col = rows[0].index("姓名")
    assert sorted(r[name_col] for r in rows[1:]) == sorted(checked_names)

    page.goto(event_url + "/export")
    page.check("[data-testid=attendance-attended]")
    with page.expect_download() as csv_info:
        page.click("[data-testid=download-csv]")
    csv_path = tmp_path / "list.csv"
    csv_info.value.save_as(csv_path)
    data = csv_path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    crow = list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))
    assert sorted(r[crow[0].index("姓名")] for r in crow[1:]) == sorted(checked_names)
    assert page.problems == []
