"""New visits counted into the kept numbers from the log of visit inserts, not recomputed.

A commit that bumps a firm shard's ``visit`` row or a person's ``people`` row with new visits only logs those
visits' ids under the row's count (``snapshots.visit_insert_log``); a kept view moves the firm shard's visits and
firms reached by the new visits' firms' share with them less their share without them, and adds the groups of the
new visits to their people's staff (``shards.ShardedBackend._inserted_visits``), instead of reading all of the
shard's or the person's visits again. Any other write of theirs (an edit, a deletion, a companion added to a stored
visit, a check-in, a need edited) logs nothing or moves another source, and the parts are recomputed. Every view is
compared with the reference ``SqlBackend``.

The firm shards are small here (4 firms) and a user shard holds one person, as in production.
"""
from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
import sqlalchemy as sa

from crm.core.formatting import today_local
from crm.core.scoping import SYSTEM, scope_for, scoped
from crm.dashboard import shards, snapshots
from crm.dashboard.metrics import DIMENSIONS, MetricFilter, compute_metrics
from crm.extensions import db
from crm.firms.models import Firm
from crm.visits import services as visit_services
from crm.visits.models import Visit
from tests.test_dashboard_snapshots import (  # noqa: F401  (site is a fixture)
    REFERENCE, _facts, _plain, random_filter, site,
)

PEOPLE = snapshots.SOURCES["people"]


@pytest.fixture
def single(site, monkeypatch):
    monkeypatch.setattr(snapshots, "FIRM_SHARD_WIDTH", 4)
    assert snapshots.USER_SHARD_WIDTH == 1
    return shards.ShardedBackend(max_entries=1000)


def _log() -> dict[int, dict[int, list]]:
    """{slot: {seq: visit ids}} of the whole log, committed."""
    t = snapshots.visit_insert_log
    rows = db.session.execute(sa.select(t.c.slot, t.c.seq, t.c.visit_ids)).all()
    db.session.commit()
    out: dict = {}
    for slot, seq, ids in rows:
        out.setdefault(slot, {})[seq] = json.loads(ids)
    return out


def _count(slot: int) -> int:
    return db.session.scalar(sa.select(snapshots.write_version.c.n).where(snapshots.write_version.c.slot == slot)) or 0


def _new_visit(rng, facts, bank, *, day=None, companions: int = 1, rm=None, firm=None) -> Visit:
    """A visit recorded through the service by an RM of ``bank`` with ``companions`` colleagues (not committed)."""
    users = facts["bank_users"][bank.id]
    rm = rm or rng.choice([u for u in users if u.role in ("rm", "bank_manager")] or users)
    campaign = max(facts["campaigns"], key=lambda c: c.start_on)
    last = min(campaign.end_on, today_local())
    day = day or campaign.start_on + timedelta(days=rng.randrange(0, (last - campaign.start_on).days + 1))
    firm = firm or rng.choice(list(db.session.scalars(sa.select(Firm).order_by(Firm.id).limit(30))))
    others = [u for u in users if u.id != rm.id]
    data = {"campaign_id": campaign.id, "visited_on": day, "mode_code": "on_site", "summary": "新走访",
            "need_amount_fen": None, "companion_ids": [u.id for u in rng.sample(others, min(companions, len(others)))]}
    with scoped(scope_for(rm)):
        return visit_services.create_visit(firm, data, user=rm)


def _views(backend, filters, scopes) -> None:
    for scope in scopes:
        with scoped(scope):
            for f in filters:
                got = compute_metrics(f, DIMENSIONS, backend=backend)
                assert _plain(got) == _plain(compute_metrics(f, DIMENSIONS, backend=REFERENCE)), (f, scope)
    db.session.commit()


def _recomputed(backend, monkeypatch, names=("staff",)) -> list:
    """The shards (None: all) whose parts ``names`` ``backend`` recomputes from here on, appended as it does."""
    parts = backend._parts
    seen: list = []

    def spy(c, dims, name, shards_, by_rows=True):
        if name in names:
            seen.append(shards_)
        return parts(c, dims, name, shards_, by_rows)

    monkeypatch.setattr(backend, "_parts", spy)
    return seen


