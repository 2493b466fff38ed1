"""A campaign built only through the five ledger importers gives its true numbers everywhere.

The campaign (``tests/factories_ledgers.py``, whose docstring is the cast list) is imported from XLSX and CSV files
with ``crm import``; every metric of ``crm/dashboard/definitions.py`` is then read back from the dashboard page
(its ``data-testid``/``data-metric`` attributes), ``GET /api/v1/metrics`` with a personal token, ``crm metrics
--json`` and the XLSX progress report, for all banks (the bureau) and for one bank (a bank user), unfiltered and
with a date range. The expected numbers below are worked out by hand from the ledgers, not by the code under test.
"""
from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from crm.auth.models import User
from crm.core.scoping import scope_for, scoped
from crm.dashboard.definitions import METRIC_BY_KEY, METRIC_KEYS
from crm.dashboard.metrics import MetricFilter, compute_metrics
from crm.extensions import db
from crm.imports.framework import ImportContext, get_ledger, run_import
from tests.factories_ledgers import (
    CAMPAIGN, IMPORT_COUNTS, LEDGER_FILES, RANGE, build_campaign_from_ledgers, write_ledgers,
)

D = Decimal
ALL, ALL_R, A, A_R, B, B_R = range(6)
#: the six views: (who counts, date range)
VIEWS = {ALL: ("all", None), ALL_R: ("all", RANGE), A: ("A", None), A_R: ("A", RANGE), B: ("B", None),
         B_R: ("B", RANGE)}

