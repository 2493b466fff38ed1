"""Every campaign number, computed one way (DOMAIN.md "The numbers") from the raw records.

Public interface (everything else here is private):

- :class:`MetricFilter`: campaign, bank, branch, industry, area (district), street and date range.
- :func:`compute_metrics` → :class:`MetricsResult`: the totals (``METRIC_KEYS`` plus the funnel helpers) and
  the requested breakdowns (``industry``, ``district``, ``street``, ``bank``, ``branch``, ``month``).
- :func:`records_statement` / :func:`count_records`: the records behind a number, built from the very same
  statement the number aggregates, so a drill-down list always has as many rows as the number says.
- :func:`set_backend`: a faster implementation can replace :class:`SqlBackend` behind the same interface (issue 8:
  ``crm.dashboard.snapshots`` caches whole results, ``crm.dashboard.fastsql`` computes the misses with cheaper
  statements); :class:`SqlBackend` stays as the reference the exactness tests compare them against.

Access: every statement runs through the scoped session (``crm.core.scoping``), and when the viewer is a bank
user the bank filter is also forced to their bank explicitly, so a total never includes a record the viewer
cannot open. Queries: a fixed number of grouped aggregate statements per breakdown, never one per row.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Optional, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.sql.util import ClauseAdapter

from crm.auth.models import User
from crm.core.formatting import fen_to_wan
from crm.core.models import Area, CreditProduct, HolidayOverride, Industry, Street
from crm.core.scoping import current_scope
from crm.core.workdays import SLA_TIERS, workdays_between
from crm.credit.models import APPROVED_STAGES, DECIDED_STAGES, CreditApplication, Pledge
from crm.dashboard.definitions import (
    AMOUNT, BP, FUNNEL_KEYS, METRIC_BY_KEY, METRIC_KEYS, METRICS, RATE,
)
from crm.events.models import Event, EventStatus, Registration, event_industry, event_organiser, event_staff
from crm.extensions import db
from crm.firms.models import Firm
from crm.orgs.models import Campaign, Organisation, OrgKind
from crm.visits.models import Visit, visit_companion

__all__ = [
    "DIMENSIONS", "API_DIMENSIONS", "PAGE_DIMENSIONS", "page_dimensions", "METRIC_KEYS", "ALL_KEYS", "NONE_KEY",
    "MetricFilter", "MetricsResult", "compute_metrics", "records_statement", "count_records", "set_backend",
    "get_backend", "SqlBackend", "campaign_window", "dimension_filter", "ShardSpec", "shard_ranges",
]

#: every breakdown dimension, and those the API and CLI return
DIMENSIONS = ("industry", "district", "street", "bank", "branch", "month")
API_DIMENSIONS = ("industry", "district", "bank", "month")
#: the breakdowns the dashboard page always shows (charts by industry, bank and month; the league table by bank
#: and branch); the others only while their table is the open tab
PAGE_DIMENSIONS = ("industry", "bank", "branch", "month")


def page_dimensions(tab: str) -> tuple[str, ...]:
    """The breakdowns the dashboard page computes when ``tab`` is the open table, in ``DIMENSIONS`` order."""
    return tuple(d for d in DIMENSIONS if d in PAGE_DIMENSIONS or d == tab)


ALL_KEYS = tuple(m.key for m in METRICS)
#: the breakdown key of records without a value for the dimension (no street, a bank's head office, ...)
NONE_KEY = "_none"


@dataclass(frozen=True)
class MetricFilter:
    """What to count: one campaign, narrowed by organisation, firm attributes and dates (all optional)."""

    campaign_id: int
    bank_id: Optional[int] = None
    branch_id: Optional[int] = None
    industry_code: Optional[str] = None
    area_code: Optional[str] = None
    street_id: Optional[int] = None
    date_from: Optional[date] = None
    date_to: Optional[date] = None

    def replace(self, **changes) -> "MetricFilter":
        return dataclasses.replace(self, **changes)


@dataclass
class MetricsResult:
    """Totals and breakdowns; amounts are exact ``Decimal`` 万元, rates ``Decimal`` (or None when undefined)."""

    filter: MetricFilter
    campaign: Campaign
    window_from: date
    window_to: date
    totals: dict[str, Any]
    breakdowns: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: organisation codes of the bank / branch breakdown keys (ids), used as keys in the JSON document
    codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.totals[key]

    def to_json(self, dims: Iterable[str] = API_DIMENSIONS) -> dict:
        """The API / CLI document: the 17 keys, ``by_<dim>`` objects, and what was counted."""
        out: dict[str, Any] = {
            "campaign": self.campaign.code,
            "window": {"from": self.window_from.isoformat(), "to": self.window_to.isoformat()},
        }
        out.update({k: _json_value(self.totals[k]) for k in METRIC_KEYS})
        for dim in dims:
            groups = self.breakdowns.get(dim, {})
            codes = self.codes.get(dim, {})
            out[f"by_{dim}"] = {
                codes.get(key, key): {"name": self.labels.get(dim, {}).get(key, key),
                      **{k: _json_value(v) for k, v in values.items() if k in METRIC_KEYS}}
                for key, values in groups.items()
            }
        out["funnel"] = {k: self.totals[k] for k in FUNNEL_KEYS}
        out["meta"] = {k: _json_value(v) for k, v in self.meta.items()}
        return out


def _json_value(value: Any) -> Any:
    """Decimals as exact strings (never floats)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


class MetricsBackend(Protocol):
    """Computes raw aggregates for a resolved filter; ``dim`` None gives the totals under key None.

    A backend may also offer ``aggregate_many(ctx, dims) -> {dim: aggregate(ctx, dim)}``, for one view's totals
    and breakdowns at once (:func:`_aggregate_all`), when it can share work between them."""

    def aggregate(self, ctx: "_Ctx", dim: Optional[str]) -> dict[Optional[str], dict[str, Any]]: ...


def _aggregate_all(backend: MetricsBackend, c: "_Ctx", dims: Iterable[Optional[str]]) -> dict:
    """{dim: ``backend.aggregate(c, dim)``} for each of ``dims``, through ``aggregate_many`` when it has one."""
    dims = tuple(dict.fromkeys(dims))
    many = getattr(backend, "aggregate_many", None)
    if many is not None:
        return many(c, dims)
    return {dim: backend.aggregate(c, dim) for dim in dims}


