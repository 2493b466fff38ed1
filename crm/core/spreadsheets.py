"""The one spreadsheet module: every CSV/XLSX export and every ledger upload goes through here.

Export side: domains build ``(headers, rows)`` (rows are dicts keyed by header) and call
:func:`send_csv` / :func:`send_xlsx`.  Every string cell is neutralised against formula injection
(a leading ``'`` before ``= + - @ \\t \\r \\0``; prefix, never strip, so ``+86 …`` and ``-2`` survive), and the
XLSX writer forces every string to an inline string so the sheet XML never holds an ``<f>`` element.

Import side: :func:`read_table` turns uploaded bytes into a :class:`Table` after checking size, format
(by content, not by name), zip bombs, DTD/ENTITY declarations (XXE), encodings and row caps; every
refusal is a :class:`SpreadsheetError` whose ``str()`` is a Chinese message fit for the page.
:func:`map_headers` and the ``parse_*_cell`` helpers turn ledger cells into typed values.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence
from urllib.parse import quote

__all__ = [
    "CSV_MIMETYPE",
    "XLSX_MIMETYPE",
    "DEFAULT_TZ",
    "neutralise",
    "format_csv_value",
    "generate_csv",
    "Sheet",
    "generate_workbook",
    "generate_xlsx",
    "iter_workbook",
    "content_disposition",
    "send_csv",
    "send_xlsx",
    "SpreadsheetError",
    "Table",
    "read_table",
    "normalize_header",
    "map_headers",
    "parse_date_cell",
    "parse_datetime_cell",
    "parse_decimal_cell",
    "parse_bool_cell",
    "error_report_csv",
]

CSV_MIMETYPE = "text/csv"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: China Standard Time has no DST, so a fixed offset is exact; aware datetimes are shown in it.
DEFAULT_TZ: tzinfo = timezone(timedelta(hours=8), "Asia/Shanghai")

# ---------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------

#: First characters that make Excel/LibreOffice/Sheets treat a cell as a formula (ASVS5 1.2.10, plus CR).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")

LIST_SEPARATOR = "; "
BOOL_TEXT = {True: "是", False: "否"}
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
TIME_FORMAT = "hh:mm"

_XLSX_MAX_CELL_CHARS = 32767  # Excel refuses longer cells ("repair" dialog)
_XLSX_MAX_EXACT_INT = 10**15  # Excel keeps 15 significant digits; longer integers become text
_XLSX_SHEET_TITLE_BAD = re.compile(r"[\[\]:*?/\\]")
_XML_ILLEGAL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_WIDTH_SAMPLE_ROWS = 200
_CSV_CHUNK_CHARS = 64 * 1024


def neutralise(value: Any) -> Any:
    """Prefix ``'`` to a string that a spreadsheet would read as a formula; other values pass through."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _local_naive(value: datetime, tz: Optional[tzinfo]) -> datetime:
    """Convert an aware datetime to ``tz`` (default China time) and drop tzinfo; naive ones are kept."""
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(tz or DEFAULT_TZ).replace(tzinfo=None)
    return value.replace(tzinfo=None)


def _plain_decimal(value: Decimal) -> str:
    """Return a Decimal as plain positional text (no exponent); non-finite values give ""."""
    if not value.is_finite():
        return ""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def _plain_text(value: Any, tz: Optional[tzinfo]) -> tuple[str, bool]:
    """Return ``(text, came_from_text)`` for one value, before neutralisation."""
    if value is None:
        return "", False
    if isinstance(value, bool):
        return BOOL_TEXT[value], False
    if isinstance(value, Decimal):
        return _plain_decimal(value), False
    if isinstance(value, int):
        return str(value), False
    if isinstance(value, float):
        if not math.isfinite(value):
            return "", False
        return (str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)), False
    if isinstance(value, datetime):
        return _local_naive(value, tz).strftime("%Y-%m-%d %H:%M:%S"), False
    if isinstance(value, date):
        return value.isoformat(), False
    if isinstance(value, time):
        return value.replace(tzinfo=None).isoformat(timespec="seconds"), False
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        parts = (_plain_text(item, tz)[0] for item in items if item is not None)
        return LIST_SEPARATOR.join(p for p in parts if p != ""), True
    return (value if isinstance(value, str) else str(value)), True


def format_csv_value(value: Any, tz: Optional[tzinfo] = None) -> str:
    """Return the neutralised CSV text of one cell value (lists joined, bool 是/否, dates ISO)."""
    kind = type(value)
    if kind is str:  # the common case first: one type check, no chain of isinstance tests
        return "'" + value if value.startswith(FORMULA_TRIGGERS) else value
    if value is None:
        return ""
    if kind is int:
        return str(value)
    if kind is datetime:  # "YYYY-MM-DD HH:MM:SS" in local time: the first 19 characters of str()
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(tz or DEFAULT_TZ)
        return str(value)[:19]
    text, came_from_text = _plain_text(value, tz)
    return neutralise(text) if came_from_text else text


def _row_cells(row: Any, headers: Sequence[str]) -> Sequence[Any]:
    """The values of one row in header order: a sequence already in that order, or a mapping keyed by header."""
    if isinstance(row, (tuple, list)):
        return row
    get = row.get
    return [get(h) for h in headers]


