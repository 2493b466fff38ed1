"""PIPL services: a data subject's copy of their records (PI-4, Art. 45) and the retention job (PI-3, Art. 47).

Copy of one person's records
----------------------------
Each bank is a separate personal-information handler, and so is the bureau: a request is answered with the
records *the requester's organisation* holds on the person, found by their mobile (and, when given, their
exact name), with full values (it is the person's own data):

* contacts the organisation recorded (``Contact.bank_id``; soft-deleted contacts are gone and not included),
* registrations for events the organisation organises (a bank: the bank or one of its branches),
* visits of the bank where one of those contacts was the person met (``Visit.contact_id``; not deleted).

The admin answers for every organisation. The tenant scope (``crm.core.scoping``) already limits a bank user's
statements to the bank; the explicit conditions below say the same thing for every role, so the bureau and the
admin (whose scope is every bank) get exactly their organisation's share.

Retention
---------
:func:`erase_expired` erases, in one transaction, the personal fields of contacts soft-deleted more than N days
ago (``SoftDeleteMixin`` records no deletion time: a deleted row's ``modified_at`` is the time it was deleted,
since nothing edits a deleted contact) and the mobile and title of registrations for events held more than N
days ago. Rows are kept, so foreign keys, campaign counts and the audit history stay intact. An erased row no
longer matches the selection, so a second run erases nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Optional

import sqlalchemy as sa

from crm.auth.models import User
from crm.core import audit
from crm.core.db import utcnow
from crm.core.formatting import today_local
from crm.core.models import VisitMode
from crm.core.spreadsheets import Sheet
from crm.core.validators import mask_mobile
from crm.events.models import Event, Registration, event_organiser
from crm.events.services import STATUS_LABELS, user_org_ids
from crm.extensions import db
from crm.firms.models import Contact, Firm
from crm.firms.services import contact_org_id
from crm.orgs.models import Organisation
from crm.visits.models import Visit

# ---------------------------------------------------------------------------------------------------------
# PI-4: a copy of one person's records
# ---------------------------------------------------------------------------------------------------------

CONTACT_HEADERS = ["企业名称", "姓名", "职务", "手机号码", "电子邮箱", "登记机构", "登记时间"]
REGISTRATION_HEADERS = ["活动名称", "活动日期", "企业名称", "姓名", "职务", "手机号码", "报名状态", "签到时间",
                        "同意时间"]
VISIT_HEADERS = ["走访日期", "走访方式", "企业名称", "客户经理", "走访纪要"]


@dataclass
class SubjectRecords:
    """The rows of one person's copy, one list per kind of record (dicts keyed by header)."""

    contacts: list[dict] = field(default_factory=list)
    registrations: list[dict] = field(default_factory=list)
    visits: list[dict] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {"contacts": len(self.contacts), "registrations": len(self.registrations),
                "visits": len(self.visits)}

    @property
    def empty(self) -> bool:
        return not any(self.counts.values())


def _contact_conds(user: User) -> list:
    """Contacts the user's organisation recorded (the admin: every organisation's)."""
    if user.is_admin:
        return []
    org_id = contact_org_id(user)
    return [Contact.bank_id == org_id] if org_id is not None else [sa.false()]


def _registration_conds(user: User) -> list:
    """Registrations for events the user's organisation organises (a bank: the bank or one of its branches)."""
    if user.is_admin:
        return []
    organised = sa.select(event_organiser.c.event_id).where(event_organiser.c.org_id.in_(user_org_ids(user)))
    return [Registration.event_id.in_(organised)]


def _visit_conds(user: User) -> list:
    """The bank's own visits; the bureau records no visits, so it holds none."""
    if user.is_admin:
        return []
    return [Visit.bank_id == user.bank_id] if user.bank_id is not None else [sa.false()]


def find_subject_records(user: User, mobile: str, name: str = "") -> SubjectRecords:
    """Every record the user's organisation holds with this (normalised) mobile, and this exact name if given."""
    found = SubjectRecords()
    contact_stmt = (
        sa.select(Contact, Firm.name, Organisation.name)
        .join(Firm, Firm.id == Contact.firm_id)
        .join(Organisation, Organisation.id == Contact.bank_id)
        .where(Contact.mobile == mobile, Contact.is_deleted.is_(False), *_contact_conds(user))
        .order_by(Contact.created_at, Contact.id)
    )
    if name:
        contact_stmt = contact_stmt.where(Contact.name == name)
    contact_ids = []
    for contact, firm_name, org_name in db.session.execute(contact_stmt):
        contact_ids.append(contact.id)
        found.contacts.append(dict(zip(CONTACT_HEADERS, (
            firm_name, contact.name, contact.title, contact.mobile, contact.email, org_name, contact.created_at))))

    reg_stmt = (
        sa.select(Registration, Event.title, Event.held_on, Firm.name)
        .join(Event, Event.id == Registration.event_id)
        .join(Firm, Firm.id == Registration.firm_id)
        .where(Registration.mobile == mobile, *_registration_conds(user))
        .order_by(Event.held_on, Registration.id)
    )
    if name:
        reg_stmt = reg_stmt.where(Registration.person_name == name)
    for reg, title, held_on, firm_name in db.session.execute(reg_stmt):
        found.registrations.append(dict(zip(REGISTRATION_HEADERS, (
            title, held_on, firm_name, reg.person_name, reg.person_title, reg.mobile,
            STATUS_LABELS.get(reg.status.value, reg.status.value), reg.checked_in_at, reg.consent_at))))

    if contact_ids:
        visit_stmt = (
            sa.select(Visit, Firm.name, User.name, User.username, VisitMode.name_zh)
            .join(Firm, Firm.id == Visit.firm_id)
            .join(User, User.id == Visit.rm_id)
            .join(VisitMode, VisitMode.code == Visit.mode_code)
            .where(Visit.contact_id.in_(contact_ids), Visit.is_deleted.is_(False), *_visit_conds(user))
            .order_by(Visit.visited_on, Visit.id)
        )
        for visit, firm_name, rm_name, rm_username, mode in db.session.execute(visit_stmt):
            found.visits.append(dict(zip(VISIT_HEADERS, (
                visit.visited_on, mode, firm_name, rm_name or rm_username, visit.summary))))
    return found


