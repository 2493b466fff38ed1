"""Visits and follow-ups. Services validate first, then mutate, flush and audit; never commit.

Saving a visit also brings the bank's account with the firm up to date (last visit, willingness, open need) in
the same transaction, and a next step with a due date becomes a follow-up for its owner.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Iterable, Mapping, Optional, Sequence

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from crm.auth.models import Role, User
from crm.core import audit
from crm.core.db import utcnow
from crm.core.formatting import today_local
from crm.core.models import VisitMode, WillingnessLevel
from crm.core.validators import normalize_text, row_id
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount
from crm.firms.services import FirmError, StaleEditError, check_version, ensure_account
from crm.orgs.models import Campaign, Organisation
from crm.visits.models import FollowUp, FollowUpStatus, Visit

__all__ = ["VisitError", "StaleEditError", "create_visit", "update_visit", "delete_visit", "refresh_account",
           "create_follow_up", "complete_follow_up", "reassign_follow_up", "my_follow_ups", "overdue_in_bank"]


class VisitError(FirmError):
    """A refused visit or follow-up change; ``field`` names the form field."""


VISIT_FIELDS = (
    "campaign_id", "visited_on", "mode_code", "rm_id", "contact_id", "summary", "willingness_code", "need_amount_fen",
    "need_term_months", "need_purpose", "need_guarantee", "wants_subsidy", "wants_risk_compensation", "next_step",
    "next_step_owner_id", "next_step_due_on",
)
MAX_SUMMARY = 5000


def _bank_user(user_id, bank_id: int, field_name: str) -> User:
    ident = row_id(user_id)  # (None for an empty or malformed id)
    user = db.session.get(User, ident) if ident is not None else None
    if user is None or user.bank_id != bank_id or not user.is_active:
        raise VisitError(_("Choose a colleague from your own bank."), field=field_name)
    return user


def clean_visit_data(data: Mapping[str, Any], *, user: User, firm: Firm,
                     campaigns: Optional[Sequence[Campaign]] = None) -> dict:
    """Validate and normalise every visit field against the user's bank; raise VisitError naming the field.

    ``campaigns`` is ``campaigns_for(user)`` when the caller has already loaded it in this session (the visit form
    offers exactly those), so it is not selected a second time; the rows it holds also stay in the identity map, so
    the chosen campaign's ``db.session.get`` costs no statement.
    """
    if user.bank_id is None:
        raise VisitError(_("Only bank staff log visits."))
    out: dict[str, Any] = {}
    campaign = db.session.get(Campaign, int(data["campaign_id"])) if data.get("campaign_id") else None
    if campaign is None:
        raise VisitError(_("Choose the campaign."), field="campaign_id")
    if campaigns is None:
        from crm.firms.queries import campaigns_for

        campaigns = campaigns_for(user)
    if campaign.id not in {c.id for c in campaigns}:
        raise VisitError(_("Your bank does not take part in this campaign."), field="campaign_id")
    out["campaign_id"] = campaign.id
    visited_on = data.get("visited_on")
    if not isinstance(visited_on, date):
        raise VisitError(_("Enter the visit date."), field="visited_on")
    if visited_on > today_local():
        raise VisitError(_("The visit date lies in the future."), field="visited_on")
    if not (campaign.start_on <= visited_on <= campaign.end_on):
        raise VisitError(_("The visit date is outside the campaign (%(start)s to %(end)s).",
                           start=campaign.start_on, end=campaign.end_on), field="visited_on")
    out["visited_on"] = visited_on
    mode = data.get("mode_code") or "on_site"
    if db.session.get(VisitMode, mode) is None:
        raise VisitError(_("Unknown visit mode."), field="mode_code")
    out["mode_code"] = mode
    rm = _bank_user(data.get("rm_id") or user.id, user.bank_id, "rm_id")
    out["rm_id"] = rm.id
    contact_id = data.get("contact_id")
    if contact_id not in (None, "", 0):
        ident = row_id(contact_id)
        contact = db.session.get(Contact, ident) if ident is not None else None
        if contact is None or contact.firm_id != firm.id or contact.is_deleted:
            raise VisitError(_("The contact does not belong to this firm."), field="contact_id")
        out["contact_id"] = contact.id
    else:
        out["contact_id"] = None
    summary = (data.get("summary") or "").strip()
    if len(summary) > MAX_SUMMARY:
        raise VisitError(_("The summary may have at most %(n)d characters.", n=MAX_SUMMARY), field="summary")
    out["summary"] = summary
    willingness = data.get("willingness_code") or None
    if willingness is not None and db.session.get(WillingnessLevel, willingness) is None:
        raise VisitError(_("Unknown willingness level."), field="willingness_code")
    out["willingness_code"] = willingness
    need = data.get("need_amount_fen")
    if need is not None and need < 0:
        raise VisitError(_("The amount may not be negative."), field="need_amount_wan")
    out["need_amount_fen"] = need or None
    term = data.get("need_term_months")
    if term is not None and not (0 < int(term) <= 600):
        raise VisitError(_("The term must be 1 to 600 months."), field="need_term_months")
    out["need_term_months"] = term
    out["need_purpose"] = normalize_text(data.get("need_purpose"))[:200]
    out["need_guarantee"] = normalize_text(data.get("need_guarantee"))[:100]
    out["wants_subsidy"] = bool(data.get("wants_subsidy"))
    out["wants_risk_compensation"] = bool(data.get("wants_risk_compensation"))
    out["next_step"] = normalize_text(data.get("next_step"))[:300]
    due = data.get("next_step_due_on")
    if due is not None and not isinstance(due, date):
        raise VisitError(_("Enter the due date."), field="next_step_due_on")
    out["next_step_due_on"] = due
    owner_id = data.get("next_step_owner_id")
    if owner_id not in (None, ""):
        out["next_step_owner_id"] = _bank_user(owner_id, user.bank_id, "next_step_owner_id").id
    else:
        out["next_step_owner_id"] = rm.id if due is not None else None
    companions = []
    for cid in data.get("companion_ids") or []:
        companion = db.session.get(User, int(cid))
        if companion is None or not companion.is_active or not (
                companion.bank_id == user.bank_id or companion.role == Role.BUREAU):
            raise VisitError(_("Companions must be colleagues from your bank or bureau staff."), field="companion_ids")
        if companion.id != rm.id and companion not in companions:
            companions.append(companion)
    out["companions"] = companions
    return out


def _branch_of(user: User) -> Optional[int]:
    return user.org_id if user.org is not None and user.org.is_branch else None


def create_visit(firm: Firm, data: Mapping[str, Any], *, user: User,
                 campaigns: Optional[Sequence[Campaign]] = None) -> Visit:
    """Log a visit; update the bank's account with the firm; book the next step as a follow-up.

    ``campaigns``: the user's campaigns if already loaded (see :func:`clean_visit_data`).
    """
    values = clean_visit_data(data, user=user, firm=firm, campaigns=campaigns)
    companions = values.pop("companions")
    rm = db.session.get(User, values["rm_id"])
    visit = Visit(firm_id=firm.id, bank_id=user.bank_id, branch_id=_branch_of(rm), created_by_id=user.id, **values)
    visit.companions = companions
    db.session.add(visit)
    db.session.flush()
    audit.record(
        "create", visit, after={**audit.snapshot(visit), "companions": [c.username for c in companions]}, user=user)
    _sync_follow_up(visit, user=user, is_new=True)
    refresh_account(firm, user.bank_id, user=user, rm=rm)
    return visit


def update_visit(visit: Visit, data: Mapping[str, Any], *, user: User, version=None,
                 campaigns: Optional[Sequence[Campaign]] = None) -> bool:
    """Edit a visit (stale versions refused); the account and the linked follow-up follow.

    ``campaigns``: the user's campaigns if already loaded (see :func:`clean_visit_data`).
    """
    check_version(visit, version)
    # taken first (cleaning changes nothing on the visit): the companions loaded here are then in the identity map
    # when the cleaning looks up the chosen ones, which are mostly the same people
    before = {**audit.snapshot(visit), "companions": sorted(c.username for c in visit.companions)}
    values = clean_visit_data(data, user=user, firm=visit.firm, campaigns=campaigns)
    companions = values.pop("companions")
    for key, value in values.items():
        if getattr(visit, key) != value:
            setattr(visit, key, value)
    if sorted(c.id for c in visit.companions) != sorted(c.id for c in companions):
        visit.companions = companions
    rm = db.session.get(User, visit.rm_id)
    visit.branch_id = _branch_of(rm)
    db.session.flush()
    after = {**audit.snapshot(visit), "companions": sorted(c.username for c in visit.companions)}
    b, a = audit.diff(before, after)
    if not a:
        return False
    audit.record("update", visit, before=b, after=a, user=user)
    _sync_follow_up(visit, user=user)
    refresh_account(visit.firm, visit.bank_id, user=user)
    return True


def delete_visit(visit: Visit, *, user: User) -> None:
    """Hide a visit (soft delete, audited) and recompute the bank's account with the firm."""
    before = audit.snapshot(visit)
    visit.is_deleted = True
    db.session.flush()
    audit.record("delete", visit, before=before, user=user)
    refresh_account(visit.firm, visit.bank_id, user=user)


