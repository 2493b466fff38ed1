"""Credit applications: fields, the stage machine (full matrix), decisions, discounts, audit, roles and scoping."""
import re
from datetime import date

import pytest
import sqlalchemy as sa

from crm.core.models import AuditEntry, CreditProduct
from crm.core.scoping import scope_for, scoped
from crm.credit import services
from crm.credit import stages as sm
from crm.credit.models import CreditApplication, Stage, StageChange
from crm.extensions import db
from tests import factories
from tests import factories_credit as fc

WAN = 1_000_000
TODAY = date(2026, 11, 26)
S = Stage

PLEDGE_FIRST = {S.ACCEPTED: {S.UNDER_REVIEW, S.WITHDRAWN}, S.UNDER_REVIEW: {S.APPROVED, S.DECLINED, S.WITHDRAWN},
                S.APPROVED: {S.CONTRACTED}, S.CONTRACTED: {S.PLEDGE_REGISTERED}, S.PLEDGE_REGISTERED: {S.DISBURSED},
                S.DISBURSED: {S.REPAID}, S.REPAID: set(), S.DECLINED: set(), S.WITHDRAWN: set()}
DISBURSE_FIRST = {**PLEDGE_FIRST, S.CONTRACTED: {S.DISBURSED}, S.DISBURSED: {S.PLEDGE_REGISTERED},
                  S.PLEDGE_REGISTERED: {S.REPAID}}
NO_PLEDGE = {**PLEDGE_FIRST, S.CONTRACTED: {S.DISBURSED}, S.PLEDGE_REGISTERED: set(), S.DISBURSED: {S.REPAID}}
EXPECTED = {"pledge_first": PLEDGE_FIRST, "disburse_first": DISBURSE_FIRST, "no_pledge": NO_PLEDGE}


class _Product:
    def __init__(self, is_ip_pledge, pledge_before_disbursement):
        self.is_ip_pledge = is_ip_pledge
        self.pledge_before_disbursement = pledge_before_disbursement


PRODUCTS = {"pledge_first": _Product(True, True), "disburse_first": _Product(True, False),
            "no_pledge": _Product(False, False)}


@pytest.mark.parametrize("kind", list(EXPECTED))
@pytest.mark.parametrize("frm", list(Stage))
@pytest.mark.parametrize("to", list(Stage))
def test_stage_machine_allows_exactly_the_listed_moves(kind, frm, to):
    assert sm.can_move(frm, to, PRODUCTS[kind]) is (to in EXPECTED[kind][frm])


def _product_for(kind):
    if kind == "no_pledge":
        return "working_capital"
    if kind == "disburse_first":
        db.session.get(CreditProduct, "ip_pledge").pledge_before_disbursement = False
        db.session.flush()
    return "ip_pledge"


def _reachable(kind):
    path = [S.ACCEPTED, S.UNDER_REVIEW, *((S.APPROVED,) + sm.post_approval_path(PRODUCTS[kind]))]
    return path + [S.DECLINED, S.WITHDRAWN]


@pytest.mark.parametrize("kind, frm", [(k, s) for k in EXPECTED for s in _reachable(k)])
def test_service_moves_follow_the_matrix_and_refuse_everything_else(app, world, kind, frm):
    a = fc.application(world, product=_product_for(kind), accepted_on=date(2026, 3, 2))
    if frm in (S.DECLINED, S.WITHDRAWN):
        fc.advance(a, world.rm_a, S.UNDER_REVIEW)
    fc.advance(a, world.rm_a, frm)
    if sm.has_pledge_stage(a.product) and not a.pledges and frm not in sm.FINAL_STAGES:
        fc.pledge(a, world.rm_a)
    for p in a.pledges:
        if p.registered_on is None and p.status == "active":
            with scoped(scope_for(world.rm_a)):
                services.register_pledge(p, world.rm_a, "Y1", date(2026, 3, 2), 100 * WAN, today=TODAY)
    for to in Stage:
        decision = fc.APPROVAL if to == S.APPROVED else services.Decision(decline_reason_code="policy")
        with db.session.begin_nested() as sp, scoped(scope_for(world.rm_a)):
            try:
                services.move(a, to, world.rm_a, date(2026, 3, 2), decision=decision, today=TODAY)
            except services.CreditError as exc:
                assert exc.code == "bad_move", (frm, to, exc.code, str(exc))
                assert to not in EXPECTED[kind][frm]
            else:
                assert to in EXPECTED[kind][frm], (frm, to)
                assert a.stage == to
                assert a.history[-1].from_stage == frm and a.history[-1].to_stage == to
            sp.rollback()
        db.session.expire_all()


