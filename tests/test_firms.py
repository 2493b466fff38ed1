"""Firm registry: create/edit with validation, duplicates, optimistic locking, filters, keyset pages, export,
type-ahead, the firm page (expiry warning, timeline) and its change history, across banks."""
from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from crm.auth.models import Role, User
from crm.core.formatting import today_local
from crm.core.scoping import scope_for, scoped
from crm.extensions import db
from crm.firms import queries
from crm.firms.models import Firm, FirmAccount, SmeTier
from crm.orgs.models import Campaign
from tests import factories
from tests.factories_firms import audit_actions, count, form_firm
from tests.sqlcount import statements


def _ids(filters_args, user):
    from werkzeug.datastructures import MultiDict

    with scoped(scope_for(user)):
        f = queries.FirmFilters.from_args(MultiDict(filters_args))
        return {firm.id for firm in db.session.scalars(queries.filtered_firms(f, user))}


# --- create / edit ----------------------------------------------------------------------------------------


def test_rm_registers_firm_with_normalised_code_account_and_audit(world, login_as):
    client = login_as("rm_a")
    code = factories.credit_code(9001)
    resp = client.post("/firms/new", data=form_firm("深圳市新注册科技有限公司", code.lower()[:9] + " " + code[9:].lower()))
    assert resp.status_code == 302
    firm = db.session.scalar(sa.select(Firm).where(Firm.credit_code == code))
    assert firm.name == "深圳市新注册科技有限公司"
    assert firm.registered_capital_fen == 500 * 1_000_000 and firm.invention_patents == 3
    account = db.session.scalar(sa.select(FirmAccount).where(FirmAccount.firm_id == firm.id))
    assert account.bank_id == world.bank_a.id and account.owner_id == world.rm_a.id
    assert "create" in audit_actions("firm") and "create" in audit_actions("firm_account")


def test_bad_credit_code_is_refused_with_chinese_message(world, login_as):
    client = login_as("rm_a")
    before = count(Firm)
    resp = client.post("/firms/new", data=form_firm(code="91440300MA5000000X"))
    assert resp.status_code == 422
    assert "统一社会信用代码" in resp.get_data(as_text=True)
    assert count(Firm) == before


def test_duplicate_code_links_to_the_existing_firm_without_naming_its_banks(world, login_as):
    factories.account(world.firm, world.bank_a, world.rm_a)
    db.session.commit()
    client = login_as("rm_b")
    resp = client.post("/firms/new", data=form_firm("别的名字", world.firm.credit_code))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert f'href="/firms/{world.firm.id}"' in html
    assert "深圳农商银行" not in html and "李经理" not in html
    assert count(Firm) == 1


def test_bureau_cannot_register_firms(world, login_as):
    assert login_as("bureau").post("/firms/new", data=form_firm()).status_code == 403


def test_stale_firm_edit_gets_409_and_keeps_the_other_change(world, login_as, client):
    fid = world.firm.id
    login_as("rm_a")
    stale = form_firm("甲的修改", world.firm.credit_code, version="1")
    client.post("/logout")
    login_as("rm_b")
    resp = client.post(f"/firms/{fid}/edit", data=form_firm("乙的修改", world.firm.credit_code, version="1"))
    assert resp.status_code == 302
    client.post("/logout")
    login_as("rm_a")
    resp = client.post(f"/firms/{fid}/edit", data=stale)
    assert resp.status_code == 409
    assert "已被他人修改" in resp.get_data(as_text=True) or "他人" in resp.get_data(as_text=True)
    assert db.session.get(Firm, fid).name == "乙的修改"


def test_firm_edit_is_audited_with_before_and_after(world, login_as):
    import json

    from crm.core.models import AuditEntry

    client = login_as("rm_a")
    client.post(f"/firms/{world.firm.id}/edit", data=form_firm("改名科技有限公司", world.firm.credit_code, version="1"))
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.object_type == "firm",
                                                          AuditEntry.action == "update"))
    assert json.loads(entry.before)["name"] == "深圳市共享科技有限公司"
    assert json.loads(entry.after)["name"] == "改名科技有限公司"


# --- filters ----------------------------------------------------------------------------------------------