def test_a_commit_of_new_visits_logs_them_for_their_people_and_one_that_edits_logs_nothing(single):
    rng = random.Random(5)
    facts = _facts()
    bank = facts["banks"][0]
    db.session.commit()

    first = _new_visit(rng, facts, bank, companions=2)
    second = _new_visit(rng, facts, bank, rm=first.rm, companions=0)
    db.session.commit()
    people = {first.rm_id, *(u.id for u in first.companions)}
    assert len(people) == 3
    log = _log()
    for person in people:
        slot = PEOPLE + person
        expected = {first.id, second.id} if person == first.rm_id else {first.id}
        assert set(log[slot][_count(slot)]) == expected
    for visit in (first, second):  # (and for their firms' shards)
        slot = snapshots.SOURCES["visit"] + visit.firm_id // 4
        assert visit.id in log[slot][_count(slot)]
    db.session.commit()

    # an edit of the RM's stored visit in the same commit as a new one: nothing logged for the RM, the new visit
    # still logged for its companion, whose only write it is
    rm_count = _count(PEOPLE + first.rm_id)
    stored = db.session.get(Visit, second.id)
    with scoped(scope_for(stored.rm)):
        data = {"campaign_id": stored.campaign_id, "visited_on": stored.visited_on - timedelta(days=1),
                "mode_code": stored.mode_code, "rm_id": stored.rm_id, "summary": stored.summary,
                "need_amount_fen": stored.need_amount_fen, "companion_ids": []}
        assert visit_services.update_visit(stored, data, user=stored.rm, version=stored.version)
    third = _new_visit(rng, facts, bank, rm=stored.rm, companions=1)
    companion = third.companions[0].id
    db.session.commit()
    log = _log()
    assert _count(PEOPLE + first.rm_id) == rm_count + 1
    assert rm_count + 1 not in log.get(PEOPLE + first.rm_id, {})
    assert log[PEOPLE + companion][_count(PEOPLE + companion)] == [third.id]

    firm_slot = snapshots.SOURCES["visit"] + stored.firm_id // 4
    assert _count(firm_slot) not in log.get(firm_slot, {})  # (the edited visit's firm shard: nothing logged)

    # a deletion logs nothing either
    count = _count(PEOPLE + companion)
    db.session.commit()
    with scoped(scope_for(third.rm)):
        visit_services.delete_visit(db.session.get(Visit, third.id), user=third.rm)
    db.session.commit()
    assert _count(PEOPLE + companion) == count + 1 and count + 1 not in _log()[PEOPLE + companion]