def generate_csv(headers: Sequence[str], rows: Iterable[Any], *,
                 tz: Optional[tzinfo] = None) -> Iterator[bytes]:
    """Yield a UTF-8 CSV (BOM first, CRLF lines) of ``rows``, neutralised, in chunks of about 64 KiB.

    A row is a dict keyed by header or a tuple/list of values in header order; ``rows`` may be a generator
    (rows are consumed as the response is sent, so memory does not grow with the file).
    """
    headers = list(headers)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writerow = writer.writerow
    cell = format_csv_value
    triggers = FORMULA_TRIGGERS
    writerow([cell(h, tz) for h in headers])
    first = True
    for row in rows:
        # strings are neutralised inline, None and int are written by the csv module as they are
        writerow([(("'" + v) if v.startswith(triggers) else v) if type(v) is str
                  else (v if v is None or type(v) is int else cell(v, tz))
                  for v in _row_cells(row, headers)])
        if buffer.tell() >= _CSV_CHUNK_CHARS:
            yield (codecs.BOM_UTF8 if first else b"") + buffer.getvalue().encode("utf-8")
            first = False
            buffer.seek(0)
            buffer.truncate()
    yield (codecs.BOM_UTF8 if first else b"") + buffer.getvalue().encode("utf-8")


@dataclass
class Sheet:
    """One worksheet of an XLSX export: rows are dicts keyed by header; formats map header → number format."""

    title: str
    headers: Sequence[str]
    rows: Iterable[Mapping[str, Any]]
    column_formats: Optional[Mapping[str, str]] = None


def _display_width(text: str) -> int:
    """Column width of ``text`` in Excel character units (East Asian wide/full-width count double)."""
    line = max(text.split("\n"), key=len) if text else ""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in line)


def _xlsx_value(value: Any, tz: Optional[tzinfo]) -> tuple[Any, Optional[str], bool]:
    """Return ``(cell value, default number format, is_string)`` for one export value."""
    if value is None:
        return None, None, False
    if isinstance(value, bool):
        return BOOL_TEXT[value], None, True
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None, None, False
        return value, None, False
    if isinstance(value, int):
        if abs(value) >= _XLSX_MAX_EXACT_INT:  # would be rounded by Excel: keep the digits as text
            return str(value), None, True
        return value, None, False
    if isinstance(value, float):
        return (value if math.isfinite(value) else None), None, False
    if isinstance(value, datetime):
        return _local_naive(value, tz), DATETIME_FORMAT, False
    if isinstance(value, date):
        return value, DATE_FORMAT, False
    if isinstance(value, time):
        return value.replace(tzinfo=None), TIME_FORMAT, False
    if isinstance(value, (list, tuple, set, frozenset)):
        return format_csv_value(value, tz), None, True
    text = neutralise(value if isinstance(value, str) else str(value))
    return text, None, True


def _clean_xlsx_text(text: str) -> str:
    """Remove characters XML 1.0 cannot carry and cut to Excel's cell limit."""
    text = _XML_ILLEGAL_CHARS.sub("", text)
    return text[:_XLSX_MAX_CELL_CHARS]


def _sheet_titles(titles: Sequence[str]) -> list[str]:
    """Make Excel-valid, unique sheet titles (≤ 31 chars, no ``[]:*?/\\``)."""
    result: list[str] = []
    seen: set[str] = set()
    for raw in titles:
        title = _XLSX_SHEET_TITLE_BAD.sub("_", _XML_ILLEGAL_CHARS.sub("", str(raw or ""))).strip().strip("'")
        title = (title or "Sheet")[:31]
        candidate, n = title, 2
        while candidate.casefold() in seen:
            suffix = f" ({n})"
            candidate = title[: 31 - len(suffix)] + suffix
            n += 1
        seen.add(candidate.casefold())
        result.append(candidate)
    return result


_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_XLSX_CHUNK_CHARS = 256 * 1024
_EXCEL_EPOCH = datetime(1899, 12, 30)


def _column_letter(index: int) -> str:
    """1 → A, 27 → AA."""
    letters = ""
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _excel_serial(value: Any) -> float:
    """Excel's serial number of a naive datetime, date or time (the 1900 date system, as openpyxl writes it)."""
    if isinstance(value, time):
        return (value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6) / 86400
    if not isinstance(value, datetime):
        days = (value - _EXCEL_EPOCH.date()).days
        return days - 1 if 0 < days <= 60 else days
    delta = value - _EXCEL_EPOCH
    days = delta.days
    if 0 < days <= 60:
        days -= 1
    return days + (delta.seconds + delta.microseconds / 1e6) / 86400


class _Styles:
    """The cell formats a workbook uses: style 0 plain, 1 bold header, then one per number format."""

    def __init__(self) -> None:
        self.formats: dict[str, int] = {}  # number format → style index

    def index(self, number_format: str) -> int:
        idx = self.formats.get(number_format)
        if idx is None:
            idx = self.formats[number_format] = 2 + len(self.formats)
        return idx

    def xml(self) -> str:
        fmts = "".join(f'<numFmt numFmtId="{164 + i}" formatCode="{f.translate(_ATTR_ESCAPES)}"/>'
                       for i, f in enumerate(self.formats))
        xfs = ['<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>',
               '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>']
        xfs += [f'<xf numFmtId="{164 + i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
                for i in range(len(self.formats))]
        return (f'{_XML_HEAD}<styleSheet xmlns="{_NS_MAIN}">'
                + (f'<numFmts count="{len(self.formats)}">{fmts}</numFmts>' if self.formats else "")
                + '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
                  '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
                  '<fills count="2"><fill><patternFill patternType="none"/></fill>'
                  '<fill><patternFill patternType="gray125"/></fill></fills>'
                  '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
                  '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
                + f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
                + '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
                  '</styleSheet>')


