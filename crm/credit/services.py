"""Credit services: applications and their stages, pledges, valuations, pools and calendar overrides.

Each function mutates, flushes, writes the audit trail and never commits. Refusals raise
:class:`CreditError`, whose ``str()`` is the user's-language message (Chinese by default) and whose
``code`` is for code and tests.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from crm.auth.models import BANK_ROLES, User
from crm.core import audit
from crm.core.edits import DomainError, check_version
from crm.core.formatting import today_local
from crm.core.models import CreditProduct, DeclineReason, HolidayOverride
from crm.core.validators import ValidationError, normalize_patent_number
from crm.credit import stages as sm
from crm.credit.models import (
    APPROVED_STAGES, CreditApplication, IpAsset, OwnerRelation, PatentKind, Pledge, PledgeStatus,
    SecuritisationPool, Stage, StageChange, Valuation,
)
from crm.extensions import db
from crm.firms.models import Firm
from crm.i18n import lazy_gettext as _l
from crm.orgs.models import Campaign, Organisation

MAX_TERM_MONTHS = 360
MAX_DISCOUNT_BP = 20
MAX_RATE_BP = 5000

#: legal statuses of a patent (CNIPA 法律状态)
LEGAL_VALID = "valid"
LEGAL_PENDING = "pending"
LEGAL_LAPSED = "lapsed"
LEGAL_STATUSES = {
    LEGAL_VALID: _l("Valid (granted)"),
    LEGAL_PENDING: _l("Pending examination"),
    LEGAL_LAPSED: _l("Lapsed or invalidated"),
}


class CreditError(DomainError):
    """A refused credit operation; ``str()`` is a message for people, ``code`` a stable reason."""

    def __init__(self, code: str, message, field: Optional[str] = None):
        super().__init__(message, field=field, code=code)


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def add_months(d: date, months: int) -> date:
    """``d`` plus whole months, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def expected_maturity(app: CreditApplication) -> Optional[date]:
    """The loan's maturity: recorded, else start + term (approved term, else the requested one)."""
    if app.matures_on is not None:
        return app.matures_on
    term = app.term_months or app.requested_term_months
    if not term:
        return None
    start = app.disbursed_on or app.decided_on or app.accepted_on
    return add_months(start, term)


def _require_bank_writer(user: User, bank_id: Optional[int] = None) -> None:
    if user is None or user.role not in BANK_ROLES or user.bank_id is None:
        raise CreditError("forbidden", _l("Only bank staff can change credit records."))
    if bank_id is not None and bank_id != user.bank_id:
        raise CreditError("forbidden", _l("Only bank staff can change credit records."))


def _not_future(day: date, today: date, field: str) -> None:
    if day > today:
        raise CreditError("future_date", _l("The date cannot be in the future."), field)


def _product(code: str) -> CreditProduct:
    product = db.session.get(CreditProduct, code) if code else None
    if product is None:
        raise CreditError("product", _l("Choose a credit product from the list."), "product_code")
    return product


def bank_branches(bank_id: int) -> list[Organisation]:
    return list(db.session.scalars(
        sa.select(Organisation).where(Organisation.parent_id == bank_id, Organisation.is_active.is_(True))
        .order_by(Organisation.code)))


def bank_staff(bank_id: int) -> list[User]:
    return list(db.session.scalars(
        sa.select(User).where(User.bank_id == bank_id, User.role.in_(list(BANK_ROLES)),
                              User.is_active_flag.is_(True)).order_by(User.username)))


def bank_campaigns(bank_id: int) -> list[Campaign]:
    """Campaigns the bank takes part in (newest first)."""
    return list(db.session.scalars(
        sa.select(Campaign).where(Campaign.organisations.any(Organisation.id == bank_id))
        .order_by(Campaign.start_on.desc())))


def campaign_for(bank_id: int, day: date) -> Optional[Campaign]:
    """The bank's campaign whose window contains ``day`` (for the form's default)."""
    for c in bank_campaigns(bank_id):
        if c.start_on <= day <= c.end_on:
            return c
    return None


