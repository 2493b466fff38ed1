"""Factories for events tests: events, registrations, firms with contacts."""
from __future__ import annotations

import itertools
from datetime import date, datetime, timezone
from typing import Optional

from crm.events.models import (
    CheckinMethod,
    Event,
    EventKind,
    EventStatus,
    Registration,
    RegistrationSource,
    RegistrationStatus,
)
from crm.events import services
from crm.extensions import db
from tests import factories

_seq = itertools.count(1)
_mobiles = itertools.count(1)


def mobile(n: Optional[int] = None) -> str:
    """A valid unique mainland mobile."""
    n = next(_mobiles) if n is None else n
    return f"139{n:08d}"


def event(organisers, camp, *, title: Optional[str] = None, held_on: date = date(2026, 6, 18),
          capacity: Optional[int] = None, status: EventStatus = EventStatus.PLANNED, code: Optional[str] = None,
          **kw) -> Event:
    n = next(_seq)
    e = Event(code=code or f"T-{n:05d}", campaign_id=camp.id, title=title or f"银企对接会{n}", kind=kw.pop("kind", EventKind.PARK),
              held_on=held_on, capacity=capacity, status=status, organisers=list(organisers), **kw)
    db.session.add(e)
    db.session.flush()
    return e


def registration(ev: Event, firm=None, *, name: str = "张三", mob: Optional[str] = None, checked_in: bool = False,
                 source: RegistrationSource = RegistrationSource.INVITED,
                 status: RegistrationStatus = RegistrationStatus.REGISTERED, **kw) -> Registration:
    firm = firm or factories.firm()
    r = Registration(event_id=ev.id, firm_id=firm.id, person_name=name, mobile=mob or mobile(), source=source,
                     status=status, **kw)
    if checked_in:
        r.checked_in_at = datetime(2026, 6, 18, 2, 0, tzinfo=timezone.utc)
        r.checkin_method = CheckinMethod.STAFF
    db.session.add(r)
    db.session.flush()
    return r


def firm_with_contact(owner, *, name: Optional[str] = None, industry: str = "ai", street=None, mob: Optional[str] = None,
                      person: str = "联系人"):
    f = factories.firm(name, industry=industry, street_id=street.id if street is not None else None)
    factories.contact(f, owner, name=person, mobile=mob or mobile())
    return f


def event_data(event: Event, **changes) -> services.EventData:
    """The event as it is, with ``changes``: what its edit form carries when only those fields are changed."""
    data = dict(title=event.title, kind=event.kind, held_on=event.held_on, campaign_id=event.campaign_id,
                code=event.code, start_time=event.start_time, end_time=event.end_time, venue=event.venue,
                capacity=event.capacity, status=event.status, description=event.description,
                organiser_ids=[o.id for o in event.organisers], industry_codes=[i.code for i in event.industries],
                staff_ids=[u.id for u in event.staff], deals_signed=event.deals_signed,
                deals_signed_fen=event.deals_signed_fen, intentions=event.intentions,
                intentions_fen=event.intentions_fen)
    data.update(changes)
    return services.EventData(**data)
