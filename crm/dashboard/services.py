"""Targets (campaign → bank → branch) and the league table. Services flush and audit; views commit."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Optional

import sqlalchemy as sa
from flask_babel import gettext as _

from crm.auth.models import Role
from crm.core import audit
from crm.core.formatting import fen_to_wan, wan_to_fen
from crm.dashboard.definitions import AMOUNT, METRIC_BY_KEY, TARGET_KEYS
from crm.dashboard.metrics import MetricsResult
from crm.extensions import db
from crm.orgs.models import Campaign, Organisation, OrgKind, Target

#: the metrics the league table ranks banks and branches on
LEAGUE_KEYS = ("firms_reached", "visits", "credit_firms", "credit_amount_wan", "ip_pledge_deals")


class TargetError(ValueError):
    """A refused target value; ``str()`` is for the page."""


# ---------------------------------------------------------------------------------------------------------
# Reading targets
# ---------------------------------------------------------------------------------------------------------


def campaign_banks(campaign: Campaign, user=None) -> list[Organisation]:
    """Top-level banks taking part (every bank when the campaign lists none); a bank user sees their own."""
    banks = [o for o in campaign.organisations if o.kind == OrgKind.BANK and o.parent_id is None]
    if not banks:
        banks = list(db.session.scalars(sa.select(Organisation).where(
            Organisation.kind == OrgKind.BANK, Organisation.parent_id.is_(None)).order_by(Organisation.code)))
    if user is not None and user.bank_id is not None:
        banks = [b for b in banks if b.id == user.bank_id]
    return banks


def branches_of(banks: list[Organisation]) -> dict[int, list[Organisation]]:
    """Active branches per bank (one query)."""
    if not banks:
        return {}
    out: dict[int, list[Organisation]] = {b.id: [] for b in banks}
    for org in db.session.scalars(sa.select(Organisation).where(
            Organisation.parent_id.in_([b.id for b in banks]), Organisation.kind == OrgKind.BANK)
            .order_by(Organisation.code)):
        out[org.parent_id].append(org)
    return out


def targets_map(campaign: Campaign) -> dict[tuple[Optional[int], str], int]:
    """{(org_id or None, metric): stored value (counts, or fen for amounts)} for the campaign."""
    return {(org_id, metric): value for org_id, metric, value in db.session.execute(
        sa.select(Target.org_id, Target.metric, Target.value).where(Target.campaign_id == campaign.id))}


def display_target(metric: str, value: Optional[int]) -> Optional[Any]:
    """A stored target in display units: amounts in 万元 (Decimal), counts as they are."""
    if value is None:
        return None
    return fen_to_wan(value) if METRIC_BY_KEY[metric].kind == AMOUNT else value


def progress(actual: Any, target: Optional[Any]) -> Optional[Decimal]:
    """Actual ÷ target in percent (one decimal); None without a positive target."""
    if target in (None, 0) or actual is None:
        return None
    return (Decimal(actual) * 100 / Decimal(target)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------------------------------------------------
# League table
# ---------------------------------------------------------------------------------------------------------


@dataclass
class LeagueRow:
    org: Organisation
    is_branch: bool
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric → actual, target, progress
    score: Optional[Decimal] = None  #: mean progress over the metrics with a target

    @property
    def actuals(self) -> dict[str, Any]:
        """{metric: the actual number}."""
        return {key: cell["actual"] for key, cell in self.cells.items()}


def league(result: MetricsResult, campaign: Campaign, user=None, targets: Optional[dict] = None,
           orgs: Optional[tuple[list, dict]] = None) -> list[LeagueRow]:
    """Banks (and under each, its branches) with actual, target and progress for ``LEAGUE_KEYS``.

    Banks are ranked by their mean progress against the targets set for them (those without any last). ``orgs``:
    the campaign's banks for ``user`` and {bank id: its branches}, as ``campaign_banks`` and ``branches_of`` give
    them, when the caller holds them (the page's filter bar does).
    """
    targets = targets_map(campaign) if targets is None else targets  # the page passes the map it already read
    by_bank = result.breakdowns.get("bank", {})
    by_branch = result.breakdowns.get("branch", {})
    banks, branches = orgs if orgs is not None else (campaign_banks(campaign, user), None)
    f = result.filter
    if f.bank_id is not None:  # the numbers are one bank's: the other banks' rows would only show zeros
        banks = [b for b in banks if b.id == f.bank_id]
    branches = branches_of(banks) if branches is None else {b.id: branches.get(b.id, []) for b in banks}
    def row(org: Organisation, values: dict, is_branch: bool) -> LeagueRow:
        r = LeagueRow(org, is_branch)
        ps = []
        for key in LEAGUE_KEYS:
            actual = values.get(key, 0)
            target = display_target(key, targets.get((org.id, key)))
            p = progress(actual, target)
            if p is not None:
                ps.append(p)
            r.cells[key] = {"actual": actual, "target": target, "progress": p}
        r.score = (sum(ps) / len(ps)).quantize(Decimal("0.1")) if ps else None
        return r

    if f.branch_id is not None:  # one branch's numbers: its row only (its bank's row would show the branch's)
        return [row(br, by_branch.get(str(br.id), {}), True)
                for rows in branches.values() for br in rows if br.id == f.branch_id]

    bank_rows = [(row(b, by_bank.get(str(b.id), {}), False),
                  [row(br, by_branch.get(str(br.id), {}), True) for br in branches.get(b.id, [])]) for b in banks]
    bank_rows.sort(key=lambda pair: (pair[0].score is None, -(pair[0].score or 0), pair[0].org.code))
    out: list[LeagueRow] = []
    for bank_row, branch_rows in bank_rows:
        out.append(bank_row)
        branch_rows.sort(key=lambda r: (r.score is None, -(r.score or 0), r.org.code))
        out.extend(branch_rows)
    return out


# ---------------------------------------------------------------------------------------------------------
# Setting targets
# ---------------------------------------------------------------------------------------------------------


@dataclass
class TargetLevel:
    """One row of the targets page: campaign-wide (org None), a bank or a branch."""

    org: Optional[Organisation]
    editable: bool
    parent: Optional[Organisation] = None

    @property
    def key(self) -> str:
        return str(self.org.id) if self.org else "0"


def target_levels(campaign: Campaign, user) -> list[TargetLevel]:
    """The levels ``user`` sees, and whether they may edit each.

    Bureau and admin set campaign-wide and per-bank targets; a bank manager splits their bank's target across
    its branches; everyone else reads.
    """
    central = user.role in (Role.BUREAU, Role.ADMIN)
    levels = [TargetLevel(None, central)]
    banks = campaign_banks(campaign, user if user.bank_id is not None else None)
    branches = branches_of(banks)
    for bank in banks:
        levels.append(TargetLevel(bank, central))
        manager = user.role == Role.BANK_MANAGER and user.bank_id == bank.id
        for br in branches.get(bank.id, []):
            levels.append(TargetLevel(br, manager, parent=bank))
    return levels


def parse_target_value(metric: str, raw: str) -> Optional[int]:
    """A typed-in target: blank → None (no target); counts are whole numbers, amounts 万元 (stored as fen)."""
    raw = (raw or "").strip().replace(",", "")
    if not raw:
        return None
    definition = METRIC_BY_KEY[metric]
    try:
        if definition.kind == AMOUNT:
            value = wan_to_fen(raw)
        else:
            if not raw.isdigit():
                raise ValueError
            value = int(raw)
    except ValueError as exc:
        raise TargetError(_("%(metric)s: enter a number of zero or more.", metric=definition.label())) from exc
    if value < 0 or value >= 2**62:
        raise TargetError(_("%(metric)s: enter a number of zero or more.", metric=definition.label()))
    return value


def save_targets(campaign: Campaign, values: dict[tuple[Optional[int], str], Optional[int]], *, user) -> int:
    """Create, change or remove targets the user may edit; returns how many changed. Audited.

    :raise TargetError: for a level or metric the user may not set.
    """
    editable = {lv.org.id if lv.org else None for lv in target_levels(campaign, user) if lv.editable}
    existing = {(t.org_id, t.metric): t for t in db.session.scalars(
        sa.select(Target).where(Target.campaign_id == campaign.id))}
    changed = 0
    for (org_id, metric), value in values.items():
        if metric not in TARGET_KEYS:
            raise TargetError(_("Targets cannot be set for this metric."))
        if org_id not in editable:
            raise TargetError(_("You may not set targets at this level."))
        current = existing.get((org_id, metric))
        if value is None:
            if current is not None:
                audit.record_delete(current, bank_id=_bank_of(org_id))
                db.session.delete(current)
                changed += 1
            continue
        if current is None:
            t = Target(campaign_id=campaign.id, org_id=org_id, metric=metric, value=value, set_by_id=user.id)
            db.session.add(t)
            db.session.flush()
            audit.record_create(t, bank_id=_bank_of(org_id))
            changed += 1
        elif current.value != value:
            before = audit.snapshot(current)
            current.value = value
            current.set_by_id = user.id
            audit.record_update(current, before=before, bank_id=_bank_of(org_id))
            changed += 1
    db.session.flush()
    return changed


def _bank_of(org_id: Optional[int]) -> Optional[int]:
    if org_id is None:
        return None
    org = db.session.get(Organisation, org_id)
    return org.bank.id if org is not None and org.bank is not None else None


def branch_split_warnings(campaign: Campaign, levels: list[TargetLevel]) -> list[str]:
    """Banks whose branch targets add up to more than the bank's own target."""
    targets = targets_map(campaign)
    warnings = []
    for bank in [lv.org for lv in levels if lv.org is not None and lv.parent is None]:
        branch_ids = [lv.org.id for lv in levels if lv.parent is not None and lv.parent.id == bank.id]
        for metric in TARGET_KEYS:
            bank_target = targets.get((bank.id, metric))
            split = sum(targets.get((b, metric), 0) for b in branch_ids)
            if bank_target is not None and split > bank_target:
                warnings.append(_("%(bank)s: the branch targets for %(metric)s add up to %(split)s, more than the "
                                  "bank's %(target)s.", bank=bank.display_name,
                                  metric=METRIC_BY_KEY[metric].label(), split=display_target(metric, split),
                                  target=display_target(metric, bank_target)))
    return warnings