def find_firm(query: str) -> Optional[Firm]:
    """Resolve what a user typed: a firm id, a credit code (anywhere in the text), or an exact name."""
    from crm.core.validators import normalize_credit_code, normalize_text

    text = normalize_text(query)
    if not text:
        return None
    if text.isdigit() and len(text) < 12:
        return db.session.get(Firm, int(text))
    for token in [text, *text.replace("·", " ").replace("(", " ").replace(")", " ").split()]:
        try:
            code = normalize_credit_code(token)
        except ValidationError:
            continue
        firm = db.session.scalar(sa.select(Firm).where(Firm.credit_code == code))
        if firm is not None:
            return firm
    return db.session.scalar(sa.select(Firm).where(Firm.name == text))



# ----------------------------------------------------------------------------------------------------------
# applications
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ApplicationData:
    firm: Firm
    product_code: str
    requested_fen: int
    accepted_on: date
    campaign_id: int
    branch_id: Optional[int] = None
    rm_id: Optional[int] = None
    requested_term_months: Optional[int] = None
    guarantee: str = ""
    is_first_loan: bool = False
    in_risk_pool: bool = False
    has_subsidy: bool = False
    remarks: str = ""


def _validate_application(user: User, data: ApplicationData, today: date) -> tuple[CreditProduct, User]:
    product = _product(data.product_code)
    if data.firm is None:
        raise CreditError("firm", _l("Choose a registered firm by its name or credit code."), "firm")
    if not isinstance(data.requested_fen, int) or data.requested_fen <= 0:
        raise CreditError("amount", _l("The requested amount must be greater than zero."), "requested_wan")
    _not_future(data.accepted_on, today, "accepted_on")
    if data.requested_term_months is not None and not 0 < data.requested_term_months <= MAX_TERM_MONTHS:
        raise CreditError("term", _l("The term must be between 1 and 360 months."), "requested_term_months")
    campaign = db.session.get(Campaign, data.campaign_id) if data.campaign_id else None
    if campaign is None or all(o.id != user.bank_id for o in campaign.organisations):
        raise CreditError("campaign", _l("Choose a campaign your bank takes part in."), "campaign_id")
    if data.branch_id is not None:
        branch = db.session.get(Organisation, data.branch_id)
        if branch is None or branch.parent_id != user.bank_id:
            raise CreditError("branch", _l("Choose one of your bank's branches."), "branch_id")
    rm = db.session.get(User, data.rm_id) if data.rm_id else user
    if rm is None or rm.bank_id != user.bank_id or rm.role not in BANK_ROLES:
        raise CreditError("rm", _l("Choose a relationship manager of your bank."), "rm_id")
    return product, rm


def create_application(user: User, data: ApplicationData, today: Optional[date] = None) -> CreditApplication:
    """Record an accepted application (materials complete: the SLA clock starts the next day)."""
    today = today or today_local()
    _require_bank_writer(user)
    product, rm = _validate_application(user, data, today)
    branch_id = data.branch_id
    if branch_id is None and rm.org is not None and rm.org.is_branch:
        branch_id = rm.org_id
    app = CreditApplication(
        bank_id=user.bank_id, branch_id=branch_id, rm_id=rm.id, campaign_id=data.campaign_id, firm_id=data.firm.id,
        product_code=product.code, requested_fen=data.requested_fen, accepted_on=data.accepted_on,
        requested_term_months=data.requested_term_months, guarantee=data.guarantee.strip(),
        is_first_loan=data.is_first_loan, in_risk_pool=data.in_risk_pool, has_subsidy=data.has_subsidy,
        remarks=data.remarks.strip(), stage=Stage.ACCEPTED, created_by_id=user.id,
    )
    db.session.add(app)
    db.session.flush()
    app.history.append(StageChange(bank_id=app.bank_id, from_stage=None, to_stage=Stage.ACCEPTED,
                                   changed_on=data.accepted_on, by_id=user.id, note=""))
    db.session.flush()
    audit.record_create(app, user=user)
    return app