# ---------------------------------------------------------------------------------------------------------
# Resolved filter
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardSpec:
    """Partial results by shard (``crm.dashboard.shards``): firms (and users) are split into contiguous id ranges of
    ``*_width`` ids; a family groups its rows by the shard of its firm (staff: of its user) as well, and keeps only
    the shards listed (all when None)."""

    firm_width: int
    user_width: int
    firm: Optional[tuple[int, ...]] = None
    user: Optional[tuple[int, ...]] = None
    #: with ``user``: the bank users in those shards (the only users staff counts), so the statements look up their
    #: visits by user, never a campaign's visits by date (the planner's choice under a disjunction of id ranges)
    user_ids: Optional[tuple[int, ...]] = None
    #: with ``firm``: only these firms of those shards (their share of the shards' numbers)
    firm_ids: Optional[tuple[int, ...]] = None
    #: with ``firm`` or ``user``: read the shards' rows and count every breakdown from them (a few shards), or False:
    #: one grouped statement per breakdown with the shards' id ranges as conditions (many shards)
    by_rows: bool = True


@dataclass(frozen=True)
class _Ctx:
    """A filter resolved against its campaign and the viewer's scope."""

    campaign_id: int
    start: date
    end: date
    bank_id: Optional[int]
    branch_id: Optional[int]
    industry: Optional[str]
    area: Optional[str]
    street_id: Optional[int]
    empty: bool  #: nothing can match (window empty, or a bank user asked for another bank)
    shards: Optional[ShardSpec] = None  #: partial results by shard; None for whole results (the reference)
    #: the statements find their rows by the ids of a few firms or users they are given (``_event_conds``)
    by_ids: bool = False


def campaign_window(campaign: Campaign, date_from: Optional[date] = None,
                    date_to: Optional[date] = None) -> tuple[date, date]:
    """[campaign.start_on, campaign.end_on] ∩ [from, to]."""
    start = max(campaign.start_on, date_from) if date_from else campaign.start_on
    end = min(campaign.end_on, date_to) if date_to else campaign.end_on
    return start, end


def _resolve(f: MetricFilter, campaign: Campaign) -> _Ctx:
    start, end = campaign_window(campaign, f.date_from, f.date_to)
    bank_id, empty = f.bank_id, start > end
    scope = current_scope()
    if scope.restricted:  # a bank user counts their own bank only, whatever the URL says
        if bank_id is not None and bank_id != scope.bank_id:
            empty = True
        bank_id = scope.bank_id
    return _Ctx(campaign.id, start, end, bank_id, f.branch_id, f.industry_code, f.area_code, f.street_id, empty)


def dimension_filter(f: MetricFilter, dim: str, key: str, window: tuple[date, date]) -> Optional[MetricFilter]:
    """The filter narrowed to one breakdown row (for its links); None when the row cannot be a filter."""
    if key == NONE_KEY:
        return None
    if dim == "industry":
        return f.replace(industry_code=key)
    if dim == "district":
        return f.replace(area_code=key)
    if dim == "street":
        return f.replace(street_id=int(key))
    if dim in ("bank", "branch"):
        return f.replace(**{f"{dim}_id": int(key)})
    if dim == "month":
        first = date.fromisoformat(key + "-01")
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return f.replace(date_from=max(first, window[0]), date_to=min(last, window[1]))
    raise ValueError(dim)


# ---------------------------------------------------------------------------------------------------------
# The record sets (one statement builder each; metrics aggregate them, drill-downs list them)
# ---------------------------------------------------------------------------------------------------------


def _firm_conds(c: _Ctx) -> list:
    conds = []
    if c.industry:
        conds.append(Firm.industry_code == c.industry)
    if c.area:
        conds.append(Firm.area_code == c.area)
    if c.street_id is not None:
        conds.append(Firm.street_id == c.street_id)
    return conds


def _false_if_empty(c: _Ctx) -> list:
    return [sa.false()] if c.empty else []


def _shard_of(c: _Ctx, col, space: str = "firm"):
    """The shard of a firm (``space`` "user": user) id column, when ``c`` asks for partial results; else None."""
    if c.shards is None:
        return None
    return col // (c.shards.firm_width if space == "firm" else c.shards.user_width)


def _few_shards(c: _Ctx) -> bool:
    """Whether ``c`` asks for some shards only (not every shard, not the whole)."""
    return c.shards is not None and (c.shards.firm is not None or c.shards.user is not None)


def _shard_conds(c: _Ctx, col, space: str = "firm") -> list:
    """``col`` within the shards ``c`` asks for (a range condition per run of adjacent shards; none for all)."""
    if c.shards is None:
        return []
    wanted = c.shards.firm if space == "firm" else c.shards.user
    if wanted is None:
        return []
    ids = c.shards.user_ids if space == "user" else c.shards.firm_ids
    if ids is not None:
        return [col.in_(ids)] if ids else [sa.false()]
    return shard_ranges(col, wanted, c.shards.firm_width if space == "firm" else c.shards.user_width)


def shard_ranges(col, shards: Iterable[int], width: int) -> list:
    """``col`` (an id) within these shards of ``width`` ids: one range condition per run of adjacent shards."""
    if not shards:
        return [sa.false()]
    runs: list[list[int]] = []
    for s in sorted(set(shards)):
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return [sa.or_(*(col.between(a * width, (b + 1) * width - 1) for a, b in runs))]


def _bank_org_ids(bank_id: int):
    return sa.select(Organisation.id).where(sa.or_(Organisation.id == bank_id, Organisation.parent_id == bank_id))


def _visit_conds(c: _Ctx) -> list:
    """Visits logged (not deleted) in the window, by visit date: the conditions on the visit row itself."""
    conds = [Visit.campaign_id == c.campaign_id, Visit.is_deleted.is_(False), Visit.visited_on >= c.start,
             Visit.visited_on <= c.end, *_false_if_empty(c), *_shard_conds(c, Visit.firm_id)]
    if c.bank_id is not None:
        conds.append(Visit.bank_id == c.bank_id)
    if c.branch_id is not None:
        conds.append(Visit.branch_id == c.branch_id)
    return conds


def _visits_from(c: _Ctx, *cols) -> sa.Select:
    """Visits logged (not deleted) in the window, by visit date, of firms passing the firm filters."""
    return (sa.select(*cols).select_from(Visit).join(Firm, Firm.id == Visit.firm_id)
            .where(*_visit_conds(c), *_firm_conds(c)))


