"""Ledger imports: encodings and XLSX, Chinese and English headers, precise rejections that leave the database
unchanged, all-or-nothing commits, valid-rows-only, idempotent re-imports, the web flow and the CLI."""
from __future__ import annotations

import io
import re
import zipfile
from datetime import date

import pytest
import sqlalchemy as sa

from crm.core.models import AuditEntry
from crm.core.scoping import scope_for, scoped
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount
from crm.imports.framework import ImportContext, get_ledger, run_import
from crm.visits.models import FollowUp, Visit
from tests import factories
from tests.factories_firms import count, csv_bytes, xlsx_bytes

FIRM_HEADERS = ["企业名称", "统一社会信用代码", "所属区", "所属街道", "重点产业", "国民经济行业门类", "高新技术企业",
                "高企证书编号", "专精特新", "发明专利数", "实用新型数", "外观设计数", "软件著作权数", "联系人", "联系电话"]
VISIT_HEADERS = ["统一社会信用代码", "走访日期", "走访方式", "走访人", "陪同人员", "意愿等级", "融资需求金额(万元)",
                 "融资用途", "走访纪要", "下次跟进日期"]


@pytest.fixture
def app_overrides(tmp_path):
    return {"IMPORT_UPLOAD_DIR": str(tmp_path / "uploads")}


def firm_rows(codes=None):
    codes = codes or [factories.credit_code(7001), factories.credit_code(7002)]
    return [FIRM_HEADERS,
            ["深圳市甲乙人工智能有限公司", codes[0], "龙岗区", "坂田街道", "人工智能", "I", "是", "GR202344000123",
             "专精特新中小企业", 5, 3, 0, 2, "张三", "13800138000"],
            ["深圳市丙丁生物医药有限公司", codes[1], "龙岗", "", "生物医药", "C", "否", "", "", 0, 0, 1, 0, "", ""]]


def visit_rows(world, visited=date(2026, 3, 5), code=None):
    return [VISIT_HEADERS,
            [code or world.firm.credit_code, visited, "实地走访", "rm_a", "bureau、rm_a2", "意愿强烈", 500, "流动资金",
             "企业有扩产计划", date(2026, 12, 20)]]


def snapshot_counts():
    return {m.__name__: count(m) for m in (Firm, FirmAccount, Contact, Visit, FollowUp, AuditEntry)}


def run(kind, data, user, *, filename="ledger.csv", commit=True, valid_only=False, campaign=None, **kw):
    with scoped(scope_for(user)):
        return run_import(get_ledger(kind), data, filename, ImportContext(user=user, campaign=campaign),
                          commit=commit, valid_only=valid_only, **kw)


# --- encodings, formats, idempotence ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["utf-8", "utf-8-sig", "gb18030", "xlsx"])
def test_firms_ledger_imports_in_every_encoding_and_again_changes_nothing(world, fmt):
    rows = firm_rows()
    data = xlsx_bytes(rows) if fmt == "xlsx" else csv_bytes(rows, fmt)
    name = "企业.xlsx" if fmt == "xlsx" else "企业.csv"
    report = run("firms", data, world.rm_a, filename=name)
    assert report.ok and report.committed, report.text_report()
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    ai = db.session.scalar(sa.select(Firm).where(Firm.name == "深圳市甲乙人工智能有限公司"))
    assert (ai.area_code, ai.street.name, ai.industry_code, ai.section_code, ai.high_tech_cert_no,
            ai.sme_tier.value, ai.invention_patents) == ("longgang", "坂田街道", "ai", "I", "GR202344000123",
                                                         "specialised", 5)
    contact = db.session.scalar(sa.select(Contact).execution_options(skip_tenant_scope=True))
    assert (contact.name, contact.mobile, contact.bank_id) == ("张三", "13800138000", world.bank_a.id)
    before = snapshot_counts()
    again = run("firms", data, world.rm_a, filename=name)
    assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 0, 2, 0)
    after = snapshot_counts()
    after.pop("AuditEntry"), before.pop("AuditEntry")  # the import itself is audited
    assert after == before