def test_each_move_is_dated_by_whom_audited_and_in_the_history(app, world):
    a = fc.application(world, accepted_on=date(2026, 3, 2))
    with scoped(scope_for(world.rm_a2)):
        services.move(a, S.UNDER_REVIEW, world.rm_a2, date(2026, 3, 3), note="材料齐全", today=TODAY)
    changes = db.session.scalars(sa.select(StageChange).where(StageChange.application_id == a.id)
                                 .order_by(StageChange.id)).all()
    assert [(c.from_stage, c.to_stage, c.changed_on) for c in changes] == [
        (None, S.ACCEPTED, date(2026, 3, 2)), (S.ACCEPTED, S.UNDER_REVIEW, date(2026, 3, 3))]
    assert changes[1].by_id == world.rm_a2.id and changes[1].note == "材料齐全"
    entries = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.object_type == "credit_application",
                                                             AuditEntry.object_id == a.id)).all()
    assert [e.action for e in entries] == ["create", "update"]
    assert '"stage": "under_review"' in entries[1].after and entries[1].user_id == world.rm_a2.id


@pytest.mark.parametrize("on, code", [(date(2026, 3, 1), "date_order"), (date(2026, 11, 27), "future_date")])
def test_a_move_cannot_be_dated_before_the_previous_step_or_in_the_future(app, world, on, code):
    a = fc.application(world, accepted_on=date(2026, 3, 2))
    with pytest.raises(services.CreditError) as exc, scoped(scope_for(world.rm_a)):
        services.move(a, S.UNDER_REVIEW, world.rm_a, on, today=TODAY)
    assert exc.value.code == code


def test_approval_records_the_decision_and_freezes_high_tech_status(app, world):
    firm = factories.firm(high_tech_cert_no="GR202344000123", high_tech_issued_on=date(2023, 3, 1))  # to 2026-02-28
    a = fc.application(world, firm=firm, accepted_on=date(2026, 2, 26))
    b = fc.application(world, firm=firm, accepted_on=date(2026, 2, 26))
    fc.advance(a, world.rm_a, S.UNDER_REVIEW)
    fc.advance(b, world.rm_a, S.UNDER_REVIEW)
    decision = services.Decision(approved_fen=450 * WAN, rate_bp=345, discount_bp=15, term_months=24)
    with scoped(scope_for(world.rm_a)):
        services.move(a, S.APPROVED, world.rm_a, date(2026, 2, 27), decision=decision, today=TODAY)
        services.move(b, S.DECLINED, world.rm_a, date(2026, 3, 2),
                      decision=services.Decision(decline_reason_code="ip_value_low"), today=TODAY)
    assert (a.decided_on, a.approved_fen, a.rate_bp, a.discount_bp, a.term_months) == (
        date(2026, 2, 27), 450 * WAN, 345, 15, 24)
    assert a.high_tech_at_decision is True
    assert (b.decided_on, b.decline_reason_code, b.high_tech_at_decision) == (date(2026, 3, 2), "ip_value_low", False)
    firm.high_tech_issued_on = None  # later changes to the firm do not rewrite history
    db.session.flush()
    db.session.refresh(a)
    assert a.high_tech_at_decision is True


def test_decline_needs_a_reason_from_the_code_list(app, world):
    a = fc.application(world)
    fc.advance(a, world.rm_a, S.UNDER_REVIEW)
    for code in (None, "no_such_reason"):
        with pytest.raises(services.CreditError) as exc, scoped(scope_for(world.rm_a)):
            services.move(a, S.DECLINED, world.rm_a, date(2026, 3, 3),
                          decision=services.Decision(decline_reason_code=code), today=TODAY)
        assert exc.value.code == "decline_reason"


