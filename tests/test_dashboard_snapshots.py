"""The dashboard's snapshot fast path (crm/dashboard/snapshots.py) gives exactly what SqlBackend gives.

Issue 8 item 4: on generated data, every metric of many random filter combinations, for the bureau and for a bank
user, from the fast path equals the reference computed from the raw records, before and after rounds of random
inserts, edits and deletes through the real services and through bulk statements. Also: a snapshot is never
served to another scope, a write through another process invalidates it, uncommitted writes never reach the cache,
and writers on PostgreSQL do not queue behind one version row.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from crm.auth.models import User
from crm.core.formatting import today_local
from crm.core.models import AuditEntry, HolidayOverride, Industry, Street
from crm.core.scoping import SYSTEM, scope_for, scoped
from crm.credit import services as credit_services
from crm.credit.models import CreditApplication, Pledge, Stage
from crm.dashboard import snapshots
from crm.dashboard.fastsql import FastSqlBackend
from crm.dashboard.metrics import (
    DIMENSIONS, PAGE_DIMENSIONS, MetricFilter, SqlBackend, compute_metrics, get_backend, page_dimensions,
)
from crm.events import services as event_services
from crm.events.models import Event, EventStatus, Registration
from crm.extensions import db
from crm.firms.models import Firm
from crm.orgs.models import Campaign, Organisation, OrgKind
from crm.perf import generate as gen
from crm.visits import services as visit_services
from crm.visits.models import Visit, visit_companion
from tests.sqlcount import statements

PLAN = gen.Plan(scale=0, banks=3, branches=4, firms=40, visits=160, events=8, registrations=60, credits=40,
                rms_per_branch=2, bureau_users=1)
REFERENCE = SqlBackend()


def _password_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash("x", method="pbkdf2:sha256:1")


@pytest.fixture
def site(app):
    """Generated data in the test's database, and the snapshot backend with an empty cache."""
    gen.generate(db.engine, 0, seed=5, plan=PLAN, analyze=False, password_hash=_password_hash())
    snapshots.bump_write_version(db.engine)  # the loader wrote through the raw DBAPI connection
    backend = get_backend()
    assert isinstance(backend, snapshots.SnapshotBackend)
    backend.clear()
    return backend


def _facts():
    s = db.session
    banks = list(s.scalars(sa.select(Organisation).where(Organisation.kind == OrgKind.BANK,
                                                         Organisation.parent_id.is_(None)).order_by(Organisation.id)))
    branches = list(s.scalars(sa.select(Organisation).where(Organisation.kind == OrgKind.BANK,
                                                            Organisation.parent_id.is_not(None))))
    return {
        "campaigns": list(s.scalars(sa.select(Campaign).order_by(Campaign.start_on))),
        "banks": banks, "branches": branches,
        "industries": list(s.scalars(sa.select(Industry.code))),
        "areas": list(s.scalars(sa.select(Firm.area_code).where(Firm.area_code.is_not(None)).distinct())),
        "streets": list(s.scalars(sa.select(Firm.street_id).where(Firm.street_id.is_not(None)).distinct())),
        "bureau": s.scalar(sa.select(User).where(User.bank_id.is_(None), User.role == "bureau").limit(1)),
        "bank_users": {b.id: list(s.scalars(sa.select(User).where(User.bank_id == b.id, User.is_active_flag)
                                            .order_by(User.id))) for b in banks},
    }


def random_filter(rng: random.Random, facts) -> MetricFilter:
    camp = rng.choice(facts["campaigns"])
    kw = {"campaign_id": camp.id}
    roll = rng.random()
    if roll < 0.3:
        kw["bank_id"] = rng.choice(facts["banks"]).id
    elif roll < 0.45:
        br = rng.choice(facts["branches"])
        kw["bank_id"], kw["branch_id"] = br.parent_id, br.id
    if rng.random() < 0.35:
        kw["industry_code"] = rng.choice(facts["industries"])
    if rng.random() < 0.25 and facts["areas"]:
        kw["area_code"] = rng.choice(facts["areas"])
    elif rng.random() < 0.1 and facts["streets"]:
        kw["street_id"] = rng.choice(facts["streets"])
    if rng.random() < 0.5:
        start = camp.start_on + timedelta(days=rng.randrange(0, 300))
        kw["date_from"] = start
        if rng.random() < 0.7:
            kw["date_to"] = start + timedelta(days=rng.choice((30, 91, 120, 400)))
    return MetricFilter(**kw)


