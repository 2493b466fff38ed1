"""The check-in desk: one-tap check-in and undo (idempotent), walk-ins, live counts, search, QR check-in."""
from __future__ import annotations

import sqlalchemy as sa

from crm.core.models import AuditEntry
from crm.events import services
from crm.events.models import CheckinMethod, Registration, RegistrationSource, RegistrationStatus
from crm.extensions import db
from crm.firms.models import Firm
from tests import factories
from tests.conftest import login
from tests import factories_events as fe

JSON = {"Accept": "application/json", "X-Requested-With": "fetch"}


def _audits(action):
    return db.session.scalar(sa.select(sa.func.count(AuditEntry.id)).where(AuditEntry.action == action))


def test_check_in_is_one_tap_and_idempotent(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e, name="签到人")
    db.session.commit()
    login_as("rm_a")
    first = client.post(f"/events/{e.id}/registrations/{r.id}/checkin", headers=JSON)
    assert first.status_code == 200
    body = first.get_json()
    assert body["changed"] is True and body["counts"]["checked_in"] == 1 and 'data-testid="undo"' in body["row"]
    db.session.refresh(r)
    stamp = r.checked_in_at
    assert stamp is not None and r.checkin_method == CheckinMethod.STAFF
    second = client.post(f"/events/{e.id}/registrations/{r.id}/checkin", headers=JSON).get_json()
    assert second["changed"] is False and second["counts"]["checked_in"] == 1
    db.session.refresh(r)
    assert r.checked_in_at == stamp  # no double check-in, the first time stays
    assert _audits("registration.checkin") == 1


def test_undo_is_idempotent_and_allows_checking_in_again(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e, checked_in=True)
    db.session.commit()
    login_as("rm_a")
    assert client.post(f"/events/{e.id}/registrations/{r.id}/undo", headers=JSON).get_json()["changed"] is True
    assert client.post(f"/events/{e.id}/registrations/{r.id}/undo", headers=JSON).get_json()["changed"] is False
    db.session.refresh(r)
    assert r.checked_in_at is None and r.checkin_method is None
    assert _audits("registration.undo_checkin") == 1
    again = client.post(f"/events/{e.id}/registrations/{r.id}/checkin", headers=JSON).get_json()
    assert again["changed"] is True and again["counts"]["checked_in"] == 1


def test_without_javascript_the_desk_redirects_back_with_a_message(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e, name="无脚本")
    db.session.commit()
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/registrations/{r.id}/checkin", data={"q": "无脚本"})
    assert resp.status_code == 302 and f"/events/{e.id}/desk" in resp.headers["Location"]
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "无脚本" in page and 'data-testid="undo"' in page


def test_service_check_in_twice_changes_nothing_the_second_time(world):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e)
    assert services.check_in(r, world.rm_a) is True
    version = r.version
    assert services.check_in(r, world.rm_a) is False
    assert r.version == version
    assert services.undo_check_in(r, world.rm_a) is True
    assert services.undo_check_in(r, world.rm_a) is False


def test_a_cancelled_registration_who_comes_is_checked_in_and_confirmed(world):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e, status=RegistrationStatus.CANCELLED)
    assert services.check_in(r, world.rm_a) is True
    assert r.status == RegistrationStatus.CONFIRMED


def test_counts_registered_checked_in_and_walk_ins(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    for i in range(4):
        fe.registration(e, checked_in=i < 2)
    fe.registration(e, status=RegistrationStatus.CANCELLED)
    fe.registration(e, source=RegistrationSource.WALK_IN, status=RegistrationStatus.CONFIRMED, checked_in=True)
    db.session.commit()
    login_as("bureau")
    counts = client.get(f"/events/{e.id}/desk/counts").get_json()
    assert counts == {"registered": 4, "checked_in": 3, "walk_ins": 1, "capacity": None}


def test_walk_in_is_added_and_checked_in_on_the_spot(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/walk-in", data={"firm_name": world.firm.name, "credit_code": "",
                                                         "person_name": "现场来宾", "person_title": "CEO",
                                                         "mobile": "13655556666"})
    assert resp.status_code == 302
    r = db.session.scalar(sa.select(Registration).where(Registration.person_name == "现场来宾"))
    assert r.firm_id == world.firm.id and r.source == RegistrationSource.WALK_IN and r.checked_in_at is not None


