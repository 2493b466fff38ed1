"""PIPL (SECURITY.md §12) PI-4 a data subject's copy of their records, and PI-3 the personal-data retention job.

PI-4: ``/privacy/subject`` answers a POSTed mobile (and optional name) with an XLSX of the records the
requester's organisation holds on that person: contacts it recorded, registrations for events it organises,
visits of the bank where that contact was met. Each bank is a separate handler, so nothing of another bank (or
the bureau) is ever in a bank's file. PI-3: ``crm pi-retention`` erases the personal fields of contacts deleted
long ago and the mobiles and titles of registrations for old events, keeping the rows and the campaign counts.
"""
from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from urllib.parse import unquote

import openpyxl
import pytest
import sqlalchemy as sa

from crm.core.db import utcnow
from crm.core.formatting import today_local
from crm.core.models import AuditEntry
from crm.dashboard.metrics import MetricFilter, SqlBackend, attendance_by_event, compute_metrics
from crm.events.models import EventStatus, Registration
from crm.extensions import db
from crm.firms.models import Contact
from crm.privacy import services
from crm.privacy.services import ERASED_NAME
from tests import factories
from tests import factories_events as fe

MOBILE_RE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
#: the data subject
PERSON = "13912340001"
PERSON_MASKED = "139****0001"
#: someone else, recorded by bank A too
OTHER = "13700009999"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEETS = ["联系人", "活动报名", "走访记录"]


def audit_entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id).execution_options(skip_tenant_scope=True)).all()


def workbook(resp) -> dict[str, list[dict]]:
    """Sheet title → rows as dicts keyed by the header row."""
    assert resp.status_code == 200 and resp.mimetype == XLSX, resp.get_data(as_text=True)[:300]
    wb = openpyxl.load_workbook(io.BytesIO(resp.data))
    out = {}
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        out[ws.title] = [dict(zip(rows[0], r)) for r in rows[1:]]
    return out


def ask(client, mobile=PERSON, name=""):
    return client.post("/privacy/subject", data={"mobile": mobile, "name": name})


# -- PI-4: the copy -------------------------------------------------------------------------------------------


@pytest.fixture
def person(world):
    """The same person (PERSON) in the records of bank A, bank B and the bureau, plus decoys.

    Each record carries a marker in a field the export shows: contact titles, event titles, visit summaries.
    """
    w = world
    firm_a = factories.firm("甲行客户科技有限公司")
    firm_b = factories.firm("乙行客户科技有限公司")
    c_a = factories.contact(firm_a, w.bank_a, name="王小明", mobile=PERSON, title="甲行-联系人", email="wxm@a.cn")
    factories.contact(firm_a, w.bank_a, name="王小明", mobile=PERSON, title="甲行-已删除", is_deleted=True)
    factories.contact(w.firm, w.bank_a, name="王晓明", mobile=PERSON, title="甲行-同号另名")
    c_a_other = factories.contact(firm_a, w.bank_a, name="张三", mobile=OTHER, title="甲行-别人")
    c_b = factories.contact(firm_b, w.bank_b, name="王小明", mobile=PERSON, title="乙行-联系人")
    factories.contact(w.firm, w.bureau, name="王小明", mobile=PERSON, title="区局-联系人")

    ev_a = fe.event([w.branch_a], w.campaign, title="甲行支行对接会")  # a branch's event is the bank's
    ev_b = fe.event([w.bank_b], w.campaign, title="乙行对接会")
    ev_bureau = fe.event([w.bureau], w.campaign, title="区局政策宣讲")
    fe.registration(ev_a, firm_a, name="王小明", mob=PERSON, person_title="甲行-报名", checked_in=True)
    fe.registration(ev_a, firm_a, name="张三", mob=OTHER, person_title="甲行-别人报名")
    fe.registration(ev_b, firm_b, name="王小明", mob=PERSON, person_title="乙行-报名")
    fe.registration(ev_bureau, w.firm, name="王小明", mob=PERSON, person_title="区局-报名")

    factories.visit(firm_a, w.rm_a, w.campaign, contact_id=c_a.id, summary="甲行-走访纪要")
    factories.visit(firm_a, w.rm_a, w.campaign, contact_id=c_a.id, summary="甲行-已删走访", is_deleted=True)
    factories.visit(firm_a, w.rm_a, w.campaign, contact_id=c_a_other.id, summary="甲行-别人走访")
    factories.visit(firm_b, w.rm_b, w.campaign, contact_id=c_b.id, summary="乙行-走访纪要")
    db.session.commit()
    return w


