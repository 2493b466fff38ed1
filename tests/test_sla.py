"""The approval SLA and the valuation promise in PRC working days, through the credit services and pages."""
from datetime import date

import pytest

from crm.core.models import HolidayOverride
from crm.credit import services
from crm.credit.models import Stage
from crm.credit.sla import application_sla, load_overrides, sla_met, valuation_promise
from crm.extensions import db
from tests import factories_credit as fc

WAN = 1_000_000
TODAY = date(2026, 11, 26)


@pytest.mark.parametrize("accepted, wan, deadline", [
    # Spring Festival 2025: rest 28 Jan–4 Feb; Sun 26 Jan and Sat 8 Feb are make-up working days
    (date(2025, 1, 24), 500, date(2025, 2, 5)),     # Sun 26 (make-up), Mon 27, then Wed 5 Feb
    (date(2025, 1, 25), 1000, date(2025, 2, 5)),    # accepted on a Saturday: same three days
    (date(2025, 1, 27), 2000, date(2025, 2, 10)),   # 5, 6, 7, Sat 8 (make-up), Mon 10
    (date(2025, 1, 20), 5000, date(2025, 2, 8)),    # ten working days ending on the make-up Saturday
    # National Day 2025: rest 1–8 Oct; Sun 28 Sep and Sat 11 Oct are make-up working days
    (date(2025, 9, 26), 800, date(2025, 9, 30)),    # Sun 28 (make-up), Mon 29, Tue 30
    (date(2025, 9, 30), 3000, date(2025, 10, 14)),  # 9, 10, Sat 11 (make-up), 13, 14
])
def test_deadline_counts_prc_working_days_from_the_day_after_acceptance(app, world, accepted, wan, deadline):
    a = fc.application(world, accepted_on=accepted, requested_wan=wan)
    p = application_sla(a, TODAY, load_overrides())
    assert p.deadline == deadline
    assert p.provisional is False


def test_uncovered_year_falls_back_to_weekdays_and_is_provisional(app, world):
    a = fc.application(world, accepted_on=date(2026, 11, 20))
    a.accepted_on = date(2027, 2, 1)  # a year chinese_calendar 1.11 does not cover
    p = application_sla(a, date(2027, 2, 1), load_overrides())
    assert p.deadline == date(2027, 2, 4)
    assert p.provisional is True


def test_admin_overrides_change_a_fallback_deadline(app, world):
    a = fc.application(world)
    a.accepted_on = date(2027, 2, 4)  # Thu
    assert application_sla(a, date(2027, 2, 4), load_overrides()).deadline == date(2027, 2, 9)
    db.session.add_all([HolidayOverride(day=date(2027, 2, 6), is_workday=True, note="调休上班"),
                        HolidayOverride(day=date(2027, 2, 8), is_workday=False, note="春节")])
    db.session.flush()
    p = application_sla(a, date(2027, 2, 4), load_overrides())
    # Fri 5, Sat 6 (override: working), Mon 8 is off (override), Tue 9
    assert p.deadline == date(2027, 2, 9)
    assert p.provisional is True
    db.session.add(HolidayOverride(day=date(2027, 2, 7), is_workday=True))
    db.session.flush()
    assert application_sla(a, date(2027, 2, 4), load_overrides()).deadline == date(2027, 2, 7)


@pytest.mark.parametrize("requested_fen, days", [
    (1, 3),
    (1000 * WAN, 3),
    (1000 * WAN + 1, 5),
    (3000 * WAN, 5),
    (3000 * WAN + 1, 10),
])
def test_tier_boundaries_are_inclusive(app, world, requested_fen, days):
    a = fc.application(world)
    a.requested_fen = requested_fen
    assert application_sla(a, TODAY).days == days


@pytest.mark.parametrize("requested, days", [("1000", 3), ("1000.000001", 5), ("3000", 5), ("3000.000001", 10)])
def test_tier_from_the_amount_typed_in_wan(app, world, login_as, requested, days):
    client = login_as(world.rm_a)
    resp = client.post("/credit/new", data={
        "firm": world.firm.credit_code, "product_code": "working_capital", "requested_wan": requested,
        "accepted_on": "2025-01-24", "campaign_id": world.campaign.id, "branch_id": world.branch_a.id,
        "rm_id": world.rm_a.id})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    from crm.credit.models import CreditApplication

    a = db.session.scalars(db.select(CreditApplication)).one()
    assert a.requested_fen == services_fen(requested)
    assert application_sla(a, TODAY).days == days


def services_fen(wan: str) -> int:
    from crm.core.formatting import wan_to_fen

    return wan_to_fen(wan)


