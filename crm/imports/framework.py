"""The ledger (台账) import framework: one engine for every ledger, a registry, a row helper.

A *ledger* is declared once with :class:`Ledger` and registered with :func:`register_ledger`; the web UI
(``/imports``) and the CLI (``flask --app wsgi crm import KIND FILE --campaign CODE --as USERNAME [--dry-run]
[--valid-only]``) both iterate the registry, so a new ledger needs no view, template or command code.

Declaring a ledger (see ``crm/firms/ledger.py`` and ``crm/visits/ledger.py`` for complete examples)::

    from crm.imports.framework import Ledger, RowError, register_ledger

    def parse(row, ctx):                      # row: Row; ctx: ImportContext
        code = row.credit_code("credit_code")  # helpers record a precise error and return None
        day = row.date("held_on", required=True)
        if row.errors:
            return None
        return {"code": code, "day": day}      # any typed value: a dict, a dataclass ...

    def apply(parsed, ctx):                   # create/update through the domain services; never commit
        ...                                   # raise RowError(field, reason) for a refusal found only now,
                                              # BEFORE changing anything (rows are not savepointed)
        return "created"                      # or "updated" / "unchanged" (re-importing changes nothing)

    register_ledger(Ledger(
        kind="events", label=_l("Events"),
        columns={"code": ("活动编号", "event code"), "held_on": ("举办日期", "date")},  # first alias = header
        required=("code", "held_on"),
        parse_row=parse, key=lambda p: p["code"], apply=apply,
        roles=frozenset({"rm", "bank_manager"}), needs_campaign=True, needs_bank=True,
        error_fields={"held_on": "held_on"},   # service field name -> ledger field, to place RowErrors
    ))

Import the module from the domain's ``views.py`` so it registers when the blueprint loads.

Large files (10,000 rows) must not cost a query per row. Two optional hooks make a ledger's statement count
independent of the number of rows (beyond one round per chunk of :data:`CHUNK_SIZE` rows):

* ``prefetch(values, ctx)`` is called once, before any row is parsed, with every row's cells by field key; load
  what ``parse_row`` looks up (firms by credit code, users, code lists) in a few ``IN`` queries
  (:func:`chunked`) into ``ctx.cache``.
* ``apply_batch(rows, ctx)`` replaces ``apply`` for a chunk of parsed rows and returns, for each row in order,
  its outcome or a :class:`RowError` (a refused row must change nothing); write in bulk there
  (:func:`insert_rows` for the chunk's new rows, :class:`AuditBatch` for their audit entries) and look up
  with :func:`in_values`. In a preview (``ctx.dry_run``), which is rolled back, it may skip the writes when its
  checks and look-ups already give every row's outcome.

The engine, :func:`run_import`, reads the upload with :func:`crm.core.spreadsheets.read_table` (XLSX or
CSV in UTF-8, UTF-8 with BOM or GB18030; size, row, zip-bomb and XXE limits), maps headers with
:func:`crm.core.spreadsheets.map_headers` (Chinese headers, English aliases), parses every row, refuses
duplicate natural keys within the file, then applies the valid rows in the caller's transaction and counts
created / updated / unchanged. Preview (and ``--dry-run``) always rolls back. Commit is all or nothing: a file
with any rejected row commits nothing unless ``valid_only`` is set. Every rejection names its row number (as
Excel shows it), its column header and the reason; :meth:`Report.error_csv` gives the downloadable file.

Rows carry the importing user's bank and the chosen campaign (:class:`ImportContext`); services run under the
user's tenant scope, so an import can never touch another bank's rows.
"""
from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Callable, Hashable, Iterable, Mapping, Optional, Sequence

import sqlalchemy as sa

from crm.core import spreadsheets
from crm.core.spreadsheets import SpreadsheetError
from crm.imports.bulk import in_values, insert_rows

__all__ = ["Ledger", "Row", "RowError", "ImportContext", "Problem", "Report", "register_ledger", "get_ledger",
           "ledgers", "ledgers_for", "run_import", "OUTCOMES", "CHUNK_SIZE", "chunked", "AuditBatch", "insert_rows",
           "in_values"]