#: role → (contact titles, event titles, visit summaries) of the person's copy
EXPECTED = {
    "mgr_a": ({"甲行-联系人", "甲行-同号另名"}, {"甲行支行对接会"}, {"甲行-走访纪要"}),
    "mgr_b": ({"乙行-联系人"}, {"乙行对接会"}, {"乙行-走访纪要"}),
    "bureau": ({"区局-联系人"}, {"区局政策宣讲"}, set()),
    "admin": ({"甲行-联系人", "甲行-同号另名", "乙行-联系人", "区局-联系人"}, {"甲行支行对接会", "乙行对接会", "区局政策宣讲"},
              {"甲行-走访纪要", "乙行-走访纪要"}),
}
#: markers of records that belong to no one's copy of PERSON (deleted, or another person)
NEVER = ("甲行-已删除", "甲行-别人", "甲行-已删走访", OTHER)


@pytest.mark.parametrize("role", list(EXPECTED))
def test_the_copy_holds_exactly_the_persons_records_held_by_the_requesters_organisation(person, login_as, role):
    client = login_as(role)
    resp = ask(client, mobile="+86 139-1234-0001")  # normalised like every mobile field
    book = workbook(resp)
    assert list(book) == SHEETS
    contacts, events, visits = EXPECTED[role]
    assert {r["职务"] for r in book["联系人"]} == contacts
    assert {r["活动名称"] for r in book["活动报名"]} == events
    assert {r["走访纪要"] for r in book["走访记录"]} == visits
    # full values: it is the person's own data
    assert {r["手机号码"] for r in book["联系人"] + book["活动报名"]} == {PERSON}
    cells = " ".join(str(v) for rows in book.values() for r in rows for v in r.values() if v is not None)
    for marker in NEVER:
        assert marker not in cells
    others = {"mgr_a": ("乙行", "区局"), "mgr_b": ("甲行", "区局"), "bureau": ("甲行", "乙行"), "admin": ()}[role]
    for marker in others:
        assert marker not in cells, f"{role}'s copy holds another handler's record ({marker})"
    # no personal data in the download's name
    disposition = unquote(resp.headers["Content-Disposition"])
    assert disposition.startswith("attachment;") and not MOBILE_RE.search(disposition) and "王" not in disposition


def test_the_copy_has_every_column_with_full_values(person, login_as):
    book = workbook(ask(login_as("mgr_a"), name="王小明"))
    [contact] = book["联系人"]
    assert contact["企业名称"] == "甲行客户科技有限公司" and contact["姓名"] == "王小明"
    assert (contact["手机号码"], contact["电子邮箱"], contact["登记机构"]) == (PERSON, "wxm@a.cn", "深圳农商银行")
    assert contact["登记时间"] is not None
    [reg] = book["活动报名"]
    assert (reg["活动名称"], reg["企业名称"], reg["姓名"], reg["职务"], reg["报名状态"]) == (
        "甲行支行对接会", "甲行客户科技有限公司", "王小明", "甲行-报名", "已报名")
    assert reg["活动日期"].date().isoformat() == "2026-06-18" and reg["签到时间"] is not None
    [visit] = book["走访记录"]
    assert (visit["走访日期"].date().isoformat(), visit["企业名称"], visit["客户经理"], visit["走访纪要"]) == (
        "2026-03-02", "甲行客户科技有限公司", "李经理", "甲行-走访纪要")
    assert visit["走访方式"]  # the mode's Chinese name


