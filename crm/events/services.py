"""Events services: events, registrations, invitations, check-in, exports and the after-event report.

Services mutate, flush and audit; they never commit (the view does, once). Every query goes through the
scoped session, so a bank user only ever touches events organised by their bank or its branches.
Refusals are :class:`EventError` whose ``str()`` is a message for the page.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable, Optional, Sequence

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from crm.core import audit, spreadsheets
from crm.core.db import local_time_text, utcnow
from crm.core.edits import DomainError, StaleEditError
from crm.core.scoping import current_scope, scoped
from crm.core.validators import ValidationError, mask_mobile, normalize_credit_code, normalize_mobile, row_id
from crm.dashboard import snapshots
from crm.events.models import (
    CheckinMethod,
    Event,
    EventKind,
    EventStatus,
    ExportColumnSet,
    Registration,
    RegistrationSource,
    RegistrationStatus,
    event_organiser,
    new_public_token,
)
from crm.extensions import db
from crm.firms.models import Contact, Firm
from crm.orgs.models import Organisation, OrgKind

#: how long after an event its attendees' visits and credits count as "what came after"
FOLLOW_THROUGH_DAYS = 90


class EventError(DomainError):
    """A refused action, with a message for the person at the screen (``field``, ``code``: see DomainError)."""


class CapacityError(EventError):
    """The event is full."""


class DuplicateMobileError(EventError):
    """This mobile is already registered for the event."""


class ConflictError(EventError, StaleEditError):
    """Someone else saved the record meanwhile (optimistic lock): a refusal, answered as a stale edit (409)."""


# ---------------------------------------------------------------------------------------------------------
# Who may do what
# ---------------------------------------------------------------------------------------------------------


def can_organise(user) -> bool:
    """Bank users, the bureau (co-organiser) and the admin may create events and manage registrations."""
    return bool(user and user.is_authenticated and (user.is_bank_user or user.is_bureau or user.is_admin))


def user_org_ids(user) -> set[int]:
    """The organisations a user speaks for: their own, and for bank users the bank and its branches."""
    ids = {user.org_id}
    if user.bank_id is not None:
        ids.add(user.bank_id)
        ids.update(db.session.scalars(sa.select(Organisation.id).where(Organisation.parent_id == user.bank_id)))
    return ids


def is_organiser(user, event: Event) -> bool:
    """The user's organisation (or, for bank users, their bank or one of its branches) organises the event."""
    org_ids = {o.id for o in event.organisers}
    return bool(org_ids & user_org_ids(user))


def may_see_full_mobiles(user, event: Event) -> bool:
    """Full mobiles only for the event's organisers and the admin (PIPL minimisation); everyone else masked."""
    if user is None or not user.is_authenticated:
        return False
    return user.is_admin or is_organiser(user, event)


def show_mobile(mobile: str, full: bool) -> str:
    return mobile if full else mask_mobile(mobile)


# ---------------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------------

_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{1,39}$")


def next_event_code(year: int) -> str:
    """The next free ``EV-<year>-NNNN`` across every bank (codes are globally unique)."""
    prefix = f"EV-{year}-"
    codes = db.session.scalars(
        sa.select(Event.code).where(Event.code.startswith(prefix, autoescape=True))
        .execution_options(skip_tenant_scope=True)
    ).all()
    numbers = [int(c[len(prefix):]) for c in codes if c[len(prefix):].isdigit()]
    return f"{prefix}{(max(numbers) + 1) if numbers else 1:04d}"


def code_taken(code: str, exclude_id: Optional[int] = None) -> bool:
    """Whether an event code is used by any event, visible or not (the answer reveals nothing else)."""
    stmt = sa.select(Event.id).where(sa.func.upper(Event.code) == code.upper())
    if exclude_id is not None:
        stmt = stmt.where(Event.id != exclude_id)
    return db.session.scalar(stmt.execution_options(skip_tenant_scope=True)) is not None


def normalize_event_code(raw: Optional[str]) -> str:
    code = (raw or "").strip().upper()
    if code and not _CODE_RE.match(code):
        raise EventError(_("The event code may contain letters, digits, - and _ only (2–40 characters)."),
                         field="code")
    return code


@dataclass
class EventData:
    """What an event form carries (already validated as types by the form)."""

    title: str
    kind: EventKind
    held_on: date
    campaign_id: int
    code: str = ""
    start_time: Optional[time] = None
    end_time: Optional[time] = None
    venue: str = ""
    capacity: Optional[int] = None
    status: EventStatus = EventStatus.PLANNED
    description: str = ""
    organiser_ids: Sequence[int] = ()
    industry_codes: Sequence[str] = ()
    staff_ids: Sequence[int] = ()
    deals_signed: int = 0
    deals_signed_fen: int = 0
    intentions: int = 0
    intentions_fen: int = 0


def _organisers_for(user, organiser_ids: Iterable[int]) -> list[Organisation]:
    ids = {int(i) for i in organiser_ids}
    orgs = list(db.session.scalars(sa.select(Organisation).where(Organisation.id.in_(ids)))) if ids else []
    if user is not None and user.is_bank_user:
        mine = user_org_ids(user)
        if not any(o.id in mine for o in orgs):
            # a bank user always organises with their own bank (else they could not see the event)
            orgs.append(db.session.get(Organisation, user.org_id))
    elif user is not None and user.is_bureau and not orgs:
        orgs.append(db.session.get(Organisation, user.org_id))
    if not orgs:
        raise EventError(_("Choose at least one organiser."), field="organisers")
    return orgs