def test_english_headers_are_accepted(world):
    data = csv_bytes([["Firm name", "Credit code", "District", "Priority industry"],
                      ["Shenzhen English Co", factories.credit_code(7101), "龙岗区", "ai"]])
    report = run("firms", data, world.rm_a)
    assert report.ok and report.created == 1


def test_reimport_with_a_changed_cell_updates_only_that_firm(world):
    rows = firm_rows()
    run("firms", csv_bytes(rows), world.rm_a)
    rows[1][9] = 8
    report = run("firms", csv_bytes(rows), world.rm_a)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert db.session.scalar(sa.select(Firm.invention_patents).where(Firm.name == "深圳市甲乙人工智能有限公司")) == 8


def test_visits_ledger_with_excel_dates_books_follow_ups_and_is_idempotent(world):
    data = xlsx_bytes(visit_rows(world))
    report = run("visits", data, world.rm_a, filename="走访.xlsx", campaign=world.campaign)
    assert report.ok and report.created == 1, report.text_report()
    v = db.session.scalar(sa.select(Visit))
    assert (v.visited_on, v.mode_code, v.rm_id, v.need_amount_fen, v.willingness_code, v.bank_id) == (
        date(2026, 3, 5), "on_site", world.rm_a.id, 500 * 1_000_000, "strong", world.bank_a.id)
    assert sorted(c.username for c in v.companions) == ["bureau", "rm_a2"]
    fu = db.session.scalar(sa.select(FollowUp))
    assert (fu.due_on, fu.assignee_id) == (date(2026, 12, 20), world.rm_a.id)
    assert db.session.scalar(sa.select(FirmAccount.last_visit_on)) == date(2026, 3, 5)
    before = snapshot_counts()
    again = run("visits", data, world.rm_a, filename="走访.xlsx", campaign=world.campaign)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    assert {k: v for k, v in snapshot_counts().items() if k != "AuditEntry"} == \
        {k: v for k, v in before.items() if k != "AuditEntry"}


def test_visits_ledger_accepts_text_dates_in_csv(world):
    rows = visit_rows(world)
    rows[1][1], rows[1][9] = "2026/3/5", "2026-12-20"
    report = run("visits", csv_bytes(rows, "gb18030"), world.rm_a, campaign=world.campaign)
    assert report.ok and report.created == 1


# --- bad files: precise report, database unchanged ---------------------------------------------------------


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(200):
                member.write(chunk)
    return buffer.getvalue()


def _bad_file(case, world):
    rows = firm_rows()
    if case == "wrong_headers":
        return "firms", csv_bytes([["名称X", "代码Y"], ["a", "b"]]), None, (0, "", "缺少必填列：企业名称、统一社会信用代码")
    if case == "bad_credit_code":
        rows[2][1] = "91440300MA5000000X"
        return "firms", csv_bytes(rows), None, (3, "统一社会信用代码", "校验位")
    if case == "bad_date":
        vr = visit_rows(world)
        vr[1][1] = "2026-02-30"
        return "visits", csv_bytes(vr), world.campaign, (2, "走访日期", "日期不存在")
    if case == "unknown_username":
        vr = visit_rows(world)
        vr[1][3] = "nobody"
        return "visits", csv_bytes(vr), world.campaign, (2, "走访人", "未知的用户名：nobody")
    if case == "other_bank_username":
        vr = visit_rows(world)
        vr[1][3] = "rm_b"
        return "visits", csv_bytes(vr), world.campaign, (2, "走访人", "未知的用户名：rm_b")
    if case == "unknown_firm":
        vr = visit_rows(world, code=factories.credit_code(7999))
        return "visits", csv_bytes(vr), world.campaign, (2, "统一社会信用代码", "系统中没有该企业")
    if case == "outside_campaign":
        vr = visit_rows(world, visited=date(2025, 12, 1))
        return "visits", csv_bytes(vr), world.campaign, (2, "走访日期", "不在专项活动期间")
    if case == "empty_file":
        return "firms", b"", None, (0, "", "文件没有数据行")
    if case == "renamed_binary":
        return "firms", b"\x7fELF\x02\x01\x01" + bytes(200), None, (0, "", "不支持的文件格式")
    if case == "zip_bomb":
        return "firms", _zip_bomb(), None, (0, "", "文件解压后过大")
    if case == "too_many_rows":
        many = [FIRM_HEADERS] + [[f"企业{i}", factories.credit_code(8000 + i)] + [""] * 13 for i in range(6)]
        return "firms", csv_bytes(many), None, (0, "", "数据行超过上限：最多 5 行")
    if case == "duplicate_rows":
        rows.append(list(rows[1]))
        return "firms", csv_bytes(rows), None, (4, "企业名称", "与第 2 行重复")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["wrong_headers", "bad_credit_code", "bad_date", "unknown_username",
                                  "other_bank_username", "unknown_firm", "outside_campaign", "empty_file",
                                  "renamed_binary", "zip_bomb", "too_many_rows", "duplicate_rows"])
