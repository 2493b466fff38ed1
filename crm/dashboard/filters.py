"""One parser for the metric filters of the dashboard, the drill-down lists, the reports, the API and the CLI.

Parameters (all strings): ``campaign`` (code or id), ``bank`` and ``branch`` (organisation code or id),
``industry`` (code), ``district`` (alias ``area``: area code or name), ``street`` (id, or name inside the
district), ``from`` / ``to`` (YYYY-MM-DD).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Mapping, Optional

import sqlalchemy as sa
from flask_babel import gettext as _

from crm.core.formatting import today_local
from crm.core.models import Area, Industry, Street
from crm.dashboard.metrics import MetricFilter
from crm.extensions import db
from crm.orgs.models import Campaign, Organisation, OrgKind, campaign_org

PARAMS = ("campaign", "bank", "branch", "industry", "district", "street", "from", "to")


@dataclass
class ParsedFilters:
    """The looked-up filter values, the problems found, and the :class:`MetricFilter` they make."""

    campaign: Optional[Campaign] = None
    bank: Optional[Organisation] = None
    branch: Optional[Organisation] = None
    industry: Optional[Industry] = None
    area: Optional[Area] = None
    street: Optional[Street] = None
    date_from: Optional[date] = None
    date_to: Optional[date] = None
    errors: list[str] = field(default_factory=list)

    @property
    def metric_filter(self) -> Optional[MetricFilter]:
        if self.campaign is None:
            return None
        return MetricFilter(
            campaign_id=self.campaign.id, bank_id=self.bank.id if self.bank else None,
            branch_id=self.branch.id if self.branch else None,
            industry_code=self.industry.code if self.industry else None,
            area_code=self.area.code if self.area else None, street_id=self.street.id if self.street else None,
            date_from=self.date_from, date_to=self.date_to)


def _org(value: str) -> Optional[Organisation]:
    value = value.strip()
    cond = Organisation.code == value
    if value.isdigit() and len(value) < 12:
        cond = sa.or_(cond, Organisation.id == int(value))
    return db.session.scalar(sa.select(Organisation).where(cond, Organisation.kind == OrgKind.BANK))


def _date(value: str, label: str, errors: list[str]) -> Optional[date]:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        errors.append(_("%(field)s must be a date written YYYY-MM-DD.", field=label))
        return None


def visible_campaigns(user=None) -> list[Campaign]:
    """Campaigns a viewer may pick: bank users see the campaigns their bank takes part in."""
    stmt = sa.select(Campaign).order_by(Campaign.start_on.desc(), Campaign.code)
    if user is not None and getattr(user, "bank_id", None) is not None:
        stmt = stmt.where(Campaign.id.in_(sa.select(campaign_org.c.campaign_id)
                                          .where(campaign_org.c.org_id == user.bank_id)))
    return list(db.session.scalars(stmt))


def default_campaign(user=None) -> Optional[Campaign]:
    """The campaign running today (the latest started), else the most recent one."""
    campaigns = visible_campaigns(user)
    today = today_local()
    running = [c for c in campaigns if c.start_on <= today <= c.end_on]
    return (running or campaigns or [None])[0]


def parse_filters(args: Mapping[str, str], *, user=None, default: bool = True) -> ParsedFilters:
    """Look every parameter up; unknown values become errors (and are left out of the filter)."""
    p = ParsedFilters()
    errors = p.errors
    raw = {k: (args.get(k) or "").strip() for k in PARAMS}
    raw["district"] = raw["district"] or (args.get("area") or "").strip()

    if raw["campaign"]:
        cond = Campaign.code == raw["campaign"]
        if raw["campaign"].isdigit() and len(raw["campaign"]) < 12:
            cond = sa.or_(cond, Campaign.id == int(raw["campaign"]))
        p.campaign = db.session.scalar(sa.select(Campaign).where(cond))
        if p.campaign is None:
            errors.append(_("Unknown campaign: %(v)s", v=raw["campaign"]))
    elif default:
        p.campaign = default_campaign(user)

    if raw["bank"]:
        p.bank = _org(raw["bank"])
        if p.bank is None or p.bank.parent_id is not None:
            errors.append(_("Unknown bank: %(v)s", v=raw["bank"]))
            p.bank = None
    if raw["branch"]:
        p.branch = _org(raw["branch"])
        if p.branch is None or p.branch.parent_id is None:
            errors.append(_("Unknown branch: %(v)s", v=raw["branch"]))
            p.branch = None
        elif p.bank is not None and p.branch.parent_id != p.bank.id:
            errors.append(_("The branch %(v)s does not belong to the chosen bank.", v=raw["branch"]))
            p.branch = None
    if raw["industry"]:
        p.industry = db.session.get(Industry, raw["industry"])
        if p.industry is None:
            errors.append(_("Unknown industry: %(v)s", v=raw["industry"]))
    if raw["district"]:
        p.area = db.session.scalar(sa.select(Area).where(
            sa.or_(Area.code == raw["district"], Area.name == raw["district"])))
        if p.area is None:
            errors.append(_("Unknown district: %(v)s", v=raw["district"]))
    if raw["street"]:
        value = raw["street"]
        cond = Street.name == value
        if value.isdigit() and len(value) < 12:
            cond = sa.or_(cond, Street.id == int(value))
        stmt = sa.select(Street).where(cond)
        if p.area is not None:
            stmt = stmt.where(Street.area_code == p.area.code)
        streets = list(db.session.scalars(stmt.limit(2)))
        if len(streets) != 1:
            errors.append(_("Unknown street: %(v)s", v=value))
        else:
            p.street = streets[0]
    if raw["from"]:
        p.date_from = _date(raw["from"], _("From"), errors)
    if raw["to"]:
        p.date_to = _date(raw["to"], _("To"), errors)
    if p.date_from and p.date_to and p.date_from > p.date_to:
        errors.append(_("The start date is after the end date."))
    return p


class ArgsBuilder:
    """Turns a :class:`MetricFilter` back into URL parameters (codes), with one organisation query per page."""

    def __init__(self, campaign: Campaign, org_codes: Optional[dict[int, str]] = None):
        """``org_codes``: {id: code} of every bank and branch, when the caller holds them (else read when needed)."""
        self.campaign = campaign
        self._org_codes = org_codes

    def org_code(self, org_id: int) -> str:
        if self._org_codes is None:
            self._org_codes = dict(db.session.execute(
                sa.select(Organisation.id, Organisation.code).where(Organisation.kind == OrgKind.BANK)).all())
        return self._org_codes.get(org_id, str(org_id))

    def __call__(self, f: MetricFilter) -> dict[str, str]:
        args = {"campaign": self.campaign.code}
        if f.bank_id is not None:
            args["bank"] = self.org_code(f.bank_id)
        if f.branch_id is not None:
            args["branch"] = self.org_code(f.branch_id)
        if f.industry_code:
            args["industry"] = f.industry_code
        if f.area_code:
            args["district"] = f.area_code
        if f.street_id is not None:
            args["street"] = str(f.street_id)
        if f.date_from:
            args["from"] = f.date_from.isoformat()
        if f.date_to:
            args["to"] = f.date_to.isoformat()
        return args