def _apply(event: Event, data: EventData, user) -> None:
    from crm.auth.models import User
    from crm.core.models import Industry

    if data.end_time and data.start_time and data.end_time < data.start_time:
        raise EventError(_("The end time is before the start time."), field="end_time")
    if data.capacity is not None and data.capacity <= 0:
        raise EventError(_("The capacity must be a positive number."), field="capacity")
    for n in (data.deals_signed, data.deals_signed_fen, data.intentions, data.intentions_fen):
        if n is not None and n < 0:
            raise EventError(_("Outcome numbers cannot be negative."), field="deals_signed")
    event.title = data.title.strip()
    event.kind = EventKind(data.kind)
    event.held_on = data.held_on
    event.campaign_id = data.campaign_id
    event.start_time = data.start_time
    event.end_time = data.end_time
    event.venue = (data.venue or "").strip()
    event.capacity = data.capacity
    event.status = EventStatus(data.status)
    event.description = data.description or ""
    event.deals_signed = data.deals_signed or 0
    event.deals_signed_fen = data.deals_signed_fen or 0
    event.intentions = data.intentions or 0
    event.intentions_fen = data.intentions_fen or 0
    event.organisers = _organisers_for(user, data.organiser_ids)
    codes = list(data.industry_codes or ())
    event.industries = list(db.session.scalars(sa.select(Industry).where(Industry.code.in_(codes)))) if codes else []
    staff_ids = [int(i) for i in data.staff_ids or ()]
    event.staff = list(db.session.scalars(sa.select(User).where(User.id.in_(staff_ids)))) if staff_ids else []
    if event.capacity is not None and event.id is not None:
        taken = active_count(event)
        if taken > event.capacity:
            raise CapacityError(
                _("%(n)d people are already registered; the capacity cannot be lower.", n=taken), field="capacity")


def create_event(data: EventData, user) -> Event:
    """Create an event; a code like EV-2026-0001 is generated when none is given."""
    code = normalize_event_code(data.code)
    if code and code_taken(code):
        raise EventError(_("The event code %(code)s is already used.", code=code), field="code")
    event = Event(code=code or next_event_code(data.held_on.year), created_by_id=getattr(user, "id", None),
                  title="", kind=EventKind(data.kind), held_on=data.held_on, campaign_id=data.campaign_id)
    _apply(event, data, user)
    db.session.add(event)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        raise EventError(_("The event code %(code)s is already used.", code=event.code), field="code") from exc
    audit.record("create", event, after=_event_snapshot(event), user=user)
    return event


def update_event(event: Event, data: EventData, user, version: Optional[int] = None) -> Event:
    """Update an event; a stale version raises :class:`ConflictError` (the view answers 409)."""
    if version is not None and int(version) != event.version:
        raise ConflictError(_("Someone else changed this event meanwhile. Your changes were not saved; please "
                              "reload."), code="conflict")
    before = _event_snapshot(event)
    code = normalize_event_code(data.code)
    if code and code != event.code:
        if code_taken(code, exclude_id=event.id):
            raise EventError(_("The event code %(code)s is already used.", code=code), field="code")
        event.code = code
    _apply(event, data, user)
    db.session.flush()
    changed_before, changed_after = audit.diff(before, _event_snapshot(event))
    if changed_after:
        audit.record("update", event, before=changed_before, after=changed_after, user=user)
    return event


def publish(event: Event, user) -> Event:
    """Open the public self-registration page (a random token in the link)."""
    if not event.public_token:
        event.public_token = new_public_token()
        db.session.flush()
        audit.record("event.publish", event, user=user)
    return event


def unpublish(event: Event, user) -> Event:
    if event.public_token:
        event.public_token = None
        db.session.flush()
        audit.record("event.unpublish", event, user=user)
    return event


@dataclass
class EventPage:
    items: list
    total: int  #: events in the whole list (every page)
    next_cursor: Optional[str]
    is_first: bool


_MIDNIGHT = time(0, 0)


def event_lists(today: date, *, status: Optional[str] = None, q: str = "", upcoming_after: Optional[str] = None,
                past_after: Optional[str] = None, per_page: int = 50) -> tuple[EventPage, EventPage]:
    """Upcoming (soonest first, by start time within a day) and past (latest first) events visible to the viewer,
    a page of each after its cursor (keyset, the firm list's cursor format: a far page costs what the first
    costs), with the size of each whole list."""
    from crm.firms.queries import decode_cursor, keyset_page

    stmt = sa.select(Event)
    if status:
        stmt = stmt.where(Event.status == EventStatus(status))
    if q:
        stmt = stmt.where(sa.or_(Event.title.contains(q, autoescape=True), Event.code.contains(q, autoescape=True),
                                 Event.venue.contains(q, autoescape=True)))
    upcoming, past = stmt.where(Event.held_on >= today), stmt.where(Event.held_on < today)
    totals = [db.session.scalar(sa.select(sa.func.count()).select_from(s.subquery())) or 0 for s in (upcoming, past)]

    starts = sa.func.coalesce(Event.start_time, _MIDNIGHT)  # no start time: first of its day
    cursor = _decode_upcoming_cursor(upcoming_after)
    if cursor is not None:
        day, start, ident = cursor
        upcoming = upcoming.where(Event.held_on >= day, sa.or_(
            Event.held_on > day, starts > start, sa.and_(starts == start, Event.id > ident)))
    items, next_cursor = keyset_page(upcoming.order_by(Event.held_on, starts, Event.id), per_page,
                                     lambda e: [e.held_on.isoformat(), (e.start_time or _MIDNIGHT).isoformat(), e.id])
    upcoming_page = EventPage(items, totals[0], next_cursor, cursor is None)

    cursor = decode_cursor(past_after, "date")
    if cursor is not None:
        day, ident = cursor
        past = past.where(Event.held_on <= day, sa.or_(Event.held_on < day, Event.id < ident))
    items, next_cursor = keyset_page(past.order_by(Event.held_on.desc(), Event.id.desc()), per_page,
                                     lambda e: [e.held_on.isoformat(), e.id])
    past_page = EventPage(items, totals[1], next_cursor, cursor is None)
    return upcoming_page, past_page