def test_search_matches_name_or_code_fragment_and_treats_wildcards_literally(world):
    other = factories.firm("深圳市百分百_电子有限公司")
    db.session.commit()
    assert _ids({"q": "共享"}, world.rm_a) == {world.firm.id}
    assert _ids({"q": world.firm.credit_code[-7:].lower()}, world.rm_a) == {world.firm.id}
    assert _ids({"q": "%"}, world.rm_a) == set()
    assert _ids({"q": "_"}, world.rm_a) == {other.id}
    assert _ids({"q": "' OR '1'='1"}, world.rm_a) == set()


def test_a_term_no_credit_code_can_hold_is_looked_for_in_names_only(world, login_as):
    """Codes hold 31 characters (no I, O, S, V, Z); a term with another character is compared with names only,
    and a term a code can hold with both, in the list and in the type-ahead alike."""
    named = factories.firm("深圳市ABC8共享测试有限公司")
    db.session.commit()
    code_part = world.firm.credit_code[-6:]
    for term, code_compared in (("共享", False), ("ABC8", True), ("io", False), (code_part.lower(), True)):
        with statements() as seen:
            found = _ids({"q": term}, world.rm_a)
        compared = any("credit_code LIKE" in s.replace('"', "") for s in seen)
        assert compared == code_compared, term
        if term == "共享":
            assert found == {world.firm.id, named.id}
        if term == "ABC8":
            assert found == {named.id}
        if term == code_part.lower():
            assert world.firm.id in found
    client = login_as("rm_a")
    assert [f["id"] for f in client.get("/firms/lookup?q=ABC8共享").get_json()] == [named.id]
    assert world.firm.id in {f["id"] for f in client.get(f"/firms/lookup?q={code_part}").get_json()}


def test_filters_on_master_data_combine(world):
    today = today_local()
    ht = factories.firm("高新甲", industry="biomedicine", high_tech_issued_on=today - timedelta(days=400),
                        sme_tier=SmeTier.LITTLE_GIANT)
    expired = factories.firm("过期乙", industry="biomedicine", high_tech_issued_on=today - timedelta(days=365 * 3 + 5))
    street = db.session.scalar(sa.text("SELECT id FROM street WHERE name = '坂田街道'"))
    on_street = factories.firm("坂田丙", street_id=street)
    db.session.commit()
    u = world.rm_a
    assert _ids({"industry": "biomedicine"}, u) == {ht.id, expired.id}
    assert _ids({"industry": "biomedicine", "high_tech": "1"}, u) == {ht.id}
    assert _ids({"sme_tier": "little_giant"}, u) == {ht.id}
    assert _ids({"area": "longgang", "street": str(street)}, u) == {on_street.id}
    assert _ids({"area": "futian"}, u) == set()


def test_relationship_filters_use_only_the_viewers_bank(world):
    today = today_local()
    a = FirmAccount(firm_id=world.firm.id, bank_id=world.bank_a.id, owner_id=world.rm_a.id, willingness_code="strong",
                    open_need_fen=5_000_000, last_visit_on=today - timedelta(days=100))
    db.session.add(a)
    fresh = factories.firm("新鲜企业")
    db.session.add(FirmAccount(firm_id=fresh.id, bank_id=world.bank_a.id, last_visit_on=today - timedelta(days=5)))
    never = factories.firm("从未走访")
    db.session.commit()
    for args in ({"willingness": "strong"}, {"need": "1"}, {"owner": str(world.rm_a.id)}, {"stale_days": "30"}):
        assert _ids(args, world.rm_a) == {world.firm.id}, args
        assert _ids(args, world.rm_b) == set(), args
    assert world.firm.id in _ids({"willingness": "strong"}, world.bureau_user)
    assert _ids({"willingness": "strong", "bank": str(world.bank_b.id)}, world.bureau_user) == set()
    assert fresh.id not in _ids({"stale_days": "30"}, world.rm_a)
    assert never.id in _ids({"never": "1"}, world.rm_a)


def test_the_owner_filter_lists_the_banks_active_people_by_name_and_keeps_the_choice(world, login_as):
    world.rm_a2.is_active_flag = False
    db.session.commit()
    html = login_as("mgr_a").get(f"/firms/?owner={world.rm_a.id}").get_data(as_text=True)
    select = re.search(r'<select class="form-select" id="f-owner" name="owner">(.*?)</select>', html, re.S).group(1)
    options = re.findall(r'<option value="(\d*)" ?(selected)?>([^<]*)</option>', select)
    assert options[0][:2] == ("", "")  # "All"
    # the bank's active people (not rm_a2, inactive; none of bank B), the chosen one selected
    assert sorted(options[1:]) == sorted([(str(world.mgr_a.id), "", world.mgr_a.display_name),
                                          (str(world.rm_a.id), "selected", "李经理")])


