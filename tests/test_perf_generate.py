"""The benchmark data generator: deterministic, proportioned, valid, and careful with non-empty databases."""
from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

import crm.perf  # noqa: F401  (registers `crm gen-data` until the app imports it)
from crm.core.validators import is_valid_credit_code, is_valid_mobile, is_valid_patent_number
from crm.extensions import db
from crm.perf import generate as gen

SCALE = 0.001  # 100 firms, 1,000 visits, 10 events, 300 registrations, 50 credit applications


def _firm_code_digest(conn) -> str:
    codes = conn.execute(sa.text("SELECT credit_code FROM firm ORDER BY id")).scalars().all()
    return hashlib.sha256("\n".join(codes).encode()).hexdigest()


def _counts(conn) -> dict[str, int]:
    tables = ["organisation", '"user"', "firm", "firm_account", "contact", "visit", "visit_companion", "follow_up",
              "event", "registration", "credit_application", "stage_change", "pledge", "ip_asset"]
    return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in tables}


@pytest.fixture
def generated(app):
    db.session.remove()
    result = gen.generate(db.engine, SCALE, seed=7, analyze=False)
    return result


def test_same_seed_gives_the_same_data_on_another_database(generated, databases, tmp_path):
    (tmp_path / "other").mkdir()
    other_url = databases.new(tmp_path / "other")
    other = sa.create_engine(other_url)
    try:
        again = gen.generate(other, SCALE, seed=7, analyze=False)
        with db.engine.connect() as a, other.connect() as b:
            assert _counts(a) == _counts(b)
            assert _firm_code_digest(a) == _firm_code_digest(b)
            assert a.execute(sa.text("SELECT SUM(requested_fen) FROM credit_application")).scalar() == \
                b.execute(sa.text("SELECT SUM(requested_fen) FROM credit_application")).scalar()
        assert again.counts == generated.counts
        assert again.firm_code_checksum == generated.firm_code_checksum
    finally:
        other.dispose()
        databases.drop(other_url)


def test_another_seed_gives_other_firms(generated, databases, tmp_path):
    (tmp_path / "other").mkdir()
    other_url = databases.new(tmp_path / "other")
    other = sa.create_engine(other_url)
    try:
        gen.generate(other, SCALE, seed=8, analyze=False)
        with db.engine.connect() as a, other.connect() as b:
            assert _firm_code_digest(a) != _firm_code_digest(b)
    finally:
        other.dispose()
        databases.drop(other_url)


def test_proportions_match_the_plan(generated):
    plan = gen.Plan.for_scale(SCALE)
    with db.engine.connect() as c:
        counts = _counts(c)
        assert counts["firm"] == plan.firms
        assert counts["visit"] == plan.visits
        assert counts["event"] == plan.events
        assert counts["registration"] == plan.registrations
        assert counts["credit_application"] == plan.credits
        checked = c.execute(sa.text("SELECT COUNT(*) FROM registration WHERE checked_in_at IS NOT NULL")).scalar()
        assert 0.75 <= checked / plan.registrations <= 0.85
        ip = c.execute(sa.text("SELECT COUNT(*) FROM credit_application WHERE product_code = 'ip_pledge'")).scalar()
        assert 0.12 <= ip / plan.credits <= 0.28
        # skew: the largest bank has clearly more visits than the smallest
        per_bank = c.execute(sa.text("SELECT COUNT(*) FROM visit GROUP BY bank_id ORDER BY COUNT(*) DESC")).scalars().all()
        assert len(per_bank) == 5 and per_bank[0] > 2 * per_bank[-1]