def _decode_upcoming_cursor(cursor: Optional[str]) -> Optional[tuple[date, time, int]]:
    """(day, start time, id) of an upcoming-events cursor; None when missing or malformed (page 1)."""
    from crm.firms.queries import _is_row_id

    if not cursor or len(cursor) > 200:
        return None
    try:
        day, start, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not _is_row_id(ident):
            return None
        return date.fromisoformat(day), time.fromisoformat(start), ident
    except (ValueError, TypeError):
        return None


# ---------------------------------------------------------------------------------------------------------
# Registrations
# ---------------------------------------------------------------------------------------------------------


def active_count(event: Event) -> int:
    """Registrations that take a place: everything not cancelled (walk-ins included)."""
    return db.session.scalar(
        sa.select(sa.func.count(Registration.id)).where(Registration.event_id == event.id,
                                                        Registration.status != RegistrationStatus.CANCELLED)
    ) or 0


def places_left(event: Event) -> Optional[int]:
    if event.capacity is None:
        return None
    return max(event.capacity - active_count(event), 0)


def _check_capacity(event: Event, adding: int = 1) -> None:
    left = places_left(event)
    if left is not None and adding > left:
        if left == 0:
            raise CapacityError(_("The event is full: all %(cap)d places are taken.", cap=event.capacity),
                                code="full")
        raise CapacityError(_("Only %(left)d of %(cap)d places are left; %(n)d cannot be added.",
                              left=left, cap=event.capacity, n=adding), code="full")


def _check_open(event: Event) -> None:
    if event.status == EventStatus.CANCELLED:
        raise EventError(_("This event was cancelled; it takes no registrations."), code="cancelled")


def _mobile_taken(event: Event, mobile: str, exclude_id: Optional[int] = None) -> bool:
    stmt = sa.select(Registration.id).where(Registration.event_id == event.id, Registration.mobile == mobile)
    if exclude_id is not None:
        stmt = stmt.where(Registration.id != exclude_id)
    return db.session.scalar(stmt.execution_options(skip_tenant_scope=True)) is not None


def duplicate_message(mobile: str) -> str:
    return _("The mobile %(mobile)s is already registered for this event.", mobile=mask_mobile(mobile))


def get_or_create_firm(credit_code: str, name: str, user, industry_code: str = "other") -> Firm:
    """The shared firm master record by credit code, created when new (a valid code is required)."""
    try:
        code = normalize_credit_code(credit_code)
    except ValidationError as exc:
        raise EventError(str(exc), field="credit_code") from exc
    firm = db.session.scalar(sa.select(Firm).where(Firm.credit_code == code))
    if firm is not None:
        return firm
    name = (name or "").strip()
    if not name:
        raise EventError(_("Enter the firm's name to add a new firm."), field="firm_name")
    firm = Firm(name=name[:120], credit_code=code, industry_code=industry_code or "other",
                created_by_id=getattr(user, "id", None))
    db.session.add(firm)
    db.session.flush()
    audit.record_create(firm, user=user)
    return firm


def find_firm_by_name(name: str) -> Optional[Firm]:
    name = (name or "").strip()
    if not name:
        return None
    return db.session.scalar(sa.select(Firm).where(Firm.name == name).order_by(Firm.id).limit(1))


@dataclass
class PersonData:
    person_name: str
    mobile: str
    person_title: str = ""
    need_summary: str = ""
    preferred_bank_id: Optional[int] = None
    source: RegistrationSource = RegistrationSource.INVITED
    status: RegistrationStatus = RegistrationStatus.REGISTERED
    remarks: str = ""


def add_registration(event: Event, firm: Firm, person: PersonData, user, *, consent_at: Optional[datetime] = None,
                     check_in: bool = False) -> Registration:
    """Register a person; refuses a full event and a mobile already registered for it."""
    _check_open(event)
    try:
        mobile = normalize_mobile(person.mobile)
    except ValidationError as exc:
        raise EventError(str(exc), field="mobile") from exc
    name = (person.person_name or "").strip()
    if not name:
        raise EventError(_("Enter the person's name."), field="person_name")
    if _mobile_taken(event, mobile):
        raise DuplicateMobileError(duplicate_message(mobile), code="duplicate", field="mobile")
    status = RegistrationStatus(person.status)
    if status != RegistrationStatus.CANCELLED:
        _check_capacity(event)
    reg = Registration(event_id=event.id, firm_id=firm.id, person_name=name[:60], person_title=(person.person_title or "")[:60],
                       mobile=mobile, need_summary=(person.need_summary or "")[:300],
                       preferred_bank_id=person.preferred_bank_id or None, source=RegistrationSource(person.source),
                       status=status, remarks=(person.remarks or "")[:300], consent_at=consent_at,
                       created_by_id=getattr(user, "id", None))
    if check_in:
        reg.checked_in_at = utcnow()
        reg.checkin_method = CheckinMethod.STAFF
    db.session.add(reg)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # the (event, mobile) unique constraint: a concurrent twin won
        raise DuplicateMobileError(duplicate_message(mobile), code="duplicate", field="mobile") from exc
    audit.record_create(reg, user=user, bank_id=_audit_bank(user))
    return reg


def update_registration(reg: Registration, person: PersonData, user, *, absence_reason: str = "",
                        version: Optional[int] = None) -> Registration:
    if version is not None and int(version) != reg.version:
        raise ConflictError(_("Someone else changed this registration meanwhile. Your changes were not saved; "
                              "please reload."), code="conflict")
    try:
        mobile = normalize_mobile(person.mobile)
    except ValidationError as exc:
        raise EventError(str(exc), field="mobile") from exc
    if _mobile_taken(reg.event, mobile, exclude_id=reg.id):
        raise DuplicateMobileError(duplicate_message(mobile), code="duplicate", field="mobile")
    new_status = RegistrationStatus(person.status)
    if reg.status == RegistrationStatus.CANCELLED and new_status != RegistrationStatus.CANCELLED:
        _check_capacity(reg.event)
    before = audit.snapshot(reg)
    reg.person_name = person.person_name.strip()[:60]
    reg.person_title = (person.person_title or "")[:60]
    reg.mobile = mobile
    reg.need_summary = (person.need_summary or "")[:300]
    reg.preferred_bank_id = person.preferred_bank_id or None
    reg.source = RegistrationSource(person.source)
    reg.status = new_status
    reg.remarks = (person.remarks or "")[:300]
    reg.absence_reason = (absence_reason or "")[:200]
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        raise DuplicateMobileError(duplicate_message(mobile), code="duplicate", field="mobile") from exc
    audit.record_update(reg, before, user=user, bank_id=_audit_bank(user))
    return reg