def test_never_reached_and_campaign_and_date_filters(world):
    factories.visit(world.firm, world.rm_a, world.campaign, visited_on=date(2026, 3, 2))
    other = factories.firm("另一家")
    db.session.commit()
    assert world.firm.id not in _ids({"never": "1"}, world.rm_a)
    assert world.firm.id in _ids({"never": "1"}, world.rm_b)  # bank B has not reached it
    assert other.id in _ids({"never": "1"}, world.rm_a)
    assert _ids({"campaign": str(world.campaign.id)}, world.rm_a) == {world.firm.id}
    assert _ids({"campaign": str(world.campaign.id)}, world.rm_b) == set()
    assert _ids({"from": "2026-03-01", "to": "2026-03-03"}, world.rm_a) == {world.firm.id}
    assert _ids({"from": "2026-03-03"}, world.rm_a) == set()


def test_bad_filter_values_are_ignored_not_errors(world, login_as):
    client = login_as("rm_a")
    for qs in ("street=abc", "owner=-1", "stale_days=x", "from=2026-13-45", "sort=drop", "after=%%%", "after=WzEsMl0"):
        assert client.get(f"/firms/?{qs}").status_code == 200, qs


# --- keyset pagination --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["name", "-name", "code", "-created", "created", "-last_visit"])
def test_walking_the_keyset_pages_lists_every_firm_once_without_offset(world, login_as, app, sort):
    for i in range(24):
        f = factories.firm(f"分页企业{i % 5}")
        if i % 3 == 0:
            db.session.add(FirmAccount(firm_id=f.id, bank_id=world.bank_a.id,
                                       last_visit_on=date(2026, 1, 1) + timedelta(days=i % 4)))
    db.session.commit()
    client = login_as("rm_a")
    statements = []

    def capture(conn, cursor, statement, parameters, *args):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        seen, url, pages = [], f"/firms/?per=7&sort={sort}", 0
        import re

        while url:
            html = client.get(url).get_data(as_text=True)
            seen += [int(x) for x in re.findall(r'data-firm-id="(\d+)"', html)]
            m = re.search(r'rel="next" data-testid="next-page" href="([^"]+)"', html)
            url = m.group(1).replace("&amp;", "&") if m else None
            pages += 1
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len(seen) == 25 and len(set(seen)) == 25
    assert pages == 4
    # every page is one LIMIT query; SQLite renders "LIMIT ? OFFSET ?" for a bare LIMIT, PostgreSQL no OFFSET at
    # all: whatever the engine, the offset is always 0 (keyset, not OFFSET)
    pages_sql = [(s, p) for s, p in statements if "FROM firm" in s and "LIMIT" in s]
    assert len(pages_sql) >= 4
    offsets = []
    for s, p in pages_sql:
        m = re.search(r"OFFSET (\?|%\((\w+)\)s|\d+)", s)
        if m:
            offsets.append(p[-1] if m.group(1) == "?" else p[m.group(2)] if m.group(2) else int(m.group(1)))
    assert set(offsets) <= {0}
    if sort == "name":
        names = [db.session.get(Firm, i).name for i in seen]
        assert names == sorted(names)


# --- export ---------------------------------------------------------------------------------------------


def test_export_uses_the_filters_and_is_audited_with_the_row_count(world, login_as):
    factories.firm("导出企业甲", industry="biomedicine")
    factories.firm("导出企业乙", industry="biomedicine")
    db.session.commit()
    client = login_as("rm_a")
    resp = client.get("/firms/export.csv?industry=biomedicine")
    assert resp.status_code == 200 and resp.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert sorted(r["企业名称"] for r in rows) == ["导出企业乙", "导出企业甲"]
    from crm.core.models import AuditEntry

    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "firm.export")
                              .execution_options(skip_tenant_scope=True))
    assert "rows=2" in entry.detail
    resp = client.get("/firms/export.xlsx?industry=biomedicine")
    assert resp.status_code == 200 and resp.data[:2] == b"PK"


