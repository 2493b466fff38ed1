"""Events: create and edit, codes, the list, cross-bank isolation, the after-event report."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from crm.core.models import AuditEntry
from crm.core.scoping import scope_for, scoped
from crm.events import services
from crm.events.models import Event, EventKind, EventStatus
from crm.extensions import db
from tests import factories
from tests import factories_events as fe


def _form(world, **overrides):
    data = {
        "title": "坂田街道人工智能专场对接会", "campaign_id": world.campaign.id, "kind": "park",
        "held_on": "2026-06-18", "start_time": "14:30", "end_time": "17:00", "venue": "龙岗区天安云谷会议中心",
        "capacity": "60", "status": "planned", "organisers": [world.branch_a.id, world.bureau.id],
        "industries": ["ai", "low_altitude"], "staff": [world.rm_a.id, world.rm_a2.id], "description": "",
        "deals_signed": "2", "deals_signed_wan": "500", "intentions": "5", "intentions_wan": "1200.5",
    }
    data.update(overrides)
    return data


def test_bank_organiser_creates_event_with_every_field_and_a_generated_code(world, login_as, client):
    login_as("rm_a")
    resp = client.post("/events/new", data=_form(world))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    event = db.session.scalar(sa.select(Event))
    assert event.code == "EV-2026-0001"
    assert event.kind == EventKind.PARK and event.held_on == date(2026, 6, 18)
    assert event.start_time.strftime("%H:%M") == "14:30" and event.capacity == 60
    assert {o.id for o in event.organisers} == {world.branch_a.id, world.bureau.id}
    assert {i.code for i in event.industries} == {"ai", "low_altitude"}
    assert {u.username for u in event.staff} == {"rm_a", "rm_a2"}
    assert event.deals_signed == 2 and event.deals_signed_fen == 500 * 1_000_000
    assert event.intentions == 5 and event.intentions_fen == 1_200_500_000
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "create",
                                                         AuditEntry.object_type == "event")) is not None
    # the second event of the year gets the next number
    client.post("/events/new", data=_form(world, title="第二场"))
    assert db.session.scalars(sa.select(Event.code).order_by(Event.id)).all() == ["EV-2026-0001", "EV-2026-0002"]


def test_event_code_is_unique_even_across_banks(world, login_as, client):
    fe.event([world.bank_b], world.campaign, code="LG-2026-07")
    db.session.commit()
    login_as("rm_a")
    resp = client.post("/events/new", data=_form(world, code="lg-2026-07"))
    assert resp.status_code == 422
    assert "LG-2026-07" in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Event.id))) == 1


def test_bank_user_is_always_an_organiser_of_the_event_they_create(world, login_as, client):
    login_as("rm_a")
    resp = client.post("/events/new", data=_form(world, organisers=[world.bureau.id]))
    assert resp.status_code == 302
    event = db.session.scalar(sa.select(Event))
    assert world.branch_a.id in {o.id for o in event.organisers}


@pytest.mark.parametrize("field,value", [("end_time", "13:00"), ("capacity", "0"), ("title", ""),
                                         ("held_on", "2026-13-01"), ("deals_signed", "-1")])
def test_invalid_event_is_refused(world, login_as, client, field, value):
    login_as("rm_a")
    resp = client.post("/events/new", data=_form(world, **{field: value}))
    assert resp.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count(Event.id))) == 0


def test_edit_keeps_other_persons_change_and_answers_409_on_stale_version(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign, title="原标题")
    db.session.commit()
    login_as("mgr_a")
    form = _form(world, title="新标题", organisers=[world.bank_a.id], version=str(e.version), code=e.code)
    assert client.post(f"/events/{e.id}/edit", data=form).status_code == 302
    db.session.refresh(e)
    assert e.title == "新标题" and e.version == 2
    stale = client.post(f"/events/{e.id}/edit", data=dict(form, title="旧版本的修改", version="1"))
    assert stale.status_code == 409
    db.session.refresh(e)
    assert e.title == "新标题"


def test_capacity_cannot_drop_below_registrations(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign, capacity=10)
    for _ in range(3):
        fe.registration(e)
    db.session.commit()
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/edit", data=_form(world, capacity="2", organisers=[world.bank_a.id],
                                                           version=str(e.version), code=e.code))
    assert resp.status_code == 422
    db.session.refresh(e)
    assert e.capacity == 10


def test_list_shows_upcoming_and_past_events_of_own_bank_only(world, login_as, client):
    today = date.today()
    fe.event([world.bank_a], world.campaign, title="未来的A活动", held_on=today + timedelta(days=5))
    fe.event([world.branch_a], world.campaign, title="过去的A活动", held_on=today - timedelta(days=5))
    fe.event([world.bank_b], world.campaign, title="B银行专场", held_on=today + timedelta(days=5))
    db.session.commit()
    login_as("rm_a")
    html = client.get("/events/").get_data(as_text=True)
    upcoming, past = html.split('data-testid="past-events"')
    assert "未来的A活动" in upcoming and "过去的A活动" in past
    assert "B银行专场" not in html


def test_both_lists_page_through_every_event_in_order_and_say_how_many(world, login_as, client):
    import html as html_lib
    import re
    from datetime import time

    today = date.today()
    upcoming, past = [], []
    for i in range(57):  # three a day, one without a start time (first of its day), and ties on the start
        start = [None, time(14, 0), time(9, 30)][i % 3] if i % 5 else time(9, 30)
        upcoming.append(fe.event([world.bank_a], world.campaign, title=f"未来{i}",
                                 held_on=today + timedelta(days=1 + i // 3), start_time=start))
    for i in range(53):
        past.append(fe.event([world.branch_a], world.campaign, title=f"过去{i}",
                             held_on=today - timedelta(days=1 + i // 2)))
    fe.event([world.bank_b], world.campaign, title="B银行专场", held_on=today + timedelta(days=1))
    db.session.commit()
    expected_up = [e.id for e in sorted(upcoming, key=lambda e: (e.held_on, e.start_time or time(0), e.id))]
    expected_past = [e.id for e in sorted(past, key=lambda e: (e.held_on, e.id), reverse=True)]
    login_as("rm_a")

    def section(body, testid):
        return body.split(f'data-testid="{testid}-events"')[1].split("</div>\n<div")[0]

    def walk(testid, url="/events/?status=planned"):
        seen, pages, other_first = [], 0, None
        while url:
            body = client.get(url).get_data(as_text=True)
            assert re.search(rf'data-testid="{testid}-total">(\d+)<', body).group(1) == str(
                len(expected_up) if testid == "upcoming" else len(expected_past))
            seen += [int(x) for x in re.findall(r'href="/events/(\d+)"', section(body, testid))]
            other = "past" if testid == "upcoming" else "upcoming"
            shown = re.findall(r'href="/events/(\d+)"', section(body, other))
            other_first = other_first or shown[0]
            assert shown[0] == other_first  # paging one list keeps the other where it is
            pages += 1
            m = re.search(rf'data-testid="{testid}-next" href="([^"]+)"', body)
            url = html_lib.unescape(m.group(1)) if m else None
            assert url is None or "status=planned" in url
        return seen, pages

    assert walk("upcoming") == (expected_up, 2)
    assert walk("past") == (expected_past, 2)
    import base64
    import json

    def cursor(values):
        return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()

    for query in ("past_after=not-a-cursor", f"past_after={cursor(['2026-01-01', 10 ** 20])}",
                  f"upcoming_after={cursor(['2026-01-01', '09:00:00', 2 ** 63])}"):
        body = client.get(f"/events/?{query}").get_data(as_text=True)
        assert re.findall(r'href="/events/(\d+)"', section(body, "past"))[:50] == [
            str(i) for i in expected_past[:50]]
        assert re.findall(r'href="/events/(\d+)"', section(body, "upcoming"))[:50] == [
            str(i) for i in expected_up[:50]]
    assert "B银行专场" not in body


def test_bureau_and_admin_see_every_banks_events(world, login_as, client):
    fe.event([world.bank_a], world.campaign, title="A专场")
    fe.event([world.bank_b], world.campaign, title="B专场")
    db.session.commit()
    for user in ("bureau", "admin"):
        login_as(user)
        html = client.get("/events/").get_data(as_text=True)
        assert "A专场" in html and "B专场" in html


@pytest.mark.parametrize("path", ["", "/edit", "/invite", "/desk", "/desk/counts", "/desk/rows", "/export",
                                  "/export.csv", "/export.xlsx", "/sign-in-sheet", "/report", "/poster",
                                  "/registrations/new"])
def test_other_banks_event_is_404_on_every_page(world, login_as, client, path):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_b")
    assert client.get(f"/events/{e.id}{path}").status_code == 404


def test_other_banks_registration_actions_are_404(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e)
    db.session.commit()
    login_as("rm_b")
    assert client.post(f"/events/{e.id}/registrations/{r.id}/checkin").status_code == 404
    assert client.post(f"/events/{e.id}/registrations/{r.id}/undo").status_code == 404
    assert client.get(f"/events/{e.id}/registrations/{r.id}/edit").status_code == 404
    assert client.get(f"/events/checkin/{r.checkin_token}").status_code == 404
    db.session.refresh(r)
    assert r.checked_in_at is None


def test_joint_event_is_visible_to_both_organising_banks(world, login_as, client):
    e = fe.event([world.branch_a, world.bank_b], world.campaign, title="联合专场")
    db.session.commit()
    for user in ("rm_a", "rm_b"):
        login_as(user)
        assert client.get(f"/events/{e.id}").status_code == 200


def test_anonymous_user_is_sent_to_sign_in(world, client):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    resp = client.get(f"/events/{e.id}")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_publish_creates_a_random_link_with_a_server_drawn_qr_code(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    assert client.post(f"/events/{e.id}/publish", data={"action": "publish"}).status_code == 302
    db.session.refresh(e)
    assert e.public_token and len(e.public_token) >= 20
    poster = client.get(f"/events/{e.id}/poster").get_data(as_text=True)
    assert f"/events/r/{e.public_token}" in poster
    svg = client.get(f"/events/{e.id}/qr.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert b"http" not in svg.data.split(b">", 1)[1].replace(b"http://www.w3.org", b"")  # no external resource
    png = client.get(f"/events/{e.id}/qr.png")
    assert png.data.startswith(b"\x89PNG")
    client.post(f"/events/{e.id}/publish", data={"action": "unpublish"})
    db.session.refresh(e)
    assert e.public_token is None
    assert client.get(f"/events/{e.id}/qr.svg").status_code == 404


def test_after_event_report_counts_attendance_new_firms_and_what_followed(world):
    camp = world.campaign
    held = date(2026, 5, 10)
    e = fe.event([world.bank_a, world.bank_b], camp, held_on=held, status=EventStatus.HELD)
    old_firm, new_firm, absent_firm = factories.firm(), factories.firm(), factories.firm()
    factories.visit(old_firm, world.rm_a, camp, visited_on=held - timedelta(days=30))  # reached before
    fe.registration(e, old_firm, checked_in=True)
    fe.registration(e, new_firm, checked_in=True)
    fe.registration(e, absent_firm)
    fe.registration(e, absent_firm)
    fe.registration(e, new_firm, checked_in=True, source=fe.RegistrationSource.WALK_IN)
    # after the event: visits by A (inside and outside the window) and by B
    factories.visit(new_firm, world.rm_a, camp, visited_on=held + timedelta(days=10))
    factories.visit(new_firm, world.rm_a, camp, visited_on=held + timedelta(days=91))
    factories.visit(old_firm, world.rm_b, camp, visited_on=held + timedelta(days=20))
    factories.visit(absent_firm, world.rm_a, camp, visited_on=held + timedelta(days=3))  # not an attendee
    from crm.credit.models import CreditApplication, Stage

    def app_(firm, rm, stage, accepted, decided=None, approved=None):
        a = CreditApplication(bank_id=rm.bank_id, rm_id=rm.id, campaign_id=camp.id, firm_id=firm.id,
                              product_code="ip_pledge", requested_fen=10_000_000_00, accepted_on=accepted,
                              stage=stage, decided_on=decided, approved_fen=approved)
        db.session.add(a)

    app_(new_firm, world.rm_a, Stage.APPROVED, held + timedelta(days=20), held + timedelta(days=25), 300_000_000)
    app_(old_firm, world.rm_a, Stage.UNDER_REVIEW, held + timedelta(days=40))
    app_(old_firm, world.rm_b, Stage.APPROVED, held + timedelta(days=5), held + timedelta(days=8), 100_000_000)
    db.session.commit()

    with scoped(scope_for(world.rm_a)):
        rep = services.after_event_report(db.session.get(Event, e.id))
    assert (rep.registered, rep.attended, rep.walk_ins) == (4, 3, 1)
    assert rep.no_shows == 2 and rep.no_show_rate == pytest.approx(0.5)
    assert rep.attendee_firms == 2 and rep.new_firms == 1
    assert (rep.visits, rep.applications, rep.approvals, rep.approved_fen) == (1, 2, 1, 300_000_000)
    with scoped(scope_for(world.bureau_user)):
        rep_all = services.after_event_report(db.session.get(Event, e.id))
    assert (rep_all.visits, rep_all.applications, rep_all.approvals) == (2, 3, 2)
    assert rep_all.approved_fen == 400_000_000


def test_report_page_renders_for_organiser(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign, status=EventStatus.HELD)
    fe.registration(e, checked_in=True)
    db.session.commit()
    login_as("rm_a")
    html = client.get(f"/events/{e.id}/report").get_data(as_text=True)
    assert 'data-testid="report-attended">1<' in html


@pytest.mark.parametrize("user", ["rm_a", "mgr_a", "bureau", "admin"])
def test_every_event_page_renders_for_each_organising_role(world, login_as, client, user):
    # the bureau co-organises: it writes only the events it organises (tests/test_isolation_matrix.py)
    e = fe.event([world.bank_a, world.bureau], world.campaign, capacity=30)
    r = fe.registration(e, checked_in=True)
    services.publish(e, world.rm_a)
    db.session.commit()
    login_as(user)
    for path in ["/events/", "/events/new", f"/events/{e.id}", f"/events/{e.id}/edit", f"/events/{e.id}/invite",
                 f"/events/{e.id}/invite?industry=ai&never_reached=y", f"/events/{e.id}/desk",
                 f"/events/{e.id}/export", f"/events/{e.id}/sign-in-sheet", f"/events/{e.id}/report",
                 f"/events/{e.id}/poster", f"/events/{e.id}/registrations/new",
                 f"/events/{e.id}/registrations/{r.id}/edit", f"/events/{e.id}/registrations/{r.id}/confirmation",
                 f"/events/checkin/{r.checkin_token}", f"/events/{e.id}/firms.json?q=深圳"]:
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True)[:3000])


XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "' onmouseover='alert(1)", '{{7*7}}',
       '</textarea><script>alert(1)</script>', '<svg onload=alert(1)>']


@pytest.mark.parametrize("payload", XSS)
def test_titles_and_names_are_escaped_on_every_page(world, login_as, client, payload):
    e = fe.event([world.bank_a], world.campaign, title=payload, venue=payload)
    firm = factories.firm(payload[:100])
    r = fe.registration(e, firm, name=payload[:60], person_title=payload[:60])
    services.publish(e, world.rm_a)
    db.session.commit()
    login_as("rm_a")
    for path in ["/events/", f"/events/{e.id}", f"/events/{e.id}/desk", f"/events/{e.id}/desk/rows",
                 f"/events/{e.id}/sign-in-sheet", f"/events/{e.id}/registrations/{r.id}/confirmation",
                 f"/events/checkin/{r.checkin_token}", f"/events/{e.id}/poster", f"/events/r/{e.public_token}"]:
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in html and "<svg onload" not in html and "<img src=x" not in html, path
        assert "onmouseover='alert" not in html, path
        if payload == "{{7*7}}":
            assert "{{7*7}}" in html, path  # shown literally, never evaluated


@pytest.mark.parametrize("organisers, writable", [("bank", False), ("bank+bureau", True)])
def test_the_bureau_sees_write_buttons_only_on_events_it_co_organises(world, login_as, client, organisers, writable):
    """A bank-only event is the banks' to write (the views answer 403): its pages show the bureau no button that
    would lead there, while a co-organised event shows them all."""
    orgs = [world.bank_a] + ([world.bureau] if organisers == "bank+bureau" else [])
    e = fe.event(orgs, world.campaign, title="只读检查专场")
    fe.registration(e, name="王五")
    fe.registration(e, name="赵六", checked_in=True)
    db.session.commit()
    login_as("bureau")
    detail = client.get(f"/events/{e.id}").get_data(as_text=True)
    desk = client.get(f"/events/{e.id}/desk").get_data(as_text=True)
    rows = client.get(f"/events/{e.id}/desk/rows").get_data(as_text=True)
    poster = client.get(f"/events/{e.id}/poster").get_data(as_text=True)
    assert "王五" in detail and "王五" in desk and "王五" in rows  # the bureau still reads every event
    for html, marks in ((detail, [f"/events/{e.id}/edit", f"/events/{e.id}/invite", f"/events/{e.id}/registrations/new",
                                  "/edit\""]),
                        (desk, ['data-testid="checkin"', 'data-testid="undo"', 'data-testid="walk-in"']),
                        (rows, ['data-testid="checkin"', 'data-testid="undo"']),
                        (poster, [f"/events/{e.id}/publish"])):
        for mark in marks:
            assert (mark in html) is writable, mark
    assert ('data-testid="read-only"' in desk) is not writable
    login_as("rm_a")  # the bank organiser always has them
    assert 'data-testid="checkin"' in client.get(f"/events/{e.id}/desk").get_data(as_text=True)
    assert f"/events/{e.id}/edit" in client.get(f"/events/{e.id}").get_data(as_text=True)
