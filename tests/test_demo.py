"""The demo campaign: it loads, is the same for a seed, is valid, and every role has something to see."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from crm import demo
from crm.auth.models import Role, User
from crm.auth.passwords import check_policy
from crm.core.formatting import today_local
from crm.core.validators import is_valid_credit_code, is_valid_mobile, normalize_patent_number
from crm.credit.models import CreditApplication, IpAsset, Pledge, PledgeStatus, Stage, StageChange
from crm.events.models import Event, EventStatus, Registration
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount
from crm.visits.models import FollowUp, FollowUpStatus, Visit
from tests.conftest import login, make_app

SEED = 7


def _count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def _fingerprint() -> dict:
    """What must be identical between two loads with one seed."""
    return {
        "firms": db.session.execute(sa.select(Firm.name, Firm.credit_code).order_by(Firm.credit_code)).all(),
        "visits": _count(Visit),
        "visit_days": db.session.scalars(sa.select(Visit.visited_on).order_by(Visit.id)).all(),
        "applications": db.session.execute(
            sa.select(CreditApplication.stage, CreditApplication.requested_fen, CreditApplication.accepted_on)
            .order_by(CreditApplication.id)).all(),
        "registrations": _count(Registration),
    }


@pytest.fixture(scope="module")
def demo_db(databases, tmp_path_factory):
    """One database with the demo loaded by its own app instance, shared read-only by this module's tests:
    (its URL, its fingerprint)."""
    url = databases.new(tmp_path_factory.mktemp("demo"))
    app = make_app(url)
    with app.app_context():
        demo.load(seed=SEED)
        db.session.commit()
        fingerprint = _fingerprint()
        db.session.remove()
        db.engine.dispose()
    yield url, fingerprint
    databases.drop(url)


@pytest.fixture
def demo_app(demo_db):
    app = make_app(demo_db[0])
    with app.app_context():
        yield app
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()


def test_demo_password_passes_the_password_policy(app):
    check_policy(demo.DEMO_PASSWORD)
    assert demo.DEMO_PASSWORD in demo.DEMO_LOGINS_NOTE
    for _role, username in demo.DEMO_LOGINS:
        assert username in demo.DEMO_LOGINS_NOTE


def test_load_into_a_fresh_database_returns_one_login_per_role_and_repeats_for_the_seed(app, demo_db):
    logins = demo.load(seed=SEED)
    db.session.commit()
    # two app instances, two fresh databases, one seed: the same demo
    assert _fingerprint() == demo_db[1]
    assert [role for role, _u in logins] == ["rm", "bank_manager", "bureau", "admin"]
    for role, username in logins:
        user = db.session.scalar(sa.select(User).where(User.username == username))
        assert user is not None and user.role == Role(role)
    assert 190 <= _count(Firm) <= 210
    assert 350 <= _count(Visit) <= 450
    assert 100 <= _count(CreditApplication) <= 130
    assert _count(Event) == 13
    assert 250 <= _count(Registration) <= 450


def test_every_credit_code_mobile_and_patent_number_is_valid(demo_app):
    codes = db.session.scalars(sa.select(Firm.credit_code)).all()
    assert codes and all(is_valid_credit_code(c) for c in codes)
    assert len(set(codes)) == len(codes)
    mobiles = db.session.scalars(sa.select(Contact.mobile)).all() + db.session.scalars(
        sa.select(Registration.mobile)).all()
    assert mobiles and all(is_valid_mobile(m) and len(m) == 11 for m in mobiles)
    assets = db.session.scalars(sa.select(IpAsset)).all()
    assert assets
    for asset in assets:
        assert normalize_patent_number(asset.patent_no).canonical == asset.patent_no
        assert asset.granted_on < asset.expires_on


def test_every_stage_appears_with_a_consistent_history(demo_app):
    apps = db.session.scalars(sa.select(CreditApplication).options(sa.orm.selectinload(CreditApplication.firm),
                                                                    sa.orm.selectinload(CreditApplication.history))
                              ).all()
    assert {a.stage for a in apps} == set(Stage)
    ip_share = sum(a.product_code == "ip_pledge" for a in apps) / len(apps)
    assert 0.3 <= ip_share <= 0.5
    for a in apps:
        history = a.history
        assert history[0].from_stage is None and history[0].to_stage == Stage.ACCEPTED
        assert history[-1].to_stage == a.stage
        assert all(prev.to_stage == nxt.from_stage and prev.changed_on <= nxt.changed_on
                   for prev, nxt in zip(history, history[1:]))
        decided = a.stage in (Stage.APPROVED, Stage.DECLINED, Stage.CONTRACTED, Stage.PLEDGE_REGISTERED,
                              Stage.DISBURSED, Stage.REPAID)
        assert (a.decided_on is not None) == decided
        assert (a.decline_reason_code is not None) == (a.stage == Stage.DECLINED)
        if decided:
            assert a.high_tech_at_decision == a.firm.is_high_tech_on(a.decided_on)
        if a.approved_fen is not None:
            assert 0 < a.approved_fen <= a.requested_fen and 0 <= a.discount_bp <= 20


def test_pledges_are_unique_while_active_and_outlive_the_loan(demo_app):
    pledges = db.session.scalars(sa.select(Pledge)).all()
    assert pledges
    active = [p.ip_asset_id for p in pledges if p.status == PledgeStatus.ACTIVE]
    assert len(active) == len(set(active))
    for p in pledges:
        assert p.application.product_code == "ip_pledge"
        if p.application.matures_on is not None:
            assert p.ip_asset.expires_on >= p.application.matures_on


def test_today_relative_records_give_the_home_pages_something_true(demo_app):
    today = today_local()
    for rm in db.session.scalars(sa.select(User).where(User.role == Role.RM)).all():
        overdue = db.session.scalar(sa.select(sa.func.count()).select_from(FollowUp).where(
            FollowUp.assignee_id == rm.id, FollowUp.status == FollowUpStatus.OPEN, FollowUp.due_on < today))
        assert overdue >= 3, rm.username
    upcoming = db.session.scalars(sa.select(Event).where(Event.status == EventStatus.PLANNED,
                                                         Event.held_on >= today)).all()
    assert upcoming
    expiring = [f for f in db.session.scalars(sa.select(Firm).where(Firm.high_tech_issued_on.is_not(None)))
                if 0 <= (f.high_tech_expires_on - today).days <= 90]
    assert expiring


def test_accounts_follow_their_latest_visit(demo_app):
    latest: dict[tuple[int, int], Visit] = {}
    for v in db.session.scalars(sa.select(Visit).order_by(Visit.visited_on, Visit.id)):
        latest[(v.bank_id, v.firm_id)] = v
    accounts = db.session.scalars(sa.select(FirmAccount)).all()
    assert len(accounts) == len(latest)
    for acct in accounts:
        latest_visit = latest[(acct.bank_id, acct.firm_id)]
        assert acct.last_visit_on == latest_visit.visited_on
        assert acct.willingness_code == latest_visit.willingness_code
        assert acct.open_need_fen == latest_visit.need_amount_fen


def test_held_events_have_check_ins_and_history_is_not_in_the_future(demo_app):
    held = db.session.scalars(sa.select(Event).where(Event.status == EventStatus.HELD)).all()
    assert held
    for ev in held:
        checked = [r for r in ev.registrations if r.checked_in_at is not None]
        assert len(checked) > len(ev.registrations) // 2
        assert all(r.checkin_method is not None for r in checked)
    assert db.session.scalar(sa.select(sa.func.max(Visit.visited_on))) <= demo.ANCHOR
    assert db.session.scalar(sa.select(sa.func.max(StageChange.changed_on))) <= demo.ANCHOR
    assert db.session.scalar(sa.select(sa.func.min(Visit.visited_on))) >= date(2026, 3, 1)


@pytest.mark.parametrize("role", ["rm", "bank_manager", "bureau", "admin"])
def test_each_demo_login_signs_in_and_sees_its_home_page(demo_app, role):
    username = dict(demo.DEMO_LOGINS)[role]
    client = demo_app.test_client()
    assert login(client, username, demo.DEMO_PASSWORD).status_code == 302
    resp = client.get("/")
    assert resp.status_code == 200
    if role == "rm":
        user = db.session.scalar(sa.select(User).where(User.username == username))
        assert user.name in resp.get_data(as_text=True)


def test_demo_data_command_refuses_a_non_empty_database_and_if_empty_does_nothing(app, runner, demo_db):
    first = runner.invoke(args=["crm", "demo-data", "--seed", str(SEED + 1)])
    assert first.exit_code == 0, first.output
    assert "chenhao" in first.output and demo.DEMO_PASSWORD in first.output
    firms = _count(Firm)
    assert _fingerprint()["firms"] != demo_db[1]["firms"]  # the seed matters

    refused = runner.invoke(args=["crm", "demo-data"])
    assert refused.exit_code == 1

    skipped = runner.invoke(args=["crm", "demo-data", "--if-empty"])
    assert skipped.exit_code == 0
    assert "sysadmin" in skipped.output
    db.session.expire_all()
    assert _count(Firm) == firms