def test_export_never_shows_another_banks_relationship_or_contacts(world, login_as):
    db.session.add(FirmAccount(firm_id=world.firm.id, bank_id=world.bank_a.id, owner_id=world.rm_a.id,
                               willingness_code="strong", open_need_fen=7_000_000))
    factories.contact(world.firm, world.bank_a, name="甲行联系人", mobile="13912345678")
    db.session.commit()
    text = login_as("rm_b").get("/firms/export.csv?mobiles=full").data.decode("utf-8-sig")
    assert "深圳市共享科技有限公司" in text
    for secret in ("李经理", "意愿强烈", "甲行联系人", "13912345678", "1234"):
        assert secret not in text


def test_export_of_full_mobiles_is_audited_with_a_count(world, login_as):
    factories.contact(world.firm, world.bank_a, name="甲行联系人", mobile="13912345678")
    db.session.commit()
    client = login_as("rm_a")
    assert "139****5678" in client.get("/firms/export.csv").data.decode("utf-8-sig")
    text = client.get("/firms/export.csv?mobiles=full").data.decode("utf-8-sig")
    assert "13912345678" in text
    from crm.core.models import AuditEntry

    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "contact.export")
                              .execution_options(skip_tenant_scope=True))
    assert entry is not None and "mobiles=1" in entry.detail


# --- type-ahead -----------------------------------------------------------------------------------------


def test_typeahead_returns_at_most_ten_firms_with_only_master_fields(world, login_as):
    for i in range(12):
        factories.firm(f"联想测试{i:02d}科技")
    factories.contact(world.firm, world.bank_a, name="甲行联系人")
    db.session.commit()
    client = login_as("rm_b")
    data = client.get("/firms/lookup?q=联想测试").get_json()
    assert len(data) == 10 and set(data[0]) == {"id", "name", "credit_code"}
    assert client.get("/firms/lookup?q=共享").get_json()[0]["id"] == world.firm.id
    assert client.get("/firms/lookup?q=%25").get_json() == []


def test_typeahead_requires_sign_in(world, client):
    assert client.get("/firms/lookup?q=共享").status_code in (302, 401)


# --- firm page --------------------------------------------------------------------------------------------


def test_firm_page_warns_when_the_high_tech_certificate_expires_within_90_days(world, login_as):
    today = today_local()
    soon = factories.firm("快到期", high_tech_issued_on=today.replace(year=today.year - 3) + timedelta(days=30),
                          high_tech_cert_no="GR202344000001")
    later = factories.firm("还早", high_tech_issued_on=today - timedelta(days=300), high_tech_cert_no="GR2025")
    db.session.commit()
    client = login_as("rm_a")
    assert 'data-testid="expiry-warning"' in client.get(f"/firms/{soon.id}").get_data(as_text=True)
    assert 'data-testid="expiry-warning"' not in client.get(f"/firms/{later.id}").get_data(as_text=True)


def test_timeline_shows_only_the_viewers_bank_and_hides_notes_from_the_bureau(world, login_as, client):
    factories.visit(world.firm, world.rm_a, world.campaign, summary="甲行机密纪要")
    factories.follow_up(world.firm, world.rm_a, date(2026, 12, 1), title="甲行跟进事项")
    factories.visit(world.firm, world.rm_b, world.campaign, summary="乙行机密纪要")
    db.session.commit()
    html = login_as("rm_a").get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert "甲行机密纪要" in html and "甲行跟进事项" in html and "乙行机密纪要" not in html
    client.post("/logout")
    html = login_as("rm_b").get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert "乙行机密纪要" in html and "甲行机密纪要" not in html and "甲行跟进事项" not in html
    client.post("/logout")
    html = login_as("bureau").get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert html.count('data-kind="visit"') == 2
    assert "机密纪要" not in html


def test_history_shows_firm_changes_and_only_own_related_records(world, login_as, client):
    login_as("rm_a")
    client.post(f"/firms/{world.firm.id}/edit", data=form_firm("改名后科技", world.firm.credit_code, version="1"))
    client.post(f"/firms/{world.firm.id}/contacts/new", data={"name": "甲行联系人王五", "mobile": "13800138000"})
    html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert "改名后科技" in html and "甲行联系人王五" in html and "李经理" in html
    client.post("/logout")
    login_as("rm_b")
    html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    history = html[html.index('data-testid="history"'):]
    assert "改名后科技" in history
    assert "甲行联系人王五" not in history and "李经理" not in history


