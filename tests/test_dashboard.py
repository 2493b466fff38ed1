"""The dashboard page: exact numbers, every number links to its records, and scoping per viewer."""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from crm.core.scoping import scope_for, scoped
from crm.credit.models import CreditApplication
from crm.dashboard.definitions import METRIC_BY_KEY, METRIC_KEYS
from crm.dashboard.metrics import DIMENSIONS
from crm.dashboard.views import raw_value
from crm.events.models import Event
from crm.extensions import db
from crm.visits.models import Visit
from tests.factories_dashboard import EXPECTED, RANGE, build_known_campaign, reference_metrics

CARD = re.compile(r'<a href="([^"]+)" class="metric-link" data-metric="(\w+)"\s+data-value="([^"]*)" '
                  r'data-testid="metric-\2"')
LINK = re.compile(r'<a href="([^"]+)" class="metric-link" data-metric="(\w+)"\s+data-value="([^"]*)"')
ROW = re.compile(r'<tr data-record="([^"]+)"')


@pytest.fixture
def known(world):
    k = build_known_campaign(world)
    db.session.commit()
    return k


def cards(html: str) -> dict[str, tuple[str, str]]:
    """metric → (value, link) of the headline cards."""
    return {m.group(2): (m.group(3), unescape(m.group(1))) for m in CARD.finditer(html)}


def record_ids(html: str) -> list[str]:
    return ROW.findall(html)


def expected_strings(who, rng):
    return {k: raw_value(v) for k, v in EXPECTED[(who, rng)].items() if k in METRIC_KEYS}


@pytest.mark.parametrize("user,query,who,rng", [
    ("bureau", "", "all", "full"),
    ("bureau", f"from={RANGE[0]}&to={RANGE[1]}", "all", "range"),
    ("bureau", "bank=SZRCB", "A", "full"),
    ("admin", f"bank=SZRCB&from={RANGE[0]}&to={RANGE[1]}", "A", "range"),
    ("mgr_a", "", "A", "full"),
    ("rm_b", "", "B", "full"),
    ("bureau", "bank=ICBC-SZ", "B", "full"),
])
def test_the_page_shows_every_metric_exactly(known, client, login_as, user, query, who, rng):
    login_as(user)
    html = client.get(f"/dashboard/?campaign=ZCR2026&{query}").get_data(as_text=True)
    shown = {k: v for k, (v, _link) in cards(html).items()}
    assert shown == expected_strings(who, rng)


def test_every_headline_number_links_to_exactly_its_records(known, client, login_as):
    login_as("bureau")
    html = client.get(f"/dashboard/?campaign=ZCR2026&from={RANGE[0]}&to={RANGE[1]}").get_data(as_text=True)
    for key, (value, link) in cards(html).items():
        assert parse_qs(urlsplit(link).query)["from"] == [str(RANGE[0])]
        page = client.get(link)
        assert page.status_code == 200, link
        body = page.get_data(as_text=True)
        count = int(re.search(r'data-testid="record-count" data-count="(\d+)"', body).group(1))
        assert len(record_ids(body)) == count
        if METRIC_BY_KEY[key].kind == "count":
            assert count == int(value), key
        assert f'data-testid="metric-value" data-value="{value}"' in body


def test_breakdown_and_league_numbers_link_to_the_same_count(known, client, login_as):
    login_as("bureau")
    links, tabs = [], set()
    for dim in DIMENSIONS:  # each breakdown table is its own page (tab links)
        html = client.get(f"/dashboard/?campaign=ZCR2026&tab={dim}").get_data(as_text=True)
        tabs.update(re.findall(r'data-breakdown="(\w+)"', html))
        links += [(unescape(m.group(1)), m.group(2), m.group(3)) for m in LINK.finditer(html)]
    assert tabs == set(DIMENSIONS)
    links = list(dict.fromkeys(links))  # the headline cards and the league are on every tab's page
    checked = 0
    for link, key, value in links:
        query = parse_qs(urlsplit(link).query)
        narrowed = {"industry", "district", "street", "branch"} & set(query) or "bank" in query
        if METRIC_BY_KEY[key].kind != "count" or not narrowed or key not in ("ip_pledge_deals", "firms_reached",
                                                                           "visits", "credit_firms"):
            continue
        body = client.get(link).get_data(as_text=True)
        assert len(record_ids(body)) == int(value), (link, key)
        checked += 1
    assert checked >= 20