def test_new_visits_are_counted_into_kept_staff_and_every_view_stays_exact(single, monkeypatch):
    rng = random.Random(20261129)
    facts = _facts()
    bank = facts["banks"][0]
    branch = next(b for b in facts["branches"] if b.parent_id == bank.id)
    campaign = max(facts["campaigns"], key=lambda c: c.start_on)
    scopes = [scope_for(facts["bureau"]), scope_for(facts["bank_users"][bank.id][0])]
    filters = [MetricFilter(campaign.id), MetricFilter(campaign.id, bank_id=bank.id),
               MetricFilter(campaign.id, bank_id=bank.id, branch_id=branch.id),
               MetricFilter(campaign.id, industry_code=facts["industries"][0]),
               MetricFilter(campaign.id, date_from=campaign.start_on, date_to=campaign.start_on + timedelta(days=60)),
               *(random_filter(rng, facts) for _ in range(4))]
    _views(single, filters, scopes)
    recomputed = _recomputed(single, monkeypatch, ("staff", "visits", "reached"))

    for round_ in range(4):  # new visits only, in one commit or several, by the banks' people
        for _ in range(rng.randrange(1, 4)):
            _new_visit(rng, facts, rng.choice(facts["banks"]), companions=rng.randrange(0, 3))
            if rng.random() < 0.5:
                db.session.commit()
        db.session.commit()
        added = single.stats["added"]
        _views(single, filters, scopes)
        assert single.stats["added"] > added, round_
        assert recomputed == [], round_  # (no firm shard nor person read again from all their visits)

    # an edit of a new visit: its people's parts are recomputed, and the views stay exact
    visit = db.session.scalar(sa.select(Visit).where(Visit.summary == "新走访").order_by(Visit.id.desc()).limit(1))
    with scoped(scope_for(visit.rm)):
        data = {"campaign_id": visit.campaign_id, "visited_on": campaign.start_on, "mode_code": visit.mode_code,
                "rm_id": visit.rm_id, "summary": visit.summary, "need_amount_fen": None, "companion_ids": []}
        assert visit_services.update_visit(visit, data, user=visit.rm, version=visit.version)
    db.session.commit()
    _views(single, filters, scopes)
    assert recomputed and any(shards_ is None or visit.rm_id in shards_ for shards_ in recomputed)
    assert any(shards_ is None or visit.firm_id // 4 in shards_ for shards_ in recomputed)


def test_a_view_kept_behind_dropped_log_rows_recomputes_those_people(single, monkeypatch):
    rng = random.Random(3)
    facts = _facts()
    bank = facts["banks"][1]
    f = MetricFilter(max(facts["campaigns"], key=lambda c: c.start_on).id)
    scopes = [scope_for(facts["bureau"])]
    _views(single, [f], scopes)
    visit = _new_visit(rng, facts, bank, companions=0)
    db.session.commit()
    rm = visit.rm_id
    db.session.execute(sa.delete(snapshots.visit_insert_log).where(snapshots.visit_insert_log.c.slot == PEOPLE + rm))
    db.session.commit()
    recomputed = _recomputed(single, monkeypatch)
    _views(single, [f], scopes)
    assert [rm] in [list(s) for s in recomputed]


def test_a_person_logged_more_than_kept_keeps_the_last_rows_and_an_older_view_recomputes(single, monkeypatch):
    monkeypatch.setattr(snapshots, "VISIT_INSERT_KEPT", 3)
    rng = random.Random(11)
    facts = _facts()
    bank = facts["banks"][0]
    rm = next(u for u in facts["bank_users"][bank.id] if u.role in ("rm", "bank_manager"))
    f = MetricFilter(max(facts["campaigns"], key=lambda c: c.start_on).id, bank_id=bank.id)
    _views(single, [f], [scope_for(facts["bureau"])])
    for _ in range(7):
        _new_visit(rng, facts, bank, rm=rm, companions=0)
        db.session.commit()
    slot = PEOPLE + rm.id
    now = _count(slot)
    kept = sorted(_log()[slot])
    assert kept[-1] == now and len(kept) <= 2 * 3 and kept[0] > now - 2 * 3
    recomputed = _recomputed(single, monkeypatch)
    _views(single, [f], [scope_for(facts["bureau"])])  # (kept 7 counts ago: some of its rows are gone)
    assert [rm.id] in [list(s) for s in recomputed]


def test_a_new_visit_rolled_back_with_its_savepoint_counts_nothing(single):
    rng = random.Random(8)
    facts = _facts()
    bank = facts["banks"][0]
    campaign = max(facts["campaigns"], key=lambda c: c.start_on)
    filters = [MetricFilter(campaign.id), MetricFilter(campaign.id, bank_id=bank.id)]
    scopes = [scope_for(facts["bureau"])]
    _views(single, filters, scopes)
    rm = next(u for u in facts["bank_users"][bank.id] if u.role in ("rm", "bank_manager"))
    savepoint = db.session.begin_nested()
    ghost = _new_visit(rng, facts, bank, rm=rm, companions=1, day=campaign.start_on)
    ghost_id, companion = ghost.id, ghost.companions[0].id
    savepoint.rollback()
    made = _new_visit(rng, facts, bank, rm=rm, companions=0)  # (SQLite may give it the rolled-back visit's id)
    db.session.commit()
    assert ghost_id in _log()[PEOPLE + companion][_count(PEOPLE + companion)]  # (logged: counted as nothing)
    assert not any(u.id == companion for u in made.companions)
    added = single.stats["added"]
    _views(single, filters, scopes)
    assert single.stats["added"] > added


def test_a_new_visit_committed_while_new_visits_are_counted_sends_the_view_to_be_computed_whole(single, monkeypatch):
    """The new visits are read as they are when counted: another new visit of the same person committed by
    another worker meanwhile is in no part's count, so the view is computed whole again (equal to the reference
    with it) and nothing is kept."""
    rng = random.Random(13)
    facts = _facts()
    bank = facts["banks"][0]
    rm = next(u for u in facts["bank_users"][bank.id] if u.role in ("rm", "bank_manager"))
    campaign = max(facts["campaigns"], key=lambda c: c.start_on)
    f = MetricFilter(campaign.id)
    _views(single, [f], [scope_for(facts["bureau"])])
    made = _new_visit(rng, facts, bank, rm=rm, companions=0)
    db.session.commit()
    firm_id = db.session.scalar(sa.select(Firm.id).order_by(Firm.id.desc()).limit(1))
    values = {"bank_id": made.bank_id, "branch_id": made.branch_id, "campaign_id": made.campaign_id,
              "rm_id": made.rm_id, "created_by_id": made.rm_id, "firm_id": firm_id,
              "visited_on": min(campaign.end_on, today_local()), "mode_code": "on_site", "summary": "另一个工作进程"}
    db.session.commit()

    def another(session) -> None:  # (in another month, at another firm: groups the part has not)
        session.add(Visit(**values))

    _computed_whole_when_written_meanwhile(single, monkeypatch, "_added_staff", another, f, facts["bureau"])


def _computed_whole_when_written_meanwhile(backend, monkeypatch, method: str, change, f, viewer) -> None:
    """The view ``f`` computed while ``change`` is committed by another worker right after ``backend.<method>``
    counted new visits: equal to the reference with that write, computed whole, nothing kept."""
    from tests.test_dashboard_shards import _commit_elsewhere

    counting = getattr(backend, method)

    def counted_meanwhile(*args):
        counting(*args)
        assert args[-1], "nothing counted"
        _commit_elsewhere(change)

    monkeypatch.setattr(backend, method, counted_meanwhile)
    cold, unsettled = backend.stats["cold"], backend.stats["unsettled"]
    with scoped(scope_for(viewer)):
        got = compute_metrics(f, DIMENSIONS, backend=backend)
        assert _plain(got) == _plain(compute_metrics(f, DIMENSIONS, backend=REFERENCE))
    db.session.commit()
    assert backend.stats["unsettled"] == unsettled + 1 and backend.stats["cold"] > cold
    monkeypatch.setattr(backend, method, counting)
    with scoped(SYSTEM):
        _views(backend, [f], [scope_for(viewer)])


@pytest.mark.parametrize("meanwhile", ["a check-in at the firm's shard", "a need edited at the firm's shard"])
def test_a_write_to_a_new_visits_firm_shard_while_it_is_counted_sends_the_view_to_be_computed_whole(single,
                                                                                                   monkeypatch,
                                                                                                   meanwhile):
    """A firm shard's visits and firms reached moved by a new visit read the shard's firms' check-ins and visits as
    they are: a check-in or a need edited in that shard by another worker meanwhile is in no count the view was
    computed under, so the view is computed whole again (equal to the reference with it) and nothing is kept."""
    from datetime import datetime, timezone

    from crm.events.models import CheckinMethod, Registration

    rng = random.Random(17)
    facts = _facts()
    bank = facts["banks"][0]
    f = MetricFilter(max(facts["campaigns"], key=lambda c: c.start_on).id)
    _views(single, [f], [scope_for(facts["bureau"])])
    pending, firm_id = db.session.execute(sa.select(Registration.id, Registration.firm_id).where(
        Registration.checked_in_at.is_(None)).order_by(Registration.id).limit(1)).one()
    other = db.session.scalar(sa.select(Visit.id).where(Visit.firm_id // 4 == firm_id // 4,
                                                        Visit.is_deleted.is_(False)).order_by(Visit.id).limit(1))
    if other is None:  # (a stored visit in the shard, to edit)
        other = _new_visit(rng, facts, bank, companions=0, firm=db.session.get(Firm, firm_id)).id
        db.session.commit()
        _views(single, [f], [scope_for(facts["bureau"])])
    _new_visit(rng, facts, bank, companions=0, firm=db.session.get(Firm, firm_id))
    db.session.commit()

    def check_in(session) -> None:
        registration = session.get(Registration, pending)
        registration.checked_in_at, registration.checkin_method = datetime.now(timezone.utc), CheckinMethod.PAPER

    def need(session) -> None:
        visit = session.get(Visit, other)
        visit.need_amount_fen = (visit.need_amount_fen or 0) + 1_000_000_00

    _computed_whole_when_written_meanwhile(single, monkeypatch, "_added_firm_visits",
                                           check_in if "check-in" in meanwhile else need, f, facts["bureau"])


def test_a_check_in_in_a_new_visits_firm_shard_before_the_view_recomputes_that_shard(single, monkeypatch):
    """A new visit and, in another commit, a check-in in the same firm shard: the shard's firms reached are
    recomputed (their check-ins moved), its visits counted from the new visit; both exact."""
    from datetime import datetime, timezone

    from crm.events.models import CheckinMethod, Registration

    rng = random.Random(19)
    facts = _facts()
    bank = facts["banks"][0]
    f = MetricFilter(max(facts["campaigns"], key=lambda c: c.start_on).id)
    _views(single, [f], [scope_for(facts["bureau"])])
    registration = db.session.scalar(sa.select(Registration).where(Registration.checked_in_at.is_(None))
                                     .order_by(Registration.id).limit(1))
    shard = registration.firm_id // 4
    _new_visit(rng, facts, bank, companions=0, firm=db.session.get(Firm, registration.firm_id))
    db.session.commit()
    registration = db.session.get(Registration, registration.id)
    registration.checked_in_at, registration.checkin_method = datetime.now(timezone.utc), CheckinMethod.PAPER
    db.session.commit()
    reached = _recomputed(single, monkeypatch, ("reached",))
    visits = []
    parts = single._parts

    def spy(c, dims, name, shards_, by_rows=True):
        if name == "visits":
            visits.append(shards_)
        return parts(c, dims, name, shards_, by_rows)

    monkeypatch.setattr(single, "_parts", spy)
    _views(single, [f], [scope_for(facts["bureau"])])
    assert any(shards_ is None or shard in shards_ for shards_ in reached)
    assert not any(shards_ is None or shard in shards_ for shards_ in visits)


def test_without_the_log_table_new_visits_are_recomputed_and_stay_exact(single, monkeypatch):
    """A database not migrated to 0016 yet: a new visit bumps its rows as before, nothing is logged, and a kept
    view recomputes its firm shard and its people."""
    rng = random.Random(23)
    facts = _facts()
    bank = facts["banks"][0]
    f = MetricFilter(max(facts["campaigns"], key=lambda c: c.start_on).id)
    db.session.execute(sa.text(f"DROP TABLE {snapshots.VISIT_INSERT_TABLE}"))
    db.session.commit()
    _views(single, [f], [scope_for(facts["bureau"])])  # (kept under the count the DDL moved)
    recomputed = _recomputed(single, monkeypatch, ("staff", "visits", "reached"))
    made = _new_visit(rng, facts, bank, companions=1)
    db.session.commit()
    added = single.stats["added"]
    _views(single, [f], [scope_for(facts["bureau"])])
    assert single.stats["added"] == added
    assert any(shards_ is None or made.firm_id // 4 in shards_ for shards_ in recomputed)
    assert any(shards_ is None or made.rm_id in shards_ for shards_ in recomputed)