def test_walk_in_from_an_unknown_firm_needs_a_valid_credit_code(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    db.session.commit()
    login_as("rm_a")
    data = {"firm_name": "未登记的公司", "credit_code": "", "person_name": "来宾", "person_title": "",
            "mobile": "13655557777"}
    refused = client.post(f"/events/{e.id}/walk-in", data=data)
    assert refused.status_code == 422 and db.session.scalar(sa.select(sa.func.count(Registration.id))) == 0
    code = factories.credit_code(990001)
    assert client.post(f"/events/{e.id}/walk-in", data=dict(data, credit_code=code)).status_code == 302
    assert db.session.scalar(sa.select(Firm).where(Firm.credit_code == code)).name == "未登记的公司"


def test_walk_in_with_a_mobile_already_registered_is_refused(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    fe.registration(e, mob="13655558888")
    db.session.commit()
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/walk-in", data={"firm_name": world.firm.name, "credit_code": "",
                                                         "person_name": "又来", "person_title": "",
                                                         "mobile": "13655558888"})
    assert resp.status_code == 422 and "136****8888" in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Registration.id))) == 1


def test_walk_in_at_a_full_event_is_refused(world):
    e = fe.event([world.bank_a], world.campaign, capacity=1)
    fe.registration(e)
    try:
        services.walk_in(e, world.rm_a, person=services.PersonData(person_name="甲", mobile="13600000001"),
                         firm_name=world.firm.name)
    except services.CapacityError:
        pass
    else:
        raise AssertionError("a full event took a walk-in")


def test_desk_search_by_name_mobile_tail_and_firm(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    acme = factories.firm("深圳市极光无人机有限公司")
    fe.registration(e, acme, name="赵一", mob="13800001234")
    fe.registration(e, name="钱二", mob="13800005678")
    fe.registration(e, name="孙三", mob="13800009999")
    db.session.commit()
    login_as("rm_a")

    def names(q):
        html = client.get(f"/events/{e.id}/desk/rows", query_string={"q": q}).get_data(as_text=True)
        return {n for n in ("赵一", "钱二", "孙三") if n in html}

    assert names("钱") == {"钱二"}
    assert names("5678") == {"钱二"}
    assert names("极光") == {"赵一"}
    assert names("") == {"赵一", "钱二", "孙三"}
    assert names("%") == set() and names("_") == set()


def test_desk_shows_masked_mobiles_to_a_non_organiser(app, world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    fe.registration(e, mob="13812345678")
    db.session.commit()
    login_as("bureau")  # sees the event, but the bureau is not among its organisers
    html = client.get(f"/events/{e.id}/desk").get_data(as_text=True)
    assert "138****5678" in html and "13812345678" not in html
    organiser = app.test_client()
    login(organiser, "rm_a")
    assert "13812345678" in organiser.get(f"/events/{e.id}/desk").get_data(as_text=True)


def test_scanning_the_confirmation_qr_checks_the_person_in(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e, name="扫码人")
    db.session.commit()
    login_as("rm_a")
    page = client.get(f"/events/checkin/{r.checkin_token}")
    assert page.status_code == 200 and "扫码人" in page.get_data(as_text=True)
    assert client.post(f"/events/checkin/{r.checkin_token}").status_code == 302
    db.session.refresh(r)
    assert r.checkin_method == CheckinMethod.QR
    stamp = r.checked_in_at
    client.post(f"/events/checkin/{r.checkin_token}")
    db.session.refresh(r)
    assert r.checked_in_at == stamp


def test_the_qr_on_a_confirmation_encodes_the_checkin_url(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e)
    db.session.commit()
    login_as("rm_a")
    html = client.get(f"/events/{e.id}/registrations/{r.id}/confirmation").get_data(as_text=True)
    assert f"/events/c/{r.checkin_token}/qr.svg" in html
    png = client.get(f"/events/c/{r.checkin_token}/qr.png")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    import segno

    expected = segno.make(f"http://localhost/events/checkin/{r.checkin_token}", error="m")
    svg = client.get(f"/events/c/{r.checkin_token}/qr.svg").data
    import io

    buf = io.BytesIO()
    expected.save(buf, kind="svg", scale=6, border=2, xmldecl=False, svgns=True, title=None, desc=None)
    assert svg == buf.getvalue()


def test_unknown_qr_token_is_404(world, login_as, client):
    login_as("rm_a")
    assert client.get("/events/checkin/nope").status_code == 404
    assert client.get("/events/c/nope").status_code == 404


def test_qr_checkin_needs_a_signed_in_organiser(world, client):
    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e)
    db.session.commit()
    resp = client.post(f"/events/checkin/{r.checkin_token}")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    db.session.refresh(r)
    assert r.checked_in_at is None
