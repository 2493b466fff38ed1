"""The events and attendance ledgers: create, update, idempotent re-import, all-or-nothing, isolation, CLI, web."""
from __future__ import annotations

import io
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa

from crm.core.scoping import scope_for, scoped
from crm.events.models import CheckinMethod, Event, EventKind, EventStatus, Registration
from crm.extensions import db
from crm.firms.models import Firm
from crm.imports.framework import ImportContext, get_ledger, run_import
from tests import factories
from tests import factories_events as fe
from tests.factories_firms import csv_bytes, xlsx_bytes

EVENT_HEADERS = ["活动编号", "活动名称", "活动类型", "举办日期", "地点", "状态", "重点产业", "工作人员"]
ATT_HEADERS = ["活动编号", "统一社会信用代码", "单位名称", "姓名", "职务", "联系电话", "签到时间"]


@pytest.fixture
def app_overrides(tmp_path):
    return {"IMPORT_UPLOAD_DIR": str(tmp_path / "uploads")}


def run(kind, data, user, *, campaign=None, commit=True, filename="ledger.csv", **kw):
    with scoped(scope_for(user)):
        return run_import(get_ledger(kind), data, filename, ImportContext(user=user, campaign=campaign),
                          commit=commit, **kw)


def count(model):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).execution_options(skip_tenant_scope=True))


def event_rows():
    return [EVENT_HEADERS,
            ["LG-2026-01", "坂田人工智能专场", "园区专场", date(2026, 6, 18), "天安云谷", "已举办", "人工智能；低空经济",
             "rm_a、rm_a2"],
            ["LG-2026-02", "政策宣讲会", "政策宣讲", "2026/7/2", "", "筹备中", "", ""]]


@pytest.mark.parametrize("fmt", ["utf-8-sig", "gb18030", "xlsx"])
def test_events_ledger_creates_then_changes_nothing_on_reimport(world, fmt):
    data = xlsx_bytes(event_rows()) if fmt == "xlsx" else csv_bytes(event_rows(), fmt)
    name = "活动台账." + ("xlsx" if fmt == "xlsx" else "csv")
    report = run("events", data, world.rm_a, campaign=world.campaign, filename=name)
    assert report.ok and report.committed and report.created == 2, report.text_report()
    e = db.session.scalar(sa.select(Event).where(Event.code == "LG-2026-01"))
    assert (e.title, e.kind, e.held_on, e.status) == ("坂田人工智能专场", EventKind.PARK, date(2026, 6, 18),
                                                      EventStatus.HELD)
    assert {i.code for i in e.industries} == {"ai", "low_altitude"}
    assert {u.username for u in e.staff} == {"rm_a", "rm_a2"}
    assert [o.id for o in e.organisers] == [world.branch_a.id] and e.campaign_id == world.campaign.id
    again = run("events", data, world.rm_a, campaign=world.campaign, filename=name)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert count(Event) == 2


def test_events_ledger_updates_only_the_changed_event(world):
    run("events", csv_bytes(event_rows()), world.rm_a, campaign=world.campaign)
    rows = event_rows()
    rows[2][1] = "政策宣讲会（改期）"
    report = run("events", csv_bytes(rows), world.rm_a, campaign=world.campaign)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert db.session.scalar(sa.select(Event.title).where(Event.code == "LG-2026-02")) == "政策宣讲会（改期）"


def test_events_ledger_with_a_bad_row_changes_nothing_and_names_the_row(world):
    rows = event_rows() + [["LG-2026-03", "坏行", "茶话会", "2026-02-30", "", "已举办", "元宇宙", "rm_b"]]
    report = run("events", csv_bytes(rows), world.rm_a, campaign=world.campaign)
    assert not report.committed and count(Event) == 0
    problems = {(p.row, p.column) for p in report.problems}
    assert {(4, "活动类型"), (4, "举办日期"), (4, "重点产业"), (4, "工作人员")} <= problems


def test_another_banks_event_code_is_refused_without_touching_it(world):
    fe.event([world.bank_b], world.campaign, code="LG-2026-01", title="工行的活动")
    db.session.commit()
    report = run("events", csv_bytes(event_rows()), world.rm_a, campaign=world.campaign)
    assert not report.committed
    assert any(p.row == 2 and p.column == "活动编号" for p in report.problems)
    assert db.session.scalar(sa.select(Event.title).where(Event.code == "LG-2026-01")
                             .execution_options(skip_tenant_scope=True)) == "工行的活动"


def _att_rows(code, world):
    new_code = factories.credit_code(661001)
    return [ATT_HEADERS,
            [code, world.firm.credit_code, world.firm.name, "张三", "财务总监", "13800138000", "2026-06-18 14:05"],
            [code, new_code, "深圳市台账新企业有限公司", "李四", "", "139 0000 1111", ""],
            [code, world.firm.credit_code, world.firm.name, "王五", "CEO", "+8613700002222",
             datetime(2026, 6, 18, 14, 30)]]