def update_application(app: CreditApplication, user: User, data: ApplicationData, version=None,
                       today: Optional[date] = None) -> CreditApplication:
    """Edit an application; the amount, product and acceptance date are frozen once it has been decided."""
    today = today or today_local()
    _require_bank_writer(user, app.bank_id)
    check_version(app, version)
    product, rm = _validate_application(user, data, today)
    frozen_changed = (data.requested_fen != app.requested_fen or data.accepted_on != app.accepted_on
                      or product.code != app.product_code or data.firm.id != app.firm_id)
    if frozen_changed and not app.is_open:
        raise CreditError("frozen", _l("The firm, product, amount and acceptance date cannot change after the "
                                       "decision."))
    if data.accepted_on != app.accepted_on and app.history and any(
            h.changed_on < data.accepted_on for h in app.history if h.from_stage is not None):
        raise CreditError("accepted_after_stage", _l("The acceptance date cannot be after a later stage's date."),
                          "accepted_on")
    if product.code != app.product_code and any(p.status == PledgeStatus.ACTIVE for p in app.pledges) \
            and not product.is_ip_pledge:
        raise CreditError("product_pledges", _l("Release the pledged patents before changing to a product "
                                                "without pledges."), "product_code")
    if app.is_open and data.requested_term_months and app.term_months is None:
        _check_pledges_outlive(app, add_months(data.accepted_on, data.requested_term_months))
    before = audit.snapshot(app)
    app.firm_id = data.firm.id
    app.product_code = product.code
    app.requested_fen = data.requested_fen
    app.accepted_on = data.accepted_on
    app.campaign_id = data.campaign_id
    app.branch_id = data.branch_id
    app.rm_id = rm.id
    app.requested_term_months = data.requested_term_months
    app.guarantee = data.guarantee.strip()
    app.is_first_loan = data.is_first_loan
    app.in_risk_pool = data.in_risk_pool
    app.has_subsidy = data.has_subsidy
    app.remarks = data.remarks.strip()
    first = next((h for h in app.history if h.from_stage is None), None)
    if first is not None:
        first.changed_on = data.accepted_on
    db.session.flush()
    audit.record_update(app, before, user=user)
    return app


@dataclass
class Decision:
    """What a move records besides its date and note (only the fields of the target stage are used)."""

    approved_fen: Optional[int] = None
    rate_bp: Optional[int] = None
    discount_bp: Optional[int] = None
    term_months: Optional[int] = None
    decline_reason_code: Optional[str] = None
    disbursed_fen: Optional[int] = None


def last_change_on(app: CreditApplication) -> date:
    days = [h.changed_on for h in app.history] + [app.accepted_on]
    return max(days)


def _check_pledges_outlive(app: CreditApplication, maturity: Optional[date]) -> None:
    if maturity is None:
        return
    for p in app.pledges:
        if p.status == PledgeStatus.ACTIVE and p.ip_asset.expires_on is not None and p.ip_asset.expires_on < maturity:
            raise CreditError(
                "patent_expires",
                _l("Patent %(no)s expires on %(expiry)s, before the loan matures on %(maturity)s.",
                   no=display_patent_no(p.ip_asset.patent_no), expiry=p.ip_asset.expires_on.isoformat(),
                   maturity=maturity.isoformat()))


def _validate_approval(app: CreditApplication, on: date, d: Decision) -> None:
    if d.approved_fen is None or d.approved_fen <= 0:
        raise CreditError("approved_amount", _l("The approved amount must be greater than zero."), "approved_wan")
    if d.rate_bp is None or not 0 <= d.rate_bp <= MAX_RATE_BP:
        raise CreditError("rate", _l("The executed rate must be between 0% and 50%."), "rate_pct")
    if d.discount_bp is None or not 0 <= d.discount_bp <= MAX_DISCOUNT_BP:
        raise CreditError("discount", _l("The rate discount must be between 0 and 20 BP."), "discount_bp")
    if d.term_months is None or not 0 < d.term_months <= MAX_TERM_MONTHS:
        raise CreditError("term", _l("The term must be between 1 and 360 months."), "term_months")


def _release_active_pledges(app: CreditApplication, on: date, user: User) -> None:
    for p in app.pledges:
        if p.status == PledgeStatus.ACTIVE:
            before = audit.snapshot(p)
            p.status = PledgeStatus.RELEASED
            p.released_on = on
            db.session.flush()
            audit.record_update(p, before, user=user)