def _audit_bank(user) -> Optional[int]:
    return getattr(user, "bank_id", None)


def _event_snapshot(event: Event) -> dict:
    """The audit snapshot of an event (times as text: the shared JSON helper knows dates, not times)."""
    snap = audit.snapshot(event)
    for key in ("start_time", "end_time"):
        if isinstance(snap.get(key), time):
            snap[key] = snap[key].isoformat(timespec="minutes")
    snap["organisers"] = sorted(o.id for o in event.organisers)
    snap["industries"] = sorted(i.code for i in event.industries)
    snap["staff"] = sorted(u.id for u in event.staff)
    return snap


# ---------------------------------------------------------------------------------------------------------
# Bulk invitation from a firm filter
# ---------------------------------------------------------------------------------------------------------


@dataclass
class FirmFilter:
    industry: str = ""
    area: str = ""
    street_id: Optional[int] = None
    q: str = ""
    never_reached: bool = False
    high_tech: bool = False

    def is_empty(self) -> bool:
        return not (self.industry or self.area or self.street_id or self.q or self.never_reached or self.high_tech)


def reached_firm_ids(campaign_id: int) -> sa.Select:
    """Firms reached in a campaign (DOMAIN: a visit, or a checked-in registration), as the viewer sees them."""
    from crm.visits.models import Visit

    visited = sa.select(Visit.firm_id).where(Visit.campaign_id == campaign_id, Visit.is_deleted.is_(False))
    attended = (sa.select(Registration.firm_id).join(Event, Event.id == Registration.event_id)
                .where(Event.campaign_id == campaign_id, Registration.checked_in_at.is_not(None)))
    return sa.union(visited, attended)


def filter_firms(event: Event, flt: FirmFilter, *, limit: int = 500) -> list[Firm]:
    """Firms matching a filter that are not yet registered for the event."""
    stmt = sa.select(Firm)
    if flt.industry:
        stmt = stmt.where(Firm.industry_code == flt.industry)
    if flt.area:
        stmt = stmt.where(Firm.area_code == flt.area)
    if flt.street_id:
        stmt = stmt.where(Firm.street_id == flt.street_id)
    if flt.q:
        stmt = stmt.where(sa.or_(Firm.name.contains(flt.q, autoescape=True),
                                 Firm.credit_code.contains(flt.q.upper(), autoescape=True)))
    if flt.high_tech:
        stmt = stmt.where(Firm.high_tech_issued_on.is_not(None),
                          Firm.high_tech_issued_on > event.held_on - timedelta(days=3 * 365 + 1))
    if flt.never_reached:
        reached = reached_firm_ids(event.campaign_id).subquery()
        stmt = stmt.where(Firm.id.not_in(sa.select(reached.c.firm_id)))
    already = sa.select(Registration.firm_id).where(Registration.event_id == event.id)
    stmt = stmt.where(Firm.id.not_in(already)).order_by(Firm.name, Firm.id).limit(limit)
    return list(db.session.scalars(stmt))


def invite_contact(firm: Firm) -> Optional[Contact]:
    """The first live contact with a mobile that the viewer's organisation recorded (scoped)."""
    return db.session.scalar(
        sa.select(Contact).where(Contact.firm_id == firm.id, Contact.is_deleted.is_(False), Contact.mobile != "")
        .order_by(Contact.id).limit(1)
    )


@dataclass
class InviteResult:
    invited: list[Registration] = field(default_factory=list)
    #: (firm, reason) for firms that could not be invited
    skipped: list[tuple[Firm, str]] = field(default_factory=list)


def invite_firms(event: Event, firm_ids: Iterable[int], user, *, source: RegistrationSource = RegistrationSource.INVITED
                 ) -> InviteResult:
    """Invite each firm's contact (all or nothing on capacity; firms without a contact are skipped)."""
    _check_open(event)
    ids = sorted({int(i) for i in firm_ids})
    firms = list(db.session.scalars(sa.select(Firm).where(Firm.id.in_(ids)).order_by(Firm.name, Firm.id))) if ids else []
    result = InviteResult()
    plan: list[tuple[Firm, Contact, str]] = []
    registered_firms = set(db.session.scalars(sa.select(Registration.firm_id).where(Registration.event_id == event.id)))
    seen_mobiles: set[str] = set()
    for firm in firms:
        if firm.id in registered_firms:
            result.skipped.append((firm, _("already registered")))
            continue
        contact = invite_contact(firm)
        if contact is None:
            result.skipped.append((firm, _("no contact with a mobile")))
            continue
        try:
            mobile = normalize_mobile(contact.mobile)
        except ValidationError:
            result.skipped.append((firm, _("the contact's mobile is not valid")))
            continue
        if mobile in seen_mobiles or _mobile_taken(event, mobile):
            result.skipped.append((firm, _("the contact's mobile is already registered")))
            continue
        seen_mobiles.add(mobile)
        plan.append((firm, contact, mobile))
    if plan:
        _check_capacity(event, adding=len(plan))
    for firm, contact, mobile in plan:
        reg = add_registration(event, firm, PersonData(person_name=contact.name, person_title=contact.title,
                                                       mobile=mobile, source=source), user)
        result.invited.append(reg)
    if plan:
        audit.record("event.invite", event, user=user, detail=f"invited={len(plan)} skipped={len(result.skipped)}")
    return result