class _ZipSink:
    """A write-only, unseekable file for :class:`zipfile.ZipFile` whose output is drained in chunks."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        if data:
            self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _inline(ref: str, text: str, style: str = "") -> str:
    """An inline-string cell (``t="inlineStr"``): text is never read as a formula, a number or an error."""
    text = _clean_xlsx_text(text).translate(_XML_ESCAPES)
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f'<c r="{ref}"{style} t="inlineStr"><is><t{space}>{text}</t></is></c>'


def _sheet_parts(sheet: Sheet, styles: _Styles, tz: Optional[tzinfo]) -> Iterator[str]:
    """The worksheet XML of one sheet, in pieces (rows are consumed lazily after a 200-row sample)."""
    headers = list(sheet.headers)
    formats = dict(sheet.column_formats or {})
    n = len(headers)
    letters = [_column_letter(i) for i in range(1, n + 1)]
    custom = [styles.index(formats[h]) if formats.get(h) else None for h in headers]

    # Widths go before the data, so sample the first rows (as Excel users expect: wide Chinese names fit).
    row_iter = iter(sheet.rows)
    sample: list[Any] = []
    for row in row_iter:
        sample.append(row)
        if len(sample) >= _WIDTH_SAMPLE_ROWS:
            break
    widths = [_display_width(str(h)) for h in headers]
    for row in sample:
        for i, raw in enumerate(_row_cells(row, headers)):
            if i >= n:
                break
            value, number_format, _ = _xlsx_value(raw, tz)
            if value is None:
                continue
            if number_format == DATETIME_FORMAT:
                w = 16
            elif number_format == DATE_FORMAT:
                w = 10
            elif isinstance(value, (Decimal, float)):
                w = min(len(str(value)), 18)
            else:
                w = _display_width(str(value))
            widths[i] = max(widths[i], w)

    yield f'{_XML_HEAD}<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">'
    if headers:
        yield ('<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft"'
               ' state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>')
        yield "<cols>" + "".join(f'<col min="{i}" max="{i}" width="{min(max(w + 2, 8), 60)}" customWidth="1"/>'
                                 for i, w in enumerate(widths, 1)) + "</cols>"
        yield "<sheetData>"
        yield '<row r="1">' + "".join(_inline(f"{c}1", str(neutralise(str(h))), ' s="1"')
                                      for c, h in zip(letters, headers)) + "</row>"
    else:
        yield "<sheetData>"

    date_style = {fmt: styles.index(fmt) for fmt in (DATE_FORMAT, DATETIME_FORMAT, TIME_FORMAT)}
    dt_style = date_style[DATETIME_FORMAT]
    r = 1
    for source in (sample, row_iter):
        for row in source:
            r += 1
            cells = []
            append = cells.append
            for i, raw in enumerate(_row_cells(row, headers)):
                if i >= n or raw is None:
                    continue
                kind = type(raw)
                if kind is str:  # fast path: the usual cell
                    text = "'" + raw if raw.startswith(FORMULA_TRIGGERS) else raw
                    if _XML_ILLEGAL_CHARS.search(text) or len(text) > _XLSX_MAX_CELL_CHARS:
                        text = _clean_xlsx_text(text)
                    text = text.translate(_XML_ESCAPES)
                    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
                    append(f'<c r="{letters[i]}{r}" t="inlineStr"><is><t{space}>{text}</t></is></c>')
                    continue
                if kind is int and custom[i] is None and -_XLSX_MAX_EXACT_INT < raw < _XLSX_MAX_EXACT_INT:
                    append(f'<c r="{letters[i]}{r}"><v>{raw}</v></c>')
                    continue
                if kind is datetime and custom[i] is None:
                    if raw.tzinfo is not None and raw.utcoffset() is not None:
                        raw = raw.astimezone(tz or DEFAULT_TZ).replace(tzinfo=None)
                    append(f'<c r="{letters[i]}{r}" s="{dt_style}"><v>{_excel_serial(raw)!r}</v></c>')
                    continue
                value, number_format, is_string = _xlsx_value(raw, tz)
                if value is None:
                    continue
                if is_string:
                    append(_inline(f"{letters[i]}{r}", value))
                    continue
                style = custom[i]
                if isinstance(value, (datetime, date, time)):
                    number = repr(_excel_serial(value))
                    if style is None:
                        style = date_style[number_format]
                elif isinstance(value, Decimal):
                    number = _plain_decimal(value)
                elif isinstance(value, float):
                    number = repr(value)
                else:
                    number = str(int(value))
                s = f' s="{style}"' if style is not None else ""
                append(f'<c r="{letters[i]}{r}"{s}><v>{number}</v></c>')
            yield f'<row r="{r}">' + "".join(cells) + "</row>"
    yield "</sheetData></worksheet>"


def iter_workbook(sheets: Sequence[Sheet], *, tz: Optional[tzinfo] = None) -> Iterator[bytes]:
    """Yield an XLSX file in chunks, one worksheet per :class:`Sheet`, never a formula.

    Written directly as SpreadsheetML into a streamed zip: rows are consumed lazily, every string is an
    inline string (so no ``<f>`` element can appear), so memory stays flat however many rows there are.
    """
    if not sheets:
        sheets = [Sheet("Sheet1", [], [])]
    titles = _sheet_titles([s.title for s in sheets])
    styles = _Styles()
    sink = _ZipSink()
    zf = zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
    for number, sheet in enumerate(sheets, 1):
        with zf.open(f"xl/worksheets/sheet{number}.xml", "w") as member:
            pending: list[str] = []
            size = 0
            for part in _sheet_parts(sheet, styles, tz):
                pending.append(part)
                size += len(part)
                if size >= _XLSX_CHUNK_CHARS:
                    member.write("".join(pending).encode("utf-8"))
                    pending.clear()
                    size = 0
                    chunk = sink.drain()
                    if chunk:
                        yield chunk
            member.write("".join(pending).encode("utf-8"))
        yield sink.drain()
    n = len(sheets)
    sheet_entries = "".join(f'<sheet name="{t.translate(_ATTR_ESCAPES)}" sheetId="{i}" r:id="rId{i}"/>'
                            for i, t in enumerate(titles, 1))
    zf.writestr("xl/workbook.xml", f'{_XML_HEAD}<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">'
                f'<bookViews><workbookView activeTab="0"/></bookViews><sheets>{sheet_entries}</sheets></workbook>')
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    rels = "".join(f'<Relationship Id="rId{i}" Type="{rel}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                   for i in range(1, n + 1))
    zf.writestr("xl/_rels/workbook.xml.rels",
                f'{_XML_HEAD}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                f'{rels}<Relationship Id="rId{n + 1}" Type="{rel}/styles" Target="styles.xml"/></Relationships>')
    zf.writestr("xl/styles.xml", styles.xml())
    zf.writestr("_rels/.rels",
                f'{_XML_HEAD}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{ct}.worksheet+xml"/>'
                        for i in range(1, n + 1))
    zf.writestr("[Content_Types].xml",
                f'{_XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
                f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/>{overrides}</Types>')
    zf.close()
    yield sink.drain()


def generate_workbook(sheets: Sequence[Sheet], *, tz: Optional[tzinfo] = None) -> bytes:
    """Return XLSX bytes with one worksheet per :class:`Sheet`, never a formula (see :func:`iter_workbook`)."""
    return b"".join(iter_workbook(sheets, tz=tz))


def generate_xlsx(headers: Sequence[str], rows: Iterable[Mapping[str, Any]], sheet_title: str = "Sheet1",
                  column_formats: Optional[Mapping[str, str]] = None, *, tz: Optional[tzinfo] = None) -> bytes:
    """Return XLSX bytes of one sheet; see :func:`generate_workbook`."""
    return generate_workbook([Sheet(sheet_title, headers, rows, column_formats)], tz=tz)


_FILENAME_BAD = re.compile(r'[\\/:*?"<>|]')
_ASCII_FALLBACK_BAD = re.compile(r"[^A-Za-z0-9._()\-]+")


def _clean_filename(filename: str) -> str:
    """Return a safe display file name: no control chars, quotes or path separators, ≤ 120 chars."""
    name = unicodedata.normalize("NFC", str(filename or ""))
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    name = _FILENAME_BAD.sub("_", name.replace("'", ""))
    name = re.sub(r"_+", "_", name).strip(" ._")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10 or not ext:
        stem, ext = name, ""
    stem = stem[:120].rstrip(" ._")
    if not stem:
        stem = "download"
    return f"{stem}.{ext}" if ext else stem


def content_disposition(filename: str) -> str:
    """Return an RFC 6266/5987 ``attachment`` header value with an ASCII fallback and a UTF-8 name."""
    name = _clean_filename(filename)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ascii_stem = _ASCII_FALLBACK_BAD.sub("_", unicodedata.normalize("NFKC", stem)).strip("._")
    ascii_ext = _ASCII_FALLBACK_BAD.sub("", ext)
    if not re.search(r"[A-Za-z0-9]", ascii_stem):
        ascii_stem = "download"
    fallback = f"{ascii_stem}.{ascii_ext}" if ascii_ext else ascii_stem
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _with_extension(filename: str, ext: str) -> str:
    """Return ``filename`` ending with ``ext`` (case-insensitive)."""
    name = str(filename or "download")
    return name if name.lower().endswith(ext) else name + ext


def _download_headers(filename: str) -> dict[str, str]:
    """Headers every download carries (EX-5)."""
    return {
        "Content-Disposition": content_disposition(filename),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


def send_csv(filename: str, headers: Sequence[str], rows: Iterable[Any], *,
             tz: Optional[tzinfo] = None):
    """Return a streamed CSV download ``Response`` (UTF-8 BOM, neutralised, ``Cache-Control: no-store``)."""
    from flask import Response

    return Response(generate_csv(headers, rows, tz=tz), mimetype=CSV_MIMETYPE,
                    headers=_download_headers(_with_extension(filename, ".csv")))


def send_xlsx(filename: str, headers: Sequence[str], rows: Iterable[Any], *,
              sheet_title: str = "Sheet1", column_formats: Optional[Mapping[str, str]] = None,
              tz: Optional[tzinfo] = None, sheets: Optional[Sequence[Sheet]] = None):
    """Return a streamed XLSX download ``Response``; pass ``sheets`` (and empty headers/rows) for several sheets.

    Rows may be a generator: the workbook is written as the response is sent, in constant memory.
    """
    from flask import Response

    if not sheets:
        sheets = [Sheet(sheet_title, headers, rows, column_formats)]
    return Response(iter_workbook(sheets, tz=tz), mimetype=XLSX_MIMETYPE,
                    headers=_download_headers(_with_extension(filename, ".xlsx")))


# ---------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------

UNSUPPORTED_FORMAT = "不支持的文件格式：请上传 XLSX 或 CSV"
ALLOWED_EXTENSIONS = frozenset({".xlsx", ".csv", ".tsv", ".txt"})


class SpreadsheetError(ValueError):
    """An uploaded file was refused; ``str(err)`` is a Chinese message for the user, ``code`` is for code."""

    def __init__(self, message: str, *, code: str = "invalid_file", **details: Any):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"SpreadsheetError(code={self.code!r}, message={self.message!r})"


@dataclass
class Table:
    """An uploaded sheet: stripped headers and ``(excel_row_number, {header: value})`` rows (header = row 1)."""

    headers: list[str]
    rows: list[tuple[int, dict[str, Any]]]
    format: str = "csv"
    #: Row-level problems seen while reading, as ``(row, column, value, reason)`` for the error report.
    problems: list[tuple[int, str, Any, str]] = field(default_factory=list)


def _human_size(n: int) -> str:
    """Return ``n`` bytes as a short MB/KB text."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} 字节"