# Every number by hand. Columns: all banks, all banks in RANGE (03-01..06-30), bank A, bank A in RANGE, bank B,
# bank B in RANGE. Names (F1.., V1.., EA1.., A1..) are those of the cast list in tests/factories_ledgers.py.
EXPECTED_TABLE = {
    #                                  all    all-R    A      A-R     B      B-R
    "firms_reached":                   (8,     7,      5,     4,      4,     4),
    # all: F1 F2 F5 F6 F7 F8 visited, F3 and F9 checked in (F4 only registered; F6's check-in at the cancelled
    # EB1 does not count, but F6 was visited by bank A). Range: F8's only visit V4 is on 07-15. A: F1 F2 F6 F8
    # visited + F3 at EA1; A-R: without F8. B: F1 F5 F7 visited + F9 at EB2 (not F6: EB1 was cancelled);
    # B-R: the same four (F7's EB3 check-in is after the range, but V7 on 05-12 is inside it).
    "firms_visited":                   (6,     5,      4,     3,      3,     3),
    # all: F1 (by both banks, counted once) F2 F5 F6 F7 F8; range: not F8. A: F1 F2 F6 F8; B: F1 F5 F7.
    "visits":                          (7,     6,      4,     3,      3,     3),
    # V1..V7; V4 (07-15) is after the range. A: V1..V4; B: V5..V7, all inside the range.
    "events_held":                     (3,     2,      1,     1,      2,     1),
    # EA1, EB2, EB3 held (EA2 planned, EB1 cancelled); EB3 (07-10) is after the range.
    "firm_attendances":                (6,     5,      2,     2,      4,     3),
    # EA1: F3 (two people, one pair) and F2 = 2 (F4 never checked in); EB2: F1 F5 F9 = 3; EB3: F7 = 1.
    "staff_participating":             (5,     5,      3,     3,      2,     2),
    # A: rm_a (V1 V2 V4, EA1), rm_a2 (V3, companion on V2), mgr_a (EA1 staff); the bureau companion is not
    # bank staff; rm_a3 only staffs the planned EA2. B: rm_b (V5 V6, EB2), mgr_b (V7, EB3); rm_b2 only staffs
    # the cancelled EB1. In the range every one of them still has a visit or EA1/EB2.
    "credit_firms":                    (5,     4,      3,     2,      2,     2),
    # approved: A1 F2, A7 F2 (the firm once), A6 F1, A5 F8 (decided 07-08: outside the range), A4 F7, A10 F5.
    # Not A2 (declined), A3 (withdrawn), A8 (under review).
    "credit_firms_high_tech":          (3,     2,      3,     2,      0,     0),
    # valid certificate on the decision day: F2 (2025-06-01), F1 (2024-01-10), F8 (2025-06-01; A5 is after the
    # range). F7's certificate of 2023-03-01 expired 2026-02-28, before A4's decision; F5 has none.
    "credit_amount_wan":               (D(8900), D(3900), D(6100), D(1100), D(2800), D(2800)),
    # A1 800 + A7 100 + A6 200 + A5 5000 = 6100 (range: 1100); A4 2500 + A10 300 = 2800.
    "ip_pledge_deals":                 (3,     2,      2,     1,      1,     1),
    # IP-pledge approvals A1, A5 (after the range), A10.
    "ip_pledge_amount_wan":            (D(6100), D(1100), D(5800), D(800), D(300), D(300)),
    # A1 800 + A5 5000 (bank A), A10 300 (bank B).
    "ip_pledge_registered_amount_wan": (D(4850), D(850), D(4600), D(600), D(250), D(250)),
    # registered secured amounts: A1 600, A5 4000 (its deal is decided after the range), A10 250 (its second
    # patent was never registered).
    "disbursed_firms":                 (2,     1,      1,     1,      1,     0),
    # A1 disbursed 03-30 (F2), A4 disbursed 07-05 (F7, after the range).
    "disbursed_amount_wan":            (D(3300), D(800), D(800), D(800), D(2500), D(0)),
    # A1 800 + A4 2500.
    "first_loan_firms":                (2,     2,      1,     1,      1,     1),
    # first-loan approvals: A1 (F2, bank A), A10 (F5, bank B), both inside the range.
    "sla_hit_rate":                    (D("0.7143"), D("0.6667"), D("0.7500"), D("0.6667"), D("0.6667"),
                                        D("0.6667")),
    # decided = approved or declined. Hits: A1 (1000万, day 3 of 3), A7 (day 3 of 3 across Labour Day), A5
    # (3000万+1 fen, day 10 of 10), A2 (1000万+1 fen, day 5 of 5 across Qingming), A10 (day 3 of 3). Misses: A6
    # (day 4 of 3: the make-up Saturday 05-09 is a working day), A4 (3000万, day 6 of 5). all 5/7; range without
    # A5 4/6; A: A1 A5 A7 of A1 A5 A6 A7 = 3/4; A-R 2/3; B: A2 A10 of A2 A4 A10 = 2/3.
    "avg_discount_bp":                 (D("5.34"), D("12.18"), D("2.95"), D("16.36"), D("10.54"), D("10.54")),
    # Σ approved×BP ÷ Σ approved: A1 800×20, A5 5000×0 (a recorded zero weighs in), A6 200×5, A7 100×10,
    # A4 2500×10, A10 300×15. all 47500/8900 = 5.337; range 47500/3900 = 12.179; A 18000/6100 = 2.951;
    # A-R 18000/1100 = 16.364; B 29500/2800 = 10.536.
}
assert set(EXPECTED_TABLE) == set(METRIC_KEYS)


def expected(view: int) -> dict:
    return {key: values[view] for key, values in EXPECTED_TABLE.items()}


def same(value, want) -> bool:
    """``value`` as shown (text, number or None) equals ``want`` exactly (no float: compared as decimals)."""
    if value is None or value == "":
        return want is None
    return Decimal(str(value)) == Decimal(want)


def mismatches(shown: dict, want: dict) -> dict:
    return {k: (shown.get(k), want[k]) for k in want if not same(shown.get(k), want[k])}


def query(view: int, *, bank_code: str | None = None) -> dict:
    args = {"campaign": CAMPAIGN}
    if bank_code:
        args["bank"] = bank_code
    if VIEWS[view][1]:
        args["from"], args["to"] = (d.isoformat() for d in VIEWS[view][1])
    return args


def qs(args: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in args.items())


