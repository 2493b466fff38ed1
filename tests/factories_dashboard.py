"""A campaign whose true numbers are known by construction, with every edge case of issue 6.

``build_known_campaign(world)`` adds, on top of ``factories.World``, nine firms, nine visits (one deleted, one
before the campaign), five events (one cancelled, one planned, one organised by the bureau alone), their
registrations (one never checked in) and ten credit applications (declined, withdrawn, open, one decided
outside the test date range, one disbursed outside it, SLA amounts exactly at the tier limits, a high-tech
certificate that expired before its decision). ``EXPECTED`` holds the numbers, worked out by hand below.

Date range used by the "filtered" expectations: 2026-03-01 .. 2026-06-30.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from crm.auth.models import Role
from crm.core.workdays import add_workdays
from crm.credit.models import CreditApplication, IpAsset, OwnerRelation, PatentKind, Pledge, Stage
from crm.events.models import CheckinMethod, Event, EventKind, EventStatus, Registration, RegistrationSource
from crm.extensions import db
from crm.core.models import Industry, Street
from crm.orgs.models import Target
from tests import factories

WAN = 1_000_000  # fen per 万元
RANGE = (date(2026, 3, 1), date(2026, 6, 30))


@dataclass
class Known:
    world: factories.World
    firms: dict = field(default_factory=dict)
    visits: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    apps: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)


def street_id(area: str, name: str) -> int:
    return db.session.scalar(sa.select(Street.id).where(Street.area_code == area, Street.name == name))


def _event(k: Known, code, held_on, status, organisers, industries, staff, title=None):
    e = Event(code=code, campaign=k.world.campaign, title=title or f"银企对接会 {code}", kind=EventKind.INDUSTRY,
              held_on=held_on, status=status, venue="龙岗区天安数码城", organisers=list(organisers),
              industries=[db.session.get(Industry, c) for c in industries], staff=list(staff))
    db.session.add(e)
    db.session.flush()
    k.events[code] = e
    return e


_mobiles = iter(range(13800000001, 13899999999))


def _register(event, firm, checked_in: bool, person="参会人"):
    r = Registration(event=event, firm=firm, person_name=person, mobile=str(next(_mobiles)),
                     source=RegistrationSource.INVITED,
                     checked_in_at=datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc).replace(
                         year=event.held_on.year, month=event.held_on.month, day=event.held_on.day)
                     if checked_in else None,
                     checkin_method=CheckinMethod.STAFF if checked_in else None)
    db.session.add(r)
    db.session.flush()
    return r


def _app(k: Known, name, firm, rm, product, requested_fen, accepted_on, *, stage, decided_after=None,
         approved_wan=None, discount_bp=None, high_tech=None, first_loan=False, disbursed_on=None,
         disbursed_wan=None, branch="rm", decline_reason=None):
    decided_on = add_workdays(accepted_on, decided_after).day if decided_after is not None else None
    a = CreditApplication(
        bank_id=rm.bank_id, branch_id=(rm.org_id if rm.org.is_branch else None) if branch == "rm" else branch,
        rm=rm, campaign=k.world.campaign, firm=firm, product_code=product, requested_fen=requested_fen,
        accepted_on=accepted_on, stage=stage, decided_on=decided_on,
        approved_fen=approved_wan * WAN if approved_wan is not None else None, discount_bp=discount_bp,
        high_tech_at_decision=(firm.is_high_tech_on(decided_on) if decided_on and stage != Stage.DECLINED
                               else high_tech),
        is_first_loan=first_loan, disbursed_on=disbursed_on,
        disbursed_fen=disbursed_wan * WAN if disbursed_wan is not None else None,
        decline_reason_code=decline_reason)
    db.session.add(a)
    db.session.flush()
    k.apps[name] = a
    return a


_patents = iter(range(1, 10_000))


def _pledge(app, secured_wan, registered_on):
    n = next(_patents)
    body = f"2025{1}{n:07d}"
    asset = IpAsset(patent_no=f"{body}.{_patent_check(body)}", kind=PatentKind.INVENTION, title=f"一种测试方法{n}")
    db.session.add(asset)
    db.session.flush()
    p = Pledge(bank_id=app.bank_id, application=app, ip_asset=asset, owner_relation=OwnerRelation.SELF,
               registration_no=f"Y2026{n:06d}" if registered_on else "", registered_on=registered_on,
               secured_fen=secured_wan * WAN)
    db.session.add(p)
    db.session.flush()
    return p


def _patent_check(body: str) -> str:
    weights = [2, 3, 4, 5, 6, 7, 8, 9]
    total = sum(int(ch) * weights[i % 8] for i, ch in enumerate(body))
    r = total % 11
    return "X" if r == 10 else str(r)


def build_known_campaign(world: factories.World, *, targets: bool = True) -> Known:
    """Build the campaign described in the module docstring; the caller commits."""
    k = Known(world)
    w = world
    rm_a3 = factories.user("rm_a3", Role.RM, w.branch_a, "孙经理")  # only a deleted visit: never counted
    rm_b2 = factories.user("rm_b2", Role.RM, w.branch_b, "周经理")  # only staffs a cancelled event
    k.users.update(rm_a3=rm_a3, rm_b2=rm_b2)
    bantian = street_id("longgang", "坂田街道")
    buji = street_id("longgang", "布吉街道")
    longcheng = street_id("longgang", "龙城街道")
    futian = street_id("futian", "福田街道")

    f = k.firms
    f["F1"] = w.firm  # ai, Longgang, no street: visited by both banks
    f["F2"] = factories.firm("深圳市芯智科技有限公司", "ai", street_id=bantian, high_tech_cert_no="GR202444000001",
                             high_tech_issued_on=date(2024, 1, 1))
    f["F3"] = factories.firm("深圳市康源生物医药有限公司", "biomedicine", street_id=buji)  # reached only via an event
    f["F4"] = factories.firm("深圳市微电子信息有限公司", "electronic_info", street_id=bantian)  # never checked in
    f["F5"] = factories.firm("深圳市福田低碳科技有限公司", "low_carbon", area_code="futian", street_id=futian)
    f["F6"] = factories.firm("深圳市坂田智能有限公司", "ai", street_id=bantian)
    f["F7"] = factories.firm("深圳市智驾科技有限公司", "smart_driving", street_id=buji,
                             high_tech_cert_no="GR202244000007", high_tech_issued_on=date(2022, 3, 1))  # expired
    f["F8"] = factories.firm("深圳市龙岗算力有限公司", "ai", high_tech_cert_no="GR202544000008",
                             high_tech_issued_on=date(2025, 6, 1))
    f["F9"] = factories.firm("深圳市低空飞行器有限公司", "low_altitude", street_id=longcheng)  # bureau event only

    camp = w.campaign
    v = k.visits
    v["V1"] = factories.visit(f["F1"], w.rm_a, camp, date(2026, 3, 2), need_amount_fen=300 * WAN)
    v["V2"] = factories.visit(f["F1"], w.rm_b, camp, date(2026, 3, 5), mode_code="phone")
    v["V3"] = factories.visit(f["F2"], w.rm_a, camp, date(2026, 3, 10), need_amount_fen=500 * WAN,
                              companions=[w.rm_a2, w.bureau_user])
    v["V4"] = factories.visit(f["F5"], w.rm_b, camp, date(2026, 4, 2))
    v["V5"] = factories.visit(f["F6"], w.rm_a2, camp, date(2026, 4, 20), mode_code="phone", need_amount_fen=0)
    v["V6"] = factories.visit(f["F7"], w.mgr_b, camp, date(2026, 5, 12))  # bank B head office: no branch
    v["V7"] = factories.visit(f["F4"], rm_a3, camp, date(2026, 3, 15), is_deleted=True)
    v["V8"] = factories.visit(f["F8"], w.rm_a, camp, date(2025, 12, 20))  # before the campaign starts
    v["V9"] = factories.visit(f["F8"], w.rm_a, camp, date(2026, 7, 15))  # after the test date range

    e1 = _event(k, "E1", date(2026, 3, 20), EventStatus.HELD, [w.branch_a], ["biomedicine", "ai"], [w.rm_a, w.mgr_a])
    _register(e1, f["F3"], True, "张一")
    _register(e1, f["F3"], True, "张二")  # a second person of the same firm: still one attendance
    _register(e1, f["F4"], False, "李四")  # registered, never checked in
    _register(e1, f["F2"], True, "王五")
    e2 = _event(k, "E2", date(2026, 4, 15), EventStatus.CANCELLED, [w.bank_b], ["low_carbon"], [rm_b2])
    _register(e2, f["F6"], True, "赵六")  # a check-in at a cancelled event never counts
    e3 = _event(k, "E3", date(2026, 5, 8), EventStatus.HELD, [w.bank_b, w.bureau], ["electronic_info"], [w.rm_b])
    _register(e3, f["F1"], True, "钱七")
    _register(e3, f["F5"], True, "孙八")
    _event(k, "E4", date(2026, 6, 1), EventStatus.PLANNED, [w.bank_a], ["ai"], [w.rm_a2])
    e5 = _event(k, "E5", date(2026, 6, 10), EventStatus.HELD, [w.bureau], ["low_altitude"], [w.bureau_user])
    _register(e5, f["F9"], True, "周九")

    ten_m = 1000 * WAN  # the 3-day tier's limit, inclusive
    thirty_m = 3000 * WAN  # the 5-day tier's limit, inclusive
    a1 = _app(k, "A1", f["F2"], w.rm_a, "ip_pledge", ten_m, date(2026, 3, 16), stage=Stage.DISBURSED,
              decided_after=3, approved_wan=800, discount_bp=20, first_loan=True, disbursed_on=date(2026, 3, 30),
              disbursed_wan=800)  # exactly 1000万 → 3 days, decided on the 3rd: hit
    _pledge(a1, 600, date(2026, 3, 25))
    _app(k, "A2", f["F5"], w.rm_b, "working_capital", ten_m + 1, date(2026, 4, 1), stage=Stage.DECLINED,
         decided_after=5, decline_reason="high_leverage")  # 1000万 + 1 fen → 5 days, on the 5th: hit
    _app(k, "A3", f["F6"], w.rm_a2, "rnd_loan", 100 * WAN, date(2026, 4, 21), stage=Stage.WITHDRAWN)
    _app(k, "A4", f["F7"], w.rm_b, "working_capital", thirty_m, date(2026, 4, 3), stage=Stage.DISBURSED,
         decided_after=6, approved_wan=2500, discount_bp=10, disbursed_on=date(2026, 7, 5),
         disbursed_wan=2500)  # exactly 3000万 → 5 days, decided on the 6th: miss; certificate expired 2025-02-28
    a5 = _app(k, "A5", f["F8"], w.mgr_a, "ip_pledge", thirty_m + 1, date(2026, 7, 20), stage=Stage.CONTRACTED,
              decided_after=10, approved_wan=5000)  # > 3000万 → 10 days, on the 10th: hit; decided in August
    _pledge(a5, 4000, date(2026, 8, 20))
    _app(k, "A6", f["F1"], w.rm_a, "rnd_loan", 200 * WAN, date(2026, 5, 6), stage=Stage.APPROVED, decided_after=4,
         approved_wan=200, discount_bp=5)  # 3 days, on the 4th: miss
    _app(k, "A7", f["F2"], w.rm_a, "equipment_renewal", 100 * WAN, date(2026, 5, 11), stage=Stage.APPROVED,
         decided_after=2, approved_wan=100)  # second approval of F2: the firm counts once
    _app(k, "A8", f["F3"], w.rm_b, "working_capital", 300 * WAN, date(2026, 6, 1), stage=Stage.UNDER_REVIEW)
    a10 = _app(k, "A10", f["F5"], w.rm_b, "ip_pledge", 500 * WAN, date(2026, 5, 18), stage=Stage.PLEDGE_REGISTERED,
               decided_after=3, approved_wan=300, discount_bp=15, first_loan=True)
    _pledge(a10, 350, date(2026, 5, 28))
    _pledge(a10, 100, None)  # not registered: not in the registered amount
    # An application of another campaign never counts.
    other = factories.campaign("OTHER2026", orgs=[w.bank_a], start=date(2026, 1, 1), end=date(2026, 12, 31))
    db.session.add(CreditApplication(bank_id=w.bank_a.id, branch_id=w.branch_a.id, rm=w.rm_a, campaign=other,
                                     firm=f["F6"], product_code="ip_pledge", requested_fen=50 * WAN,
                                     accepted_on=date(2026, 4, 1), stage=Stage.APPROVED,
                                     decided_on=date(2026, 4, 2), approved_fen=50 * WAN))
    factories.visit(f["F9"], w.rm_a, other, date(2026, 4, 2))
    db.session.flush()

    if targets:
        for org, metric, value in [
            (None, "firms_reached", 10), (None, "credit_amount_wan", 10000 * WAN), (None, "ip_pledge_deals", 4),
            (w.bank_a, "firms_reached", 6), (w.bank_a, "ip_pledge_deals", 3), (w.bank_b, "firms_reached", 4),
            (w.branch_a, "firms_reached", 5),
        ]:
            db.session.add(Target(campaign=camp, org_id=org.id if org else None, metric=metric, value=value))
        db.session.flush()
    return k


def D(x) -> Decimal:  # noqa: N802
    return Decimal(str(x))


#: (scope, range) → the metrics; scope "all" / "A" / "B"; range "full" (campaign) / "range" (RANGE)
EXPECTED = {
    ("all", "full"): dict(
        firms_reached=8, firms_visited=6, visits=7, events_held=3, firm_attendances=5, staff_participating=5,
        credit_firms=5, credit_firms_high_tech=2, credit_amount_wan=D(8900), ip_pledge_deals=3,
        ip_pledge_amount_wan=D(6100), ip_pledge_registered_amount_wan=D(4950), disbursed_firms=2,
        disbursed_amount_wan=D(3300), first_loan_firms=2, sla_hit_rate=D("0.7143"), avg_discount_bp=D("12.24"),
        firms_with_need=2, firms_applied=7),
    ("all", "range"): dict(
        firms_reached=7, firms_visited=5, visits=6, events_held=3, firm_attendances=5, staff_participating=5,
        credit_firms=4, credit_firms_high_tech=1, credit_amount_wan=D(3900), ip_pledge_deals=2,
        ip_pledge_amount_wan=D(1100), ip_pledge_registered_amount_wan=D(950), disbursed_firms=1,
        disbursed_amount_wan=D(800), first_loan_firms=2, sla_hit_rate=D("0.6667"), avg_discount_bp=D("12.24"),
        firms_with_need=2, firms_applied=6),
    ("A", "full"): dict(
        firms_reached=5, firms_visited=4, visits=4, events_held=1, firm_attendances=2, staff_participating=3,
        credit_firms=3, credit_firms_high_tech=2, credit_amount_wan=D(6100), ip_pledge_deals=2,
        ip_pledge_amount_wan=D(5800), ip_pledge_registered_amount_wan=D(4600), disbursed_firms=1,
        disbursed_amount_wan=D(800), first_loan_firms=1, sla_hit_rate=D("0.7500"), avg_discount_bp=D("17.00"),
        firms_with_need=2, firms_applied=4),
    ("A", "range"): dict(
        firms_reached=4, firms_visited=3, visits=3, events_held=1, firm_attendances=2, staff_participating=3,
        credit_firms=2, credit_firms_high_tech=1, credit_amount_wan=D(1100), ip_pledge_deals=1,
        ip_pledge_amount_wan=D(800), ip_pledge_registered_amount_wan=D(600), disbursed_firms=1,
        disbursed_amount_wan=D(800), first_loan_firms=1, sla_hit_rate=D("0.6667"), avg_discount_bp=D("17.00"),
        firms_with_need=2, firms_applied=3),
    ("B", "full"): dict(
        firms_reached=3, firms_visited=3, visits=3, events_held=1, firm_attendances=2, staff_participating=2,
        credit_firms=2, credit_firms_high_tech=0, credit_amount_wan=D(2800), ip_pledge_deals=1,
        ip_pledge_amount_wan=D(300), ip_pledge_registered_amount_wan=D(350), disbursed_firms=1,
        disbursed_amount_wan=D(2500), first_loan_firms=1, sla_hit_rate=D("0.6667"), avg_discount_bp=D("10.54"),
        firms_with_need=0, firms_applied=3),
}


def reference_metrics(campaign, *, start=None, end=None, bank_id=None, industry=None, area=None, scope=None):
    """An independent oracle: every metric computed in Python from the rows the scope can load (ORM hook).

    Deliberately naive (loads every row), so it shares no SQL with crm.dashboard.metrics.
    """
    from crm.auth.models import User
    from crm.core.models import HolidayOverride
    from crm.core.scoping import current_scope, scoped
    from crm.core.workdays import sla_tier_days, workdays_between
    from crm.credit.models import APPROVED_STAGES, DECIDED_STAGES
    from crm.visits.models import Visit

    scope = scope or current_scope()
    with scoped(scope):
        if scope.restricted:
            bank_id = scope.bank_id
        lo = max(campaign.start_on, start) if start else campaign.start_on
        hi = min(campaign.end_on, end) if end else campaign.end_on
        inside = lambda d: d is not None and lo <= d <= hi  # noqa: E731
        firm_ok = lambda fm: (not industry or fm.industry_code == industry) and (not area or fm.area_code == area)  # noqa: E731,E501
        org_bank = lambda org: org.bank.id if org.bank is not None else None  # noqa: E731
        event_ok = lambda e: (e.campaign_id == campaign.id and e.status == EventStatus.HELD and inside(e.held_on)  # noqa: E731
                              and (bank_id is None or any(org_bank(o) == bank_id for o in e.organisers)))
        visits = [v for v in db.session.scalars(sa.select(Visit)) if v.campaign_id == campaign.id
                  and not v.is_deleted and inside(v.visited_on) and (bank_id is None or v.bank_id == bank_id)
                  and firm_ok(v.firm)]
        events = [e for e in db.session.scalars(sa.select(Event)) if event_ok(e)
                  and (not industry or industry in [i.code for i in e.industries])]
        regs = [r for r in db.session.scalars(sa.select(Registration)) if r.checked_in_at is not None
                and event_ok(r.event) and firm_ok(r.firm)]
        apps = [a for a in db.session.scalars(sa.select(CreditApplication)) if a.campaign_id == campaign.id
                and (bank_id is None or a.bank_id == bank_id) and firm_ok(a.firm)]
        bank_user = lambda u: u.bank_id is not None and (bank_id is None or u.bank_id == bank_id)  # noqa: E731
        staff = {v.rm_id for v in visits if bank_user(v.rm)}
        staff |= {u.id for v in visits for u in v.companions if bank_user(u)}
        staff |= {u.id for e in events for u in e.staff if bank_user(u)}
        approved = [a for a in apps if a.stage in APPROVED_STAGES and inside(a.decided_on)]
        ip = [a for a in approved if a.product.is_ip_pledge]
        decided = [a for a in apps if a.stage in DECIDED_STAGES and inside(a.decided_on)]
        overrides = {o.day: o.is_workday for o in db.session.scalars(sa.select(HolidayOverride))}
        hits = sum(1 for a in decided
                   if workdays_between(a.accepted_on, a.decided_on, overrides).count <= sla_tier_days(a.requested_fen))
        disc = [a for a in approved if a.discount_bp is not None]
        disbursed = [a for a in apps if inside(a.disbursed_on)]
        wan = lambda fen: (Decimal(fen) / WAN).normalize() if fen else Decimal(0)  # noqa: E731
        den = sum(a.approved_fen for a in disc)
        return {
            "firms_reached": len({v.firm_id for v in visits} | {r.firm_id for r in regs}),
            "firms_visited": len({v.firm_id for v in visits}),
            "visits": len(visits),
            "events_held": len(events),
            "firm_attendances": len({(r.event_id, r.firm_id) for r in regs}),
            "staff_participating": len(staff),
            "credit_firms": len({a.firm_id for a in approved}),
            "credit_firms_high_tech": len({a.firm_id for a in approved if a.high_tech_at_decision}),
            "credit_amount_wan": wan(sum(a.approved_fen for a in approved)),
            "ip_pledge_deals": len(ip),
            "ip_pledge_amount_wan": wan(sum(a.approved_fen for a in ip)),
            "ip_pledge_registered_amount_wan": wan(sum(p.secured_fen or 0 for a in ip for p in a.pledges
                                                       if p.registered_on is not None)),
            "disbursed_firms": len({a.firm_id for a in disbursed}),
            "disbursed_amount_wan": wan(sum(a.disbursed_fen or 0 for a in disbursed)),
            "first_loan_firms": len({a.firm_id for a in approved if a.is_first_loan}),
            "sla_hit_rate": (Decimal(hits) / len(decided)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) if decided else None,
            "avg_discount_bp": (Decimal(sum(a.approved_fen * a.discount_bp for a in disc)) / den).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP) if den else None,
            "firms_with_need": len({v.firm_id for v in visits if (v.need_amount_fen or 0) > 0}),
            "firms_applied": len({a.firm_id for a in apps if inside(a.accepted_on)}),
        }
