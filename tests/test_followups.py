"""Follow-ups: my follow-ups grouped (overdue first, red), done with an outcome, reassign within the bank,
the manager's overdue view with branch counts, optimistic locking and cross-bank isolation."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from crm.core.formatting import today_local
from crm.extensions import db
from crm.visits import services
from crm.visits.models import FollowUp, FollowUpStatus
from tests import factories
from tests.factories_firms import audit_actions


def _seed(world):
    today = today_local()
    items = {
        "overdue": factories.follow_up(world.firm, world.rm_a, today - timedelta(days=3), title="逾期事项"),
        "today": factories.follow_up(world.firm, world.rm_a, today, title="今天事项"),
        "later": factories.follow_up(world.firm, world.rm_a, today + timedelta(days=30), title="以后事项"),
        "other_bank": factories.follow_up(world.firm, world.rm_b, today - timedelta(days=1), title="乙行事项"),
    }
    db.session.commit()
    return items


def test_grouping_puts_overdue_first_then_today_this_week_later():
    from datetime import date

    today = date(2026, 11, 26)  # a Thursday
    mk = lambda d: FollowUp(due_on=d)  # noqa: E731
    groups = services.group_follow_ups([mk(date(2026, 11, 20)), mk(today), mk(date(2026, 11, 29)),
                                        mk(date(2026, 11, 30))], today)
    assert [len(groups.overdue), len(groups.today), len(groups.this_week), len(groups.later)] == [1, 1, 1, 1]


def test_my_follow_ups_show_overdue_first_and_red_and_only_mine(world, login_as):
    _seed(world)
    html = login_as("rm_a").get("/visits/followups/mine").get_data(as_text=True)
    assert html.index("逾期事项") < html.index("今天事项") < html.index("以后事项")
    assert 'data-testid="group-overdue"' in html and "text-bg-danger" in html
    assert "乙行事项" not in html


def test_home_page_counts_my_overdue_follow_ups(world, login_as):
    _seed(world)
    html = login_as("rm_a").get("/").get_data(as_text=True)
    assert 'data-testid="my-overdue">1<' in html
    assert 'href="/visits/followups/mine" data-testid="my-overdue-link"' in html


def test_marking_done_records_the_outcome_and_is_audited(world, login_as):
    fu = _seed(world)["overdue"]
    resp = login_as("rm_a").post(f"/visits/followups/{fu.id}/done", data={"outcome": "已送达方案", "version": "1"})
    assert resp.status_code == 302
    fu = db.session.get(FollowUp, fu.id)
    assert fu.status == FollowUpStatus.DONE and fu.outcome == "已送达方案" and fu.done_at is not None
    assert "update" in audit_actions("follow_up")


def test_stale_done_gets_409(world, login_as):
    fu = _seed(world)["today"]
    client = login_as("rm_a")
    client.post(f"/visits/followups/{fu.id}/reassign", data={"assignee_id": str(world.rm_a2.id), "version": "1"})
    resp = client.post(f"/visits/followups/{fu.id}/done", data={"outcome": "x", "version": "1"})
    assert resp.status_code == 409
    fu = db.session.get(FollowUp, fu.id)
    assert fu.status == FollowUpStatus.OPEN and fu.assignee_id == world.rm_a2.id


def test_reassign_only_within_the_bank(world, login_as):
    fu = _seed(world)["today"]
    client = login_as("rm_a")
    assert client.post(f"/visits/followups/{fu.id}/reassign",
                       data={"assignee_id": str(world.rm_b.id), "version": "1"}).status_code == 400
    assert db.session.get(FollowUp, fu.id).assignee_id == world.rm_a.id
    assert client.post(f"/visits/followups/{fu.id}/reassign",
                       data={"assignee_id": str(world.rm_a2.id), "version": "1"}).status_code == 302
    assert db.session.get(FollowUp, fu.id).assignee_id == world.rm_a2.id


def test_hand_over_has_its_own_page_with_the_banks_colleagues_and_comes_back_to_the_list(world, login_as):
    """The lists link each follow-up to a page listing the bank's colleagues once (its assignee chosen); saving
    there hands it over and returns to the list it came from."""
    fu = _seed(world)["today"]
    client = login_as("rm_a")
    listed = client.get("/visits/followups/mine").get_data(as_text=True)
    link = f'href="/visits/followups/{fu.id}/reassign?next=/visits/followups/mine"'
    assert link in listed and 'name="assignee_id"' not in listed
    page = client.get(f"/visits/followups/{fu.id}/reassign?next=/visits/followups/mine")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "今天事项" in html
    assert f'<option selected value="{world.rm_a.id}">' in html or f'<option value="{world.rm_a.id}" selected>' in html
    assert f'value="{world.rm_a2.id}"' in html and f'value="{world.rm_b.id}"' not in html  # (the bank's own only)
    assert 'name="next" value="/visits/followups/mine"' in html
    resp = client.post(f"/visits/followups/{fu.id}/reassign", data={"assignee_id": str(world.rm_a2.id),
                                                                     "version": "1", "next": "/visits/followups/mine"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/visits/followups/mine")
    assert db.session.get(FollowUp, fu.id).assignee_id == world.rm_a2.id


def test_hand_over_page_sends_back_only_within_the_site_and_is_404_for_another_bank(world, login_as):
    fu = _seed(world)["today"]
    html = login_as("rm_a").get(f"/visits/followups/{fu.id}/reassign?next=https://evil.example/x").get_data(
        as_text=True)
    assert 'name="next" value="https' not in html and 'name="next" value="/visits/followups/mine"' in html
    assert 'href="https://evil.example' not in html
    assert login_as("rm_b").get(f"/visits/followups/{fu.id}/reassign").status_code == 404


def test_the_lists_of_follow_ups_do_not_grow_with_the_banks_colleagues(world, login_as):
    """A bank's every user used to be listed in each item's hand-over form: 50 items x 130 users was 488 KB."""
    _seed(world)
    client = login_as("rm_a")
    before = len(client.get("/visits/followups/mine").get_data())
    for k in range(30):
        factories.user(f"rm_a_extra{k}", world.rm_a.role, world.rm_a.org, name=f"新同事{k:02d}")
    db.session.commit()
    html = client.get("/visits/followups/mine").get_data(as_text=True)
    assert len(html.encode()) == before and "新同事" not in html


def test_other_bank_gets_404_on_follow_up_actions(world, login_as):
    fu = _seed(world)["overdue"]
    client = login_as("rm_b")
    assert client.post(f"/visits/followups/{fu.id}/done", data={"version": "1"}).status_code == 404
    assert client.post(f"/visits/followups/{fu.id}/reassign",
                       data={"assignee_id": str(world.rm_b.id), "version": "1"}).status_code == 404
    assert db.session.get(FollowUp, fu.id).status == FollowUpStatus.OPEN


def test_manager_sees_every_overdue_follow_up_of_the_bank_with_branch_counts(world, login_as, client):
    _seed(world)
    factories.follow_up(world.firm, world.rm_a2, today_local() - timedelta(days=10), title="王经理逾期")
    factories.follow_up(world.firm, world.mgr_a, today_local() - timedelta(days=2), title="总行逾期")
    db.session.commit()
    login_as("mgr_a")
    html = client.get("/visits/followups/overdue").get_data(as_text=True)
    assert "逾期事项" in html and "王经理逾期" in html and "总行逾期" in html and "乙行事项" not in html
    assert 'data-branch="SZRCB-LG">2<' in html and 'data-branch="SZRCB">1<' in html
    client.post("/logout")
    assert login_as("rm_a").get("/visits/followups/overdue").status_code == 403


def test_the_overdue_counts_read_the_banks_follow_ups_by_the_bank_index(world, login_as, client):
    """The per-branch counts go from the bank's overdue follow-ups (ix_follow_up_bank_status_due, the index alone)
    to each one's assignee, not from each person to their follow-ups and then each row for its bank: SQLite's
    choice with the statistics of a scale-1 database (below, from ANALYZE there), 13-16 ms there."""
    from tests.sqlcount import statements

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan (PostgreSQL's follows its own statistics)")
    _seed(world)
    conn = db.session.connection()
    conn.exec_driver_sql("ANALYZE")
    conn.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE tbl IN ('follow_up', 'user')")
    for row in (("user", "ix_user_org_id", "338 8"), ("user", "ix_user_bank_id", "338 57"),
                ("follow_up", "ix_follow_up_bank_status_due", "59727 11946 3982 5 1"),
                ("follow_up", "ix_follow_up_bank_id", "59727 11946"), ("follow_up", "ix_follow_up_due_on", "59727 42"),
                ("follow_up", "ix_follow_up_assignee_status_due", "59727 187 63 1"),
                ("follow_up", "ix_follow_up_assignee_id", "59727 187")):
        conn.exec_driver_sql("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", row)
    conn.exec_driver_sql("ANALYZE sqlite_schema")  # (read the statistics again)
    db.session.commit()
    login_as("mgr_a")
    with statements() as seen:
        assert client.get("/visits/followups/overdue").status_code == 200
    counts = next(s for s in seen if "count(follow_up.id)" in s)
    params = (world.bank_a.id, "open", today_local().isoformat(), world.bank_a.id)
    plan = " | ".join(r[-1] for r in db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + counts, params))
    assert "COVERING INDEX ix_follow_up_bank_status_due" in plan and "ix_follow_up_assignee" not in plan, plan


def test_the_overdue_list_pages_and_narrows_to_a_branch_with_every_follow_up_once(world, login_as, client):
    import html as html_lib
    import re

    today = today_local()
    head_office = [factories.follow_up(world.firm, world.mgr_a, today - timedelta(days=1 + i % 7)) for i in range(40)]
    branch = [factories.follow_up(world.firm, world.rm_a2, today - timedelta(days=1 + i % 9)) for i in range(23)]
    factories.follow_up(world.firm, world.rm_a2, today, title="今天到期")  # due today: not overdue
    factories.follow_up(world.firm, world.rm_b, today - timedelta(days=2), title="乙行事项")
    db.session.commit()
    login_as("mgr_a")

    def walk(url):
        seen, pages, total = [], 0, None
        while url:
            body = client.get(url).get_data(as_text=True)
            assert "乙行事项" not in body and "今天到期" not in body
            total = int(re.search(r'data-testid="overdue-total">(\d+)<', body).group(1))
            seen += [int(x) for x in re.findall(r'data-followup-id="(\d+)"', body)]
            pages += 1
            m = re.search(r'rel="next" data-testid="next-page" href="([^"]+)"', body)
            url = html_lib.unescape(m.group(1)) if m else None
        return seen, pages, total

    def oldest_first(items):
        return [f.id for f in sorted(items, key=lambda f: (f.due_on, f.id))]

    assert walk("/visits/followups/overdue") == (oldest_first(head_office + branch), 2, 63)
    branch_code = world.rm_a2.org.code
    assert walk(f"/visits/followups/overdue?branch={branch_code}") == (oldest_first(branch), 1, 23)
    # each item links to its own hand-over page; no list of colleagues per item
    listing = client.get(f"/visits/followups/overdue?branch={branch_code}").get_data(as_text=True).split(
        'data-testid="overdue-list"')[1]
    assert listing.count('data-testid="hand-over"') == 23 and 'name="assignee_id"' not in listing
    assert all(f'/visits/followups/{fu.id}/reassign?next=/visits/followups/overdue"' in listing for fu in branch)
    # another bank's branch is no filter at all
    assert walk(f"/visits/followups/overdue?branch={world.rm_b.org.code}")[2] == 63


def test_follow_up_booked_from_the_firm_page(world, login_as):
    client = login_as("rm_a")
    resp = client.post(f"/visits/followups/new?firm_id={world.firm.id}",
                       data={"title": "电话回访", "due_on": "2026-12-10", "assignee_id": str(world.rm_a2.id)})
    assert resp.status_code == 302
    fu = db.session.scalar(sa.select(FollowUp))
    assert (fu.assignee_id, fu.bank_id) == (world.rm_a2.id, world.bank_a.id)