def _event_conds(c: _Ctx, *, tagged: bool = False) -> list:
    """Held events of the campaign in the window, organised by the bank / branch when filtered, and with
    ``tagged`` tagged with the industry filtered."""
    campaign, held_on = Event.campaign_id, Event.held_on
    per_event = (c.by_ids or _few_shards(c)) and db.session.get_bind().dialect.name == "sqlite"
    if per_event:
        # some shards or ids: the rows are found by firm (or user) id, their events by primary key. SQLite's planner
        # would rather walk the window's events and probe each for the shard (7 ms against 0.6 ms for one shard
        # at scale 1); an expression on a column is not an index key, so it cannot
        campaign, held_on = Event.campaign_id + 0, sa.func.date(Event.held_on, type_=sa.Date)
    return [campaign == c.campaign_id, Event.status == EventStatus.HELD, held_on >= c.start, held_on <= c.end,
            *_false_if_empty(c), *_organised_and_tagged(c, tagged=tagged, per_event=per_event)]


def _organised_and_tagged(c: _Ctx, *, tagged: bool, per_event: bool = False) -> list:
    """Events organised by the bank (or one of its branches) and the branch filtered, and (``tagged``) tagged
    with the industry filtered.

    ``per_event``: each as a correlated ``EXISTS``, looked up for each event the statement reaches. Otherwise as
    ``IN`` the list of those events, which SQLite reads first: every event a bank organised (3 ms at scale 1, for
    one person's few events when a single user shard is recomputed, 0.06 ms by ``EXISTS``).
    """
    def having(link, *conds):
        if per_event:
            return sa.exists().where(link.c.event_id == Event.id, *conds)
        return Event.id.in_(sa.select(link.c.event_id).where(*conds))

    conds = []
    if c.bank_id is not None:
        conds.append(having(event_organiser, event_organiser.c.org_id.in_(_bank_org_ids(c.bank_id))))
    if c.branch_id is not None:
        conds.append(having(event_organiser, event_organiser.c.org_id == c.branch_id))
    if tagged and c.industry:
        conds.append(having(event_industry, event_industry.c.industry_code == c.industry))
    return conds


def _events_from(c: _Ctx, *cols) -> sa.Select:
    """Events held; an industry filter keeps events tagged with it (events have no district or street)."""
    return sa.select(*cols).select_from(Event).where(*_event_conds(c, tagged=True))


def _attendances_from(c: _Ctx, *cols) -> sa.Select:
    """Checked-in registrations at held events, firm filters on the attending firm."""
    return (sa.select(*cols).select_from(Registration)
            .join(Event, Event.id == Registration.event_id)
            .join(Firm, Firm.id == Registration.firm_id)
            .where(Registration.checked_in_at.is_not(None), *_checkin_conds(c), *_firm_conds(c)))


def _checkin_conds(c: _Ctx) -> list:
    """The conditions on a check-in's event (``_event_conds``) and, for partial results, on its firm's shard."""
    return [*_event_conds(c), *_shard_conds(c, Registration.firm_id)]


def _apps_from(c: _Ctx, *cols, date_col, extra: Iterable = ()) -> sa.Select:
    """The campaign's applications whose ``date_col`` is in the window (None: ``extra`` says which), of firms
    passing the firm filters, of the bank and branch filtered."""
    window = [] if date_col is None else [date_col >= c.start, date_col <= c.end]
    conds = [CreditApplication.campaign_id == c.campaign_id, *window,
             *_firm_conds(c), *_false_if_empty(c), *_shard_conds(c, CreditApplication.firm_id), *extra]
    if c.bank_id is not None:
        conds.append(CreditApplication.bank_id == c.bank_id)
    if c.branch_id is not None:
        conds.append(CreditApplication.branch_id == c.branch_id)
    return (sa.select(*cols).select_from(CreditApplication)
            .join(Firm, Firm.id == CreditApplication.firm_id).where(*conds))


def _ip_product_codes():
    return sa.select(CreditProduct.code).where(CreditProduct.is_ip_pledge.is_(True))


def _approved_from(c: _Ctx, *cols, extra: Iterable = ()) -> sa.Select:
    """Applications at an approved stage (approved and beyond), decided in the window."""
    return _apps_from(c, *cols, date_col=CreditApplication.decided_on,
                      extra=[CreditApplication.stage.in_(APPROVED_STAGES), *extra])


def _ip_deals_from(c: _Ctx, *cols) -> sa.Select:
    return _approved_from(c, *cols, extra=[CreditApplication.product_code.in_(_ip_product_codes())])


def _decided_from(c: _Ctx, *cols) -> sa.Select:
    """Applications approved (and beyond) or declined, decided in the window: the SLA's denominator."""
    return _apps_from(c, *cols, date_col=CreditApplication.decided_on,
                      extra=[CreditApplication.stage.in_(DECIDED_STAGES)])


def _disbursed_from(c: _Ctx, *cols) -> sa.Select:
    return _apps_from(c, *cols, date_col=CreditApplication.disbursed_on)


def _applied_from(c: _Ctx, *cols) -> sa.Select:
    return _apps_from(c, *cols, date_col=CreditApplication.accepted_on)


def _bank_user_conds(c: _Ctx) -> list:
    conds = [User.bank_id.is_not(None)]
    if c.bank_id is not None:
        conds.append(User.bank_id == c.bank_id)
    return conds


def _staff_parts(c: _Ctx, visits_from=_visits_from) -> list[tuple[sa.Select, Any, Any]]:
    """(statement selecting user_id, date column, event id column or None) for each way of taking part."""
    rm = (visits_from(c, Visit.rm_id.label("user_id")).join(User, User.id == Visit.rm_id)
          .where(*_bank_user_conds(c), *_shard_conds(c, Visit.rm_id, "user")))
    companion = (visits_from(c, visit_companion.c.user_id.label("user_id"))
                 .join(visit_companion, visit_companion.c.visit_id == Visit.id)
                 .join(User, User.id == visit_companion.c.user_id)
                 .where(*_bank_user_conds(c), *_shard_conds(c, visit_companion.c.user_id, "user")))
    return [(rm, Visit.visited_on, None), (companion, Visit.visited_on, None),
            (_event_staff_from(c), Event.held_on, Event.id)]


def _event_staff_from(c: _Ctx) -> sa.Select:
    """The bank users on the staff of the events held (selecting user_id): one way of taking part."""
    return (_events_from(c, event_staff.c.user_id.label("user_id"))
            .join(event_staff, event_staff.c.event_id == Event.id)
            .join(User, User.id == event_staff.c.user_id)
            .where(*_bank_user_conds(c), *_shard_conds(c, event_staff.c.user_id, "user")))


# ---------------------------------------------------------------------------------------------------------
# Grouping
# ---------------------------------------------------------------------------------------------------------