def test_the_league_table_shows_the_chosen_bank_or_branch_only(known, client, login_as, world):
    login_as("bureau")

    def league_orgs(query):
        html = client.get(f"/dashboard/?campaign=ZCR2026{query}").get_data(as_text=True)
        table = html.split('data-testid="league"')[1].split("</table>")[0]
        return re.findall(r'<tr class="[^"]*" data-org="([^"]+)"', table)

    everyone = league_orgs("")
    assert {world.bank_a.code, world.bank_b.code, world.branch_a.code} <= set(everyone)
    bank_a = league_orgs(f"&bank={world.bank_a.code}")
    assert bank_a[0] == world.bank_a.code and world.bank_b.code not in bank_a
    assert set(bank_a) == {o for o in everyone if o == world.bank_a.code or o.startswith(world.bank_a.code + "-")}
    # a branch: its own row, whose numbers link to exactly the branch's records (the bank's row would show them too)
    assert league_orgs(f"&bank={world.bank_a.code}&branch={world.branch_a.code}") == [world.branch_a.code]
    # a filter on something else than the bank keeps every bank: their numbers are real
    assert sorted(league_orgs("&industry=ai")) == sorted(everyone)


BANK_USERS = ["rm_a", "rm_a2", "mgr_a", "rm_b", "mgr_b", "rm_a3", "rm_b2"]


@pytest.mark.parametrize("username", BANK_USERS)
def test_each_bank_users_numbers_equal_the_records_they_can_open(known, client, login_as, username):
    from crm.auth.models import User
    import sqlalchemy as sa

    user = db.session.scalar(sa.select(User).where(User.username == username))
    oracle = reference_metrics(known.world.campaign, scope=scope_for(user))
    login_as(username)
    shown = cards(client.get("/dashboard/?campaign=ZCR2026").get_data(as_text=True))
    assert {k: v for k, (v, _l) in shown.items()} == {k: raw_value(oracle[k]) for k in METRIC_KEYS}
    models = {"visits": Visit, "events": Event, "applications": CreditApplication}
    for key, (value, link) in shown.items():
        body = client.get(link).get_data(as_text=True)
        kind = re.search(r'data-kind="(\w+)"', body).group(1)
        ids = record_ids(body)
        if METRIC_BY_KEY[key].kind == "count":
            assert len(ids) == int(value), key
        if kind in models:
            with scoped(scope_for(user)):
                assert all(db.session.get(models[kind], int(i)) is not None for i in ids), key


def test_a_bank_user_cannot_widen_their_numbers_through_the_url(known, client, login_as):
    login_as("rm_a")
    shown = cards(client.get("/dashboard/?campaign=ZCR2026&bank=ICBC-SZ").get_data(as_text=True))
    assert shown["visits"][0] == "0" and shown["credit_amount_wan"][0] == "0"
    body = client.get("/dashboard/records?metric=visits&campaign=ZCR2026&bank=ICBC-SZ").get_data(as_text=True)
    assert record_ids(body) == []


def test_bureau_sees_bureau_only_events_that_no_bank_user_counts(known, client, login_as):
    login_as("bureau")
    body = client.get("/dashboard/records?metric=events_held&campaign=ZCR2026").get_data(as_text=True)
    assert len(record_ids(body)) == 3 and "E5" in body


def test_the_page_has_no_inline_script_or_style(known, client, login_as):
    login_as("bureau")
    html = client.get("/dashboard/?campaign=ZCR2026").get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all("src=" in s or 'type="application/json"' in s for s in scripts)
    assert " style=" not in html and "onclick" not in html
    assert 'data-chart="funnel"' in html and "echarts/echarts.min.js" in html
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html


def test_definitions_are_tooltips_in_the_page_language(known, client, login_as):
    login_as("bureau")
    html = client.get("/dashboard/?campaign=ZCR2026").get_data(as_text=True)
    m = METRIC_BY_KEY["firms_reached"]
    assert m.definition_zh in unescape(html) and m.definition_en not in unescape(html)
    assert f'title="{m.definition_zh}">{m.label_zh} <i' in unescape(html)  # the header and card labels
    client.post("/language/en", data={"next": "/"})
    html = client.get("/dashboard/?campaign=ZCR2026").get_data(as_text=True)
    assert m.definition_en in unescape(html) and m.definition_zh not in unescape(html)
    assert f'title="{m.definition_en}">{m.label_en} <i' in unescape(html)


@pytest.mark.parametrize("url", ["/dashboard/", "/dashboard/records?metric=visits", "/dashboard/targets",
                                 "/dashboard/report", "/dashboard/report.xlsx", "/profile/tokens"])
