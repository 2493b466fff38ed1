"""Contacts: validated mobiles, masked everywhere, revealed (and audited) only to the recording organisation."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from crm.core.models import AuditEntry
from crm.extensions import db
from crm.firms.models import Contact
from tests import factories
from tests.factories_firms import audit_actions


def test_contact_mobile_is_validated_and_normalised(world, login_as):
    client = login_as("rm_a")
    resp = client.post(f"/firms/{world.firm.id}/contacts/new", data={"name": "张三", "mobile": "12345"})
    assert resp.status_code == 422 and "手机号码格式不正确" in resp.get_data(as_text=True)
    resp = client.post(f"/firms/{world.firm.id}/contacts/new",
                       data={"name": "张三", "title": "财务总监", "mobile": "+86 138-0013-8000", "email": "z@x.cn"})
    assert resp.status_code == 302
    c = db.session.scalar(sa.select(Contact))
    assert (c.mobile, c.bank_id) == ("13800138000", world.bank_a.id)
    assert audit_actions("contact") == ["create"]


def test_firm_page_masks_mobiles_and_the_audit_trail_never_holds_a_full_number(world, login_as):
    client = login_as("rm_a")
    client.post(f"/firms/{world.firm.id}/contacts/new", data={"name": "张三", "mobile": "13812345678"})
    html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert "138****5678" in html and "13812345678" not in html
    trail = " ".join((e.after or "") for e in db.session.scalars(
        sa.select(AuditEntry).execution_options(skip_tenant_scope=True)))
    assert "13812345678" not in trail


def test_reveal_shows_the_full_number_to_the_recording_bank_and_is_audited(world, login_as):
    c = factories.contact(world.firm, world.bank_a, mobile="13812345678")
    db.session.commit()
    client = login_as("rm_a2")
    resp = client.post(f"/firms/contacts/{c.id}/reveal", headers={"Accept": "application/json"})
    assert resp.get_json() == {"id": c.id, "mobile": "13812345678"}
    html = client.post(f"/firms/contacts/{c.id}/reveal").get_data(as_text=True)
    assert "13812345678" in html
    entries = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "contact.reveal")
                                 .execution_options(skip_tenant_scope=True)).all()
    assert len(entries) == 2 and {e.user_id for e in entries} == {world.rm_a2.id}


def test_other_bank_gets_404_and_bureau_403_on_a_bank_contact(world, login_as, client):
    c = factories.contact(world.firm, world.bank_a, name="甲行联系人", mobile="13812345678")
    db.session.commit()
    login_as("rm_b")
    for method, path in (("post", f"/firms/contacts/{c.id}/reveal"), ("get", f"/firms/contacts/{c.id}/edit"),
                         ("post", f"/firms/contacts/{c.id}/edit"), ("post", f"/firms/contacts/{c.id}/delete")):
        assert getattr(client, method)(path, data={"name": "x"}).status_code == 404, path
    html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert "甲行联系人" not in html and "5678" not in html
    assert client.get(f"/firms/{world.firm.id}/contacts.json").get_json() == []
    client.post("/logout")
    login_as("bureau")
    assert client.post(f"/firms/contacts/{c.id}/reveal").status_code == 403
    html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert "138****5678" in html and "13812345678" not in html
    assert not db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "contact.reveal")
                                  .execution_options(skip_tenant_scope=True)).all()


def test_bureau_recorded_contact_is_revealed_to_the_bureau_only(world, login_as, client):
    login_as("bureau")
    client.post(f"/firms/{world.firm.id}/contacts/new", data={"name": "局里联系人", "mobile": "13900001111"})
    c = db.session.scalar(sa.select(Contact).execution_options(skip_tenant_scope=True))
    assert c.bank_id == world.bureau.id
    assert client.post(f"/firms/contacts/{c.id}/reveal",
                       headers={"Accept": "application/json"}).get_json()["mobile"] == "13900001111"
    client.post("/logout")
    login_as("rm_a")
    assert client.post(f"/firms/contacts/{c.id}/reveal").status_code == 404
    assert "局里联系人" not in client.get(f"/firms/{world.firm.id}").get_data(as_text=True)


def test_stale_contact_edit_gets_409_and_keeps_the_other_change(world, login_as):
    c = factories.contact(world.firm, world.bank_a, name="原名")
    db.session.commit()
    client = login_as("rm_a")
    assert client.post(f"/firms/contacts/{c.id}/edit", data={"name": "第一次", "version": "1"}).status_code == 302
    resp = client.post(f"/firms/contacts/{c.id}/edit", data={"name": "第二次", "version": "1"})
    assert resp.status_code == 409
    assert db.session.get(Contact, c.id).name == "第一次"


def test_deleted_contact_leaves_the_page_and_the_delete_is_audited(world, login_as):
    c = factories.contact(world.firm, world.bank_a, name="要删除的人")
    db.session.commit()
    client = login_as("rm_a")
    assert client.post(f"/firms/contacts/{c.id}/delete").status_code == 302
    assert "要删除的人" not in client.get(f"/firms/{world.firm.id}#contacts").get_data(as_text=True).split(
        'data-testid="history"')[0]
    assert "delete" in audit_actions("contact")
    assert client.post(f"/firms/contacts/{c.id}/reveal").status_code == 404


@pytest.mark.parametrize("payload", ["<script>alert(1)</script>", "{{7*7}}", '"><img src=x onerror=alert(1)>'])
def test_contact_fields_are_escaped(world, login_as, payload):
    client = login_as("rm_a")
    client.post(f"/firms/{world.firm.id}/contacts/new", data={"name": payload[:60], "title": payload[:60]})
    html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert payload not in html or payload == "{{7*7}}"
    assert ">49<" not in html