def test_a_name_narrows_the_copy_to_records_under_exactly_that_name(person, login_as):
    client = login_as("mgr_a")
    assert {r["职务"] for r in workbook(ask(client, name="王小明"))["联系人"]} == {"甲行-联系人"}
    assert {r["职务"] for r in workbook(ask(client, name=" 王晓明 "))["联系人"]} == {"甲行-同号另名"}
    assert workbook(ask(client, name="王晓明"))["走访记录"] == []  # the visit met 王小明


@pytest.mark.parametrize("role", ["rm_a", "rm_b"])
def test_relationship_managers_get_403_and_nothing_is_looked_up(person, login_as, role):
    client = login_as(role)
    assert client.get("/privacy/subject").status_code == 403
    assert ask(client).status_code == 403
    assert audit_entries("pi.subject_export") == []


def test_anonymous_requests_are_sent_to_sign_in(person, client):
    for resp in (client.get("/privacy/subject"), ask(client)):
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    assert audit_entries("pi.subject_export") == []


@pytest.mark.parametrize("mobile,message", [
    ("12345", "手机号码格式不正确"),
    ("23912340001", "手机号码格式不正确"),
    ("1391234000a", "手机号码格式不正确"),
    ("139123400011", "手机号码格式不正确"),
    ("", "请填写本人的手机号码"),
])
def test_a_bad_mobile_is_refused_with_a_chinese_message_and_not_audited(person, login_as, mobile, message):
    resp = ask(login_as("mgr_a"), mobile=mobile)
    assert resp.status_code == 422 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert message in html and "is-invalid" in html
    assert audit_entries("pi.subject_export") == []


@pytest.mark.parametrize("mobile,name", [
    ("13600000000", ""),  # a number bank B alone holds: for bank A there is nothing
    (PERSON, "无此人"),  # bank A holds the number, but under other names
])
def test_no_match_shows_the_page_again_with_a_message_and_no_file(person, login_as, mobile, name):
    factories.contact(person.firm, person.bank_b, name="乙行独有", mobile="13600000000")
    db.session.commit()
    resp = ask(login_as("mgr_a"), mobile=mobile, name=name)
    assert resp.status_code == 200 and resp.mimetype == "text/html" and "Content-Disposition" not in resp.headers
    assert "本机构没有该手机号码（及姓名）的任何记录" in resp.get_data(as_text=True)
    [entry] = audit_entries("pi.subject_export")  # the request was answered: "nothing held" is recorded too
    assert entry.detail.endswith("contacts=0 registrations=0 visits=0") and mobile not in entry.detail
    assert workbook(ask(login_as("mgr_b"), mobile="13600000000"))["联系人"][0]["姓名"] == "乙行独有"


def test_a_get_with_a_mobile_in_the_query_string_does_nothing(person, login_as):
    resp = login_as("mgr_a").get("/privacy/subject", query_string={"mobile": PERSON, "name": "王小明"})
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    form = re.search(r'<form method="post"[^>]*data-testid="subject-form".*?</form>', html, re.S)
    assert form and PERSON not in form.group(0) and "王小明" not in form.group(0)  # the query string is ignored
    assert "subject-not-found" not in html and "<table" not in html
    assert audit_entries("pi.subject_export") == []


def test_every_export_is_audited_with_the_masked_mobile_and_the_counts_never_the_number(person, login_as):
    workbook(ask(login_as("mgr_a")))
    workbook(ask(login_as("admin"), name="王小明"))
    first, second = audit_entries("pi.subject_export")
    assert (first.user_id, first.bank_id, first.object_type) == (person.mgr_a.id, person.bank_a.id, "person")
    assert first.detail == f"mobile={PERSON_MASKED} name_given=no contacts=2 registrations=1 visits=1"
    assert json.loads(first.after) == {"mobile": PERSON_MASKED, "contacts": 2, "registrations": 1, "visits": 1}
    assert second.user_id == person.admin.id and "name_given=yes contacts=3 registrations=3 visits=2" in second.detail
    for entry in (first, second):
        stored = " ".join(str(v or "") for v in (entry.detail, entry.before, entry.after, entry.object_type))
        assert not MOBILE_RE.search(stored) and "王小明" not in stored


