"""The admin's working-day overrides under /credit/calendar: admin only, audited, used by the SLA."""
from datetime import date

import sqlalchemy as sa

from crm.core.models import AuditEntry, HolidayOverride
from crm.credit.sla import application_sla, load_overrides
from crm.extensions import db
from tests import factories_credit as fc


def test_only_the_admin_manages_overrides(app, world, login_as):
    for user in ("rm_a", "mgr_a", "bureau"):
        client = login_as(user)
        assert client.get("/credit/calendar").status_code == 403
        assert client.post("/credit/calendar", data={"day": "2027-02-06", "is_workday": "1"}).status_code == 403
        client.post("/logout")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(HolidayOverride)) == 0


def test_admin_adds_changes_and_removes_an_override_with_an_audit_trail(app, world, login_as):
    a = fc.application(world)
    a.accepted_on = date(2027, 2, 4)
    db.session.commit()
    client = login_as(world.admin)
    html = client.get("/credit/calendar").get_data(as_text=True)
    assert "2004–2026" in html
    resp = client.post("/credit/calendar", data={"day": "2027-02-06", "is_workday": "1", "note": "春节调休上班"})
    assert resp.status_code == 302
    assert application_sla(a, date(2027, 2, 4), load_overrides()).deadline == date(2027, 2, 8)
    client.post("/credit/calendar", data={"day": "2027-02-06", "is_workday": "0", "note": "改为休息"})
    row = db.session.scalars(sa.select(HolidayOverride)).one()
    assert (row.is_workday, row.note) == (False, "改为休息")
    assert client.post(f"/credit/calendar/{row.id}/delete").status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(HolidayOverride)) == 0
    actions = db.session.scalars(sa.select(AuditEntry.action).where(AuditEntry.object_type == "holiday_override")
                                 .order_by(AuditEntry.id)).all()
    assert actions == ["create", "update", "delete"]
    assert db.session.scalars(sa.select(AuditEntry.user_id).where(
        AuditEntry.object_type == "holiday_override")).all() == [world.admin.id] * 3


def test_calendar_page_warns_when_next_year_is_missing(app, world, login_as, monkeypatch):
    monkeypatch.setattr("crm.credit.views.today_local", lambda: date(2026, 12, 20))
    client = login_as(world.admin)
    assert 'data-testid="calendar-stale"' in client.get("/credit/calendar").get_data(as_text=True)
    monkeypatch.setattr("crm.credit.views.today_local", lambda: date(2026, 6, 1))
    assert 'data-testid="calendar-stale"' not in client.get("/credit/calendar").get_data(as_text=True)