@pytest.mark.parametrize("discount, ok", [(-1, False), (0, True), (20, True), (21, False)])
def test_discount_limits_in_the_service(app, world, discount, ok):
    a = fc.application(world)
    fc.advance(a, world.rm_a, S.UNDER_REVIEW)
    decision = services.Decision(approved_fen=100 * WAN, rate_bp=300, discount_bp=discount, term_months=12)
    with scoped(scope_for(world.rm_a)):
        if ok:
            services.move(a, S.APPROVED, world.rm_a, date(2026, 3, 3), decision=decision, today=TODAY)
            assert a.discount_bp == discount
        else:
            with pytest.raises(services.CreditError) as exc:
                services.move(a, S.APPROVED, world.rm_a, date(2026, 3, 3), decision=decision, today=TODAY)
            assert exc.value.code == "discount"


@pytest.mark.parametrize("discount, ok", [(-1, False), (0, True), (20, True), (21, False)])
def test_discount_limits_in_the_database(app, world, discount, ok):
    a = fc.application(world)
    db.session.commit()
    stmt = sa.update(CreditApplication).where(CreditApplication.id == a.id).values(discount_bp=discount)
    if ok:
        db.session.execute(stmt)
        db.session.commit()
        assert db.session.get(CreditApplication, a.id).discount_bp == discount
    else:
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(stmt)
            db.session.flush()
        db.session.rollback()


@pytest.mark.parametrize("discount, ok", [("-1", False), ("0", True), ("20", True), ("21", False)])
def test_discount_limits_in_the_form(app, world, login_as, discount, ok):
    a = fc.application(world, accepted_on=date(2026, 3, 2))
    fc.advance(a, world.rm_a, S.UNDER_REVIEW)
    db.session.commit()
    client = login_as(world.rm_a)
    resp = client.post(f"/credit/{a.id}/move/approved", data={
        "to": "approved", "changed_on": "2026-03-04", "approved_wan": "480.5", "rate_pct": "3.45",
        "discount_bp": discount, "term_months": "12", "version": a.version})
    a = db.session.get(CreditApplication, a.id)
    if ok:
        assert resp.status_code == 302
        assert (a.stage, a.discount_bp, a.approved_fen, a.rate_bp) == (S.APPROVED, int(discount), 480_500_000, 345)
    else:
        assert resp.status_code == 422
        assert "优惠幅度须在 0 至 20 BP 之间" in resp.get_data(as_text=True)
        assert a.stage == S.UNDER_REVIEW and a.discount_bp is None


def test_disbursement_sets_maturity_and_defaults_to_the_approved_amount(app, world):
    a = fc.application(world, product="working_capital", accepted_on=date(2026, 1, 30))
    fc.advance(a, world.rm_a, S.CONTRACTED)
    with scoped(scope_for(world.rm_a)):
        with pytest.raises(services.CreditError) as exc:
            services.move(a, S.DISBURSED, world.rm_a, date(2026, 1, 31),
                          decision=services.Decision(disbursed_fen=501 * WAN), today=TODAY)
        assert exc.value.code == "disbursed_amount"
        services.move(a, S.DISBURSED, world.rm_a, date(2026, 1, 31), today=TODAY)
    assert (a.disbursed_fen, a.disbursed_on, a.matures_on) == (500 * WAN, date(2026, 1, 31), date(2027, 1, 31))
    assert services.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)


def test_create_refuses_another_banks_branch_rm_or_a_campaign_without_the_bank(app, world):
    other_camp = factories.campaign("OTHER", orgs=[world.bank_b])
    base = dict(firm=world.firm, product_code="ip_pledge", requested_fen=100 * WAN, accepted_on=date(2026, 3, 2),
                campaign_id=world.campaign.id)
    for extra, code in ((dict(branch_id=world.branch_b.id), "branch"), (dict(rm_id=world.rm_b.id), "rm"),
                        (dict(campaign_id=other_camp.id), "campaign"), (dict(product_code="nope"), "product"),
                        (dict(accepted_on=date(2026, 11, 27)), "future_date")):
        with pytest.raises(services.CreditError) as exc, scoped(scope_for(world.rm_a)):
            services.create_application(world.rm_a, services.ApplicationData(**{**base, **extra}), today=TODAY)
        assert exc.value.code == code