def test_history_finds_the_related_records_entries_by_record_not_by_walking_the_banks_trail(world, login_as):
    """The bank's audit trail only grows (an import writes one entry per row). The firm page's history must find the
    entries of the viewer's records through the record index, never by walking every entry of the bank (SQLite
    without statistics for audit_entry did, through ix_audit_entry_bank_id: 10 ms more per 10,000 entries)."""
    from crm.core.models import AuditEntry

    db.session.execute(sa.insert(AuditEntry), [
        {"bank_id": world.bank_a.id, "action": "firm.import", "object_type": "firm", "object_id": 10_000 + n}
        for n in range(300)])
    db.session.commit()
    seen = []

    def _audit_statements(conn, cursor, statement, parameters, context, executemany):
        if "FROM audit_entry" in statement and "object_type" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", _audit_statements)
    try:
        assert login_as("rm_a").get(f"/firms/{world.firm.id}").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", _audit_statements)
    related = [(st, p) for st, p in seen if "contact" in st]  # (the firm's own entries are another statement)
    assert len(related) == 1
    statement, parameters = related[0]
    assert "UNION ALL" in statement  # one branch per kind of record, each a look-up of the record index
    if db.engine.dialect.name != "sqlite":
        return  # (PostgreSQL plans by its statistics; a table of a few hundred rows says nothing about a big one)
    plan = [row[-1] for row in db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                        parameters)]
    db.session.rollback()
    searches = [line for line in plan if "audit_entry" in line]
    assert any("ix_audit_entry_object" in line for line in searches), plan
    assert not any("ix_audit_entry_bank_id (bank_id=?)" in line for line in searches), plan


def test_other_bank_cannot_assign_itself_through_bank_a_account(world, login_as):
    factories.account(world.firm, world.bank_a, world.rm_a)
    db.session.commit()
    client = login_as("rm_b")
    resp = client.post(f"/firms/{world.firm.id}/owner", data={"owner_id": str(world.rm_a.id)})
    assert resp.status_code == 400
    accounts = db.session.scalars(sa.select(FirmAccount).execution_options(skip_tenant_scope=True)).all()
    assert [(a.bank_id, a.owner_id) for a in accounts] == [(world.bank_a.id, world.rm_a.id)]


@pytest.mark.parametrize("path", ["/firms/999999", "/firms/0", "/firms/999999/edit"])
def test_missing_firm_is_404(world, login_as, path):
    assert login_as("rm_a").get(path).status_code == 404


def test_list_and_page_render_for_every_role(world, login_as, client):
    for name in ("rm_a", "mgr_a", "bureau", "admin"):
        login_as(name)
        assert client.get("/firms/?q=共享&high_tech=1&need=1&never=1").status_code == 200
        assert client.get(f"/firms/{world.firm.id}").status_code == 200
        client.post("/logout")


def test_the_owner_select_lists_the_banks_active_users_by_display_name(world, login_as):
    """The firm page names the bank's owner and links to the page that assigns one. Its choices: a user without a
    name shows the user name, an inactive user and another bank's users are not offered, and the current owner is
    selected."""
    import re

    nameless = factories.user("rm_a_nameless", Role.RM, world.rm_a.org)
    nameless.name = ""
    gone = factories.user("rm_a_gone", Role.RM, world.rm_a.org, name="离职客户经理")
    gone.is_active_flag = False
    factories.account(world.firm, world.bank_a, world.rm_a)
    db.session.commit()
    client = login_as("mgr_a")
    page = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert 'name="owner_id"' not in page  # (the firm page names the owner and links to this page)
    assert f'href="/firms/{world.firm.id}/owner" data-testid="assign-owner"' in page
    assert world.rm_a.display_name in page[page.index('data-testid="owner"'):page.index('data-testid="assign-owner"')]
    html = client.get(f"/firms/{world.firm.id}/owner").get_data(as_text=True)
    select = html[html.index('name="owner_id"'):]
    select = select[:select.index("</select>")]
    options = re.findall(r'<option (selected )?value="([^"]*)">([^<]*)</option>', select)
    users = db.session.scalars(sa.select(User).where(User.bank_id == world.bank_a.id, User.is_active_flag.is_(True))
                               .order_by(User.name, User.id)).all()
    assert [(label, int(value)) for _sel, value, label in options[1:]] == [(u.display_name, u.id) for u in users]
    assert ("rm_a_nameless", str(nameless.id)) in [(label, value) for _s, value, label in options]
    assert str(gone.id) not in [value for _s, value, _l in options] and len(users) >= 4
    assert [value for sel, value, _l in options if sel] == [str(world.rm_a.id)]
    assert not any(world.rm_b.username in label or str(world.rm_b.id) == value for _s, value, label in options)


