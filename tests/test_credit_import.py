"""The credits ledger (授信台账) through the import framework: stages from the result column, decisions,
pledged patents, all-or-nothing rejections with row numbers, idempotent re-imports, updates, and the CLI."""
from __future__ import annotations

import csv
import io
from datetime import date

import openpyxl
import pytest
import sqlalchemy as sa

from crm.core.scoping import scope_for, scoped
from crm.credit import services
from crm.credit.models import CreditApplication, Pledge, PledgeStatus, Stage
from crm.extensions import db
from crm.imports.framework import ImportContext, get_ledger, run_import
from tests import factories
from tests import factories_credit as fc

WAN = 1_000_000
HEADERS = ["统一社会信用代码", "业务品种", "申请金额(万元)", "受理日期", "审批日期", "审批结果", "授信金额(万元)",
           "执行利率(%)", "优惠BP", "期限(月)", "首贷户", "质押专利号", "经办客户经理"]


def csv_bytes(rows, encoding="utf-8-sig") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode(encoding)


def xlsx_bytes(rows) -> bytes:
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(list(row))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def run(data, user, campaign, *, filename="授信台账.csv", commit=True):
    with scoped(scope_for(user)):
        return run_import(get_ledger("credits"), data, filename, ImportContext(user=user, campaign=campaign),
                          commit=commit)


def count(model):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).execution_options(skip_tenant_scope=True))


@pytest.fixture
def firms(world):
    f = [world.firm, factories.firm(), factories.firm(), factories.firm()]
    db.session.commit()
    return f


def ledger(firms, p1="ZL202010123456.2", p2="ZL202020123456.8"):
    return [HEADERS,
            [firms[0].credit_code, "知识产权质押", "800", "2026-03-02", "2026-03-04", "通过", "800", "3.45", "15", "12",
             "是", f"{p1}; {p2}", "rm_a"],
            [firms[1].credit_code, "流动资金", "3000", "2026/3/2", "2026-03-10", "否决", "", "", "", "", "否", "",
             "rm_a2"],
            [firms[2].credit_code, "研发贷", "100", "2026-03-05", "", "撤回", "", "", "", "", "", "", "rm_a"],
            [firms[3].credit_code, "ip_pledge", "1000.5", "2026-04-01", "", "审批中", "", "", "", "", "", "", "mgr_a"]]


def test_ledger_rows_become_applications_at_their_stage(app, world, firms):
    report = run(csv_bytes(ledger(firms)), world.rm_a, world.campaign)
    assert report.ok and report.committed, report.text_report()
    assert (report.created, report.updated, report.unchanged) == (4, 0, 0)
    apps = {a.firm_id: a for a in db.session.scalars(sa.select(CreditApplication))}
    a = apps[firms[0].id]
    assert (a.stage, a.decided_on, a.approved_fen, a.rate_bp, a.discount_bp, a.term_months, a.is_first_loan) == (
        Stage.APPROVED, date(2026, 3, 4), 800 * WAN, 345, 15, 12, True)
    assert [h.to_stage for h in a.history] == [Stage.ACCEPTED, Stage.UNDER_REVIEW, Stage.APPROVED]
    assert sorted(p.ip_asset.patent_no for p in a.pledges) == ["202010123456.2", "202020123456.8"]
    assert all(p.status == PledgeStatus.ACTIVE and p.ip_asset.granted_on is None for p in a.pledges)
    b = apps[firms[1].id]
    assert (b.stage, b.decided_on, b.decline_reason_code, b.rm_id, b.requested_fen) == (
        Stage.DECLINED, date(2026, 3, 10), "other", world.rm_a2.id, 3000 * WAN)
    assert apps[firms[2].id].stage == Stage.WITHDRAWN
    d = apps[firms[3].id]
    assert (d.stage, d.requested_fen, d.rm_id, d.bank_id, d.campaign_id) == (
        Stage.UNDER_REVIEW, 1_000_500_000, world.mgr_a.id, world.bank_a.id, world.campaign.id)


@pytest.mark.parametrize("fmt", ["csv", "gb18030", "xlsx"])
def test_reimporting_the_same_file_changes_nothing(app, world, firms, fmt):
    rows = ledger(firms)
    data = xlsx_bytes(rows) if fmt == "xlsx" else csv_bytes(rows, "gb18030" if fmt == "gb18030" else "utf-8-sig")
    name = "授信台账." + ("xlsx" if fmt == "xlsx" else "csv")
    assert run(data, world.rm_a, world.campaign, filename=name).created == 4
    before = (count(CreditApplication), count(Pledge))
    again = run(data, world.rm_a, world.campaign, filename=name)
    assert again.ok and (again.created, again.updated, again.unchanged) == (0, 0, 4)
    assert (count(CreditApplication), count(Pledge)) == before


def test_a_later_ledger_moves_an_application_on(app, world, firms):
    rows = ledger(firms)
    pending = [HEADERS, rows[2][:4] + ["", "审批中"] + rows[2][6:]]
    assert run(csv_bytes(pending), world.rm_a, world.campaign).created == 1
    report = run(csv_bytes([HEADERS, rows[2]]), world.rm_a, world.campaign)
    assert (report.created, report.updated) == (0, 1)
    a = db.session.scalars(sa.select(CreditApplication)).one()
    assert (a.stage, a.decided_on) == (Stage.DECLINED, date(2026, 3, 10))