def test_rm_records_an_application_with_every_field_through_the_form(app, world, login_as):
    client = login_as(world.rm_a)
    assert client.get("/credit/new").status_code == 200
    resp = client.post("/credit/new", data={
        "firm": f"{world.firm.name} · {world.firm.credit_code}", "product_code": "ip_pledge",
        "requested_wan": "1,200.5", "requested_term_months": "36", "accepted_on": "2026-03-02",
        "campaign_id": world.campaign.id, "branch_id": world.branch_a.id, "rm_id": world.rm_a2.id,
        "guarantee": "专利质押", "is_first_loan": "y", "in_risk_pool": "y", "has_subsidy": "y", "remarks": "首贷"})
    assert resp.status_code == 302
    a = db.session.scalars(sa.select(CreditApplication)).one()
    assert (a.bank_id, a.branch_id, a.rm_id, a.firm_id, a.product_code, a.requested_fen, a.accepted_on,
            a.requested_term_months, a.guarantee, a.is_first_loan, a.in_risk_pool, a.has_subsidy, a.stage) == (
        world.bank_a.id, world.branch_a.id, world.rm_a2.id, world.firm.id, "ip_pledge", 1_200_500_000,
        date(2026, 3, 2), 36, "专利质押", True, True, True, S.ACCEPTED)
    html = client.get(f"/credit/{a.id}").get_data(as_text=True)
    assert "1,200.50" in html and "2026-03-09" in html  # 5-day tier: 3, 4, 5, 6, 9 March


@pytest.mark.parametrize("firm_text", ["没有这家企业", "91440300MA5000025X"])
def test_the_form_refuses_an_unknown_firm(app, world, login_as, firm_text):
    client = login_as(world.rm_a)
    resp = client.post("/credit/new", data={
        "firm": firm_text, "product_code": "ip_pledge", "requested_wan": "100", "accepted_on": "2026-03-02",
        "campaign_id": world.campaign.id, "branch_id": 0, "rm_id": world.rm_a.id})
    assert resp.status_code == 422
    assert "请按名称或统一社会信用代码选择已登记的企业" in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditApplication)) == 0


@pytest.mark.parametrize("typed", ["{name}", "{code}", "{code_lower}", "{name} · {code}", " {code} "])
def test_the_firm_is_found_by_exact_name_or_credit_code(app, world, typed):
    text = typed.format(name=world.firm.name, code=world.firm.credit_code, code_lower=world.firm.credit_code.lower())
    assert services.find_firm(text) == world.firm


def test_edit_uses_the_version_and_freezes_the_amount_after_the_decision(app, world, login_as):
    a = fc.application(world)
    db.session.commit()
    client = login_as(world.rm_a)
    form = {"firm": world.firm.credit_code, "product_code": "ip_pledge", "requested_wan": "600",
            "accepted_on": "2026-03-02", "campaign_id": world.campaign.id, "branch_id": 0, "rm_id": world.rm_a.id,
            "version": a.version}
    assert client.post(f"/credit/{a.id}/edit", data=form).status_code == 302
    assert db.session.get(CreditApplication, a.id).requested_fen == 600 * WAN
    stale = client.post(f"/credit/{a.id}/edit", data={**form, "requested_wan": "700"})
    assert stale.status_code == 409  # the stale form comes back with what was typed and the conflict message
    html = stale.get_data(as_text=True)
    assert 'value="700"' in html and "该记录已被他人修改" in html
    a = db.session.get(CreditApplication, a.id)
    assert a.requested_fen == 600 * WAN  # the stored change stays
    fc.advance(a, world.rm_a, S.APPROVED)
    db.session.commit()
    resp = client.post(f"/credit/{a.id}/edit", data={**form, "requested_wan": "700", "version": a.version})
    assert resp.status_code == 422 and "审批后不能再修改" in resp.get_data(as_text=True)


def test_move_form_shows_only_allowed_targets(app, world, login_as):
    a = fc.application(world)
    db.session.commit()
    client = login_as(world.rm_a)
    html = client.get(f"/credit/{a.id}").get_data(as_text=True)
    assert 'data-testid="move-under_review"' in html and 'data-testid="move-withdrawn"' in html
    assert 'data-testid="move-approved"' not in html
    resp = client.post(f"/credit/{a.id}/move/approved", data={"to": "approved", "changed_on": "2026-03-03"})
    assert resp.status_code == 302
    assert db.session.get(CreditApplication, a.id).stage == S.ACCEPTED
    assert client.get(f"/credit/{a.id}/move/bogus").status_code == 404


