"""Visit logging: defaults, validation, the account update and follow-up in the same transaction, joint visits,
confidential notes, optimistic locking and cross-bank isolation."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from crm.core.formatting import today_local
from crm.extensions import db
from crm.firms.models import FirmAccount
from crm.visits.models import FollowUp, Visit
from tests import factories
from tests.factories_firms import audit_actions, count, form_visit


def test_new_visit_form_defaults_to_today_on_site_and_the_user(world, login_as):
    html = login_as("rm_a").get(f"/visits/new?firm_id={world.firm.id}").get_data(as_text=True)
    assert f'value="{today_local().isoformat()}"' in html
    assert '<option selected value="on_site">' in html
    assert f'<option selected value="{world.rm_a.id}">' in html
    assert "深圳市共享科技有限公司" in html


def test_plain_search_without_js_offers_matching_firms(world, login_as):
    html = login_as("rm_a").get("/visits/new?q=共享").get_data(as_text=True)
    assert f'<option value="{world.firm.id}">深圳市共享科技有限公司' in html


def test_logging_a_visit_updates_the_account_and_books_the_follow_up(world, login_as):
    client = login_as("rm_a")
    resp = client.post("/visits/new", data=form_visit(world.firm, world.campaign,
                                                      companion_ids=[str(world.bureau_user.id)]))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    v = db.session.scalar(sa.select(Visit))
    assert (v.bank_id, v.branch_id, v.rm_id, v.need_amount_fen) == (world.bank_a.id, world.branch_a.id,
                                                                   world.rm_a.id, 500 * 1_000_000)
    assert [c.username for c in v.companions] == ["bureau"]
    acct = db.session.scalar(sa.select(FirmAccount))
    assert (acct.last_visit_on, acct.willingness_code, acct.open_need_fen, acct.owner_id) == (
        date(2026, 11, 20), "strong", 500 * 1_000_000, world.rm_a.id)
    fu = db.session.scalar(sa.select(FollowUp))
    assert (fu.assignee_id, fu.due_on, fu.title, fu.visit_id) == (world.rm_a.id, date(2026, 11, 30),
                                                                 "送达知识产权质押贷款方案", v.id)
    assert audit_actions("visit") == ["create"] and audit_actions("follow_up") == ["create"]


def test_next_step_owner_gets_the_follow_up(world, login_as):
    client = login_as("rm_a")
    client.post("/visits/new", data=form_visit(world.firm, world.campaign, next_step_owner_id=str(world.rm_a2.id)))
    assert db.session.scalar(sa.select(FollowUp)).assignee_id == world.rm_a2.id


def test_visit_without_due_date_books_no_follow_up(world, login_as):
    login_as("rm_a").post("/visits/new", data=form_visit(world.firm, world.campaign, next_step_due_on=""))
    assert count(Visit) == 1 and count(FollowUp) == 0


@pytest.mark.parametrize("over, field_text", [
    ({"visited_on": (today_local() + timedelta(days=2)).isoformat()}, "未来"),
    ({"visited_on": "2025-12-31"}, "活动期间"),
    ({"need_amount_wan": "abc"}, "万元"),
    ({"firm_id": "999999"}, "企业"),
])
def test_invalid_visit_is_refused_and_nothing_is_saved(world, login_as, over, field_text):
    resp = login_as("rm_a").post("/visits/new", data=form_visit(world.firm, world.campaign, **over))
    assert resp.status_code == 422
    assert field_text in resp.get_data(as_text=True)
    assert count(Visit) == 0 and count(FirmAccount) == 0 and count(FollowUp) == 0


@pytest.mark.parametrize("field", ["rm_id", "companion_ids", "next_step_owner_id"])
def test_people_from_another_bank_are_refused(world, login_as, field):
    resp = login_as("rm_a").post("/visits/new", data=form_visit(world.firm, world.campaign,
                                                               **{field: str(world.rm_b.id)}))
    assert resp.status_code == 422
    assert count(Visit) == 0


def test_bureau_cannot_log_visits(world, login_as):
    assert login_as("bureau").post("/visits/new", data=form_visit(world.firm, world.campaign)).status_code == 403


def test_bureau_reads_notes_only_of_joint_visits(world, login_as, client):
    joint = factories.visit(world.firm, world.rm_a, world.campaign, summary="联合走访纪要")
    joint.companions = [world.bureau_user]
    alone = factories.visit(world.firm, world.rm_a, world.campaign, summary="甲行单独纪要")
    db.session.commit()
    login_as("bureau")
    assert "联合走访纪要" in client.get(f"/visits/{joint.id}").get_data(as_text=True)
    assert "甲行单独纪要" not in client.get(f"/visits/{alone.id}").get_data(as_text=True)
    html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert "联合走访纪要" in html and "甲行单独纪要" not in html
    assert "甲行单独纪要" not in client.get("/visits/").get_data(as_text=True)


def test_other_bank_gets_404_on_visit_urls_and_sees_none_in_lists(world, login_as):
    v = factories.visit(world.firm, world.rm_a, world.campaign, summary="甲行纪要")
    db.session.commit()
    client = login_as("rm_b")
    assert client.get(f"/visits/{v.id}").status_code == 404
    assert client.get(f"/visits/{v.id}/edit").status_code == 404
    assert client.post(f"/visits/{v.id}/edit", data=form_visit(world.firm, world.campaign)).status_code == 404
    assert client.post(f"/visits/{v.id}/delete").status_code == 404
    assert "深圳市共享科技有限公司" not in client.get("/visits/").get_data(as_text=True)
    assert db.session.get(Visit, v.id).is_deleted is False


def test_stale_visit_edit_gets_409_and_keeps_the_other_change(world, login_as, client):
    login_as("rm_a")
    client.post("/visits/new", data=form_visit(world.firm, world.campaign))
    v = db.session.scalar(sa.select(Visit))
    ok = client.post(f"/visits/{v.id}/edit", data=form_visit(world.firm, world.campaign, summary="第一次修改",
                                                             version=str(v.version)))
    assert ok.status_code == 302
    stale = client.post(f"/visits/{v.id}/edit", data=form_visit(world.firm, world.campaign, summary="第二次修改",
                                                                version="1"))
    assert stale.status_code == 409
    assert db.session.get(Visit, v.id).summary == "第一次修改"
    assert "update" in audit_actions("visit")


def test_editing_the_due_date_moves_the_open_follow_up(world, login_as):
    client = login_as("rm_a")
    client.post("/visits/new", data=form_visit(world.firm, world.campaign))
    v = db.session.scalar(sa.select(Visit))
    client.post(f"/visits/{v.id}/edit", data=form_visit(world.firm, world.campaign, next_step_due_on="2026-12-05",
                                                        version=str(v.version)))
    fus = db.session.scalars(sa.select(FollowUp)).all()
    assert [f.due_on for f in fus] == [date(2026, 12, 5)]


def test_deleting_the_latest_visit_recomputes_the_account(world, login_as):
    factories.visit(world.firm, world.rm_a, world.campaign, visited_on=date(2026, 3, 1))
    db.session.commit()
    client = login_as("rm_a")
    client.post("/visits/new", data=form_visit(world.firm, world.campaign))
    newest = db.session.scalar(sa.select(Visit).order_by(Visit.id.desc()))
    assert client.post(f"/visits/{newest.id}/delete").status_code == 302
    acct = db.session.scalar(sa.select(FirmAccount))
    assert acct.last_visit_on == date(2026, 3, 1) and acct.open_need_fen is None
    assert "delete" in audit_actions("visit")


def test_visit_list_mine_shows_own_and_accompanied_visits(world, login_as):
    factories.visit(world.firm, world.rm_a2, world.campaign, summary="x")
    other = factories.firm("陪同企业")
    v = factories.visit(other, world.rm_a2, world.campaign)
    v.companions = [world.rm_a]
    db.session.commit()
    html = login_as("rm_a").get("/visits/?mine=1").get_data(as_text=True)
    assert "陪同企业" in html and "深圳市共享科技有限公司" not in html