def _plain(result) -> tuple:
    return (result.campaign.id, result.window_from, result.window_to, result.totals, result.breakdowns,
            result.labels, result.meta, result.codes)


def _assert_exact(f: MetricFilter, dims: tuple, scope) -> tuple:
    with scoped(scope):
        fast = compute_metrics(f, dims)
        again = compute_metrics(f, dims)  # now from the snapshot (or the same version's recomputation)
        expected = compute_metrics(f, dims, backend=REFERENCE)
    assert _plain(fast) == _plain(expected), (f, scope)
    assert _plain(again) == _plain(expected), (f, scope)
    return _plain(expected)


# ---------------------------------------------------------------------------------------------------------
# Random writes: through the services and through bulk statements
# ---------------------------------------------------------------------------------------------------------


def _edit_needs(rng: random.Random, visits, rm) -> int:
    """Edits of a few visits' need (and summary) alone, through the visit service; returns how many."""
    done = 0
    for visit in rng.sample(visits, min(3, len(visits))):
        data = {"campaign_id": visit.campaign_id, "visited_on": visit.visited_on, "mode_code": visit.mode_code,
                "rm_id": visit.rm_id, "summary": visit.summary + "。",
                "need_amount_fen": None if visit.need_amount_fen else 2_000_000_00,
                "companion_ids": [u.id for u in visit.companions]}
        if visit_services.update_visit(visit, data, user=rm, version=visit.version):
            done += 1
    return done


def _service_writes(rng: random.Random, facts, bank_id: int) -> int:
    """Visits created, edited and deleted, check-ins done and undone, applications moved; returns how many."""
    done = 0
    users = facts["bank_users"][bank_id]
    rm = rng.choice([u for u in users if u.role in ("rm", "bank_manager")] or users)
    current = max(facts["campaigns"], key=lambda c: c.start_on)
    today = today_local()
    last_day = min(current.end_on, today)
    firms = list(db.session.scalars(sa.select(Firm).order_by(Firm.id).limit(30)))
    with scoped(scope_for(rm)):
        for _ in range(3):  # new visits
            day = current.start_on + timedelta(days=rng.randrange(0, (last_day - current.start_on).days + 1))
            data = {"campaign_id": current.id, "visited_on": day, "mode_code": "on_site", "summary": "snapshot test",
                    "need_amount_fen": rng.choice((None, 0, 3_000_000_00)),
                    "companion_ids": [u.id for u in rng.sample(users, min(2, len(users)))]}
            visit_services.create_visit(rng.choice(firms), data, user=rm)
            done += 1
        visits = list(db.session.scalars(sa.select(Visit).where(Visit.bank_id == bank_id, Visit.is_deleted.is_(False),
                                                                Visit.campaign_id == current.id).order_by(Visit.id)))
        for visit in rng.sample(visits, min(3, len(visits))):  # edits
            day = current.start_on + timedelta(days=rng.randrange(0, (last_day - current.start_on).days + 1))
            data = {"campaign_id": visit.campaign_id, "visited_on": day, "mode_code": visit.mode_code,
                    "rm_id": visit.rm_id if visit.rm.is_active else rm.id, "summary": visit.summary,
                    "need_amount_fen": rng.choice((None, 5_000_000_00)), "companion_ids": []}
            if visit_services.update_visit(visit, data, user=rm, version=visit.version):
                done += 1
        done += _edit_needs(rng, visits, rm)
        for visit in rng.sample(visits, min(2, len(visits))):  # deletes
            if not visit.is_deleted:
                visit_services.delete_visit(visit, user=rm)
                done += 1
        apps = list(db.session.scalars(sa.select(CreditApplication).where(
            CreditApplication.bank_id == bank_id,
            CreditApplication.stage.in_([Stage.ACCEPTED, Stage.UNDER_REVIEW])).order_by(CreditApplication.id)))
        for app in rng.sample(apps, min(4, len(apps))):
            on = min(today, credit_services.last_change_on(app) + timedelta(days=rng.randrange(1, 25)))
            try:
                if app.stage == Stage.ACCEPTED:
                    credit_services.move(app, Stage.UNDER_REVIEW, rm, on)
                elif rng.random() < 0.7:
                    credit_services.move(app, Stage.APPROVED, rm, on, decision=credit_services.Decision(
                        approved_fen=app.requested_fen, rate_bp=350, discount_bp=rng.choice((0, 15)), term_months=12))
                else:
                    credit_services.move(app, Stage.DECLINED, rm, on,
                                         decision=credit_services.Decision(decline_reason_code=_decline_reason()))
                done += 1
            except credit_services.CreditError:
                pass
    bureau = facts["bureau"]
    with scoped(scope_for(bureau)):
        regs = list(db.session.scalars(sa.select(Registration).join(Event).where(
            Event.status == EventStatus.HELD).order_by(Registration.id)))
        for reg in rng.sample(regs, min(4, len(regs))):
            if reg.checked_in_at is None:
                done += event_services.check_in(reg, bureau)
            else:
                done += event_services.undo_check_in(reg, bureau)
    db.session.commit()
    return done


