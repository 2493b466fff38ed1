"""Targets cascade campaign → bank → branch: who sets which, how the dashboard shows them, and the audit."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from crm.core.models import AuditEntry
from crm.dashboard.services import TargetError, save_targets
from crm.extensions import db
from crm.orgs.models import Target
from tests.factories_dashboard import build_known_campaign


@pytest.fixture
def known(world):
    k = build_known_campaign(world)
    db.session.commit()
    return k


def stored(campaign, org=None, metric="firms_reached"):
    return db.session.scalar(sa.select(Target.value).where(
        Target.campaign_id == campaign.id, Target.metric == metric,
        Target.org_id == org.id if org else Target.org_id.is_(None)))


def test_the_bureau_sets_campaign_and_bank_targets_with_an_audit_trail(known, client, login_as):
    w = known.world
    login_as("bureau")
    resp = client.post("/dashboard/targets?campaign=ZCR2026", data={
        "t-0-firms_reached": "520", "t-0-credit_amount_wan": "11700.5", f"t-{w.bank_b.id}-ip_pledge_deals": "41",
        f"t-{w.bank_a.id}-ip_pledge_deals": ""})
    assert resp.status_code == 302
    assert stored(w.campaign) == 520
    assert stored(w.campaign, metric="credit_amount_wan") == 11_700_500_000  # 万元 → fen, exactly
    assert stored(w.campaign, w.bank_b, "ip_pledge_deals") == 41
    assert stored(w.campaign, w.bank_a, "ip_pledge_deals") is None  # emptied: removed
    actions = db.session.scalars(sa.select(AuditEntry.action).where(AuditEntry.object_type == "target")).all()
    assert sorted(actions) == ["create", "delete", "update", "update"]


def test_a_bank_manager_splits_the_banks_target_across_branches_only(known, client, login_as):
    w = known.world
    login_as("mgr_a")
    page = client.get("/dashboard/targets?campaign=ZCR2026").get_data(as_text=True)
    assert f'name="t-{w.branch_a.id}-firms_reached"' in page
    assert f'name="t-{w.bank_a.id}-firms_reached"' not in page and 'name="t-0-' not in page
    assert "ICBC" not in page and "工商银行" not in page  # another bank's level is not shown
    client.post("/dashboard/targets?campaign=ZCR2026", data={
        f"t-{w.branch_a.id}-firms_reached": "4", f"t-{w.bank_a.id}-firms_reached": "999", "t-0-firms_reached": "1",
        f"t-{w.branch_b.id}-firms_reached": "7"})
    assert stored(w.campaign, w.branch_a) == 4
    assert stored(w.campaign, w.bank_a) == 6 and stored(w.campaign) == 10 and stored(w.campaign, w.branch_b) is None


def test_the_service_refuses_a_level_the_user_may_not_set(known):
    w = known.world
    with pytest.raises(TargetError):
        save_targets(w.campaign, {(w.bank_a.id, "visits"): 5}, user=w.mgr_a)
    with pytest.raises(TargetError):
        save_targets(w.campaign, {(w.branch_b.id, "visits"): 5}, user=w.mgr_a)
    with pytest.raises(TargetError):
        save_targets(w.campaign, {(None, "sla_hit_rate"): 5}, user=w.bureau_user)
    with pytest.raises(TargetError):
        save_targets(w.campaign, {(None, "visits"): 5}, user=w.rm_a)


def test_a_bad_value_saves_nothing(known, client, login_as):
    w = known.world
    login_as("bureau")
    resp = client.post("/dashboard/targets?campaign=ZCR2026", data={"t-0-visits": "12", "t-0-firms_reached": "-3"})
    assert resp.status_code == 200 and "alert-danger" in resp.get_data(as_text=True)
    assert stored(w.campaign, metric="visits") is None and stored(w.campaign) == 10


def test_a_relationship_manager_reads_targets_without_inputs(known, client, login_as):
    login_as("rm_a")
    page = client.get("/dashboard/targets?campaign=ZCR2026").get_data(as_text=True)
    assert "<input class=\"form-control" not in page and 'data-testid="save-targets"' not in page
    client.post("/dashboard/targets?campaign=ZCR2026", data={"t-0-firms_reached": "1"})
    assert stored(known.world.campaign) == 10


def test_branch_targets_above_the_banks_are_flagged(known, client, login_as):
    w = known.world
    login_as("mgr_a")
    client.post("/dashboard/targets?campaign=ZCR2026", data={f"t-{w.branch_a.id}-firms_reached": "9"})
    page = client.get("/dashboard/targets?campaign=ZCR2026").get_data(as_text=True)
    assert "alert-warning" in page


@pytest.mark.parametrize("user,query,target,progress", [
    ("bureau", "", "10", "80.0%"),  # campaign-wide: 8 of 10
    ("mgr_a", "", "6", "83.3%"),  # the bank's own: 5 of 6
    ("bureau", "bank=SZRCB&branch=SZRCB-LG", "5", "100.0%"),  # the branch: 5 of 5
])
def test_the_dashboard_shows_the_target_of_the_level_viewed(known, client, login_as, user, query, target, progress):
    login_as(user)
    html = client.get(f"/dashboard/?campaign=ZCR2026&{query}").get_data(as_text=True)
    card = html[html.index('data-card="firms_reached"'):html.index('data-card="firms_visited"')]
    assert f'<span data-target="firms_reached">{target}</span>' in card
    assert progress in card


def test_the_league_table_ranks_banks_and_branches_against_targets(known, client, login_as):
    login_as("bureau")
    html = client.get("/dashboard/?campaign=ZCR2026").get_data(as_text=True)
    league = html[html.index('data-testid="league"'):]
    league = league[:league.index("</table>")]
    orgs = re.findall(r'data-org="([^"]+)"', league)
    # A: 5 of 6 firms reached and 2 of 3 IP deals (mean 75.0%); B: 3 of 4 reached (75.0%): a tie, by code
    assert orgs == ["ICBC-SZ", "ICBC-FT", "SZRCB", "SZRCB-LG"]
    assert "83.3%" in league and "66.7%" in league and "75.0%" in league
    # each cell: the number linked to its records, then the target set for that row's org and the progress
    bank_a = league[league.index('data-org="SZRCB"'):league.index('data-org="SZRCB-LG"')]
    assert ('<td class="text-end"><a href="/dashboard/records?metric=firms_reached&amp;campaign=ZCR2026&amp;bank=SZRCB"'
            ' class="metric-link" data-metric="firms_reached" data-value="5">5</a>'
            ' <span class="text-muted small">/ 6</span><div class="small">83.3%</div></td>') in bank_a
    assert 'data-metric="visits" data-value="4">4</a></td>' in bank_a  # no target for visits: the number alone
    db.session.add(Target(campaign=known.world.campaign, org_id=known.world.bank_a.id, metric="visits", value=4))
    db.session.commit()
    html = client.get("/dashboard/?campaign=ZCR2026").get_data(as_text=True)
    league = html[html.index('data-testid="league"'):]
    assert re.findall(r'data-org="([^"]+)"', league[:league.index("</table>")])[0] == "SZRCB"  # now 83.3%