def move(app: CreditApplication, to: Stage | str, user: User, on: date, note: str = "",
         decision: Optional[Decision] = None, version=None, today: Optional[date] = None) -> StageChange:
    """Move an application to the next stage: only allowed moves, dated, by whom, audited, in the history."""
    today = today or today_local()
    _require_bank_writer(user, app.bank_id)
    check_version(app, version)
    try:
        to = Stage(to)
    except ValueError:
        raise CreditError("bad_move", _l("This stage change is not allowed.")) from None
    from_stage = app.stage
    if not sm.can_move(from_stage, to, app.product):
        raise CreditError("bad_move", _l("An application cannot move from “%(a)s” to “%(b)s”.",
                                         a=sm.STAGE_LABELS[Stage(from_stage)], b=sm.STAGE_LABELS[to]))
    if on is None:
        raise CreditError("date", _l("Enter the date of this step."), "changed_on")
    _not_future(on, today, "changed_on")
    if on < last_change_on(app):
        raise CreditError("date_order", _l("The date cannot be before the previous step (%(day)s).",
                                           day=last_change_on(app).isoformat()), "changed_on")
    d = decision or Decision()
    before = audit.snapshot(app)
    if to == Stage.APPROVED:
        _validate_approval(app, on, d)
        maturity = add_months(on, d.term_months)
        _check_pledges_outlive(app, maturity)
        app.approved_fen = d.approved_fen
        app.rate_bp = d.rate_bp
        app.discount_bp = d.discount_bp
        app.term_months = d.term_months
        app.decline_reason_code = None
    if to == Stage.DECLINED:
        reason = db.session.get(DeclineReason, d.decline_reason_code) if d.decline_reason_code else None
        if reason is None:
            raise CreditError("decline_reason", _l("Choose the reason for the decline."), "decline_reason_code")
        app.decline_reason_code = reason.code
    if to in (Stage.APPROVED, Stage.DECLINED):
        app.decided_on = on
        app.high_tech_at_decision = app.firm.is_high_tech_on(on)
    if to == Stage.PLEDGE_REGISTERED:
        active = [p for p in app.pledges if p.status == PledgeStatus.ACTIVE]
        if not active:
            raise CreditError("no_pledge", _l("Add the pledged patents before recording the pledge registration."))
        if any(not p.registration_no or p.registered_on is None for p in active):
            raise CreditError("unregistered", _l("Enter the CNIPA registration number and date of every pledged "
                                                 "patent first."))
        if any(p.registered_on > on for p in active):
            raise CreditError("registered_later", _l("A pledge was registered after this date."), "changed_on")
    if to == Stage.DISBURSED:
        amount = d.disbursed_fen if d.disbursed_fen is not None else app.approved_fen
        if amount is None or amount <= 0 or (app.approved_fen is not None and amount > app.approved_fen):
            raise CreditError("disbursed_amount", _l("The disbursed amount must be above zero and at most the "
                                                     "approved amount."), "disbursed_wan")
        maturity = add_months(on, app.term_months) if app.term_months else None
        _check_pledges_outlive(app, maturity)
        app.disbursed_on = on
        app.disbursed_fen = amount
        app.matures_on = maturity
    if to in (Stage.DECLINED, Stage.WITHDRAWN, Stage.REPAID):
        _release_active_pledges(app, on, user)
    app.stage = to
    change = StageChange(bank_id=app.bank_id, from_stage=Stage(from_stage), to_stage=to,
                         changed_on=on, by_id=user.id, note=(note or "").strip()[:300])
    app.history.append(change)
    db.session.flush()
    audit.record_update(app, before, user=user, detail=f"stage {from_stage} -> {to}")
    audit.record_create(change, user=user)
    return change


# ----------------------------------------------------------------------------------------------------------
# IP assets and pledges
# ----------------------------------------------------------------------------------------------------------


def display_patent_no(canonical: str) -> str:
    return f"ZL{canonical}"


@dataclass
class PledgeData:
    patent_no: str
    title: str = ""
    granted_on: Optional[date] = None
    expires_on: Optional[date] = None
    legal_status: str = LEGAL_VALID
    owner_name: str = ""
    owner_relation: str = OwnerRelation.SELF
    licence_no: str = ""
    licence_note: str = ""
    #: a ledger import: a ZL number is a granted patent's number, so missing dates are filled in later
    #: (before the pledge registration) instead of refusing the row
    dates_later: bool = False