OUTCOMES = ("created", "updated", "unchanged")
#: rows per batch of look-ups and writes (well under SQLite's 32,766 bound parameters per statement)
CHUNK_SIZE = 1000


def chunked(items: Iterable[Any], size: int = CHUNK_SIZE) -> Iterable[list]:
    """Successive lists of at most ``size`` items (for ``IN (...)`` look-ups and bulk writes)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


LIST_SPLIT = re.compile(r"[;；、,，\s]+")


@functools.lru_cache(maxsize=20_000)
def normalized_credit_code(text: str) -> str:
    """:func:`crm.core.validators.normalize_credit_code`, remembered: a file's codes are normalised by the
    prefetch, then again by its rows. Only results are kept; a refused code raises anew, in the current locale."""
    from crm.core.validators import normalize_credit_code

    return normalize_credit_code(text)


class RowError(Exception):
    """Raised by a ledger's ``apply`` for a row refused by the domain (e.g. a date outside the campaign)."""

    def __init__(self, field_name: Optional[str], reason: str, value: Any = None):
        super().__init__(reason)
        self.field = field_name
        self.reason = reason
        self.value = value


@dataclass
class ImportContext:
    """Who imports, for which bank and campaign; ``cache`` is free for ledgers (look-ups per file)."""

    user: Any
    campaign: Any = None
    dry_run: bool = False
    cache: dict = field(default_factory=dict)

    @property
    def bank_id(self) -> Optional[int]:
        return getattr(self.user, "bank_id", None)

    def prefetch_firms(self, values: Iterable[Mapping[str, Any]], key: str = "credit_code", *,
                       whole_file: bool = True) -> dict:
        """Read every firm the file names by credit code (one ``IN`` query per chunk), for :meth:`firm`.

        ``whole_file=False`` reads the firms of some rows only (a ledger called without the framework's prefetch):
        a code missing from the cache then still means "look it up", not "no such firm"."""
        import sqlalchemy as sa

        from crm.core.validators import ValidationError
        from crm.extensions import db
        from crm.firms.models import Firm

        codes = set()
        for v in values:
            raw = v.get(key)
            if raw is None:
                continue
            try:
                codes.add(normalized_credit_code(str(raw)))
            except ValidationError:
                continue
        firms = self.cache.setdefault("firms", {})
        for batch in chunked(sorted(codes)):
            for firm in db.session.scalars(sa.select(Firm).where(in_values(Firm.credit_code, batch))):
                firms[firm.credit_code] = firm
        if whole_file:
            self.cache["firms_complete"] = True
        return firms

    def prefetch_users(self, usernames: Iterable[str]) -> dict:
        """Read the users the file names (normalised usernames; one ``IN`` query per chunk) into
        ``cache["users"]`` (a name that matches nobody maps to None)."""
        import sqlalchemy as sa

        from crm.auth.models import User
        from crm.extensions import db

        users = self.cache.setdefault("users", {})
        for batch in chunked(sorted(set(usernames))):
            found = {u.username: u for u in db.session.scalars(sa.select(User).where(in_values(User.username, batch)))}
            for name in batch:
                users[name] = found.get(name)
        return users

    def firm(self, code: str):
        """The firm with this (normalised) credit code: from :meth:`prefetch_firms`, else one query."""
        if self.cache.get("firms_complete"):
            return self.cache["firms"].get(code)
        from crm.firms.services import find_firm_by_code

        return find_firm_by_code(code)


@dataclass
class Problem:
    """One rejection: Excel row number (0 for the whole file), column header, the value and the reason."""

    row: int
    column: str
    value: str
    reason: str


