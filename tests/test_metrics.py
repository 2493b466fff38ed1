"""Every metric of the known-by-construction campaign, exactly, for all banks and for each bank."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from crm.core.models import HolidayOverride
from crm.core.scoping import SYSTEM, scope_for, scoped
from crm.core.workdays import add_workdays
from crm.dashboard.definitions import METRIC_BY_KEY, METRIC_KEYS, METRICS
from crm.dashboard import metrics
from crm.dashboard.metrics import (
    DIMENSIONS, MetricFilter, compute_metrics, count_records, dimension_filter, records_statement,
)
from crm.extensions import db
from crm.firms.models import Firm
from tests import factories
from tests.factories_dashboard import EXPECTED, RANGE, build_known_campaign, reference_metrics


@pytest.fixture
def known(world):
    k = build_known_campaign(world)
    db.session.commit()
    return k


def _filter(k, bank=None, rng="full", **kw):
    frm, to = RANGE if rng == "range" else (None, None)
    return MetricFilter(k.world.campaign.id, bank_id=bank.id if bank else None, date_from=frm, date_to=to, **kw)


CASES = [("all", "full"), ("all", "range"), ("A", "full"), ("A", "range"), ("B", "full")]


def _bank(k, who):
    return {"all": None, "A": k.world.bank_a, "B": k.world.bank_b}[who]


@pytest.mark.parametrize("who,rng", CASES)
def test_every_metric_matches_the_campaign_built_by_hand(known, who, rng):
    totals = compute_metrics(_filter(known, _bank(known, who), rng)).totals
    assert totals == EXPECTED[(who, rng)]


@pytest.mark.parametrize("who,rng", [c for c in CASES if c[0] != "all"])
def test_a_bank_users_numbers_are_their_banks_numbers_without_any_filter(known, who, rng):
    manager = known.world.mgr_a if who == "A" else known.world.mgr_b
    with scoped(scope_for(manager)):
        totals = compute_metrics(_filter(known, None, rng)).totals
    assert totals == EXPECTED[(who, rng)]


def test_a_bank_user_asking_for_another_bank_gets_nothing(known):
    with scoped(scope_for(known.world.rm_a)):
        totals = compute_metrics(_filter(known, known.world.bank_b)).totals
    assert all(totals[k] in (0, Decimal(0), None) for k in totals)


@pytest.mark.parametrize("who,rng", CASES)
def test_the_sql_agrees_with_a_naive_python_oracle(known, who, rng):
    frm, to = RANGE if rng == "range" else (None, None)
    bank = _bank(known, who)
    expected = reference_metrics(known.world.campaign, start=frm, end=to, bank_id=bank.id if bank else None)
    assert compute_metrics(_filter(known, bank, rng)).totals == expected


@pytest.mark.parametrize("industry,area", [("ai", None), ("biomedicine", None), (None, "futian"),
                                           ("ai", "longgang"), ("low_carbon", "futian")])
def test_firm_filters_agree_with_the_oracle(known, industry, area):
    f = MetricFilter(known.world.campaign.id, industry_code=industry, area_code=area)
    expected = reference_metrics(known.world.campaign, industry=industry, area=area)
    assert compute_metrics(f).totals == expected


def test_bank_breakdown_equals_each_banks_own_totals(known):
    result = compute_metrics(_filter(known), ["bank"])
    by_bank = result.breakdowns["bank"]
    for who in ("A", "B"):
        assert by_bank[str(_bank(known, who).id)] == EXPECTED[(who, "full")]
    # the event organised by the bureau alone belongs to no bank
    assert by_bank["_none"]["events_held"] == 1 and by_bank["_none"]["firm_attendances"] == 1


def test_breakdowns_hold_the_keys_that_make_sense(known):
    result = compute_metrics(_filter(known), DIMENSIONS)
    assert "events_held" not in result.breakdowns["district"]["longgang"]
    assert "staff_participating" not in result.breakdowns["industry"]["ai"]
    assert set(result.breakdowns["month"]) == {"2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08"}
    assert sum(g["visits"] for g in result.breakdowns["month"].values()) == EXPECTED[("all", "full")]["visits"]
    assert sum(g["credit_amount_wan"] for g in result.breakdowns["industry"].values()) == Decimal(8900)
    assert result.breakdowns["industry"]["ai"]["ip_pledge_deals"] == 2


@pytest.mark.parametrize("who,rng", CASES)
def test_every_drill_down_lists_as_many_records_as_its_number(known, who, rng):
    f = _filter(known, _bank(known, who), rng)
    totals = compute_metrics(f).totals
    for m in METRICS:
        kind, stmt = records_statement(m.key, f)
        n = count_records(stmt)
        rows = db.session.execute(stmt).all()
        assert n == len(rows)
        if m.kind == "count":
            assert n == totals[m.key], m.key
        elif m.key == "credit_amount_wan":
            assert sum(r[0].approved_fen for r in rows) == totals[m.key] * 1_000_000
        elif m.key == "disbursed_amount_wan":
            assert sum(r[0].disbursed_fen for r in rows) == totals[m.key] * 1_000_000
        elif m.key == "ip_pledge_amount_wan":
            assert n == totals["ip_pledge_deals"]


FIRM_METRICS = [m.key for m in METRICS if m.records == "firms"]


@pytest.mark.parametrize("who,rng,industry", [*[(w, r, None) for w, r in CASES], ("all", "full", "ai"),
                                              ("A", "range", "ai")])
def test_firm_drill_downs_list_the_same_firms_walked_or_collected(known, monkeypatch, who, rng, industry):
    """A page of firms is found by walking the firm names (EXISTS) or by collecting the ids first (IN): the same
    firms in the same order, with a firm filter (the records' own join to firm) and under a bank's scope."""
    f = _filter(known, _bank(known, who), rng, industry_code=industry)
    scope = scope_for(known.world.mgr_a) if who == "A" else SYSTEM
    lists = {}
    for walk in (True, False):
        monkeypatch.setattr(metrics, "_walk_firms", lambda rows, total, walk=walk: walk)
        with scoped(scope):
            lists[walk] = {key: [x.id for x in db.session.scalars(records_statement(key, f, rows=100, total=1)[1])]
                           for key in FIRM_METRICS}
            sql = str(records_statement("firms_reached", f)[1])
        assert ("EXISTS" in sql) is walk and ("firm_of_record" in sql) is (walk and industry is not None)
    assert lists[True] == lists[False]
    assert any(lists[True].values())
    totals = compute_metrics(f).totals
    assert {key: len(ids) for key, ids in lists[True].items()} == {key: totals[key] for key in FIRM_METRICS}


def test_firm_drill_down_walks_only_a_dense_first_stretch(known, monkeypatch):
    """Both engines walk the names only while the page is expected within EXISTS_WALK firms; PostgreSQL's walk
    probes each firm (``OFFSET 0`` in each EXISTS: its planner would hash every firm id with a record instead)."""
    f = _filter(known)
    firms = db.session.scalar(sa.select(sa.func.max(Firm.id)))
    monkeypatch.setattr(metrics, "EXISTS_WALK", {"sqlite": 10, "postgresql": 10})
    postgres = db.session.get_bind().dialect.name == "postgresql"
    for rows, total, walks in ((10, firms, True), (10, firms - 1, False), (1, -(-firms // 10), True),
                               (11, firms, False), (None, firms, False), (10, 0, False)):
        stmt = records_statement("firms_reached", f, rows=rows, total=total)[1]
        sql = str(stmt.compile(db.session.get_bind()))
        assert ("EXISTS" in sql) is walks, (rows, total)
        assert sql.count("OFFSET") == (2 if walks and postgres else 0), sql


@pytest.mark.parametrize("dim", DIMENSIONS)
def test_each_breakdown_row_narrows_to_the_same_number(known, dim):
    f = _filter(known)
    result = compute_metrics(f, [dim])
    for key, values in result.breakdowns[dim].items():
        narrowed = dimension_filter(f, dim, key, (result.window_from, result.window_to))
        if narrowed is None:
            continue
        again = compute_metrics(narrowed).totals
        for metric, value in values.items():
            if dim == "industry" and metric == "events_held":
                continue  # tag-based: the same in both, but events of several industries are in several rows
            assert again[metric] == value, (dim, key, metric)


def test_sla_tiers_are_inclusive_and_counted_in_working_days(known):
    a = known.apps
    # 1000万 exactly → 3 days (hit on the 3rd); 1000万 + 1 fen → 5 days; 3000万 → 5 (miss on the 6th); more → 10
    assert [a[n].requested_fen for n in ("A1", "A2", "A4", "A5")] == [10**9, 10**9 + 1, 3 * 10**9, 3 * 10**9 + 1]
    result = compute_metrics(_filter(known))
    assert (result.meta["sla_decided"], result.meta["sla_hits"]) == (7, 5)


def test_a_holiday_override_changes_the_sla_outcome(known):
    a6 = known.apps["A6"]  # decided on the 4th working day with a 3-day tier: a miss
    db.session.add(HolidayOverride(day=add_workdays(a6.accepted_on, 1).day, is_workday=False, note="停电"))
    db.session.commit()
    result = compute_metrics(_filter(known))
    assert result.meta["sla_hits"] == 6
    assert result.totals["sla_hit_rate"] == Decimal("0.8571")


def test_the_json_document_has_exact_decimal_strings(known):
    doc = compute_metrics(_filter(known), ["industry", "district", "bank", "month"]).to_json()
    assert set(METRIC_KEYS) <= set(doc) and len(METRIC_KEYS) == 17
    assert doc["credit_amount_wan"] == "8900" and doc["sla_hit_rate"] == "0.7143" and doc["avg_discount_bp"] == "12.24"
    assert doc["by_bank"]["SZRCB"]["ip_pledge_amount_wan"] == "5800"
    assert doc["by_district"]["futian"]["credit_amount_wan"] == "300"
    assert doc["by_month"]["2026-03"]["visits"] == 3


def test_every_metric_has_both_definitions(known):
    for m in METRICS:
        assert m.definition_zh and m.definition_en and m.label_zh and m.label_en
        assert METRIC_BY_KEY[m.key] is m


def test_amounts_stay_exact_beyond_float_precision(known):
    w = known.world
    app = known.apps["A7"]
    app.approved_fen = 123_456_789_012_345 + 1  # 123,456,789.012346 万元: floats would round it
    db.session.commit()
    totals = compute_metrics(_filter(known)).totals
    assert totals["credit_amount_wan"] == Decimal(8800 * 10**6 + 123_456_789_012_346) / 10**6


def _statements(fn):
    seen = []

    def before(conn, cursor, statement, *args):
        seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return len(seen)


def test_the_number_of_queries_does_not_grow_with_the_rows(known):
    f = _filter(known)
    run = lambda: compute_metrics(f, DIMENSIONS)  # noqa: E731
    def measure():
        db.session.expire_all()
        return _statements(run)

    before = measure()
    w = known.world
    for i in range(30):
        firm = factories.firm()
        factories.visit(firm, w.rm_a if i % 2 else w.rm_b, w.campaign, date(2026, 1 + i % 12, 3))
    db.session.commit()
    assert measure() == before
    assert before < 90
