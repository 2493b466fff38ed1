"""The firm list: combinable filters (GET params), sorting and keyset pagination, shared by page and export.

Every filter on relationship data (willingness, need, owner, last visit, never reached, campaign, bank, branch,
dates) looks at the viewer's own bank's rows only; the bureau and the admin look across banks (or at one bank
with ``bank``). Pagination is keyset ("after this row"), so page 1,000 costs what page 1 costs.
"""
from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import MultiDict

from crm.core.formatting import today_local
from crm.core.validators import CREDIT_CODE_CHARSET
from crm.events.models import Registration
from crm.extensions import db
from crm.firms.models import HIGH_TECH_VALID_YEARS, Firm, FirmAccount, SmeTier
from crm.orgs.models import Campaign, Organisation
from crm.visits.models import Visit

#: sort key → (column label, descending?)
SORTS = {
    "name": ("name", False),
    "-name": ("name", True),
    "code": ("credit_code", False),
    "-created": ("id", True),
    "created": ("id", False),
    "-last_visit": ("last_visit", True),
}
DEFAULT_SORT = "name"
NEVER = date(1900, 1, 1)


def _int(value) -> Optional[int]:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if 0 <= n < 2**62 else None


def _date(value) -> Optional[date]:
    try:
        return date.fromisoformat(str(value).strip())
    except (TypeError, ValueError):
        return None


@dataclass
class FirmFilters:
    """The list's filters, parsed leniently from query args (a bad value is ignored, never a 500)."""

    q: str = ""
    industry: str = ""
    area: str = ""
    street: Optional[int] = None
    high_tech: bool = False
    sme_tier: str = ""
    willingness: str = ""
    need: bool = False
    owner: Optional[int] = None
    stale_days: Optional[int] = None
    never: bool = False
    campaign: Optional[int] = None
    bank: Optional[int] = None
    branch: Optional[int] = None
    date_from: Optional[date] = None
    date_to: Optional[date] = None
    sort: str = DEFAULT_SORT
    after: Optional[str] = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: MultiDict) -> "FirmFilters":
        tier = (args.get("sme_tier") or "").strip()
        sort = (args.get("sort") or DEFAULT_SORT).strip()
        return cls(
            q=(args.get("q") or "").strip()[:100],
            industry=(args.get("industry") or "").strip()[:20],
            area=(args.get("area") or "").strip()[:20],
            street=_int(args.get("street")),
            high_tech=args.get("high_tech") == "1",
            sme_tier=tier if tier in {t.value for t in SmeTier} else "",
            willingness=(args.get("willingness") or "").strip()[:30],
            need=args.get("need") == "1",
            owner=_int(args.get("owner")),
            stale_days=_int(args.get("stale_days")),
            never=args.get("never") == "1",
            campaign=_int(args.get("campaign")),
            bank=_int(args.get("bank")),
            branch=_int(args.get("branch")),
            date_from=_date(args.get("from")),
            date_to=_date(args.get("to")),
            sort=sort if sort in SORTS else DEFAULT_SORT,
            after=(args.get("after") or None),
        )

    def query_args(self, **override) -> dict:
        """The filters as URL args (for export links and the next page)."""
        args = {
            "q": self.q, "industry": self.industry, "area": self.area, "street": self.street,
            "high_tech": "1" if self.high_tech else None, "sme_tier": self.sme_tier, "willingness": self.willingness,
            "need": "1" if self.need else None, "owner": self.owner, "stale_days": self.stale_days,
            "never": "1" if self.never else None, "campaign": self.campaign, "bank": self.bank,
            "branch": self.branch, "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "sort": self.sort if self.sort != DEFAULT_SORT else None,
        }
        args.update(override)
        return {k: v for k, v in args.items() if v not in (None, "", False)}

    @property
    def active(self) -> bool:
        return bool(self.query_args(sort=None))