# ---------------------------------------------------------------------------------------------------------
# The check-in desk
# ---------------------------------------------------------------------------------------------------------


def check_in(reg: Registration, user, method: CheckinMethod = CheckinMethod.STAFF) -> bool:
    """Check a person in; True when this call did it, False when they already were (idempotent, atomic)."""
    _check_open(reg.event)
    now = utcnow()
    values: dict[str, Any] = {"checked_in_at": now, "checkin_method": method, "version": Registration.version + 1,
                              "modified_at": now}
    if reg.status == RegistrationStatus.CANCELLED:
        values["status"] = RegistrationStatus.CONFIRMED  # they came after all
    # the dashboard: this firm's shard; an edit of the event in flight commits first, or is not placed
    with snapshots.placed_writes("registration", firm_ids=[reg.firm_id], event_ids=[reg.event_id]):
        result = db.session.execute(
            sa.update(Registration).where(Registration.id == reg.id, Registration.firm_id == reg.firm_id,
                                          Registration.checked_in_at.is_(None))
            .values(**values).execution_options(synchronize_session=False)
        )
    db.session.refresh(reg)
    if result.rowcount != 1:
        return False
    audit.record("registration.checkin", reg, user=user, bank_id=_audit_bank(user),
                 after={"checkin_method": method.value}, detail=f"event={reg.event_id}")
    return True


def undo_check_in(reg: Registration, user) -> bool:
    """Undo a check-in; True when this call did it, False when there was nothing to undo (idempotent)."""
    now = utcnow()
    with snapshots.placed_writes("registration", firm_ids=[reg.firm_id], event_ids=[reg.event_id]):
        result = db.session.execute(
            sa.update(Registration).where(Registration.id == reg.id, Registration.firm_id == reg.firm_id,
                                          Registration.checked_in_at.is_not(None))
            .values(checked_in_at=None, checkin_method=None, version=Registration.version + 1, modified_at=now)
            .execution_options(synchronize_session=False)
        )
    db.session.refresh(reg)
    if result.rowcount != 1:
        return False
    audit.record("registration.undo_checkin", reg, user=user, bank_id=_audit_bank(user),
                 detail=f"event={reg.event_id}")
    return True


def registration_by_token(token: str) -> Optional[Registration]:
    if not token or len(token) > 24:
        return None
    return db.session.scalar(sa.select(Registration).where(Registration.checkin_token == token))


def walk_in(event: Event, user, *, person: PersonData, firm_name: str = "", credit_code: str = "",
            firm_id: Optional[int] = None) -> Registration:
    """Add a walk-in on the spot and check them in."""
    firm = None
    if firm_id:
        firm = db.session.get(Firm, int(firm_id))
    if firm is None and credit_code.strip():
        firm = get_or_create_firm(credit_code, firm_name, user)
    if firm is None:
        firm = find_firm_by_name(firm_name)
    if firm is None:
        raise EventError(_("Firm not found: enter its unified social credit code to add it."), field="credit_code")
    person.source = RegistrationSource.WALK_IN
    person.status = RegistrationStatus.CONFIRMED
    return add_registration(event, firm, person, user, check_in=True)


@dataclass
class DeskCounts:
    registered: int
    checked_in: int
    walk_ins: int
    capacity: Optional[int]

    def as_dict(self) -> dict:
        return {"registered": self.registered, "checked_in": self.checked_in, "walk_ins": self.walk_ins,
                "capacity": self.capacity}


def desk_counts(event: Event) -> DeskCounts:
    """Registered (not cancelled, walk-ins apart), checked in (all), walk-ins."""
    R = Registration
    row = db.session.execute(
        sa.select(
            sa.func.count(R.id).filter(R.status != RegistrationStatus.CANCELLED,
                                       R.source != RegistrationSource.WALK_IN),
            sa.func.count(R.id).filter(R.checked_in_at.is_not(None)),
            sa.func.count(R.id).filter(R.source == RegistrationSource.WALK_IN,
                                       R.status != RegistrationStatus.CANCELLED),
        ).where(R.event_id == event.id)
    ).one()
    return DeskCounts(row[0] or 0, row[1] or 0, row[2] or 0, event.capacity)


def search_registrations(event: Event, q: str = "", *, limit: int = 100) -> list[Registration]:
    """Desk search: by person name, firm name, or the tail of the mobile (digits)."""
    stmt = (sa.select(Registration).join(Firm, Firm.id == Registration.firm_id)
            .options(contains_eager(Registration.firm)).where(Registration.event_id == event.id))
    q = (q or "").strip()
    if q:
        digits = re.sub(r"\D", "", q)
        conds = [Registration.person_name.contains(q, autoescape=True), Firm.name.contains(q, autoescape=True)]
        if digits and digits == q.replace(" ", "") and len(digits) <= 11:
            conds.append(Registration.mobile.endswith(digits, autoescape=True))
        stmt = stmt.where(sa.or_(*conds))
    stmt = stmt.order_by(Registration.checked_in_at.is_not(None), Firm.name, Registration.person_name,
                         Registration.id).limit(limit)
    return list(db.session.scalars(stmt))


# ---------------------------------------------------------------------------------------------------------
# Attendee list export
# ---------------------------------------------------------------------------------------------------------

SOURCE_LABELS = {"invited": "邀请", "self": "自主报名", "bureau": "科创局推荐", "walk_in": "现场登记"}
STATUS_LABELS = {"registered": "已报名", "confirmed": "已确认", "cancelled": "已取消"}
METHOD_LABELS = {"staff": "工作人员签到", "qr": "扫码签到", "paper": "纸质签到"}


@dataclass(frozen=True)
class Column:
    key: str
    header: str