# ---------------------------------------------------------------------------------------------------------
# roles and scoping
# ---------------------------------------------------------------------------------------------------------


def _a_app_urls(a, pledge_id, pool_id):
    return [f"/credit/{a.id}", f"/credit/{a.id}/edit", f"/credit/{a.id}/move/under_review",
            f"/credit/{a.id}/pledges/new", f"/credit/pledges/{pledge_id}/register",
            f"/credit/{a.id}/valuations/new", f"/credit/pools/{pool_id}", f"/credit/pools/{pool_id}/export.xlsx"]


def test_another_banks_records_are_404(app, world, login_as):
    a = fc.application(world)
    p = fc.pledge(a, world.rm_a)
    with scoped(scope_for(world.rm_a)):
        pool = services.create_pool(world.rm_a, "知识产权证券化一期", "深圳证券交易所", None)
    db.session.commit()
    client = login_as(world.rm_b)
    for url in _a_app_urls(a, p.id, pool.id):
        assert client.get(url).status_code == 404, url
    for url in (f"/credit/{a.id}/move/under_review", f"/credit/pledges/{p.id}/release",
                f"/credit/pools/{pool.id}/remove/{a.id}"):
        assert client.post(url, data={"to": "under_review", "changed_on": "2026-03-03"}).status_code == 404, url
    html = client.get("/credit/").get_data(as_text=True)
    assert world.firm.name not in html
    assert db.session.get(CreditApplication, a.id).stage == S.ACCEPTED


def test_bureau_reads_every_bank_but_cannot_write(app, world, login_as):
    a = fc.application(world)
    b = fc.application(world, world.rm_b, firm=factories.firm())
    p = fc.pledge(a, world.rm_a)
    with scoped(scope_for(world.rm_a)):
        pool = services.create_pool(world.rm_a, "知识产权证券化一期", "深圳证券交易所", None)
    db.session.commit()
    client = login_as(world.bureau_user)
    html = client.get("/credit/").get_data(as_text=True)
    assert f"/credit/{a.id}\"" in html and f"/credit/{b.id}\"" in html
    assert client.get(f"/credit/{a.id}").status_code == 200
    assert client.get(f"/credit/pools/{pool.id}").status_code == 200
    assert 'data-testid="new-application"' not in html
    for url in ("/credit/new", f"/credit/{a.id}/edit", f"/credit/{a.id}/move/under_review",
                f"/credit/{a.id}/pledges/new", f"/credit/pledges/{p.id}/register", f"/credit/pledges/{p.id}/release",
                f"/credit/{a.id}/valuations/new", "/credit/pools", f"/credit/pools/{pool.id}",
                f"/credit/pools/{pool.id}/remove/{a.id}", "/credit/calendar"):
        assert client.post(url, data={"name": "x", "exchange": "y"}).status_code == 403, url
    assert db.session.get(CreditApplication, a.id).stage == S.ACCEPTED


def test_services_refuse_non_bank_writers(app, world):
    a = fc.application(world)
    for user in (world.bureau_user, world.admin, world.rm_b):
        with pytest.raises(services.CreditError) as exc:
            services.move(a, S.UNDER_REVIEW, user, date(2026, 3, 3), today=TODAY)
        assert exc.value.code == "forbidden"


def test_credit_pages_render_for_every_role(app, world, login_as):
    a = fc.application(world)
    fc.advance(a, world.rm_a, S.DISBURSED)
    db.session.commit()
    for user in ("rm_a", "mgr_a", "bureau", "admin"):
        client = login_as(user)
        for url in ("/credit/", "/credit/sla", "/credit/ip-pledges", "/credit/pools", f"/credit/{a.id}",
                    "/credit/?campaign=ZCR2026&stage=approved&from=2026-01-01&to=2026-12-31&bank=1&area=longgang"):
            assert client.get(url).status_code == 200, (user, url)
        client.post("/logout")