def _sync_follow_up(visit: Visit, *, user: User, is_new: bool = False) -> Optional[FollowUp]:
    """A next step with a due date is a follow-up for its owner: create it, or keep the open one in step.

    ``is_new``: the visit was inserted in this transaction, so no follow-up can point at it yet (no look-up).
    """
    if visit.next_step_due_on is None:
        return None
    title = visit.next_step or _("Follow up on the visit")
    owner = db.session.get(User, visit.next_step_owner_id or visit.rm_id)
    existing = None if is_new else db.session.scalar(
        sa.select(FollowUp).where(FollowUp.visit_id == visit.id).order_by(FollowUp.id.desc()).limit(1))
    if existing is None:
        return create_follow_up(visit.firm, title=title, due_on=visit.next_step_due_on, assignee=owner, user=user,
                                visit=visit)
    if existing.status != FollowUpStatus.OPEN:
        if (existing.due_on, existing.title) == (visit.next_step_due_on, title[:300]):
            return existing
        return create_follow_up(visit.firm, title=title, due_on=visit.next_step_due_on, assignee=owner, user=user,
                                visit=visit)
    before = audit.snapshot(existing)
    existing.title = title[:300]
    existing.due_on = visit.next_step_due_on
    existing.assignee_id = owner.id
    db.session.flush()
    audit.record_update(existing, before, user=user)
    return existing