#: every column an organiser may choose, in display order; headers match the attendance ledger where they can
COLUMNS: tuple[Column, ...] = (
    Column("seq", "序号"),
    Column("event_code", "活动编号"),
    Column("event_date", "活动日期"),
    Column("firm_name", "单位名称"),
    Column("credit_code", "统一社会信用代码"),
    Column("industry", "重点产业"),
    Column("person_name", "姓名"),
    Column("person_title", "职务"),
    Column("mobile", "联系电话"),
    Column("need_summary", "融资需求"),
    Column("preferred_bank", "意向银行"),
    Column("source", "报名来源"),
    Column("status", "报名状态"),
    Column("registered_at", "报名时间"),
    Column("checked_in_at", "签到时间"),
    Column("checkin_method", "签到方式"),
    Column("absence_reason", "缺席原因"),
    Column("remarks", "备注"),
)
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
DEFAULT_COLUMNS = ("seq", "firm_name", "person_name", "person_title", "mobile", "status", "checked_in_at")

ATTENDANCE_CHOICES = ("all", "attended", "absent")


def clean_columns(keys: Iterable[str]) -> list[str]:
    """Known column keys in the order given, without repeats; the defaults when none are valid."""
    out: list[str] = []
    for k in keys or ():
        if k in COLUMN_BY_KEY and k not in out:
            out.append(k)
    return out or list(DEFAULT_COLUMNS)


@dataclass
class ExportFilter:
    statuses: Sequence[str] = ()
    attendance: str = "all"

    def describe(self) -> dict:
        return {"status": sorted(self.statuses), "attendance": self.attendance}


def _filtered(stmt, flt: ExportFilter):
    """``stmt`` (over Registration) narrowed by the export filter's statuses and attendance."""
    statuses = [RegistrationStatus(s) for s in flt.statuses if s in STATUS_LABELS]
    if statuses:
        stmt = stmt.where(Registration.status.in_(statuses))
    if flt.attendance == "attended":
        stmt = stmt.where(Registration.checked_in_at.is_not(None))
    elif flt.attendance == "absent":
        stmt = stmt.where(Registration.checked_in_at.is_(None))
    return stmt


def export_registrations(event: Event, flt: ExportFilter) -> list[Registration]:
    stmt = (sa.select(Registration).join(Firm, Firm.id == Registration.firm_id)
            .options(contains_eager(Registration.firm).joinedload(Firm.industry))
            .where(Registration.event_id == event.id))
    stmt = _filtered(stmt, flt).order_by(Firm.name, Registration.person_name, Registration.id)
    return list(db.session.scalars(stmt))


_EXPORT_YIELD_PER = 2000


def count_attendee_export(event: Event, flt: ExportFilter) -> int:
    """How many rows :func:`build_attendee_export` gives for this filter (one COUNT, for the audit).

    The export's inner join to the firm drops no row (a registration's firm is a non-null foreign key), so the
    count reads the event's registrations alone (16 ms for 50,000 rows on SQLite, 26 with the join).
    """
    stmt = sa.select(sa.func.count(Registration.id)).where(Registration.event_id == event.id)
    return db.session.scalar(_filtered(stmt, flt)) or 0


@dataclass
class AttendeeExport:
    headers: list[str]
    #: tuples in header order, produced lazily from a server-side cursor (consume once, inside the request)
    rows: Iterable[tuple]
    full_mobiles: bool
    filename_stem: str


def build_attendee_export(event: Event, user, columns: Iterable[str], flt: ExportFilter, *,
                          times_as_text: bool = False) -> AttendeeExport:
    """Rows (tuples in the order of ``headers``) for the chosen columns and filters; mobiles masked unless permitted.

    Times are naive local ``datetime`` values (what an XLSX date cell needs), or with ``times_as_text`` the text
    ``YYYY-MM-DD HH:MM:SS`` a CSV writes for them, formatted by the database.

    Two statements whatever the size: the preferred banks' names (now), and the rows themselves (lazily, when
    ``rows`` is first iterated, under the tenant scope in force now), fetched ``_EXPORT_YIELD_PER`` at a time.
    Wrap ``rows`` in :func:`flask.stream_with_context` to send it as a streamed response.
    """
    from crm.core.models import Industry

    keys = clean_columns(columns)
    full = may_see_full_mobiles(user, event)
    banks: dict[int, str] = {}
    if "preferred_bank" in keys:
        bank_ids = _filtered(sa.select(Registration.preferred_bank_id).where(
            Registration.event_id == event.id, Registration.preferred_bank_id.is_not(None)), flt).distinct()
        banks = {o.id: o.display_name for o in db.session.scalars(sa.select(Organisation).where(
            Organisation.id.in_(bank_ids)))}
    columns, plan = _export_plan(keys, full, banks, times_as_text)
    stmt = (sa.select(*columns)
            .join(Firm, Firm.id == Registration.firm_id)
            .outerjoin(Industry, Industry.code == Firm.industry_code)
            .where(Registration.event_id == event.id))
    stmt = _filtered(stmt, flt).order_by(Firm.name, Registration.person_name, Registration.id)
    headers = [COLUMN_BY_KEY[k].header for k in keys]
    suffix = {"attended": "（已签到）", "absent": "（未签到）"}.get(flt.attendance, "")
    stem = f"{event.title}_参会名单{suffix}_{event.held_on.isoformat()}"
    constants = {"event_code": event.code, "event_date": event.held_on}
    return AttendeeExport(headers, _export_rows(stmt, current_scope(), plan, constants), full, stem)


_UTC_TO_EXPORT = spreadsheets.DEFAULT_TZ.utcoffset(None)  # the exports' fixed offset (UTC+8)