BANK_CODE = {"A": "SZRCB", "B": "ICBC-SZ"}
#: (view, username) pairs read as that user; the bureau for all banks, a bank user for their bank
CASES = [(ALL, "bureau"), (ALL_R, "bureau"), (A, "rm_a"), (A_R, "mgr_a"), (B, "rm_b"), (B_R, "mgr_b")]
#: the per-bank views inside an all-banks view
PER_BANK = {ALL: {"A": A, "B": B}, ALL_R: {"A": A_R, "B": B_R}}


@pytest.fixture
def campaign(world, runner, tmp_path):
    return build_campaign_from_ledgers(world, runner, tmp_path / "ledgers")


# --- the imports themselves ------------------------------------------------------------------------------------


def test_every_ledger_imports_cleanly_and_importing_them_all_again_changes_nothing(campaign, world):
    for (kind, name, *_rest), (created, updated, unchanged), output in zip(LEDGER_FILES, IMPORT_COUNTS,
                                                                           campaign.outputs):
        assert f"新增 {created}，更新 {updated}，无变化 {unchanged}，拒绝 0" in output, (name, output)
    before = compute_metrics(MetricFilter(world.campaign.id)).totals
    users = {u.username: u for u in db.session.scalars(sa.select(User))}
    # Again, the same files in the same order (EB1 is set planned, then cancelled again: one update each way).
    for kind, path, username in write_ledgers(campaign.folder / "again"):
        with scoped(scope_for(users[username])):
            report = run_import(get_ledger(kind), path.read_bytes(), path.name,
                                ImportContext(user=users[username], campaign=world.campaign), commit=True)
        assert report.ok and report.committed, report.text_report()
        moved_eb1 = kind == "events" and "工行" in path.name
        assert report.created == 0 and report.updated == (1 if moved_eb1 else 0), (path.name, report.summary_line())
    db.session.expire_all()
    assert compute_metrics(MetricFilter(world.campaign.id)).totals == before
    assert mismatches({k: before[k] for k in METRIC_KEYS}, expected(ALL)) == {}


# --- the page ---------------------------------------------------------------------------------------------------


class DashboardParser(HTMLParser):
    """Headline cards (``data-testid="metric-KEY"``) and breakdown cells (``data-breakdown`` → ``data-key``)."""

    def __init__(self):
        super().__init__()
        self.cards: dict[str, str] = {}
        self.card_links: dict[str, str] = {}
        self.breakdowns: dict[str, dict[str, dict[str, str]]] = {}
        self._dim = None
        self._row = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "data-breakdown" in a:
            self._dim = a["data-breakdown"]
            self.breakdowns[self._dim] = {}
        elif tag == "tr" and self._dim and "data-key" in a:
            self._row = a["data-key"]
            self.breakdowns[self._dim][self._row] = {}
        elif "data-metric" in a and "data-value" in a:
            testid = a.get("data-testid") or ""
            if testid == f"metric-{a['data-metric']}":
                self.cards[a["data-metric"]] = a["data-value"]
                self.card_links[a["data-metric"]] = a.get("href")
            elif self._dim and self._row is not None:
                self.breakdowns[self._dim][self._row][a["data-metric"]] = a["data-value"]

    def handle_endtag(self, tag):
        if tag == "table":
            self._dim = self._row = None
        elif tag == "tr":
            self._row = None


def read_page(client, args: dict) -> DashboardParser:
    resp = client.get(f"/dashboard/?{qs(args)}")
    assert resp.status_code == 200
    parser = DashboardParser()
    parser.feed(resp.get_data(as_text=True))
    return parser


