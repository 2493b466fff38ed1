"""Firms, each bank's account with a firm, and contacts. Services validate, mutate, flush and audit; never commit."""
from __future__ import annotations

from datetime import date
from typing import Any, Callable, Mapping, Optional

import sqlalchemy as sa
from flask_babel import gettext as _

from crm.auth.models import Role, User
from crm.core import audit
from crm.core.db import upsert_insert
from crm.core.edits import DomainError, StaleEditError, check_version  # noqa: F401 (re-exported for the views)
from crm.core.models import Area, Industry, IndustrySection, Street
from crm.core.validators import ValidationError, normalize_credit_code, normalize_mobile, normalize_text
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount, SizeClass, SmeTier


class FirmError(DomainError):
    """A refused change; ``str()`` is a message for the user, ``field`` the form field it belongs to."""

    def __init__(self, message: str, *, field: Optional[str] = None, existing: Optional[Firm] = None):
        super().__init__(message, field=field)
        #: for a duplicate credit code: the firm that already has it
        self.existing = existing


# --------------------------------------------------------------------------------------------------
# Firms
# --------------------------------------------------------------------------------------------------

#: the editable columns of a firm (every DOMAIN.md field)
FIRM_FIELDS = (
    "name", "credit_code", "area_code", "street_id", "industry_code", "section_code", "size_class", "founded_on",
    "registered_capital_fen", "headcount", "high_tech_cert_no", "high_tech_issued_on", "sme_tier", "is_tech_sme",
    "invention_patents", "utility_models", "design_patents", "software_copyrights", "is_cross_border",
)
COUNT_FIELDS = ("invention_patents", "utility_models", "design_patents", "software_copyrights")


def find_firm_by_code(code: str) -> Optional[Firm]:
    """The firm with this (normalised) credit code, or None."""
    return db.session.scalar(sa.select(Firm).where(Firm.credit_code == code))


def clean_firm_data(data: Mapping[str, Any], *, current: Optional[Firm] = None,
                    lookup: Optional[Callable[[type, Any], Any]] = None) -> dict:
    """Validate and normalise firm fields (only the keys given); raise FirmError naming the field.

    ``lookup(model, key)`` finds a code-list row (district, street, industry, section) or None, for a caller that
    has read the code lists already (the firms ledger, once per file); ``db.session.get`` by default."""
    get = lookup or db.session.get
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in FIRM_FIELDS:
            continue
        if isinstance(value, str):
            value = normalize_text(value)
            if value == "" and key not in ("name", "credit_code"):
                value = None
        out[key] = value
    if "name" in out:
        name = out["name"] or ""
        if not name:
            raise FirmError(_("The firm name is required."), field="name")
        if len(name) > 120:
            raise FirmError(_("The firm name may have at most 120 characters."), field="name")
    if "credit_code" in out:
        try:
            out["credit_code"] = normalize_credit_code(out["credit_code"])
        except ValidationError as exc:
            raise FirmError(str(exc), field="credit_code") from None
        other = find_firm_by_code(out["credit_code"])
        if other is not None and (current is None or other.id != current.id):
            raise FirmError(_("A firm with this unified social credit code is already registered."),
                            field="credit_code", existing=other)
    if out.get("area_code") is not None and get(Area, out["area_code"]) is None:
        raise FirmError(_("Unknown district."), field="area_code")
    if out.get("street_id") is not None:
        street = get(Street, int(out["street_id"]))
        area_code = out.get("area_code", current.area_code if current else None)
        if street is None:
            raise FirmError(_("Unknown street."), field="street_id")
        if area_code is None:
            out["area_code"] = street.area_code
        elif street.area_code != area_code:
            raise FirmError(_("The street is not in the chosen district."), field="street_id")
        out["street_id"] = street.id
    if "industry_code" in out:
        if out["industry_code"] is None:
            out["industry_code"] = "other"
        if get(Industry, out["industry_code"]) is None:
            raise FirmError(_("Unknown industry."), field="industry_code")
    if out.get("section_code") is not None:
        out["section_code"] = str(out["section_code"]).upper()
        if get(IndustrySection, out["section_code"]) is None:
            raise FirmError(_("The industry section must be one letter A–T."), field="section_code")
    if out.get("size_class") is not None:
        try:
            out["size_class"] = SizeClass(out["size_class"])
        except ValueError:
            raise FirmError(_("Unknown size class."), field="size_class") from None
    if "sme_tier" in out:
        try:
            out["sme_tier"] = SmeTier(out["sme_tier"] or SmeTier.NONE)
        except ValueError:
            raise FirmError(_("Unknown SME tier."), field="sme_tier") from None
    for key in (*COUNT_FIELDS, "headcount", "registered_capital_fen"):
        if key in out:
            if out[key] is None and key in COUNT_FIELDS:
                out[key] = 0
            if out[key] is not None and int(out[key]) < 0:
                raise FirmError(_("The number may not be negative."), field=key)
    if out.get("high_tech_cert_no") is not None and len(out["high_tech_cert_no"]) > 40:
        raise FirmError(_("The certificate number may have at most 40 characters."), field="high_tech_cert_no")
    for key in ("founded_on", "high_tech_issued_on"):
        if isinstance(out.get(key), date) and out[key] > date.today().replace(year=date.today().year + 1):
            raise FirmError(_("The date lies in the future."), field=key)
    for key in ("is_tech_sme", "is_cross_border"):
        if key in out:
            out[key] = bool(out[key])
    return out