def test_dashboard_pages_need_sign_in(known, client, url):
    resp = client.get(url)
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


@pytest.mark.parametrize("query", ["metric=nope&campaign=ZCR2026", "metric=visits&campaign=NOPE"])
def test_unknown_metric_or_campaign_is_not_found(known, client, login_as, query):
    login_as("bureau")
    assert client.get(f"/dashboard/records?{query}").status_code == 404


@pytest.mark.parametrize("query", ["from=2026-13-01", "bank=NOPE", "industry=zzz", "street=999999",
                                   "branch=ICBC-FT&bank=SZRCB", "page=abc"])
def test_bad_filters_are_reported_not_crashing(known, client, login_as, query):
    login_as("bureau")
    resp = client.get(f"/dashboard/?campaign=ZCR2026&{query}")
    assert resp.status_code == 200
    assert client.get(f"/dashboard/records?metric=visits&campaign=ZCR2026&{query}").status_code == 200


def test_the_dashboard_without_any_campaign_says_so(app, client, login_as):
    from tests import factories
    from crm.auth.models import Role

    bureau = factories.org("B", kind=factories.OrgKind.BUREAU)
    factories.user("solo", Role.BUREAU, bureau)
    db.session.commit()
    login_as("solo")
    resp = client.get("/dashboard/")
    assert resp.status_code == 200 and 'class="alert alert-info"' in resp.get_data(as_text=True)


def test_one_breakdown_table_at_a_time_and_the_tab_links_keep_the_filters(known, client, login_as):
    login_as("bureau")
    html = client.get("/dashboard/?campaign=ZCR2026&industry=ai").get_data(as_text=True)
    assert re.findall(r'data-breakdown="(\w+)"', html) == ["industry"]  # the first tab by default
    hrefs = {re.search(r"tab=(\w+)", unescape(h)).group(1): unescape(h)
             for h in re.findall(r'href="([^"]+)#h-breakdowns"', html)}
    assert set(hrefs) == set(DIMENSIONS)
    for dim, href in hrefs.items():
        query = parse_qs(urlsplit(href).query)
        assert query["campaign"] == ["ZCR2026"] and query["industry"] == ["ai"], href
        page = client.get(href).get_data(as_text=True)
        assert re.findall(r'data-breakdown="(\w+)"', page) == [dim]
        assert 'aria-current="page">' in page
        if dim != DIMENSIONS[0]:  # the filter form keeps the open tab when the filters change
            assert f'<input type="hidden" name="tab" value="{dim}">' in page
    # an unknown tab is the first one, not an error
    page = client.get("/dashboard/?campaign=ZCR2026&tab=%3Cscript%3E").get_data(as_text=True)
    assert re.findall(r'data-breakdown="(\w+)"', page) == ["industry"]
    assert "<script>" not in page


FILTER_SELECT = re.compile(r'<select class="form-select" id="f-(\w+)" name="\w+">(.*?)</select>', re.S)
FILTER_OPTION = re.compile(r'<option value="([^"]+)"(?: data-(?:bank|area)="([^"]*)")?[^>]*>([^<]*)</option>')


def filter_bar(html: str) -> dict[str, list[tuple[str, str, str]]]:
    """{select: [(value, data-bank or data-area, text)]} of the filter bar, without the "all" choices."""
    return {name: [tuple(unescape(part).strip() for part in option) for option in FILTER_OPTION.findall(body)]
            for name, body in FILTER_SELECT.findall(html)}


def expected_filter_bar(user, campaign) -> dict[str, list[tuple[str, str, str]]]:
    """The choices as the ORM reads them (``visible_campaigns``, ``campaign_banks``, ``branches_of``)."""
    import sqlalchemy as sa

    from crm.core.models import Area, Industry, Street
    from crm.dashboard.filters import visible_campaigns
    from crm.dashboard.services import branches_of, campaign_banks

    banks = campaign_banks(campaign, user)
    return {
        "campaign": [(c.code, "", f"{c.name} ({c.code})") for c in visible_campaigns(user)],
        "bank": [(b.code, "", b.display_name) for b in banks],
        "branch": [(b.code, b.parent.code, b.display_name) for lst in branches_of(banks).values() for b in lst],
        "industry": [(i.code, "", i.name_zh) for i in db.session.scalars(sa.select(Industry).order_by(Industry.sort_order))],
        "district": [(a.code, "", a.name) for a in db.session.scalars(sa.select(Area).order_by(Area.sort_order))],
        "street": [(str(s.id), s.area_code, s.name) for s in db.session.scalars(
            sa.select(Street).order_by(Street.area_code, Street.sort_order))],
    }