def _decline_reason() -> str:
    from crm.core.models import DeclineReason

    return db.session.scalar(sa.select(DeclineReason.code).limit(1))


def _bulk_writes(rng: random.Random, facts) -> None:
    """ORM-enabled bulk UPDATE / DELETE / INSERT, Core and text() statements, as importers and scripts write."""
    s = db.session
    visit_ids = list(s.scalars(sa.select(Visit.id).where(Visit.is_deleted.is_(False)).order_by(Visit.id)))
    some = rng.sample(visit_ids, 6)
    s.execute(sa.update(Visit).where(Visit.id.in_(some[:3])).values(need_amount_fen=7_000_000_00)
              .execution_options(synchronize_session=False))
    s.execute(sa.update(Visit).where(Visit.id == some[3]).values(is_deleted=True)
              .execution_options(synchronize_session=False))
    row = s.execute(sa.select(Visit.__table__).where(Visit.id == some[4])).mappings().one()
    copy = {k: v for k, v in row.items() if k != "id"}
    copy["visited_on"] = row["visited_on"] - timedelta(days=rng.randrange(1, 40))
    s.execute(sa.insert(Visit.__table__).values(**copy))
    s.execute(sa.delete(visit_companion).where(visit_companion.c.visit_id == some[5]))
    firm_ids = list(s.scalars(sa.select(Firm.id).order_by(Firm.id)))
    s.execute(sa.update(Firm).where(Firm.id.in_(rng.sample(firm_ids, 3)))
              .values(industry_code=rng.choice(facts["industries"])).execution_options(synchronize_session=False))
    reg_ids = list(s.scalars(sa.select(Registration.id).order_by(Registration.id)))
    s.execute(sa.delete(Registration).where(Registration.id == rng.choice(reg_ids))
              .execution_options(synchronize_session=False))
    app_ids = list(s.scalars(sa.select(CreditApplication.id).where(CreditApplication.approved_fen.is_not(None))
                             .order_by(CreditApplication.id)))
    if app_ids:
        s.execute(sa.text("UPDATE credit_application SET approved_fen = approved_fen + 100000 WHERE id = :id"),
                  {"id": rng.choice(app_ids)})
    pledge_ids = list(s.scalars(sa.select(Pledge.id).order_by(Pledge.id)))
    if pledge_ids:
        s.connection().exec_driver_sql(
            f"UPDATE pledge SET secured_fen = secured_fen + 5000 WHERE id = {int(rng.choice(pledge_ids))}")
    day = date(2026, 3, 2) + timedelta(days=rng.randrange(0, 200))
    if s.scalar(sa.select(HolidayOverride.id).where(HolidayOverride.day == day)) is None:
        s.add(HolidayOverride(day=day, is_workday=day.weekday() >= 5, note="snapshot test"))
    s.commit()


# ---------------------------------------------------------------------------------------------------------
# Exactness
# ---------------------------------------------------------------------------------------------------------