def test_bad_file_gets_a_precise_report_and_changes_nothing(world, case):
    kind, data, campaign, (row, column, reason) = _bad_file(case, world)
    before = snapshot_counts()
    name = "bad.xlsx" if case in ("zip_bomb", "renamed_binary") else "bad.csv"
    report = run(kind, data, world.rm_a, filename=name, campaign=campaign, max_rows=5)
    assert not report.committed
    if row == 0:
        assert reason in report.file_error
    else:
        assert any(p.row == row and p.column == column and reason in p.reason for p in report.problems), \
            report.text_report()
    assert snapshot_counts() == before
    csv_text = report.error_csv().decode("utf-8-sig")
    assert reason.split("：")[0] in csv_text


# --- all or nothing -----------------------------------------------------------------------------------------


def test_one_rejected_row_commits_nothing_unless_valid_only(world):
    rows = firm_rows()
    rows.append(["坏行企业", "BAD", "", "", "", "", "", "", "", "", "", "", "", "", ""])
    before = snapshot_counts()
    report = run("firms", csv_bytes(rows), world.rm_a)
    assert (report.created, report.rejected, report.committed) == (2, 1, False)
    assert snapshot_counts() == before
    report = run("firms", csv_bytes(rows), world.rm_a, valid_only=True)
    assert report.committed and report.created == 2 and count(Firm) == before["Firm"] + 2


def test_dry_run_counts_but_changes_nothing(world):
    before = snapshot_counts()
    report = run("firms", csv_bytes(firm_rows()), world.rm_a, commit=False)
    assert report.created == 2 and not report.committed
    assert snapshot_counts() == before


# --- web flow ------------------------------------------------------------------------------------------------


