"""Progress reports: the XLSX workbook and the Chinese print page."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from crm.dashboard.definitions import METRIC_BY_KEY, METRIC_KEYS
from crm.extensions import db
from tests.factories_dashboard import EXPECTED, RANGE, build_known_campaign

SHEETS = ["汇总", "按银行", "按产业", "按街道", "知识产权质押业务", "活动及签到"]


@pytest.fixture
def known(world):
    k = build_known_campaign(world)
    db.session.commit()
    return k


def workbook(client, query):
    resp = client.get(f"/dashboard/report.xlsx?campaign=ZCR2026&{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert resp.mimetype.endswith("spreadsheetml.sheet")
    assert "filename*=UTF-8''" in resp.headers["Content-Disposition"]
    return load_workbook(io.BytesIO(resp.data))


def summary(wb) -> dict[str, tuple]:
    ws = wb["汇总"]
    header = [c.value for c in ws[1]]
    assert header[:4] == ["指标", "单位", "累计（自活动开始）", "本期新增"]
    labels = {METRIC_BY_KEY[k].label("zh"): k for k in METRIC_KEYS}
    return {labels[r[0]]: (r[2], r[3]) for r in ws.iter_rows(min_row=2, values_only=True) if r[0] in labels}


def as_expected(value):
    """XLSX cells hold numbers; compare exactly through Decimal(str())."""
    return None if value is None else Decimal(str(value))


@pytest.mark.parametrize("user,query,who", [
    ("bureau", "", "all"), ("bureau", "bank=SZRCB", "A"), ("mgr_a", "", "A"), ("rm_b", "", "B")])
def test_the_workbook_has_every_metric_exactly(known, client, login_as, user, query, who):
    login_as(user)
    rng = "full" if who == "B" else "range"
    period = "period=custom&from=2026-01-01&to=2026-12-31" if rng == "full" else \
        f"period=custom&from={RANGE[0]}&to={RANGE[1]}"
    wb = workbook(client, f"{query}&{period}")
    assert wb.sheetnames == SHEETS
    rows = summary(wb)
    expected = EXPECTED[(who, rng)]
    assert {k: as_expected(rows[k][0]) for k in METRIC_KEYS} == {k: as_expected(expected[k]) for k in METRIC_KEYS}


def test_new_in_the_month_is_the_cumulative_difference(known, client, login_as):
    login_as("bureau")
    rows = summary(workbook(client, "period=month&month=2026-05"))
    assert rows["visits"] == (7 - 1, 1)  # V6 in May; V9 (July) is after the period
    assert rows["firms_reached"] == (6, 1)  # F7 is new in May; F1 and F5 came again
    assert rows["credit_amount_wan"][1] == 600  # A6 200 + A7 100 + A10 300
    assert rows["ip_pledge_deals"] == (2, 1)


def test_the_lists_hold_the_periods_deals_and_events(known, client, login_as):
    login_as("bureau")
    wb = workbook(client, f"period=custom&from={RANGE[0]}&to={RANGE[1]}")
    deals = list(wb["知识产权质押业务"].iter_rows(min_row=2, values_only=True))
    assert len(deals) == EXPECTED[("all", "range")]["ip_pledge_deals"]
    events = {r[0]: r for r in wb["活动及签到"].iter_rows(min_row=2, values_only=True)}
    assert set(events) == {"E1", "E2", "E3", "E4", "E5"}
    assert events["E1"][3] == "已举办" and events["E1"][5:] == (4, 3, 2)  # 4 registered, 3 people, 2 firms
    assert events["E2"][3] == "已取消"
    bank_rows = {r[0]: r for r in wb["按银行"].iter_rows(min_row=2, values_only=True)}
    assert set(bank_rows) == {"深圳农商银行", "工商银行深圳分行", "未指定"}


def test_an_industry_filter_lists_the_events_tagged_with_it(known, client, login_as):
    """Events have no firm: the industry filter keeps those tagged with the industry, whatever their status."""
    login_as("bureau")
    for industry, codes in (("ai", {"E1", "E4"}), ("low_carbon", {"E2"}), ("low_altitude", {"E5"})):
        wb = workbook(client, f"industry={industry}&period=custom&from=2026-01-01&to=2026-12-31")
        assert {r[0] for r in wb["活动及签到"].iter_rows(min_row=2, values_only=True)} == codes, industry


def test_a_bank_users_workbook_lists_only_their_bank(known, client, login_as):
    login_as("rm_b")
    wb = workbook(client, "period=custom&from=2026-01-01&to=2026-12-31")
    assert [r[0] for r in wb["按银行"].iter_rows(min_row=2, values_only=True)] == ["工商银行深圳分行"]
    assert {r[0] for r in wb["活动及签到"].iter_rows(min_row=2, values_only=True)} == {"E2", "E3"}
    names = {r[0] for r in wb["知识产权质押业务"].iter_rows(min_row=2, values_only=True)}
    assert names == {"深圳市福田低碳科技有限公司"}


def test_the_print_page_is_chinese_with_the_same_numbers(known, client, login_as):
    login_as("bureau")
    client.post("/language/en", data={"next": "/"})
    html = client.get(f"/dashboard/report?campaign=ZCR2026&period=custom&from={RANGE[0]}&to={RANGE[1]}")
    body = html.get_data(as_text=True)
    assert html.status_code == 200 and "工作进展报告" in body and "累计（自活动开始）" in body
    for key in METRIC_KEYS:
        value = EXPECTED[("all", "range")][key]
        shown = "" if value is None else format(value, "f") if isinstance(value, Decimal) else str(value)
        assert f'data-metric-row="{key}"' in body
        assert f'data-cumulative="{shown}"' in body


@pytest.mark.parametrize("query", ["period=week&date=2026-05-13", "period=month", "period=custom&from=2026-05-01&to=2026-05-31"])
def test_every_period_kind_renders_and_downloads(known, client, login_as, query):
    login_as("mgr_a")
    assert client.get(f"/dashboard/report?campaign=ZCR2026&{query}").status_code == 200
    workbook(client, query)


@pytest.mark.parametrize("query", ["period=custom&from=x&to=2026-01-01", "period=decade", "period=month&month=2026-13"])
def test_a_bad_period_is_refused_for_the_download(known, client, login_as, query):
    login_as("bureau")
    assert client.get(f"/dashboard/report.xlsx?campaign=ZCR2026&{query}").status_code == 400
    assert client.get(f"/dashboard/report?campaign=ZCR2026&{query}").status_code == 200