def test_the_dashboard_page_shows_every_number_exactly(campaign, world, client, login_as):
    bank_ids = {str(world.bank_a.id): "A", str(world.bank_b.id): "B"}
    for view, username in CASES:
        login_as(username)
        page = read_page(client, {**query(view), "tab": "bank"})  # the breakdown by bank is the open table
        assert set(page.breakdowns) == {"bank"}
        assert set(page.cards) == set(METRIC_KEYS)
        assert mismatches(page.cards, expected(view)) == {}, (username, view)
        who = VIEWS[view][0]
        if who == "all":  # the bank breakdown holds each bank's own numbers
            rows = {bank_ids[k]: v for k, v in page.breakdowns["bank"].items()}
            assert set(rows) == {"A", "B"}
            for bank, bank_view in PER_BANK[view].items():
                assert mismatches(rows[bank], expected(bank_view)) == {}, (view, bank)
            for bank, bank_view in PER_BANK[view].items():  # the bureau narrowing to one bank
                narrowed = read_page(client, query(view, bank_code=BANK_CODE[bank]))
                assert mismatches(narrowed.cards, expected(bank_view)) == {}, (view, bank)
        else:  # a bank user sees their own bank only, whatever bank the URL asks for
            assert {bank_ids[k] for k in page.breakdowns["bank"]} == {who}
            other = read_page(client, query(view, bank_code=BANK_CODE["B" if who == "A" else "A"]))
            assert other.cards["visits"] == "0" and other.cards["credit_amount_wan"] == "0"
        client.post("/logout")


# --- the API and the command line -------------------------------------------------------------------------------

TOKEN = re.compile(r'<code[^>]*data-token>(crm_[A-Za-z0-9_\-]+)</code>')


def new_token(client, login_as, username: str) -> str:
    login_as(username)
    resp = client.post("/profile/tokens", data={"name": "台账核对"})
    assert resp.status_code == 200
    client.post("/logout")
    return TOKEN.search(resp.get_data(as_text=True)).group(1)


def assert_json_types(doc: dict) -> None:
    """Counts are integers; amounts, the rate and the discount are exact decimal strings (never floats)."""
    for key in METRIC_KEYS:
        if METRIC_BY_KEY[key].kind == "count":
            assert type(doc[key]) is int, key
        else:
            assert doc[key] is None or isinstance(doc[key], str), key