def test_the_list_pages_through_every_application_newest_first_keeping_the_filters(app, world, login_as):
    import html as html_lib
    import re

    mine = [fc.application(world, firm=factories.firm(), accepted_on=date(2026, 3, 1 + i % 20)) for i in range(61)]
    others = [fc.application(world, world.rm_b, firm=factories.firm(), accepted_on=date(2026, 3, 5)) for _ in range(3)]
    db.session.commit()
    newest_first = [a.id for a in sorted(mine, key=lambda a: (a.accepted_on, a.id), reverse=True)]

    def walk(client, url):
        seen, pages = [], 0
        while url:
            body = client.get(url).get_data(as_text=True)
            seen += [int(x) for x in re.findall(r'href="/credit/(\d+)"', body)]
            pages += 1
            m = re.search(r'rel="next" data-testid="next-page" href="([^"]+)"', body)
            url = html_lib.unescape(m.group(1)) if m else None
            assert url is None or "stage=accepted" in url  # the filter goes with the cursor
        return seen, pages

    seen, pages = walk(login_as(world.rm_a), "/credit/?stage=accepted")
    assert (seen, pages) == (newest_first, 2)  # 50 + 11, ties on a day broken by id, none twice, none left out
    assert not set(seen) & {a.id for a in others}
    seen, pages = walk(login_as(world.bureau_user), "/credit/?stage=accepted")
    assert sorted(seen) == sorted(newest_first + [a.id for a in others]) and pages == 2
    # a cursor that is not one starts at the first page (an id no column can hold included)
    import base64
    import json

    huge = base64.urlsafe_b64encode(json.dumps(["2026-03-05", 10 ** 20]).encode()).decode()
    for after in ("%25%25garbage", huge):
        first = login_as(world.rm_a).get(f"/credit/?after={after}").get_data(as_text=True)
        assert re.findall(r'href="/credit/(\d+)"', first)[:50] == [str(i) for i in newest_first[:50]]


#: the application list as a bank's manager, table by table (the first table each SELECT reads):
#:   user               the signed-in user by session token, then the page's RMs by key
#:   campaign, organisation (the bank's branches), industry, area, credit_product   the filters' choices
#:   credit_application the page, with its firms joined
#:   holiday_override   the calendar's overrides for the SLA column
#: The bureau's list reads the banks for its bank filter as well. Each row's product and branch are among the
#: choices the session holds: looked up there, not read again.
LIST_TABLES = {"user": 2, "campaign": 1, "organisation": 1, "industry": 1, "area": 1, "credit_product": 1,
               "credit_application": 1, "holiday_override": 1}
LIST_STATEMENTS = {"mgr_a": LIST_TABLES, "bureau_user": {**LIST_TABLES, "organisation": 2}}


@pytest.mark.parametrize("who", sorted(LIST_STATEMENTS))
def test_the_list_reads_a_fixed_number_of_statements_and_shows_each_rows_product_branch_and_rm(app, world, login_as,
                                                                                            who):
    from collections import Counter

    from tests.sqlcount import statements

    products = ("ip_pledge", "equipment_renewal", "working_capital", "rnd_loan")
    made = [fc.application(world, user, firm=factories.firm(), product=products[i % 4],
                           branch_id=world.branch_a.id if i % 2 else None, accepted_on=date(2026, 3, 2 + i))
            for i, user in enumerate([world.rm_a, world.rm_a2, world.mgr_a] * 3)]
    db.session.commit()
    shown = {a.id: (a.product.name_zh, a.branch.display_name if a.branch else "", a.rm.display_name) for a in made}
    assert {branch for _p, branch, _rm in shown.values()} == {world.branch_a.display_name, ""}
    client = login_as(getattr(world, who))
    client.get("/credit/")  # warm: the first request of a test app compiles what later ones reuse
    db.session.remove()  # (the test's requests share one application context: start from an empty session, as a
    # request does in production)
    with statements() as seen:
        body = client.get("/credit/").get_data(as_text=True)
    tables = Counter(re.search(r'\bFROM "?(\w+)', s).group(1) for s in seen)
    assert tables == Counter(LIST_STATEMENTS[who]), "\n".join(seen)
    by_key = [x for x in seen if re.search(r"WHERE (organisation\.id|credit_product\.code) = ", x)]
    assert by_key == [], by_key  # no row's branch or product read on its own
    rows = re.findall(r'<tr>\s*<td><a href="/credit/(\d+)">.*?</tr>', body, flags=re.S)
    assert sorted(int(r) for r in rows) == sorted(shown)
    for ident, texts in shown.items():
        row = re.search(rf'<tr>\s*<td><a href="/credit/{ident}">.*?</tr>', body, flags=re.S).group(0)
        assert all(text in row for text in texts), (texts, row)