def _staff_grouped(stmt: sa.Select, date_col, event_col, dim: Optional[str]) -> sa.Select:
    """A part of :func:`_staff_parts` with its group column ``g`` for ``dim`` (none for the totals)."""
    g = None
    if dim == "month":
        g = _month(date_col)
    elif dim == "bank" and event_col is None:
        stmt, g = stmt.where(User.bank_id == Visit.bank_id), Visit.bank_id
    elif dim == "bank":
        organisers, on, g = _event_organisers(event_col, "bank")
        stmt = stmt.join(organisers, sa.and_(on, g == User.bank_id))
    elif dim == "branch" and event_col is None:
        g = Visit.branch_id
    elif dim == "branch":
        organisers, on, g = _event_organisers(event_col, "branch")
        stmt = stmt.outerjoin(organisers, on)
    return stmt.add_columns(g.label("g")) if g is not None else stmt


def _month(col):
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return sa.func.to_char(col, "YYYY-MM")
    return sa.func.strftime("%Y-%m", col)


def _event_organisers(event_col, dim: str):
    """(join, on clause, group column): an event's organising banks ("bank": a branch counts for its bank) or
    branches ("branch"), one row per organiser.

    A join rather than a DISTINCT (event, bank) subquery: every statement grouping by it counts distinct events,
    firms, (event, firm) pairs or users, so an event organised by a bank and its branch (two rows for one bank)
    counts once either way, and the join reads the organisers of the events it keeps instead of every event's
    (a DISTINCT subquery is materialised whole: 15 ms at scale 1, in every statement by bank or branch).
    """
    eo, org = event_organiser.alias(), aliased(Organisation)
    conds = [org.id == eo.c.org_id, org.kind == OrgKind.BANK]
    if dim == "branch":
        conds.append(org.parent_id.is_not(None))
    g = sa.func.coalesce(org.parent_id, org.id) if dim == "bank" else org.id
    return sa.join(eo, org, sa.and_(*conds)), eo.c.event_id == event_col, g


def _group(stmt: sa.Select, dim: Optional[str], *, date_col, bank_col=None, branch_col=None, event_col=None,
           firm: bool = True, industry_event_col=None):
    """Add the grouping column ``g`` for ``dim`` (and any join it needs); returns (statement, expression)."""
    if dim is None:
        return stmt, None
    if dim == "month":
        return stmt, _month(date_col)
    if dim in ("bank", "branch"):
        if event_col is not None:
            organisers, on, g = _event_organisers(event_col, dim)
            return stmt.outerjoin(organisers, on), g
        return stmt, bank_col if dim == "bank" else branch_col
    if dim == "industry" and industry_event_col is not None:
        tag = event_industry.alias()
        return stmt.outerjoin(tag, tag.c.event_id == industry_event_col), tag.c.industry_code
    if not firm:
        raise ValueError(dim)
    return stmt, {"industry": Firm.industry_code, "district": Firm.area_code, "street": Firm.street_id}[dim]


def _grouped_rows(stmt: sa.Select, g, s=None) -> list:
    """Execute ``stmt`` (aggregates only) grouped by ``g`` and the shard ``s``; each row ends with them."""
    for col, label in ((g, "g"), (s, "s")):
        if col is not None:
            stmt = stmt.add_columns(col.label(label)).group_by(col)
    return db.session.execute(stmt).all()


def _grouped_outer(count, sub, g, s=None) -> sa.Select:
    """``SELECT count[, g][, s]`` from ``sub`` grouped by its group column ``g`` and the shard ``s``."""
    outer = sa.select(count)
    for col in (g, s):
        if col is not None:
            outer = outer.add_columns(col).group_by(col)
    return outer.select_from(sub)


def _key(value) -> Optional[str]:
    return NONE_KEY if value is None else str(value)


# ---------------------------------------------------------------------------------------------------------
# The reference backend: grouped aggregate SQL on the raw records
# ---------------------------------------------------------------------------------------------------------

#: the dimensions each family of metrics can be broken down by ("where they make sense")
_FAMILY_DIMS = {
    "visits": set(DIMENSIONS),
    "attendances": set(DIMENSIONS),
    "reached": set(DIMENSIONS),
    "events": {"industry", "bank", "branch", "month"},
    "staff": {"bank", "branch", "month"},
    "approved": set(DIMENSIONS),
    "ip_registered": set(DIMENSIONS),
    "disbursed": set(DIMENSIONS),
    "applied": set(DIMENSIONS),
    "sla": set(DIMENSIONS),
}
_FAMILY_KEYS = {
    "visits": ("visits", "firms_visited", "firms_with_need"),
    "attendances": ("firm_attendances",),
    "reached": ("firms_reached",),
    "events": ("events_held",),
    "staff": ("staff_participating",),
    "approved": ("credit_firms", "credit_firms_high_tech", "credit_amount_wan", "ip_pledge_deals",
                 "ip_pledge_amount_wan", "first_loan_firms", "avg_discount_bp"),
    "ip_registered": ("ip_pledge_registered_amount_wan",),
    "disbursed": ("disbursed_firms", "disbursed_amount_wan"),
    "applied": ("firms_applied",),
    "sla": ("sla_hit_rate",),
}
KEY_FAMILY = {k: fam for fam, keys in _FAMILY_KEYS.items() for k in keys}


def keys_for_dimension(dim: Optional[str]) -> tuple[str, ...]:
    """The metric keys that make sense in a breakdown by ``dim`` (all of them for the totals)."""
    if dim is None:
        return ALL_KEYS
    return tuple(k for k in ALL_KEYS if dim in _FAMILY_DIMS[KEY_FAMILY[k]])


