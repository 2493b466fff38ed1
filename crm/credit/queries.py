"""Read side: list filters (the GET parameters the dashboard links with), the SLA watch list and deal totals.

Every statement goes through the scoped session, so a bank user only ever sees their own bank's rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Mapping, Optional

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload

from crm.core.models import CreditProduct
from crm.core.validators import row_id
from crm.credit.models import APPROVED_STAGES, CreditApplication, Pledge, Stage
from crm.credit.sla import application_sla
from crm.extensions import db
from crm.firms.models import Firm
from crm.orgs.models import Campaign

#: the GET parameters accepted by the lists (the dashboard links to them)
FILTER_PARAMS = ("campaign", "bank", "branch", "industry", "area", "street", "from", "to", "product", "stage")


def _date(value) -> Optional[date]:
    try:
        return date.fromisoformat(str(value).strip())
    except (TypeError, ValueError):
        return None


@dataclass
class Filters:
    campaign_id: Optional[int] = None
    bank_id: Optional[int] = None
    branch_id: Optional[int] = None
    industry: Optional[str] = None
    area: Optional[str] = None
    street_id: Optional[int] = None
    date_from: Optional[date] = None
    date_to: Optional[date] = None
    product: Optional[str] = None
    stage: Optional[str] = None
    ignored: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "Filters":
        """Parse the GET parameters; unusable values are ignored (and listed in ``ignored``)."""
        f = cls()
        raw = {k: (args.get(k) or "").strip() for k in FILTER_PARAMS}
        if raw["campaign"]:
            f.campaign_id = row_id(raw["campaign"])
            if f.campaign_id is None:  # a campaign code
                f.campaign_id = db.session.scalar(sa.select(Campaign.id).where(Campaign.code == raw["campaign"]))
            if f.campaign_id is None:
                f.ignored.append("campaign")
        for key, attr in (("bank", "bank_id"), ("branch", "branch_id"), ("street", "street_id")):
            if raw[key]:
                setattr(f, attr, row_id(raw[key]))
                if getattr(f, attr) is None:
                    f.ignored.append(key)
        for key, attr in (("from", "date_from"), ("to", "date_to")):
            if raw[key]:
                setattr(f, attr, _date(raw[key]))
                if getattr(f, attr) is None:
                    f.ignored.append(key)
        f.industry = raw["industry"][:20] or None
        f.area = raw["area"][:20] or None
        f.product = raw["product"][:30] or None
        if raw["stage"]:
            if raw["stage"] in {s.value for s in Stage} or raw["stage"] in ("open", "decided", "approved"):
                f.stage = raw["stage"]
            else:
                f.ignored.append("stage")
        return f

    def as_args(self) -> dict[str, str]:
        """The parameters back as strings (for links and the export)."""
        out = {"campaign": self.campaign_id, "bank": self.bank_id, "branch": self.branch_id,
               "industry": self.industry, "area": self.area, "street": self.street_id,
               "from": self.date_from.isoformat() if self.date_from else None,
               "to": self.date_to.isoformat() if self.date_to else None, "product": self.product, "stage": self.stage}
        return {k: str(v) for k, v in out.items() if v not in (None, "")}

    def apply(self, stmt: sa.Select) -> sa.Select:
        A = CreditApplication
        if self.campaign_id:
            stmt = stmt.where(A.campaign_id == self.campaign_id)
        if self.bank_id:
            stmt = stmt.where(A.bank_id == self.bank_id)
        if self.branch_id:
            stmt = stmt.where(A.branch_id == self.branch_id)
        if self.industry or self.area or self.street_id:
            firm = sa.select(Firm.id)
            if self.industry:
                firm = firm.where(Firm.industry_code == self.industry)
            if self.area:
                firm = firm.where(Firm.area_code == self.area)
            if self.street_id:
                firm = firm.where(Firm.street_id == self.street_id)
            stmt = stmt.where(A.firm_id.in_(firm))
        if self.date_from:
            stmt = stmt.where(A.decided_on >= self.date_from)
        if self.date_to:
            stmt = stmt.where(A.decided_on <= self.date_to)
        if self.product:
            stmt = stmt.where(A.product_code == self.product)
        if self.stage == "open":
            stmt = stmt.where(A.stage.in_([Stage.ACCEPTED.value, Stage.UNDER_REVIEW.value]))
        elif self.stage == "approved":
            stmt = stmt.where(A.stage.in_([s.value for s in APPROVED_STAGES]))
        elif self.stage == "decided":
            stmt = stmt.where(A.stage.in_([s.value for s in APPROVED_STAGES | {Stage.DECLINED}]))
        elif self.stage:
            stmt = stmt.where(A.stage == self.stage)
        return stmt


#: what the lists of applications load with them: the firm, joined, and the RMs, by key in one more statement. The
#: product, branch, bank, industry and area are not loaded: each list's filters read every product, industry and
#: area and the banks and branches it offers first (``credit.views._filter_choices``), so the session holds them and
#: a many-to-one look-up by key finds its row there without a statement. All of it joined made a seven-table
#: statement that PostgreSQL took 7–12 ms to plan on every run for 1 ms of execution (the connections plan each run
#: for its values, crm/core/pgconn.py); two tables plan in 0.2 ms.
_LIST_LOADS = (joinedload(CreditApplication.firm), selectinload(CreditApplication.rm))


def _with_pledges(stmt: sa.Select) -> sa.Select:
    """The deals' loads: the firm, joined, and the pledges with their patents in one more statement (the deals
    show no RM; their product, bank, branch, industry and area come as in ``_LIST_LOADS``)."""
    return stmt.options(joinedload(CreditApplication.firm),
                        selectinload(CreditApplication.pledges).joinedload(Pledge.ip_asset))


@dataclass
class ApplicationPage:
    items: list
    next_cursor: Optional[str]
    is_first: bool


def application_page(filters: Filters, after: Optional[str] = None, per_page: int = 50) -> ApplicationPage:
    """One page of applications, newest accepted first, after the cursor (keyset on (accepted_on, id), the
    firm and visit lists' cursor: page 100 costs what page 1 costs, and no application is silently left out)."""
    from crm.firms.queries import decode_cursor, keyset_page

    A = CreditApplication
    stmt = filters.apply(sa.select(A))
    cursor = decode_cursor(after, "date")
    if cursor is not None:
        day, ident = cursor
        stmt = stmt.where(A.accepted_on <= day, sa.or_(A.accepted_on < day, A.id < ident))
    items, next_cursor = keyset_page(stmt.order_by(A.accepted_on.desc(), A.id.desc()).options(*_LIST_LOADS), per_page,
                                     lambda a: [a.accepted_on.isoformat(), a.id])
    return ApplicationPage(items, next_cursor, cursor is None)


def ip_pledge_deals(filters: Filters, limit: int = 1000) -> list[CreditApplication]:
    """Approved IP-pledge applications (the bureau's IP-pledge deals), newest decision first."""
    A = CreditApplication
    stmt = sa.select(A).join(A.product).where(CreditProduct.is_ip_pledge.is_(True))
    if not filters.stage:
        stmt = stmt.where(A.stage.in_([s.value for s in APPROVED_STAGES]))
    stmt = filters.apply(stmt).order_by(A.decided_on.desc(), A.id.desc()).limit(limit)
    return list(db.session.scalars(_with_pledges(stmt)))


def registered_fen(app: CreditApplication) -> int:
    """The registered secured amount of an application's pledges (registered ones, released or not)."""
    return sum(p.secured_fen or 0 for p in app.pledges if p.registered_on is not None)


@dataclass
class DealTotals:
    count: int
    approved_fen: int
    registered_fen: int
    firm_count: int
    weighted_discount_bp: Optional[float]


def deal_totals(deals: list[CreditApplication]) -> DealTotals:
    approved = sum(a.approved_fen or 0 for a in deals if a.stage in APPROVED_STAGES)
    weighted = sum((a.approved_fen or 0) * (a.discount_bp or 0) for a in deals if a.stage in APPROVED_STAGES)
    return DealTotals(
        count=sum(1 for a in deals if a.stage in APPROVED_STAGES), approved_fen=approved,
        registered_fen=sum(registered_fen(a) for a in deals), firm_count=len({a.firm_id for a in deals}),
        weighted_discount_bp=(weighted / approved) if approved else None,
    )


@dataclass
class WatchGroup:
    bank: object
    branch: object
    rows: list  #: (application, promise)
    breached: int
    due_soon: int


def sla_watch(today: date, overrides, filters: Optional[Filters] = None) -> list[WatchGroup]:
    """Open applications that are due soon or breached, grouped per bank and branch (breached first)."""
    A = CreditApplication
    stmt = sa.select(A).where(A.stage.in_([Stage.ACCEPTED.value, Stage.UNDER_REVIEW.value]))
    if filters is not None:
        stmt = filters.apply(stmt)
    stmt = stmt.options(*_LIST_LOADS).order_by(A.accepted_on, A.id)
    groups: dict[tuple, WatchGroup] = {}
    for app in db.session.scalars(stmt):
        p = application_sla(app, today, overrides)
        if p is None or not (p.breached or p.due_soon):
            continue
        key = (app.bank_id, app.branch_id)
        if key not in groups:
            groups[key] = WatchGroup(app.bank, app.branch, [], 0, 0)
        g = groups[key]
        g.rows.append((app, p))
        g.breached += p.breached
        g.due_soon += p.due_soon
    out = list(groups.values())
    for g in out:
        g.rows.sort(key=lambda r: (r[1].days_left, r[0].id))
    out.sort(key=lambda g: (g.bank.name if g.bank else "", g.branch.code if g.branch else ""))
    return out