def test_snapshots_equal_the_reference_for_random_filters_after_random_writes(site):
    rng = random.Random(20261126)
    facts = _facts()
    bank = facts["banks"][0]
    bank_user = facts["bank_users"][bank.id][0]
    scopes = [scope_for(facts["bureau"]), scope_for(bank_user)]
    full = [random_filter(rng, facts) for _ in range(4)] + [MetricFilter(facts["campaigns"][-1].id)]
    totals_only = [random_filter(rng, facts) for _ in range(14)]
    history = []
    for round_no in range(4):
        if round_no:
            if round_no % 2:
                assert _service_writes(rng, facts, rng.choice(facts["banks"]).id) >= 5
            else:
                _bulk_writes(rng, facts)
            full.append(random_filter(rng, facts))
        seen = {}
        for scope in scopes:
            for f in full:
                seen[(scope, f, DIMENSIONS)] = _assert_exact(f, DIMENSIONS, scope)
                hits = site.stats["hits"]
                _assert_exact(f, ("month", "bank"), scope)  # served from the full result just cached
                assert site.stats["hits"] == hits + 2
            for f in totals_only:
                seen[(scope, f, ())] = _assert_exact(f, (), scope)
        history.append(seen)
    assert site.stats["hits"] > 0 and site.stats["misses"] > 0
    # the writes moved numbers that had been cached, so a snapshot that outlived them would have failed above
    changed = [k for k in history[0] if history[-1][k] != history[0][k]]
    assert len(changed) >= 5
    assert any(k[0].all_banks is False for k in changed)


def test_a_snapshot_is_never_served_to_another_bank(site):
    facts = _facts()
    a, b = facts["banks"][0], facts["banks"][1]
    user_a, user_b = facts["bank_users"][a.id][0], facts["bank_users"][b.id][0]
    f = MetricFilter(facts["campaigns"][-1].id)
    with scoped(scope_for(user_a)):
        numbers_a = compute_metrics(f, ("bank", "month"))
    with scoped(scope_for(user_b)):
        numbers_b = compute_metrics(f, ("bank", "month"))
        expected_b = compute_metrics(f, ("bank", "month"), backend=REFERENCE)
        # bank B asking for bank A's numbers by URL gets nothing, not A's cached ones
        asked_for_a = compute_metrics(f.replace(bank_id=a.id))
    assert numbers_a.totals["visits"] != numbers_b.totals["visits"]
    assert _plain(numbers_b) == _plain(expected_b)
    assert set(numbers_b.breakdowns["bank"]) <= {str(b.id)}
    assert asked_for_a.totals["visits"] == 0 and asked_for_a.totals["firms_reached"] == 0
    with scoped(scope_for(facts["bureau"])):
        everything = compute_metrics(f, ("bank", "month"))
    assert everything.totals["visits"] > numbers_a.totals["visits"]
    assert {str(a.id), str(b.id)} <= set(everything.breakdowns["bank"])


def test_uncommitted_writes_are_counted_for_their_own_transaction_and_never_cached(site):
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    with scoped(SYSTEM):
        before = compute_metrics(f).totals["visits"]
        visit = db.session.scalar(sa.select(Visit).where(Visit.campaign_id == f.campaign_id,
                                                         Visit.is_deleted.is_(False)).limit(1))
        visit.is_deleted = True  # pending, not flushed: compute_metrics must not cache what autoflush sends
        during = compute_metrics(f).totals["visits"]
        assert during == before - 1
        db.session.rollback()
        assert compute_metrics(f).totals["visits"] == before
        db.session.execute(sa.update(Visit).where(Visit.id == visit.id).values(is_deleted=True)
                           .execution_options(synchronize_session=False))  # flushed, not committed
        assert compute_metrics(f).totals["visits"] == before - 1
        db.session.rollback()
        assert compute_metrics(f).totals["visits"] == before
    assert site.stats["bypassed"] >= 2


def _version() -> int:
    return snapshots.read_write_version(db.session.connection())