def high_tech_valid_since(today: date) -> date:
    """The earliest certificate issue date still valid today (a certificate lasts three years)."""
    probe = Firm()
    try:
        start = today.replace(year=today.year - HIGH_TECH_VALID_YEARS)
    except ValueError:
        start = today.replace(year=today.year - HIGH_TECH_VALID_YEARS, day=28)
    for offset in range(-3, 4):
        candidate = start + timedelta(days=offset)
        probe.high_tech_issued_on = candidate
        if probe.high_tech_expires_on >= today:
            return candidate
    return start  # pragma: no cover


def viewer_bank_id(user, filters: FirmFilters) -> Optional[int]:
    """The bank whose relationship data the filters look at: the user's own, or the bureau's chosen bank."""
    if user.bank_id is not None:
        return user.bank_id
    return filters.bank


def name_or_code_contains(term: str) -> sa.ColumnElement[bool]:
    """A firm whose name, or credit code, contains ``term`` (wildcards taken literally; the code upper-cased).

    A credit code holds only the 31 characters of ``CREDIT_CODE_CHARSET`` (every code is validated before it is
    stored), so a term with any other character (a Chinese name, a space) is not looked for in the codes. When no
    index serves the term (always on SQLite; on PostgreSQL a term shorter than a trigram, such as two Chinese
    characters), every firm is compared: 17.6 → 8.6 ms for 100,000 firms on SQLite; on PostgreSQL the name's
    comparison is nearly all of it (about 14 ms either way)."""
    code = term.upper()
    if set(code) <= _CODE_CHARACTERS:
        return sa.or_(Firm.name.contains(term, autoescape=True), Firm.credit_code.contains(code, autoescape=True))
    return Firm.name.contains(term, autoescape=True)


_CODE_CHARACTERS = frozenset(CREDIT_CODE_CHARSET)


def filtered_firms(filters: FirmFilters, user) -> sa.Select:
    """SELECT Firm with every filter applied (no order, no limit); labels are loaded in bulk, not per row."""
    today = today_local()
    bank_id = viewer_bank_id(user, filters)
    stmt = sa.select(Firm).options(selectinload(Firm.area), selectinload(Firm.street), selectinload(Firm.industry))
    if filters.q:
        stmt = stmt.where(name_or_code_contains(filters.q))
    if filters.industry:
        stmt = stmt.where(Firm.industry_code == filters.industry)
    if filters.area:
        stmt = stmt.where(Firm.area_code == filters.area)
    if filters.street is not None:
        stmt = stmt.where(Firm.street_id == filters.street)
    if filters.high_tech:
        stmt = stmt.where(Firm.high_tech_issued_on.is_not(None), Firm.high_tech_issued_on <= today,
                          Firm.high_tech_issued_on >= high_tech_valid_since(today))
    if filters.sme_tier:
        stmt = stmt.where(Firm.sme_tier == SmeTier(filters.sme_tier))

    account_conds = []
    if filters.willingness:
        account_conds.append(FirmAccount.willingness_code == filters.willingness)
    if filters.need:
        account_conds.append(FirmAccount.open_need_fen > 0)
    if filters.owner is not None:
        account_conds.append(FirmAccount.owner_id == filters.owner)
    if filters.stale_days is not None:
        account_conds.append(FirmAccount.last_visit_on < today - timedelta(days=min(filters.stale_days, 36500)))
    if filters.branch is not None:
        account_conds.append(FirmAccount.branch_id == filters.branch)
    if account_conds or (filters.bank is not None and user.bank_id is None):
        sub = sa.select(FirmAccount.id).where(FirmAccount.firm_id == Firm.id, *account_conds)
        if bank_id is not None:
            sub = sub.where(FirmAccount.bank_id == bank_id)
        stmt = stmt.where(sub.exists())

    if _visit_filters(filters):
        sub = sa.select(Visit.id).where(Visit.firm_id == Firm.id, Visit.is_deleted.is_(False))
        if bank_id is not None:
            sub = sub.where(Visit.bank_id == bank_id)
        if filters.campaign is not None:
            sub = sub.where(Visit.campaign_id == filters.campaign)
        if filters.date_from is not None:
            sub = sub.where(Visit.visited_on >= filters.date_from)
        if filters.date_to is not None:
            sub = sub.where(Visit.visited_on <= filters.date_to)
        stmt = stmt.where(sub.exists())

    if filters.never:
        visits = sa.select(Visit.id).where(Visit.firm_id == Firm.id, Visit.is_deleted.is_(False))
        regs = sa.select(Registration.id).where(Registration.firm_id == Firm.id, Registration.checked_in_at.is_not(None))
        if bank_id is not None:
            visits = visits.where(Visit.bank_id == bank_id)
        stmt = stmt.where(~visits.exists(), ~regs.exists())
    return stmt