def test_identifiers_are_valid_and_constraints_hold(generated):
    with db.engine.connect() as c:
        codes = c.execute(sa.text("SELECT credit_code FROM firm")).scalars().all()
        assert codes and all(is_valid_credit_code(x) for x in codes)
        assert len(set(codes)) == len(codes)
        mobiles = c.execute(sa.text("SELECT mobile FROM registration UNION ALL SELECT mobile FROM contact")).scalars().all()
        assert all(is_valid_mobile(m) for m in mobiles)
        patents = c.execute(sa.text("SELECT patent_no FROM ip_asset")).scalars().all()
        assert all(is_valid_patent_number(p) for p in patents)
        assert c.execute(sa.text("SELECT COUNT(*) FROM (SELECT event_id, mobile FROM registration "
                                 "GROUP BY event_id, mobile HAVING COUNT(*) > 1) d")).scalar() == 0
        assert c.execute(sa.text("SELECT COUNT(*) FROM (SELECT ip_asset_id FROM pledge WHERE status = 'active' "
                                 "GROUP BY ip_asset_id HAVING COUNT(*) > 1) d")).scalar() == 0
        if c.dialect.name == "sqlite":
            assert c.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def test_accounts_and_credit_histories_are_consistent(generated):
    with db.engine.connect() as c:
        wrong = c.execute(sa.text(
            "SELECT COUNT(*) FROM firm_account a WHERE a.last_visit_on IS NOT (SELECT MAX(v.visited_on) FROM visit v "
            "WHERE v.bank_id = a.bank_id AND v.firm_id = a.firm_id)" if c.dialect.name == "sqlite" else
            "SELECT COUNT(*) FROM firm_account a WHERE a.last_visit_on IS DISTINCT FROM (SELECT MAX(v.visited_on) "
            "FROM visit v WHERE v.bank_id = a.bank_id AND v.firm_id = a.firm_id)")).scalar()
        assert wrong == 0
        rows = c.execute(sa.text("SELECT a.id, a.stage, a.decided_on, s.from_stage, s.to_stage, s.changed_on "
                                 "FROM credit_application a JOIN stage_change s ON s.application_id = a.id "
                                 "ORDER BY a.id, s.id")).all()
    by_app: dict[int, list] = {}
    for app_id, stage, decided, frm, to, on in rows:
        by_app.setdefault(app_id, []).append((stage, decided, frm, to, on))
    assert len(by_app) == gen.Plan.for_scale(SCALE).credits
    for hist in by_app.values():
        assert hist[0][2] is None and hist[0][3] == "accepted"
        for prev, cur in zip(hist, hist[1:]):
            assert cur[2] == prev[3], hist  # each move starts where the previous ended
            assert str(cur[4]) >= str(prev[4]), hist  # and never goes back in time
        assert hist[-1][3] == hist[-1][0]  # the last move is the current stage
        decisions = [h for h in hist if h[3] in ("approved", "declined")]
        if decisions:
            assert str(decisions[0][4]) == str(hist[0][1])


def test_refuses_a_database_with_data_unless_append(app, runner):
    db.session.remove()
    first = runner.invoke(args=["crm", "gen-data", "--scale", str(SCALE), "--seed", "3", "--quiet", "--no-analyze"])
    assert first.exit_code == 0, first.output
    firms = db.session.scalar(sa.text("SELECT COUNT(*) FROM firm"))
    db.session.remove()
    again = runner.invoke(args=["crm", "gen-data", "--scale", str(SCALE), "--seed", "3", "--quiet"])
    assert again.exit_code == 1
    assert "--append" in again.output
    assert db.session.scalar(sa.text("SELECT COUNT(*) FROM firm")) == firms
    db.session.remove()
    appended = runner.invoke(args=["crm", "gen-data", "--scale", str(SCALE), "--seed", "4", "--append", "--quiet",
                                   "--no-analyze"])
    assert appended.exit_code == 0, appended.output
    assert db.session.scalar(sa.text("SELECT COUNT(*) FROM firm")) == 2 * firms


def test_the_loaders_connection_goes_back_to_the_pool_with_foreign_keys_checked(generated):
    """The loader turns foreign key checks off for its own session; every pooled connection the application gets
    afterwards checks them again (a registration of an event that does not exist is refused)."""
    from sqlalchemy.orm import Session

    from crm.events.models import Registration, RegistrationSource

    pool = db.engine.pool
    conns = [db.engine.connect() for _ in range(max(1, pool.checkedin()))]
    try:
        for conn in conns:
            conn.begin()
            firm_id = conn.execute(sa.text("SELECT MIN(id) FROM firm")).scalar()
            with Session(bind=conn) as s, pytest.raises(sa.exc.IntegrityError, match="(?i)foreign key"):
                s.add(Registration(event_id=987_654, firm_id=firm_id, person_name="张三", mobile="13800138000",
                                   source=RegistrationSource.INVITED))
                s.flush()
            conn.rollback()
    finally:
        for conn in conns:
            conn.close()