class SqlBackend:
    """Grouped aggregate queries on the raw records: about ten statements per breakdown, none per row."""

    #: how the families select visits and attendances (crm.dashboard.fastsql overrides them)
    visits_from = staticmethod(_visits_from)
    attendances_from = staticmethod(_attendances_from)

    def aggregate(self, c: _Ctx, dim: Optional[str]) -> dict[Optional[str], dict[str, Any]]:
        out: dict[Optional[str], dict[str, Any]] = {}

        for family in _FAMILY_KEYS:
            if dim is not None and dim not in _FAMILY_DIMS[family]:
                continue
            for row in getattr(self, f"_{family}")(c, dim):
                key = None if dim is None else _key(row[1])
                out.setdefault(key, {}).update(row[0])
        return out

    # Each family returns rows of (dict of raw values, group key).

    def _visits(self, c, dim):
        need_firm = sa.case((Visit.need_amount_fen > 0, Visit.firm_id), else_=sa.null())
        stmt = self.visits_from(c, sa.func.count(Visit.id), sa.func.count(sa.distinct(Visit.firm_id)),
                                sa.func.count(sa.distinct(need_firm)))
        stmt, g = _group(stmt, dim, date_col=Visit.visited_on, bank_col=Visit.bank_id, branch_col=Visit.branch_id)
        return [({"visits": r[0], "firms_visited": r[1], "firms_with_need": r[2]}, *r[3:])
                for r in _grouped_rows(stmt, g, _shard_of(c, Visit.firm_id))]

    def _attendances(self, c, dim):
        stmt = self.attendances_from(c, Registration.event_id, Registration.firm_id)
        stmt, g = _group(stmt, dim, date_col=Event.held_on, event_col=Event.id)
        if g is not None:
            stmt = stmt.add_columns(g.label("g"))
        sub = stmt.distinct().subquery()
        outer = _grouped_outer(sa.func.count(), sub, sub.c.g if g is not None else None,
                               _shard_of(c, sub.c.firm_id))
        return [({"firm_attendances": r[0]}, *r[1:]) for r in db.session.execute(outer).all()]

    def _reached(self, c, dim):
        parts = []
        for stmt, date_col, event_col, bank_col, branch_col in (
            (self.visits_from(c, Visit.firm_id.label("firm_id")), Visit.visited_on, None, Visit.bank_id,
             Visit.branch_id),
            (self.attendances_from(c, Registration.firm_id.label("firm_id")), Event.held_on, Event.id, None, None),
        ):
            stmt, g = _group(stmt, dim, date_col=date_col, event_col=event_col, bank_col=bank_col,
                             branch_col=branch_col)
            parts.append(stmt.add_columns(g.label("g")) if g is not None else stmt)
        u = sa.union_all(*parts).subquery()  # the outer COUNT(DISTINCT) removes the repeats
        outer = _grouped_outer(sa.func.count(sa.distinct(u.c.firm_id)), u, u.c.g if dim is not None else None,
                               _shard_of(c, u.c.firm_id))
        return [({"firms_reached": r[0]}, *r[1:]) for r in db.session.execute(outer).all()]

    def _events(self, c, dim):
        stmt = _events_from(c, sa.func.count(sa.distinct(Event.id)))
        stmt, g = _group(stmt, dim, date_col=Event.held_on, event_col=Event.id, firm=False,
                         industry_event_col=Event.id)
        return [({"events_held": r[0]}, *r[1:]) for r in _grouped_rows(stmt, g)]

    def _staff(self, c, dim):
        """Distinct bank users; per bank, the bank's own users in the bank's records; per branch, the branch's records."""
        u = sa.union_all(*self._staff_selects(c, dim)).subquery()  # the outer COUNT(DISTINCT) removes the repeats
        outer = _grouped_outer(sa.func.count(sa.distinct(u.c.user_id)), u, u.c.g if dim is not None else None,
                               _shard_of(c, u.c.user_id, "user"))
        return [({"staff_participating": r[0]}, *r[1:]) for r in db.session.execute(outer).all()]

    def _staff_selects(self, c, dim) -> list[sa.Select]:
        """One statement of (user_id[, g]) per way of taking part (visits, companions, event staff)."""
        return [_staff_grouped(stmt, date_col, event_col, dim)
                for stmt, date_col, event_col in _staff_parts(c, self.visits_from)]

    def _approved(self, c, dim):
        app = CreditApplication
        is_ip = app.product_code.in_(_ip_product_codes())
        discounted = app.discount_bp.is_not(None)
        stmt = _approved_from(
            c,
            sa.func.count(sa.distinct(app.firm_id)),
            sa.func.count(sa.distinct(sa.case((app.high_tech_at_decision.is_(True), app.firm_id)))),
            sa.func.coalesce(sa.func.sum(app.approved_fen), 0),
            sa.func.count(sa.case((is_ip, app.id))),
            sa.func.coalesce(sa.func.sum(sa.case((is_ip, app.approved_fen), else_=0)), 0),
            sa.func.count(sa.distinct(sa.case((app.is_first_loan.is_(True), app.firm_id)))),
            sa.func.coalesce(sa.func.sum(sa.case((discounted, app.approved_fen * app.discount_bp), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((discounted, app.approved_fen), else_=0)), 0),
        )
        stmt, g = _group(stmt, dim, date_col=app.decided_on, bank_col=app.bank_id, branch_col=app.branch_id)
        return [({"credit_firms": r[0], "credit_firms_high_tech": r[1], "_credit_fen": int(r[2]),
                  "ip_pledge_deals": r[3], "_ip_fen": int(r[4]), "first_loan_firms": r[5],
                  "_discount_num": int(r[6]), "_discount_den": int(r[7])}, *r[8:])
                for r in _grouped_rows(stmt, g, _shard_of(c, app.firm_id))]

    def _ip_registered(self, c, dim):
        app = CreditApplication
        stmt = (_ip_deals_from(c, sa.func.coalesce(sa.func.sum(Pledge.secured_fen), 0))
                .join(Pledge, Pledge.application_id == app.id).where(Pledge.registered_on.is_not(None)))
        stmt, g = _group(stmt, dim, date_col=app.decided_on, bank_col=app.bank_id, branch_col=app.branch_id)
        return [({"_ip_registered_fen": int(r[0])}, *r[1:]) for r in _grouped_rows(stmt, g, _shard_of(c, app.firm_id))]

    def _disbursed(self, c, dim):
        app = CreditApplication
        stmt = _disbursed_from(c, sa.func.count(sa.distinct(app.firm_id)),
                               sa.func.coalesce(sa.func.sum(app.disbursed_fen), 0))
        stmt, g = _group(stmt, dim, date_col=app.disbursed_on, bank_col=app.bank_id, branch_col=app.branch_id)
        return [({"disbursed_firms": r[0], "_disbursed_fen": int(r[1])}, *r[2:])
                for r in _grouped_rows(stmt, g, _shard_of(c, app.firm_id))]

    def _applied(self, c, dim):
        app = CreditApplication
        stmt = _applied_from(c, sa.func.count(sa.distinct(app.firm_id)))
        stmt, g = _group(stmt, dim, date_col=app.accepted_on, bank_col=app.bank_id, branch_col=app.branch_id)
        return [({"firms_applied": r[0]}, *r[1:]) for r in _grouped_rows(stmt, g, _shard_of(c, app.firm_id))]

    def _sla(self, c, dim):
        """Decided applications grouped by (accepted, decided, tier): the working days are counted per group."""
        app = CreditApplication
        tier = _tier_days_expr()
        stmt = _decided_from(c, app.accepted_on, app.decided_on, tier.label("tier"), sa.func.count(app.id))
        stmt, g = _group(stmt, dim, date_col=app.decided_on, bank_col=app.bank_id, branch_col=app.branch_id)
        stmt = stmt.group_by(app.accepted_on, app.decided_on, tier)
        shard = _shard_of(c, app.firm_id)
        acc: dict[Any, dict[str, Any]] = {}
        overrides = frozenset(_overrides().items())
        for row in _grouped_rows(stmt, g, shard):
            accepted, decided, tier_days, n = row[:4]
            key = tuple(row[4:])  # (g, s), (g,), (s,) or ()
            count = _workdays(accepted, decided, overrides)
            a = acc.setdefault(key, {"_sla_decided": 0, "_sla_hits": 0, "_calendar_provisional": False})
            a["_sla_decided"] += n
            if count.count <= tier_days:
                a["_sla_hits"] += n
            a["_calendar_provisional"] = a["_calendar_provisional"] or count.provisional
        if g is None and shard is None and not acc:
            acc[()] = {"_sla_decided": 0, "_sla_hits": 0, "_calendar_provisional": False}
        return [(v, *k) for k, v in acc.items()]


@lru_cache(maxsize=32768)
def _workdays(accepted: date, decided: date, overrides: frozenset) -> Any:
    """``workdays_between`` remembered per (accepted, decided, calendar overrides): every breakdown of every view
    asks for the same few thousand pairs, and an edited override is a different key."""
    return workdays_between(accepted, decided, dict(overrides))


def _tier_days_expr():
    whens = [(CreditApplication.requested_fen <= limit, days) for limit, days in SLA_TIERS if limit is not None]
    return sa.case(*whens, else_=SLA_TIERS[-1][1])


def _overrides() -> dict[date, bool]:
    """Admin calendar overrides (one small query; never cached across requests, so edits apply at once)."""
    rows = db.session.execute(sa.select(HolidayOverride.day, HolidayOverride.is_workday)).all()
    return {d: bool(w) for d, w in rows}


_backend: MetricsBackend = SqlBackend()


def set_backend(backend: MetricsBackend) -> MetricsBackend:
    """Swap the implementation (e.g. a roll-up backed one); returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


def get_backend() -> MetricsBackend:
    return _backend


# ---------------------------------------------------------------------------------------------------------
# Finishing: raw sums → public values
# ---------------------------------------------------------------------------------------------------------

_RATE_PLACES = Decimal("0.0001")
_BP_PLACES = Decimal("0.01")


def _finish(raw: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """Public values for ``keys`` from a family's raw numbers (missing families count as zero)."""
    out: dict[str, Any] = {}
    for key in keys:
        kind = METRIC_BY_KEY[key].kind
        if key == "credit_amount_wan":
            out[key] = fen_to_wan(raw.get("_credit_fen", 0))
        elif key == "ip_pledge_amount_wan":
            out[key] = fen_to_wan(raw.get("_ip_fen", 0))
        elif key == "ip_pledge_registered_amount_wan":
            out[key] = fen_to_wan(raw.get("_ip_registered_fen", 0))
        elif key == "disbursed_amount_wan":
            out[key] = fen_to_wan(raw.get("_disbursed_fen", 0))
        elif key == "sla_hit_rate":
            decided = raw.get("_sla_decided", 0)
            out[key] = (Decimal(raw.get("_sla_hits", 0)) / Decimal(decided)).quantize(
                _RATE_PLACES, rounding=ROUND_HALF_UP) if decided else None
        elif key == "avg_discount_bp":
            den = raw.get("_discount_den", 0)
            out[key] = (Decimal(raw.get("_discount_num", 0)) / Decimal(den)).quantize(
                _BP_PLACES, rounding=ROUND_HALF_UP) if den else None
        elif kind in (AMOUNT, RATE, BP):  # pragma: no cover - every non-count key is handled above
            raise KeyError(key)
        else:
            out[key] = int(raw.get(key, 0) or 0)
    return out


class Names:
    """The display names of breakdown keys, the industries' order and the banks' codes, from the reference tables
    (industries, districts, streets, organisations), each read whole, once, when first asked (``tables``: a place a
    backend keeps them between views, see ``ShardedBackend.known``; the tables are a few hundred rows)."""

    def __init__(self, tables: Optional[dict] = None):
        self.tables = {} if tables is None else tables

    def _table(self, name: str) -> dict:
        table = self.tables.get(name)
        if table is None:
            stmt = {
                "industry": sa.select(Industry.code, Industry.name_zh, Industry.name_en)
                .order_by(Industry.sort_order, Industry.code),
                "district": sa.select(Area.code, Area.name),
                "street": sa.select(sa.cast(Street.id, sa.String), Street.name),
                "organisation": sa.select(sa.cast(Organisation.id, sa.String), Organisation.name,
                                          Organisation.short_name, Organisation.code),
            }[name]
            table = self.tables[name] = {key: tuple(rest) for key, *rest in db.session.execute(stmt)}
        return table

    def labels(self, dim: str, keys: Iterable[str]) -> dict[str, str]:
        """Display names of breakdown keys (a key with none is its own label)."""
        zh = _lang_is_zh()
        labels: dict[str, str] = {NONE_KEY: "未指定" if zh else "Unspecified"}
        table = {"industry": "industry", "district": "district", "street": "street", "bank": "organisation",
                 "branch": "organisation"}.get(dim)
        rows = self._table(table) if table else {}
        for k in keys:
            if k == NONE_KEY:
                continue
            row = rows.get(k)
            if row is None:
                labels[k] = k
            elif dim == "industry":
                labels[k] = row[0] if zh else row[1]
            elif dim in ("bank", "branch"):
                labels[k] = row[1] or row[0]
            else:
                labels[k] = row[0]
        return labels

    def sort_keys(self, dim: str, groups: dict[str, dict], labels: dict[str, str]) -> list[str]:
        if dim == "month":
            return sorted(groups, key=lambda k: (k == NONE_KEY, k))
        if dim == "industry":
            order = {code: i for i, code in enumerate(self._table("industry"))}
            return sorted(groups, key=lambda k: (k == NONE_KEY, order.get(k, 999), k))
        return sorted(groups, key=lambda k: (k == NONE_KEY, labels.get(k, k)))

    def codes(self, keys: Iterable[str]) -> dict[str, str]:
        """The organisation codes of bank or branch keys."""
        rows = self._table("organisation")
        return {k: rows[k][2] for k in keys if k in rows}


def _lang_is_zh() -> bool:
    from crm.dashboard.definitions import _lang

    return _lang(None) != "en"


def compute_metrics(f: MetricFilter, breakdowns: Iterable[str] = (), *,
                    backend: Optional[MetricsBackend] = None) -> MetricsResult:
    """Every metric for ``f`` as the current viewer may see it, plus the requested breakdowns.

    :raise LookupError: when the campaign does not exist.
    """
    backend = backend or _backend
    whole = getattr(backend, "compute_metrics", None)  # a backend caching whole results (crm.dashboard.snapshots)
    if whole is not None:
        return whole(f, tuple(breakdowns), _compute_metrics)
    return _compute_metrics(f, breakdowns, backend)


def _compute_metrics(f: MetricFilter, breakdowns: Iterable[str], backend: MetricsBackend) -> MetricsResult:
    """:func:`compute_metrics` with an explicit backend, nothing cached."""
    campaign = db.session.get(Campaign, f.campaign_id)
    if campaign is None:
        raise LookupError("campaign")
    c = _resolve(f, campaign)
    breakdowns = tuple(breakdowns)
    for dim in breakdowns:
        if dim not in DIMENSIONS:
            raise ValueError(dim)
    raws = _aggregate_all(backend, c, (None, *breakdowns))
    raw_totals = raws[None].get(None, {})
    totals = _finish(raw_totals, ALL_KEYS)
    result = MetricsResult(f, campaign, c.start, c.end, totals,
                           meta={"sla_decided": raw_totals.get("_sla_decided", 0),
                                 "sla_hits": raw_totals.get("_sla_hits", 0),
                                 "calendar_provisional": bool(raw_totals.get("_calendar_provisional", False))})
    names = getattr(backend, "names", Names)()  # a backend may keep the reference tables between views
    for dim in breakdowns:
        keys = keys_for_dimension(dim)
        raw = raws[dim]
        labels = names.labels(dim, raw.keys())
        groups = {k: _finish(v, keys) for k, v in raw.items()}
        result.breakdowns[dim] = {k: groups[k] for k in names.sort_keys(dim, groups, labels)}
        result.labels[dim] = labels
        if dim in ("bank", "branch"):
            result.codes[dim] = names.codes(k for k in raw if k not in (None, NONE_KEY))
    return result


# ---------------------------------------------------------------------------------------------------------
# Drill-down: the records behind a number
# ---------------------------------------------------------------------------------------------------------


#: A drill-down page of firms is found by walking the firms in name order and testing each for a record
#: (``EXISTS``) when that walk is expected to pass at most this many firms, by engine. See :func:`_firms_in`.
#: PostgreSQL's probes are index-only look-ups (about 7 us a firm passed at scale 1, against 0.1 ms on SQLite):
#: walking 2,900 firms for a bank's firms reached in one industry took 24 ms where collecting them took 82 ms,
#: walking 11,000 for one street's took 80 ms where collecting took 31 ms.
EXISTS_WALK = {"sqlite": 500, "postgresql": 5_000}
_INNER_FIRM = Firm.__table__.alias("firm_of_record")


def _walk_firms(rows: Optional[int], total: Optional[int]) -> bool:
    """Whether to list firms with ``EXISTS`` (:func:`_firms_in`) when reading ``rows`` of ``total`` firms: when the
    walk is expected to pass at most ``EXISTS_WALK`` firms, ``rows`` x firms / ``total``, the firms spread evenly
    over the names and counted by the largest id (one index look-up).

    The same rule on both engines (with each engine's ``EXISTS_WALK``). PostgreSQL's planner would choose for
    itself between probing each firm walked and hashing every firm id, but it costs the probes for every firm the
    scan could pass, not for the page the ``LIMIT`` reads: for the firms reached in a campaign year at scale 1 it
    hashed 375,000 ids (74 ms) to show 100 firms it found by walking 116 (0.8 ms). So the walk's probes are kept
    probes (:func:`_has_record`).
    """
    if rows is None or not total:
        return False
    limit = EXISTS_WALK.get(db.session.get_bind().dialect.name, EXISTS_WALK["sqlite"])
    return rows * (db.session.scalar(sa.select(sa.func.max(Firm.id))) or 0) <= limit * total


def _firms_in(*firm_ids: sa.Select, walk: bool = False) -> sa.Select:
    """The firms with a row in any of ``firm_ids`` (statements of one firm-id column), by name.

    Two statements that list the same rows in the same order, and cost differently. ``IN`` computes the whole set
    of firm ids, then sorts those firms: 0.13 s (SQLite) and 0.23 s (PostgreSQL) for the 85,000 firms reached in a
    campaign year at scale 1, whatever the page. ``EXISTS`` (``walk``) walks the firm-name index and tests each firm
    until the page is full: 0.2 ms for that first page on SQLite; about 0.1 ms a firm for a narrow filter's records.
    """
    if walk:
        return sa.select(Firm).where(sa.or_(*[_has_record(s) for s in firm_ids])).order_by(Firm.name, Firm.id)
    if len(firm_ids) == 1:
        ids = firm_ids[0]
    else:
        u = sa.union(*firm_ids).subquery()
        ids = sa.select(*u.c)
    return sa.select(Firm).where(Firm.id.in_(ids)).order_by(Firm.name, Firm.id)


def _has_record(firm_ids: sa.Select) -> sa.Exists:
    """``EXISTS`` a row of ``firm_ids`` for the firm of the enclosing statement. The records' own join to ``firm``
    (a firm filter) is renamed first: unrenamed, ``firm.id`` inside would name that inner firm, not the outer one.

    On PostgreSQL the subquery carries ``OFFSET 0``: without it the planner may turn the correlated ``EXISTS`` into
    ``firm.id = ANY (every firm id with a record)``, hashed once (see :func:`_walk_firms`); an ``OFFSET`` keeps the
    subquery as it is written, a look-up per firm walked."""
    inner = ClauseAdapter(_INNER_FIRM).traverse(firm_ids)
    probe = inner.where(inner.selected_columns[0] == Firm.id)
    if db.session.get_bind().dialect.name == "postgresql":
        probe = probe.offset(0)
    return sa.exists(probe)


def records_statement(key: str, f: MetricFilter, *, rows: Optional[int] = None,
                      total: Optional[int] = None) -> tuple[str, sa.Select]:
    """(kind, statement) listing exactly the records the metric ``key`` counts for ``f``.

    ``rows``: the statement will be read up to this row only (a page: ``page * per_page``), and ``total``: the
    metric's value; with both, a list of firms takes the form that is cheaper for that page (:func:`_firms_in`).
    Without them, the form that is cheaper for the whole list.

    Kinds: ``firms`` (Firm rows), ``visits`` (Visit), ``events`` (Event), ``attendances`` (rows of event_id,
    firm_id, people), ``staff`` (User), ``applications`` (CreditApplication).
    :raise KeyError: for an unknown metric; :raise LookupError: for an unknown campaign.
    """
    definition = METRIC_BY_KEY[key]
    walk = definition.records == "firms" and _walk_firms(rows, total)
    campaign = db.session.get(Campaign, f.campaign_id)
    if campaign is None:
        raise LookupError("campaign")
    c = _resolve(f, campaign)
    app = CreditApplication
    order_apps = (app.decided_on, app.id)
    # the active backend's way of selecting visits and check-ins (crm.dashboard.fastsql's skips the join to firm
    # when no firm filter needs it: the same rows, 0.8 -> 0.2 s for the firms reached at scale 1)
    backend = get_backend()
    selectors = getattr(backend, "inner", backend)
    visits_from = getattr(selectors, "visits_from", _visits_from)
    attendances_from = getattr(selectors, "attendances_from", _attendances_from)
    if key == "firms_reached":
        stmt = _firms_in(visits_from(c, Visit.firm_id.label("firm_id")),
                         attendances_from(c, Registration.firm_id.label("firm_id")), walk=walk)
    elif key == "firms_visited":
        stmt = _firms_in(visits_from(c, Visit.firm_id), walk=walk)
    elif key == "firms_with_need":
        stmt = _firms_in(visits_from(c, Visit.firm_id).where(Visit.need_amount_fen > 0), walk=walk)
    elif key == "visits":
        stmt = visits_from(c, Visit).order_by(Visit.visited_on, Visit.id)
    elif key == "events_held":
        stmt = _events_from(c, Event).order_by(Event.held_on, Event.id)
    elif key == "firm_attendances":
        stmt = (attendances_from(c, Registration.event_id, Registration.firm_id,
                                 sa.func.count(Registration.id).label("people"))
                .group_by(Registration.event_id, Registration.firm_id)
                .order_by(sa.func.min(Event.held_on), Registration.event_id, Registration.firm_id))
    elif key == "staff_participating":
        u = sa.union(*[s for s, _d, _e in _staff_parts(c, visits_from)]).subquery()
        stmt = sa.select(User).where(User.id.in_(sa.select(u.c.user_id))).order_by(User.bank_id, User.username)
    elif key == "credit_firms":
        stmt = _firms_in(_approved_from(c, app.firm_id), walk=walk)
    elif key == "credit_firms_high_tech":
        stmt = _firms_in(_approved_from(c, app.firm_id, extra=[app.high_tech_at_decision.is_(True)]), walk=walk)
    elif key == "first_loan_firms":
        stmt = _firms_in(_approved_from(c, app.firm_id, extra=[app.is_first_loan.is_(True)]), walk=walk)
    elif key == "credit_amount_wan":
        stmt = _approved_from(c, app).order_by(*order_apps)
    elif key == "avg_discount_bp":
        stmt = _approved_from(c, app, extra=[app.discount_bp.is_not(None)]).order_by(*order_apps)
    elif key in ("ip_pledge_deals", "ip_pledge_amount_wan", "ip_pledge_registered_amount_wan"):
        stmt = _ip_deals_from(c, app).order_by(*order_apps)
    elif key == "disbursed_firms":
        stmt = _firms_in(_disbursed_from(c, app.firm_id), walk=walk)
    elif key == "disbursed_amount_wan":
        stmt = _disbursed_from(c, app).order_by(app.disbursed_on, app.id)
    elif key == "firms_applied":
        stmt = _firms_in(_applied_from(c, app.firm_id), walk=walk)
    elif key == "sla_hit_rate":
        stmt = _decided_from(c, app).order_by(*order_apps)
    else:  # pragma: no cover - METRIC_BY_KEY already refused unknown keys
        raise KeyError(key)
    return definition.records, stmt


def count_records(stmt: sa.Select) -> int:
    """The number of rows a drill-down statement lists."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0


def registered_secured_fen(application_ids: list[int]) -> dict[int, int]:
    """Registered pledge amounts per application (one grouped query for a page of applications)."""
    rows = db.session.execute(
        sa.select(Pledge.application_id, sa.func.sum(Pledge.secured_fen))
        .where(Pledge.application_id.in_(application_ids), Pledge.registered_on.is_not(None))
        .group_by(Pledge.application_id)).all()
    return {aid: int(total or 0) for aid, total in rows}


def sla_outcomes(apps: Iterable[CreditApplication]) -> dict[int, tuple[int, int, bool, bool]]:
    """Per decided application: (tier days, working days used, hit, provisional); pure Python, no query per row."""
    from crm.core.workdays import sla_tier_days

    overrides = _overrides()
    out = {}
    for a in apps:
        if a.decided_on is None:
            continue
        tier = sla_tier_days(a.requested_fen)
        used = workdays_between(a.accepted_on, a.decided_on, overrides)
        out[a.id] = (tier, used.count, used.count <= tier, used.provisional)
    return out


def event_list_statement(f: MetricFilter) -> sa.Select:
    """Every event of the campaign dated in the window (any status), narrowed like ``events_held``."""
    campaign = db.session.get(Campaign, f.campaign_id)
    if campaign is None:
        raise LookupError("campaign")
    c = _resolve(f, campaign)
    conds = [Event.campaign_id == c.campaign_id, Event.held_on >= c.start, Event.held_on <= c.end,
             *_false_if_empty(c), *_organised_and_tagged(c, tagged=True)]
    return sa.select(Event).where(*conds).order_by(Event.held_on, Event.code)


def attendance_by_event(event_ids: list[int]) -> dict[int, dict[str, int]]:
    """Registrations, people checked in and distinct firms checked in per event (one grouped query)."""
    checked = Registration.checked_in_at.is_not(None)
    rows = db.session.execute(
        sa.select(Registration.event_id, sa.func.count(Registration.id),
                  sa.func.count(sa.case((checked, Registration.id))),
                  sa.func.count(sa.distinct(sa.case((checked, Registration.firm_id)))))
        .where(Registration.event_id.in_(event_ids)).group_by(Registration.event_id)).all()
    return {eid: {"registered": n, "checked_in": people, "firms": firms} for eid, n, people, firms in rows}