def _is_granted_number(typed: str) -> bool:
    """``ZL…`` is the number of a granted patent (专利号); ``CN…`` or a bare number may be an application."""
    from crm.core.validators import normalize_text

    return normalize_text(typed).upper().replace(" ", "").startswith("ZL")


def _patent_is_actively_pledged(asset_id: int) -> bool:
    """Any bank's active pledge of this patent (existence only: it never says whose)."""
    stmt = sa.select(Pledge.id).where(Pledge.ip_asset_id == asset_id, Pledge.status == PledgeStatus.ACTIVE).limit(1)
    return db.session.execute(stmt, execution_options={"skip_tenant_scope": True}).first() is not None


ALREADY_PLEDGED = _l("This patent is already under an active pledge and cannot be pledged again until it is "
                     "released.")


def add_pledge(app: CreditApplication, user: User, data: PledgeData, today: Optional[date] = None) -> Pledge:
    """Pledge a patent for an application, refusing what CNIPA would refuse."""
    today = today or today_local()
    _require_bank_writer(user, app.bank_id)
    if not sm.has_pledge_stage(app.product):
        raise CreditError("not_ip_product", _l("Only IP-pledge applications take pledged patents."))
    if app.stage in sm.FINAL_STAGES:
        raise CreditError("closed", _l("This application is closed."))
    try:
        number = normalize_patent_number(data.patent_no, today=today)
    except ValidationError as exc:
        raise CreditError("patent_no", str(exc), "patent_no") from None
    relation = OwnerRelation(data.owner_relation)
    if data.legal_status not in LEGAL_STATUSES:
        raise CreditError("legal_status", _l("Choose the patent's legal status."), "legal_status")
    dates_later = data.dates_later and _is_granted_number(data.patent_no) and data.legal_status == LEGAL_VALID
    if dates_later and data.granted_on is None and data.expires_on is None:
        pass  # granted (ZL number); the dates are completed before the pledge registration
    elif data.legal_status == LEGAL_PENDING or data.granted_on is None or data.granted_on > today:
        raise CreditError("not_granted", _l("The patent has not been granted yet: only granted patents can be "
                                            "pledged."), "granted_on")
    if data.legal_status == LEGAL_LAPSED:
        raise CreditError("lapsed", _l("The patent has lapsed or been invalidated and cannot be pledged."),
                          "legal_status")
    if data.expires_on is None and not dates_later:
        raise CreditError("expiry_missing", _l("Enter the patent's expiry date."), "expires_on")
    if data.expires_on is not None and data.granted_on is not None and data.expires_on <= data.granted_on:
        raise CreditError("expiry_order", _l("The expiry date must be after the grant date."), "expires_on")
    if data.expires_on is not None and data.expires_on < today:
        raise CreditError("expired", _l("The patent has already expired."), "expires_on")
    maturity = expected_maturity(app)
    if maturity is not None and data.expires_on is not None and data.expires_on < maturity:
        raise CreditError("patent_expires",
                          _l("Patent %(no)s expires on %(expiry)s, before the loan matures on %(maturity)s.",
                             no=display_patent_no(number.canonical), expiry=data.expires_on.isoformat(),
                             maturity=maturity.isoformat()), "expires_on")
    if relation == OwnerRelation.HK_AFFILIATE and not data.licence_no.strip():
        raise CreditError("licence", _l("A patent owned by a Hong Kong affiliate needs the licence number to the "
                                        "borrower."), "licence_no")
    asset = db.session.scalar(sa.select(IpAsset).where(IpAsset.patent_no == number.canonical))
    if asset is not None and _patent_is_actively_pledged(asset.id):
        raise CreditError("already_pledged", ALREADY_PLEDGED, "patent_no")
    if asset is None:
        asset = IpAsset(patent_no=number.canonical, kind=PatentKind(number.kind))
        db.session.add(asset)
        asset_before = None
    else:
        asset_before = audit.snapshot(asset)
    asset.title = data.title.strip()[:300]
    asset.granted_on = data.granted_on
    asset.expires_on = data.expires_on
    asset.legal_status = data.legal_status
    asset.owner_name = data.owner_name.strip()[:200]
    db.session.flush()
    pledge = Pledge(bank_id=app.bank_id, application_id=app.id, ip_asset_id=asset.id, owner_relation=relation,
                    licence_no=data.licence_no.strip()[:60], licence_note=data.licence_note.strip()[:300],
                    status=PledgeStatus.ACTIVE)
    # Another request may have pledged it since the check: the partial unique index on active pledges decides.
    # PostgreSQL keeps the transaction through a savepoint. SQLite (pysqlite) would COMMIT on releasing a
    # savepoint opened before any write, so there the failed transaction is rolled back instead.
    if db.session.get_bind().dialect.name == "sqlite":
        try:
            db.session.add(pledge)
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            raise CreditError("already_pledged", ALREADY_PLEDGED, "patent_no") from None
    else:
        try:
            with db.session.begin_nested():
                db.session.add(pledge)
                db.session.flush()
        except IntegrityError:
            raise CreditError("already_pledged", ALREADY_PLEDGED, "patent_no") from None
    db.session.expire(app, ["pledges"])
    if asset_before is None:
        audit.record_create(asset, user=user, bank_id=app.bank_id)
    else:
        audit.record_update(asset, asset_before, user=user, bank_id=app.bank_id)
    audit.record_create(pledge, user=user)
    return pledge