def test_the_metrics_api_and_the_command_line_return_every_number_exactly(campaign, client, login_as, runner):
    tokens = {}
    for view, username in CASES:
        raw = tokens.setdefault(username, new_token(client, login_as, username))
        resp = client.get(f"/api/v1/metrics?{qs(query(view))}", headers={"Authorization": f"Bearer {raw}"})
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        doc = resp.get_json()
        assert_json_types(doc)
        assert mismatches(doc, expected(view)) == {}, (username, view)
        who = VIEWS[view][0]
        if who == "all":
            assert set(doc["by_bank"]) == {"SZRCB", "ICBC-SZ"}
            for bank, bank_view in PER_BANK[view].items():
                assert mismatches(doc["by_bank"][BANK_CODE[bank]], expected(bank_view)) == {}, (view, bank)
                narrowed = client.get(f"/api/v1/metrics?{qs(query(view, bank_code=BANK_CODE[bank]))}",
                                      headers={"Authorization": f"Bearer {raw}"}).get_json()
                assert mismatches(narrowed, expected(bank_view)) == {}, (view, bank)
        else:
            assert set(doc["by_bank"]) == {BANK_CODE[who]}

    # The command line prints the same numbers (it runs with the system scope: one bank is --bank).
    for view, _username in CASES:
        who = VIEWS[view][0]
        args = ["crm", "metrics", "--campaign", CAMPAIGN]
        if who != "all":
            args += ["--bank", BANK_CODE[who]]
        if VIEWS[view][1]:
            args += ["--from", VIEWS[view][1][0].isoformat(), "--to", VIEWS[view][1][1].isoformat()]
        result = runner.invoke(args=[*args, "--json"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert_json_types(doc)
        assert mismatches(doc, expected(view)) == {}, args
        for bank, bank_view in PER_BANK.get(view, {}).items():
            assert mismatches(doc["by_bank"][BANK_CODE[bank]], expected(bank_view)) == {}, (args, bank)


# --- the XLSX progress report -----------------------------------------------------------------------------------


def summary_sheet(wb) -> dict[str, tuple]:
    ws = wb["汇总"]
    assert [c.value for c in ws[1]][:4] == ["指标", "单位", "累计（自活动开始）", "本期新增"]
    labels = {METRIC_BY_KEY[k].label("zh"): k for k in METRIC_KEYS}
    return {labels[r[0]]: (r[2], r[3]) for r in ws.iter_rows(min_row=2, values_only=True) if r[0] in labels}


def bank_sheet(wb) -> dict[str, dict[str, tuple]]:
    """bank name → metric → (cumulative, in the period)."""
    ws = wb["按银行"]
    header = [c.value for c in ws[1]]
    out = {}
    for row in ws.iter_rows(min_row=2, values_only=True):
        cells = dict(zip(header, row))
        out[row[0]] = {k: (cells[f"{METRIC_BY_KEY[k].label('zh')}（累计）"],
                           cells[f"{METRIC_BY_KEY[k].label('zh')}（本期）"]) for k in METRIC_KEYS}
    return out


def test_the_progress_workbook_holds_every_number_exactly(campaign, client, login_as):
    names = {"A": "深圳农商银行", "B": "工商银行深圳分行"}
    for view, username in CASES:
        login_as(username)
        start, end = VIEWS[view][1] or (campaign.world.campaign.start_on, campaign.world.campaign.end_on)
        resp = client.get(f"/dashboard/report.xlsx?campaign={CAMPAIGN}&period=custom&from={start}&to={end}")
        assert resp.status_code == 200 and resp.mimetype.endswith("spreadsheetml.sheet")
        wb = load_workbook(io.BytesIO(resp.data))
        rows = summary_sheet(wb)
        assert set(rows) == set(METRIC_KEYS)
        # Nothing happens before 03-01, so "cumulative since the launch" to the period's end and "new in the
        # period" both equal the period's numbers.
        assert mismatches({k: v[0] for k, v in rows.items()}, expected(view)) == {}, (username, view, "累计")
        assert mismatches({k: v[1] for k, v in rows.items()}, expected(view)) == {}, (username, view, "本期")
        banks = bank_sheet(wb)
        who = VIEWS[view][0]
        per_bank = PER_BANK.get(view, {who: view})
        assert set(banks) == {names[b] for b in per_bank}
        for bank, bank_view in per_bank.items():
            for column in (0, 1):
                shown = {k: v[column] for k, v in banks[names[bank]].items()}
                assert mismatches(shown, expected(bank_view)) == {}, (username, view, bank, column)
        if view == ALL_R:
            assert_deals_and_events_of_the_range(wb)
        client.post("/logout")

    # The monthly report for May: cumulative to 05-31 (nothing happens in June but A8's and A5's acceptance and
    # the planned EA2, so it equals the all-banks RANGE column) and new in May = cumulative to 05-31 minus
    # cumulative to 04-30 (a firm counted before May is not new), the rate and the discount being May's own.
    new_in_may = {
        "firms_reached": 2,  # F7 (V7 05-12) and F9 (EB2 05-08); F1 and F5 at EB2 were reached in March/April
        "firms_visited": 1,  # F7; F1..F6 visited before May
        "visits": 1,  # V7
        "events_held": 1,  # EB2
        "firm_attendances": 3,  # EB2: F1, F5, F9
        "staff_participating": 1,  # mgr_b (V7); the other four took part before May
        "credit_firms": 2,  # F1 (A6) and F5 (A10); F2's A7 is its second approval (A1 in March)
        "credit_firms_high_tech": 1,  # F1
        "credit_amount_wan": D(600),  # A7 100 + A6 200 + A10 300
        "ip_pledge_deals": 1,  # A10
        "ip_pledge_amount_wan": D(300),
        "ip_pledge_registered_amount_wan": D(250),
        "disbursed_firms": 0,  # A1 in March, A4 in July
        "disbursed_amount_wan": D(0),
        "first_loan_firms": 1,  # F5 (A10); F2 was counted in March
        "sla_hit_rate": D("0.6667"),  # decided in May: A7 hit, A6 miss, A10 hit
        "avg_discount_bp": D("10.83"),  # (100×10 + 200×5 + 300×15) / 600 = 10.833
    }
    login_as("bureau")
    resp = client.get(f"/dashboard/report.xlsx?campaign={CAMPAIGN}&period=month&month=2026-05")
    rows = summary_sheet(load_workbook(io.BytesIO(resp.data)))
    assert mismatches({k: v[0] for k, v in rows.items()}, expected(ALL_R)) == {}
    assert mismatches({k: v[1] for k, v in rows.items()}, new_in_may) == {}


def assert_deals_and_events_of_the_range(wb) -> None:
    """The bureau's workbook for RANGE lists its IP-pledge deals and every event dated in it."""
    deals = {r[0]: r for r in wb["知识产权质押业务"].iter_rows(min_row=2, values_only=True)}
    # A1 (F2, approved 800, registered 600) and A10 (F5, approved 300, registered 250); A5 is decided in July.
    assert set(deals) == {"深圳市芯智科技有限公司", "深圳市福田低碳科技有限公司"}
    assert (same(deals["深圳市芯智科技有限公司"][7], 800), same(deals["深圳市芯智科技有限公司"][8], 600)) == (True, True)
    assert (same(deals["深圳市福田低碳科技有限公司"][7], 300), same(deals["深圳市福田低碳科技有限公司"][8], 250)) \
        == (True, True)
    events = {r[0]: (r[3], r[5], r[6], r[7]) for r in wb["活动及签到"].iter_rows(min_row=2, values_only=True)}
    # (status, registered, people checked in, firms checked in); EB3 (07-10) is after the range.
    assert events == {
        "EA1": ("已举办", 4, 3, 2),  # F3 twice, F2; F4 registered only
        "EA2": ("筹备中", 0, 0, 0),
        "EB1": ("已取消", 1, 1, 1),  # F6 checked in before the cancellation: listed, never counted
        "EB2": ("已举办", 3, 3, 3),  # F1, F5 and F9 (F9 created by the attendance ledger)
    }


# --- scoping: each bank user's numbers are the records they can open --------------------------------------------

BANK_USERS = {"rm_a": "A", "rm_a2": "A", "mgr_a": "A", "rm_a3": "A", "rm_b": "B", "mgr_b": "B", "rm_b2": "B"}


class RecordsParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.count = None
        self.rows: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("data-testid") == "record-count":
            self.count = int(a["data-count"])
        if tag == "tr" and "data-record" in a:
            self.rows.append(a["data-record"])
        if tag == "a" and a.get("data-testid") == "record-link":
            self.links.append(a["href"])


def test_each_bank_users_numbers_are_the_records_that_user_can_open(campaign, client, login_as):
    opened: dict[str, int] = {}
    for username, bank in BANK_USERS.items():
        login_as(username)
        page = read_page(client, {"campaign": CAMPAIGN})
        assert mismatches(page.cards, expected(A if bank == "A" else B)) == {}, username
        for key, link in page.card_links.items():
            assert parse_qs(urlsplit(link).query).get("bank") is None  # nothing to widen: the scope does it
            listing = RecordsParser()
            listing.feed(client.get(link).get_data(as_text=True))
            assert listing.count == len(listing.rows), (username, key)
            if METRIC_BY_KEY[key].kind == "count":
                assert listing.count == int(page.cards[key]), (username, key)
            if key != "staff_participating":  # users have no record page; every other row links to its record
                assert len(listing.links) == len(listing.rows), (username, key)
            for href in listing.links:
                if (username, href) not in opened:
                    opened[(username, href)] = client.get(href).status_code
                assert opened[(username, href)] == 200, (username, key, href)
        client.post("/logout")
    # The links lead to the other bank's records too when opened by that bank: a bank user gets 404 for them.
    a_links = {href for (user, href) in opened if user == "rm_a" and not href.startswith("/firms/")}
    b_links = {href for (user, href) in opened if user == "rm_b" and not href.startswith("/firms/")}
    assert a_links and b_links and not a_links & b_links
    login_as("rm_b")
    assert {client.get(href).status_code for href in a_links} == {404}