def create_firm(data: Mapping[str, Any], *, user: Optional[User]) -> Firm:
    """Register a firm (the shared master record); a bank user's bank also gets its account with the firm."""
    values = clean_firm_data(data)
    if "name" not in values or "credit_code" not in values:
        raise FirmError(_("The firm name and credit code are required."), field="name")
    values.setdefault("industry_code", "other")
    firm = Firm(created_by_id=getattr(user, "id", None), **values)
    try:
        with db.session.begin_nested():  # two registrations of one code at once: the loser gets the usual answer
            db.session.add(firm)
            db.session.flush()
    except sa.exc.IntegrityError:
        existing = find_firm_by_code(values["credit_code"])
        if existing is None:
            raise
        raise FirmError(_("A firm with this unified social credit code is already registered."),
                        field="credit_code", existing=existing) from None
    audit.record_create(firm, user=user)
    if user is not None and user.bank_id is not None:
        ensure_account(firm, user.bank_id, user=user, owner=user if user.role == Role.RM else None)
    return firm


def update_firm(firm: Firm, data: Mapping[str, Any], *, user: Optional[User], version=None) -> bool:
    """Change a firm's fields (only the keys given); True when something changed."""
    check_version(firm, version)
    values = clean_firm_data(data, current=firm)
    before = audit.snapshot(firm)
    changed = False
    for key, value in values.items():
        if getattr(firm, key) != value:
            setattr(firm, key, value)
            changed = True
    if not changed:
        return False
    db.session.flush()
    audit.record_update(firm, before, user=user)
    return True


def insert_or_ignore(model):
    """``INSERT INTO model`` in the engine's dialect, ready for ``.on_conflict_do_nothing(...)``."""
    return upsert_insert(model, db.session.get_bind(mapper=sa.inspect(model)).dialect.name)


def _find_account(firm_id: int, bank_id: int) -> Optional[FirmAccount]:
    return db.session.scalar(
        sa.select(FirmAccount).where(FirmAccount.firm_id == firm_id, FirmAccount.bank_id == bank_id)
    )


def ensure_account(firm: Firm, bank_id: int, *, user: Optional[User] = None, owner: Optional[User] = None,
                   branch_id: Optional[int] = None) -> FirmAccount:
    """The bank's account with the firm, created (and audited) when missing.

    Race-free: two requests creating the same account at once (two visit saves, a visit and an import) both get
    the one row. The insert is ``INSERT ... ON CONFLICT (bank_id, firm_id) DO NOTHING``: on PostgreSQL the second
    insert waits for the first transaction and then does nothing (no UniqueViolation, no aborted transaction),
    on SQLite writers are serialised anyway. Only the request whose insert made the row audits its creation.
    """
    account = _find_account(firm.id, bank_id)
    if account is not None:
        return account
    if owner is not None and branch_id is None and owner.org is not None and owner.org.is_branch:
        branch_id = owner.org_id
    created_id = db.session.execute(
        insert_or_ignore(FirmAccount)
        .values(firm_id=firm.id, bank_id=bank_id, owner_id=getattr(owner, "id", None), branch_id=branch_id)
        .on_conflict_do_nothing(index_elements=[FirmAccount.bank_id, FirmAccount.firm_id])
        .returning(FirmAccount.id)
    ).scalar_one_or_none()
    account = _find_account(firm.id, bank_id)
    if account is None:  # only when bank_id lies outside the current tenant scope
        raise LookupError(f"firm account of bank {bank_id} for firm {firm.id} is outside the current scope")
    if created_id is not None:
        audit.record_create(account, user=user)
    return account


def set_account_owner(account: FirmAccount, owner: Optional[User], *, user: User) -> None:
    """Assign the bank's relationship manager for a firm (a user of the same bank)."""
    if owner is not None and owner.bank_id != account.bank_id:
        raise FirmError(_("The relationship manager must belong to your bank."), field="owner_id")
    before = audit.snapshot(account)
    account.owner_id = owner.id if owner else None
    if owner is not None and owner.org is not None and owner.org.is_branch:
        account.branch_id = owner.org_id
    db.session.flush()
    audit.record_update(account, before, user=user)