def complete_patent_dates(pledge: Pledge, user: User, granted_on: Optional[date], expires_on: Optional[date],
                          today: date) -> None:
    """Fill in the grant and expiry dates of a pledged patent recorded without them (a ledger import)."""
    asset = pledge.ip_asset
    if asset.granted_on is not None and asset.expires_on is not None:
        return
    if granted_on is None or expires_on is None:
        raise CreditError("dates_missing", _l("Enter the patent's grant and expiry dates."), "granted_on")
    if granted_on > today:
        raise CreditError("not_granted", _l("The patent has not been granted yet: only granted patents can be "
                                            "pledged."), "granted_on")
    if expires_on <= granted_on:
        raise CreditError("expiry_order", _l("The expiry date must be after the grant date."), "expires_on")
    maturity = expected_maturity(pledge.application)
    if expires_on < today or (maturity is not None and expires_on < maturity):
        raise CreditError("patent_expires",
                          _l("Patent %(no)s expires on %(expiry)s, before the loan matures on %(maturity)s.",
                             no=display_patent_no(asset.patent_no), expiry=expires_on.isoformat(),
                             maturity=(maturity or today).isoformat()), "expires_on")
    before = audit.snapshot(asset)
    asset.granted_on = granted_on
    asset.expires_on = expires_on
    db.session.flush()
    audit.record_update(asset, before, user=user, bank_id=pledge.bank_id)


def register_pledge(pledge: Pledge, user: User, registration_no: str, registered_on: date,
                    secured_fen: Optional[int], version=None, today: Optional[date] = None,
                    granted_on: Optional[date] = None, expires_on: Optional[date] = None) -> Pledge:
    """Record the CNIPA pledge registration (number, date) and the registered secured amount."""
    today = today or today_local()
    _require_bank_writer(user, pledge.bank_id)
    check_version(pledge, version)
    if pledge.status != PledgeStatus.ACTIVE:
        raise CreditError("released", _l("This pledge has been released."))
    complete_patent_dates(pledge, user, granted_on, expires_on, today)
    if not (registration_no or "").strip():
        raise CreditError("registration_no", _l("Enter the CNIPA pledge registration number."), "registration_no")
    if registered_on is None:
        raise CreditError("registered_on", _l("Enter the registration date."), "registered_on")
    _not_future(registered_on, today, "registered_on")
    if registered_on < pledge.application.accepted_on:
        raise CreditError("registered_early", _l("The registration date cannot be before the acceptance date."),
                          "registered_on")
    if secured_fen is None or secured_fen <= 0:
        raise CreditError("secured", _l("The registered secured amount must be greater than zero."), "secured_wan")
    before = audit.snapshot(pledge)
    pledge.registration_no = registration_no.strip()[:60]
    pledge.registered_on = registered_on
    pledge.secured_fen = secured_fen
    db.session.flush()
    audit.record_update(pledge, before, user=user)
    return pledge