def test_open_application_shows_days_left_due_soon_and_breached(app, world):
    a = fc.application(world, accepted_on=date(2025, 1, 24))
    p = application_sla(a, date(2025, 1, 24))
    assert (p.days_left, p.state) == (3, "open")
    p = application_sla(a, date(2025, 1, 27))  # Sun 26 (make-up) and Mon 27 used
    assert (p.days_left, p.state) == (1, "due_soon")
    p = application_sla(a, date(2025, 2, 3))  # holidays do not count
    assert (p.days_left, p.state) == (1, "due_soon")
    p = application_sla(a, date(2025, 2, 5))
    assert (p.days_left, p.state) == (0, "due_soon")
    p = application_sla(a, date(2025, 2, 6))
    assert (p.days_left, p.state, p.breached) == (-1, "breached", True)


@pytest.mark.parametrize("decided, met", [(date(2025, 2, 5), True), (date(2025, 2, 6), False)])
def test_decided_application_met_or_missed_its_sla(app, world, decided, met):
    a = fc.application(world, accepted_on=date(2025, 1, 24))
    fc.advance(a, world.rm_a, Stage.UNDER_REVIEW, on=date(2025, 1, 24))
    with services_scope(world.rm_a):
        services.move(a, Stage.DECLINED, world.rm_a, decided, decision=services.Decision(decline_reason_code="policy"),
                      today=TODAY)
    p = application_sla(a, TODAY)
    assert p.met is met
    assert p.state == ("met" if met else "missed")
    assert sla_met(a.accepted_on, a.decided_on, a.requested_fen) is met


def test_withdrawn_application_has_no_sla(app, world):
    a = fc.application(world)
    fc.advance(a, world.rm_a, Stage.WITHDRAWN)
    assert application_sla(a, TODAY) is None


@pytest.mark.parametrize("completed, met, elapsed", [
    (date(2025, 2, 5), True, 1),   # requested Mon 27 Jan: the Spring Festival does not count
    (date(2025, 2, 7), True, 3),
    (date(2025, 2, 8), False, 4),  # the make-up Saturday counts
])
def test_valuation_promise_is_three_working_days(app, world, completed, met, elapsed):
    a = fc.application(world, accepted_on=date(2025, 1, 24))
    with services_scope(world.rm_a):
        v = services.add_valuation(a, world.rm_a, "深圳市某资产评估有限公司", date(2025, 1, 27), completed, 800 * WAN,
                                   today=TODAY)
    p = valuation_promise(v, TODAY)
    assert (p.met, p.elapsed) == (met, elapsed)
    assert p.deadline == date(2025, 2, 7)


def test_application_page_says_when_the_calendar_is_provisional(app, world, login_as):
    a = fc.application(world, accepted_on=date(2025, 1, 24))
    db.session.commit()
    client = login_as(world.rm_a)
    html = client.get(f"/credit/{a.id}").get_data(as_text=True)
    assert "2025-02-05" in html
    assert 'data-testid="calendar-fallback"' not in html
    a.accepted_on = date(2026, 12, 30)  # the deadline runs into 2027, which the library does not cover
    db.session.commit()
    html = client.get(f"/credit/{a.id}").get_data(as_text=True)
    assert 'data-testid="calendar-fallback"' in html
    assert "2027-01-04" in html  # Thu 31 Dec, Fri 1 Jan (weekday under the fallback), Mon 4 Jan
    db.session.add(HolidayOverride(day=date(2027, 1, 1), is_workday=False, note="元旦"))
    db.session.commit()
    html = client.get(f"/credit/{a.id}").get_data(as_text=True)
    assert "2027-01-05" in html and 'data-testid="calendar-fallback"' in html


def test_sla_watch_lists_due_soon_and_breached_per_bank_and_branch(app, world, login_as, monkeypatch):
    late = fc.application(world, accepted_on=date(2026, 11, 16))
    soon = fc.application(world, accepted_on=date(2026, 11, 24), firm=fc_firm())
    fresh = fc.application(world, accepted_on=date(2026, 11, 26), requested_wan=5000, firm=fc_firm())
    other = fc.application(world, world.rm_b, accepted_on=date(2026, 11, 16), firm=fc_firm())
    db.session.commit()
    monkeypatch.setattr("crm.credit.views.today_local", lambda: date(2026, 11, 26))
    client = login_as(world.bureau_user)
    html = client.get("/credit/sla").get_data(as_text=True)
    assert html.count('data-testid="sla-group"') == 2
    for a in (late, soon, other):
        assert f"/credit/{a.id}\"" in html
    assert f"/credit/{fresh.id}\"" not in html
    client.post("/logout")
    client = login_as(world.rm_b)
    html = client.get("/credit/sla").get_data(as_text=True)
    assert f"/credit/{other.id}\"" in html and f"/credit/{late.id}\"" not in html


def fc_firm():
    from tests import factories

    return factories.firm()


def services_scope(user):
    from crm.core.scoping import scope_for, scoped

    return scoped(scope_for(user))