def test_every_kind_of_write_bumps_the_version_and_reads_rollbacks_and_the_audit_trail_do_not(site):
    s = db.session
    v = _version()
    s.commit()
    visit = s.scalar(sa.select(Visit).limit(1))
    user = s.scalar(sa.select(User).where(User.bank_id.is_not(None)).limit(1))

    def committed(write) -> int:
        nonlocal v
        s.commit()
        write()
        s.commit()
        new = _version()
        s.commit()
        bumped, v = new - v, new
        return bumped

    assert committed(lambda: s.scalar(sa.select(sa.func.count(Visit.id)))) == 0
    assert committed(lambda: setattr(visit, "need_amount_fen", 123)) == 1  # ORM unit of work
    assert committed(lambda: s.execute(sa.update(Firm).values(is_tech_sme=Firm.is_tech_sme)
                                       .execution_options(synchronize_session=False))) == 0  # no number reads it
    assert committed(lambda: s.execute(sa.update(Firm).values(street_id=Firm.street_id, is_tech_sme=True)
                                       .execution_options(synchronize_session=False))) == 1
    firm = s.scalar(sa.select(Firm).limit(1))
    assert committed(lambda: setattr(firm, "name", firm.name + "（新）")) == 0
    assert committed(lambda: setattr(firm, "industry_code", "biomedicine" if firm.industry_code != "biomedicine" else "ai")) == 1
    assert committed(lambda: s.add(Firm(name="新注册科技有限公司", credit_code=gen.credit_code_for(987_654, seed=77),
                                        area_code=firm.area_code, industry_code="ai"))) == 0  # no visit names it yet
    event = s.scalar(sa.select(Event).limit(1))
    assert committed(lambda: setattr(event, "venue", (event.venue or "") + "，二楼")) == 0
    assert committed(lambda: setattr(event, "held_on", event.held_on)) == 0  # (not changed: not in the UPDATE)
    assert committed(lambda: s.execute(sa.update(Event).where(Event.id == event.id)
                                       .values(held_on=event.held_on))) == 1
    assert committed(lambda: s.execute(sa.text("DELETE FROM visit_companion WHERE visit_id = -1"))) == 1
    assert committed(lambda: s.connection().exec_driver_sql("UPDATE street SET name = name WHERE id = -1")) == 1
    assert committed(lambda: s.add(AuditEntry(action="test", object_type="x", object_id=1))) == 0
    assert committed(lambda: setattr(user, "last_login_at", user.last_login_at)) == 0
    assert committed(lambda: s.execute(sa.update(User).where(User.id == user.id).values(last_login_at=None))) == 0
    assert committed(lambda: s.execute(sa.update(User).where(User.id == -1).values(bank_id=None))) == 1
    # a rolled-back write leaves the version alone
    s.execute(sa.update(Street).values(name=Street.name))
    s.rollback()
    assert _version() == v
    # a plain Connection outside any Session, and a raw-DBAPI writer that reports itself
    with db.engine.begin() as conn:
        conn.execute(sa.update(Event.__table__).where(Event.id == -1).values(status=EventStatus.HELD))
    snapshots.bump_write_version(db.engine)
    assert _version() == v + 2


def test_no_kept_number_or_fact_reads_a_table_whose_writes_are_ignored(site, app):
    """Writes to ``snapshots.IGNORED_TABLES`` never invalidate, so nothing computed under the write version (the
    numbers of every breakdown, whole and refreshed after placed writes, their labels, the filter bar's rows) may
    read one of them."""
    import re

    from crm.dashboard import views
    from crm.dashboard.shards import ShardedBackend

    facts = _facts()
    bank = facts["banks"][0]
    branch = next(b for b in facts["branches"] if b.parent_id == bank.id)
    campaign = facts["campaigns"][-1]
    filters = [MetricFilter(campaign.id), MetricFilter(campaign.id, bank_id=bank.id, branch_id=branch.id),
               MetricFilter(campaign.id, industry_code=facts["industries"][0], area_code=facts["areas"][0],
                            date_from=campaign.start_on, date_to=campaign.start_on + timedelta(days=120)),
               MetricFilter(campaign.id, street_id=facts["streets"][0])]
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][bank.id][0])]
    backend = ShardedBackend(max_entries=1000)
    table = re.compile(r'\b(?:FROM|JOIN)\s+"?(\w+)"?', re.IGNORECASE)

    def views_of_every_kind():
        for scope in scopes:
            with scoped(scope):
                for f in filters:
                    compute_metrics(f, DIMENSIONS, backend=backend)
                    compute_metrics(f, DIMENSIONS)  # (the snapshot backend, reading the shared store)
        db.session.commit()

    with statements() as whole:
        views_of_every_kind()
    assert _service_writes(random.Random(7), facts, bank.id) >= 5  # placed: the next views refresh shards
    db.session.commit()
    refreshed = backend.stats["refreshed"]
    with statements() as refreshing:
        views_of_every_kind()
        with app.test_request_context():
            views._read_filter_rows()
    assert backend.stats["refreshed"] > refreshed
    read = {name.lower() for sql in [*whole, *refreshing] if sql.lstrip().upper().startswith(("SELECT", "WITH"))
            for name in table.findall(sql)}
    assert {"visit", "registration", "credit_application", "event_organiser", "organisation", "street"} <= read
    ignored = snapshots.IGNORED_TABLES - {snapshots.VERSION_TABLE, snapshots.STORE_TABLE,  # (the bookkeeping)
                                          snapshots.EVENT_LOG_TABLE, snapshots.VISIT_INSERT_TABLE}
    assert not read & ignored, sorted(read & ignored)