def _visit_filters(filters: FirmFilters) -> bool:
    return any(v is not None for v in (filters.campaign, filters.date_from, filters.date_to))


def _last_visit_expr(user, filters):
    bank_id = viewer_bank_id(user, filters)
    if bank_id is None:
        return None
    return sa.func.coalesce(
        sa.select(FirmAccount.last_visit_on).where(FirmAccount.firm_id == Firm.id, FirmAccount.bank_id == bank_id)
        .scalar_subquery(), NEVER)


def _sort_expr(filters: FirmFilters, user):
    key, desc = SORTS[filters.sort]
    if key == "last_visit":
        expr = _last_visit_expr(user, filters)
        if expr is None:
            return Firm.id, True, "id"
        return expr, desc, key
    return getattr(Firm, key), desc, key


def encode_cursor(values: list) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def keyset_page(stmt: sa.Select, per_page: int, cursor_of: Callable[[Any], list]) -> tuple[list, Optional[str]]:
    """One page of the ORM entities ``stmt`` selects (ordered, the "after the cursor" condition applied): the
    first ``per_page`` of them, and the cursor after the last when there are more (one row more is read to
    know). ``cursor_of(entity)`` gives the cursor's values, the sort columns' then the id."""
    items = list(db.session.scalars(stmt.limit(per_page + 1)))
    if len(items) <= per_page:
        return items, None
    items = items[:per_page]
    return items, encode_cursor(cursor_of(items[-1]))


def _is_row_id(value: Any) -> bool:
    """A cursor's id: an integer a database column can hold (a larger one made SQLite raise OverflowError)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2 ** 63


def decode_cursor(cursor: Optional[str], key: str) -> Optional[tuple[Any, int]]:
    """The (sort value, id) of a cursor; None when missing or malformed (the list restarts at page 1). ``key`` is
    the firm list's sort key, or ``"date"`` for the other lists' (a date, an id) cursors."""
    if not cursor or len(cursor) > 400:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, ident = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not _is_row_id(ident):
        return None
    if key == "id":
        return (ident, ident)
    if key in ("last_visit", "date"):
        d = _date(value)
        return (d, ident) if d else None
    if not isinstance(value, str):
        return None
    return value, ident


@dataclass
class FirmPage:
    items: list
    next_cursor: Optional[str]
    is_first: bool


def ordered(stmt: sa.Select, filters: FirmFilters, user) -> sa.Select:
    expr, desc, key = _sort_expr(filters, user)
    if filters.q and key in ("name", "credit_code") and db.session.get_bind().dialect.name == "sqlite":
        # A search (LIKE '%term%') cannot use an index, and SQLite cannot estimate how many rows match: walking
        # ix_firm_name in order and fetching every row until 50 match costs ~14 ms per 10,000 firms when the term
        # is rare. Ordering by the same value as an expression makes it scan the table and sort the matches
        # instead (~2 ms per 10,000 firms whatever the term). PostgreSQL plans this itself (trigram index).
        expr = expr.op("||")(sa.literal_column("''"))
    if desc:
        return stmt.order_by(expr.desc(), Firm.id.desc())
    return stmt.order_by(expr.asc(), Firm.id.asc())


def firm_page(filters: FirmFilters, user, per_page: int = 50) -> FirmPage:
    """One page of firms after the cursor, ordered by the sort key then id (keyset: no OFFSET)."""
    expr, desc, key = _sort_expr(filters, user)
    stmt = filtered_firms(filters, user)
    cursor = decode_cursor(filters.after, key)
    if cursor is not None:
        value, ident = cursor
        # "after (value, id)" written as a range on the sort column plus a tie-break, which both engines
        # turn into an index seek (ix_firm_name, the credit code's unique index); the equivalent
        # "v > :v OR (v = :v AND id > :id)" makes them walk the index from the first row (page 1,000 of a
        # 100,000-firm list read 50,000 index entries)
        if key == "id":
            stmt = stmt.where(Firm.id < ident if desc else Firm.id > ident)
        elif desc:
            stmt = stmt.where(expr <= value, sa.or_(expr < value, Firm.id < ident))
        else:
            stmt = stmt.where(expr >= value, sa.or_(expr > value, Firm.id > ident))
    stmt = ordered(stmt, filters, user).limit(per_page + 1)
    if key == "last_visit":
        stmt = stmt.add_columns(expr.label("sort_value"))
        rows = db.session.execute(stmt).all()
        items = [r[0] for r in rows]
        values = [r[1] for r in rows]
    else:
        items = list(db.session.scalars(stmt))
        values = [getattr(f, "id" if key == "id" else key) for f in items]
    next_cursor = None
    if len(items) > per_page:
        items = items[:per_page]
        last_value = values[per_page - 1]
        if isinstance(last_value, date):
            last_value = last_value.isoformat()
        next_cursor = encode_cursor([last_value, items[-1].id])
    return FirmPage(items=items, next_cursor=next_cursor, is_first=cursor is None)


def accounts_for(firms, bank_id: Optional[int]) -> dict[int, FirmAccount]:
    """The viewer bank's accounts for the given firms, by firm id."""
    if bank_id is None or not firms:
        return {}
    rows = db.session.scalars(sa.select(FirmAccount).where(
        FirmAccount.bank_id == bank_id, FirmAccount.firm_id.in_([f.id for f in firms]))
        .options(selectinload(FirmAccount.owner)))
    return {a.firm_id: a for a in rows}


