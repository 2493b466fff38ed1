"""Partial results per shard (crm/dashboard/shards.py) and the writes that invalidate them (crm/dashboard/snapshots.py).

The shards are made small here (4 firms, 2 users), so the 40 generated firms span ten shards and a write touches
one of many. Exactness: every breakdown of random filters, for the bureau and a bank user, equals the reference
``SqlBackend`` after rounds of random writes through the services (placed in shards) and through bulk statements
(not placed). Placement: which rows a write bumps, and that a write the flush cannot place bumps a global slot.
"""
from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from crm.auth.models import User
from crm.core.scoping import SYSTEM, scope_for, scoped
from crm.dashboard import metrics, shards, snapshots
from crm.dashboard.fastsql import FastSqlBackend
from crm.dashboard.metrics import DIMENSIONS, MetricFilter, compute_metrics
from crm.events.models import (
    CheckinMethod, Event, EventStatus, Registration, event_industry, event_organiser, event_staff,
)
from crm.extensions import db
from crm.firms.models import Firm
from crm.core.models import Industry
from crm.credit.models import CreditApplication
from crm.orgs.models import Campaign, Organisation, OrgKind
from crm.visits.models import Visit, visit_companion
from tests.factories_events import event_data
from tests.sqlcount import statements
from tests.test_dashboard_snapshots import (  # noqa: F401  (site is a fixture)
    REFERENCE, _bulk_writes, _edit_needs, _facts, _plain, _service_writes, random_filter, site,
)


@pytest.fixture
def small(site, monkeypatch):
    monkeypatch.setattr(snapshots, "FIRM_SHARD_WIDTH", 4)
    monkeypatch.setattr(snapshots, "USER_SHARD_WIDTH", 2)
    backend = shards.ShardedBackend(max_entries=1000)
    return backend


def _rows() -> dict[int, int]:
    rows = dict(db.session.execute(sa.select(snapshots.write_version.c.slot, snapshots.write_version.c.n)).all())
    db.session.commit()
    return rows


def _bumped(before: dict, after: dict) -> dict[int, int]:
    return {slot: n - before.get(slot, 0) for slot, n in after.items() if n != before.get(slot, 0)}


def _global(bumped: dict) -> int:
    return sum(n for slot, n in bumped.items() if slot < snapshots.SHARD_BLOCK)


def _bumped_by(write, scope=None) -> dict:
    """The version rows ``write()`` bumps, committed (as ``scope``'s user when given)."""
    before = _rows()
    if scope is None:
        write()
    else:
        with scoped(scope):
            write()
    db.session.commit()
    return _bumped(before, _rows())


def _check(backend, filters, scopes) -> list:
    seen = []
    for scope in scopes:
        with scoped(scope):
            for f in filters:
                got = compute_metrics(f, DIMENSIONS, backend=backend)
                expected = compute_metrics(f, DIMENSIONS, backend=REFERENCE)
                assert _plain(got) == _plain(expected), (f, scope)
                seen.append(_plain(expected))
    db.session.commit()
    return seen


def test_partial_results_equal_the_reference_after_placed_and_unplaced_writes(small, monkeypatch):
    rng = random.Random(20261127)
    facts = _facts()
    assert len({f // 4 for f in db.session.scalars(sa.select(Firm.id))}) >= 8
    bank = facts["banks"][0]
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][bank.id][0])]
    filters = [MetricFilter(c.id) for c in facts["campaigns"]] + [random_filter(rng, facts) for _ in range(6)]
    first = _check(small, filters, scopes)
    cold = small.stats["cold"]
    assert cold == len(filters) * len(scopes) * (len(DIMENSIONS) + 1)

    # writes through the services are placed: the kept views recompute some shards, none is computed whole
    before = _rows()
    assert _service_writes(rng, facts, bank.id) >= 5
    bumped = _bumped(before, _rows())
    assert _global(bumped) == 0 and bumped
    seen = _check(small, filters, scopes)
    assert small.stats["cold"] == cold
    assert small.stats["refreshed"] > 0
    assert seen != first  # the writes moved numbers the kept views held
    recomputed = small.stats["shards_recomputed"]

    # edits of visits' need alone bump need shards only: the views recompute those firms' visits, and stay exact
    manager = next(u for u in facts["bank_users"][bank.id] if u.role == "bank_manager" and u.is_active)
    visits = db.session.scalars(sa.select(Visit).join(User, User.id == Visit.rm_id).where(
        Visit.bank_id == bank.id, Visit.is_deleted.is_(False), User.is_active_flag.is_(True)).order_by(Visit.id)).all()
    before, refreshed = _rows(), small.stats["refreshed"]
    with scoped(scope_for(manager)):
        assert _edit_needs(rng, visits, manager) >= 2
        db.session.commit()
    bumped = _bumped(before, _rows())
    assert bumped and all(snapshots.SOURCES["need"] <= slot < snapshots.SOURCES["need"] + snapshots.SHARD_BLOCK
                          for slot in bumped)
    _check(small, filters, scopes)
    assert small.stats["cold"] == cold and small.stats["refreshed"] > refreshed
    recomputed = small.stats["shards_recomputed"]

    # many stale shards: recomputed by grouped statements over those shards (their id ranges), or, when most of a
    # part's shards are stale, over every shard in one pass; never row by row
    from crm.dashboard import fastsql

    calls = []
    parts = small._parts

    def spy(c, dims, name, shard_ids, by_rows=True):
        calls.append((name, shard_ids, by_rows))
        return parts(c, dims, name, shard_ids, by_rows=by_rows)

    def rows_read(*args):
        raise AssertionError("many stale shards read row by row")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shards, "MAX_STALE", 0)
        mp.setattr(fastsql, "FINE_VISITS", -1)  # (else the few rows here are read row by row whatever the shards)
        mp.setattr(small, "_parts", spy)
        for family in ("visits", "reached", "attendances"):
            mp.setattr(small, f"_{family}_by_dims", rows_read)
        for most in (10.0, 0.0):
            mp.setattr(shards, "MOST_STALE", most)
            calls.clear()
            _service_writes(rng, facts, facts["banks"][1].id)
            _check(small, filters, scopes)
            assert small.stats["cold"] == cold and small.stats["shards_recomputed"] > recomputed
            recomputed = small.stats["shards_recomputed"]
            refreshed = [(ids, by_rows) for name, ids, by_rows in calls if name != "staff"]
            assert refreshed and not any(by_rows for ids, by_rows in refreshed if ids is not None)
            if most:  # (a part no shard of which holds a row yet is recomputed whole: nothing to restrict)
                assert any(ids is not None for ids, _by_rows in refreshed)
            else:
                assert all(ids is None for ids, _by_rows in refreshed)

    # bulk statements cannot be placed: every view is computed again
    before = _rows()
    _bulk_writes(rng, facts)
    assert _global(_bumped(before, _rows())) == 1
    _check(small, filters, scopes)
    assert small.stats["cold"] == 2 * cold