@pytest.mark.parametrize("statement,counts", [
    ("UPDATE firm SET name=?, modified_at=?, version=? WHERE firm.id = ? AND firm.version = ?", False),
    ("UPDATE firm SET name=%(name)s::VARCHAR, modified_at=%(modified_at)s::TIMESTAMP WITH TIME ZONE "
     "WHERE firm.id = %(firm_id)s", False),
    ("UPDATE event SET status=%(status)s::VARCHAR WHERE event.id = %(event_id)s", True),
    ("UPDATE visit SET summary=?, next_step=?, modified_at=?, version=? WHERE visit.id = ? AND visit.version = ?",
     False),
    ("UPDATE visit SET need_amount_fen=%(need_amount_fen)s::BIGINT, version=%(version)s WHERE visit.id = %(id)s", True),
    ("UPDATE visit SET is_deleted=?, modified_at=? WHERE visit.id = ?", True),
    ("UPDATE firm SET industry_code=%(industry_code)s::VARCHAR, version=%(version)s WHERE firm.id = %(id)s", True),
    ('UPDATE firm SET "street_id"=? WHERE id = 1', True),
    ("UPDATE OR IGNORE firm SET name=? WHERE id = 1", False),
    ("UPDATE firm AS f SET name=? FROM street WHERE f.street_id = street.id", False),
    ("UPDATE firm f SET area_code=? FROM street WHERE f.street_id = street.id", True),
    # each target of a WITH is read with its own SET clause
    ('WITH u AS (UPDATE "user" SET last_login_at=? RETURNING id) UPDATE firm SET industry_code=?', True),
    ("WITH f AS (UPDATE firm SET name=? RETURNING id) UPDATE event SET status=?", True),
    ("WITH f AS (UPDATE firm SET name=?) UPDATE event SET title=?", False),
    # a clause the parser cannot read to its end counts
    ("UPDATE firm SET name=(SELECT s.name FROM street s WHERE s.id = 1), industry_code=? WHERE id = 1", True),
    ("UPDATE firm SET name=lower(?), industry_code=? WHERE id = 1", True),
    ("INSERT INTO firm (name, credit_code) VALUES (?, ?)", False),
    ("INSERT INTO firm (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET industry_code = 'ai'", True),
    ("INSERT OR REPLACE INTO firm (id) VALUES (1)", True),
    ("INSERT INTO event (code) VALUES (?)", True),
])
def test_which_statements_on_firms_and_events_move_a_number(statement, counts):
    assert snapshots.analyse(statement)[0] == (snapshots.WRITE if counts else snapshots.IGNORE)