@functools.cache
def _campaigns(of_bank: bool) -> sa.Select:
    """All campaigns, or those an organisation or its bank takes part in: built once (crm.core.scoping keeps the
    scoped forms)."""
    stmt = sa.select(Campaign).order_by(Campaign.start_on.desc(), Campaign.id.desc())
    if of_bank:
        from crm.orgs.models import campaign_org

        stmt = stmt.where(Campaign.id.in_(sa.select(campaign_org.c.campaign_id).where(
            campaign_org.c.org_id.in_([sa.bindparam("bank_id"), sa.bindparam("org_id")]))))
    return stmt


def campaigns_for(user) -> list[Campaign]:
    """Campaigns the user's organisation (or its bank) takes part in; the bureau and admin see all."""
    if user.bank_id is None:
        return list(db.session.scalars(_campaigns(False)))
    return list(db.session.scalars(_campaigns(True), {"bank_id": user.bank_id, "org_id": user.org_id}))


def default_campaign(user, on: Optional[date] = None, campaigns: Optional[list[Campaign]] = None) -> Optional[Campaign]:
    """The campaign running on a day (the latest-starting one), else the most recent one; of ``campaigns`` when
    the caller has read :func:`campaigns_for` already."""
    on = on or today_local()
    camps = campaigns_for(user) if campaigns is None else campaigns
    for c in camps:
        if c.start_on <= on <= c.end_on:
            return c
    return camps[0] if camps else None


_BRANCHES = sa.select(Organisation).where(Organisation.parent_id == sa.bindparam("bank_id")).order_by(Organisation.code)


def branches_of(bank_id: Optional[int]) -> list[Organisation]:
    if bank_id is None:
        return []
    return list(db.session.scalars(_BRANCHES, {"bank_id": bank_id}))


def banks() -> list[Organisation]:
    from crm.orgs.models import OrgKind

    return list(db.session.scalars(sa.select(Organisation).where(
        Organisation.kind == OrgKind.BANK, Organisation.parent_id.is_(None)).order_by(Organisation.code)))