def _export_local_time(value: Optional[datetime]) -> Optional[datetime]:
    """A stored UTC instant as the naive local time the spreadsheets write (what they would do to an aware
    value, :data:`crm.core.spreadsheets.DEFAULT_TZ`): SQLite gives it naive in UTC, PostgreSQL aware. Whole
    seconds, as the CSV writes them: a date cell keeps a fraction, which Excel rounds when it shows seconds
    (16:59:59.9997 would read 17:00:00 there and 16:59:59 in the CSV)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return (value + _UTC_TO_EXPORT).replace(microsecond=0)
    return value.astimezone(spreadsheets.DEFAULT_TZ).replace(tzinfo=None, microsecond=0)


def _export_plan(keys: list[str], full: bool, banks: dict[int, str], times_as_text: bool = False):
    """The columns to select (only those the chosen keys need, in the order of the keys) and the plan of the
    rows: ``(size, seq_at, consts, transforms)`` — the row length, where the sequence number goes (or None),
    ``(position, key)`` of the event's constants and ``(position, function)`` of the values that need one."""
    from crm.core.models import Industry

    def raw(column):  # an enum's stored value as plain text: no Enum object per cell, one dict look-up
        return sa.type_coerce(column, sa.String())

    def local_time(column):
        if times_as_text:  # the CSV's text, formatted by the database: no datetime object per cell
            return local_time_text(column, db.session.get_bind().dialect.name, _UTC_TO_EXPORT), None
        # a UTC timestamp read plainly and moved to the export's local time in one step
        return sa.type_coerce(column, sa.DateTime(timezone=True)), _export_local_time

    def label(labels):
        return lambda v: labels.get(v, v) if v is not None else ""

    sources = {
        "firm_name": (Firm.name, None), "credit_code": (Firm.credit_code, None),
        "industry": (Industry.name_zh, lambda v: v or ""),
        "person_name": (Registration.person_name, None), "person_title": (Registration.person_title, None),
        "mobile": (Registration.mobile, None if full else mask_mobile),
        "need_summary": (Registration.need_summary, None),
        "preferred_bank": (Registration.preferred_bank_id, lambda v: banks.get(v, "") if v else ""),
        "source": (raw(Registration.source), label(SOURCE_LABELS)),
        "status": (raw(Registration.status), label(STATUS_LABELS)),
        "registered_at": local_time(Registration.created_at),
        "checked_in_at": local_time(Registration.checked_in_at),
        "checkin_method": (raw(Registration.checkin_method), label(METHOD_LABELS)),
        "absence_reason": (Registration.absence_reason, None), "remarks": (Registration.remarks, None),
    }
    columns, seq_at, consts, transforms = [], None, [], []
    for pos, key in enumerate(keys):
        if key == "seq":
            seq_at = pos
        elif key in ("event_code", "event_date"):
            consts.append((pos, key))
        else:
            column, transform = sources[key]
            columns.append(column)
            if transform is not None:
                transforms.append((pos, transform))
    if not columns:
        columns.append(Registration.id)
    return columns, (len(keys), seq_at, consts, transforms)


def _export_rows(stmt, scope, plan: tuple, constants: dict):
    """Export tuples from ``stmt``, run when the first row is asked for and fetched a few thousand at a time.

    The response streams after the view has returned (and its request teardown has reset the tenant scope), so
    the query runs under the ``scope`` captured when the export was built, on the session of the context that
    :func:`flask.stream_with_context` pushes again. Uses no ORM object and no ``current_user``.
    """
    size, seq_at, consts, transforms = plan
    #: values that are not columns, by ascending position: inserted in that order, each lands where its key is
    inserts = sorted(([(seq_at, None)] if seq_at is not None else []) + [(pos, constants[k]) for pos, k in consts])
    with scoped(scope):
        if db.session.get_bind().dialect.name == "postgresql":
            # yield_per streams through a server-side cursor, which PostgreSQL plans for its first 10% of rows
            # (cursor_tuple_fraction): an export reads them all, so plan for all (this transaction only)
            db.session.execute(sa.text("SET LOCAL cursor_tuple_fraction = 1.0"))
        result = db.session.execute(stmt.execution_options(yield_per=_EXPORT_YIELD_PER))
        try:
            if not inserts and not transforms:
                for r in result:  # plain columns in order: the row is the export row
                    yield tuple(r)
                return
            for seq, r in enumerate(result, 1):
                row = list(r)
                for pos, value in inserts:
                    row.insert(pos, seq if pos == seq_at else value)
                for pos, fn in transforms:
                    row[pos] = fn(row[pos])
                yield tuple(row[:size])
        finally:
            result.close()


def record_export(event: Event, user, *, fmt: str, columns: Sequence[str], flt: ExportFilter, rows: int,
                  full_mobiles: bool, kind: str = "attendee_list") -> None:
    """One audit row per export: who, tenant, filter, row count, format (EX-4)."""
    detail = json.dumps({"kind": kind, "format": fmt, "rows": rows, "columns": list(columns),
                         "filter": flt.describe(), "full_mobiles": full_mobiles}, ensure_ascii=False)
    audit.record("export", event, user=user, bank_id=_audit_bank(user), detail=detail)


def column_sets(user) -> list[ExportColumnSet]:
    return list(db.session.scalars(sa.select(ExportColumnSet).where(ExportColumnSet.user_id == user.id)
                                   .order_by(ExportColumnSet.name)))


def get_column_set(user, set_id) -> Optional[ExportColumnSet]:
    set_id = row_id(set_id)  # (out of the database's integer range: no such set, not a 500)
    if set_id is None:
        return None
    cs = db.session.get(ExportColumnSet, set_id)
    return cs if cs is not None and cs.user_id == user.id else None


def column_set_keys(cs: ExportColumnSet) -> list[str]:
    try:
        keys = json.loads(cs.columns)
    except (TypeError, ValueError):
        keys = []
    return clean_columns(k for k in keys if isinstance(k, str))