def test_a_write_in_another_process_invalidates_this_processs_snapshot(site, db_url):
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    with scoped(SYSTEM):
        before = compute_metrics(f).totals["visits"]
        assert compute_metrics(f).totals["visits"] == before
        victim = db.session.scalar(sa.select(Visit.id).where(Visit.campaign_id == f.campaign_id,
                                                             Visit.is_deleted.is_(False)).limit(1))
    db.session.commit()
    script = textwrap.dedent(f"""
        import sqlalchemy as sa
        from crm import create_app
        from crm.extensions import db
        from crm.visits.models import Visit
        app = create_app("config.TestConfig", {{"SQLALCHEMY_DATABASE_URI": {db_url!r}}})
        with app.app_context():
            db.session.execute(sa.update(Visit).where(Visit.id == {victim}).values(is_deleted=True))
            db.session.commit()
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", script], check=True, cwd=root, timeout=120,
                   env={**os.environ, "PYTHONPATH": root})
    with scoped(SYSTEM):
        assert compute_metrics(f).totals["visits"] == before - 1
        assert compute_metrics(f, backend=REFERENCE).totals["visits"] == before - 1


def test_concurrent_writers_do_not_wait_for_each_other_on_the_version_row(site):
    """PostgreSQL: one open writing transaction never blocks another writer's commit (no hot row held)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time whatever the design")
    ids = list(db.session.scalars(sa.select(Visit.id).order_by(Visit.id).limit(2)))
    db.session.commit()
    v = _version()
    db.session.commit()
    with db.engine.connect() as slow, db.engine.connect() as fast:
        slow.begin()
        slow.execute(sa.update(Visit.__table__).where(Visit.__table__.c.id == ids[0]).values(need_amount_fen=1))
        for _ in range(3):  # several commits by another writer while the first transaction stays open
            fast.begin()
            fast.exec_driver_sql("SET LOCAL lock_timeout = '3s'")
            fast.execute(sa.update(Visit.__table__).where(Visit.__table__.c.id == ids[1])
                         .values(need_amount_fen=Visit.__table__.c.need_amount_fen + 1))
            fast.commit()
        slow.commit()
    assert _version() == v + 4


def test_gen_data_invalidates_snapshots_although_it_loads_through_raw_connections(app, runner):
    v = _version()
    db.session.commit()
    result = runner.invoke(args=["crm", "gen-data", "--scale", "0.0002", "--seed", "2", "--quiet", "--no-analyze"])
    assert result.exit_code == 0, result.output
    db.session.remove()
    assert _version() > v


def test_fast_sql_equals_the_reference_for_every_breakdown(site):
    """FastSqlBackend (which computes every snapshot miss) against SqlBackend directly, no cache in between:
    every breakdown of many random filters, for the bureau and a bank user, before and after random writes."""
    assert isinstance(site.inner, FastSqlBackend)
    fast = FastSqlBackend()
    rng = random.Random(20261127)
    facts = _facts()
    bank = facts["banks"][1]
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][bank.id][0])]
    filters = [MetricFilter(c.id) for c in facts["campaigns"]] + [random_filter(rng, facts) for _ in range(12)]
    nonzero = 0
    for round_no in range(3):
        if round_no == 1:
            _service_writes(rng, facts, bank.id)
        elif round_no == 2:
            _bulk_writes(rng, facts)
        for scope in scopes:
            for f in filters:
                with scoped(scope):
                    got = compute_metrics(f, DIMENSIONS, backend=fast)
                    expected = compute_metrics(f, DIMENSIONS, backend=REFERENCE)
                assert _plain(got) == _plain(expected), (f, scope)
                nonzero += bool(expected.totals["visits"] and expected.totals["firm_attendances"])
    assert nonzero >= 10  # the filters did select records to count


# ---------------------------------------------------------------------------------------------------------
# The shared store: what one worker computed, every other worker reads
# ---------------------------------------------------------------------------------------------------------


def test_a_snapshot_computed_by_one_worker_is_served_to_another_from_the_shared_store(site):
    facts = _facts()
    worker_a, worker_b = snapshots.SnapshotBackend(), snapshots.SnapshotBackend()
    rng = random.Random(11)
    filters = [MetricFilter(facts["campaigns"][-1].id)]
    while len(filters) < 2:
        f = random_filter(rng, facts)
        if f.bank_id is not None and f not in filters:
            filters.append(f)
    bureau = scope_for(facts["bureau"])
    for f in filters:
        with scoped(bureau):
            computed = compute_metrics(f, DIMENSIONS, backend=worker_a)
            with statements() as sql:
                served = compute_metrics(f, DIMENSIONS, backend=worker_b)
            # a subset of breakdowns is served from the full result worker A filed
            month_only = compute_metrics(f, ("month",), backend=snapshots.SnapshotBackend())
            expected = compute_metrics(f, DIMENSIONS, backend=REFERENCE)
        assert _plain(computed) == _plain(served) == _plain(expected)
        assert month_only.breakdowns == {"month": expected.breakdowns["month"]}
        assert not any("visit" in s for s in sql), sql  # nothing was computed: version, store, campaign
    assert (worker_a.stats["misses"], worker_b.stats["shared_hits"], worker_b.stats["misses"]) == (2, 2, 0)
    assert worker_b.stats["hits"] == 0
    # served from worker B's memory from now on
    with scoped(bureau):
        compute_metrics(filters[0], DIMENSIONS, backend=worker_b)
    assert worker_b.stats["hits"] == 1

    # after a write, the stored rows are of an older version: worker B computes, and the store keeps the newest only
    _service_writes(rng, facts, facts["banks"][0].id)
    with scoped(bureau):
        fresh = compute_metrics(filters[0], DIMENSIONS, backend=worker_b)
        assert _plain(fresh) == _plain(compute_metrics(filters[0], DIMENSIONS, backend=REFERENCE))
    assert worker_b.stats["misses"] == 1
    version = snapshots.read_write_version(db.session.connection())
    assert set(db.session.scalars(sa.select(snapshots.snapshot_store.c.version))) == {version}