def refresh_account(firm: Firm, bank_id: int, *, user: Optional[User], rm: Optional[User] = None) -> FirmAccount:
    """Set the bank's account from its latest visit: last visit date, willingness, open financing need."""
    account = ensure_account(firm, bank_id, user=user, owner=rm)
    latest = db.session.scalar(
        sa.select(Visit).where(Visit.firm_id == firm.id, Visit.bank_id == bank_id, Visit.is_deleted.is_(False))
        .order_by(Visit.visited_on.desc(), Visit.id.desc()).limit(1)
    )
    before = audit.snapshot(account)
    if latest is None:
        account.last_visit_on = None
        account.open_need_fen = None
    else:
        account.last_visit_on = latest.visited_on
        if latest.willingness_code:
            account.willingness_code = latest.willingness_code
        account.open_need_fen = latest.need_amount_fen or None
    if account.owner_id is None and rm is not None:
        account.owner_id = rm.id
        account.branch_id = account.branch_id or _branch_of(rm)
    db.session.flush()
    audit.record_update(account, before, user=user)
    return account


# --------------------------------------------------------------------------------------------------
# Follow-ups
# --------------------------------------------------------------------------------------------------


def create_follow_up(firm: Firm, *, title: str, due_on: date, assignee: User, user: User,
                     visit: Optional[Visit] = None) -> FollowUp:
    """A task on a firm for a colleague of the same bank."""
    if user.bank_id is None:
        raise VisitError(_("Only bank staff book follow-ups."))
    if assignee is None or assignee.bank_id != user.bank_id or not assignee.is_active:
        raise VisitError(_("Choose a colleague from your own bank."), field="assignee_id")
    title = normalize_text(title)[:300]
    if not title:
        raise VisitError(_("Describe the follow-up."), field="title")
    if not isinstance(due_on, date):
        raise VisitError(_("Enter the due date."), field="due_on")
    fu = FollowUp(bank_id=user.bank_id, firm_id=firm.id, visit_id=visit.id if visit else None,
                  assignee_id=assignee.id, title=title, due_on=due_on, created_by_id=user.id)
    db.session.add(fu)
    db.session.flush()
    audit.record_create(fu, user=user)
    return fu


def complete_follow_up(fu: FollowUp, outcome: str, *, user: User, version=None) -> None:
    """Mark a follow-up done with an outcome note."""
    check_version(fu, version)
    if fu.status != FollowUpStatus.OPEN:
        raise VisitError(_("This follow-up is already closed."))
    before = audit.snapshot(fu)
    fu.status = FollowUpStatus.DONE
    fu.done_at = utcnow()
    fu.outcome = (outcome or "").strip()[:2000]
    db.session.flush()
    audit.record_update(fu, before, user=user)