def test_a_ledger_contradicting_a_recorded_decision_is_refused(app, world, firms):
    rows = ledger(firms)
    run(csv_bytes([HEADERS, rows[2]]), world.rm_a, world.campaign)
    approved = rows[2][:5] + ["通过", "2000", "3.2", "10", "12", "否", "", "rm_a2"]
    report = run(csv_bytes([HEADERS, approved]), world.rm_a, world.campaign)
    assert not report.committed
    assert [(p.row, p.column) for p in report.problems] == [(2, "审批结果")]
    assert db.session.scalars(sa.select(CreditApplication)).one().stage == Stage.DECLINED


@pytest.mark.parametrize("column, value, reason", [
    ("优惠BP", "21", "应在 0 到 20 之间"),
    ("优惠BP", "-1", "应在 0 到 20 之间"),
    ("经办客户经理", "rm_b", "未知的用户名"),
    ("统一社会信用代码", "914403001922038216", "系统中没有该企业"),
    ("质押专利号", "ZL202010123456.7", "校验位不正确"),
    ("审批结果", "待定", "未知的审批结果"),
    ("审批日期", "2026-03-01", "审批日期不能早于受理日期"),
    ("业务品种", "消费贷", "未知的业务品种"),
])
def test_a_bad_row_is_reported_with_its_number_and_nothing_is_written(app, world, firms, column, value, reason):
    rows = ledger(firms)
    rows[1][HEADERS.index(column)] = value
    report = run(csv_bytes(rows), world.rm_a, world.campaign)
    assert not report.committed and report.created == 3
    assert [(p.row, p.column) for p in report.problems] == [(2, column)]
    assert reason in report.problems[0].reason
    assert count(CreditApplication) == 0


def test_a_service_refusal_rolls_back_its_row_only_in_the_report(app, world, firms):
    other = fc.application(world, world.rm_b, firm=factories.firm())
    fc.pledge(other, world.rm_b, patent_no="ZL202010123456.2")
    db.session.commit()
    report = run(csv_bytes(ledger(firms)), world.rm_a, world.campaign)
    assert not report.committed
    assert [(p.row, p.column) for p in report.problems] == [(2, "质押专利号")]
    assert "已存在有效质押" in report.problems[0].reason
    assert count(CreditApplication) == 1 and count(Pledge) == 1


def test_imported_patents_get_their_dates_at_the_pledge_registration(app, world, firms, login_as):
    run(csv_bytes(ledger(firms)), world.rm_a, world.campaign)
    a = db.session.scalars(sa.select(CreditApplication).where(CreditApplication.firm_id == firms[0].id)).one()
    fc.advance(a, world.rm_a, Stage.CONTRACTED, on=date(2026, 3, 5))
    db.session.commit()
    pledge = a.pledges[0]
    client = login_as(world.rm_a)
    assert 'name="expires_on"' in client.get(f"/credit/pledges/{pledge.id}/register").get_data(as_text=True)
    form = {"registration_no": "Y2026440000001", "registered_on": "2026-03-06", "secured_wan": "400",
            "version": pledge.version}
    html = client.post(f"/credit/pledges/{pledge.id}/register", data=form).get_data(as_text=True)
    assert "请填写专利的授权日和到期日" in html
    html = client.post(f"/credit/pledges/{pledge.id}/register",
                       data={**form, "granted_on": "2021-05-07", "expires_on": "2027-01-01"}).get_data(as_text=True)
    assert "早于贷款到期日 2027-03-04" in html
    resp = client.post(f"/credit/pledges/{pledge.id}/register",
                       data={**form, "granted_on": "2021-05-07", "expires_on": "2040-06-01"})
    assert resp.status_code == 302
    pledge = db.session.get(Pledge, pledge.id)
    assert (pledge.ip_asset.granted_on, pledge.ip_asset.expires_on, pledge.registration_no) == (
        date(2021, 5, 7), date(2040, 6, 1), "Y2026440000001")


def test_a_cn_number_without_dates_is_not_taken_as_granted(app, world):
    a = fc.application(world)
    with pytest.raises(services.CreditError) as exc, scoped(scope_for(world.rm_a)):
        services.add_pledge(a, world.rm_a, services.PledgeData(patent_no="CN202010123456.2", dates_later=True),
                            today=date(2026, 11, 26))
    assert exc.value.code == "not_granted"


def test_the_bureau_cannot_import_credits(app, world):
    assert get_ledger("credits").roles == frozenset({"rm", "bank_manager"})
    from crm.imports.framework import ledgers_for

    assert "credits" not in {lg.kind for lg in ledgers_for(world.bureau_user)}
    assert "credits" in {lg.kind for lg in ledgers_for(world.rm_a)}


def test_cli_imports_credits_with_dry_run_first(app, world, firms, runner, tmp_path):
    path = tmp_path / "授信台账.csv"
    path.write_bytes(csv_bytes(ledger(firms)))
    result = runner.invoke(args=["crm", "import", "credits", str(path), "--campaign", "ZCR2026", "--as", "rm_a",
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    assert count(CreditApplication) == 0
    result = runner.invoke(args=["crm", "import", "credits", str(path), "--campaign", "ZCR2026", "--as", "rm_a"])
    assert result.exit_code == 0, result.output
    assert count(CreditApplication) == 4
    bad = tmp_path / "bad.csv"
    rows = ledger(firms)
    rows[1][HEADERS.index("优惠BP")] = "25"
    bad.write_bytes(csv_bytes(rows))
    result = runner.invoke(args=["crm", "import", "credits", str(bad), "--campaign", "ZCR2026", "--as", "rm_a"])
    assert result.exit_code == 1
    assert "第 2 行" in result.output
