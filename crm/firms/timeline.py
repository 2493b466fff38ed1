"""The firm page's timeline (everything the viewer may see about a firm) and its change history."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload

from crm.core.models import AuditEntry
from crm.credit.models import CreditApplication, StageChange
from crm.events.models import Registration
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount
from crm.visits.models import FollowUp, Visit


@dataclass
class TimelineItem:
    day: date
    kind: str  #: visit / follow_up / registration / checkin / credit / stage
    obj: Any
    extra: dict = field(default_factory=dict)

    @property
    def sort_key(self):
        return (self.day, getattr(self.obj, "id", 0))


# The page's statements, built once with bound parameters: the tenant scope's hook keeps each one's scoped form per
# bank (crm.core.scoping), so a page runs statements whose cache keys SQLAlchemy has already computed.
_FIRM_ID = sa.bindparam("firm_id")
_VISITS = (sa.select(Visit).where(Visit.firm_id == _FIRM_ID)
           .options(selectinload(Visit.companions), joinedload(Visit.rm)))
_FOLLOW_UPS = sa.select(FollowUp).where(FollowUp.firm_id == _FIRM_ID).options(joinedload(FollowUp.assignee))
_REGISTRATIONS = sa.select(Registration).where(Registration.firm_id == _FIRM_ID).options(joinedload(Registration.event))
_APPLICATIONS = sa.select(CreditApplication).where(CreditApplication.firm_id == _FIRM_ID)
_STAGES = (sa.select(StageChange).where(StageChange.application_id.in_(sa.bindparam("ids", expanding=True)))
           .order_by(StageChange.id))
_LIMIT = sa.bindparam("limit", type_=sa.Integer)
#: the firm's own audit entries, across banks (the firm is shared master data)
_FIRM_ENTRIES = (sa.select(AuditEntry).where(AuditEntry.object_type == "firm", AuditEntry.object_id == _FIRM_ID)
                 .order_by(AuditEntry.id.desc()).limit(_LIMIT).execution_options(skip_tenant_scope=True))
#: the entries of the viewer's related records: the visits and follow-ups the page loaded (by id), its contacts and
#: its bank's account (subqueries, through the tenant scope too). One branch per kind of record, each found by
#: (object_type, object_id): as one OR the planners walked the bank's whole audit trail newest first, testing every
#: entry (SQLite, 10 ms per 10,000 entries of the bank).
_RELATED_IDS = sa.union_all(*(
    sa.select(AuditEntry.id).where(AuditEntry.object_type == kind, AuditEntry.object_id.in_(ids))
    for kind, ids in (("contact", sa.select(Contact.id).where(Contact.firm_id == _FIRM_ID)),
                      ("visit", sa.bindparam("visit_ids", expanding=True)),
                      ("follow_up", sa.bindparam("follow_up_ids", expanding=True)),
                      ("firm_account", sa.select(FirmAccount.id).where(FirmAccount.firm_id == _FIRM_ID))))).subquery()
_RELATED_ENTRIES = (sa.select(AuditEntry).where(AuditEntry.id.in_(sa.select(_RELATED_IDS.c.id)))
                    .order_by(AuditEntry.id.desc()).limit(_LIMIT))


class FirmRecords:
    """The firm's visits (deleted ones too, whose history stays) with their people, and its follow-ups, as the
    viewer may see them (tenant scope): each read once for the page's timeline and its change history."""

    def __init__(self, firm: Firm):
        self.firm = firm

    @cached_property
    def visits(self) -> list[Visit]:
        return list(db.session.scalars(_VISITS, {"firm_id": self.firm.id}))

    @cached_property
    def follow_ups(self) -> list[FollowUp]:
        return list(db.session.scalars(_FOLLOW_UPS, {"firm_id": self.firm.id}))


