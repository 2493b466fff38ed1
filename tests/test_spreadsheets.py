"""Behaviour of the one spreadsheet module: safe exports (CSV/XLSX) and guarded ledger uploads."""

from __future__ import annotations

import codecs
import csv
import io
import random
import re
import struct
import zipfile
from datetime import date, datetime, timezone
from decimal import Decimal
from urllib.parse import unquote

import openpyxl
import pytest
from flask import Flask

from crm.core.spreadsheets import (
    Sheet,
    SpreadsheetError,
    content_disposition,
    error_report_csv,
    generate_csv,
    generate_workbook,
    generate_xlsx,
    map_headers,
    neutralise,
    parse_bool_cell,
    parse_date_cell,
    parse_datetime_cell,
    parse_decimal_cell,
    read_table,
    send_csv,
    send_xlsx,
)

FORMULA_PAYLOADS = [
    "=1+1",
    "=cmd|' /C calc'!A0",
    "+1",
    "-1",
    "@SUM(1)",
    "\t=1",
    "\r=1",
    '=HYPERLINK("http://x","y")',
    "-2+3",
    "+86 138 0013 8000",
    "@foo",
]


def csv_rows(data: bytes) -> list[list[str]]:
    """Parse CSV bytes the way a consumer would (BOM removed)."""
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def sheet_xml(data: bytes, name: str = "xl/worksheets/sheet1.xml") -> str:
    """Return the raw XML of one member of an XLSX."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(name).decode("utf-8")


def rewrite_member(data: bytes, name: str, transform) -> bytes:
    """Return a copy of a zip with one member's bytes transformed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            payload = src.read(info)
            dst.writestr(info.filename, transform(payload) if info.filename == name else payload)
    return out.getvalue()