def save_column_set(user, name: str, columns: Iterable[str]) -> ExportColumnSet:
    """Create or replace the user's named column set."""
    name = (name or "").strip()[:60]
    if not name:
        raise EventError(_("Give the column set a name."), field="name")
    keys = clean_columns(columns)
    cs = db.session.scalar(sa.select(ExportColumnSet).where(ExportColumnSet.user_id == user.id,
                                                            ExportColumnSet.name == name))
    if cs is None:
        cs = ExportColumnSet(user_id=user.id, name=name, columns=json.dumps(keys))
        db.session.add(cs)
        db.session.flush()
        audit.record_create(cs, user=user, bank_id=_audit_bank(user))
    else:
        before = audit.snapshot(cs)
        cs.columns = json.dumps(keys)
        audit.record_update(cs, before, user=user, bank_id=_audit_bank(user))
    return cs


def delete_column_set(user, cs: ExportColumnSet) -> None:
    audit.record_delete(cs, user=user, bank_id=_audit_bank(user))
    db.session.delete(cs)
    db.session.flush()


# ---------------------------------------------------------------------------------------------------------
# The sign-in sheet (签到表)
# ---------------------------------------------------------------------------------------------------------


def sign_in_sheet_rows(event: Event, user) -> tuple[list[dict], bool]:
    regs = export_registrations(event, ExportFilter(statuses=("registered", "confirmed")))
    full = may_see_full_mobiles(user, event)
    rows = [{"seq": i, "firm_name": r.firm.name, "person_name": r.person_name, "person_title": r.person_title,
             "mobile": show_mobile(r.mobile, full), "checked_in": r.checked_in_at is not None}
            for i, r in enumerate(regs, 1)]
    return rows, full


# ---------------------------------------------------------------------------------------------------------
# After the event
# ---------------------------------------------------------------------------------------------------------


@dataclass
class EventReport:
    registered: int
    attended: int
    walk_ins: int
    no_shows: int
    no_show_rate: Optional[float]
    attendee_firms: int
    new_firms: int
    window_end: date
    visits: int
    visited_firms: int
    applications: int
    approvals: int
    approved_fen: int


def after_event_report(event: Event) -> EventReport:
    """What the event produced, counted through the scoped session (a bank sees only its own numbers)."""
    from crm.credit.models import APPROVED_STAGES, CreditApplication
    from crm.visits.models import Visit

    R = Registration
    counts = desk_counts(event)
    expected = db.session.scalar(sa.select(sa.func.count(R.id)).where(
        R.event_id == event.id, R.status != RegistrationStatus.CANCELLED, R.source != RegistrationSource.WALK_IN)) or 0
    came = db.session.scalar(sa.select(sa.func.count(R.id)).where(
        R.event_id == event.id, R.status != RegistrationStatus.CANCELLED, R.source != RegistrationSource.WALK_IN,
        R.checked_in_at.is_not(None))) or 0
    no_shows = expected - came
    firm_ids = set(db.session.scalars(sa.select(R.firm_id).where(R.event_id == event.id, R.checked_in_at.is_not(None))))
    # firms new to the campaign: no earlier visit in the campaign and no earlier attended event of it
    earlier_visits = set(db.session.scalars(sa.select(Visit.firm_id).where(
        Visit.campaign_id == event.campaign_id, Visit.visited_on < event.held_on, Visit.is_deleted.is_(False),
        Visit.firm_id.in_(firm_ids)))) if firm_ids else set()
    earlier_events = set(db.session.scalars(
        sa.select(R.firm_id).join(Event, Event.id == R.event_id).where(
            Event.campaign_id == event.campaign_id, Event.id != event.id, Event.held_on < event.held_on,
            R.checked_in_at.is_not(None), R.firm_id.in_(firm_ids)))) if firm_ids else set()
    new_firms = len(firm_ids - earlier_visits - earlier_events)
    end = event.held_on + timedelta(days=FOLLOW_THROUGH_DAYS)
    visits = visited = apps = approvals = approved_fen = 0
    if firm_ids:
        vrow = db.session.execute(sa.select(sa.func.count(Visit.id), sa.func.count(sa.distinct(Visit.firm_id))).where(
            Visit.firm_id.in_(firm_ids), Visit.is_deleted.is_(False), Visit.visited_on >= event.held_on,
            Visit.visited_on <= end)).one()
        visits, visited = vrow[0] or 0, vrow[1] or 0
        apps = db.session.scalar(sa.select(sa.func.count(CreditApplication.id)).where(
            CreditApplication.firm_id.in_(firm_ids), CreditApplication.accepted_on >= event.held_on,
            CreditApplication.accepted_on <= end)) or 0
        arow = db.session.execute(sa.select(sa.func.count(CreditApplication.id),
                                            sa.func.coalesce(sa.func.sum(CreditApplication.approved_fen), 0)).where(
            CreditApplication.firm_id.in_(firm_ids), CreditApplication.stage.in_(list(APPROVED_STAGES)),
            CreditApplication.decided_on >= event.held_on, CreditApplication.decided_on <= end)).one()
        approvals, approved_fen = arow[0] or 0, int(arow[1] or 0)
    return EventReport(
        registered=counts.registered, attended=counts.checked_in, walk_ins=counts.walk_ins, no_shows=no_shows,
        no_show_rate=(no_shows / expected) if expected else None, attendee_firms=len(firm_ids), new_firms=new_firms,
        window_end=end, visits=visits, visited_firms=visited, applications=apps, approvals=approvals,
        approved_fen=approved_fen,
    )


def organiser_choices() -> list[Organisation]:
    """Organisations that may organise: banks and branches, the bureau, streets, parks (active ones)."""
    return list(db.session.scalars(sa.select(Organisation).where(Organisation.is_active.is_(True)).order_by(
        Organisation.kind, Organisation.code)))


def bank_choices() -> list[Organisation]:
    return list(db.session.scalars(sa.select(Organisation).where(
        Organisation.kind == OrgKind.BANK, Organisation.parent_id.is_(None), Organisation.is_active.is_(True))
        .order_by(Organisation.code)))


def organised_by_sql(org_ids: Iterable[int]) -> sa.Select:
    return sa.select(event_organiser.c.event_id).where(event_organiser.c.org_id.in_(list(org_ids)))