def firm_timeline(firm: Firm, user, records: Optional[FirmRecords] = None) -> list[TimelineItem]:
    """Visits, follow-ups, event registrations and check-ins, credit applications and their stages: newest first.

    Every query goes through the tenant scope, so a bank user sees only their bank's rows; a visit's summary is
    shown only to those who may read it (``Visit.can_read_notes``).
    """
    records = records or FirmRecords(firm)
    items: list[TimelineItem] = []
    visits = [v for v in records.visits if not v.is_deleted]
    bank_names = {}
    if user.bank_id is None and visits:
        from crm.orgs.models import Organisation

        ids = {v.bank_id for v in visits}
        bank_names = {o.id: o.display_name for o in db.session.scalars(sa.select(Organisation).where(Organisation.id.in_(ids)))}
    for v in visits:
        items.append(TimelineItem(v.visited_on, "visit", v,
                                  {"notes": v.can_read_notes(user), "bank": bank_names.get(v.bank_id, "")}))
    for f in records.follow_ups:
        items.append(TimelineItem(f.due_on, "follow_up", f))
    for r in db.session.scalars(_REGISTRATIONS, {"firm_id": firm.id}):
        items.append(TimelineItem(r.event.held_on, "registration", r))
        if r.checked_in_at is not None:
            items.append(TimelineItem(r.event.held_on, "checkin", r))
    apps = db.session.scalars(_APPLICATIONS, {"firm_id": firm.id}).all()
    for a in apps:
        items.append(TimelineItem(a.accepted_on, "credit", a))
    if apps:
        for s in db.session.scalars(_STAGES, {"ids": [a.id for a in apps]}):
            if s.from_stage is not None:
                items.append(TimelineItem(s.changed_on, "stage", s))
    items.sort(key=lambda i: i.sort_key, reverse=True)
    return items


@dataclass
class HistoryEntry:
    entry: AuditEntry
    actor: str
    changes: list[tuple[str, Any, Any]]


REDACTED = "***"


def _load(text: Optional[str]) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def firm_history(firm: Firm, user, limit: int = 100, records: Optional[FirmRecords] = None) -> list[HistoryEntry]:
    """Audit entries of the firm itself and of the viewer's own related records (contacts, visits, follow-ups,
    the bank's account), newest first.

    The firm is shared master data, so its own entries are read across banks, but the name of an editor from
    another bank is withheld (it would reveal that bank's interest in the firm). Related records go through the
    tenant scope; visit summaries are redacted for viewers who may not read them.
    """
    from crm.auth.models import User

    records = records or FirmRecords(firm)
    visits = {v.id: v for v in records.visits}
    params = {"firm_id": firm.id, "limit": limit, "visit_ids": list(visits),
              "follow_up_ids": [f.id for f in records.follow_ups]}
    firm_entries = db.session.scalars(_FIRM_ENTRIES, {"firm_id": firm.id, "limit": limit}).all()
    other_entries = db.session.scalars(_RELATED_ENTRIES, params).all()
    entries = sorted({e.id: e for e in [*firm_entries, *other_entries]}.values(), key=lambda e: e.id, reverse=True)
    entries = entries[:limit]
    # the actors: mostly people the page has loaded already (the visits' RMs, the viewer), read only otherwise
    users = {}
    for uid in {e.user_id for e in entries if e.user_id}:
        loaded = db.session.identity_map.get(db.session.identity_key(User, uid))
        if loaded is not None and not sa.inspect(loaded).expired:  # (expired after a commit: read with the rest)
            users[uid] = loaded
    missing = {e.user_id for e in entries if e.user_id and e.user_id not in users}
    if missing:
        users.update((u.id, u) for u in db.session.scalars(sa.select(User).where(User.id.in_(missing))))
    out = []
    for e in entries:
        same_side = user.bank_id is None or e.bank_id == user.bank_id
        actor_user = users.get(e.user_id)
        if actor_user is None:
            actor = "—"
        elif same_side:
            actor = actor_user.display_name
        else:
            actor = ""  # the template says "another organisation"
        before, after = _load(e.before), _load(e.after)
        if e.object_type == "visit":
            v = visits.get(e.object_id)
            if v is None or not v.can_read_notes(user):
                for d in (before, after):
                    if "summary" in d:
                        d["summary"] = REDACTED
        keys = [k for k in (after or before) if k not in ("modified_at", "created_at", "version", "id")]
        changes = [(k, before.get(k), after.get(k)) for k in keys]
        out.append(HistoryEntry(e, actor, changes))
    return out