def release_pledge(pledge: Pledge, user: User, on: Optional[date] = None, version=None) -> Pledge:
    """Release a pledge (the patent becomes free to pledge again)."""
    _require_bank_writer(user, pledge.bank_id)
    check_version(pledge, version)
    if pledge.status != PledgeStatus.ACTIVE:
        raise CreditError("released", _l("This pledge has been released."))
    if pledge.registered_on is not None:
        raise CreditError("in_force", _l("A registered pledge is released when the loan is repaid."))
    before = audit.snapshot(pledge)
    pledge.status = PledgeStatus.RELEASED
    pledge.released_on = on or today_local()
    db.session.flush()
    audit.record_update(pledge, before, user=user)
    return pledge


# ----------------------------------------------------------------------------------------------------------
# valuations
# ----------------------------------------------------------------------------------------------------------


def add_valuation(app: CreditApplication, user: User, valuer: str, requested_on: date,
                  completed_on: Optional[date] = None, amount_fen: Optional[int] = None,
                  ip_asset_id: Optional[int] = None, today: Optional[date] = None) -> Valuation:
    today = today or today_local()
    _require_bank_writer(user, app.bank_id)
    if not (valuer or "").strip():
        raise CreditError("valuer", _l("Enter the valuer."), "valuer")
    if requested_on is None:
        raise CreditError("requested_on", _l("Enter the date the valuation was requested."), "requested_on")
    _not_future(requested_on, today, "requested_on")
    _check_completion(requested_on, completed_on, amount_fen, today)
    if ip_asset_id is not None and all(p.ip_asset_id != ip_asset_id for p in app.pledges):
        raise CreditError("asset", _l("Choose one of this application's pledged patents."), "ip_asset_id")
    v = Valuation(bank_id=app.bank_id, application=app, ip_asset_id=ip_asset_id, valuer=valuer.strip()[:120],
                  requested_on=requested_on, completed_on=completed_on, amount_fen=amount_fen)
    db.session.add(v)
    db.session.flush()
    audit.record_create(v, user=user)
    return v


def _check_completion(requested_on: date, completed_on: Optional[date], amount_fen: Optional[int],
                      today: date) -> None:
    if completed_on is not None:
        _not_future(completed_on, today, "completed_on")
        if completed_on < requested_on:
            raise CreditError("completed_early", _l("The valuation cannot be completed before it was requested."),
                              "completed_on")
        if amount_fen is None or amount_fen <= 0:
            raise CreditError("valuation_amount", _l("Enter the valued amount of a completed valuation."),
                              "amount_wan")
    elif amount_fen is not None and amount_fen < 0:
        raise CreditError("valuation_amount", _l("Enter the valued amount of a completed valuation."), "amount_wan")


def complete_valuation(v: Valuation, user: User, completed_on: date, amount_fen: int,
                       today: Optional[date] = None) -> Valuation:
    today = today or today_local()
    _require_bank_writer(user, v.bank_id)
    if completed_on is None:
        raise CreditError("completed_on", _l("Enter the completion date."), "completed_on")
    _check_completion(v.requested_on, completed_on, amount_fen, today)
    before = audit.snapshot(v)
    v.completed_on = completed_on
    v.amount_fen = amount_fen
    db.session.flush()
    audit.record_update(v, before, user=user)
    return v


# ----------------------------------------------------------------------------------------------------------
# securitisation pools
# ----------------------------------------------------------------------------------------------------------


def create_pool(user: User, name: str, exchange: str, issue_on: Optional[date]) -> SecuritisationPool:
    _require_bank_writer(user)
    name = (name or "").strip()
    if not name:
        raise CreditError("name", _l("Enter the pool's name."), "name")
    if not (exchange or "").strip():
        raise CreditError("exchange", _l("Enter the exchange."), "exchange")
    exists = db.session.scalar(sa.select(SecuritisationPool.id).where(SecuritisationPool.bank_id == user.bank_id,
                                                                       SecuritisationPool.name == name))
    if exists:
        raise CreditError("duplicate", _l("Your bank already has a pool with this name."), "name")
    pool = SecuritisationPool(bank_id=user.bank_id, name=name[:200], exchange=exchange.strip()[:60],
                              issue_on=issue_on, created_by_id=user.id)
    db.session.add(pool)
    db.session.flush()
    audit.record_create(pool, user=user)
    return pool


