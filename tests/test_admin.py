"""Administration pages: the admin manages everything, a bank lead only their own bank's accounts."""
import pytest
import sqlalchemy as sa

from crm.auth.models import User
from crm.extensions import db
from crm.orgs.models import Campaign, Organisation


def test_bank_lead_sees_only_own_bank_users(client, world, login_as):
    login_as(world.mgr_a)
    body = client.get("/admin/users").get_data(as_text=True)
    assert "rm_a" in body and "rm_b" not in body


def test_bank_lead_creates_an_rm_in_a_branch_with_a_one_time_password(client, world, login_as):
    login_as(world.mgr_a)
    resp = client.post("/admin/users/new", data={"username": "new_rm", "name": "新经理", "role": "rm",
                                                 "org": world.branch_a.id})
    assert resp.status_code == 200
    assert 'data-testid="one-time-password"' in resp.get_data(as_text=True)
    user = db.session.scalar(sa.select(User).where(User.username == "new_rm"))
    assert user.bank_id == world.bank_a.id and user.must_change_password


def test_bank_lead_cannot_create_users_in_another_bank_or_as_admin(client, world, login_as):
    login_as(world.mgr_a)
    before = db.session.scalar(sa.select(sa.func.count()).select_from(User))
    client.post("/admin/users/new", data={"username": "x", "role": "rm", "org": world.branch_b.id})
    client.post("/admin/users/new", data={"username": "y", "role": "admin", "org": world.bank_a.id})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == before


def test_bank_lead_gets_404_for_another_banks_user(client, world, login_as):
    login_as(world.mgr_a)
    assert client.post(f"/admin/users/{world.rm_b.id}/active").status_code == 404
    assert client.post(f"/admin/users/{world.rm_b.id}/reset").status_code == 404


def test_deactivating_an_rm_ends_their_session(app, world, login_as, client):
    rm_client = app.test_client()
    from tests.conftest import login

    login(rm_client, "rm_a")
    assert rm_client.get("/").status_code == 200
    login_as(world.mgr_a)
    client.post(f"/admin/users/{world.rm_a.id}/active")
    assert db.session.get(User, world.rm_a.id).is_active is False
    assert rm_client.get("/").status_code == 302


def test_password_reset_forces_a_change_at_next_sign_in(app, world, login_as, client):
    login_as(world.mgr_a)
    body = client.post(f"/admin/users/{world.rm_a.id}/reset").get_data(as_text=True)
    password = body.split('data-testid="one-time-password">')[1].split("<")[0].strip()
    other = app.test_client()
    resp = other.post("/login", data={"username": "rm_a", "password": password})
    assert resp.headers["Location"].endswith("/password")


@pytest.mark.parametrize("username", ["rm_a", "bureau", "mgr_a"])
def test_only_admin_manages_organisations(client, world, login_as, username):
    login_as(username)
    assert client.get("/admin/organisations").status_code == 403


def test_admin_creates_a_branch_and_a_campaign(client, world, login_as):
    login_as(world.admin)
    resp = client.post("/admin/organisations", data={"code": "SZRCB-BT", "name": "坂田支行", "kind": "bank",
                                                      "parent": world.bank_a.id})
    assert resp.status_code == 302
    branch = db.session.scalar(sa.select(Organisation).where(Organisation.code == "SZRCB-BT"))
    assert branch.parent_id == world.bank_a.id
    resp = client.post("/admin/campaigns", data={"code": "C2", "name": "二期", "district": "龙岗区",
                                                  "start_on": "2027-01-01", "end_on": "2026-01-01",
                                                  "orgs": [world.bank_a.id]})
    assert "早于" in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(Campaign).where(Campaign.code == "C2")) is None