@pytest.mark.parametrize("app_overrides", [{"RATELIMIT_ENABLED": True, "PRIVACY_EXPORT_RATE_LIMIT": "2/hour"}])
def test_exports_are_rate_limited_per_user_and_the_page_itself_is_not(person, login_as):
    client = login_as("mgr_a")
    assert [ask(client).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/privacy/subject").status_code == 200
    assert ask(login_as("bureau")).status_code == 200  # another user has their own allowance


@pytest.mark.parametrize("role,shown", [("mgr_a", True), ("bureau", True), ("admin", True), ("rm_a", False)])
def test_the_page_is_in_the_profile_menu_of_the_roles_that_may_use_it(person, login_as, role, shown):
    html = login_as(role).get("/").get_data(as_text=True)
    assert ('href="/privacy/subject"' in html) is shown


# -- PI-3: the retention job ----------------------------------------------------------------------------------


def days_ago(n: int):
    return today_local() - timedelta(days=n)


@pytest.fixture
def aged(world):
    """Events and deleted contacts on both sides of the default retention (1,095 days), in a long campaign."""
    w = world
    camp = factories.campaign("LONG", orgs=[w.bank_a, w.bureau], start=days_ago(2000), end=days_ago(0))
    f1, f2 = factories.firm(), factories.firm()
    old = fe.event([w.bank_a], camp, title="三年前的对接会", held_on=days_ago(1200), status=EventStatus.HELD)
    edge_out = fe.event([w.bureau], camp, title="刚过保留期", held_on=days_ago(1096), status=EventStatus.HELD)
    edge_in = fe.event([w.bank_a], camp, title="保留期最后一天", held_on=days_ago(1095), status=EventStatus.HELD)
    recent = fe.event([w.bank_a], camp, title="上个月的对接会", held_on=days_ago(30), status=EventStatus.HELD)
    regs = {
        "old_1": fe.registration(old, f1, name="甲", mob="13911110001", person_title="总经理", checked_in=True),
        "old_2": fe.registration(old, f1, name="乙", mob="13911110002", person_title="财务"),
        "old_3": fe.registration(old, f2, name="丙", mob="13911110003", person_title="董事长", checked_in=True),
        "edge_out": fe.registration(edge_out, f2, name="丁", mob="13911110001", person_title="出纳", checked_in=True),
        "edge_in": fe.registration(edge_in, f1, name="戊", mob="13911110005", person_title="会计", checked_in=True),
        "recent": fe.registration(recent, f2, name="己", mob="13911110006", person_title="主管", checked_in=True),
    }
    now = utcnow()
    contacts = {
        "deleted_old": factories.contact(f1, w.bank_a, name="老联系人", mobile="13922220001", title="经理",
                                         email="old@a.cn"),
        "deleted_recent": factories.contact(f1, w.bank_a, name="新删联系人", mobile="13922220002", title="经理"),
        "live_old": factories.contact(f2, w.bureau, name="老但在用", mobile="13922220003", title="主任"),
    }
    contacts["deleted_old"].is_deleted, contacts["deleted_old"].modified_at = True, now - timedelta(days=1100)
    contacts["deleted_recent"].is_deleted, contacts["deleted_recent"].modified_at = True, now - timedelta(days=30)
    contacts["live_old"].modified_at = now - timedelta(days=2000)
    db.session.commit()
    return camp, {k: r.id for k, r in regs.items()}, {k: c.id for k, c in contacts.items()}


def rows_now() -> dict:
    """Every contact and registration, all columns (the scope outside a request is the system's: all banks)."""
    db.session.expire_all()
    out = {}
    for model in (Contact, Registration):
        for obj in db.session.scalars(sa.select(model).order_by(model.id)):
            out[(model.__name__, obj.id)] = {c.key: getattr(obj, c.key) for c in sa.inspect(model).column_attrs}
    return out


def attendance(camp):
    result = compute_metrics(MetricFilter(campaign_id=camp.id), backend=SqlBackend())
    per_event = attendance_by_event(sorted({r.event_id for r in db.session.scalars(sa.select(Registration))}))
    return result["firm_attendances"], per_event


def run(runner, *args):
    return runner.invoke(args=["crm", "pi-retention", *args])


def test_retention_erases_exactly_the_expired_personal_fields_and_keeps_rows_and_counts(aged, runner):
    camp, regs, contacts = aged
    before = rows_now()
    counts_before = attendance(camp)
    assert counts_before[0] == 5  # (event, firm) pairs checked in: two at the old event, one at each other
    result = run(runner)  # the default retention: 1,095 days
    assert result.exit_code == 0, result.output
    assert "erased 1 deleted contacts" in result.output and "and 4 registrations" in result.output
    after = rows_now()
    assert set(after) == set(before)  # no row removed or added
    assert attendance(camp) == counts_before  # the campaign's attendance numbers are unchanged

    for key in ("old_1", "old_2", "old_3", "edge_out"):
        b, a = before[("Registration", regs[key])], after[("Registration", regs[key])]
        assert a["mobile"] == f"X{regs[key]}" and not MOBILE_RE.search(a["mobile"]) and a["person_title"] == ""
        assert a["version"] == b["version"] + 1  # an edit form loaded before the erasure is stale
        kept = {k for k in b if k not in ("mobile", "person_title", "version", "modified_at")}
        assert {k: a[k] for k in kept} == {k: b[k] for k in kept}  # name, firm, check-in, consent … as they were
    for key in ("edge_in", "recent"):
        assert after[("Registration", regs[key])] == before[("Registration", regs[key])]

    erased = after[("Contact", contacts["deleted_old"])]
    assert (erased["name"], erased["mobile"], erased["title"], erased["email"]) == (ERASED_NAME, "", "", "")
    assert erased["is_deleted"] and erased["firm_id"] == before[("Contact", contacts["deleted_old"])]["firm_id"]
    for key in ("deleted_recent", "live_old"):
        assert after[("Contact", contacts[key])] == before[("Contact", contacts[key])]

    [entry] = audit_entries("pi.retention")
    assert json.loads(entry.after) == {"contacts": 1, "registrations": 4, "days": 1095}
    assert entry.ip == "cli" and not MOBILE_RE.search(entry.detail + entry.after)


@pytest.mark.parametrize("days", ["182", "0", "-30"])
def test_retention_refuses_less_than_183_days_and_changes_nothing(aged, runner, days):
    before = rows_now()
    result = run(runner, "--days", days)
    assert result.exit_code == 1
    assert "183" in result.output and "至少保留" in result.output
    assert rows_now() == before and audit_entries("pi.retention") == []
    with pytest.raises(ValueError):
        services.erase_expired(int(days))


def test_dry_run_counts_and_changes_nothing(aged, runner):
    before = rows_now()
    result = run(runner, "--days", "1095", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would erase 1 deleted contacts" in result.output and "and 4 registrations" in result.output
    assert rows_now() == before and audit_entries("pi.retention") == []


def test_a_second_run_changes_nothing_and_a_shorter_retention_reaches_further(aged, runner):
    camp, regs, contacts = aged
    assert run(runner).exit_code == 0
    once = rows_now()
    again = run(runner)
    assert again.exit_code == 0 and "erased 0 deleted contacts" in again.output and "and 0 registrations" in again.output
    assert rows_now() == once
    assert [json.loads(e.after)["registrations"] for e in audit_entries("pi.retention")] == [4, 0]
    # 183 days: the event held 1,095 days ago and the contact deleted 30 days ago stay; nothing else is left
    result = run(runner, "--days", "183")
    assert "erased 0 deleted contacts" in result.output and "and 1 registrations" in result.output
    assert rows_now()[("Registration", regs["edge_in"])]["mobile"] == f"X{regs['edge_in']}"
    assert rows_now()[("Registration", regs["recent"])]["mobile"] == "13911110006"