def _upload(client, kind, data, filename, campaign_id=""):
    return client.post("/imports/preview", data={"kind": kind, "campaign_id": str(campaign_id),
                                                  "file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def test_web_preview_then_error_file_then_valid_only_commit(world, login_as, client):
    login_as("rm_a")
    rows = firm_rows()
    rows.append(["坏行企业", "BAD", "", "", "", "", "", "", "", "", "", "", "", "", ""])
    before = snapshot_counts()
    resp = _upload(client, "firms", csv_bytes(rows, "gb18030"), "企业台账.csv")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'data-count="created">2<' in html and 'data-count="rejected">1<' in html
    assert "<td>4</td><td>统一社会信用代码</td>" in html
    assert snapshot_counts() == before
    token = re.search(r"/imports/([A-Za-z0-9_-]{32,64})/commit", html).group(1)
    err = client.get(f"/imports/{token}/errors.csv")
    assert err.status_code == 200 and "4,统一社会信用代码,BAD" in err.data.decode("utf-8-sig")
    resp = client.post(f"/imports/{token}/commit", data={})
    assert resp.status_code == 422 and snapshot_counts()["Firm"] == before["Firm"]
    resp = client.post(f"/imports/{token}/commit", data={"valid_only": "y"})
    assert resp.status_code == 302
    assert count(Firm) == before["Firm"] + 2
    assert client.post(f"/imports/{token}/commit", data={"valid_only": "y"}).status_code == 404


def test_an_upload_token_belongs_to_its_uploader(world, login_as, client):
    login_as("rm_a")
    html = _upload(client, "firms", csv_bytes(firm_rows()), "a.csv").get_data(as_text=True)
    token = re.search(r"/imports/([A-Za-z0-9_-]{32,64})/commit", html).group(1)
    client.post("/logout")
    login_as("rm_a2")
    assert client.get(f"/imports/{token}").status_code == 404
    assert client.get(f"/imports/{token}/errors.csv").status_code == 404
    assert client.post(f"/imports/{token}/commit", data={}).status_code == 404
    assert client.post("/imports/../../etc/passwd/commit", data={}).status_code == 404
    assert count(Firm) == 1


def test_visits_import_needs_a_campaign_and_bureau_cannot_import(world, login_as, client):
    login_as("rm_a")
    assert _upload(client, "visits", csv_bytes(visit_rows(world)), "v.csv").status_code == 422
    resp = _upload(client, "visits", csv_bytes(visit_rows(world)), "v.csv", world.campaign.id)
    assert 'data-count="created">1<' in resp.get_data(as_text=True)
    client.post("/logout")
    login_as("bureau")
    assert client.get("/imports/").status_code == 403


def test_template_download_has_the_chinese_headers(world, login_as):
    resp = login_as("rm_a").get("/imports/template/visits.xlsx")
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(resp.data)).active
    assert [c.value for c in ws[1]] == VISIT_HEADERS


# --- CLI -------------------------------------------------------------------------------------------------------


def test_cli_imports_dry_runs_and_fails_with_a_row_report(world, runner, tmp_path):
    good = tmp_path / "firms.xlsx"
    good.write_bytes(xlsx_bytes(firm_rows()))
    before = count(Firm)
    result = runner.invoke(args=["crm", "import", "firms", str(good), "--as", "rm_a", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "新增 2" in result.output and count(Firm) == before
    result = runner.invoke(args=["crm", "import", "firms", str(good), "--campaign", "ZCR2026", "--as", "rm_a"])
    assert result.exit_code == 0 and count(Firm) == before + 2
    bad = tmp_path / "visits.csv"
    rows = visit_rows(world)
    rows[1][3] = "nobody"
    bad.write_bytes(csv_bytes(rows))
    result = runner.invoke(args=["crm", "import", "visits", str(bad), "--campaign", "ZCR2026", "--as", "rm_a"])
    assert result.exit_code == 1
    assert "第 2 行\t走访人\tnobody\t未知的用户名" in result.stderr
    assert count(Visit) == 0


@pytest.mark.parametrize("args, message", [
    (["no_such_ledger"], "未知的台账类型"),
    (["--as", "ghost"], "未知的用户"),
    (["--campaign", "NOPE"], "未知的专项活动"),
    (["--no-campaign"], "--campaign"),
    (["--as", "bureau"], "不能导入"),
])
def test_cli_refuses_bad_arguments(world, runner, tmp_path, args, message):
    f = tmp_path / "v.csv"
    f.write_bytes(csv_bytes(visit_rows(world)))
    kind = "no_such_ledger" if args == ["no_such_ledger"] else "visits"
    opts = {"--as": "rm_a", "--campaign": "ZCR2026"}
    if args and args[0].startswith("--") and args[0] != "--no-campaign":
        opts[args[0]] = args[1]
    if args == ["--no-campaign"]:
        opts.pop("--campaign")
    cli = ["crm", "import", kind, str(f)] + [x for kv in opts.items() for x in kv]
    result = runner.invoke(args=cli)
    assert result.exit_code == 1 and message in result.output + (result.stderr or "")
    assert count(Visit) == 0