def test_a_visit_saved_bumps_its_firms_shard_and_its_peoples_shards_only(small):
    def firm_slots(*ids, source="visit"):
        return {snapshots.SOURCES[source] + i // 4 for i in ids}

    def user_slots(*ids):
        return {snapshots.SOURCES["people"] + i // 2 for i in ids}
    visit = db.session.scalar(sa.select(Visit).where(Visit.is_deleted.is_(False)).order_by(Visit.id).limit(1))
    people = {visit.rm_id, *(u.id for u in visit.companions)}
    other = db.session.scalar(sa.select(Firm.id).where(Firm.id // 4 != visit.firm_id // 4).limit(1))
    old_firm = visit.firm_id

    # an edit of its need: the firm's need shard only (firms with a need), neither firms reached nor staff
    before = _rows()
    visit.need_amount_fen = (visit.need_amount_fen or 0) + 100
    visit.summary = "补充了融资需求"
    db.session.commit()
    assert set(_bumped(before, _rows())) == firm_slots(old_firm, source="need")

    # an edit of what no number reads (the summary, the next step): nothing at all
    before = _rows()
    visit = db.session.get(Visit, visit.id)
    visit.summary, visit.next_step = "再补充一句", "下周回访"
    db.session.commit()
    assert _bumped(before, _rows()) == {}

    # another RM set through the relationship (its id column is set only during the flush): not a need edit, and
    # not placed either (a global slot)
    before = _rows()
    visit = db.session.get(Visit, visit.id)
    _ = visit.version, visit.companions
    new_rm = db.session.scalar(sa.select(User).where(User.bank_id == visit.bank_id, User.id.not_in(people)).limit(1))
    visit.rm = new_rm
    db.session.commit()
    bumped = _bumped(before, _rows())
    assert _global(bumped) == 1 and not set(bumped) & firm_slots(old_firm, source="need")
    visit = db.session.get(Visit, visit.id)
    people = {visit.rm_id, *(u.id for u in visit.companions)}
    assert new_rm.id in people

    # moved to another firm: both firms' shards
    before = _rows()  # (commits: every loaded object expires)
    visit = db.session.get(Visit, visit.id)
    _ = visit.version, visit.companions  # as the edit form's service loads it (the version check)
    visit.firm_id = other
    db.session.commit()
    assert set(_bumped(before, _rows())) == firm_slots(old_firm, other) | user_slots(*people)

    # soft-deleted with its companions not loaded: they are read, not guessed
    before = _rows()
    visit = db.session.get(Visit, visit.id)
    _ = visit.version
    assert "companions" not in sa.inspect(visit).dict
    visit.is_deleted = True
    db.session.commit()
    assert set(_bumped(before, _rows())) == firm_slots(other) | user_slots(*people)

    # a check-in (one atomic UPDATE, declared by the service) is its firm's
    from crm.events import services as event_services
    from crm.events.models import Event, EventStatus

    before = _rows()
    reg = db.session.scalar(sa.select(Registration).join(Event).where(
        Event.status == EventStatus.HELD, Registration.checked_in_at.is_(None)).order_by(Registration.id).limit(1))
    bureau = db.session.scalar(sa.select(User).where(User.bank_id.is_(None), User.role == "bureau").limit(1))
    with scoped(scope_for(bureau)):
        assert event_services.check_in(reg, bureau)
    db.session.commit()
    assert set(_bumped(before, _rows())) == firm_slots(reg.firm_id, source="registration")

    # an application moved through the credit service is its firm's credit
    from crm.core.formatting import today_local
    from crm.credit import services as credit_services
    from crm.credit.models import CreditApplication, Stage

    before = _rows()
    app = db.session.scalar(sa.select(CreditApplication).where(CreditApplication.stage == Stage.ACCEPTED)
                            .order_by(CreditApplication.id).limit(1))
    rm = db.session.get(User, app.rm_id)
    with scoped(scope_for(rm)):
        credit_services.move(app, Stage.UNDER_REVIEW, rm, max(today_local(), credit_services.last_change_on(app)))
    db.session.commit()
    assert set(_bumped(before, _rows())) == firm_slots(app.firm_id, source="credit")

    # a check-in through the flush (the attendance ledger) is its firm's
    before = _rows()
    reg = db.session.scalar(sa.select(Registration).where(Registration.checked_in_at.is_(None))
                            .order_by(Registration.id).limit(1))
    reg.checked_in_at, reg.checkin_method = datetime(2026, 6, 18, 6, 5, tzinfo=timezone.utc), CheckinMethod.PAPER
    db.session.commit()
    assert set(_bumped(before, _rows())) == firm_slots(reg.firm_id, source="registration")


def test_ledger_imports_of_visits_and_attendances_are_placed(small):
    """The visits and attendance ledgers write through the services, row by row: an import bumps the shards of its
    rows' firms and people only (the attendance ledger's people not checked in, none), not a global slot."""
    from datetime import timedelta

    from crm.auth.models import Role
    from crm.imports.framework import ImportContext, get_ledger, run_import
    from crm.visits.models import Visit
    from tests.factories_firms import csv_bytes
    from tests.factories_ledgers import ATTENDANCE_HEADERS, VISIT_HEADERS

    s = db.session
    facts = _facts()
    bank = facts["banks"][0]
    rm = s.scalar(sa.select(User).where(User.bank_id == bank.id, User.role == Role.RM).order_by(User.id).limit(1))
    campaign = s.get(Campaign, s.scalar(sa.select(Visit.campaign_id).where(Visit.bank_id == bank.id).limit(1)))
    firms = s.scalars(sa.select(Firm).order_by(Firm.id).limit(9)).all()
    chosen = [firms[0], firms[8]]  # two shards
    day = campaign.start_on + timedelta(days=10)
    visits = [VISIT_HEADERS] + [[f.credit_code, day, "实地走访", rm.username, "", "", "", "", "导入的走访", ""]
                                for f in chosen]
    s.commit()

    def load(kind, data, user, **kw):
        with scoped(scope_for(user)):
            report = run_import(get_ledger(kind), data, f"{kind}.csv", ImportContext(user=user, **kw), commit=True)
        assert report.ok, report.text_report()

    got = set(_bumped_by(lambda: load("visits", csv_bytes(visits), rm, campaign=campaign)))
    assert got == ({snapshots.SOURCES["visit"] + f.id // 4 for f in chosen}
                   | {snapshots.SOURCES["people"] + rm.id // 2})

    event = s.scalar(sa.select(Event).where(Event.status == EventStatus.HELD, Event.id.in_(
        sa.select(event_organiser.c.event_id).where(event_organiser.c.org_id == bank.id))).order_by(Event.id).limit(1))
    organiser = facts["bank_users"][bank.id][0]
    came, absent = chosen
    attendance = [ATTENDANCE_HEADERS,
                  [event.code, came.credit_code, came.name, "孙八", "财务总监", "13811112222", "2026-06-18 14:05"],
                  [event.code, absent.credit_code, absent.name, "周九", "经理", "13811113333", ""]]
    s.commit()
    got = set(_bumped_by(lambda: load("attendance", csv_bytes(attendance), organiser)))
    assert got == {snapshots.SOURCES["registration"] + came.id // 4}


def test_a_firm_ledger_correcting_industries_districts_or_streets_is_placed(small):
    """The firms ledger updates changed firms by bulk statements, one per set of changed columns: each is placed in
    its firms' shards (``placed_writes``), as a flush places a firm, so a correction recomputes those shards only;
    other corrections (patents) and new firms move nothing. Views stay exact and none is computed whole."""
    from crm.auth.models import Role
    from crm.core.models import Area
    from crm.imports.framework import ImportContext, get_ledger, run_import
    from tests.factories import credit_code
    from tests.factories_firms import csv_bytes
    from tests.factories_ledgers import FIRM_HEADERS

    s = db.session
    rng = random.Random(20261129)
    facts = _facts()
    bank = facts["banks"][0]
    manager = s.scalar(sa.select(User).where(User.bank_id == bank.id, User.role == Role.BANK_MANAGER,
                                             User.is_active_flag.is_(True)).order_by(User.id).limit(1))
    visited = list(s.scalars(sa.select(Firm).where(Firm.id.in_(
        sa.select(Visit.firm_id).where(Visit.is_deleted.is_(False)))).order_by(Firm.id)))
    by_shard = {}
    for firm in visited:
        by_shard.setdefault(firm.id // 4, firm)
    industry_moved, area_moved, patents_only = list(by_shard.values())[:3]
    industries = dict(s.execute(sa.select(Industry.code, Industry.name_zh)).all())
    areas = dict(s.execute(sa.select(Area.code, Area.name)).all())
    new_industry = next(c for c in facts["industries"] if c != industry_moved.industry_code)
    new_area = next(c for c in areas if c != area_moved.area_code)
    moved = {industry_moved.id: ("industry_code", new_industry), area_moved.id: ("area_code", new_area)}

    def row(firm, **cells):  # empty cells keep the stored values
        out = dict.fromkeys(FIRM_HEADERS, "")
        out.update({"企业名称": firm.name, "统一社会信用代码": firm.credit_code}, **cells)
        return [out[h] for h in FIRM_HEADERS]

    new_firm = Firm(name="台账新登记的科技公司", credit_code=credit_code(987654))
    ledger = [FIRM_HEADERS, row(industry_moved, 重点产业=industries[new_industry]),
              row(area_moved, 所属区=areas[new_area]), row(patents_only, 发明专利数=patents_only.invention_patents + 3),
              row(new_firm, 重点产业=industries[new_industry])]
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][bank.id][0])]
    campaign = facts["campaigns"][-1].id
    filters = [MetricFilter(campaign), MetricFilter(campaign, industry_code=new_industry),
               MetricFilter(campaign, area_code=new_area), random_filter(rng, facts)]
    _check(small, filters, scopes)
    cold = small.stats["cold"]
    s.commit()

    def load():
        with scoped(scope_for(manager)):
            report = run_import(get_ledger("firms"), csv_bytes(ledger), "firms.csv", ImportContext(user=manager),
                                commit=True)
        assert report.ok, report.text_report()

    got = _bumped_by(load)
    assert got == {snapshots.SOURCES["firm"] + firm_id // 4: 1 for firm_id in moved}
    for firm_id, (column, value) in moved.items():
        assert getattr(s.get(Firm, firm_id), column) == value
    assert s.get(Firm, patents_only.id).invention_patents == patents_only.invention_patents
    _check(small, filters, scopes)
    assert small.stats["cold"] == cold


def test_writes_the_flush_cannot_place_bump_a_global_slot(small):
    s = db.session
    visit = s.scalar(sa.select(Visit).order_by(Visit.id).limit(1))
    firm = s.get(Firm, visit.firm_id)
    s.commit()

    bumped = _bumped_by

    # an expired visit: the firm is not known to the flush
    assert _global(bumped(lambda: setattr(visit, "need_amount_fen", 1))) == 1
    # a firm's industry by a bulk statement
    assert _global(bumped(lambda: s.execute(sa.update(Firm).where(Firm.id == firm.id)
                                            .values(industry_code=Firm.industry_code)))) == 1
    # a bulk statement on a placed table, outside any flush
    assert _global(bumped(lambda: s.execute(sa.update(Visit).where(Visit.id == visit.id).values(need_amount_fen=2)
                                            .execution_options(synchronize_session=False)))) == 1
    # a flush of a visit and, in the same flush, a firm: the visit is placed, the firm's statement is not
    def visit_only():
        v = s.get(Visit, visit.id)
        _ = v.version, v.companions
        v.need_amount_fen = 3

    def both():
        visit_only()
        f = s.get(Firm, firm.id)
        f.industry_code = "other" if f.industry_code != "other" else "ai"

    def visit_and_firm_name():
        visit_only()
        f = s.get(Firm, firm.id)
        f.name = f.name + " "  # no number reads a firm's name (snapshots.COLUMN_SENSITIVE)
    assert _global(bumped(visit_only)) == 0
    got = bumped(both)  # (the firm's industry is placed too: its shard's firm source)
    assert _global(got) == 0 and snapshots.SOURCES["firm"] + firm.id // 4 in got
    assert _global(bumped(visit_and_firm_name)) == 0


def test_a_pledged_patent_its_valuation_and_targets_move_no_global_slot(small):
    """A patent registered with a pledge, its valuation and a campaign target are written to tables no kept number
    reads (``snapshots.IGNORED_TABLES``): the pledge is placed in its firm's credit shard, and nothing else bumps."""
    from datetime import date

    from crm.auth.models import User
    from crm.credit import services as credit_services
    from crm.core.models import CreditProduct
    from crm.credit.models import Stage
    from crm.dashboard import services as dashboard_services
    from tests.factories_credit import pledge_data

    s = db.session
    app = s.scalar(sa.select(CreditApplication)
                   .join(CreditProduct, CreditProduct.code == CreditApplication.product_code)
                   .where(CreditProduct.is_ip_pledge.is_(True),
                          CreditApplication.stage.in_([Stage.ACCEPTED, Stage.UNDER_REVIEW, Stage.APPROVED]))
                   .order_by(CreditApplication.id).limit(1))
    assert app is not None
    rm = s.scalar(sa.select(User).where(User.bank_id == app.bank_id, User.role == "rm").order_by(User.id).limit(1))
    bureau = s.scalar(sa.select(User).where(User.role == "bureau").limit(1))
    campaign = s.get(Campaign, app.campaign_id)
    s.commit()

    def bumped(write) -> dict:
        return _bumped_by(write, scope_for(rm))

    today = date(2026, 11, 26)
    got = bumped(lambda: credit_services.add_pledge(app, rm, pledge_data(), today=today))
    assert _global(got) == 0 and set(got) == {snapshots.SOURCES["credit"] + app.firm_id // 4}
    got = bumped(lambda: credit_services.add_valuation(app, rm, "深圳市评估所", date(2026, 11, 2), today=today))
    assert _global(got) == 0
    with scoped(scope_for(bureau)):
        before = _rows()
        assert dashboard_services.save_targets(campaign, {(None, "firms_reached"): 777}, user=bureau) == 1
        s.commit()
    assert _bumped(before, _rows()) == {}


def test_a_firms_industry_district_or_street_changed_bumps_its_shards_firm_source_only(small):
    """What the numbers read of a firm (``COLUMN_SENSITIVE``), changed through its columns, is placed in its shard
    (``snapshots._place_firm``): the views recompute that shard's parts, and a view filtered by firm attributes its
    staff, rather than everything. A change through a relationship, of a value not loaded, or by a bulk statement is
    not placed; a new firm and an edit of other columns move nothing."""
    from crm.core.models import Area

    s = db.session
    firm = s.scalar(sa.select(Firm).where(Firm.street_id.is_not(None)).order_by(Firm.id).limit(1))
    firm_id, street_id, industry = firm.id, firm.street_id, firm.industry_code
    other_industry = s.scalar(sa.select(Industry.code).where(Industry.code != industry).limit(1))
    other_area = s.scalar(sa.select(Area.code).where(Area.code != firm.area_code).limit(1))
    s.commit()
    own = {snapshots.SOURCES["firm"] + firm_id // 4: 1}

    def bumped(write) -> dict:
        before = _rows()
        write(s.get(Firm, firm_id))
        s.commit()
        return _bumped(before, _rows())

    assert bumped(lambda f: setattr(f, "industry_code", other_industry)) == own
    assert bumped(lambda f: setattr(f, "area_code", other_area)) == own
    assert bumped(lambda f: setattr(f, "street_id", None)) == own  # to and from no street
    assert bumped(lambda f: setattr(f, "street_id", street_id)) == own
    assert bumped(lambda f: setattr(f, "industry_code", f.industry_code)) == {}  # set to what it was
    assert bumped(lambda f: setattr(f, "name", f.name + "（新）")) == {}
    assert _global(bumped(lambda f: setattr(f, "industry", s.get(Industry, industry)))) == 1

    def expired(f):
        s.expire(f, ["industry_code"])
        f.industry_code = other_industry
    assert _global(bumped(expired)) == 1
    before = _rows()
    s.add(Firm(name="新登记的科技公司", credit_code="91440300MA5TEST01X", industry_code=industry))
    s.commit()
    assert _bumped(before, _rows()) == {}


def test_views_stay_exact_after_firms_change_industry_district_and_street(small):
    """A firm's attributes move its shard's numbers between industries, districts and streets, and, in a view
    filtered by them, the staff who visited it: every breakdown of views filtered by the old and new values, for
    the bureau and a bank user, equals the reference after such edits, with no view computed whole."""
    rng = random.Random(20261128)
    facts = _facts()
    bank = facts["banks"][0]
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][bank.id][0])]
    visited = list(db.session.scalars(sa.select(Firm).where(Firm.id.in_(
        sa.select(Visit.firm_id).where(Visit.is_deleted.is_(False)))).order_by(Firm.id)))
    campaign = facts["campaigns"][-1].id
    filters = [MetricFilter(campaign)] + [MetricFilter(campaign, industry_code=code) for code in facts["industries"]]
    filters += [MetricFilter(campaign, area_code=code) for code in facts["areas"][:3]]
    filters += [MetricFilter(campaign, street_id=street) for street in facts["streets"][:3]]
    filters += [random_filter(rng, facts) for _ in range(4)]
    _check(small, filters, scopes)
    cold, recomputed = small.stats["cold"], small.stats["shards_recomputed"]
    for firm in rng.sample(visited, 4):
        firm.industry_code = rng.choice([c for c in facts["industries"] if c != firm.industry_code])
    for firm in rng.sample(visited, 3):
        firm.area_code = rng.choice([a for a in facts["areas"] if a != firm.area_code])
        firm.street_id = rng.choice([None, *facts["streets"]])
    db.session.commit()
    _check(small, filters, scopes)
    assert small.stats["cold"] == cold and small.stats["shards_recomputed"] > recomputed


def test_a_failed_flush_leaves_no_placement_behind(small):
    s = db.session
    visit = s.scalar(sa.select(Visit).order_by(Visit.id).limit(1))
    _ = visit.companions
    visit.need_amount_fen = -1  # the flush fails on a CHECK constraint
    with pytest.raises(sa.exc.DBAPIError):
        s.flush()
    s.rollback()
    assert snapshots._placed(frozenset({"visit"})) is None
    before = _rows()
    s.execute(sa.update(Visit).where(Visit.id == visit.id).values(need_amount_fen=4)
              .execution_options(synchronize_session=False))
    s.commit()
    assert _global(_bumped(before, _rows())) == 1


def test_a_kept_view_is_never_served_to_another_bank(small):
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    banks = facts["banks"]
    got = {}
    for bank in banks:
        with scoped(scope_for(facts["bank_users"][bank.id][0])):
            got[bank.id] = compute_metrics(f, ("bank",), backend=small)
            expected = compute_metrics(f, ("bank",), backend=REFERENCE)
            assert _plain(got[bank.id]) == _plain(expected)
            assert set(got[bank.id].breakdowns["bank"]) <= {str(bank.id)}
    with scoped(SYSTEM):
        assert _plain(compute_metrics(f, ("bank",), backend=small)) == _plain(
            compute_metrics(f, ("bank",), backend=REFERENCE))
    db.session.commit()
    assert small.stats["cold"] == (len(banks) + 1) * 2


def test_an_uncommitted_write_is_counted_and_never_kept(small):
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    with scoped(SYSTEM):
        before = compute_metrics(f, backend=small).totals["visits"]
        db.session.commit()
        visit = db.session.scalar(sa.select(Visit).where(Visit.campaign_id == f.campaign_id,
                                                         Visit.is_deleted.is_(False)).limit(1))
        _ = visit.companions
        visit.is_deleted = True
        db.session.flush()
        bypassed = small.stats["bypassed"]
        assert compute_metrics(f, backend=small).totals["visits"] == before - 1
        assert small.stats["bypassed"] > bypassed
        db.session.rollback()
        assert compute_metrics(f, backend=small).totals["visits"] == before


def test_staff_are_counted_once_across_user_shards(small):
    """A companion on visits of several firm shards and an RM of another user shard: staff is a distinct count of
    users, summed over user shards, never over firm shards."""
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    users = {uid for (uid,) in db.session.execute(sa.select(visit_companion.c.user_id))}
    assert len({u // 2 for u in users}) >= 2
    with scoped(SYSTEM):
        got = compute_metrics(f, ("month", "branch"), backend=small)
        expected = compute_metrics(f, ("month", "branch"), backend=REFERENCE)
    assert _plain(got) == _plain(expected)
    assert got.totals["staff_participating"] > 0
    assert db.session.scalar(sa.select(sa.func.count(User.id))) > 0


def test_rows_of_a_shard_block_this_release_does_not_know_count_as_global():
    unknown, by_source = shards._split_versions({
        snapshots.SOURCES["visit"] + 3: 2, snapshots.SOURCES["people"] + 7: 1,
        max(snapshots.SOURCES.values()) + snapshots.SHARD_BLOCK + 5: 4})
    assert unknown == 4
    assert by_source["visit"] == {3: 2} and by_source["people"] == {7: 1} and by_source["credit"] == {}


def _exact(backend, f) -> None:
    with scoped(SYSTEM):
        got = compute_metrics(f, DIMENSIONS, backend=backend)
        expected = compute_metrics(f, DIMENSIONS, backend=REFERENCE)
    db.session.commit()
    assert _plain(got) == _plain(expected), f


@pytest.mark.parametrize("attribute", ["firm", "rm"])
def test_a_change_made_through_a_relationship_is_not_placed_in_the_old_shard(small, attribute):
    """``visit.firm = other`` reaches ``firm_id`` only during the flush: the write bumps a global slot."""
    visit = db.session.scalar(sa.select(Visit).where(Visit.is_deleted.is_(False)).order_by(Visit.id).limit(1))
    f, vid = MetricFilter(visit.campaign_id), visit.id
    _exact(small, f)
    visit = db.session.get(Visit, vid)
    if attribute == "firm":
        other = db.session.scalar(sa.select(Firm).where(Firm.id // 4 != visit.firm_id // 4).limit(1))
    else:
        people = {visit.rm_id, *(u.id for u in visit.companions)}
        other = db.session.scalar(sa.select(User).where(User.bank_id == visit.bank_id, User.id.not_in(people))
                                  .limit(1))
    other_id = other.id
    before = _rows()
    visit = db.session.get(Visit, vid)
    _ = visit.version, visit.companions
    setattr(visit, attribute, db.session.get(type(other), other_id))
    db.session.commit()
    assert _global(_bumped(before, _rows())) == 1
    _exact(small, f)


def test_a_placed_write_committed_by_another_worker_between_two_views_of_one_transaction(small):
    """The shard versions are read for each breakdown, never held for a transaction: the snapshot read its own
    (newer) version first, and must not be filed with older parts."""
    from sqlalchemy.orm import Session

    snap = snapshots.SnapshotBackend(inner=small, shared=True)
    campaigns = list(db.session.scalars(sa.select(Campaign.id).order_by(Campaign.id)))
    first, last = MetricFilter(campaigns[0]), MetricFilter(campaigns[-1])
    with scoped(SYSTEM):
        compute_metrics(last, backend=snap)
    db.session.commit()
    with scoped(SYSTEM):
        compute_metrics(first, backend=snap)  # this transaction has read the versions once
        with Session(db.engine) as other:  # another worker saves a visit of the last campaign
            visit = other.scalar(sa.select(Visit).where(Visit.campaign_id == last.campaign_id,
                                                        Visit.is_deleted.is_(False)).limit(1))
            _ = visit.companions, visit.version
            visit.is_deleted = True
            other.commit()
        compute_metrics(last, backend=snap)
        db.session.commit()
        assert _plain(compute_metrics(last, backend=snap)) == _plain(compute_metrics(last, backend=REFERENCE))
    db.session.commit()


def test_ids_beyond_a_block_are_not_placed():
    assert snapshots._firm_slots({5}, "visit") == {snapshots.SOURCES["visit"] + 5 // snapshots.FIRM_SHARD_WIDTH}
    assert snapshots._user_slots({snapshots.SHARD_BLOCK * snapshots.USER_SHARD_WIDTH}) is None
    assert snapshots._firm_slots({snapshots.SHARD_BLOCK * snapshots.FIRM_SHARD_WIDTH}, "credit") is None


@pytest.mark.parametrize("n", [1, 6])
def test_placing_a_flush_reads_the_companions_of_all_its_visits_at_once(small, n):
    """Soft-deleting visits whose companions are not loaded: one look-up for the whole flush, and every visit's
    people are bumped."""
    from tests.sqlcount import statements

    before = _rows()
    visits = list(db.session.scalars(sa.select(Visit).where(Visit.is_deleted.is_(False)).order_by(Visit.id).limit(n)))
    people = {u for (u,) in db.session.execute(sa.select(visit_companion.c.user_id)
                                               .where(visit_companion.c.visit_id.in_([v.id for v in visits])))}
    people |= {v.rm_id for v in visits}
    for visit in visits:
        assert "companions" not in sa.inspect(visit).dict
        visit.is_deleted = True
    with statements() as seen:
        db.session.commit()
    assert sum("FROM visit_companion" in s for s in seen) == 1
    bumped = _bumped(before, _rows())
    assert _global(bumped) == 0
    assert {s for s in bumped if s >= snapshots.SOURCES["people"] and s < snapshots.SOURCES["registration"]} == {
        snapshots.SOURCES["people"] + u // 2 for u in people}


def _awkward_people_and_organisers(facts) -> None:
    """Cases the generated data lacks: companions from another bank and from the bureau, event staff from a bank
    that did not organise the event, held events organised by nobody, by a bank alone, by two banks and a branch,
    by a branch alone and by branches of two banks, held events tagged with no industry, and visits and
    applications without a branch, firms without a district or street."""
    s = db.session
    bank_a, bank_b = facts["banks"][0], facts["banks"][1]
    outsider = facts["bank_users"][bank_b.id][0]
    visits = s.scalars(sa.select(Visit.id).where(Visit.bank_id == bank_a.id, Visit.is_deleted.is_(False))
                       .order_by(Visit.id).limit(12)).all()
    taken = set(s.execute(sa.select(visit_companion.c.visit_id, visit_companion.c.user_id)).all())
    for n, visit_id in enumerate(visits):
        person = outsider if n % 2 else facts["bureau"]
        if (visit_id, person.id) not in taken:
            s.execute(visit_companion.insert().values(visit_id=visit_id, user_id=person.id))
    held = s.scalars(sa.select(Event.id).where(Event.status == EventStatus.HELD).order_by(Event.id)).all()
    assert len(held) >= 5
    branch_of_b = next(br for br in facts["branches"] if br.parent_id == bank_b.id)
    branch_of_a = next(br for br in facts["branches"] if br.parent_id == bank_a.id)
    shapes = ([], [bank_a.id], [bank_a.id, bank_b.id, branch_of_b.id], [branch_of_b.id],
              [branch_of_a.id, branch_of_b.id])
    for n, event_id in enumerate(held[:-1]):  # the last keeps the generator's organisers
        orgs = shapes[n % len(shapes)]
        s.execute(event_organiser.delete().where(event_organiser.c.event_id == event_id))
        for org_id in orgs:
            s.execute(event_organiser.insert().values(event_id=event_id, org_id=org_id))
    s.execute(event_industry.delete().where(event_industry.c.event_id.in_(held[1:3])))  # tagged with no industry
    staffed = set(s.scalars(sa.select(event_staff.c.user_id).where(event_staff.c.event_id == held[1])))
    if outsider.id not in staffed:
        s.execute(event_staff.insert().values(event_id=held[1], user_id=outsider.id))
    # and what may be missing: a visit's or an application's branch, a firm's district and street
    s.execute(sa.update(Visit).where(Visit.id % 5 == 0).values(branch_id=None))
    s.execute(sa.update(CreditApplication).where(CreditApplication.id % 4 == 0).values(branch_id=None))
    s.execute(sa.update(Firm).where(Firm.id % 7 == 0).values(area_code=None, street_id=None))
    s.commit()


def _by_group(dim, rows) -> dict:
    return {((None if dim is None else metrics._key(keys[0])), keys[-1]): values for values, *keys in rows}


def test_every_breakdown_of_a_few_shards_at_once_equals_one_statement_per_breakdown(small):
    """``FastSqlBackend.family_rows`` for a few shards (a kept view's refresh) counts every breakdown from one
    statement's rows: each family equals its own statements run once per breakdown, for random filters, random
    shards, the bureau and a bank user, on data with other banks' companions and events of every organiser shape."""
    facts = _facts()
    _awkward_people_and_organisers(facts)
    rng = random.Random(1127)
    fast = FastSqlBackend()
    firm_shards = sorted({f // 4 for f in db.session.scalars(sa.select(Firm.id))})
    user_shards = sorted({u // 2 for u in db.session.scalars(sa.select(User.id))})
    filters = [MetricFilter(c.id) for c in facts["campaigns"]] + [random_filter(rng, facts) for _ in range(10)]
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][facts["banks"][1].id][0])]
    counted = {"visits": 0, "reached": 0, "attendances": 0, "staff": 0, "approved": 0, "ip_registered": 0,
               "disbursed": 0, "applied": 0, "sla": 0}
    for scope in scopes:
        with scoped(scope):
            for f in filters:
                c = metrics._resolve(f, db.session.get(Campaign, f.campaign_id))
                for family, space in (("visits", "firm"), ("reached", "firm"), ("attendances", "firm"),
                                      ("staff", "user"), ("approved", "firm"), ("ip_registered", "firm"),
                                      ("disbursed", "firm"), ("applied", "firm"), ("sla", "firm")):
                    dims = tuple(d for d in (None, *DIMENSIONS) if d is None or d in metrics._FAMILY_DIMS[family])
                    few = tuple(sorted(rng.sample(firm_shards if space == "firm" else user_shards, 3)))
                    spec = metrics.ShardSpec(4, 2, firm=few if space == "firm" else None,
                                             user=few if space == "user" else None)
                    if space == "user":
                        spec = dataclasses.replace(spec, user_ids=small._bank_users(few))
                    sc = dataclasses.replace(c, shards=spec)
                    got = fast.family_rows(family, sc, dims)
                    assert set(got) == set(dims)
                    for dim in dims:
                        expected = _by_group(dim, getattr(fast, f"_{family}")(sc, dim))
                        assert _by_group(dim, got[dim]) == expected, (family, dim, f, scope)
                        counted[family] += bool(expected)
    db.session.commit()
    assert all(n >= 5 for n in counted.values()), sorted(counted.items())


@pytest.mark.parametrize("few_event_ids", [0, 10_000])
def test_events_held_by_every_breakdown_from_one_read_equal_one_statement_per_breakdown(small, monkeypatch,
                                                                                      few_event_ids):
    """The events held, computed whole after an event's change (``FastSqlBackend._events_by_dims``), count every
    breakdown from one read of the events and their organisers (found by their ids, or by the events' conditions):
    equal to the family's statement per breakdown, for random filters, the bureau and a bank user, on events of
    every organiser shape and events tagged with no industry."""
    from crm.dashboard import fastsql

    monkeypatch.setattr(fastsql, "_FEW_EVENT_IDS", few_event_ids)
    facts = _facts()
    _awkward_people_and_organisers(facts)
    rng = random.Random(1128)
    fast = FastSqlBackend()
    filters = [MetricFilter(c.id) for c in facts["campaigns"]] + [random_filter(rng, facts) for _ in range(12)]
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][facts["banks"][1].id][0])]
    dims = tuple(d for d in (None, *DIMENSIONS) if d is None or d in metrics._FAMILY_DIMS["events"])
    counted = {dim: 0 for dim in dims}
    for scope in scopes:
        with scoped(scope):
            for f in filters:
                c = metrics._resolve(f, db.session.get(Campaign, f.campaign_id))
                got = fast._events_by_dims(c, dims)
                assert set(got) == set(dims)
                for dim in dims:
                    expected = {None if dim is None else metrics._key(keys[0]): values
                                for values, *keys in fast._events(c, dim)}
                    assert {None if dim is None else metrics._key(keys[0]): values
                            for values, *keys in got[dim]} == expected, (dim, f, scope)
                    counted[dim] += (expected[None]["events_held"] > 0) if dim is None else len(expected) > 1
    db.session.commit()
    assert all(n >= 2 for n in counted.values()), sorted(counted.items(), key=str)


def _touch_visit_of(firm_id: int) -> None:
    """A placed write in the firm's shard: one of its visits is deleted softly (its firm's visit numbers move)."""
    visit = db.session.scalar(sa.select(Visit).where(Visit.firm_id == firm_id, Visit.is_deleted.is_(False))
                              .order_by(Visit.id).limit(1))
    _ = visit.companions, visit.version
    visit.is_deleted = True
    db.session.commit()


def test_events_organisers_and_users_banks_kept_for_refreshes_are_read_again_after_a_global_write(small):
    """A refresh keeps the events' organisers and the user shards' bank users it read (``ShardedBackend.known``)
    while the global count holds; changing an organiser or a user's bank moves that count, so the next refresh
    reads them again and the view stays exact."""
    facts = _facts()
    checked_in = db.session.execute(
        sa.select(Registration.firm_id, Registration.event_id, Event.campaign_id)
        .join(Event, Event.id == Registration.event_id)
        .where(Registration.checked_in_at.is_not(None), Event.status == EventStatus.HELD)
        .join(Visit, sa.and_(Visit.firm_id == Registration.firm_id, Visit.campaign_id == Event.campaign_id,
                             Visit.is_deleted.is_(False)))
        .order_by(Registration.id).limit(1)).one()
    firm_id, event_id, campaign_id = checked_in
    f = MetricFilter(campaign_id)
    _exact(small, f)
    _touch_visit_of(firm_id)
    _exact(small, f)  # refreshed: the event's organisers are kept
    assert small.known("organisers").get(event_id) is not None
    db.session.commit()

    other_bank = next(b for b in facts["banks"] if (b.id,) not in db.session.execute(
        sa.select(event_organiser.c.org_id).where(event_organiser.c.event_id == event_id)).all())
    db.session.execute(event_organiser.insert().values(event_id=event_id, org_id=other_bank.id))
    db.session.commit()
    _exact(small, f)  # a global write: computed whole
    _touch_visit_of(firm_id)
    with scoped(SYSTEM):
        got = compute_metrics(f, ("bank",), backend=small)
    db.session.commit()
    assert str(other_bank.id) in got.breakdowns["bank"]
    _exact(small, f)

    # a user's bank: the user shards' bank users are read again
    rm_id = db.session.scalar(
        sa.select(Visit.rm_id).where(Visit.campaign_id == campaign_id, Visit.is_deleted.is_(False))
        .group_by(Visit.rm_id).having(sa.func.count() >= 2).order_by(Visit.rm_id).limit(1))
    first, second = db.session.scalars(sa.select(Visit).where(
        Visit.rm_id == rm_id, Visit.campaign_id == campaign_id, Visit.is_deleted.is_(False))
        .order_by(Visit.id).limit(2)).all()
    _ = first.companions, first.version
    first.is_deleted = True
    db.session.commit()
    _exact(small, f)  # refreshed: the RM's shard's bank users are kept
    assert any(rm_id in users for users in small.known("bank_users").values())
    db.session.commit()
    rm = db.session.get(User, rm_id)
    rm.bank_id = next(b.id for b in facts["banks"] if b.id != rm.bank_id)
    db.session.commit()
    _exact(small, f)
    second = db.session.get(Visit, second.id)
    _ = second.companions, second.version
    second.is_deleted = True
    db.session.commit()
    _exact(small, f)


def test_breakdown_labels_kept_between_views_follow_a_renamed_bank_and_industry(small):
    """The labels and codes come from reference tables kept per global count (``ShardedBackend.names``): renaming a
    bank or an industry moves that count, so the next view shows the new names."""
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    bank = facts["banks"][0]
    with scoped(SYSTEM):
        first = compute_metrics(f, ("bank", "industry"), backend=small)
    db.session.commit()
    assert str(bank.id) in first.labels["bank"] and small.known("names")
    db.session.commit()
    industry = next(k for k in first.breakdowns["industry"] if k != metrics.NONE_KEY)
    db.session.get(Organisation, bank.id).short_name = "改名银行"
    db.session.get(Industry, industry).name_zh = "改名产业"
    db.session.commit()
    with scoped(SYSTEM):
        got = compute_metrics(f, ("bank", "industry"), backend=small)
        expected = compute_metrics(f, ("bank", "industry"), backend=REFERENCE)
    db.session.commit()
    assert got.labels["bank"][str(bank.id)] == "改名银行"
    assert got.labels["industry"][industry] == expected.labels["industry"][industry]  # (zh or en, as the request)
    assert _plain(got) == _plain(expected)


def test_an_organisation_renamed_moves_its_labels_and_no_number(small):
    """A bank's short name or a branch's code changed bumps the ``names`` row only: the next view reads the labels
    and codes again and recomputes no shard. A branch given to another bank moves numbers (its visits and events
    count for that bank): not placed, every view is computed again."""
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    dims = ("bank", "branch")
    with scoped(SYSTEM):
        first = compute_metrics(f, dims, backend=small)
    branch = db.session.get(Organisation, int(next(k for k in first.breakdowns["branch"] if k != metrics.NONE_KEY)))
    bank = db.session.get(Organisation, branch.parent_id)
    other = next(b for b in facts["banks"] if b.id != bank.id)
    assert str(bank.id) in first.breakdowns["bank"]
    db.session.commit()

    def rename():
        db.session.get(Organisation, bank.id).short_name = "改名银行"
        db.session.get(Organisation, branch.id).code = "RENAMED-BR"

    assert _bumped_by(rename) == {snapshots.NAMES_SLOT: 1}
    before = dict(small.stats)
    with scoped(SYSTEM):
        got = compute_metrics(f, dims, backend=small)
        expected = compute_metrics(f, dims, backend=REFERENCE)
    db.session.commit()
    assert got.labels["bank"][str(bank.id)] == "改名银行"
    assert got.codes["branch"][str(branch.id)] == "RENAMED-BR"
    assert _plain(got) == _plain(expected)
    assert (small.stats["cold"], small.stats["shards_recomputed"]) == (before["cold"], before["shards_recomputed"])

    def move():
        db.session.get(Organisation, branch.id).parent_id = other.id

    assert _global(_bumped_by(move)) == 1
    with scoped(SYSTEM):
        got = compute_metrics(f, dims, backend=small)
        expected = compute_metrics(f, dims, backend=REFERENCE)
    db.session.commit()
    assert _plain(got) == _plain(expected)
    assert small.stats["cold"] > before["cold"]

    # what no number reads (deactivated, set again to the same values): nothing; the kind, the parent set through
    # either side of the relationship: a global slot
    def unread():
        org = db.session.get(Organisation, branch.id)
        org.is_active, org.kind, org.parent_id = False, org.kind, org.parent_id

    assert _bumped_by(unread) == {}
    db.session.get(Organisation, branch.id).is_active = True
    db.session.commit()
    for write in (lambda: setattr(db.session.get(Organisation, branch.id), "kind", OrgKind.PARK),
                  lambda: setattr(db.session.get(Organisation, branch.id), "parent", db.session.get(Organisation, bank.id)),
                  lambda: db.session.get(Organisation, bank.id).children.append(db.session.get(Organisation, branch.id))):
        assert _global(_bumped_by(write)) == 1
        db.session.rollback()
        org = db.session.get(Organisation, branch.id)
        org.kind, org.parent_id = OrgKind.BANK, other.id
        db.session.commit()
    # a rename in the same flush as a visit: both rows
    visit = db.session.scalar(sa.select(Visit).where(Visit.is_deleted.is_(False)).order_by(Visit.id).limit(1))

    def rename_and_visit():
        db.session.get(Organisation, bank.id).name = "改名银行总行"
        v = db.session.get(Visit, visit.id)
        v.need_amount_fen = (v.need_amount_fen or 0) + 100

    bumped = _bumped_by(rename_and_visit)
    assert snapshots.NAMES_SLOT in bumped and not _global(bumped) and len(bumped) == 2
    with scoped(SYSTEM):
        got = compute_metrics(f, dims, backend=small)
        expected = compute_metrics(f, dims, backend=REFERENCE)
    db.session.commit()
    assert _plain(got) == _plain(expected) and got.labels["bank"][str(bank.id)] == expected.labels["bank"][str(bank.id)]


@pytest.mark.parametrize("fine_visits", [0, 10**9])
def test_whole_views_equal_the_reference_counted_by_breakdown_or_from_their_rows(small, monkeypatch, fine_visits):
    """A view computed whole counts its visit families by one statement per breakdown (more visits than
    ``FINE_VISITS``) or from one read of their rows (at most that many), staff always from their rows: every
    breakdown equals the reference either way, for the bureau and a bank user."""
    from crm.dashboard import fastsql

    monkeypatch.setattr(fastsql, "FINE_VISITS", fine_visits)
    facts = _facts()
    _awkward_people_and_organisers(facts)
    rng = random.Random(fine_visits % 1000)
    filters = [MetricFilter(c.id) for c in facts["campaigns"]] + [random_filter(rng, facts) for _ in range(8)]
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][facts["banks"][1].id][0])]
    _check(small, filters, scopes)
    assert small.stats["cold"] >= len(filters) * (len(DIMENSIONS) + 1) and not small.stats["refreshed"]


def test_rows_read_for_a_refresh_are_read_again_by_the_next_view_of_the_same_transaction(small):
    """The rows the families of one view share (``fastsql._for_view``) are that view's only: a later view in the
    same transaction, after another worker committed a visit of the same shard, reads them again (and files its
    parts under the versions it read). Found by review: they were kept for the transaction."""
    from sqlalchemy.orm import Session

    snap = snapshots.SnapshotBackend(inner=small, shared=False)
    firm_id, campaign_id = db.session.execute(
        sa.select(Visit.firm_id, Visit.campaign_id).where(Visit.is_deleted.is_(False))
        .group_by(Visit.firm_id, Visit.campaign_id).having(sa.func.count() >= 3)
        .order_by(Visit.firm_id).limit(1)).one()
    f = MetricFilter(campaign_id)
    with scoped(SYSTEM):
        compute_metrics(f, backend=snap)
    db.session.commit()
    _touch_visit_of(firm_id)  # a placed write in the firm's shard
    with scoped(SYSTEM):
        compute_metrics(f, backend=snap)  # refreshes the shard
        with Session(db.engine) as other:  # another worker deletes another visit of that firm
            visit = other.scalar(sa.select(Visit).where(Visit.firm_id == firm_id, Visit.campaign_id == campaign_id,
                                                        Visit.is_deleted.is_(False)).order_by(Visit.id).limit(1))
            _ = visit.companions, visit.version
            visit.is_deleted = True
            other.commit()
        got = compute_metrics(f, backend=snap)  # a new version: the shard is refreshed again
        expected = compute_metrics(f, backend=REFERENCE)
    db.session.commit()
    assert _plain(got) == _plain(expected)
    with scoped(SYSTEM):  # and nothing wrong was kept for later transactions
        later = compute_metrics(f, ("bank",), backend=small)
        expected = compute_metrics(f, ("bank",), backend=REFERENCE)
    db.session.commit()
    assert _plain(later) == _plain(expected)


def test_a_view_computed_whole_again_in_the_same_transaction_reads_its_rows_again(small):
    """After another worker's unplaced write, the same view computed whole again in this transaction counts the
    visits and applications as they are now."""
    from sqlalchemy.orm import Session

    snap = snapshots.SnapshotBackend(inner=small, shared=False)
    campaign_id = db.session.scalar(sa.select(CreditApplication.campaign_id).where(
        CreditApplication.approved_fen.is_not(None)).limit(1))
    f = MetricFilter(campaign_id)
    db.session.commit()
    with scoped(SYSTEM):
        compute_metrics(f, backend=snap)  # computed whole, counted from its rows
        with Session(db.engine) as other:  # another worker: bulk statements (a global write)
            vid = other.scalar(sa.select(Visit.id).where(Visit.campaign_id == campaign_id,
                                                         Visit.is_deleted.is_(False)).limit(1))
            other.execute(sa.update(Visit).where(Visit.id == vid).values(is_deleted=True))
            other.execute(sa.update(CreditApplication).where(CreditApplication.campaign_id == campaign_id)
                          .values(approved_fen=CreditApplication.approved_fen + 100))
            other.commit()
        got = compute_metrics(f, backend=snap)  # a new global count: computed whole again
        expected = compute_metrics(f, backend=REFERENCE)
    db.session.commit()
    assert _plain(got) == _plain(expected)


# -- events: their date, status, campaign, organisers, industries and staff are placed ---------------------------


def _busy_event():
    """A held event with check-ins, people registered who did not come, and staff; and the firms registered for
    it."""
    event = db.session.scalar(
        sa.select(Event).where(Event.status == EventStatus.HELD,
                               Event.id.in_(sa.select(Registration.event_id)
                                            .where(Registration.checked_in_at.is_not(None))),
                               Event.id.in_(sa.select(Registration.event_id)
                                            .where(Registration.checked_in_at.is_(None))),
                               Event.id.in_(sa.select(event_staff.c.event_id)))
        .order_by(Event.id).limit(1))
    firms = set(db.session.scalars(sa.select(Registration.firm_id).where(Registration.event_id == event.id)))
    return event, firms


def _checked_in_firms(event_id) -> set:
    return set(db.session.scalars(sa.select(Registration.firm_id).where(Registration.event_id == event_id,
                                                                        Registration.checked_in_at.is_not(None))))


def _event_log(after: int) -> list:
    """The event changes logged since the event row's count ``after``, as (seq, change)."""
    upto = _rows().get(snapshots.EVENT_SLOT, 0)
    got = snapshots.read_event_changes(db.session.connection(), after, upto, numbered=True)
    db.session.commit()
    return [(seq, list(change)) for seq, change in got]


def _state(event) -> list:
    return [event.campaign_id, event.held_on.isoformat(), event.status.value, sorted(o.id for o in event.organisers),
            sorted(i.code for i in event.industries), sorted(u.id for u in event.staff)]


def test_an_events_date_status_campaign_organisers_industries_or_staff_are_placed(small):
    """Editing such an event bumps the ``event`` row only, and logs with that row its state before and after
    (campaign, date, status, organisers, industries, staff) and the check-in shards of the firms checked in at it
    (not those only registered); its title or venue bump nothing, nor does any change of an event not held before
    or after (planned, cancelled); a new held event bumps the event row and its staff, and logs that it is new; a
    column set through a relationship or a deleted event bumps a global slot."""
    from datetime import timedelta

    from crm.events import services as event_services

    s = db.session
    facts = _facts()
    bureau = facts["bureau"]
    event, firms = _busy_event()
    staff = {u.id for u in event.staff}
    newcomer = next(u for u in facts["bank_users"][facts["banks"][1].id] if u.id not in staff)
    checked_in = _checked_in_firms(event.id)
    s.commit()
    def registration_slots_of(ids):
        return {f // 4 for f in ids}

    assert registration_slots_of(checked_in) != registration_slots_of(firms)  # (some did not come)

    def bumped(write) -> dict:
        return _bumped_by(write, scope_for(bureau))

    def people(ids):
        return {snapshots.SOURCES["people"] + u // 2 for u in ids}

    count = _rows().get(snapshots.EVENT_SLOT, 0)
    before = _state(event)
    got = bumped(lambda: event_services.update_event(
        event, event_data(event, held_on=event.held_on - timedelta(days=1)), bureau))
    assert set(got) == {snapshots.EVENT_SLOT}
    after = before[:1] + [(event.held_on).isoformat()] + before[2:]
    assert after != before
    assert _event_log(count) == [(count + 1, [event.id, before, after, sorted(registration_slots_of(checked_in))])]
    got = bumped(lambda: event_services.update_event(event, event_data(event, title=event.title + "（改期）",
                                                                          venue="会议中心二楼"), bureau))
    assert got == {}
    got = bumped(lambda: event_services.update_event(event, event_data(event, staff_ids=[*staff, newcomer.id]),
                                                     bureau))
    assert set(got) == {snapshots.EVENT_SLOT}
    restaffed = after[:5] + [sorted(staff | {newcomer.id})]
    assert [change[:3] for _seq, change in _event_log(count + 1)] == [[event.id, after, restaffed]]
    other = next(c for c in facts["campaigns"] if c.id != event.campaign_id)
    with scoped(scope_for(bureau)):  # (set through a relationship: not placed)
        assert _global(bumped(lambda: setattr(s.get(Event, event.id), "campaign", s.get(Campaign, other.id)))) == 1
    event = s.get(Event, event.id)
    count, before = _rows().get(snapshots.EVENT_SLOT, 0), _state(event)
    got = bumped(lambda: event_services.update_event(event, event_data(event, status=EventStatus.CANCELLED,
                                                                          industry_codes=["ai"]), bureau))
    assert set(got) == {snapshots.EVENT_SLOT}
    assert _event_log(count) == [(count + 1, [event.id, before, before[:2] + ["cancelled"] + before[3:4] + [["ai"]]
                                              + before[5:],
                                              sorted(registration_slots_of(checked_in))])]
    event = s.get(Event, event.id)  # cancelled before and after: nothing, whatever changes
    assert bumped(lambda: event_services.update_event(event, event_data(
        event, held_on=event.held_on + timedelta(days=3), staff_ids=[newcomer.id]), bureau)) == {}

    holder = {}
    got = bumped(lambda: holder.setdefault("new", event_services.create_event(event_data(
        event, code="", title="新活动", status=EventStatus.HELD, staff_ids=[newcomer.id]), bureau)))
    assert set(got) == {snapshots.EVENT_SLOT} | people({newcomer.id})
    assert [change for _seq, change in _event_log(_rows()[snapshots.EVENT_SLOT] - 1)] == [[None, None, None, []]]
    assert _global(bumped(lambda: s.delete(s.get(Event, holder["new"].id)))) == 1

    # an event still planned: created, people registered, moved, restaffed, one checked in early: no number moves
    # but that check-in's own; held at last: its row, its checked-in firm, its staff
    got = bumped(lambda: holder.setdefault("planned", event_services.create_event(event_data(
        event, code="", title="筹备中的活动", status=EventStatus.PLANNED, staff_ids=[newcomer.id]), bureau)))
    assert got == {}
    planned = s.get(Event, holder["planned"].id)
    registered = sorted(firms)[:3]
    for firm_id in registered:
        event_services.add_registration(planned, s.get(Firm, firm_id), event_services.PersonData(
            person_name="王五", mobile=f"1390000{firm_id:04d}"), bureau)
    s.commit()
    planned = s.get(Event, planned.id)
    assert bumped(lambda: event_services.update_event(planned, event_data(
        planned, held_on=planned.held_on + timedelta(days=7), staff_ids=[*staff]), bureau)) == {}
    early = s.scalar(sa.select(Registration).where(Registration.event_id == planned.id,
                                                   Registration.firm_id == registered[0]))
    assert set(bumped(lambda: event_services.check_in(early, bureau))) == {
        snapshots.SOURCES["registration"] + registered[0] // 4}
    planned = s.get(Event, planned.id)
    count, before = _rows().get(snapshots.EVENT_SLOT, 0), _state(planned)
    got = bumped(lambda: event_services.update_event(planned, event_data(planned, status=EventStatus.HELD), bureau))
    assert set(got) == {snapshots.EVENT_SLOT}
    assert _event_log(count) == [(count + 1, [planned.id, before, before[:2] + ["held"] + before[3:],
                                              [registered[0] // 4]])]


def test_a_planned_events_staff_changed_after_another_worker_held_it_is_placed(small):
    """A change of a planned event's staff alone updates no ``event`` row, so no version check notices that another
    worker held the event meanwhile: the placement reads the committed status under the event's lock, and places
    (logs) the change as a held event's (found by review: the status this session loaded said planned, and nothing
    was bumped)."""
    from sqlalchemy.orm import Session

    from crm.events import services as event_services

    s = db.session
    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    staff = [u.id for u in facts["bank_users"][facts["banks"][0].id][:1]]
    newcomer = facts["bank_users"][facts["banks"][1].id][0]
    with scoped(scope_for(bureau)):
        planned = event_services.create_event(event_data(event, code="", title="筹备中", status=EventStatus.PLANNED,
                                                         staff_ids=staff), bureau)
    s.commit()
    planned = s.get(Event, planned.id)
    _ = planned.version, planned.status, planned.staff, planned.organisers, planned.industries
    with Session(db.engine) as other:  # another worker holds it
        held = other.get(Event, planned.id)
        _ = held.organisers, held.industries, held.staff
        held.status = EventStatus.HELD
        other.commit()
    with db.engine.connect() as conn:  # (not through the session: a commit would expire what it loaded)
        before = dict(conn.execute(sa.select(snapshots.write_version.c.slot, snapshots.write_version.c.n)).all())
    assert sa.inspect(planned).dict["status"] == EventStatus.PLANNED
    planned.staff.append(s.get(User, newcomer.id))  # (as this session loaded it: planned)
    s.commit()
    got = set(_bumped(before, _rows()))
    assert got == {snapshots.EVENT_SLOT}, got
    [(_seq, (event_id, was, now, _shards))] = _event_log(before[snapshots.EVENT_SLOT])
    assert event_id == planned.id and was[2] == now[2] == "held"  # (as committed, not as this session loaded it)
    assert now[5] == sorted({*staff, newcomer.id}) and was[5] == sorted(staff)


def test_views_stay_exact_after_events_change_and_are_only_refreshed(small):
    from datetime import timedelta

    from crm.events import services as event_services

    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    campaign = db.session.get(Campaign, event.campaign_id)
    bank = next(b for b in facts["banks"] if b.id in {o.id for o in event.organisers})
    other_bank = next(b for b in facts["banks"] if b.id != bank.id)
    branch = next((o for o in facts["branches"] if o.parent_id in {b.id for b in facts["banks"]}), None)
    filters = [MetricFilter(campaign.id), MetricFilter(campaign.id, bank_id=bank.id),
               MetricFilter(campaign.id, industry_code="ai"),
               MetricFilter(campaign.id, date_from=event.held_on, date_to=event.held_on + timedelta(days=40))]
    if branch is not None:
        filters.append(MetricFilter(campaign.id, bank_id=branch.parent_id, branch_id=branch.id))
    scopes = [scope_for(bureau), scope_for(facts["bank_users"][bank.id][0]),
              scope_for(facts["bank_users"][other_bank.id][0])]
    first = _check(small, filters, scopes)
    cold = small.stats["cold"]
    other_campaign = next(c for c in facts["campaigns"] if c.id != campaign.id)
    edits = [dict(held_on=event.held_on + timedelta(days=50)), dict(status=EventStatus.CANCELLED),
             dict(status=EventStatus.HELD, organiser_ids=[other_bank.id]), dict(industry_codes=["low_altitude"]),
             dict(industry_codes=["ai", "biomedicine"]),
             *([dict(organiser_ids=[other_bank.id, branch.id])] if branch is not None else []),
             dict(staff_ids=[facts["bank_users"][other_bank.id][0].id]),
             dict(campaign_id=other_campaign.id, held_on=other_campaign.start_on + timedelta(days=3))]
    seen = []
    for changes in edits:
        refreshed = small.stats["refreshed"]
        event = db.session.get(Event, event.id)
        with scoped(scope_for(bureau)):
            event_services.update_event(event, event_data(event, **changes), bureau)
        db.session.commit()
        seen.append(_check(small, filters, scopes))
        assert small.stats["cold"] == cold and small.stats["refreshed"] > refreshed, changes
    assert seen[0] != first and len({repr(v) for v in seen}) > 2  # the edits moved numbers

    # a person who had not come is checked in, then the event moves again: that firm now counts, and moves
    event = db.session.get(Event, event.id)
    event_services.update_event(event, event_data(event, campaign_id=campaign.id, held_on=campaign.start_on
                                                  + timedelta(days=20)), bureau)
    db.session.commit()
    _check(small, filters, scopes)
    late = db.session.scalar(sa.select(Registration).where(Registration.event_id == event.id,
                                                           Registration.checked_in_at.is_(None))
                             .order_by(Registration.firm_id.desc()).limit(1))
    with scoped(scope_for(bureau)):
        assert event_services.check_in(late, bureau)
    db.session.commit()
    _check(small, filters, scopes)
    event = db.session.get(Event, event.id)
    with scoped(scope_for(bureau)):
        event_services.update_event(event, event_data(event, held_on=event.held_on + timedelta(days=30)), bureau)
    db.session.commit()
    _check(small, filters, scopes)

    # planned again: moved, restaffed, reorganised and a person checked in while planned (none of it placed),
    # then held: every view equals the reference at each step
    steps = [dict(status=EventStatus.PLANNED), dict(held_on=event.held_on - timedelta(days=12),
                                                    staff_ids=[facts["bank_users"][bank.id][0].id],
                                                    organiser_ids=[bank.id, other_bank.id]),
             "check in", dict(status=EventStatus.HELD)]
    for step in steps:
        event = db.session.get(Event, event.id)
        with scoped(scope_for(bureau)):
            if step == "check in":
                assert event_services.check_in(db.session.scalar(
                    sa.select(Registration).where(Registration.event_id == event.id,
                                                  Registration.checked_in_at.is_(None)).limit(1)), bureau)
            else:
                event_services.update_event(event, event_data(event, **step), bureau)
        db.session.commit()
        _check(small, filters, scopes)
    assert small.stats["cold"] == cold


def test_an_events_change_recomputes_only_what_it_moves_in_each_view(small, monkeypatch):
    """A held event moved within its month and window, or renamed, moves nothing in any view; re-tagged, its events
    held by industry; its organisers changed, the views with a bank in them (check-ins, staff, events held); moved
    to another month, the views by month; held no more or again, every view; restaffed, the staff of the people who
    joined. Where a part moves nothing, none of its statements runs; where it moves, only for the event's firms'
    and people's shards, the check-ins counted again firm by firm, the staff person by person and the events held
    event by event instead of recomputed; every view equals the reference each time."""
    from datetime import timedelta

    from crm.events import services as event_services

    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    campaign = db.session.get(Campaign, event.campaign_id)
    firm_shards = {f // 4 for f in _checked_in_firms(event.id)}
    staff = {u.id for u in event.staff}
    tags = sorted(i.code for i in event.industries)
    newcomer = next(u for u in facts["bank_users"][facts["banks"][1].id] if u.id not in staff)
    bank = next(b for b in facts["banks"] if b.id in {o.id for o in event.organisers})
    other_bank = next(b for b in facts["banks"] if b.id != bank.id)
    day = event.held_on + timedelta(days=1 if event.held_on.day < 20 else -1)  # (the same month)
    assert campaign.start_on <= day <= campaign.end_on and day.month == event.held_on.month
    assert staff and firm_shards
    assert campaign.start_on <= day + timedelta(days=40) <= campaign.end_on  # (another month, in the window)
    views = {"totals": (MetricFilter(campaign.id), ()), "by industry": (MetricFilter(campaign.id), ("industry",)),
             "by month": (MetricFilter(campaign.id), ("month",)), "by bank": (MetricFilter(campaign.id), ("bank",)),
             "bank's": (MetricFilter(campaign.id, bank_id=bank.id), ())}
    ran: list = []
    parts, whole = small._parts, small._whole

    def spy_parts(c, dims, name, shards, by_rows=True):
        ran.append((name, shards))
        return parts(c, dims, name, shards, by_rows)

    def spy_whole(c, dims):
        if dims:  # (a view whose every breakdown is kept asks for none)
            ran.append(("events", None))
        return whole(c, dims)

    counting = small._checkin_deltas

    def spy_counting(*args):
        deltas, uncounted = counting(*args)
        assert not uncounted
        for name in shards.CHECKIN_PARTS:
            counted = {shard for _dim, part, shard in deltas if part == name}
            if counted:
                ran.append((f"{name} counted", counted))
        return deltas, uncounted

    monkeypatch.setattr(small, "_parts", spy_parts)
    monkeypatch.setattr(small, "_whole", spy_whole)
    staff_counting = small._staff_deltas

    def spy_staff_counting(*args):
        deltas, uncounted = staff_counting(*args)
        assert not uncounted
        counted = {shard for _dim, _part, shard in deltas}
        if counted:
            ran.append(("staff counted", counted))
        return deltas, uncounted

    count_events = shards._count_events

    def spy_count_events(*args):
        ran.append(("events counted", None))
        return count_events(*args)

    monkeypatch.setattr(small, "_checkin_deltas", spy_counting)
    monkeypatch.setattr(shards, "_count_events", spy_count_events)
    monkeypatch.setattr(small, "_staff_deltas", spy_staff_counting)
    people = staff

    def refreshed(changes) -> dict:
        """{view: the parts ``changes`` made it recompute} (each view equal to the reference)."""
        event_now = db.session.get(Event, event.id)
        with scoped(scope_for(bureau)):
            event_services.update_event(event_now, event_data(event_now, **changes), bureau)
        db.session.commit()
        moved = {}
        with scoped(scope_for(bureau)):
            for name, (f, dims) in views.items():
                del ran[:]
                got = compute_metrics(f, dims, backend=small)
                assert _plain(got) == _plain(compute_metrics(f, dims, backend=REFERENCE)), (changes, name)
                for part, some in ran:
                    if some is not None:  # (some shards: the event's firms' or people's, no other)
                        assert part not in shards.EVENT_PARTS, (changes, name)  # (counted, not recomputed)
                        assert set(some) == ({u // 2 for u in people} if part == "staff counted"
                                             else firm_shards), (changes, name, part)
                if ran:
                    moved[name] = {part for part, _shards in ran}
        db.session.commit()
        return moved

    first = refreshed({})  # (first seen: computed whole)
    assert set(first) == set(views) and first["by bank"] >= {"checkins", "reached", "staff", "events"}
    assert refreshed(dict(held_on=day)) == {}
    assert refreshed(dict(title="改了名字")) == {}
    retagged = ["biomedicine"] if tags != ["biomedicine"] else ["ai"]
    assert refreshed(dict(industry_codes=retagged)) == {"by industry": {"events counted"}}
    both = {"checkins counted", "reached counted", "staff counted", "events counted"}
    assert refreshed(dict(organiser_ids=[bank.id, other_bank.id])) == {"by bank": both, "bank's": both}
    assert refreshed(dict(held_on=day + timedelta(days=40))) == {"by month": both}
    every = {name: both - ({"staff counted"} if name == "by industry" else set()) for name in views}  # (no staff by
    # industry)
    assert refreshed(dict(status=EventStatus.CANCELLED)) == every
    assert refreshed(dict(held_on=day)) == {}  # (cancelled before and after: not even logged)
    assert refreshed(dict(status=EventStatus.HELD)) == every
    people = {newcomer.id}
    assert refreshed(dict(staff_ids=[*staff, newcomer.id])) == {  # (another bank's person: not in the bank's view)
        name: {"staff counted"} for name in views if name != "by industry"
        and (name != "bank's" or newcomer.bank_id == bank.id)}


def test_an_events_change_rolled_back_with_its_savepoint_sends_the_transaction_to_a_global_slot(small):
    """Held, then planned and held again in a savepoint rolled back: logging "held → held" would skip the change
    that did commit (the log keeps the first state before and the last after), so the commit bumps a global slot;
    without the savepoint's rollback the change is logged."""
    event, _firms = _busy_event()
    s = db.session

    def write(roll_back: bool) -> dict:
        before = _rows()
        with scoped(SYSTEM):
            current = s.get(Event, event.id)
            current.status = EventStatus.PLANNED if current.status == EventStatus.HELD else EventStatus.HELD
            s.flush()
            savepoint = s.begin_nested()
            current.status = EventStatus.HELD if current.status == EventStatus.PLANNED else EventStatus.PLANNED
            s.flush()
            if roll_back:
                savepoint.rollback()
            else:
                savepoint.commit()
            s.commit()
        return _bumped(before, _rows())

    got = write(roll_back=True)
    assert _global(got) == 1 and snapshots.EVENT_SLOT not in got, got
    assert db.session.get(Event, event.id).status == EventStatus.PLANNED
    got = write(roll_back=False)  # (planned → held → planned: logged, and moves nothing)
    assert got == {snapshots.EVENT_SLOT: 1}, got
    [(_seq, change)] = _event_log(_rows()[snapshots.EVENT_SLOT] - 1)
    assert change[1][2] == change[2][2] == "planned"


def test_without_the_event_log_an_events_change_bumps_its_firms_and_peoples_shards(small):
    """A database not migrated to 0015 yet (the log table missing): the change bumps the check-in shards of its
    firms and the people shards of its staff before and after, as before the log, and a kept view stays exact."""
    from datetime import timedelta

    from crm.events import services as event_services

    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    staff, checked_in = {u.id for u in event.staff}, _checked_in_firms(event.id)
    newcomer = next(u for u in facts["bank_users"][facts["banks"][1].id] if u.id not in staff)
    f = MetricFilter(event.campaign_id)
    db.session.execute(sa.text(f"DROP TABLE {snapshots.EVENT_LOG_TABLE}"))
    db.session.commit()
    _check(small, [f], [scope_for(bureau)])  # (kept under the count the DDL moved: refreshed below)
    cold = small.stats["cold"]
    event = db.session.get(Event, event.id)
    got = _bumped_by(lambda: event_services.update_event(event, event_data(
        event, held_on=event.held_on + timedelta(days=40), staff_ids=[*staff, newcomer.id]), bureau),
        scope_for(bureau))
    assert _global(got) == 0
    assert set(got) == ({snapshots.EVENT_SLOT} | {snapshots.SOURCES["registration"] + f // 4 for f in checked_in}
                        | {snapshots.SOURCES["people"] + u // 2 for u in staff | {newcomer.id}}), got
    _check(small, [f], [scope_for(bureau)])
    assert small.stats["cold"] == cold  # (refreshed, every shard of the check-ins: no log to read)


def test_a_view_kept_since_event_changes_that_are_no_longer_logged_recomputes_every_check_in(small, monkeypatch):
    """The log keeps the last changes only: a view kept since older ones (or since a change a writer did not log)
    recomputes the check-ins and firms reached of every shard, and stays exact."""
    from datetime import timedelta

    from crm.events import services as event_services

    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    f = MetricFilter(event.campaign_id)
    with scoped(scope_for(bureau)):
        compute_metrics(f, ("month",), backend=small)
    db.session.commit()
    for days in (1, 2):
        event = db.session.get(Event, event.id)
        with scoped(scope_for(bureau)):
            event_services.update_event(event, event_data(event, held_on=event.held_on + timedelta(days=days)), bureau)
        db.session.commit()
    newest = _rows()[snapshots.EVENT_SLOT]
    db.session.execute(sa.delete(snapshots.event_change_log).where(snapshots.event_change_log.c.seq == newest - 1))
    db.session.commit()
    ran = []
    parts = small._parts
    monkeypatch.setattr(small, "_parts", lambda c, dims, name, which, by_rows=True: (
        ran.append((name, which)), parts(c, dims, name, which, by_rows))[1])
    with scoped(scope_for(bureau)):
        got = compute_metrics(f, ("month",), backend=small)
        assert _plain(got) == _plain(compute_metrics(f, ("month",), backend=REFERENCE))
    db.session.commit()
    assert {name for name, which in ran if which is None} >= set(shards.CHECKIN_PARTS), ran


def test_a_registration_for_an_event_being_changed_waits_for_that_change(small):
    """PostgreSQL: placing an event's change locks its row first, so a registration for it inserted by another
    transaction waits for the change to commit (and bumps its shard after it) rather than slip between the rows
    the change read and its commit."""
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from crm.events import services as event_services
    from crm.events.models import RegistrationSource

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    facts = _facts()
    event, firms = _busy_event()
    newcomer = db.session.scalar(sa.select(Firm.id).where(Firm.id.not_in(firms)).order_by(Firm.id).limit(1))
    event_id, held_on = event.id, event.held_on
    db.session.commit()

    def register(conn) -> None:
        with Session(bind=conn) as other:
            other.add(Registration(event_id=event_id, firm_id=newcomer, person_name="张三", mobile="13800138000",
                                   source=RegistrationSource.INVITED))
            other.flush()

    with scoped(scope_for(facts["bureau"])):
        event_services.update_event(event, event_data(event, held_on=held_on - timedelta(days=2)), facts["bureau"])
    with db.engine.connect() as conn:  # the change is flushed, not committed: the registration cannot go in
        conn.begin()
        conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            register(conn)
        conn.rollback()
    db.session.commit()
    with db.engine.connect() as conn:  # committed: it goes in at once
        conn.begin()
        conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
        register(conn)
        conn.rollback()


def test_a_check_in_at_an_event_being_changed_waits_and_one_in_flight_leaves_the_change_unplaced(small):
    """PostgreSQL: an event's change bumps the shards of the firms checked in at it only, so a check-in (one
    UPDATE, no foreign key checked) takes a key-share lock on its event first (``snapshots.placed_writes`` names it): it waits
    for a change in flight, and a change meeting a check-in in flight is not placed (a global slot)."""
    import threading
    from datetime import timedelta
    from typing import Optional

    from flask import current_app

    from crm.events import services as event_services

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    bureau = _facts()["bureau"]
    event, _firms = _busy_event()
    registration_id = db.session.scalar(sa.select(Registration.id).where(Registration.event_id == event.id,
                                                                         Registration.checked_in_at.is_(None))
                                        .order_by(Registration.id).limit(1))
    db.session.commit()

    app = current_app._get_current_object()

    def check_in(*, lock_timeout: str, holding: Optional[threading.Event] = None,
                 release: Optional[threading.Event] = None, ledger: bool = False) -> Optional[Exception]:
        """The check-in desk in another worker (its own app context, session and connection): the service itself,
        or (``ledger``) a flush setting the check-in time, as the attendance ledger's import does."""
        failed = []

        def desk():
            with app.app_context(), scoped(scope_for(bureau)):
                try:
                    db.session.execute(sa.text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
                    registration = db.session.get(Registration, registration_id)
                    if ledger:
                        registration.checked_in_at = datetime(2026, 6, 18, 6, 5, tzinfo=timezone.utc)
                        registration.checkin_method = CheckinMethod.PAPER
                        db.session.flush()
                    else:
                        assert event_services.check_in(registration, db.session.get(User, bureau.id))
                    if holding is not None:
                        holding.set()
                        release.wait(10)
                except sa.exc.OperationalError as exc:
                    failed.append(exc)
                finally:
                    db.session.rollback()

        thread = threading.Thread(target=desk)
        thread.start()
        if holding is None:
            thread.join(10)
        else:
            assert holding.wait(10)
        return thread, (failed[0] if failed else None)

    for ledger in (False, True):  # the event's change in flight: the check-in waits
        event = db.session.get(Event, event.id)
        with scoped(scope_for(bureau)):
            event_services.update_event(event, event_data(event, held_on=event.held_on - timedelta(days=1)), bureau)
        _thread, failed = check_in(lock_timeout="200ms", ledger=ledger)
        assert failed is not None and "lock timeout" in str(failed), ledger
        db.session.commit()

    for ledger in (False, True):  # a check-in in flight: the change does not wait, and is not placed
        holding, release = threading.Event(), threading.Event()
        thread, _ = check_in(lock_timeout="5s", holding=holding, release=release, ledger=ledger)
        try:
            before = _rows()
            event = db.session.get(Event, event.id)
            with scoped(scope_for(bureau)):
                event_services.update_event(event, event_data(event, held_on=event.held_on + timedelta(days=1)),
                                            bureau)
            db.session.commit()
            assert _global(_bumped(before, _rows())) == 1, ledger
        finally:
            release.set()
            thread.join(10)


def test_an_events_change_reads_its_registrations_holding_the_write_lock(small):
    """SQLite: the placement of an event's change reads the firms registered for it only once no other writer can
    commit (pysqlite begins a transaction at the first write, which here comes after that read)."""
    import sqlite3
    from datetime import timedelta

    from crm.events import services as event_services

    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL: test_a_registration_for_an_event_being_changed_waits_for_that_change")
    bureau = _facts()["bureau"]
    event, _firms = _busy_event()
    db.session.commit()
    blocked = []

    def at_the_read(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("SELECT DISTINCT registration.event_id, registration.firm_id"):
            other = sqlite3.connect(db.engine.url.database, timeout=0)
            try:
                other.execute("BEGIN IMMEDIATE")
                blocked.append(False)
            except sqlite3.OperationalError:
                blocked.append(True)
            finally:
                other.close()

    sa.event.listen(db.engine, "before_cursor_execute", at_the_read)
    try:
        with scoped(scope_for(bureau)):
            event_services.update_event(event, event_data(event, held_on=event.held_on + timedelta(days=3)), bureau)
        db.session.commit()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", at_the_read)
    assert blocked == [True]


def test_an_event_change_meeting_a_registration_in_flight_is_not_placed_and_a_firm_change_waits(small):
    """PostgreSQL: an event changed while another transaction holds a registration of it in flight does not wait
    (no deadlock with imports): its write is not placed, so it bumps a global slot. A registration given to another
    firm waits for an event change in flight (its event keeps its id, so no foreign key check locks the event)."""
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from crm.events import services as event_services
    from crm.events.models import RegistrationSource

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    bureau = _facts()["bureau"]
    event, firms = _busy_event()
    newcomer = db.session.scalar(sa.select(Firm.id).where(Firm.id.not_in(firms)).order_by(Firm.id).limit(1))
    registration_id = db.session.scalar(sa.select(Registration.id).where(Registration.event_id == event.id)
                                        .order_by(Registration.id).limit(1))
    db.session.commit()

    with db.engine.connect() as conn, Session(bind=conn) as other:  # a registration in flight, not committed
        conn.begin()
        other.add(Registration(event_id=event.id, firm_id=newcomer, person_name="李四", mobile="13900139000",
                               source=RegistrationSource.INVITED))
        other.flush()
        before = _rows()
        db.session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
        with scoped(scope_for(bureau)), statements() as sent:
            event_services.update_event(event, event_data(event, held_on=event.held_on + timedelta(days=1)), bureau)
        db.session.commit()
        assert _global(_bumped(before, _rows())) == 1
        assert any("FOR UPDATE NOWAIT" in sql for sql in sent)  # (it did not wait for the registration)
        conn.rollback()

    event = db.session.get(Event, event.id)
    with scoped(scope_for(bureau)):
        event_services.update_event(event, event_data(event, held_on=event.held_on - timedelta(days=1)), bureau)
    with db.engine.connect() as conn, Session(bind=conn) as other:  # the event's change in flight
        conn.begin()
        conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
        registration = other.get(Registration, registration_id)
        registration.firm_id = newcomer
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            other.flush()
        conn.rollback()
    db.session.commit()


def test_a_registration_given_to_another_firm_is_placed_with_its_event_locked(small):
    """A checked-in registration given to another firm bumps both firms' check-in shards, its event locked first
    against a change of the event in flight (``snapshots._lock_events``): with the event id not loaded, the flush
    reads it."""
    s = db.session
    registration = s.scalar(sa.select(Registration).where(Registration.checked_in_at.is_not(None))
                            .order_by(Registration.id).limit(1))
    first = registration.firm_id
    other = s.scalar(sa.select(Firm.id).where(Firm.id // 4 != first // 4).order_by(Firm.id).limit(1))
    s.commit()

    def give(firm_id, expire=False):
        reg = s.get(Registration, registration.id)
        _ = reg.firm_id, reg.event_id, reg.checked_in_at
        if expire:
            s.expire(reg, ["event_id"])
        reg.firm_id = firm_id

    for firm_id, expire in ((other, False), (first, True)):
        with statements() as sent:
            got = _bumped_by(lambda: give(firm_id, expire))
        assert set(got) == {snapshots.SOURCES["registration"] + f // 4 for f in (first, other)}
        if db.engine.dialect.name == "postgresql":
            assert any("FOR KEY SHARE" in sql for sql in sent), sent


def test_only_check_ins_move_numbers_a_person_registered_moves_none(small):
    """No kept number counts a registration that is not checked in: registering, inviting, editing, cancelling,
    deleting or giving such a person to another firm bumps nothing; checking in (at the desk, through the ledger,
    a walk-in), checking out or deleting a checked-in person bumps the firm's check-in shard; editing a checked-in
    person's name or remarks bumps nothing."""
    from crm.events import services as event_services
    from crm.events.models import RegistrationStatus

    s = db.session
    facts = _facts()
    bureau = facts["bureau"]
    event, firms = _busy_event()
    event_id = event.id
    others = s.scalars(sa.select(Firm.id).where(Firm.id.not_in(firms)).order_by(Firm.id).limit(2)).all()
    s.commit()

    def slots(*firm_ids):
        return {snapshots.SOURCES["registration"] + f // 4 for f in firm_ids}

    def bumped(write):
        return set(_bumped_by(write, scope_for(bureau)))

    def register(firm_id, mobile, **kw):
        return lambda: event_services.add_registration(s.get(Event, event_id), s.get(Firm, firm_id),
                                                       event_services.PersonData(person_name="赵六", mobile=mobile),
                                                       bureau, **kw)

    def edit(reg_id, **changes):
        def write():
            reg = s.get(Registration, reg_id)
            for key, value in changes.items():
                setattr(reg, key, value)
        return write

    assert bumped(register(others[0], "13700000001")) == set()
    reg_id = s.scalar(sa.select(Registration.id).where(Registration.mobile == "13700000001"))
    assert bumped(edit(reg_id, person_name="赵七", remarks="改名", status=RegistrationStatus.CANCELLED)) == set()
    assert bumped(edit(reg_id, firm_id=others[1])) == set()
    with scoped(scope_for(bureau)):
        assert bumped(lambda: event_services.check_in(s.get(Registration, reg_id), bureau)) == slots(others[1])
        assert bumped(lambda: event_services.undo_check_in(s.get(Registration, reg_id), bureau)) == slots(others[1])
    assert bumped(edit(reg_id, checked_in_at=datetime(2026, 6, 18, 6, 5, tzinfo=timezone.utc),
                       checkin_method=CheckinMethod.PAPER)) == slots(others[1])
    assert bumped(edit(reg_id, person_title="总经理", remarks="到场")) == set()
    assert bumped(lambda: s.delete(s.get(Registration, reg_id))) == slots(others[1])
    assert bumped(register(others[0], "13700000002", check_in=True)) == slots(others[0])
    unchecked = s.scalar(sa.select(Registration.id).where(Registration.event_id == event_id,
                                                          Registration.checked_in_at.is_(None)).limit(1))
    assert bumped(lambda: s.delete(s.get(Registration, unchecked))) == set()




def _commit_elsewhere(change) -> None:
    """``change(session)`` committed by another connection and session (another worker), under the system scope."""
    from sqlalchemy.orm import Session

    with db.engine.connect() as conn, Session(bind=conn) as other, scoped(SYSTEM):
        change(other)
        other.commit()


def _toggle(event_id: int):
    def change(session) -> None:
        event = session.get(Event, event_id)
        event.status = EventStatus.PLANNED if event.status == EventStatus.HELD else EventStatus.HELD
    return change


@pytest.mark.parametrize("meanwhile", ["another event's change", "a check-in", "an unplaced write"])
def test_a_write_committed_while_check_ins_are_counted_sends_the_view_to_be_computed_whole(small, monkeypatch,
                                                                                       meanwhile):
    """Check-ins counted again firm by firm start from the parts' state: an event's change, a check-in at one of
    the counted shards or a write no shard holds (a global slot) committed by another worker while they are read
    could be in the rows read and not in the parts, so the view is computed whole again (equal to the reference
    with that write) and nothing is kept."""
    facts = _facts()
    event, _firms = _busy_event()
    f = MetricFilter(event.campaign_id)
    other_event = db.session.scalar(sa.select(Event.id).where(Event.status == EventStatus.HELD, Event.id != event.id)
                                    .order_by(Event.id).limit(1))
    pending = db.session.scalar(sa.select(Registration.id).where(
        Registration.checked_in_at.is_(None),
        Registration.firm_id.in_(sa.select(Registration.firm_id).where(Registration.event_id == event.id,
                                                                       Registration.checked_in_at.is_not(None))))
        .order_by(Registration.id).limit(1))
    assert other_event and pending
    db.session.commit()

    def check_in(session) -> None:
        registration = session.get(Registration, pending)
        registration.checked_in_at, registration.checkin_method = datetime.now(timezone.utc), CheckinMethod.PAPER

    def unplaced(session) -> None:  # (a bulk statement: no flush places it, so it bumps a global slot)
        session.execute(sa.update(Campaign).where(Campaign.id == event.campaign_id)
                        .values(description=Campaign.description))

    counting = small._checkin_deltas

    def counted_meanwhile(*args):
        got = counting(*args)
        assert got[0], "nothing counted"
        _commit_elsewhere({"another event's change": _toggle(other_event), "a check-in": check_in,
                           "an unplaced write": unplaced}[meanwhile])
        return got

    with scoped(scope_for(facts["bureau"])):
        _exact(small, f)
        _commit_elsewhere(_toggle(event.id))
        monkeypatch.setattr(small, "_checkin_deltas", counted_meanwhile)
        cold = small.stats["cold"]
        got = compute_metrics(f, DIMENSIONS, backend=small)
        assert _plain(got) == _plain(compute_metrics(f, DIMENSIONS, backend=REFERENCE))
        assert small.stats["unsettled"] == 1 and small.stats["cold"] == cold + len(DIMENSIONS) + 1
        db.session.commit()
        monkeypatch.setattr(small, "_checkin_deltas", counting)
        _exact(small, f)  # (nothing kept: computed whole once more, then exact)
        assert small.stats["cold"] == cold + 2 * (len(DIMENSIONS) + 1)
    db.session.commit()


def _staff_visit(event) -> tuple[int, str]:
    """(the firm, its industry) of the first visit of the campaign by a person on the event's staff."""
    return tuple(db.session.execute(
        sa.select(Visit.firm_id, Firm.industry_code).join(Firm, Firm.id == Visit.firm_id)
        .where(Visit.rm_id.in_(sa.select(event_staff.c.user_id).where(event_staff.c.event_id == event.id)),
               Visit.campaign_id == event.campaign_id, Visit.is_deleted.is_(False))
        .order_by(Visit.id).limit(1)).one())


@pytest.mark.parametrize("meanwhile", [None, "a firm's industry"])
def test_staff_in_a_view_filtered_by_industry_is_counted_and_a_firms_change_meanwhile_unsettles_it(small, monkeypatch,
                                                                                                 meanwhile):
    """In a view filtered by a firm attribute, an event's change counts its people again person by person (their
    visits filtered by their firms' industry), not recomputed. Those visits' firms are in no slot of the people's:
    a firm's industry corrected by another worker while they are counted sends the view to be computed whole
    (equal to the reference with that write) and keeps nothing."""
    facts = _facts()
    event, _firms = _busy_event()
    firm_id, industry = _staff_visit(event)
    f = MetricFilter(event.campaign_id, industry_code=industry)
    elsewhere = next(c for c in facts["industries"] if c != industry)
    db.session.commit()

    def recode(session) -> None:
        session.get(Firm, firm_id).industry_code = elsewhere

    counting, parts, whole = small._staff_deltas, small._parts, small._compute_whole
    ran: list = []

    def counted(*args):
        got = counting(*args)
        assert got[0] and not got[1], "nothing counted"
        ran.append("staff counted")
        if meanwhile:
            _commit_elsewhere(recode)
        return got

    def recomputed(c, dims, name, shards_, by_rows=True):
        ran.append(name)
        return parts(c, dims, name, shards_, by_rows)

    def computed_whole(c, dims, current):
        if dims:
            ran.append("whole")
        return whole(c, dims, current)

    with scoped(scope_for(facts["bureau"])):
        _exact(small, f)
        _commit_elsewhere(_toggle(event.id))
        monkeypatch.setattr(small, "_staff_deltas", counted)
        monkeypatch.setattr(small, "_parts", recomputed)
        monkeypatch.setattr(small, "_compute_whole", computed_whole)
        cold, unsettled = small.stats["cold"], small.stats["unsettled"]
        got = compute_metrics(f, DIMENSIONS, backend=small)
        assert _plain(got) == _plain(compute_metrics(f, DIMENSIONS, backend=REFERENCE))
        refreshed = ran[:ran.index("whole")] if "whole" in ran else ran
        assert "staff counted" in refreshed and "staff" not in refreshed, ran
        assert ("whole" in ran) == bool(meanwhile), ran
        if meanwhile:
            assert small.stats["unsettled"] == unsettled + 1 and small.stats["cold"] > cold
        else:
            assert small.stats["unsettled"] == unsettled and small.stats["cold"] == cold
        db.session.commit()
        monkeypatch.setattr(small, "_staff_deltas", counting)
        monkeypatch.setattr(small, "_parts", parts)
        monkeypatch.setattr(small, "_compute_whole", whole)
        cold = small.stats["cold"]
        _exact(small, f)
        assert (small.stats["cold"] > cold) == bool(meanwhile)  # (nothing kept after the firm's change)
    db.session.commit()


def test_staff_counted_in_a_firm_filtered_view_after_an_earlier_firms_change_is_settled(small):
    """A firm's attribute corrected and seen before the view was kept leaves non-zero rows in the
    firm-attribute block; counting staff afterwards must still settle (the block's rows are not global)."""
    facts = _facts()
    event, _firms = _busy_event()
    firm_id, industry = _staff_visit(event)
    f = MetricFilter(event.campaign_id, industry_code=industry)
    other_firm = db.session.scalar(sa.select(Firm.id).where(Firm.id != firm_id).order_by(Firm.id.desc()).limit(1))
    db.session.commit()

    def restreet(session) -> None:  # (a firm attribute the view's filter does not read: still a firm-block row)
        firm = session.get(Firm, other_firm)
        firm.area_code = None if firm.area_code else session.scalar(sa.select(Firm.area_code).where(
            Firm.area_code.is_not(None)).limit(1))
        firm.street_id = None

    _commit_elsewhere(restreet)
    with scoped(scope_for(facts["bureau"])):
        _exact(small, f)
        assert sum(db.session.execute(sa.select(snapshots.write_version.c.n).where(
            snapshots.write_version.c.slot.between(snapshots.SOURCES["firm"],
                                                   snapshots.SOURCES["firm"] + snapshots.SHARD_BLOCK - 1))).scalars())
        _commit_elsewhere(_toggle(event.id))
        cold, unsettled = small.stats["cold"], small.stats["unsettled"]
        got = compute_metrics(f, DIMENSIONS, backend=small)
        assert _plain(got) == _plain(compute_metrics(f, DIMENSIONS, backend=REFERENCE))
        assert small.stats["unsettled"] == unsettled and small.stats["cold"] == cold
        db.session.commit()
    db.session.commit()


def test_a_view_computed_while_an_event_changes_is_not_kept(small, monkeypatch):
    """Parts computed while another worker commits an event's change may hold its state before or after it, and
    counting check-ins later must know which: the view is served, not kept, and the next one is computed whole."""
    facts = _facts()
    event, _firms = _busy_event()
    f = MetricFilter(event.campaign_id)
    db.session.commit()
    whole = small._whole

    def changed_meanwhile(c, dims):
        _commit_elsewhere(_toggle(event.id))
        return whole(c, dims)

    with scoped(scope_for(facts["bureau"])):
        monkeypatch.setattr(small, "_whole", changed_meanwhile)
        compute_metrics(f, DIMENSIONS, backend=small)
        db.session.commit()
        monkeypatch.setattr(small, "_whole", whole)
        assert small.stats["unsettled"] == 1
        cold = small.stats["cold"]
        _exact(small, f)
        assert small.stats["cold"] == cold + len(DIMENSIONS) + 1  # (computed whole: nothing was kept)
        _commit_elsewhere(_toggle(event.id))
        _exact(small, f)
        assert small.stats["cold"] == cold + len(DIMENSIONS) + 1 and small.stats["shards_counted"]
    db.session.commit()


def test_a_firm_reached_through_another_event_stays_reached_when_one_event_changes(small):
    """Counting an event's check-ins again firm by firm: a firm with no visit, checked in at the changed event and
    at another held by a branch of the same bank, stays reached (in the totals, by bank through the branch's bank,
    by branch, by month) when the first is cancelled, moved or given other organisers; every view equals the
    reference (it fails when the other check-ins are ignored or grouped by bank as by branch)."""
    from datetime import timedelta

    from crm.events import services as event_services
    from crm.events.models import RegistrationSource

    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    campaign = db.session.get(Campaign, event.campaign_id)
    bank = next(b for b in facts["banks"] if any(br.parent_id == b.id for br in facts["branches"]))
    branch = next(br for br in facts["branches"] if br.parent_id == bank.id)
    other_bank = next(b for b in facts["banks"] if b.id != bank.id)
    firm_id = min(_checked_in_firms(event.id))
    with scoped(SYSTEM):
        other = event_services.create_event(event_data(event, code="", title="支行专场", organiser_ids=[branch.id],
                                                       staff_ids=[], industry_codes=[]), bureau)
        db.session.flush()
        for visit in db.session.scalars(sa.select(Visit).where(Visit.firm_id == firm_id)):
            visit.is_deleted = True  # (reached through check-ins alone)
        db.session.add(Registration(event_id=other.id, firm_id=firm_id, person_name="王五", mobile="13700137000",
                                    source=RegistrationSource.INVITED, checked_in_at=datetime.now(timezone.utc),
                                    checkin_method=CheckinMethod.PAPER))
        db.session.flush()
        event = db.session.get(Event, event.id)
        event_services.update_event(event, event_data(event, organiser_ids=[bank.id]), bureau)
    db.session.commit()
    filters = [MetricFilter(campaign.id), MetricFilter(campaign.id, bank_id=bank.id)]
    scopes = [scope_for(bureau)]
    _check(small, filters, scopes)
    cold, counted = small.stats["cold"], small.stats["shards_counted"]
    for changes in (dict(status=EventStatus.CANCELLED), dict(status=EventStatus.HELD),
                    dict(held_on=other.held_on), dict(organiser_ids=[other_bank.id]),
                    dict(held_on=event.held_on + timedelta(days=35))):
        event = db.session.get(Event, event.id)
        with scoped(scope_for(bureau)):
            event_services.update_event(event, event_data(event, **changes), bureau)
        db.session.commit()
        _check(small, filters, scopes)
    assert small.stats["cold"] == cold and small.stats["shards_counted"] > counted


def _views_exact(backend, filters, scopes, dims=DIMENSIONS) -> None:
    for scope in scopes:
        with scoped(scope):
            for f in filters:
                got = compute_metrics(f, dims, backend=backend)
                assert _plain(got) == _plain(compute_metrics(f, dims, backend=REFERENCE)), (f, scope, dims)
    db.session.commit()


def _update_event(event_id: int, bureau, **changes) -> None:
    from crm.events import services as event_services

    event = db.session.get(Event, event_id)
    with scoped(scope_for(bureau)):
        event_services.update_event(event, event_data(event, **changes), bureau)
    db.session.commit()


def test_a_breakdown_kept_behind_a_gap_in_the_log_is_recomputed_while_another_is_counted(small):
    """A view's breakdowns kept at different counts (pages ask for different ones): the totals counted up to
    one change, the months left behind; a change then drops out of the log. The months are recomputed over every
    shard, the totals counted from the changes they still find (it raised TypeError: the oldest range was asked
    for)."""
    facts = _facts()
    event, _firms = _busy_event()
    f = MetricFilter(event.campaign_id)
    db.session.commit()
    _views_exact(small, [f], [scope_for(facts["bureau"])], ("month",))
    _commit_elsewhere(_toggle(event.id))
    _views_exact(small, [f], [scope_for(facts["bureau"])], ())
    dropped = _rows()[snapshots.EVENT_SLOT]
    db.session.execute(sa.delete(snapshots.event_change_log).where(snapshots.event_change_log.c.seq == dropped))
    db.session.commit()
    _commit_elsewhere(_toggle(event.id))
    counted = small.stats["shards_counted"]
    _views_exact(small, [f], [scope_for(facts["bureau"])], ("month",))
    assert small.stats["shards_counted"] > counted  # (the totals, from the one change after the gap)


def test_check_ins_of_a_counted_shard_undone_meanwhile_send_the_view_to_be_computed_whole(small, monkeypatch):
    """Every check-in of a changed event in one counted shard undone by another worker while the rows are read:
    that shard gets no change, but its part held them, so its slots are settled too and the view is computed
    whole (it was served with the check-ins still counted)."""
    event, _firms = _busy_event()
    f = MetricFilter(event.campaign_id)
    firms = sorted(_checked_in_firms(event.id))
    registrations = list(db.session.scalars(sa.select(Registration.id).where(
        Registration.event_id == event.id, Registration.firm_id.in_([x for x in firms if x // 4 == firms[0] // 4]),
        Registration.checked_in_at.is_not(None))))
    db.session.commit()
    bureau = _facts()["bureau"]
    _views_exact(small, [f], [scope_for(bureau)])
    _commit_elsewhere(_toggle(event.id))  # held -> planned

    def undo(session) -> None:
        for registration_id in registrations:
            registration = session.get(Registration, registration_id)
            registration.checked_in_at, registration.checkin_method = None, None

    counting = small._checkin_deltas

    def undone_meanwhile(*args):
        _commit_elsewhere(undo)
        return counting(*args)

    monkeypatch.setattr(small, "_checkin_deltas", undone_meanwhile)
    _views_exact(small, [f], [scope_for(bureau)])
    assert small.stats["unsettled"] == 1


def test_two_changes_of_one_event_between_views_count_from_the_first_state(small, monkeypatch):
    """An event organised by one bank, then another, then a third, with staff and firms who also took part in
    another event: counted from the state the parts hold (the first one before), not the last before. The staff
    are counted, none recomputed (from a wrong state a count comes out below zero and falls back to that)."""
    from datetime import datetime, timezone

    from crm.auth.models import Role
    from crm.events import services as event_services
    from crm.events.models import RegistrationSource
    from tests import factories

    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    b0, b1, b2 = facts["banks"][:3]
    person = facts["bank_users"][b1.id][0].id
    _update_event(event.id, bureau, organiser_ids=[b0.id])
    event = db.session.get(Event, event.id)
    with scoped(SYSTEM):
        other = event_services.create_event(event_data(event, code="", title="另一场", organiser_ids=[b1.id],
                                                       staff_ids=[person], industry_codes=[]), bureau)
        db.session.flush()
        for k, firm in enumerate(sorted(_checked_in_firms(event.id))):
            db.session.add(Registration(event_id=other.id, firm_id=firm, person_name="王五",
                                        mobile=f"137001370{k:02d}", source=RegistrationSource.INVITED,
                                        checked_in_at=datetime.now(timezone.utc), checkin_method=CheckinMethod.PAPER))
        # (a person of the first organiser with no visit: in its group by bank only through this event)
        newcomer = factories.user("b0_newcomer", Role.RM, b0).id
    db.session.commit()
    _update_event(event.id, bureau, staff_ids=sorted({person, newcomer}
                                                     | {u.id for u in db.session.get(Event, event.id).staff}))
    f = MetricFilter(event.campaign_id)
    _views_exact(small, [f], [scope_for(bureau)])
    counted = small.stats["shards_counted"]
    staff_counting, staff_counted = small._staff_deltas, []

    def spy_staff(*args):
        deltas, uncounted = staff_counting(*args)
        staff_counted.append((len(deltas), sorted(uncounted)))
        return deltas, uncounted

    monkeypatch.setattr(small, "_staff_deltas", spy_staff)
    _update_event(event.id, bureau, organiser_ids=[b1.id])
    _update_event(event.id, bureau, organiser_ids=[b2.id])
    _views_exact(small, [f], [scope_for(bureau)])
    assert small.stats["shards_counted"] > counted
    assert staff_counted and all(n and not uncounted for n, uncounted in staff_counted), staff_counted


def test_an_event_organised_by_a_branch_alone_is_counted_under_bank_and_branch_filters_and_a_banks_scope(small):
    """Organised by a branch only and untagged: tagged and untagged again (events held by industry, the None
    group), given to another bank and back, cancelled and held again; views filtered by the branch's bank and by
    the branch, for the bureau and the bank's user: each equal to the reference."""
    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    bank = next(b for b in facts["banks"] if any(br.parent_id == b.id for br in facts["branches"]))
    branch = next(br for br in facts["branches"] if br.parent_id == bank.id)
    other_bank = next(b for b in facts["banks"] if b.id != bank.id)
    _update_event(event.id, bureau, organiser_ids=[branch.id], industry_codes=[])
    campaign_id = event.campaign_id
    filters = [MetricFilter(campaign_id), MetricFilter(campaign_id, bank_id=bank.id),
               MetricFilter(campaign_id, bank_id=bank.id, branch_id=branch.id)]
    scopes = [scope_for(bureau), scope_for(facts["bank_users"][bank.id][0])]
    _views_exact(small, filters, scopes)
    counted = small.stats["shards_counted"]
    for changes in (dict(industry_codes=["ai"]), dict(industry_codes=[]), dict(organiser_ids=[other_bank.id]),
                    dict(organiser_ids=[branch.id]), dict(status=EventStatus.CANCELLED),
                    dict(status=EventStatus.HELD)):
        _update_event(event.id, bureau, **changes)
        _views_exact(small, filters, scopes)
    assert small.stats["shards_counted"] > counted


def test_an_events_change_and_a_check_in_elsewhere_in_one_of_its_shards(small):
    """A changed event's firm also checked in at another event before the next view: that shard is recomputed (its
    registrations were written), the event's other shards counted; the view equals the reference."""
    from datetime import datetime, timezone

    from crm.events import services as event_services
    from crm.events.models import RegistrationSource

    facts = _facts()
    bureau = facts["bureau"]
    event, _firms = _busy_event()
    firm = min(_checked_in_firms(event.id))
    with scoped(SYSTEM):
        other = event_services.create_event(event_data(event, code="", title="另一场", staff_ids=[],
                                                       industry_codes=[]), bureau)
        db.session.flush()
        other_id = other.id
    db.session.commit()
    f = MetricFilter(event.campaign_id)
    _views_exact(small, [f], [scope_for(bureau)])
    _commit_elsewhere(_toggle(event.id))

    def check_in(session) -> None:
        session.add(Registration(event_id=other_id, firm_id=firm, person_name="王五", mobile="13700137000",
                                 source=RegistrationSource.INVITED, checked_in_at=datetime.now(timezone.utc),
                                 checkin_method=CheckinMethod.PAPER))

    _commit_elsewhere(check_in)
    _views_exact(small, [f], [scope_for(bureau)])


def test_an_events_change_logged_under_a_number_already_taken_replaces_that_row(small):
    """A row left in the change log above the event row's count (the version table restored from an older copy
    alone) does not fail the event's save: the change's row replaces it."""
    facts = _facts()
    event, _firms = _busy_event()
    upto = _rows().get(snapshots.EVENT_SLOT, 0)
    db.session.execute(snapshots.event_change_log.insert().values(seq=upto + 1, payload="[]"))
    db.session.commit()
    _update_event(event.id, facts["bureau"], status=EventStatus.CANCELLED)
    [(seq, change)] = _event_log(upto)
    assert seq == upto + 1 and change[0] == event.id and change[2][2] == "cancelled"