def test_the_filter_bar_offers_what_each_viewer_may_pick_and_follows_reference_writes(known, client, login_as, world):
    """The filter bar's rows are kept under the global write count (``views._filter_rows``): they equal the ORM's
    choices for the bureau and for a bank user (campaigns their bank takes part in, their own bank), and a write
    to a campaign's banks, an organisation, a campaign or a street shows on the next view."""
    import sqlalchemy as sa

    from crm.auth.models import User
    from crm.core.models import Street
    from crm.orgs.models import Organisation
    from tests import factories

    only_b = factories.campaign("ZCR-B", orgs=[world.bank_b], start=world.campaign.start_on)
    none = factories.campaign("ZCR-NONE", start=world.campaign.start_on)
    db.session.commit()

    def check(username, campaign):
        user = db.session.scalar(sa.select(User).where(User.username == username))
        login_as(username)
        resp = client.get(f"/dashboard/?campaign={campaign.code}")
        assert resp.status_code == 200
        got = filter_bar(resp.get_data(as_text=True))
        db.session.expire_all()
        assert got == expected_filter_bar(user, db.session.get(type(campaign), campaign.id))
        return got

    bar = check("bureau", world.campaign)
    assert [v for v, *_ in bar["bank"]] == sorted([world.bank_a.code, world.bank_b.code])
    assert [v for v, *_ in check("bureau", none)["bank"]] == [v for v, *_ in bar["bank"]]  # none listed: every bank
    assert [v for v, *_ in check("bureau", only_b)["branch"]] == [world.branch_b.code]
    bar = check("mgr_a", world.campaign)
    assert [v for v, *_ in bar["bank"]] == [world.bank_a.code] and "ZCR-B" not in [v for v, *_ in bar["campaign"]]

    # writes to the reference tables, each moving the global write count
    only_b.organisations.append(db.session.get(Organisation, world.bank_a.id))
    db.session.get(Organisation, world.branch_a.id).short_name = "改名支行"
    db.session.add(Street(area_code=db.session.scalars(sa.select(Street.area_code)).first(), name="新设街道",
                          sort_order=99))
    db.session.commit()
    bar = check("mgr_a", only_b)
    assert "ZCR-B" in [v for v, *_ in bar["campaign"]] and "改名支行" in [t for *_, t in bar["branch"]]
    assert "新设街道" in [t for *_, t in bar["street"]]
    assert "ZCR-NEW" not in [v for v, *_ in check("bureau", world.campaign)["campaign"]]
    factories.campaign("ZCR-NEW", orgs=[world.bank_a], start=world.campaign.start_on)
    db.session.commit()
    assert "ZCR-NEW" in [v for v, *_ in check("bureau", world.campaign)["campaign"]]


def test_a_dashboard_page_reads_the_version_table_once(known, client, login_as):
    """The filter bar's kept facts and the view share one read of the dashboard's version table
    (``ShardedBackend.write_version``): a page served from a snapshot and one computed again after a write each
    read it once; the shared store's older rows are dropped once per version, not at every save."""
    import sqlalchemy as sa

    from tests.sqlcount import statements

    login_as(known.world.bureau_user)
    assert client.get("/dashboard/?campaign=ZCR2026").status_code == 200  # computed and filed
    with statements() as cached:
        assert client.get("/dashboard/?campaign=ZCR2026").status_code == 200
    visit = db.session.scalars(sa.select(Visit).where(Visit.is_deleted.is_(False)).order_by(Visit.id)).first()
    visit.need_amount_fen = (visit.need_amount_fen or 0) + 1  # a placed write: a new version
    db.session.commit()
    with statements() as after_write:
        assert client.get("/dashboard/?campaign=ZCR2026").status_code == 200
    with statements() as other_tab:  # a miss at the same version: the store's older rows are gone already
        assert client.get("/dashboard/?campaign=ZCR2026&tab=street").status_code == 200

    def reads(sql):
        return [s for s in sql if "dashboard_write_version" in s and s.lstrip().upper().startswith("SELECT")]

    assert len(reads(cached)) == 1, reads(cached)
    assert len(reads(after_write)) == 1, reads(after_write)
    assert any(s.lstrip().upper().startswith("DELETE FROM DASHBOARD_SNAPSHOT") for s in after_write)
    assert any("INSERT INTO dashboard_snapshot" in s for s in other_tab)
    assert not any(s.lstrip().upper().startswith("DELETE FROM DASHBOARD_SNAPSHOT") for s in other_tab)
