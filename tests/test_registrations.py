"""Registrations: existing and new firms, capacity, duplicate mobiles, bulk invitations, public self-registration."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from crm.core.models import AuditEntry, Street
from crm.core.scoping import scope_for, scoped
from crm.events import services
from crm.events.models import Event, EventStatus, Registration, RegistrationSource
from crm.extensions import db
from crm.firms.models import Firm
from tests import factories
from tests import factories_events as fe


def _reg_form(**kw):
    data = {"firm_id": "0", "firm_name": "", "credit_code": "", "person_name": "王五", "person_title": "财务总监",
            "mobile": "13912345678", "need_summary": "知识产权质押贷款 500 万", "preferred_bank_id": "0",
            "source": "invited", "status": "registered", "remarks": ""}
    data.update(kw)
    return data


def _count(event_id=None):
    stmt = sa.select(sa.func.count(Registration.id))
    if event_id:
        stmt = stmt.where(Registration.event_id == event_id)
    return db.session.scalar(stmt)


# ----------------------------------------------------------------------------------------------- organiser side


def test_registers_a_person_from_an_existing_firm(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/registrations/new",
                       data=_reg_form(firm_id=str(world.firm.id), preferred_bank_id=str(world.bank_a.id),
                                      source="bureau", mobile="+86 139-1234-5678"))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:1500]
    r = db.session.scalar(sa.select(Registration))
    assert (r.firm_id, r.mobile, r.source, r.preferred_bank_id) == (world.firm.id, "13912345678",
                                                                     RegistrationSource.BUREAU, world.bank_a.id)
    assert r.need_summary == "知识产权质押贷款 500 万"
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.object_type == "registration"))
    assert "13912345678" not in (entry.after or "") and "139****5678" in entry.after


def test_registers_a_person_from_a_new_firm_created_with_a_valid_credit_code(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    code = factories.credit_code(777001)
    resp = client.post(f"/events/{e.id}/registrations/new", data=_reg_form(firm_name="深圳新注册科技有限公司",
                                                                           credit_code=code.lower()))
    assert resp.status_code == 302
    firm = db.session.scalar(sa.select(Firm).where(Firm.credit_code == code))
    assert firm is not None and firm.name == "深圳新注册科技有限公司"
    assert db.session.scalar(sa.select(Registration)).firm_id == firm.id


def test_an_invalid_credit_code_creates_nothing(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    bad = factories.credit_code(777002)[:-1] + ("0" if factories.credit_code(777002)[-1] != "0" else "1")
    resp = client.post(f"/events/{e.id}/registrations/new", data=_reg_form(firm_name="新公司", credit_code=bad))
    assert resp.status_code == 422
    assert "校验位" in resp.get_data(as_text=True)
    assert _count() == 0 and db.session.scalar(sa.select(Firm).where(Firm.name == "新公司")) is None


def test_an_existing_credit_code_reuses_the_shared_firm(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    client.post(f"/events/{e.id}/registrations/new",
                data=_reg_form(firm_name="别的名字", credit_code=world.firm.credit_code))
    assert db.session.scalar(sa.select(Registration)).firm_id == world.firm.id
    assert db.session.scalar(sa.select(sa.func.count(Firm.id))) == 1


@pytest.mark.parametrize("mobile", ["12345678901", "1391234567", "abc", ""])
def test_bad_mobile_is_refused(world, login_as, client, mobile):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/registrations/new", data=_reg_form(firm_id=str(world.firm.id), mobile=mobile))
    assert resp.status_code == 422 and _count() == 0


def test_capacity_is_enforced_with_a_clear_message(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign, capacity=2)
    fe.registration(e)
    fe.registration(e, status=fe.RegistrationStatus.CANCELLED)  # a cancelled one frees its place
    db.session.commit()
    login_as("rm_a")
    ok = client.post(f"/events/{e.id}/registrations/new", data=_reg_form(firm_id=str(world.firm.id)))
    assert ok.status_code == 302
    full = client.post(f"/events/{e.id}/registrations/new",
                       data=_reg_form(firm_id=str(world.firm.id), mobile="13900000099"))
    assert full.status_code == 422
    assert "活动已满" in full.get_data(as_text=True) or "full" in full.get_data(as_text=True)
    assert _count(e.id) == 3


def test_capacity_message_names_the_capacity(world):
    e = fe.event([world.bank_a], world.campaign, capacity=1)
    fe.registration(e)
    with pytest.raises(services.CapacityError) as exc:
        services.add_registration(e, world.firm, services.PersonData(person_name="甲", mobile="13600001234"),
                                  world.rm_a)
    assert "1" in str(exc.value)


def test_same_mobile_cannot_register_twice_for_one_event(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    other = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    assert client.post(f"/events/{e.id}/registrations/new",
                       data=_reg_form(firm_id=str(world.firm.id))).status_code == 302
    twice = client.post(f"/events/{e.id}/registrations/new",
                        data=_reg_form(firm_id=str(world.firm.id), person_name="另一个人", mobile="139 1234 5678"))
    assert twice.status_code == 422
    assert "139****5678" in twice.get_data(as_text=True)
    assert _count(e.id) == 1
    # the same person may register for another event
    assert client.post(f"/events/{other.id}/registrations/new",
                       data=_reg_form(firm_id=str(world.firm.id))).status_code == 302


def test_database_refuses_a_duplicate_mobile_even_past_the_service(world):
    e = fe.event([world.bank_a], world.campaign)
    fe.registration(e, mob="13911112222")
    db.session.commit()
    db.session.add(Registration(event_id=e.id, firm_id=world.firm.id, person_name="绕过", mobile="13911112222",
                                source=RegistrationSource.INVITED))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_cancelled_event_takes_no_registrations(world):
    e = fe.event([world.bank_a], world.campaign, status=EventStatus.CANCELLED)
    with pytest.raises(services.EventError):
        services.add_registration(e, world.firm, services.PersonData(person_name="甲", mobile="13900000001"),
                                  world.rm_a)


def test_editing_a_registration_keeps_a_masked_mobile_and_refuses_a_taken_one(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    r1 = fe.registration(e, mob="13900001111")
    fe.registration(e, mob="13900002222")
    db.session.commit()
    login_as("rm_a")
    form = {"person_name": "改名", "person_title": "", "mobile": "13900002222", "need_summary": "",
            "preferred_bank_id": "0", "source": "invited", "status": "confirmed", "absence_reason": "",
            "remarks": "", "version": str(r1.version)}
    assert client.post(f"/events/{e.id}/registrations/{r1.id}/edit", data=form).status_code == 422
    db.session.refresh(r1)
    assert r1.mobile == "13900001111"
    assert client.post(f"/events/{e.id}/registrations/{r1.id}/edit",
                       data=dict(form, mobile="13900001111")).status_code == 302
    db.session.refresh(r1)
    assert r1.person_name == "改名" and r1.status.value == "confirmed"
    stale = client.post(f"/events/{e.id}/registrations/{r1.id}/edit", data=dict(form, mobile="13900001111",
                                                                                 person_name="旧", version="1"))
    assert stale.status_code == 409


# ----------------------------------------------------------------------------------------------- bulk invitation


def _bantian(world):
    return db.session.scalar(sa.select(Street).where(Street.area_code == "longgang", Street.name == "坂田街道"))


def test_invite_filter_finds_ai_firms_in_a_street_never_reached_by_the_campaign(world):
    bantian = _bantian(world)
    e = fe.event([world.bank_a], world.campaign)
    target = [fe.firm_with_contact(world.bank_a, street=bantian) for _ in range(3)]
    visited = fe.firm_with_contact(world.bank_a, street=bantian)
    factories.visit(visited, world.rm_a, world.campaign)
    attended_before = fe.firm_with_contact(world.bank_a, street=bantian)
    earlier = fe.event([world.bank_a], world.campaign, held_on=date(2026, 3, 1))
    fe.registration(earlier, attended_before, checked_in=True)
    fe.firm_with_contact(world.bank_a, street=bantian, industry="biomedicine")  # other industry
    fe.firm_with_contact(world.bank_a, industry="ai")  # other street
    already = fe.firm_with_contact(world.bank_a, street=bantian)
    fe.registration(e, already)
    db.session.commit()
    with scoped(scope_for(world.rm_a)):
        found = services.filter_firms(db.session.get(Event, e.id), services.FirmFilter(
            industry="ai", area="longgang", street_id=bantian.id, never_reached=True))
        assert {f.id for f in found} == {f.id for f in target}
        # without "never reached" the visited and attended firms come back, never the already registered
        found_all = services.filter_firms(db.session.get(Event, e.id), services.FirmFilter(
            industry="ai", street_id=bantian.id))
        assert {f.id for f in found_all} == {f.id for f in target} | {visited.id, attended_before.id}


def test_bulk_invite_registers_each_firms_contact_and_skips_firms_without_one(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    with_contact = [fe.firm_with_contact(world.bank_a) for _ in range(3)]
    no_contact = factories.firm()
    b_only = fe.firm_with_contact(world.bank_b)  # bank A cannot see bank B's contact
    db.session.commit()
    login_as("rm_a")
    ids = [f.id for f in with_contact] + [no_contact.id, b_only.id]
    resp = client.post(f"/events/{e.id}/invite", data={"firm_ids": [str(i) for i in ids]})
    assert resp.status_code == 302
    regs = db.session.scalars(sa.select(Registration).where(Registration.event_id == e.id)).all()
    assert {r.firm_id for r in regs} == {f.id for f in with_contact}
    assert all(r.source == RegistrationSource.INVITED for r in regs)
    # inviting again changes nothing
    client.post(f"/events/{e.id}/invite", data={"firm_ids": [str(i) for i in ids]})
    assert _count(e.id) == 3


def test_bulk_invite_over_capacity_invites_nobody(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign, capacity=2)
    firms = [fe.firm_with_contact(world.bank_a) for _ in range(3)]
    db.session.commit()
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/invite", data={"firm_ids": [str(f.id) for f in firms]}, follow_redirects=True)
    assert _count(e.id) == 0
    assert "2" in resp.get_data(as_text=True)


def test_invite_page_lists_the_filtered_firms(world, login_as, client):
    bantian = _bantian(world)
    e = fe.event([world.bank_a], world.campaign)
    fe.firm_with_contact(world.bank_a, name="坂田人工智能甲公司", street=bantian)
    fe.firm_with_contact(world.bank_a, name="布吉生物医药公司", industry="biomedicine")
    db.session.commit()
    login_as("rm_a")
    html = client.get(f"/events/{e.id}/invite?industry=ai&area=longgang&street_id={bantian.id}&never_reached=y"
                      ).get_data(as_text=True)
    assert "坂田人工智能甲公司" in html and "布吉生物医药公司" not in html


# ----------------------------------------------------------------------------------------------- self-registration


def _public_form(**kw):
    data = {"firm_name": "深圳自主报名科技有限公司", "credit_code": factories.credit_code(880001),
            "person_name": "刘六", "person_title": "总经理", "mobile": "13722223333", "need_summary": "",
            "preferred_bank_id": "0", "consent": "y"}
    data.update(kw)
    return data


@pytest.fixture
def published(world):
    e = fe.event([world.bank_a], world.campaign, capacity=2)
    services.publish(e, world.rm_a)
    db.session.commit()
    return e


def test_public_page_registers_without_an_account_and_the_organiser_sees_it(world, client, login_as, published):
    page = client.get(f"/events/r/{published.public_token}")
    assert page.status_code == 200 and published.title in page.get_data(as_text=True)
    resp = client.post(f"/events/r/{published.public_token}", data=_public_form())
    assert resp.status_code == 302 and "/events/c/" in resp.headers["Location"]
    r = db.session.scalar(sa.select(Registration))
    assert r.source == RegistrationSource.SELF and r.consent_at is not None and r.created_by_id is None
    confirmation = client.get(resp.headers["Location"])
    assert confirmation.status_code == 200 and "137****3333" in confirmation.get_data(as_text=True)
    qr = client.get(resp.headers["Location"] + "/qr.svg")
    assert qr.status_code == 200 and b"<svg" in qr.data
    login_as("rm_a")
    assert "刘六" in client.get(f"/events/{published.id}").get_data(as_text=True)


def test_public_registration_needs_consent(client, published):
    resp = client.post(f"/events/r/{published.public_token}", data=_public_form(consent=""))
    assert resp.status_code == 422 and _count() == 0


@pytest.mark.parametrize("field,value", [("mobile", "1234"), ("mobile", "23800138000"), ("credit_code", "123"),
                                         ("person_name", ""), ("firm_name", ""), ("person_name", "a\x00b")])
def test_public_registration_validates_fields(client, published, field, value):
    resp = client.post(f"/events/r/{published.public_token}", data=_public_form(**{field: value}))
    assert resp.status_code == 422 and _count() == 0


def test_public_registration_respects_capacity_and_duplicates(client, published):
    assert client.post(f"/events/r/{published.public_token}", data=_public_form()).status_code == 302
    dup = client.post(f"/events/r/{published.public_token}", data=_public_form(person_name="重复"))
    assert dup.status_code == 422 and "137****3333" in dup.get_data(as_text=True)
    assert client.post(f"/events/r/{published.public_token}", data=_public_form(mobile="13722224444")).status_code == 302
    full = client.post(f"/events/r/{published.public_token}", data=_public_form(mobile="13722225555"))
    assert full.status_code == 422 and _count() == 2


def test_unknown_or_closed_public_link_is_404(world, client, published):
    assert client.get("/events/r/not-a-real-token").status_code == 404
    services.unpublish(published, world.rm_a)
    db.session.commit()
    assert client.get(f"/events/r/{published.public_token or 'x'}").status_code == 404


def test_public_page_closes_once_the_event_is_held(world, client, published):
    token = published.public_token
    published.status = EventStatus.HELD
    db.session.commit()
    resp = client.post(f"/events/r/{token}", data=_public_form())
    assert resp.status_code == 200 and _count() == 0


@pytest.mark.parametrize("app_overrides", [{"WTF_CSRF_ENABLED": True}])
def test_public_registration_needs_a_csrf_token(client, published):
    resp = client.post(f"/events/r/{published.public_token}", data=_public_form())
    assert resp.status_code == 400 and _count() == 0


@pytest.mark.parametrize("app_overrides", [{"RATELIMIT_ENABLED": True}])
def test_public_registration_is_rate_limited_per_ip(client, published):
    statuses = [client.post(f"/events/r/{published.public_token}", data=_public_form(consent="")).status_code
                for _ in range(11)]
    assert statuses[:10] == [422] * 10
    assert statuses[10] == 429