def pool_candidates(pool: SecuritisationPool) -> list[CreditApplication]:
    """The bank's approved IP-pledge loans not yet in any pool."""
    stmt = (sa.select(CreditApplication).join(CreditApplication.product)
            .where(CreditApplication.bank_id == pool.bank_id, CreditApplication.pool_id.is_(None),
                   CreditApplication.stage.in_([s.value for s in APPROVED_STAGES - {Stage.REPAID}]),
                   CreditProduct.is_ip_pledge.is_(True))
            .order_by(CreditApplication.decided_on.desc(), CreditApplication.id.desc()))
    return list(db.session.scalars(stmt))


def add_to_pool(pool: SecuritisationPool, app: CreditApplication, user: User) -> None:
    """Add an approved IP-pledge loan of the pool's bank; a loan is in at most one pool."""
    _require_bank_writer(user, pool.bank_id)
    if app.bank_id != pool.bank_id:
        raise CreditError("other_bank", _l("Only your bank's loans can go into your bank's pool."))
    if not app.product.is_ip_pledge:
        raise CreditError("not_ip", _l("Only IP-pledge loans can be pooled."))
    if app.stage not in APPROVED_STAGES or app.stage == Stage.REPAID:
        raise CreditError("not_approved", _l("Only approved loans that are not yet repaid can be pooled."))
    if app.pool_id is not None:
        if app.pool_id == pool.id:
            raise CreditError("in_pool", _l("This loan is already in this pool."))
        raise CreditError("in_other_pool", _l("This loan is already in another pool: a loan can be in one pool "
                                              "only."))
    before = audit.snapshot(app)
    app.pool_id = pool.id
    db.session.flush()
    audit.record_update(app, before, user=user, detail=f"pool {pool.id} add")


def remove_from_pool(pool: SecuritisationPool, app: CreditApplication, user: User,
                     today: Optional[date] = None) -> None:
    today = today or today_local()
    _require_bank_writer(user, pool.bank_id)
    if app.pool_id != pool.id:
        raise CreditError("not_in_pool", _l("This loan is not in this pool."))
    if pool.issue_on is not None and pool.issue_on <= today:
        raise CreditError("issued", _l("The pool has been issued; its loans can no longer change."))
    before = audit.snapshot(app)
    app.pool_id = None
    db.session.flush()
    audit.record_update(app, before, user=user, detail=f"pool {pool.id} remove")


@dataclass
class PoolSummary:
    size_fen: int
    loan_count: int
    firm_count: int
    areas: list[str]


def pool_summary(pool: SecuritisationPool) -> PoolSummary:
    loans = list(pool.loans)
    areas = sorted({app.firm.area.name for app in loans if app.firm.area is not None})
    return PoolSummary(sum(app.approved_fen or 0 for app in loans), len(loans), len({app.firm_id for app in loans}),
                       areas)


# ----------------------------------------------------------------------------------------------------------
# calendar overrides (admin)
# ----------------------------------------------------------------------------------------------------------


def set_override(user: User, day: date, is_workday: bool, note: str = "") -> HolidayOverride:
    """Add or change the admin's override for one day (it wins over the PRC calendar)."""
    if user is None or not user.is_admin:
        raise CreditError("forbidden", _l("Only the administrator manages the calendar."))
    if day is None:
        raise CreditError("day", _l("Enter the day."), "day")
    row = db.session.scalar(sa.select(HolidayOverride).where(HolidayOverride.day == day))
    if row is None:
        row = HolidayOverride(day=day, is_workday=bool(is_workday), note=(note or "").strip()[:200],
                              created_by_id=user.id)
        db.session.add(row)
        db.session.flush()
        audit.record_create(row, user=user, bank_id=None)
        return row
    before = audit.snapshot(row)
    row.is_workday = bool(is_workday)
    row.note = (note or "").strip()[:200]
    db.session.flush()
    audit.record_update(row, before, user=user, bank_id=None)
    return row


def delete_override(row: HolidayOverride, user: User) -> None:
    if user is None or not user.is_admin:
        raise CreditError("forbidden", _l("Only the administrator manages the calendar."))
    audit.record_delete(row, user=user, bank_id=None)
    db.session.delete(row)
    db.session.flush()