def subject_sheets(found: SubjectRecords) -> list[Sheet]:
    """One sheet per kind of record, always all three (an empty one says "none held"), headers in Chinese."""
    return [
        Sheet("联系人", CONTACT_HEADERS, found.contacts),
        Sheet("活动报名", REGISTRATION_HEADERS, found.registrations),
        Sheet("走访记录", VISIT_HEADERS, found.visits),
    ]


def export_filename() -> str:
    """No personal data in the file name (it may reach logs and download histories)."""
    return f"个人信息副本_{today_local():%Y%m%d}.xlsx"


def record_subject_export(user: User, mobile: str, found: SubjectRecords, *, name_given: bool) -> None:
    """Audit one request: the masked mobile and the row counts, never the full number (nor the name)."""
    counts = found.counts
    masked = mask_mobile(mobile)
    audit.record("pi.subject_export", None, object_type="person", user=user,
                 detail=(f"mobile={masked} name_given={'yes' if name_given else 'no'} contacts={counts['contacts']}"
                         f" registrations={counts['registrations']} visits={counts['visits']}"),
                 after={"mobile": masked, **counts})


# ---------------------------------------------------------------------------------------------------------
# PI-3: the retention job
# ---------------------------------------------------------------------------------------------------------

#: how long personal data of deleted contacts and past events is kept, unless told otherwise (3 years)
DEFAULT_RETENTION_DAYS = 1095
#: the job refuses a shorter retention (a typo must not wipe recent events), like the audit purge
MIN_RETENTION_DAYS = 183
#: what an erased contact is called; its mobile, title and e-mail become empty
ERASED_NAME = "已删除"
#: an erased registration's mobile: this prefix and the row id. The column is NOT NULL and unique per event,
#: so an empty value would collide; "X<id>" is unique, never a valid mobile and fits String(11) up to id 10^10.
ERASED_MOBILE_PREFIX = "X"


@dataclass(frozen=True)
class RetentionResult:
    days: int
    contacts_deleted_before: datetime
    events_held_before: date
    contacts: int
    registrations: int
    dry_run: bool


def _erased_mobile():
    return sa.literal(ERASED_MOBILE_PREFIX, sa.String) + sa.cast(Registration.id, sa.String)


def _expired_contacts(cutoff: datetime) -> list:
    """Deleted more than N days ago and not erased yet."""
    not_erased = sa.or_(Contact.name != ERASED_NAME, Contact.mobile != "", Contact.title != "", Contact.email != "")
    return [Contact.is_deleted.is_(True), Contact.modified_at < cutoff, not_erased]


def _expired_registrations(held_before: date) -> list:
    """For events held more than N days ago and not erased yet."""
    old_events = sa.select(Event.id).where(Event.held_on < held_before)
    not_erased = sa.or_(Registration.mobile != _erased_mobile(), Registration.person_title != "")
    return [Registration.event_id.in_(old_events), not_erased]


def _count(model, conds) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*conds)) or 0


def erase_expired(days: int = DEFAULT_RETENTION_DAYS, *, dry_run: bool = False) -> RetentionResult:
    """Erase personal fields past retention (or only count them with ``dry_run``); audits one entry; no commit.

    :raise ValueError: when ``days`` is below :data:`MIN_RETENTION_DAYS`.
    """
    if days < MIN_RETENTION_DAYS:
        raise ValueError(days)
    cutoff = utcnow() - timedelta(days=days)
    held_before = today_local() - timedelta(days=days)
    contact_conds = _expired_contacts(cutoff)
    reg_conds = _expired_registrations(held_before)
    if dry_run:
        return RetentionResult(days, cutoff, held_before, _count(Contact, contact_conds),
                               _count(Registration, reg_conds), True)
    options = {"synchronize_session": False}
    # bulk updates bump the optimistic-lock version, so an edit form loaded before the erasure is refused (DB-2)
    contacts = db.session.execute(
        sa.update(Contact).where(*contact_conds)
        .values(name=ERASED_NAME, title="", mobile="", email="", version=Contact.version + 1),
        execution_options=options).rowcount
    registrations = db.session.execute(
        sa.update(Registration).where(*reg_conds)
        .values(mobile=_erased_mobile(), person_title="", version=Registration.version + 1),
        execution_options=options).rowcount
    db.session.expire_all()
    audit.record("pi.retention", None, object_type="personal_data",
                 detail=(f"erased contacts={contacts} (deleted before {cutoff:%Y-%m-%d %H:%M} UTC) "
                         f"registrations={registrations} (events held before {held_before.isoformat()}) "
                         f"days={days}"),
                 after={"contacts": contacts, "registrations": registrations, "days": days})
    return RetentionResult(days, cutoff, held_before, contacts, registrations, False)