def _active_bank_users(bank_id: int, *columns) -> sa.Select:
    """``columns`` of the active users of a bank (all its branches), by name."""
    return sa.select(*columns).where(User.bank_id == bank_id, User.is_active_flag.is_(True)).order_by(User.name,
                                                                                                       User.id)


_BANK_USERS = _active_bank_users(sa.bindparam("bank_id"), User)  # (built once: crm.core.scoping keeps its scoped form)


def bank_users(bank_id: int) -> list[User]:
    """Active users of a bank (all its branches), by name: for a caller that uses the objects (a choice's save);
    :func:`bank_user_choices` for a select's choices. An empty list without a bank."""
    if bank_id is None:
        return []
    return list(db.session.scalars(_BANK_USERS, {"bank_id": bank_id}))


_BANK_USER_CHOICES = _active_bank_users(sa.bindparam("bank_id"), User.id, User.display_name)


def bank_user_choices(bank_id: int) -> list[tuple[str, str]]:
    """``(id, display name)`` of :func:`bank_users`, for a select's choices: two columns, no ``User`` object each
    (a bank has 131 users at scale 1; loading them was a tenth of the firm page, 2.5 ms of the firm list)."""
    if bank_id is None:
        return []
    return [(str(uid), label) for uid, label in db.session.execute(_BANK_USER_CHOICES, {"bank_id": bank_id})]


# --------------------------------------------------------------------------------------------------
# Contacts
# --------------------------------------------------------------------------------------------------


def contact_org_id(user) -> Optional[int]:
    """The organisation a user records contacts for: their bank, or the bureau for bureau staff."""
    if user is None:
        return None
    if user.bank_id is not None:
        return user.bank_id
    if user.role == Role.BUREAU:
        return user.org_id
    return None


def can_manage_contact(user, contact: Contact) -> bool:
    """Only the organisation that recorded a contact edits it and sees its full number."""
    org_id = contact_org_id(user)
    return org_id is not None and contact.bank_id == org_id


def clean_contact_data(data: Mapping[str, Any]) -> dict:
    out = {}
    name = normalize_text(data.get("name"))
    if not name:
        raise FirmError(_("The contact's name is required."), field="name")
    if len(name) > 60:
        raise FirmError(_("The name may have at most 60 characters."), field="name")
    out["name"] = name
    out["title"] = normalize_text(data.get("title"))[:60]
    mobile = normalize_text(data.get("mobile"))
    if mobile:
        try:
            mobile = normalize_mobile(mobile)
        except ValidationError as exc:
            raise FirmError(str(exc), field="mobile") from None
    out["mobile"] = mobile
    email = normalize_text(data.get("email"))
    if email and ("@" not in email or len(email) > 120 or " " in email):
        raise FirmError(_("The e-mail address is not valid."), field="email")
    out["email"] = email
    return out


def create_contact(firm: Firm, data: Mapping[str, Any], *, user: User) -> Contact:
    """Record a person at a firm for the user's organisation."""
    org_id = contact_org_id(user)
    if org_id is None:
        raise FirmError(_("Only bank and bureau staff record contacts."))
    values = clean_contact_data(data)
    contact = Contact(firm_id=firm.id, bank_id=org_id, created_by_id=user.id, **values)
    db.session.add(contact)
    db.session.flush()
    audit.record_create(contact, user=user)
    return contact


def update_contact(contact: Contact, data: Mapping[str, Any], *, user: User, version=None) -> bool:
    check_version(contact, version)
    values = clean_contact_data(data)
    before = audit.snapshot(contact)
    changed = False
    for key, value in values.items():
        if getattr(contact, key) != value:
            setattr(contact, key, value)
            changed = True
    if changed:
        db.session.flush()
        audit.record_update(contact, before, user=user)
    return changed


def delete_contact(contact: Contact, *, user: User) -> None:
    """Hide a contact (soft delete): it leaves lists, search and exports; the audit keeps a masked copy."""
    before = audit.snapshot(contact)
    contact.is_deleted = True
    db.session.flush()
    audit.record("delete", contact, before=before, user=user)


def reveal_contact(contact: Contact, *, user: User) -> str:
    """The full mobile for its recording organisation only; every reveal is audited."""
    if not can_manage_contact(user, contact):
        raise FirmError(_("Only the organisation that recorded this contact may see the full number."))
    audit.record("contact.reveal", contact, user=user, detail=f"firm={contact.firm_id}")
    return contact.mobile


_VISIBLE_CONTACTS = (sa.select(Contact).where(Contact.firm_id == sa.bindparam("firm_id"), Contact.is_deleted.is_(False))
                     .order_by(Contact.id))


def visible_contacts(firm: Firm) -> list[Contact]:
    """The firm's contacts the viewer may see (tenant scope applies)."""
    return list(db.session.scalars(_VISIBLE_CONTACTS, {"firm_id": firm.id}))