_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "（旧版 .xls 或加密的 Excel 文件，请在 Excel 中另存为不加密的 .xlsx）"),
    (b"%PDF", "（这是 PDF 文件）"),
    (b"\x89PNG", "（这是图片文件）"),
    (b"\xff\xd8\xff", "（这是图片文件）"),
    (b"GIF8", "（这是图片文件）"),
    (b"BM", ""),
    (b"\x1f\x8b", "（这是压缩文件）"),
    (b"7z\xbc\xaf", "（这是压缩文件）"),
    (b"Rar!", "（这是压缩文件）"),
    (b"\x7fELF", ""),
    (b"MZ", ""),
)


def _check_extension(filename: str) -> None:
    """Refuse names whose extension is not an allowed spreadsheet type (a missing extension is allowed)."""
    base = re.split(r"[\\/]", str(filename or ""))[-1]
    stem, dot, ext = base.rpartition(".")
    if dot and stem and ("." + ext.lower()) not in ALLOWED_EXTENSIONS:
        hint = ""
        if ext.lower() in ("xls", "et"):
            hint = "（旧版 .xls 请在 Excel 中另存为 .xlsx）"
        elif ext.lower() in ("xlsm", "xlsb", "xltm"):
            hint = "（含宏或二进制工作簿请另存为 .xlsx）"
        raise SpreadsheetError(UNSUPPORTED_FORMAT + hint, code="unsupported_format")