@dataclass(frozen=True)
class Ledger:
    """A ledger's declaration; see the module docstring."""

    kind: str
    label: Any
    #: field key -> header aliases; the first alias is the canonical (Chinese) header
    columns: Mapping[str, Sequence[str]]
    required: Sequence[str]
    #: (Row, ImportContext) -> typed row, or None when the row recorded errors
    parse_row: Callable[["Row", ImportContext], Any]
    #: typed row -> natural key (duplicates inside one file are refused)
    key: Callable[[Any], Hashable]
    #: (typed row, ImportContext) -> "created" | "updated" | "unchanged"; may raise RowError
    apply: Callable[[Any, ImportContext], str]
    roles: frozenset = frozenset({"rm", "bank_manager"})
    needs_campaign: bool = True
    #: the importing user must belong to a bank (rows carry the bank)
    needs_bank: bool = True
    description: Any = ""
    #: service field names (as in RowError / FirmError.field) -> ledger field keys
    error_fields: Mapping[str, str] = field(default_factory=dict)
    #: an example row for the template download, by field key
    example: Mapping[str, Any] = field(default_factory=dict)
    #: optional: (every row's values by field key, ImportContext) -> None; bulk look-ups into ctx.cache
    prefetch: Optional[Callable[[list[Mapping[str, Any]], ImportContext], None]] = None
    #: optional: (a chunk of typed rows, ImportContext) -> [outcome or RowError per row]; replaces ``apply``
    apply_batch: Optional[Callable[[list[Any], ImportContext], list]] = None

    def header(self, field_key: Optional[str]) -> str:
        if not field_key:
            return ""
        key = self.error_fields.get(field_key, field_key)
        aliases = self.columns.get(key)
        return aliases[0] if aliases else ""

    @property
    def headers(self) -> list[str]:
        return [aliases[0] for aliases in self.columns.values()]


_REGISTRY: dict[str, Ledger] = {}


def register_ledger(ledger: Ledger) -> Ledger:
    """Add a ledger to the registry (idempotent for the same kind)."""
    _REGISTRY[ledger.kind] = ledger
    return ledger


def get_ledger(kind: str) -> Optional[Ledger]:
    return _REGISTRY.get(kind)


def ledgers() -> list[Ledger]:
    return list(_REGISTRY.values())


def ledgers_for(user) -> list[Ledger]:
    """The ledgers a user may import."""
    role = str(getattr(user, "role", ""))
    return [lg for lg in _REGISTRY.values() if role in lg.roles and (not lg.needs_bank or user.bank_id is not None)]


class AuditBatch:
    """A chunk's audit entries, written with one multi-row INSERT (:func:`insert_rows`).

    The fields common to the batch (user, ip) come from an entry made by :func:`crm.core.audit.record` itself
    (never added); each row then gets what ``record`` would give it: the object's table, id and bank (or the
    user's bank) and its snapshot, with :data:`crm.core.audit.SECRET_COLUMNS` left out and mobiles masked.
    """

    #: model -> [(attribute key, column key, is a mobile)]: the columns a snapshot holds, worked out once per model
    _columns: dict = {}
    #: json.dumps(..., ensure_ascii=False, sort_keys=True) without building an encoder for every entry
    _json = None

    def __init__(self, user, *, dry_run: bool = False) -> None:
        from crm.core import audit
        from crm.extensions import db

        #: a preview rolls back: its entries are neither built nor written
        self.dry_run = dry_run

        template = audit.record("import", None, user=user, flush=False)
        db.session.expunge(template)
        self.user_id, self.ip = template.user_id, template.ip
        self.user_bank_id = getattr(user, "bank_id", None)
        self.rows: list[dict] = []

    @classmethod
    def _snapshot_columns(cls, model) -> list:
        columns = cls._columns.get(model)
        if columns is None:
            from crm.core import audit

            columns = cls._columns[model] = [
                (prop.key, prop.columns[0].key, prop.key in audit.MOBILE_COLUMNS)
                for prop in sa.inspect(model).column_attrs if prop.key not in audit.SECRET_COLUMNS]
        return columns

    @classmethod
    def snapshot(cls, obj) -> dict:
        """Exactly :func:`crm.core.audit.snapshot` (column values, no secrets, masked mobiles), with the column
        list worked out once per model."""
        columns = cls._snapshot_columns(type(obj))
        return cls._snapshot(columns, [getattr(obj, prop_key) for prop_key, _c, _m in columns])

    @classmethod
    def snapshot_values(cls, model, values: Mapping[str, Any]) -> dict:
        """The snapshot of a row of ``model`` from its column values (a row completed by :func:`insert_rows`):
        what :func:`crm.core.audit.snapshot` gives for the object once loaded."""
        columns = cls._snapshot_columns(model)
        return cls._snapshot(columns, [values[col_key] for _p, col_key, _m in columns])

    @staticmethod
    def _snapshot(columns: list, values: list) -> dict:
        from crm.core.audit import _jsonable
        from crm.core.validators import mask_mobile

        out = {}
        for (prop_key, _col_key, is_mobile), value in zip(columns, values):
            if is_mobile and value:
                value = mask_mobile(value)
            out[prop_key] = value if value is None or type(value) in _PLAIN_JSON else _jsonable(value)
        return out

    def add(self, action: str, obj, *, before: Optional[dict] = None, after: Optional[dict] = None) -> None:
        if self.dry_run:
            return
        self._add(action, type(obj).__tablename__, getattr(obj, "id", None), getattr(obj, "bank_id", None),
                  before, after)

    def _add(self, action: str, object_type: str, object_id, bank_id, before: Optional[dict],
             after: Optional[dict]) -> None:
        encode = AuditBatch._json
        if encode is None:
            import json

            encode = AuditBatch._json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
        self.rows.append({
            "user_id": self.user_id, "bank_id": self.user_bank_id if bank_id is None else bank_id, "ip": self.ip,
            "action": action, "object_type": object_type, "object_id": object_id,
            "before": encode(before) if before is not None else None,
            "after": encode(after) if after is not None else None,
            "detail": "",
        })

    def create(self, obj) -> None:
        if not self.dry_run:
            self.add("create", obj, after=self.snapshot(obj))

    def create_values(self, model, values: Mapping[str, Any]) -> None:
        """The ``create`` entry of a row inserted by :func:`insert_rows` (``values`` holds every column and the
        id): the same entry :meth:`create` writes for the object."""
        if not self.dry_run:
            self._add("create", model.__tablename__, values["id"], values.get("bank_id"), None,
                      self.snapshot_values(model, values))

    def write(self) -> None:
        from crm.core.models import AuditEntry

        if self.rows:
            insert_rows(AuditEntry, self.rows)
            self.rows = []