def test_the_page_computes_its_own_breakdowns_and_smaller_requests_are_served_from_them(site):
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    with scoped(scope_for(facts["bureau"])):
        page = compute_metrics(f, page_dimensions("industry"))
        assert set(page.breakdowns) == set(PAGE_DIMENSIONS)  # no district or street table unless it is open
        misses, hits = site.stats["misses"], site.stats["hits"]
        # the records page's totals, one breakdown, another tab of the page: all held by the page's snapshot
        for dims in ((), ("bank",), page_dimensions("month")):
            served = compute_metrics(f, dims)
            assert set(served.breakdowns) == set(dims)
            assert _plain(served) == _plain(compute_metrics(f, dims, backend=REFERENCE))
        assert (site.stats["misses"], site.stats["hits"]) == (misses, hits + 3)
        # the street tab needs the street breakdown: computed once, and it holds the page's too
        street = compute_metrics(f, page_dimensions("street"))
        assert _plain(street) == _plain(compute_metrics(f, page_dimensions("street"), backend=REFERENCE))
        assert site.stats["misses"] == misses + 1
        worker = snapshots.SnapshotBackend(shared=False)  # a worker whose memory is empty, no shared store
        compute_metrics(f, page_dimensions("street"), backend=worker)
        compute_metrics(f, page_dimensions("bank"), backend=worker)
        assert (worker.stats["misses"], worker.stats["hits"]) == (1, 1)


def test_the_shared_store_never_serves_one_bank_what_another_bank_or_the_bureau_sees(site):
    facts = _facts()
    a, b = facts["banks"][0], facts["banks"][1]
    f = MetricFilter(facts["campaigns"][-1].id)
    worker_a, worker_b = snapshots.SnapshotBackend(), snapshots.SnapshotBackend()
    with scoped(scope_for(facts["bureau"])):
        compute_metrics(f, DIMENSIONS, backend=worker_a)
    with scoped(scope_for(facts["bank_users"][a.id][0])):
        compute_metrics(f, DIMENSIONS, backend=worker_a)
    with scoped(scope_for(facts["bank_users"][b.id][0])):
        got = compute_metrics(f, DIMENSIONS, backend=worker_b)
        expected = compute_metrics(f, DIMENSIONS, backend=REFERENCE)
    assert worker_b.stats["shared_hits"] == 0 and worker_b.stats["misses"] == 1
    assert _plain(got) == _plain(expected)
    assert set(got.breakdowns["bank"]) <= {str(b.id)}


def test_filing_a_snapshot_does_not_move_the_write_version(site):
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    before = snapshots.read_write_version(db.session.connection())
    db.session.rollback()
    with scoped(scope_for(facts["bureau"])):
        compute_metrics(f, DIMENSIONS, backend=snapshots.SnapshotBackend())
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(snapshots.snapshot_store)) == 1
    assert snapshots.read_write_version(db.session.connection()) == before


def test_a_busy_database_skips_sharing_and_still_answers(site, db_url):
    """SQLite: another connection holds the write lock; the view is computed and answered, the row not filed."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the write lock is SQLite's")
    facts = _facts()
    f = MetricFilter(facts["campaigns"][-1].id)
    worker = snapshots.SnapshotBackend()
    blocker = sa.create_engine(db_url)
    with blocker.connect() as other:
        other.exec_driver_sql("BEGIN IMMEDIATE")
        with scoped(scope_for(facts["bureau"])):
            got = compute_metrics(f, DIMENSIONS, backend=worker)
            expected = compute_metrics(f, DIMENSIONS, backend=REFERENCE)
        other.exec_driver_sql("ROLLBACK")
    blocker.dispose()
    assert _plain(got) == _plain(expected)
    assert worker.stats["shared_skipped"] == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(snapshots.snapshot_store)) == 0