def read_table(data: bytes, filename: str = "", *, max_rows: int = 10000, max_bytes: int = 10 * 1024 * 1024,
               max_uncompressed: int = 100 * 1024 * 1024, max_columns: int = 100,
               max_members: int = 1000, max_ratio: int = 200) -> Table:
    """Read an uploaded XLSX or CSV (format detected by content) into a :class:`Table`, or raise SpreadsheetError."""
    if data is None:
        data = b""
    data = bytes(data)
    if len(data) > max_bytes:
        raise SpreadsheetError(f"文件过大：上限为 {_human_size(max_bytes)}", code="too_large")
    _check_extension(filename)
    if not data.strip():
        raise SpreadsheetError("文件没有数据行：文件是空的", code="no_data")
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _read_xlsx(data, max_rows=max_rows, max_uncompressed=max_uncompressed,
                          max_columns=max_columns, max_members=max_members, max_ratio=max_ratio)
    for signature, hint in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise SpreadsheetError(UNSUPPORTED_FORMAT + hint, code="unsupported_format")
    return _read_csv(data, max_rows=max_rows, max_columns=max_columns)


# --- XLSX ------------------------------------------------------------------------------------------------

_DTD_MARKERS = (b"<!doctype", b"<!entity")
_SCAN_CHUNK = 1024 * 1024