def reassign_follow_up(fu: FollowUp, assignee: Optional[User], *, user: User, version=None) -> None:
    """Hand a follow-up to a colleague of the same bank (never outside it)."""
    check_version(fu, version)
    if assignee is None or assignee.bank_id != fu.bank_id or not assignee.is_active:
        raise VisitError(_("Choose a colleague from your own bank."), field="assignee_id")
    if fu.status != FollowUpStatus.OPEN:
        raise VisitError(_("This follow-up is already closed."))
    before = audit.snapshot(fu)
    fu.assignee_id = assignee.id
    db.session.flush()
    audit.record_update(fu, before, user=user)


def week_end(day: date) -> date:
    """The Sunday of the day's week."""
    return day + timedelta(days=6 - day.weekday())


@dataclass
class FollowUpGroups:
    overdue: list = field(default_factory=list)
    today: list = field(default_factory=list)
    this_week: list = field(default_factory=list)
    later: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.overdue) + len(self.today) + len(self.this_week) + len(self.later)


def group_follow_ups(items: Iterable[FollowUp], today: date) -> FollowUpGroups:
    groups = FollowUpGroups()
    end = week_end(today)
    for fu in items:
        if fu.due_on < today:
            groups.overdue.append(fu)
        elif fu.due_on == today:
            groups.today.append(fu)
        elif fu.due_on <= end:
            groups.this_week.append(fu)
        else:
            groups.later.append(fu)
    return groups


def my_follow_ups(user: User, today: Optional[date] = None) -> FollowUpGroups:
    """The user's open follow-ups: overdue first, then due today, this week, later."""
    today = today or today_local()
    items = db.session.scalars(
        sa.select(FollowUp).where(FollowUp.assignee_id == user.id, FollowUp.status == FollowUpStatus.OPEN)
        .order_by(FollowUp.due_on, FollowUp.id).options(selectinload(FollowUp.firm))
    )
    return group_follow_ups(items, today)


@dataclass
class BranchCount:
    org: Organisation
    count: int


@dataclass
class OverduePage:
    items: list
    total: int  #: overdue follow-ups in the list (every page; of the branch when one is chosen)
    next_cursor: Optional[str]
    is_first: bool


def overdue_in_bank(bank_id: int, today: Optional[date] = None, *, branch_id: Optional[int] = None,
                    after: Optional[str] = None, per_page: int = 50) -> tuple[OverduePage, list[BranchCount]]:
    """The bank's overdue open follow-ups, longest overdue first, a page after the cursor (keyset on (due_on, id),
    the firm list's cursor), of one branch when ``branch_id`` is given (by the assignee's branch); and each
    branch's count, whatever the branch chosen."""
    from crm.firms.queries import decode_cursor, keyset_page

    today = today or today_local()
    cond = sa.and_(FollowUp.bank_id == bank_id, FollowUp.status == FollowUpStatus.OPEN, FollowUp.due_on < today)
    # "+ 0": the assignee is looked up from each follow-up, never the follow-ups from each person. SQLite otherwise
    # walked every person's overdue follow-ups by the index that begins with the assignee and read each row for its
    # bank (13-16 ms at scale 1); this way the bank's come from ix_follow_up_bank_status_due alone (2 ms)
    rows = db.session.execute(
        sa.select(User.org_id, sa.func.count(FollowUp.id))
        .join(User, User.id == FollowUp.assignee_id + sa.literal_column("0"))
        .where(cond).group_by(User.org_id)).all()
    counts = dict(rows)
    orgs = db.session.scalars(sa.select(Organisation).where(
        sa.or_(Organisation.id == bank_id, Organisation.parent_id == bank_id)).order_by(Organisation.code)).all()
    per_branch = [BranchCount(o, counts.get(o.id, 0)) for o in orgs if o.id != bank_id or counts.get(o.id)]

    stmt = sa.select(FollowUp).where(cond)
    if branch_id is not None:
        stmt = stmt.where(FollowUp.assignee_id.in_(sa.select(User.id).where(User.org_id == branch_id)))
    total = counts.get(branch_id, 0) if branch_id is not None else sum(counts.values())
    cursor = decode_cursor(after, "date")
    if cursor is not None:
        day, ident = cursor
        stmt = stmt.where(FollowUp.due_on >= day, sa.or_(FollowUp.due_on > day, FollowUp.id > ident))
    items, next_cursor = keyset_page(
        stmt.order_by(FollowUp.due_on, FollowUp.id).options(selectinload(FollowUp.firm),
                                                            selectinload(FollowUp.assignee)),
        per_page, lambda fu: [fu.due_on.isoformat(), fu.id])
    return OverduePage(items, total, next_cursor, cursor is None), per_branch