@pytest.mark.parametrize("fmt", ["utf-8", "xlsx"])
def test_attendance_ledger_registers_checks_in_and_is_idempotent(world, fmt):
    e = fe.event([world.bank_a], world.campaign, code="LG-2026-01", held_on=date(2026, 6, 18))
    db.session.commit()
    rows = _att_rows("LG-2026-01", world)
    data = xlsx_bytes(rows) if fmt == "xlsx" else csv_bytes(rows, fmt)
    filename = "签到.xlsx" if fmt == "xlsx" else "签到.csv"
    report = run("attendance", data, world.rm_a, filename=filename)
    assert report.ok and report.created == 3, report.text_report()
    regs = {r.person_name: r for r in db.session.scalars(sa.select(Registration).where(Registration.event_id == e.id))}
    assert regs["张三"].checked_in_at == datetime(2026, 6, 18, 6, 5, tzinfo=timezone.utc)
    assert regs["张三"].checkin_method == CheckinMethod.PAPER
    assert regs["李四"].checked_in_at is None and regs["李四"].mobile == "13900001111"
    assert regs["王五"].checked_in_at == datetime(2026, 6, 18, 6, 30, tzinfo=timezone.utc)
    assert db.session.scalar(sa.select(Firm.name).where(Firm.credit_code == factories.credit_code(661001))) == \
        "深圳市台账新企业有限公司"
    again = run("attendance", data, world.rm_a, filename=filename)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert count(Registration) == 3


def test_attendance_ledger_checks_in_a_registered_person_and_never_undoes(world):
    e = fe.event([world.bank_a], world.campaign, code="LG-2026-01")
    fe.registration(e, world.firm, name="张三", mob="13800138000")
    fe.registration(e, world.firm, name="王五", mob="13700002222", checked_in=True)
    db.session.commit()
    rows = [ATT_HEADERS,
            ["LG-2026-01", world.firm.credit_code, world.firm.name, "张三", "", "13800138000", "2026-06-18 14:05"],
            ["LG-2026-01", world.firm.credit_code, world.firm.name, "王五", "", "13700002222", ""]]
    report = run("attendance", csv_bytes(rows), world.rm_a)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1), report.text_report()
    assert count(Registration) == 2
    assert all(r.checked_in_at is not None for r in db.session.scalars(sa.select(Registration)))


def test_attendance_for_another_banks_event_is_refused(world):
    fe.event([world.bank_b], world.campaign, code="ICBC-01")
    db.session.commit()
    report = run("attendance", csv_bytes(_att_rows("ICBC-01", world)), world.rm_a)
    assert not report.committed and count(Registration) == 0
    assert {p.row for p in report.problems} == {2, 3, 4}


def test_attendance_over_capacity_or_duplicated_in_the_file_commits_nothing(world):
    fe.event([world.bank_a], world.campaign, code="LG-2026-01", capacity=2)
    db.session.commit()
    report = run("attendance", csv_bytes(_att_rows("LG-2026-01", world)), world.rm_a)
    assert not report.committed and count(Registration) == 0
    assert any(p.row == 4 for p in report.problems)
    dup = [ATT_HEADERS] + [_att_rows("LG-2026-01", world)[1]] * 2
    report = run("attendance", csv_bytes(dup), world.rm_a)
    assert not report.committed and any(p.row == 3 for p in report.problems)


def test_cli_imports_events_and_attendance(world, runner, tmp_path):
    events = tmp_path / "活动.csv"
    events.write_bytes(csv_bytes(event_rows(), "utf-8-sig"))
    result = runner.invoke(args=["crm", "import", "events", str(events), "--campaign", "ZCR2026", "--as", "rm_a",
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    assert count(Event) == 0
    result = runner.invoke(args=["crm", "import", "events", str(events), "--campaign", "ZCR2026", "--as", "rm_a"])
    assert result.exit_code == 0, result.output
    assert count(Event) == 2
    att = tmp_path / "签到.csv"
    att.write_bytes(csv_bytes(_att_rows("LG-2026-01", world), "gb18030"))
    result = runner.invoke(args=["crm", "import", "attendance", str(att), "--as", "bureau"])
    assert result.exit_code == 1 and count(Registration) == 0  # the bureau does not import ledgers
    result = runner.invoke(args=["crm", "import", "attendance", str(att), "--as", "mgr_a"])
    assert result.exit_code == 0, result.output
    assert count(Registration) == 3
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes([ATT_HEADERS, ["LG-2026-01", "BAD", "", "", "", "123", ""]]))
    result = runner.invoke(args=["crm", "import", "attendance", str(bad), "--as", "rm_a"])
    assert result.exit_code == 1 and "第 2 行" in (result.output + (result.stderr or ""))


def test_attendance_ledger_is_offered_in_the_import_page(world, login_as, client):
    fe.event([world.bank_a], world.campaign, code="LG-2026-01")
    db.session.commit()
    login_as("rm_a")
    resp = client.post("/imports/preview", data={"kind": "attendance", "campaign_id": "",
                                                 "file": (io.BytesIO(csv_bytes(_att_rows("LG-2026-01", world))),
                                                          "签到.csv")},
                       content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
    assert 'data-count="created">3<' in resp.get_data(as_text=True)
    assert count(Registration) == 0  # a preview writes nothing