def _member_declares_dtd(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Return True if a zip member holds a ``<!DOCTYPE``/``<!ENTITY`` declaration (UTF-8 or UTF-16)."""
    with zf.open(info) as member:
        head = member.read(4)
        decoder = None
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            decoder = codecs.getincrementaldecoder("utf-16")()
        elif head.startswith(b"<\x00"):
            decoder = codecs.getincrementaldecoder("utf-16-le")()
        elif head.startswith(b"\x00<"):
            decoder = codecs.getincrementaldecoder("utf-16-be")()
        tail: Any = "" if decoder else b""
        chunk = head
        while True:
            if decoder is not None:
                text = tail + decoder.decode(chunk, final=not chunk).lower()
                if "<!doctype" in text or "<!entity" in text:
                    return True
                tail = text[-16:]
            else:
                blob = tail + chunk.lower()
                if any(marker in blob for marker in _DTD_MARKERS):
                    return True
                tail = blob[-16:]
            if not chunk:
                return False
            chunk = member.read(_SCAN_CHUNK)


def _check_zip(data: bytes, *, max_uncompressed: int, max_members: int, max_ratio: int) -> None:
    """Refuse zips that are not XLSX, too big once inflated, too compressible, or carry DTDs (XXE)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise SpreadsheetError("文件已损坏：无法作为 XLSX 打开", code="corrupt_file") from None
    with zf:
        infos = zf.infolist()
        names = {info.filename for info in infos}
        if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
            raise SpreadsheetError(UNSUPPORTED_FORMAT + "（压缩包不是 Excel 工作簿）", code="unsupported_format")
        if len(infos) > max_members:
            raise SpreadsheetError(f"文件解压后过大：包含 {len(infos)} 个部件，超过上限 {max_members}",
                                   code="zip_bomb")
        total = 0
        for info in infos:
            total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > 1024 * 1024 and ratio > max_ratio:
                raise SpreadsheetError("文件解压后过大：压缩比异常，疑似压缩炸弹", code="zip_bomb")
        if total > max_uncompressed:
            raise SpreadsheetError(f"文件解压后过大：超过上限 {_human_size(max_uncompressed)}", code="zip_bomb")
        if any(info.flag_bits & 0x1 for info in infos):
            raise SpreadsheetError(UNSUPPORTED_FORMAT + "（文件已加密）", code="unsupported_format")

        import defusedxml.ElementTree as SafeET
        from defusedxml import DefusedXmlException

        try:
            content_types = SafeET.fromstring(zf.read("[Content_Types].xml"), forbid_dtd=True)
        except DefusedXmlException:
            raise SpreadsheetError("文件包含不安全的 XML 声明（DTD/实体），已拒绝", code="unsafe_xml") from None
        except Exception:
            raise SpreadsheetError("文件已损坏：无法作为 XLSX 打开", code="corrupt_file") from None
        declared = " ".join(el.get("ContentType", "") for el in content_types.iter()).lower()
        if "macroenabled" in declared or any(n.lower().endswith("vbaproject.bin") for n in names):
            raise SpreadsheetError(UNSUPPORTED_FORMAT + "（含宏的工作簿请另存为 .xlsx）", code="unsupported_format")
        if "sheet.binary" in declared:
            raise SpreadsheetError(UNSUPPORTED_FORMAT + "（二进制工作簿 .xlsb 请另存为 .xlsx）",
                                   code="unsupported_format")

        try:
            for info in infos:
                if not info.is_dir() and _member_declares_dtd(zf, info):
                    raise SpreadsheetError("文件包含不安全的 XML 声明（DTD/实体），已拒绝", code="unsafe_xml")
        except SpreadsheetError:
            raise
        except Exception:
            raise SpreadsheetError("文件已损坏：无法作为 XLSX 打开", code="corrupt_file") from None


def _clean_cell(value: Any) -> Any:
    """Strip strings (empty → None) and undo our own ``'`` formula guard, so exports re-import as they were."""
    if isinstance(value, str):
        value = value.strip()
        if len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r\0":
            value = value[1:].strip()
        return value or None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _header_text(value: Any) -> str:
    """Return a header cell as stripped text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date() if value.time() == time(0) else value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class _TableBuilder:
    """Collects rows after the header and enforces the caps; shared by the CSV and XLSX readers."""

    def __init__(self, fmt: str, max_rows: int, max_columns: int):
        self.fmt = fmt
        self.max_rows = max_rows
        self.max_columns = max_columns
        self.headers: Optional[list[str]] = None
        self.positions: list[int] = []
        self.rows: list[tuple[int, dict[str, Any]]] = []
        self.problems: list[tuple[int, str, Any, str]] = []

    def set_headers(self, values: Sequence[Any]) -> None:
        texts = [_header_text(v) for v in values]
        while texts and not texts[-1]:
            texts.pop()
        if len(texts) > self.max_columns:
            raise SpreadsheetError(f"列数过多：最多 {self.max_columns} 列", code="too_many_columns")
        seen: dict[str, int] = {}
        duplicates: list[str] = []
        for text in texts:
            if text:
                seen[text] = seen.get(text, 0) + 1
                if seen[text] == 2:
                    duplicates.append(text)
        if duplicates:
            raise SpreadsheetError("表头重复：" + "、".join(duplicates), code="duplicate_headers",
                                   duplicates=duplicates)
        self.positions = [i for i, t in enumerate(texts) if t]
        self.headers = [texts[i] for i in self.positions]

    def add(self, row_number: int, values: Sequence[Any], *, extra_is_problem: bool) -> None:
        assert self.headers is not None
        record = {h: (_clean_cell(values[i]) if i < len(values) else None)
                  for h, i in zip(self.headers, self.positions)}
        if all(v is None for v in record.values()):
            return
        if len(self.rows) >= self.max_rows:
            raise SpreadsheetError(f"数据行超过上限：最多 {self.max_rows} 行，请拆分文件后上传",
                                   code="too_many_rows", max_rows=self.max_rows)
        width = (self.positions[-1] + 1) if self.positions else 0
        if extra_is_problem:
            extra = [v for v in values[width:] if _clean_cell(v) is not None]
            if extra:
                self.problems.append((row_number, "", "; ".join(str(v) for v in extra),
                                      f"本行比表头多出 {len(extra)} 个值（可能是值里含未加引号的分隔符）"))
        self.rows.append((row_number, record))

    def table(self) -> Table:
        if self.headers is None or not self.rows:
            raise SpreadsheetError("文件没有数据行", code="no_data")
        return Table(headers=self.headers, rows=self.rows, format=self.fmt, problems=self.problems)


def _xlsx_cell_value(cell: Any) -> Any:
    """Return a read-only cell's value; date-formatted midnight datetimes become dates."""
    value = getattr(cell, "value", None)
    if isinstance(value, datetime) and value.time() == time(0):
        fmt = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', "", str(getattr(cell, "number_format", "") or "")).lower()
        if "h" not in fmt and "s" not in fmt:  # a date-only format: the user typed a date
            return value.date()
    return value


def _read_xlsx(data: bytes, *, max_rows: int, max_uncompressed: int, max_columns: int,
               max_members: int, max_ratio: int) -> Table:
    """Read the first worksheet of a checked XLSX with openpyxl (read-only, cached values)."""
    _check_zip(data, max_uncompressed=max_uncompressed, max_members=max_members, max_ratio=max_ratio)
    from openpyxl import load_workbook

    builder = _TableBuilder("xlsx", max_rows, max_columns)
    workbook = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no default style", unsupported extensions: noise for users
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            if not workbook.worksheets:
                raise SpreadsheetError("文件没有数据行：工作簿里没有工作表", code="no_data")
            ws = workbook.worksheets[0]
            if hasattr(ws, "reset_dimensions"):
                ws.reset_dimensions()  # the stored dimension is often wrong; read what is really there
            for row_number, cells in enumerate(ws.iter_rows(min_row=1, max_col=max_columns + 1), start=1):
                values = [_xlsx_cell_value(c) for c in cells]
                if builder.headers is None:
                    if all(_clean_cell(v) is None for v in values):
                        continue
                    if any(_clean_cell(v) is not None for v in values[max_columns:]):
                        raise SpreadsheetError(f"列数过多：最多 {max_columns} 列", code="too_many_columns")
                    builder.set_headers(values[:max_columns])
                    continue
                builder.add(row_number, values, extra_is_problem=False)
    except SpreadsheetError:
        raise
    except Exception:  # openpyxl raises many types on malformed input; the user only needs to know it is bad
        raise SpreadsheetError("文件已损坏：无法作为 XLSX 读取", code="corrupt_file") from None
    finally:
        if workbook is not None:
            workbook.close()
    return builder.table()


# --- CSV -------------------------------------------------------------------------------------------------

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _decode_csv(data: bytes) -> str:
    """Decode CSV bytes: UTF-8 with BOM, UTF-16 with BOM, UTF-8, else GB18030 (all strict)."""
    if data.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8", data[3:])]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = [("utf-16", data)]
    else:
        if b"\x00" in data:
            raise SpreadsheetError(UNSUPPORTED_FORMAT + "（这是二进制文件）", code="unsupported_format")
        candidates = [("utf-8", data), ("gb18030", data)]
    for encoding, payload in candidates:
        try:
            text = payload.decode(encoding)
        except UnicodeDecodeError:
            continue
        controls = len(_CONTROL_CHARS.findall(text))
        if "\x00" in text or controls > max(2, len(text) // 100):
            raise SpreadsheetError(UNSUPPORTED_FORMAT + "（这是二进制文件）", code="unsupported_format")
        return text
    raise SpreadsheetError("无法识别文件编码：请将 CSV 另存为 UTF-8 或 GB18030（GBK）编码后上传",
                           code="bad_encoding")


def _sniff_delimiter(text: str) -> str:
    """Pick the delimiter among ``,`` tab ``;`` that occurs most in the first non-blank line."""
    for line in text.splitlines():
        if line.strip():
            counts = {d: line.count(d) for d in (",", "\t", ";")}
            best = max(counts, key=lambda d: (counts[d], d == ","))
            return best if counts[best] else ","
    return ","


def _read_csv(data: bytes, *, max_rows: int, max_columns: int) -> Table:
    """Read a decoded, delimiter-sniffed CSV into a Table; row numbers count CSV records as Excel does."""
    text = _decode_csv(data)
    if text.lstrip().startswith("<"):
        raise SpreadsheetError(UNSUPPORTED_FORMAT + "（这是网页或 XML 文件）", code="unsupported_format")
    delimiter = _sniff_delimiter(text)
    builder = _TableBuilder("csv", max_rows, max_columns)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    row_number = 0
    try:
        for values in reader:
            row_number += 1
            if builder.headers is None:
                if all(_clean_cell(v) is None for v in values):
                    continue
                builder.set_headers(values)
                continue
            builder.add(row_number, values, extra_is_problem=True)
    except csv.Error as exc:
        raise SpreadsheetError(f"CSV 格式错误（第 {row_number + 1} 行）：{exc}", code="corrupt_file") from None
    return builder.table()


# --- Header mapping --------------------------------------------------------------------------------------

_BRACKETS = str.maketrans({"【": "(", "】": ")", "[": "(", "]": ")", "〔": "(", "〕": ")", "{": "(", "}": ")",
                           "〈": "(", "〉": ")", "<": "(", ">": ")"})
_HEADER_NOISE = re.compile(r"[\s_\-*:：]+")


def normalize_header(text: Any) -> str:
    """Return the comparison key of a header: NFKC, case-folded, brackets unified, spaces/_/-/*/: removed."""
    key = unicodedata.normalize("NFKC", str(text or "")).casefold()
    key = key.translate(_BRACKETS)
    return _HEADER_NOISE.sub("", key)


def map_headers(headers: Sequence[str], columns: Mapping[str, Sequence[str]],
                required: Iterable[str] = (), *, allow_unknown: bool = True) -> dict[str, str]:
    """Return ``{field_key: actual header}``; raise SpreadsheetError naming missing required and unknown headers."""
    alias_to_field: dict[str, str] = {}
    for key, aliases in columns.items():
        for alias in aliases:
            norm = normalize_header(alias)
            if alias_to_field.setdefault(norm, key) != key:
                raise ValueError(f"header alias {alias!r} is given for both {alias_to_field[norm]!r} and {key!r}")
    required = list(required)
    for key in required:
        if key not in columns:
            raise ValueError(f"required field {key!r} is not in columns")

    found: dict[str, str] = {}
    unknown: list[str] = []
    duplicated: list[str] = []
    for header in headers:
        key = alias_to_field.get(normalize_header(header))
        if key is None:
            unknown.append(header)
        elif key in found:
            duplicated.append(f"{found[key]} / {header}")
        else:
            found[key] = header

    def label(key: str) -> str:
        return columns[key][0] if columns[key] else key

    missing = [label(key) for key in required if key not in found]
    parts: list[str] = []
    if missing:
        parts.append("缺少必填列：" + "、".join(missing))
    if duplicated:
        parts.append("同一列出现多次：" + "、".join(duplicated))
    if unknown and (parts or not allow_unknown):
        parts.append("无法识别的列：" + "、".join(unknown))
    if parts:
        raise SpreadsheetError("；".join(parts), code="bad_headers", missing=missing, unknown=unknown,
                               duplicated=duplicated)
    return found


# --- Cell parsers ----------------------------------------------------------------------------------------

_EXCEL_EPOCH = datetime(1899, 12, 30)
_SERIAL_MIN, _SERIAL_MAX = 20000, 80000
_DATE_RE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?")
_COMPACT_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_TIME_RE = re.compile(r"(?:T|\s+)?(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2})(?:\.(\d{1,6}))?)?\s*秒?")


def _norm_text(value: Any) -> str:
    """NFKC-normalise and strip a cell (full-width digits and punctuation become ASCII)."""
    return unicodedata.normalize("NFKC", str(value)).strip()


def _serial_to_datetime(value: Any) -> Optional[datetime]:
    """Return the datetime of an Excel (1900 system) serial number in the accepted range, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    number = float(value)
    if not math.isfinite(number) or not (_SERIAL_MIN <= number <= _SERIAL_MAX):
        return None
    result = _EXCEL_EPOCH + timedelta(days=number)
    return result.replace(microsecond=0) + timedelta(seconds=round(result.microsecond / 1e6))


def _make_date(y: str, m: str, d: str, raw: Any) -> date:
    """Build a date, with a Chinese message for impossible dates."""
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        raise ValueError(f"日期不存在：{raw}") from None


def _parse_date_prefix(text: str, raw: Any) -> tuple[date, str]:
    """Parse the date at the start of ``text``; return it and the rest of the text."""
    match = _DATE_RE.match(text)
    if match:
        return _make_date(*match.groups(), raw), text[match.end():]
    match = _COMPACT_DATE_RE.match(text)
    if match and (len(text) == 8 or not text[8].isdigit()):
        return _make_date(*match.groups(), raw), text[match.end():]
    raise ValueError(f"无法识别的日期：{raw}（请使用 YYYY-MM-DD）")


def _numeric_text(text: str) -> Optional[float]:
    """Return a plain number written as text, else None."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    return None


def parse_date_cell(value: Any) -> date:
    """Parse a ledger date: date/datetime, YYYY-MM-DD, YYYY/M/D, YYYY.M.D, YYYY年M月D日, YYYYMMDD, Excel serial."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("日期不能为空")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    serial = _serial_to_datetime(value)
    if serial is not None:
        return serial.date()
    if not isinstance(value, str):
        raise ValueError(f"无法识别的日期：{value}（请使用 YYYY-MM-DD）")
    text = _norm_text(value)
    number = _numeric_text(text)
    if number is not None and len(text.split(".")[0]) == 5:
        serial = _serial_to_datetime(number)
        if serial is not None:
            return serial.date()
    result, rest = _parse_date_prefix(text, value)
    rest = rest.strip()
    if rest and not (_TIME_RE.fullmatch(rest) or re.fullmatch(r"[T\s]?00:00(:00)?(\.0+)?", rest)):
        raise ValueError(f"无法识别的日期：{value}（请使用 YYYY-MM-DD）")
    return result


def parse_datetime_cell(value: Any) -> datetime:
    """Parse a naive local datetime: datetime/date, 'YYYY-MM-DD HH:MM[:SS]' (also / . 年月日), Excel serial."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("时间不能为空")
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    serial = _serial_to_datetime(value)
    if serial is not None:
        return serial
    if not isinstance(value, str):
        raise ValueError(f"无法识别的时间：{value}（请使用 YYYY-MM-DD HH:MM）")
    text = _norm_text(value)
    number = _numeric_text(text)
    if number is not None and len(text.split(".")[0]) == 5:
        serial = _serial_to_datetime(number)
        if serial is not None:
            return serial
    try:
        day, rest = _parse_date_prefix(text, value)
    except ValueError as exc:
        if "不存在" in str(exc):
            raise
        raise ValueError(f"无法识别的时间：{value}（请使用 YYYY-MM-DD HH:MM）") from None
    rest = rest.strip()
    if not rest:
        return datetime(day.year, day.month, day.day)
    match = _TIME_RE.fullmatch(rest)
    if not match:
        raise ValueError(f"无法识别的时间：{value}（请使用 YYYY-MM-DD HH:MM）")
    hour, minute, second, fraction = match.groups()
    try:
        return datetime(day.year, day.month, day.day, int(hour), int(minute), int(second or 0),
                        int((fraction or "0").ljust(6, "0")))
    except ValueError:
        raise ValueError(f"时间不存在：{value}") from None


_DECIMAL_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_GROUPED_DECIMAL_RE = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


def parse_decimal_cell(value: Any) -> Decimal:
    """Parse an exact number: int/float/Decimal, '1,234.5', full-width digits; refuse NaN, inf and text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("数值不能为空")
    if isinstance(value, bool):
        raise ValueError(f"不是有效的数字：{value}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"不是有效的数字：{value}")
        result = Decimal(repr(value))  # shortest repr: 0.1 stays 0.1, not 0.1000000000000000055…
    elif isinstance(value, str):
        text = _norm_text(value).replace("\u3002", ".")
        text = re.sub(r"\s+", "", text)
        if _GROUPED_DECIMAL_RE.fullmatch(text):
            text = text.replace(",", "")
        elif not _DECIMAL_RE.fullmatch(text):
            raise ValueError(f"不是有效的数字：{value}")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"不是有效的数字：{value}") from None
    else:
        raise ValueError(f"不是有效的数字：{value}")
    if not result.is_finite():
        raise ValueError(f"不是有效的数字：{value}")
    return result


_TRUE_WORDS = frozenset({"是", "y", "yes", "true", "t", "1", "√", "✓", "✔", "对", "有"})
_FALSE_WORDS = frozenset({"否", "n", "no", "false", "f", "0", "×", "✗", "✘", "不是", "无"})


def parse_bool_cell(value: Any) -> bool:
    """Parse a yes/no cell: 是/否, Y/N, yes/no, true/false, 1/0, √/×; anything else raises ValueError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)) and value in (0, 1):
        return bool(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("请填写“是”或“否”")
    text = _norm_text(value).casefold()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise ValueError(f"无法识别的是/否：{value}（请填写“是”或“否”）")


# --- Error report ----------------------------------------------------------------------------------------

ERROR_REPORT_HEADERS = ("行号", "列", "值", "原因")


def error_report_csv(errors: Iterable[Sequence[Any]]) -> bytes:
    """Return a UTF-8 (BOM) CSV of ``(row_number, column, value, reason)`` import errors, neutralised."""
    headers = list(ERROR_REPORT_HEADERS)
    rows = ({h: v for h, v in zip(headers, error)} for error in errors)
    return b"".join(generate_csv(headers, rows))