#: value types :func:`crm.core.audit._jsonable` leaves as they are (an enum member is an ``str`` too, but not one
#: of these types exactly)
_PLAIN_JSON = frozenset({str, int, float, bool})


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class Row:
    """One data row: typed getters that record a precise error (column header + reason) and return None."""

    def __init__(self, number: int, values: Mapping[str, Any], headers: Mapping[str, str], ledger: Ledger):
        self.number = number
        self.values = values
        self.headers = headers
        self.ledger = ledger
        self.errors: list[Problem] = []

    def header(self, key: str) -> str:
        return self.headers.get(key) or self.ledger.header(key)

    def error(self, key: Optional[str], reason: str, value: Any = None) -> None:
        if key is not None and value is None:
            value = self.values.get(key)
        self.errors.append(Problem(self.number, self.header(key) if key else "", _text(value), reason))

    def raw(self, key: str) -> Any:
        return self.values.get(key)

    def present(self, key: str) -> bool:
        value = self.values.get(key)
        return value is not None and not (isinstance(value, str) and not value.strip())

    def _missing(self, key: str, required: bool) -> bool:
        if self.present(key):
            return False
        if required:
            self.error(key, "必填项为空")
        return True

    def text(self, key: str, *, required: bool = False, max_length: Optional[int] = None) -> Optional[str]:
        if self._missing(key, required):
            return None
        value = self.values[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        if max_length is not None and len(text) > max_length:
            self.error(key, f"内容过长：最多 {max_length} 个字符")
            return None
        return text

    def date(self, key: str, *, required: bool = False) -> Optional[date]:
        if self._missing(key, required):
            return None
        try:
            return spreadsheets.parse_date_cell(self.values[key])
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def decimal(self, key: str, *, required: bool = False, minimum: Optional[Decimal] = Decimal(0)) -> Optional[Decimal]:
        if self._missing(key, required):
            return None
        try:
            value = spreadsheets.parse_decimal_cell(self.values[key])
        except ValueError as exc:
            self.error(key, str(exc))
            return None
        if minimum is not None and value < minimum:
            self.error(key, f"不能小于 {minimum}")
            return None
        return value

    def integer(self, key: str, *, required: bool = False, minimum: int = 0, maximum: int = 10**9) -> Optional[int]:
        raw = self.values.get(key)
        if type(raw) is int or (type(raw) is str and raw.isascii() and raw.isdigit()):
            value = int(raw)  # the usual cell, plain digits: what the decimal parsing below gives, without it
        else:
            value = self.decimal(key, required=required, minimum=None)
            if value is None:
                return None
            if value != value.to_integral_value():
                self.error(key, "应为整数")
                return None
        if not (minimum <= value <= maximum):
            self.error(key, f"应在 {minimum} 到 {maximum} 之间")
            return None
        return int(value)

    def wan_to_fen(self, key: str, *, required: bool = False) -> Optional[int]:
        """An amount in 万元, exact, as integer fen."""
        from crm.core.formatting import wan_to_fen

        value = self.decimal(key, required=required)
        if value is None:
            return None
        try:
            return wan_to_fen(value)
        except ValueError:
            self.error(key, "金额的小数位过多（以万元计最多 6 位小数）")
            return None

    def boolean(self, key: str, *, required: bool = False) -> Optional[bool]:
        if self._missing(key, required):
            return None
        try:
            return spreadsheets.parse_bool_cell(self.values[key])
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def credit_code(self, key: str, *, required: bool = True) -> Optional[str]:
        from crm.core.validators import ValidationError

        if self._missing(key, required):
            return None
        try:
            return normalized_credit_code(str(self.values[key]))
        except ValidationError as exc:
            self.error(key, str(exc))
            return None

    def mobile(self, key: str, *, required: bool = False) -> Optional[str]:
        from crm.core.validators import ValidationError, normalize_mobile

        if self._missing(key, required):
            return None
        value = self.values[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(int(value))
        try:
            return normalize_mobile(str(value))
        except ValidationError as exc:
            self.error(key, str(exc))
            return None

    def items(self, key: str) -> list[str]:
        """A list cell (separated by ; 、 , or spaces)."""
        if not self.present(key):
            return []
        return self.split_items(self.values[key])

    @staticmethod
    def split_items(value: Any) -> list[str]:
        """The items of a list cell's value (for prefetching before the rows are parsed)."""
        return [p for p in LIST_SPLIT.split(str(value).strip()) if p]


@dataclass
class Report:
    """What an import did (or would do): counts and every rejection."""

    kind: str
    filename: str = ""
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    file_error: str = ""
    committed: bool = False
    dry_run: bool = True
    valid_only: bool = False

    @property
    def rejected(self) -> int:
        """Rejected rows (a file-level error rejects the file, counted as every row)."""
        if self.file_error:
            return self.total_rows
        return len({p.row for p in self.problems})

    @property
    def ok(self) -> bool:
        return not self.file_error and not self.problems

    def error_rows(self) -> list[tuple]:
        rows = [(p.row or "", p.column, p.value, p.reason) for p in self.problems]
        if self.file_error:
            rows.insert(0, ("", "", "", self.file_error))
        return rows

    def error_csv(self) -> bytes:
        return spreadsheets.error_report_csv(self.error_rows())

    def summary_line(self) -> str:
        return (f"{self.kind}: {self.total_rows} 行；新增 {self.created}，更新 {self.updated}，"
                f"无变化 {self.unchanged}，拒绝 {self.rejected}")

    def text_report(self) -> str:
        lines = [self.summary_line()]
        if self.file_error:
            lines.append(f"文件错误：{self.file_error}")
        for p in self.problems:
            lines.append(f"第 {p.row} 行\t{p.column}\t{p.value}\t{p.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Report":
        data = dict(data)
        data["problems"] = [Problem(**p) for p in data.get("problems", [])]
        return cls(**data)


def _sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.row, p.column))


def run_import(ledger: Ledger, data: bytes, filename: str, ctx: ImportContext, *, commit: bool = False,
               valid_only: bool = False, max_rows: Optional[int] = None,
               max_bytes: Optional[int] = None) -> Report:
    """Read, check and apply one upload in the current transaction; commit only when asked and allowed.

    Preview and dry runs apply the rows (so the counts come from the real services) and roll back; a ledger's
    ``apply_batch`` may skip its writes then (``ctx.dry_run``) when the checks and look-ups give every outcome.
    With ``commit``, the transaction is committed when no row was rejected, or when ``valid_only`` is set
    (then only the valid rows are kept); otherwise everything is rolled back.
    """
    from flask import current_app

    from crm.core import audit
    from crm.core.db import generic_plans
    from crm.extensions import db

    cfg = current_app.config
    report = Report(kind=ledger.kind, filename=filename, dry_run=not commit, valid_only=valid_only)
    ctx.dry_run = ctx.dry_run or not commit  # ledgers may skip work a rollback discards anyway (writes, audit)
    try:
        table = spreadsheets.read_table(
            data, filename, max_rows=max_rows or cfg.get("IMPORT_MAX_ROWS", 10_000),
            max_bytes=max_bytes or cfg.get("IMPORT_MAX_BYTES", 10 * 1024 * 1024))
        mapping = spreadsheets.map_headers(table.headers, ledger.columns, ledger.required)
    except SpreadsheetError as exc:
        report.file_error = str(exc)
        return report
    report.total_rows = len(table.rows)
    generic_plans(db.session)  # rows looked up and written by key, thousands of times: plan each statement once
    for row_number, column, value, reason in table.problems:
        report.problems.append(Problem(row_number, column, _text(value), reason))

    parsed_rows: list[tuple[int, Any]] = []
    seen: dict[Hashable, int] = {}
    all_values = [{key: record.get(header) for key, header in mapping.items()} for _n, record in table.rows]
    if ledger.prefetch is not None:
        ledger.prefetch(all_values, ctx)
    for (row_number, _record), values in zip(table.rows, all_values):
        row = Row(row_number, values, mapping, ledger)
        parsed = ledger.parse_row(row, ctx)
        if row.errors or parsed is None:
            report.problems.extend(row.errors or [Problem(row_number, "", "", "无法识别的行")])
            continue
        key = ledger.key(parsed)
        if key in seen:
            first_key_field = ledger.required[0] if ledger.required else None
            report.problems.append(Problem(row_number, row.header(first_key_field) if first_key_field else "",
                                           _text(row.raw(first_key_field)) if first_key_field else "",
                                           f"与第 {seen[key]} 行重复（同一条记录出现两次）"))
            continue
        seen[key] = row_number
        parsed_rows.append((row_number, parsed))

    bad_rows = {p.row for p in report.problems}
    todo = [(n, parsed) for n, parsed in parsed_rows if n not in bad_rows]
    try:
        for batch in chunked(todo):
            if ledger.apply_batch is not None:
                outcomes = ledger.apply_batch([parsed for _n, parsed in batch], ctx)
                if len(outcomes) != len(batch):
                    raise ValueError(f"ledger {ledger.kind} returned {len(outcomes)} outcomes for {len(batch)} rows")
            else:
                outcomes = []
                for _n, parsed in batch:
                    try:
                        outcomes.append(ledger.apply(parsed, ctx))
                    except RowError as exc:
                        outcomes.append(exc)
            for (row_number, _parsed), outcome in zip(batch, outcomes):
                if isinstance(outcome, RowError):
                    report.problems.append(Problem(row_number, ledger.header(outcome.field), _text(outcome.value),
                                                   outcome.reason))
                    continue
                if outcome not in OUTCOMES:
                    raise ValueError(f"ledger {ledger.kind} returned {outcome!r}")
                setattr(report, outcome, getattr(report, outcome) + 1)
    except Exception:
        db.session.rollback()
        current_app.logger.exception("import of %s failed", ledger.kind)
        report.file_error = "导入时发生内部错误，未写入任何数据。请检查文件后重试，或联系管理员。"
        report.created = report.updated = report.unchanged = 0
        return report
    report.problems = _sort_problems(report.problems)
    if commit and (not report.problems or valid_only):
        audit.record("import.commit", None, object_type="import", user=ctx.user,
                     detail=f"{ledger.kind} {filename[:100]} " + report.summary_line()[:300],
                     after={"kind": ledger.kind, "created": report.created, "updated": report.updated,
                            "unchanged": report.unchanged, "rejected": report.rejected,
                            "campaign": getattr(ctx.campaign, "code", None)})
        db.session.commit()
        report.committed = True
    else:
        db.session.rollback()
    return report