def test_the_owner_page_of_another_bank_shows_its_own_people_and_no_owner_of_ours(world, login_as):
    """The firm is shared; its owner page for bank B lists bank B's users, with none selected (bank B has no
    account with the firm), never bank A's owner; assigning there gives bank B its own account."""
    factories.account(world.firm, world.bank_a, world.rm_a)
    db.session.commit()
    client = login_as("rm_b")
    html = client.get(f"/firms/{world.firm.id}/owner").get_data(as_text=True)
    select = html[html.index('name="owner_id"'):]
    select = select[:select.index("</select>")]
    assert f'value="{world.rm_b.id}"' in select and f'value="{world.rm_a.id}"' not in select
    assert "selected" not in select.replace('<option selected value="">', "")
    assert client.post(f"/firms/{world.firm.id}/owner", data={"owner_id": str(world.rm_b.id)}).status_code == 302
    owners = {a.bank_id: a.owner_id for a in db.session.scalars(
        sa.select(FirmAccount).where(FirmAccount.firm_id == world.firm.id).execution_options(skip_tenant_scope=True))}
    assert owners == {world.bank_a.id: world.rm_a.id, world.bank_b.id: world.rm_b.id}


def test_the_firm_page_reads_its_people_with_their_records_and_only_the_other_actors_after(world, login_as, client):
    """The bank's account comes with the firm, the visits' RMs and the follow-ups' assignees with their rows
    (joined: no statement of their own), and the history's actors the page holds already (an RM of the visits,
    the viewer) are not read again: one look-up of users by id, for the one actor nobody else brought."""
    from tests.factories_firms import form_visit

    login_as("rm_a")
    for day in ("2026-11-18", "2026-11-20"):
        assert client.post("/visits/new", data=form_visit(world.firm, world.campaign, visited_on=day, next_step="",
                                                          next_step_due_on="")).status_code == 302
    assert client.post(f"/visits/followups/new?firm_id={world.firm.id}", data={
        "firm_id": str(world.firm.id), "title": "送方案", "due_on": "2026-12-01",
        "assignee_id": str(world.rm_a.id)}).status_code == 302
    login_as("rm_a2")
    assert client.post(f"/firms/{world.firm.id}/edit", data=form_firm(
        "王经理改过的科技", world.firm.credit_code, version="1")).status_code == 302
    db.session.add(FirmAccount(firm_id=world.firm.id, bank_id=world.bank_b.id, owner_id=world.rm_b.id,
                               willingness_code="refused"))
    db.session.commit()
    login_as("mgr_a")
    with statements() as seen:
        html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    timeline = html[html.index('data-testid="timeline"'):html.index('data-testid="history"')]
    history = html[html.index('data-testid="history"'):]
    assert timeline.count('data-kind="visit"') == 2 and timeline.count("李经理") == 3  # two visits, one follow-up
    assert "王经理" in history and "李经理" in history
    card = html[html.index('data-testid="account-card"'):]
    card = card[:card.index('data-testid="assign-owner"')]
    assert "意愿强烈" in card and "明确拒绝" not in card  # the bank's own account, from the visits
    assert world.rm_b.display_name not in card and world.rm_a.display_name in card  # (its owner, joined too)
    assert not any(re.match(r"SELECT firm_account\.id", s) for s in seen)  # joined to the firm's statement
    # look-ups by key only: PostgreSQL may keep one plan per statement for any value (crm/core/pgconn.py)
    assert any("'plan_cache_mode', 'auto'" in s for s in seen) == (db.engine.dialect.name == "postgresql")
    by_id = [s for s in seen if re.search(r'FROM "?user"?\s+WHERE "?user"?\.id IN', s)]
    assert len(by_id) == 1, by_id
    assert not any(re.search(r'FROM "?user"?\s+WHERE "?user"?\.id IN', s) for s in seen if "visit" in s)