def simple_xlsx(rows: list[list[object]]) -> bytes:
    """Build an XLSX the way a user's Excel would hold it (normal, not write-only, workbook)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    for r, row in enumerate(rows, 1):
        for c, value in enumerate(row, 1):
            if value is not None:
                ws.cell(row=r, column=c, value=value)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# --- neutralise ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", FORMULA_PAYLOADS)
def test_neutralise_prefixes_formula_payloads_without_stripping(payload):
    assert neutralise(payload) == "'" + payload


@pytest.mark.parametrize("value", ["abc", "深圳", "1+1", "a=b", "'=1", "", " =1"])
def test_neutralise_leaves_ordinary_strings_alone(value):
    assert neutralise(value) == value


@pytest.mark.parametrize("value", [-1, -2.5, Decimal("-3"), None, date(2025, 1, 1)])
def test_neutralise_leaves_non_strings_alone(value):
    assert neutralise(value) == value


# --- CSV export ----------------------------------------------------------------------------------------


def test_csv_starts_with_utf8_bom_and_keeps_chinese():
    data = b"".join(generate_csv(["企业名称"], [{"企业名称": "深圳某科技有限公司"}]))
    assert data[:3] == codecs.BOM_UTF8
    assert csv_rows(data) == [["企业名称"], ["深圳某科技有限公司"]]


def test_csv_neutralises_every_formula_payload():
    rows = [{"值": p} for p in FORMULA_PAYLOADS]
    parsed = csv_rows(b"".join(generate_csv(["值"], rows)))
    assert [r[0] for r in parsed[1:]] == ["'" + p for p in FORMULA_PAYLOADS]


def test_csv_neutralises_headers_too():
    parsed = csv_rows(b"".join(generate_csv(["=evil"], [{"=evil": "x"}])))
    assert parsed[0] == ["'=evil"]


@pytest.mark.parametrize("value", ['say "hi"', "a,b", "line1\nline2", "tab\tinside"])
def test_csv_round_trips_quoted_values_exactly(value):
    parsed = csv_rows(b"".join(generate_csv(["v"], [{"v": value}])))
    assert parsed[1] == [value]


def test_csv_formats_lists_bools_none_dates_and_decimals():
    headers = ["list", "yes", "no", "none", "missing", "day", "at", "money", "tiny", "int", "float"]
    row = {
        "list": ["a", "b", "c"], "yes": True, "no": False, "none": None,
        "day": date(2025, 1, 2), "at": datetime(2025, 1, 2, 1, 30, tzinfo=timezone.utc),
        "money": Decimal("1234.50"), "tiny": Decimal("1E-7"), "int": -5, "float": 2.0,
    }
    parsed = csv_rows(b"".join(generate_csv(headers, [row])))
    assert parsed[1] == ["a; b; c", "是", "否", "", "", "2025-01-02", "2025-01-02 09:30:00",
                         "1234.50", "0.0000001", "-5", "2"]


def test_csv_neutralises_a_joined_list_starting_with_a_formula():
    parsed = csv_rows(b"".join(generate_csv(["v"], [{"v": ["=1+1", "ok"]}])))
    assert parsed[1] == ["'=1+1; ok"]


def test_csv_streams_in_chunks_with_a_single_bom():
    rows = ({"n": i, "text": "深圳" * 20} for i in range(5000))
    chunks = list(generate_csv(["n", "text"], rows))
    assert len(chunks) > 1
    assert chunks[0].startswith(codecs.BOM_UTF8)
    assert all(not c.startswith(codecs.BOM_UTF8) for c in chunks[1:])
    assert len(csv_rows(b"".join(chunks))) == 5001


# --- XLSX export ---------------------------------------------------------------------------------------


def test_xlsx_has_no_formula_element_for_any_payload():
    data = generate_xlsx(["值"], [{"值": p} for p in FORMULA_PAYLOADS])
    xml = sheet_xml(data)
    assert re.search(r"<f[\s>/]", xml) is None
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    values = [ws.cell(row=r, column=1).value for r in range(2, 2 + len(FORMULA_PAYLOADS))]
    assert all(isinstance(v, str) and v.startswith("'") for v in values)
    assert all(ws.cell(row=r, column=1).data_type == "s" for r in range(2, 2 + len(FORMULA_PAYLOADS)))


def test_xlsx_writes_error_literals_as_text():
    data = generate_xlsx(["v"], [{"v": "#N/A"}])
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    assert ws["A2"].value == "#N/A"
    assert ws["A2"].data_type == "s"


def test_xlsx_writes_real_date_and_number_cells():
    headers = ["日期", "时间", "金额", "数量", "是否", "长编号"]
    row = {"日期": date(2025, 1, 1), "时间": datetime(2025, 1, 1, 2, 0, tzinfo=timezone.utc),
           "金额": Decimal("117.5"), "数量": 41, "是否": True, "长编号": 123456789012345678}
    data = generate_xlsx(headers, [row], column_formats={"金额": "#,##0.00"})
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    assert ws["A2"].is_date and ws["A2"].number_format == "yyyy-mm-dd"
    assert ws["A2"].value == datetime(2025, 1, 1)
    assert ws["B2"].is_date and ws["B2"].number_format == "yyyy-mm-dd hh:mm"
    assert ws["B2"].value == datetime(2025, 1, 1, 10, 0)  # shown in China time
    assert ws["C2"].data_type == "n" and ws["C2"].value == 117.5 and ws["C2"].number_format == "#,##0.00"
    assert ws["D2"].value == 41
    assert ws["E2"].value == "是"
    assert ws["F2"].value == "123456789012345678"  # too long for Excel's 15 digits: kept as text


def test_xlsx_header_is_bold_frozen_and_columns_sized_for_chinese():
    data = generate_xlsx(["名称", "code"], [{"名称": "深圳市龙岗区某某科技有限公司", "code": "abc"}])
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    assert ws["A1"].font.bold and ws["B1"].font.bold
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["A"].width >= 28  # 14 CJK characters count double
    assert ws.column_dimensions["A"].width > ws.column_dimensions["B"].width


def test_xlsx_drops_characters_xml_cannot_hold():
    data = generate_xlsx(["v"], [{"v": "a\x00b\x07c"}])
    assert openpyxl.load_workbook(io.BytesIO(data)).active["A2"].value == "abc"


def test_workbook_writes_several_sheets_with_safe_unique_titles():
    data = generate_workbook([
        Sheet("活动/汇总", ["a"], [{"a": 1}]),
        Sheet("活动/汇总", ["b"], [{"b": "=2"}]),
    ])
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert len(wb.sheetnames) == 2 and len(set(wb.sheetnames)) == 2
    assert all("/" not in name for name in wb.sheetnames)
    assert wb.worksheets[1]["A2"].value == "'=2"
    assert "<f" not in sheet_xml(data, "xl/worksheets/sheet2.xml")


def test_exported_xlsx_reimports_to_the_same_values():
    rows = [{"电话": "+86 138 0013 8000", "日期": date(2025, 3, 4), "金额": Decimal("12.5")}]
    table = read_table(generate_xlsx(["电话", "日期", "金额"], rows), "export.xlsx")
    assert table.rows == [(2, {"电话": "+86 138 0013 8000", "日期": date(2025, 3, 4), "金额": 12.5})]


# --- download headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["报名表（2025）.xlsx", "../../etc/passwd", "a\r\nSet-Cookie: x=1.csv",
                                  "名" * 300 + ".csv", 'say"hi".csv', "..\\..\\boot.ini"])
def test_content_disposition_is_safe_for_hostile_and_chinese_names(name):
    header = content_disposition(name)
    assert header.startswith("attachment; filename=\"")
    assert "\r" not in header and "\n" not in header
    match = re.fullmatch(r'attachment; filename="([^"\\]*)"; filename\*=UTF-8\'\'([A-Za-z0-9%._~-]+)', header)
    assert match, header
    fallback, encoded = match.groups()
    assert fallback.isascii() and fallback
    decoded = unquote(encoded)
    assert "/" not in decoded and "\\" not in decoded and '"' not in decoded
    assert not decoded.startswith(".")
    assert len(decoded) <= 131


def test_content_disposition_keeps_the_chinese_name():
    header = content_disposition("报名表（2025）.xlsx")
    assert unquote(header.split("UTF-8''", 1)[1]) == "报名表（2025）.xlsx"
    assert header.split('"')[1].endswith(".xlsx")


def make_app() -> Flask:
    app = Flask(__name__)

    @app.get("/csv")
    def csv_download():
        return send_csv("企业名单", ["名称"], [{"名称": "=1+1"}, {"名称": "深圳"}])

    @app.get("/xlsx")
    def xlsx_download():
        return send_xlsx("企业名单.xlsx", ["名称"], [{"名称": "=1+1"}])

    return app


def test_send_csv_streams_a_safe_download():
    response = make_app().test_client().get("/csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("UTF-8''", 1)[1]) == "企业名单.csv"
    assert response.data[:3] == codecs.BOM_UTF8
    assert csv_rows(response.data) == [["名称"], ["'=1+1"], ["深圳"]]


def test_send_xlsx_returns_a_workbook_download():
    response = make_app().test_client().get("/xlsx")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["Cache-Control"] == "no-store"
    assert unquote(response.headers["Content-Disposition"].split("UTF-8''", 1)[1]) == "企业名单.xlsx"
    assert openpyxl.load_workbook(io.BytesIO(response.data)).active["A2"].value == "'=1+1"


# --- reading CSV ---------------------------------------------------------------------------------------

LEDGER_TEXT = "企业名称,统一社会信用代码,走访日期\r\n 深圳甲公司 ,91440300MA5DXXXX0X,2025-01-02\r\n深圳乙公司,,2025/1/3\r\n"
EXPECTED_ROWS = [
    (2, {"企业名称": "深圳甲公司", "统一社会信用代码": "91440300MA5DXXXX0X", "走访日期": "2025-01-02"}),
    (3, {"企业名称": "深圳乙公司", "统一社会信用代码": None, "走访日期": "2025/1/3"}),
]


@pytest.mark.parametrize("encoded", [
    LEDGER_TEXT.encode("utf-8"),
    codecs.BOM_UTF8 + LEDGER_TEXT.encode("utf-8"),
    LEDGER_TEXT.encode("gb18030"),
    LEDGER_TEXT.encode("utf-16"),
], ids=["utf8", "utf8-bom", "gb18030", "utf16-bom"])
def test_csv_in_every_chinese_excel_encoding_reads_identically(encoded):
    table = read_table(encoded, "台账.csv")
    assert table.headers == ["企业名称", "统一社会信用代码", "走访日期"]
    assert table.rows == EXPECTED_ROWS
    assert table.format == "csv"


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_csv_delimiter_is_sniffed(delimiter):
    text = LEDGER_TEXT.replace(",", delimiter)
    assert read_table(text.encode("gb18030"), "台账.txt").rows == EXPECTED_ROWS


def test_csv_keeps_true_row_numbers_across_blank_and_multiline_rows():
    text = '名称,备注\n甲,"第一行\n第二行"\n,\n\n乙,x\n'
    table = read_table(text.encode(), "a.csv")
    assert [n for n, _ in table.rows] == [2, 5]
    assert table.rows[0][1]["备注"] == "第一行\n第二行"


def test_csv_reports_rows_with_more_values_than_headers():
    table = read_table("名称,金额\n甲,1,000\n乙,2\n".encode(), "a.csv")
    assert len(table.rows) == 2
    assert [p[0] for p in table.problems] == [2]


def test_csv_undoes_our_own_formula_guard_on_reimport():
    exported = b"".join(generate_csv(["电话"], [{"电话": "+86 138 0013 8000"}]))
    assert read_table(exported, "a.csv").rows == [(2, {"电话": "+86 138 0013 8000"})]


def test_csv_in_unknown_encoding_is_refused_clearly():
    with pytest.raises(SpreadsheetError) as err:
        read_table(b"name,city\n\xff\xff\xff,x\n", "a.csv")
    assert err.value.code == "bad_encoding"
    assert "编码" in str(err.value)


def test_duplicate_headers_are_refused():
    with pytest.raises(SpreadsheetError) as err:
        read_table("名称,名称\n甲,乙\n".encode(), "a.csv")
    assert err.value.code == "duplicate_headers"


# --- reading XLSX --------------------------------------------------------------------------------------


def test_xlsx_round_trip_keeps_real_date_cells_and_true_row_numbers():
    data = simple_xlsx([
        ["  企业名称 ", "走访日期", "签到时间", "金额"],
        ["深圳甲公司", date(2025, 1, 1), datetime(2025, 1, 1, 9, 30), 12.5],
        [None, None, None, None],
        ["深圳乙公司", "2025/1/2", None, 3],
    ])
    table = read_table(data, "台账.xlsx")
    assert table.format == "xlsx"
    assert table.headers == ["企业名称", "走访日期", "签到时间", "金额"]
    assert table.rows == [
        (2, {"企业名称": "深圳甲公司", "走访日期": date(2025, 1, 1), "签到时间": datetime(2025, 1, 1, 9, 30),
             "金额": 12.5}),
        (4, {"企业名称": "深圳乙公司", "走访日期": "2025/1/2", "签到时间": None, "金额": 3}),
    ]
    assert parse_date_cell(table.rows[1][1]["走访日期"]) == date(2025, 1, 2)


def test_xlsx_is_detected_by_content_even_when_named_csv():
    table = read_table(simple_xlsx([["名称"], ["甲"]]), "renamed.csv")
    assert table.rows == [(2, {"名称": "甲"})]


def test_openpyxl_parses_with_defusedxml():
    assert openpyxl.DEFUSEDXML is True


# --- refused files -------------------------------------------------------------------------------------

PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512)
ELF = b"\x7fELF\x02\x01\x01" + bytes(100)
RANDOM = random.Random(20250101).randbytes(4096)
HTML = "<html><body><table><tr><td>名称</td></tr></table></body></html>".encode()


def docx_like_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<document/>")
    return out.getvalue()


@pytest.mark.parametrize("name", ["upload.xlsx", "upload.csv"])
@pytest.mark.parametrize("payload", [PDF, PNG, OLE, ELF, RANDOM, HTML, docx_like_zip()],
                         ids=["pdf", "png", "xls-ole", "elf", "random", "html", "docx-zip"])
def test_non_spreadsheet_content_is_refused_whatever_its_name(payload, name):
    with pytest.raises(SpreadsheetError) as err:
        read_table(payload, name)
    assert err.value.code in {"unsupported_format", "bad_encoding"}
    assert "XLSX" in str(err.value) or "编码" in str(err.value)


def test_old_binary_xls_gets_the_unsupported_format_message():
    with pytest.raises(SpreadsheetError) as err:
        read_table(OLE, "台账.xlsx")
    assert str(err.value).startswith("不支持的文件格式：请上传 XLSX 或 CSV")


@pytest.mark.parametrize("name", ["台账.xls", "台账.xlsm", "台账.html", "台账.exe"])
def test_disallowed_extensions_are_refused(name):
    with pytest.raises(SpreadsheetError) as err:
        read_table(LEDGER_TEXT.encode(), name)
    assert err.value.code == "unsupported_format"


def test_macro_enabled_workbook_is_refused():
    data = rewrite_member(simple_xlsx([["a"], [1]]), "[Content_Types].xml",
                          lambda b: b.replace(b"sheet.main+xml", b"sheet.macroEnabled.main+xml"))
    with pytest.raises(SpreadsheetError) as err:
        read_table(data, "a.xlsx")
    assert err.value.code == "unsupported_format"


@pytest.mark.parametrize("payload", [b"", b"   \r\n", "企业名称,统一社会信用代码\r\n".encode(), b"a,b\n,\n\n"],
                         ids=["empty", "blank", "header-only", "header-and-empty-rows"])
def test_file_without_data_rows_is_refused(payload):
    with pytest.raises(SpreadsheetError) as err:
        read_table(payload, "a.csv")
    assert "文件没有数据行" in str(err.value)
    assert err.value.code == "no_data"


def test_xlsx_with_header_only_is_refused():
    with pytest.raises(SpreadsheetError, match="文件没有数据行"):
        read_table(simple_xlsx([["企业名称"]]), "a.xlsx")


def test_too_many_rows_is_refused_naming_the_limit():
    text = "名称\n" + "".join(f"公司{i}\n" for i in range(11))
    assert len(read_table(text.encode(), "a.csv", max_rows=11).rows) == 11
    with pytest.raises(SpreadsheetError) as err:
        read_table(text.encode(), "a.csv", max_rows=10)
    assert err.value.code == "too_many_rows"
    assert "10" in str(err.value)


def test_too_many_rows_in_xlsx_is_refused():
    data = simple_xlsx([["名称"]] + [[f"公司{i}"] for i in range(6)])
    with pytest.raises(SpreadsheetError, match="5"):
        read_table(data, "a.xlsx", max_rows=5)


def test_too_large_upload_is_refused():
    with pytest.raises(SpreadsheetError) as err:
        read_table(b"a\n" + b"x\n" * 600, "a.csv", max_bytes=1000)
    assert err.value.code == "too_large"


def test_zip_bomb_is_refused_before_openpyxl():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(200):
                member.write(chunk)
    data = buffer.getvalue()
    assert len(data) < 1024 * 1024
    with pytest.raises(SpreadsheetError) as err:
        read_table(data, "bomb.xlsx")
    assert err.value.code == "zip_bomb"
    assert "文件解压后过大" in str(err.value)


def test_zip_whose_header_claims_a_huge_size_is_refused():
    data = simple_xlsx([["a"], [1]])
    # Patch the central directory entry of the sheet so it claims 3 GB uncompressed.
    name = b"xl/worksheets/sheet1.xml"
    pos = data.index(b"PK\x01\x02")
    while True:
        name_len = struct.unpack("<H", data[pos + 28:pos + 30])[0]
        if data[pos + 46:pos + 46 + name_len] == name:
            break
        pos = data.index(b"PK\x01\x02", pos + 4)
    data = data[:pos + 24] + struct.pack("<I", 3_000_000_000) + data[pos + 28:]
    with pytest.raises(SpreadsheetError) as err:
        read_table(data, "a.xlsx")
    assert err.value.code == "zip_bomb"


def test_xlsx_larger_than_the_uncompressed_cap_is_refused():
    data = simple_xlsx([["名称"], ["甲"]])
    assert read_table(data, "a.xlsx").rows == [(2, {"名称": "甲"})]
    with pytest.raises(SpreadsheetError) as err:
        read_table(data, "a.xlsx", max_uncompressed=2000)
    assert err.value.code == "zip_bomb"


def test_high_ratio_member_under_the_total_cap_is_refused():
    data = rewrite_member(simple_xlsx([["a"], [1]]), "xl/worksheets/sheet1.xml", lambda b: b + bytes(20 << 20))
    with pytest.raises(SpreadsheetError, match="文件解压后过大"):
        read_table(data, "a.xlsx")


def test_zip_with_too_many_members_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(simple_xlsx([["a"], [1]]))) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        for i in range(1001):
            dst.writestr(f"xl/media/pad{i}.bin", b"")
    with pytest.raises(SpreadsheetError) as err:
        read_table(out.getvalue(), "a.xlsx")
    assert err.value.code == "zip_bomb"


XXE_DOCTYPE = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize("member", ["[Content_Types].xml", "xl/worksheets/sheet1.xml", "xl/workbook.xml"])
def test_xlsx_with_dtd_or_entity_is_refused(member):
    def inject(xml: bytes) -> bytes:
        return XXE_DOCTYPE + re.sub(rb"^<\?xml[^>]*\?>", b"", xml.lstrip())

    data = rewrite_member(simple_xlsx([["a"], [1]]), member, inject)
    with pytest.raises(SpreadsheetError) as err:
        read_table(data, "a.xlsx")
    assert err.value.code == "unsafe_xml"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_xlsx_with_entity_in_utf16_sheet_is_refused(encoding):
    def to_utf16(xml: bytes) -> bytes:
        text = re.sub(r"^<\?xml[^>]*\?>", "", xml.decode("utf-8").lstrip())
        return ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]>' + text).encode(encoding)

    data = rewrite_member(simple_xlsx([["a"], [1]]), "xl/worksheets/sheet1.xml", to_utf16)
    with pytest.raises(SpreadsheetError) as err:
        read_table(data, "a.xlsx")
    assert err.value.code == "unsafe_xml"


def test_corrupt_xlsx_is_refused_without_a_crash():
    data = rewrite_member(simple_xlsx([["a"], [1]]), "xl/worksheets/sheet1.xml", lambda b: b"<worksheet><oops")
    with pytest.raises(SpreadsheetError) as err:
        read_table(data, "a.xlsx")
    assert err.value.code == "corrupt_file"


def test_truncated_zip_is_refused_without_a_crash():
    data = simple_xlsx([["a"], [1]])
    with pytest.raises(SpreadsheetError):
        read_table(data[: len(data) // 2], "a.xlsx")


# --- header mapping ------------------------------------------------------------------------------------

VISIT_COLUMNS = {
    "credit_code": ["统一社会信用代码", "Credit Code", "USCC"],
    "visited_on": ["走访日期", "Visit Date"],
    "need_wan": ["融资需求金额（万元）", "Financing Need (10k CNY)"],
    "summary": ["走访纪要", "Summary"],
}


def test_map_headers_accepts_aliases_case_spacing_and_bracket_styles():
    headers = ["credit  code", "走访日期", "融资需求金额(万元)", "序号"]
    assert map_headers(headers, VISIT_COLUMNS, required={"credit_code", "visited_on"}) == {
        "credit_code": "credit  code", "visited_on": "走访日期", "need_wan": "融资需求金额(万元)",
    }


@pytest.mark.parametrize("header", ["融资需求金额（万元）", "融资需求金额(万元)", "融资需求金额 ( 万元 )",
                                    "融资需求金额【万元】", "ＦＩＮＡＮＣＩＮＧ ＮＥＥＤ (10K CNY)", "*融资需求金额(万元)"])
def test_map_headers_matches_full_width_and_half_width(header):
    assert map_headers([header], VISIT_COLUMNS) == {"need_wan": header}


def test_map_headers_lists_missing_required_and_unknown_headers():
    with pytest.raises(SpreadsheetError) as err:
        map_headers(["统一社会信用代码", "走訪日期"], VISIT_COLUMNS, required={"credit_code", "visited_on"})
    message = str(err.value)
    assert "缺少必填列" in message and "走访日期" in message
    assert "无法识别的列" in message and "走訪日期" in message
    assert err.value.code == "bad_headers"
    assert err.value.details["missing"] == ["走访日期"]
    assert err.value.details["unknown"] == ["走訪日期"]


def test_map_headers_refuses_the_same_field_twice():
    with pytest.raises(SpreadsheetError, match="多次"):
        map_headers(["走访日期", "Visit Date"], VISIT_COLUMNS)


def test_map_headers_can_refuse_unknown_headers():
    with pytest.raises(SpreadsheetError, match="序号"):
        map_headers(["走访日期", "序号"], VISIT_COLUMNS, allow_unknown=False)


# --- cell parsers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (date(2025, 1, 1), date(2025, 1, 1)),
    (datetime(2025, 1, 1, 13, 5), date(2025, 1, 1)),
    ("2025-01-01", date(2025, 1, 1)),
    ("2025/1/2", date(2025, 1, 2)),
    ("2025.1.3", date(2025, 1, 3)),
    ("2025年1月4日", date(2025, 1, 4)),
    ("２０２５－０１－０５", date(2025, 1, 5)),
    (" 2025-01-06 ", date(2025, 1, 6)),
    ("2025-01-07 00:00:00", date(2025, 1, 7)),
    ("20250108", date(2025, 1, 8)),
    (45658, date(2025, 1, 1)),
    (45658.75, date(2025, 1, 1)),
    ("45658", date(2025, 1, 1)),
])
def test_parse_date_cell_accepts_ledger_forms(value, expected):
    assert parse_date_cell(value) == expected


@pytest.mark.parametrize("value", [None, "", "garbage", "2025-02-30", "2025-13-01", "1/2/2025", 12, 19999,
                                   80001, True, float("nan"), "2025-01-01 lunch", "45658x"])
def test_parse_date_cell_refuses_garbage_with_a_chinese_message(value):
    with pytest.raises(ValueError) as err:
        parse_date_cell(value)
    assert re.search(r"[\u4e00-\u9fff]", str(err.value))


@pytest.mark.parametrize("value, expected", [
    (datetime(2025, 1, 1, 9, 30), datetime(2025, 1, 1, 9, 30)),
    (date(2025, 1, 1), datetime(2025, 1, 1)),
    ("2025-01-01 09:30", datetime(2025, 1, 1, 9, 30)),
    ("2025/1/1 9:30:15", datetime(2025, 1, 1, 9, 30, 15)),
    ("2025-01-01T09:30:00", datetime(2025, 1, 1, 9, 30)),
    ("2025年1月1日 9:30", datetime(2025, 1, 1, 9, 30)),
    (45658.5, datetime(2025, 1, 1, 12, 0)),
])
def test_parse_datetime_cell_accepts_ledger_forms(value, expected):
    assert parse_datetime_cell(value) == expected


@pytest.mark.parametrize("value", ["", "noon", "2025-01-01 25:00", "2025-01-01 9:30 pm", 3])
def test_parse_datetime_cell_refuses_garbage(value):
    with pytest.raises(ValueError):
        parse_datetime_cell(value)


@pytest.mark.parametrize("value, expected", [
    ("1,234.5", Decimal("1234.5")),
    ("１２３４．５", Decimal("1234.5")),
    ("１，２３４", Decimal("1234")),
    (" -12 ", Decimal("-12")),
    (".5", Decimal("0.5")),
    (0.1, Decimal("0.1")),
    (42, Decimal("42")),
    (Decimal("3.14"), Decimal("3.14")),
])
def test_parse_decimal_cell_accepts_numbers(value, expected):
    assert parse_decimal_cell(value) == expected


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity", "abc", "1,2", "12,34.5", "1e3", "", None,
                                   float("nan"), float("inf"), Decimal("NaN"), True, "1.2.3"])
def test_parse_decimal_cell_refuses_non_numbers(value):
    with pytest.raises(ValueError):
        parse_decimal_cell(value)


@pytest.mark.parametrize("value, expected", [
    ("是", True), ("否", False), ("Y", True), ("n", False), ("YES", True), ("no", False),
    ("True", True), ("false", False), ("1", True), ("0", False), (1, True), (0, False), ("√", True),
    ("Ｙ", True), (True, True),
])
def test_parse_bool_cell_accepts_yes_no_forms(value, expected):
    assert parse_bool_cell(value) is expected


@pytest.mark.parametrize("value", ["", None, "maybe", "2", 2])
def test_parse_bool_cell_refuses_others(value):
    with pytest.raises(ValueError):
        parse_bool_cell(value)


# --- error report --------------------------------------------------------------------------------------


def test_error_report_csv_lists_errors_neutralised_with_bom():
    data = error_report_csv([(2, "走访日期", "garbage", "无法识别的日期"), (5, "联系电话", "=1+1", "手机号格式错误"),
                             (7, "审批日期", date(2025, 1, 1), "早于受理日期")])
    assert data[:3] == codecs.BOM_UTF8
    assert csv_rows(data) == [
        ["行号", "列", "值", "原因"],
        ["2", "走访日期", "garbage", "无法识别的日期"],
        ["5", "联系电话", "'=1+1", "手机号格式错误"],
        ["7", "审批日期", "2025-01-01", "早于受理日期"],
    ]
